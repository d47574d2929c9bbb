//! Building a manifest from files and folders on disk: walk, then hash every file in one streaming
//! pass with a fixed buffer, so memory stays flat whatever the size.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::manifest::{
    FileEntry, Hash, Manifest, ManifestError, chunk_size_for, is_valid_chunk_size,
};
use super::paths::RelPath;
use super::tree;
use blake3::hazmat::HasherExt;

/// The read buffer used while hashing: the only memory that grows with nothing.
const READ_BUF: usize = 256 * 1024;

/// A file found by the walk.
struct Found {
    path: RelPath,
    source: PathBuf,
    size: u64,
}

impl Manifest {
    /// Builds the manifest of `paths`: each is a file, shared under its name, or a folder, shared
    /// under its name with everything inside it. Folders are walked recursively in sorted order;
    /// symlinks and special files are skipped with a warning, never followed. Returns the source
    /// path of every file, in manifest order. The chunk size comes from [`chunk_size_for`].
    ///
    /// This reads every byte: call it from a blocking thread.
    pub fn build(paths: &[PathBuf]) -> Result<(Manifest, Vec<PathBuf>), ManifestError> {
        build(paths, None)
    }

    /// Like [`Manifest::build`] with a forced chunk size (a power of two in
    /// [`super::manifest::MIN_CHUNK_SIZE`] ..= [`super::manifest::MAX_CHUNK_SIZE`]).
    pub fn build_with_chunk_size(
        paths: &[PathBuf],
        chunk_size: u32,
    ) -> Result<(Manifest, Vec<PathBuf>), ManifestError> {
        build(paths, Some(chunk_size))
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ManifestError + '_ {
    move |source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn build(
    paths: &[PathBuf],
    chunk_size: Option<u32>,
) -> Result<(Manifest, Vec<PathBuf>), ManifestError> {
    if let Some(cs) = chunk_size.filter(|cs| !is_valid_chunk_size((*cs).into())) {
        return Err(ManifestError::ChunkSize {
            chunk_size: cs.into(),
        });
    }
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for path in paths {
        add_root(path, &mut files, &mut dirs)?;
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    dirs.sort();

    let total = files
        .iter()
        .try_fold(0u64, |sum, f| sum.checked_add(f.size))
        .ok_or(ManifestError::SizeOverflow)?;
    let chunk_size = chunk_size.unwrap_or_else(|| chunk_size_for(total));

    let mut buf = vec![0u8; READ_BUF];
    let mut chunks = Vec::new();
    let mut entries = Vec::with_capacity(files.len());
    let mut sources = Vec::with_capacity(files.len());
    for found in files {
        let hash = hash_file(&found.source, found.size, chunk_size, &mut buf, &mut chunks)?;
        entries.push(FileEntry {
            path: found.path,
            size: found.size,
            hash,
        });
        sources.push(found.source);
    }
    let manifest = Manifest::new(chunk_size, entries, dirs, chunks)?;
    Ok((manifest, sources))
}

/// The name a given path is shared under: its file name, or for `.` and the like the name of the
/// folder it resolves to.
fn root_name(path: &Path) -> Result<String, ManifestError> {
    let name = match path.file_name() {
        Some(name) => name.to_os_string(),
        None => fs::canonicalize(path)
            .map_err(io_err(path))?
            .file_name()
            .ok_or_else(|| ManifestError::NoName {
                path: path.to_path_buf(),
            })?
            .to_os_string(),
    };
    name.into_string().map_err(|_| ManifestError::NonUtf8Name {
        path: path.to_path_buf(),
    })
}

fn add_root(
    path: &Path,
    files: &mut Vec<Found>,
    dirs: &mut Vec<RelPath>,
) -> Result<(), ManifestError> {
    let rel =
        RelPath::new(&[root_name(path)?]).map_err(|reason| ManifestError::UnportableName {
            path: path.to_path_buf(),
            reason,
        })?;
    let meta = fs::symlink_metadata(path).map_err(io_err(path))?;
    add_entry(path, rel, &meta, files, dirs)
}

fn add_entry(
    path: &Path,
    rel: RelPath,
    meta: &fs::Metadata,
    files: &mut Vec<Found>,
    dirs: &mut Vec<RelPath>,
) -> Result<(), ManifestError> {
    let kind = meta.file_type();
    if kind.is_file() {
        files.push(Found {
            path: rel,
            source: path.to_path_buf(),
            size: meta.len(),
        });
    } else if kind.is_dir() {
        walk_dir(path, rel, files, dirs)?;
    } else if kind.is_symlink() {
        tracing::warn!(path = %path.display(), "skipping symlink: links are not followed nor shared");
    } else {
        tracing::warn!(path = %path.display(), "skipping special file (socket, pipe or device)");
    }
    Ok(())
}

/// Adds everything inside `dir`, or `dir` itself as an empty folder if it contributes nothing.
fn walk_dir(
    dir: &Path,
    rel: RelPath,
    files: &mut Vec<Found>,
    dirs: &mut Vec<RelPath>,
) -> Result<(), ManifestError> {
    let mut children = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        children.push((entry.file_name(), entry.path()));
    }
    children.sort();
    let before = files.len() + dirs.len();
    for (name, path) in children {
        let name = name
            .to_str()
            .ok_or_else(|| ManifestError::NonUtf8Name { path: path.clone() })?;
        let child = rel
            .join(name)
            .map_err(|reason| ManifestError::UnportableName {
                path: path.clone(),
                reason,
            })?;
        let meta = fs::symlink_metadata(&path).map_err(io_err(&path))?;
        add_entry(&path, child, &meta, files, dirs)?;
    }
    if files.len() + dirs.len() == before {
        dirs.push(rel);
    }
    Ok(())
}

/// Hashes a file of `size` bytes in one pass: one hash per `chunk_size` bytes is appended to
/// `chunks` (see [`super::tree`]) and the whole-file hash, merged from them, is returned. A file that
/// is not `size` bytes long any more is an error.
fn hash_file(
    path: &Path,
    size: u64,
    chunk_size: u32,
    buf: &mut [u8],
    chunks: &mut Vec<Hash>,
) -> Result<Hash, ManifestError> {
    let changed = || ManifestError::FileChanged {
        path: path.to_path_buf(),
        expected: size,
    };
    let mut file = File::open(path).map_err(io_err(path))?;
    let whole_file = size <= u64::from(chunk_size);
    let first = chunks.len();
    let mut chunk = blake3::Hasher::new();
    let mut chunk_start: u64 = 0;
    let mut in_chunk: usize = 0;
    let chunk_len = chunk_size as usize;
    let mut read_total: u64 = 0;
    let mut finish = |chunk: &mut blake3::Hasher, start: u64| {
        chunks.push(if whole_file {
            *chunk.finalize().as_bytes()
        } else {
            chunk.finalize_non_root()
        });
        *chunk = blake3::Hasher::new();
        chunk.set_input_offset(start);
    };
    loop {
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(path)(e)),
        };
        read_total += n as u64;
        if read_total > size {
            return Err(changed());
        }
        let mut data = &buf[..n];
        while !data.is_empty() {
            let take = data.len().min(chunk_len - in_chunk);
            chunk.update(&data[..take]);
            in_chunk += take;
            data = &data[take..];
            if in_chunk == chunk_len {
                chunk_start += u64::from(chunk_size);
                finish(&mut chunk, chunk_start);
                in_chunk = 0;
            }
        }
    }
    if read_total != size {
        return Err(changed());
    }
    if in_chunk > 0 {
        finish(&mut chunk, 0);
    }
    tree::file_hash(size, chunk_size, &chunks[first..]).ok_or_else(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::manifest::{AUTO_MIN_CHUNK_SIZE, MIN_CHUNK_SIZE};

    /// Deterministic, non-repeating test data.
    fn data(len: usize, seed: u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut x = u32::from(seed) | 1;
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    fn write(path: &Path, bytes: &[u8]) {
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, bytes).expect("write");
    }

    fn names(m: &Manifest) -> Vec<String> {
        m.files().iter().map(|f| f.path.to_string()).collect()
    }

    /// A folder with nested folders, empty files, an empty folder, unicode names and a file of a
    /// few MiB, plus a loose file and a symlink.
    fn fixture() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("Fotos");
        write(&root.join("Día 1/café ☕.jpg"), &data(100_000, 1));
        write(&root.join("Día 1/empty.txt"), b"");
        write(&root.join("Día 2/nested/deeper/note.md"), b"hello");
        write(&root.join("big.mov"), &data(3 * 1024 * 1024 + 12_345, 2));
        write(&root.join("a-file"), b"a");
        fs::create_dir_all(root.join("leer/und leer")).expect("mkdir");
        fs::create_dir_all(root.join("only-link")).expect("mkdir");
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/passwd", root.join("only-link/passwd")).expect("link");
        let loose = tmp.path().join("loose 文件.bin");
        write(&loose, &data(5, 3));
        (tmp, root, loose)
    }

