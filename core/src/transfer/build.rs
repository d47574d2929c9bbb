//! Building a manifest from files and folders on disk: walk, then hash. The chunks of every file
//! are independent (each is the BLAKE3 subtree at its offset, see [`super::tree`]), so they are
//! hashed on every core at once, each thread reading its chunk with `pread` into a fixed buffer:
//! memory stays flat (threads × [`READ_BUF`]) whatever the size. A file whose hashes a cache knows
//! for its exact path, size, change times and inode is not read at all.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::manifest::{
    FileEntry, Hash, Manifest, ManifestError, chunk_size_for, is_valid_chunk_size,
};
use super::paths::RelPath;
use super::tree;
use blake3::hazmat::HasherExt;

/// The read buffer of each hashing thread: the only memory hashing needs.
const READ_BUF: usize = 256 * 1024;

/// Files changed this close to the start of hashing are not cached: a write within the same tick
/// of a coarse file-system clock would leave the change time as it was.
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// A file found by the walk.
struct Found {
    path: RelPath,
    source: PathBuf,
    size: u64,
    stamp: FileStamp,
}

/// What a hash cache keys a file by besides its path: any change to the file changes one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStamp {
    /// Its size in bytes.
    pub size: u64,
    /// Its last modification, in nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Its inode number.
    pub inode: u64,
    /// Its last status change, in nanoseconds since the epoch: moves with every write and with a
    /// change time set back by hand, which `mtime_ns` alone would miss.
    pub ctime_ns: i64,
}

impl FileStamp {
    fn of(meta: &fs::Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
            inode: meta.ino(),
            ctime_ns: meta
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.ctime_nsec()),
        }
    }
}

/// A file hashed by a build, for a hash cache to remember.
pub(crate) struct Hashed {
    /// Its absolute path.
    pub path: PathBuf,
    /// Its stamp, unchanged from before hashing to after.
    pub stamp: FileStamp,
    /// The chunk size it was hashed with.
    pub chunk_size: u32,
    /// Its chunk hashes.
    pub chunks: Vec<Hash>,
}

/// Looks up the chunk hashes of the file at an absolute path with the given stamp and chunk size.
pub(crate) type Lookup<'a> = &'a dyn Fn(&Path, &FileStamp, u32) -> Option<Vec<Hash>>;

/// What [`build_with`] made.
pub(crate) struct Built {
    /// The manifest.
    pub manifest: Manifest,
    /// The source path of every file, in manifest order.
    pub sources: Vec<PathBuf>,
    /// The files that were read and hashed (not those the cache knew), for the cache.
    pub hashed: Vec<Hashed>,
    /// How many bytes were read and hashed.
    pub bytes_hashed: u64,
}

/// How a build runs: a forced chunk size, how many threads hash, and a hash cache.
#[derive(Clone, Copy, Default)]
pub(crate) struct BuildOptions<'a> {
    /// A forced chunk size (default: [`chunk_size_for`] the total).
    pub chunk_size: Option<u32>,
    /// Hashing threads (default: [`std::thread::available_parallelism`]).
    pub threads: Option<usize>,
    /// Known chunk hashes, used for a file only when path, size, change time and inode match.
    pub cache: Option<Lookup<'a>>,
}

impl Manifest {
    /// Builds the manifest of `paths`: each is a file, shared under its name, or a folder, shared
    /// under its name with everything inside it. Folders are walked recursively in sorted order;
    /// symlinks and special files are skipped with a warning, never followed. Returns the source
    /// path of every file, in manifest order. The chunk size comes from [`chunk_size_for`].
    ///
    /// This reads every byte, on every core: call it from a blocking thread.
    pub fn build(paths: &[PathBuf]) -> Result<(Manifest, Vec<PathBuf>), ManifestError> {
        let built = build_with(paths, BuildOptions::default())?;
        Ok((built.manifest, built.sources))
    }

