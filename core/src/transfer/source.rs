//! Shares of files the host opens on demand (an app's content URIs, security-scoped URLs): the
//! core never copies them. It hashes each file by reading it through the host, chunk by chunk on
//! every core (memory stays flat, as for files on disk), and serves each chunk by reading it again
//! at its offset, verifying it against the manifest before it is sent, as for any share.
//!
//! The names come from the host (display names): each must be a single name that every platform
//! can hold, as the name of any shared file; two equal names become `name (2).ext`, `name (3).ext`…
//!
//! Such a share is served only while the host's [`FileSource`] is registered in this run (a grant
//! to read a content URI may not survive the process). The store remembers it, so `shares` still
//! lists it after a restart, as unavailable; when the host shares the same files again, the same
//! manifest comes out and every key of the share opens it again.

use std::collections::HashSet;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::build::{self, Unit};
use super::manifest::{FileEntry, Hash, Manifest, ManifestError, chunk_size_for};
use super::paths::RelPath;
use super::tree;

/// Files the host opens on demand. The core calls it from blocking threads only (never from its
/// async workers), from several at once.
pub trait FileSource: Send + Sync {
    /// How many files.
    fn count(&self) -> usize;
    /// File `file`'s name in the share: a single name, no folder.
    fn name(&self, file: usize) -> io::Result<String>;
    /// File `file`'s size in bytes now.
    fn size(&self, file: usize) -> io::Result<u64>;
    /// Up to `len` bytes of file `file` from `offset`: fewer only at its end, none past it.
    fn read(&self, file: usize, offset: u64, len: usize) -> io::Result<Vec<u8>>;
}

/// The files of a share read through the host, in manifest order.
pub(crate) struct Hosted {
    source: Arc<dyn FileSource>,
    /// The source's index of each manifest file.
    files: Vec<usize>,
}

impl std::fmt::Debug for Hosted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hosted")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Hosted {
    /// Manifest file `file`'s size now.
    pub(crate) fn size(&self, file: usize) -> io::Result<u64> {
        self.source.size(self.index(file)?)
    }

    /// Exactly `len` bytes of manifest file `file` from `offset`; a file that ends before is an
    /// `UnexpectedEof`, a host that returns more than asked an `InvalidData` error.
    pub(crate) fn read_exact(&self, file: usize, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let k = self.index(file)?;
        let mut out = self.source.read(k, offset, len)?;
        while out.len() < len {
            let more = self
                .source
                .read(k, offset + out.len() as u64, len - out.len())?;
            if more.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            out.extend_from_slice(&more);
        }
        if out.len() > len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the host returned more than the {len} bytes asked for"),
            ));
        }
        Ok(out)
    }

    fn index(&self, file: usize) -> io::Result<usize> {
        self.files
            .get(file)
            .copied()
            .ok_or_else(|| io::Error::other("no such file in the share"))
    }
}

/// A host's file as listed for the manifest.
struct Listed {
    path: RelPath,
    /// The source's index.
    index: usize,
    size: u64,
}

/// Builds the manifest of the files of `source` (see the module), hashing on `threads` threads
/// (default: every core) with `chunk_size` (default: [`chunk_size_for`] the total). Reads every
/// byte: call it from a blocking thread.
pub(crate) fn build(
    source: Arc<dyn FileSource>,
    chunk_size: Option<u32>,
    threads: Option<usize>,
) -> Result<(Manifest, Hosted), ManifestError> {
    let files = list(source.as_ref())?;
    let total = files
        .iter()
        .try_fold(0u64, |sum, f| sum.checked_add(f.size))
        .ok_or(ManifestError::SizeOverflow)?;
    let chunk_size = chunk_size.unwrap_or_else(|| chunk_size_for(total));
    let cs = u64::from(chunk_size);
    let hosted = Hosted {
        source,
        files: files.iter().map(|f| f.index).collect(),
    };
    let mut first = Vec::with_capacity(files.len());
    let mut units = Vec::new();
    for (k, f) in files.iter().enumerate() {
        first.push(units.len());
        units.extend((0..f.size.div_ceil(cs)).map(|index| Unit { file: k, index }));
    }
    let threads = threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, units.len().max(1));
    let mut chunks: Vec<Hash> = vec![[0; 32]; units.len()];
    let (read, listed) = (&hosted, &files);
    let hashed = build::hash_units(&units, threads, || {
        move |unit: Unit, buf: &mut [u8]| hash_unit(read, &listed[unit.file], unit, chunk_size, buf)
    })?;
    for (unit, hash) in hashed {
        chunks[unit] = hash;
    }
    let mut entries = Vec::with_capacity(files.len());
    for (k, f) in files.into_iter().enumerate() {
        // A file that changed size while it was read is not shared as it was.
        if hosted.size(k).map_err(unreadable(&f))? != f.size {
            return Err(changed(&f));
        }
        let own = &chunks[first[k]..first[k] + f.size.div_ceil(cs) as usize];
        let hash = tree::file_hash(f.size, chunk_size, own).ok_or_else(|| changed(&f))?;
        entries.push(FileEntry {
            path: f.path,
            size: f.size,
            hash,
        });
    }
    let manifest = Manifest::new(chunk_size, entries, Vec::new(), chunks)?;
    Ok((manifest, hosted))
}