    #[test]
    fn builds_a_folder_tree() {
        let (_tmp, root, loose) = fixture();
        let (m, sources) =
            Manifest::build_with_chunk_size(&[root.clone(), loose.clone()], 64 * 1024)
                .expect("build");
        assert_eq!(
            names(&m),
            [
                "Fotos/Día 1/café ☕.jpg",
                "Fotos/Día 1/empty.txt",
                "Fotos/Día 2/nested/deeper/note.md",
                "Fotos/a-file",
                "Fotos/big.mov",
                "loose 文件.bin",
            ]
        );
        let dirs: Vec<String> = m.dirs().iter().map(|d| d.to_string()).collect();
        #[cfg(unix)]
        assert_eq!(dirs, ["Fotos/leer/und leer", "Fotos/only-link"]);
        #[cfg(not(unix))]
        assert_eq!(dirs, ["Fotos/leer/und leer"]);
        assert_eq!(m.chunk_size(), 64 * 1024);
        assert_eq!(sources.len(), m.files().len());

        // Every file hash and chunk hash matches the bytes on disk.
        let mut total = 0;
        for (k, (entry, source)) in m.files().iter().zip(&sources).enumerate() {
            let bytes = fs::read(source).expect("read");
            assert!(source.ends_with(entry.path.components().last().expect("name")));
            assert_eq!(entry.size, bytes.len() as u64);
            assert_eq!(&entry.hash, blake3::hash(&bytes).as_bytes());
            assert_eq!(
                m.chunks_of(k).count() as u64,
                entry.size.div_ceil(64 * 1024)
            );
            for i in m.chunks_of(k) {
                let c = m.chunk(i).expect("chunk");
                let start = c.offset as usize;
                assert!(c.verify(&bytes[start..start + c.len as usize]));
            }
            total += entry.size;
        }
        assert_eq!(m.total_size(), total);
        let big = m
            .files()
            .iter()
            .position(|f| f.path.as_str() == "Fotos/big.mov");
        assert_eq!(m.chunks_of(big.expect("big")).count(), 49);

        // Encoding round-trips, and building again gives the same content id.
        let decoded = Manifest::decode(&m.encode()).expect("decode");
        assert_eq!(decoded, m);
        let (again, _) =
            Manifest::build_with_chunk_size(&[loose, root], 64 * 1024).expect("build again");
        assert_eq!(again.content_id(), m.content_id());
    }