    /// Like [`Manifest::build`] with a forced chunk size (a power of two in
    /// [`super::manifest::MIN_CHUNK_SIZE`] ..= [`super::manifest::MAX_CHUNK_SIZE`]).
    pub fn build_with_chunk_size(
        paths: &[PathBuf],
        chunk_size: u32,
    ) -> Result<(Manifest, Vec<PathBuf>), ManifestError> {
        let options = BuildOptions {
            chunk_size: Some(chunk_size),
            ..BuildOptions::default()
        };
        let built = build_with(paths, options)?;
        Ok((built.manifest, built.sources))
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ManifestError + '_ {
    move |source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Builds the manifest of `paths` (see [`Manifest::build`]) as `options` say.
pub(crate) fn build_with(
    paths: &[PathBuf],
    options: BuildOptions<'_>,
) -> Result<Built, ManifestError> {
    let chunk_size = options.chunk_size;
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
    let cs = u64::from(chunk_size);

    // Where each file's chunk hashes go, and which the cache already knows.
    let started = now_ns();
    let mut first = Vec::with_capacity(files.len());
    let mut next = 0usize;
    let mut absolute = Vec::with_capacity(files.len());
    let mut known: Vec<Option<Vec<Hash>>> = Vec::with_capacity(files.len());
    for f in &files {
        let count =
            usize::try_from(f.size.div_ceil(cs)).map_err(|_| ManifestError::SizeOverflow)?;
        first.push(next);
        next = next.checked_add(count).ok_or(ManifestError::SizeOverflow)?;
        let abs = std::path::absolute(&f.source).map_err(io_err(&f.source))?;
        let cached = options
            .cache
            .and_then(|lookup| lookup(&abs, &f.stamp, chunk_size))
            .filter(|hashes| hashes.len() == count);
        known.push(cached);
        absolute.push(abs);
    }
    let mut chunks = vec![[0u8; 32]; next];
    let mut units = Vec::new();
    let mut bytes_hashed = 0u64;
    for (k, f) in files.iter().enumerate() {
        match &known[k] {
            Some(hashes) => chunks[first[k]..first[k] + hashes.len()].copy_from_slice(hashes),
            None => {
                bytes_hashed += f.size;
                let count = f.size.div_ceil(cs);
                units.extend((0..count).map(|index| Unit { file: k, index }));
            }
        }
    }
    let threads = options
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, units.len().max(1));
    for (unit, hash) in hash_files(&files, &units, chunk_size, threads)? {
        let u = units[unit];
        chunks[first[u.file] + u.index as usize] = hash;
    }

    let plan = Plan {
        chunk_size,
        started,
        first,
        absolute,
        known,
    };
    assemble(files, dirs, chunks, plan, bytes_hashed)
}

/// Where each file's chunk hashes are, and what the cache knew.
struct Plan {
    chunk_size: u32,
    /// When hashing started (ns since the epoch).
    started: i64,
    /// The position of each file's first chunk hash.
    first: Vec<usize>,
    /// Each file's absolute path.
    absolute: Vec<PathBuf>,
    /// The chunk hashes the cache had for each file.
    known: Vec<Option<Vec<Hash>>>,
}

/// The manifest of `files` and `dirs` from all the chunk hashes, and what to cache.
fn assemble(
    files: Vec<Found>,
    dirs: Vec<RelPath>,
    chunks: Vec<Hash>,
    plan: Plan,
    bytes_hashed: u64,
) -> Result<Built, ManifestError> {
    let Plan {
        chunk_size,
        started,
        first,
        absolute,
        known,
    } = plan;
    let cs = u64::from(chunk_size);
    let mut entries = Vec::with_capacity(files.len());
    let mut sources = Vec::with_capacity(files.len());
    let mut hashed = Vec::new();
    for (k, found) in files.into_iter().enumerate() {
        let count =
            usize::try_from(found.size.div_ceil(cs)).map_err(|_| ManifestError::SizeOverflow)?;
        let own = &chunks[first[k]..first[k] + count];
        let hash = tree::file_hash(found.size, chunk_size, own).ok_or_else(|| {
            ManifestError::FileChanged {
                path: found.source.clone(),
                expected: found.size,
            }
        })?;
        // Cached only when the file did not change while it was read, and was last changed well
        // before: a later write in the same clock tick would go unseen.
        let unchanged = fs::symlink_metadata(&found.source)
            .is_ok_and(|meta| FileStamp::of(&meta) == found.stamp);
        let settled = found.stamp.mtime_ns < started.saturating_sub(RACY_WINDOW.as_nanos() as i64);
        if known[k].is_none() && unchanged && settled {
            hashed.push(Hashed {
                path: absolute[k].clone(),
                stamp: found.stamp,
                chunk_size,
                chunks: own.to_vec(),
            });
        }
        entries.push(FileEntry {
            path: found.path,
            size: found.size,
            hash,
        });
        sources.push(found.source);
    }
    let manifest = Manifest::new(chunk_size, entries, dirs, chunks)?;
    Ok(Built {
        manifest,
        sources,
        hashed,
        bytes_hashed,
    })
}

/// One chunk to hash: chunk `index` of file `file`.
#[derive(Clone, Copy)]
pub(super) struct Unit {
    pub(super) file: usize,
    pub(super) index: u64,
}

/// Hashes `units` of the files found on disk (see [`hash_units`]).
fn hash_files(
    files: &[Found],
    units: &[Unit],
    chunk_size: u32,
    threads: usize,
) -> Result<Vec<(usize, Hash)>, ManifestError> {
    hash_units(units, threads, || {
        let mut open = None;
        move |unit, buf: &mut [u8]| hash_unit(&mut open, files, unit, chunk_size, buf)
    })
}

/// Hashes `units` on `threads` threads, which take the next unit in order as they finish one, so
/// a thread keeps reading the same file forward. Each thread hashes with its own function from
/// `hasher` (which may keep a file open between units) through its own buffer of [`READ_BUF`].
/// Returns each unit's position and hash.
pub(super) fn hash_units<M, H>(
    units: &[Unit],
    threads: usize,
    hasher: M,
) -> Result<Vec<(usize, Hash)>, ManifestError>
where
    M: Fn() -> H + Sync,
    H: FnMut(Unit, &mut [u8]) -> Result<Hash, ManifestError>,
{
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let work = || -> Result<Vec<(usize, Hash)>, ManifestError> {
        let mut buf = vec![0u8; READ_BUF];
        let mut hash = hasher();
        let mut out = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&unit) = units.get(i) else { break };
            match hash(unit, &mut buf) {
                Ok(h) => out.push((i, h)),
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(out)
    };
    if threads <= 1 {
        return work();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
        let mut all = Vec::with_capacity(units.len());
        let mut error = None;
        for handle in handles {
            match handle.join() {
                Ok(Ok(part)) => all.extend(part),
                Ok(Err(e)) => error = error.or(Some(e)),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        error.map_or(Ok(all), Err)
    })
}

/// The hash of `unit`, reading through the file `open` holds when it is the unit's (else opening it).
fn hash_unit(
    open: &mut Option<(usize, File)>,
    files: &[Found],
    unit: Unit,
    chunk_size: u32,
    buf: &mut [u8],
) -> Result<Hash, ManifestError> {
    let found = &files[unit.file];
    if open.as_ref().is_none_or(|(k, _)| *k != unit.file) {
        *open = Some((unit.file, open_sized(found)?));
    }
    let (_, file) = open.as_ref().ok_or_else(|| changed(found))?;
    hash_chunk(
        found.size,
        unit.index,
        chunk_size,
        buf,
        |piece, at| match file.read_exact_at(piece, at) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(changed(found)),
            Err(e) => Err(io_err(&found.source)(e)),
        },
    )
}

fn changed(found: &Found) -> ManifestError {
    ManifestError::FileChanged {
        path: found.source.clone(),
        expected: found.size,
    }
}

/// Opens a file found by the walk; one that is not its size any more is an error.
fn open_sized(found: &Found) -> Result<File, ManifestError> {
    let file = File::open(&found.source).map_err(io_err(&found.source))?;
    let meta = file.metadata().map_err(io_err(&found.source))?;
    if meta.len() != found.size {
        return Err(changed(found));
    }
    Ok(file)
}

/// The hash of chunk `index` of a file of `size` bytes (see [`tree::chunk_hash`]), its bytes read
/// by `read` (which fills a piece of `buf` from an offset) through `buf`.
pub(super) fn hash_chunk(
    size: u64,
    index: u64,
    chunk_size: u32,
    buf: &mut [u8],
    mut read: impl FnMut(&mut [u8], u64) -> Result<(), ManifestError>,
) -> Result<Hash, ManifestError> {
    let cs = u64::from(chunk_size);
    let whole_file = size <= cs;
    let start = index * cs;
    let end = (start + cs).min(size);
    let mut hasher = blake3::Hasher::new();
    if !whole_file {
        hasher.set_input_offset(start);
    }
    let mut at = start;
    while at < end {
        let n = usize::try_from(end - at).map_or(buf.len(), |left| left.min(buf.len()));
        read(&mut buf[..n], at)?;
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(if whole_file {
        *hasher.finalize().as_bytes()
    } else {
        hasher.finalize_non_root()
    })
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
            stamp: FileStamp::of(meta),
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

    fn built(paths: &[PathBuf], threads: usize, cache: Option<Lookup<'_>>) -> Built {
        let options = BuildOptions {
            chunk_size: Some(MIN_CHUNK_SIZE),
            threads: Some(threads),
            cache,
        };
        build_with(paths, options).expect("build")
    }

    #[test]
    fn parallel_and_sequential_builds_agree() {
        let (tmp, root, loose) = fixture();
        let many = tmp.path().join("many chunks.bin");
        // 40 chunks and a bit, on more threads than files.
        write(&many, &data(40 * MIN_CHUNK_SIZE as usize + 777, 7));
        let paths = [root, loose, many.clone()];
        let one = built(&paths, 1, None);
        for threads in [2, 3, 8] {
            let par = built(&paths, threads, None);
            assert_eq!(par.manifest, one.manifest, "{threads} threads");
            assert_eq!(par.manifest.encode(), one.manifest.encode());
            assert_eq!(par.sources, one.sources);
            assert_eq!(par.bytes_hashed, one.bytes_hashed);
        }
        assert_eq!(one.bytes_hashed, one.manifest.total_size());
        // The same as the plain BLAKE3 hash, chunk by chunk too.
        let single = built(std::slice::from_ref(&many), 4, None);
        let bytes = fs::read(&many).expect("read");
        assert_eq!(
            single.manifest.files()[0].hash,
            *blake3::hash(&bytes).as_bytes()
        );
        let expected: Vec<Hash> = bytes
            .chunks(MIN_CHUNK_SIZE as usize)
            .enumerate()
            .map(|(i, c)| tree::chunk_hash(c, i as u64 * u64::from(MIN_CHUNK_SIZE), false))
            .collect();
        assert_eq!(single.manifest.chunk_hashes(), expected.as_slice());
    }

    /// Sets the change time of every file under `root` well in the past (out of the racy window).
    fn settle(root: &Path) {
        let old = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        if root.is_dir() {
            for entry in fs::read_dir(root).expect("read dir") {
                settle(&entry.expect("entry").path());
            }
        } else if fs::symlink_metadata(root).expect("meta").is_file() {
            let file = File::options().write(true).open(root).expect("open");
            file.set_modified(old).expect("set mtime");
        }
    }

    #[test]
    fn an_unchanged_folder_is_not_hashed_again_and_any_change_is() {
        let (tmp, root, loose) = fixture();
        let data_dir = tempfile::tempdir().expect("data dir");
        let store = crate::store::Store::open(data_dir.path()).expect("store");
        let lookup = |path: &Path, stamp: &FileStamp, cs: u32| {
            crate::transfer::state::cached_hashes(&store, path, stamp, cs).expect("lookup")
        };
        let share = |paths: &[PathBuf]| {
            let b = built(paths, 2, Some(&lookup));
            crate::transfer::state::save_hashes(&store, &b.hashed).expect("save");
            b
        };
        let paths = [root.clone(), loose];
        settle(tmp.path());
        let first = share(&paths);
        assert_eq!(first.bytes_hashed, first.manifest.total_size());
        assert_eq!(first.hashed.len(), first.manifest.files().len());

        // Unchanged: nothing read, the same manifest.
        let again = share(&paths);
        assert_eq!(again.bytes_hashed, 0);
        assert!(again.hashed.is_empty());
        assert_eq!(again.manifest.encode(), first.manifest.encode());

        // New content of the same size: its change time moved, it is hashed again; it is fresh
        // (in the racy window), so it is not cached yet.
        let big = root.join("big.mov");
        let size = fs::metadata(&big).expect("meta").len();
        write(&big, &data(size as usize, 42));
        let edited = share(&paths);
        assert_eq!(edited.bytes_hashed, size);
        assert!(
            edited.hashed.is_empty(),
            "a file changed just now is not cached"
        );
        assert_ne!(edited.manifest.content_id(), first.manifest.content_id());
        let expected = blake3::hash(&fs::read(&big).expect("read"));
        let k = edited
            .manifest
            .files()
            .iter()
            .position(|f| f.path.as_str() == "Fotos/big.mov")
            .expect("big");
        assert_eq!(edited.manifest.files()[k].hash, *expected.as_bytes());

        // Its change time set back to what the cache holds: its status change time moved, so it is
        // hashed again (and cached, now settled), then no longer read.
        settle(&big);
        assert_eq!(share(&paths).bytes_hashed, size);
        let settled = share(&paths);
        assert_eq!(settled.bytes_hashed, 0);
        assert_eq!(settled.manifest.encode(), edited.manifest.encode());

        // Another file put in its place with the same size and change time: a new inode.
        let other = tmp.path().join("other");
        write(&other, &data(size as usize, 44));
        settle(&other);
        fs::rename(&other, &big).expect("rename");
        let replaced = share(&paths);
        assert_eq!(replaced.bytes_hashed, size);
        assert_ne!(
            replaced.manifest.content_id(),
            settled.manifest.content_id()
        );

        // Another chunk size is another entry.
        let options = BuildOptions {
            chunk_size: Some(MIN_CHUNK_SIZE * 2),
            threads: Some(2),
            cache: Some(&lookup),
        };
        let wider = build_with(&paths, options).expect("build");
        assert_eq!(wider.bytes_hashed, wider.manifest.total_size());
    }

    #[test]
    fn a_file_that_shrank_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("f");
        write(&file, &data(100_000, 5));
        let mut found = Vec::new();
        let mut dirs = Vec::new();
        add_root(&file, &mut found, &mut dirs).expect("walk");
        fs::write(&file, b"short").expect("write");
        let units = [Unit { file: 0, index: 1 }];
        let err = hash_files(&found, &units, MIN_CHUNK_SIZE, 2).expect_err("shrank");
        assert!(matches!(err, ManifestError::FileChanged { .. }), "{err:?}");
    }
}