/// The files of `source` with checked, distinct names, sorted by name.
fn list(source: &dyn FileSource) -> Result<Vec<Listed>, ManifestError> {
    let count = source.count();
    if count == 0 {
        return Err(ManifestError::Empty);
    }
    let mut names = Vec::with_capacity(count);
    let mut sizes = Vec::with_capacity(count);
    for k in 0..count {
        let host_file = |source| ManifestError::Io {
            path: PathBuf::from(format!("the app's file {k}")),
            source,
        };
        names.push(source.name(k).map_err(host_file)?);
        sizes.push(source.size(k).map_err(host_file)?);
    }
    let mut files = Vec::with_capacity(count);
    for (index, (name, size)) in distinct(names).into_iter().zip(sizes).enumerate() {
        let path = RelPath::new(&[&name]).map_err(|reason| ManifestError::UnportableName {
            path: PathBuf::from(&name),
            reason,
        })?;
        files.push(Listed { path, index, size });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// `names` with each repeated one made distinct: `beach.jpg`, `beach (2).jpg`, `beach (3).jpg`…
fn distinct(names: Vec<String>) -> Vec<String> {
    let mut taken: HashSet<String> = HashSet::with_capacity(names.len());
    names
        .into_iter()
        .map(|name| {
            let (base, ext) = match name.rfind('.') {
                Some(dot) if dot > 0 => name.split_at(dot),
                _ => (name.as_str(), ""),
            };
            let unique = (1..)
                .map(|n| match n {
                    1 => name.clone(),
                    n => format!("{base} ({n}){ext}"),
                })
                .find(|candidate| !taken.contains(candidate))
                .unwrap_or_else(|| name.clone());
            taken.insert(unique.clone());
            unique
        })
        .collect()
}

/// The hash of `unit` of the listed file `f`, read through the host.
fn hash_unit(
    hosted: &Hosted,
    f: &Listed,
    unit: Unit,
    chunk_size: u32,
    buf: &mut [u8],
) -> Result<Hash, ManifestError> {
    build::hash_chunk(f.size, unit.index, chunk_size, buf, |piece, at| {
        let bytes = hosted.read_exact(unit.file, at, piece.len()).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                changed(f)
            } else {
                unreadable(f)(e)
            }
        })?;
        piece.copy_from_slice(&bytes);
        Ok(())
    })
}

fn changed(f: &Listed) -> ManifestError {
    ManifestError::FileChanged {
        path: PathBuf::from(f.path.as_str()),
        expected: f.size,
    }
}