    #[test]
    fn auto_chunk_size_and_single_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("video.mp4");
        write(&file, &data(600_000, 4));
        let (m, sources) = Manifest::build(std::slice::from_ref(&file)).expect("build");
        assert_eq!(m.chunk_size(), AUTO_MIN_CHUNK_SIZE);
        assert_eq!(names(&m), ["video.mp4"]);
        assert_eq!(sources, [file]);
        assert_eq!(m.chunk_count(), 3);
        assert_eq!(
            m.chunk(2).expect("last").len,
            600_000 - 2 * AUTO_MIN_CHUNK_SIZE
        );
    }

    #[test]
    fn shares_an_empty_folder_and_dot() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let empty = tmp.path().join("nothing here");
        fs::create_dir(&empty).expect("mkdir");
        let (m, sources) = Manifest::build(std::slice::from_ref(&empty)).expect("build");
        assert!(m.files().is_empty() && sources.is_empty());
        assert_eq!(m.dirs().len(), 1);
        assert_eq!(m.dirs()[0].as_str(), "nothing here");
        // "." is shared under the name of the folder it is.
        let (m, _) = Manifest::build(&[empty.join(".")]).expect("build");
        assert_eq!(m.dirs()[0].as_str(), "nothing here");
        let (m, _) = Manifest::build(&[empty.join("..")]).expect("build");
        assert!(
            m.dirs()
                .iter()
                .any(|d| d.as_str().ends_with("nothing here"))
        );
    }

    #[test]
    fn clear_errors() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let missing = tmp.path().join("missing");
        let err = Manifest::build(std::slice::from_ref(&missing)).expect_err("missing");
        assert!(matches!(err, ManifestError::Io { .. }));
        assert!(err.to_string().starts_with(&missing.display().to_string()));

        // A name another platform forbids is shared as it is: each receiver maps it.
        let dir = tmp.path().join("d");
        write(&dir.join("what?.txt"), b"x");
        write(&dir.join("a\\b"), b"y");
        let (m, _) = Manifest::build(std::slice::from_ref(&dir)).expect("shared as it is");
        assert_eq!(names(&m), ["d/a\\b", "d/what?.txt"]);

        let a = tmp.path().join("a/same.txt");
        let b = tmp.path().join("b/same.txt");
        write(&a, b"1");
        write(&b, b"2");
        let err = Manifest::build(&[a.clone(), b]).expect_err("duplicate");
        assert_eq!(err.to_string(), "the path \"same.txt\" appears twice");

        let err = Manifest::build_with_chunk_size(&[a], 1000).expect_err("chunk size");
        assert!(matches!(err, ManifestError::ChunkSize { chunk_size: 1000 }));
        assert!(matches!(Manifest::build(&[]), Err(ManifestError::Empty)));
        #[cfg(unix)]
        {
            let link = tmp.path().join("link");
            std::os::unix::fs::symlink(tmp.path().join("a"), &link).expect("symlink");
            assert!(matches!(
                Manifest::build(&[link]),
                Err(ManifestError::Empty)
            ));
            let err = Manifest::build(&[PathBuf::from("/")]).expect_err("root");
            assert!(matches!(err, ManifestError::NoName { .. }), "{err:?}");
        }
    }

    #[test]
    fn hashing_uses_chunk_boundaries_across_reads() {
        // Chunk sizes smaller and larger than the read buffer, with sizes on and off boundaries.
        let tmp = tempfile::tempdir().expect("tempdir");
        for (len, chunk_size) in [
            (READ_BUF * 2, MIN_CHUNK_SIZE),
            (READ_BUF * 2 + 1, MIN_CHUNK_SIZE),
            (READ_BUF * 5 - 1, 1024 * 1024),
            (1, 1024 * 1024),
        ] {
            let file = tmp.path().join(format!("f{len}"));
            let bytes = data(len, 9);
            write(&file, &bytes);
            let (m, _) = Manifest::build_with_chunk_size(&[file], chunk_size).expect("build");
            let whole = bytes.len() <= chunk_size as usize;
            let expected: Vec<Hash> = bytes
                .chunks(chunk_size as usize)
                .enumerate()
                .map(|(i, c)| tree::chunk_hash(c, i as u64 * u64::from(chunk_size), whole))
                .collect();
            assert_eq!(m.chunk_hashes(), expected.as_slice());
            assert_eq!(m.files()[0].hash, *blake3::hash(&bytes).as_bytes());
        }
    }
}