fn unreadable(f: &Listed) -> impl FnOnce(io::Error) -> ManifestError + '_ {
    move |source| ManifestError::Io {
        path: PathBuf::from(f.path.as_str()),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::manifest::MIN_CHUNK_SIZE;
    use std::sync::Mutex;

    /// Files in memory; reads return at most `max_read` bytes, or `extra` more than asked.
    struct Mem {
        files: Vec<(String, Mutex<Vec<u8>>)>,
        max_read: usize,
        extra: usize,
    }

    impl Mem {
        fn new(files: &[(&str, Vec<u8>)]) -> Self {
            Self {
                files: files
                    .iter()
                    .map(|(n, b)| (n.to_string(), Mutex::new(b.clone())))
                    .collect(),
                max_read: usize::MAX,
                extra: 0,
            }
        }
    }

    impl FileSource for Mem {
        fn count(&self) -> usize {
            self.files.len()
        }
        fn name(&self, file: usize) -> io::Result<String> {
            Ok(self.files[file].0.clone())
        }
        fn size(&self, file: usize) -> io::Result<u64> {
            Ok(self.files[file].1.lock().unwrap().len() as u64)
        }
        fn read(&self, file: usize, offset: u64, len: usize) -> io::Result<Vec<u8>> {
            let bytes = self.files[file].1.lock().unwrap();
            let start = (offset as usize).min(bytes.len());
            let end = start + len.min(self.max_read).min(bytes.len() - start);
            let mut out = bytes[start..end].to_vec();
            out.resize(out.len() + self.extra, 0);
            Ok(out)
        }
    }

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
            .collect()
    }

    fn built(mem: Mem) -> Result<(Manifest, Hosted), ManifestError> {
        build(Arc::new(mem), Some(MIN_CHUNK_SIZE), Some(2))
    }

    #[test]
    fn the_manifest_is_the_one_of_the_same_files_on_disk() {
        let video = bytes(5 * MIN_CHUNK_SIZE as usize + 123, 1);
        let note = bytes(10, 2);
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("video.mp4"), &video).unwrap();
        std::fs::write(tmp.path().join("note.txt"), &note).unwrap();
        let paths = [tmp.path().join("video.mp4"), tmp.path().join("note.txt")];
        let (on_disk, _) = Manifest::build_with_chunk_size(&paths, MIN_CHUNK_SIZE).unwrap();

        let mut mem = Mem::new(&[("video.mp4", video.clone()), ("note.txt", note)]);
        // Short reads are read on from where they ended.
        mem.max_read = 1000;
        let (m, hosted) = built(mem).unwrap();
        assert_eq!(m.encode(), on_disk.encode(), "the same share");
        // Manifest order (sorted) maps to the host's order.
        assert_eq!(m.files()[1].path.as_str(), "video.mp4");
        let c = m.chunk(m.chunks_of(1).start + 2).unwrap();
        let read = hosted.read_exact(1, c.offset, c.len as usize).unwrap();
        assert!(c.verify(&read));
    }

    #[test]
    fn repeated_names_become_distinct_and_unsafe_ones_are_refused() {
        let mem = Mem::new(&[
            ("beach.jpg", bytes(3, 1)),
            ("beach.jpg", bytes(4, 2)),
            ("beach.jpg", bytes(5, 3)),
            ("README", bytes(1, 4)),
            ("README", bytes(2, 5)),
        ]);
        let (m, _) = built(mem).unwrap();
        let names: Vec<&str> = m.files().iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            names,
            [
                "README",
                "README (2)",
                "beach (2).jpg",
                "beach (3).jpg",
                "beach.jpg"
            ]
        );
        assert_eq!(m.files()[2].size, 4, "the second one given");

        for bad in ["../x", "a/b", "", ".", "..", "/etc/passwd", "nul\0byte"] {
            let err = built(Mem::new(&[(bad, bytes(1, 1))])).expect_err(bad);
            assert!(
                matches!(err, ManifestError::UnportableName { .. }),
                "{bad:?}: {err:?}"
            );
            assert!(err.to_string().contains("rename it to share it"), "{err}");
        }
        assert!(matches!(built(Mem::new(&[])), Err(ManifestError::Empty)));
    }

    #[test]
    fn a_host_that_reads_wrong_is_an_error_never_a_share() {
        let data = bytes(3 * MIN_CHUNK_SIZE as usize, 7);
        let mut long = Mem::new(&[("f", data.clone())]);
        long.extra = 1;
        let err = built(long).expect_err("more than asked");
        assert!(matches!(err, ManifestError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("more than"), "{err}");

        // It says it is longer than it is: it ended early, it changed.
        struct Shorter(Mem);
        impl FileSource for Shorter {
            fn count(&self) -> usize {
                1
            }
            fn name(&self, _: usize) -> io::Result<String> {
                Ok("f".into())
            }
            fn size(&self, _: usize) -> io::Result<u64> {
                Ok(4 * u64::from(MIN_CHUNK_SIZE))
            }
            fn read(&self, file: usize, offset: u64, len: usize) -> io::Result<Vec<u8>> {
                self.0.read(file, offset, len)
            }
        }
        let source = Arc::new(Shorter(Mem::new(&[("f", data)])));
        let err = build(source, Some(MIN_CHUNK_SIZE), Some(1)).expect_err("short");
        assert!(matches!(err, ManifestError::FileChanged { .. }), "{err:?}");

        struct Failing;
        impl FileSource for Failing {
            fn count(&self) -> usize {
                1
            }
            fn name(&self, _: usize) -> io::Result<String> {
                Err(io::Error::other("the grant was revoked"))
            }
            fn size(&self, _: usize) -> io::Result<u64> {
                Ok(1)
            }
            fn read(&self, _: usize, _: u64, _: usize) -> io::Result<Vec<u8>> {
                Err(io::Error::other("the grant was revoked"))
            }
        }
        let err = build(Arc::new(Failing), None, None).expect_err("fails");
        assert_eq!(err.to_string(), "the app's file 0: the grant was revoked");
    }
}
