//! The manifest of a share: its files and empty folders, a chunk size and a BLAKE3 hash per chunk
//! that merges into the file's hash ([`super::tree`]).
//!
//! Chunks are cut per file: file `k` has `ceil(size / chunk_size)` chunks (an empty file has none)
//! and chunks are numbered globally in file order, so chunk `i` is found by a binary search over
//! the first chunk of each file (computed after decoding, never stored).
//!
//! ## Encoding (version 2)
//! One version byte, then [postcard](https://docs.rs/postcard) of
//! `{ chunk_size: u32, files: [{ path: [str], size: u64, hash: [u8; 32] }], dirs: [[str]],
//! chunks: [[u8; 32]] }`. The encoding is canonical (files and folders sorted by path, component by
//! component; minimal varints), so one share has exactly one content id: the BLAKE3 hash of the
//! encoding ([`ContentId`]).
//!
//! ## Decoding trusts nothing
//! [`Manifest::decode`] checks the version, the encoded size ([`MAX_ENCODED_LEN`]), the number of
//! files and folders ([`MAX_FILES`], [`MAX_DIRS`]) before allocating for them, every path (see
//! [`super::paths`]), that no path appears twice and no file is also a folder of another entry,
//! the chunk size, that the chunk hashes match the file sizes and add up to each file's hash. Paths are kept as one string
//! each, so memory stays within a small multiple of the input.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::content_id::ContentId;
use super::paths::{PathError, RelPath};
use super::tree;

/// The manifest encoding this code writes and reads.
pub const VERSION: u8 = 2;

/// The smallest chunk size accepted (only forced sizes go below [`AUTO_MIN_CHUNK_SIZE`]).
pub const MIN_CHUNK_SIZE: u32 = 16 * 1024;

/// The smallest chunk size chosen automatically.
pub const AUTO_MIN_CHUNK_SIZE: u32 = 256 * 1024;

/// The largest chunk size; also bounds what a receiver may have to fetch twice after a crash.
pub const MAX_CHUNK_SIZE: u32 = 4 * 1024 * 1024;

/// How many chunks the automatic chunk size aims at for a whole share.
pub const TARGET_CHUNKS: u64 = 4096;

/// The most files a manifest may list.
pub const MAX_FILES: u64 = 1_000_000;

/// The most empty folders a manifest may list.
pub const MAX_DIRS: u64 = 1_000_000;

/// The largest encoded manifest accepted, in bytes.
pub const MAX_ENCODED_LEN: usize = 64 * 1024 * 1024;

/// A BLAKE3 hash.
pub type Hash = [u8; 32];

/// Encoded size of the smallest possible file entry: one 1-byte component, size, hash.
const MIN_FILE_ENCODED: usize = 1 + 2 + 1 + 32;

/// The chunk size for a share of `total_size` bytes: `total_size / 4096` ([`TARGET_CHUNKS`])
/// rounded up to a power of two, clamped to 256 KiB ..= 4 MiB. So a share up to 1 GiB uses 256 KiB
/// chunks, 4 GiB uses 1 MiB (libtorrent's rule of thumb for multi-GB content), and from 16 GiB on
/// 4 MiB chunks keep the manifest at 8 KiB of hashes per GiB (50 GB: about 400 KiB).
pub fn chunk_size_for(total_size: u64) -> u32 {
    let target = total_size
        .div_ceil(TARGET_CHUNKS)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX)
        .clamp(u64::from(AUTO_MIN_CHUNK_SIZE), u64::from(MAX_CHUNK_SIZE));
    u32::try_from(target).unwrap_or(MAX_CHUNK_SIZE)
}

/// Whether `chunk_size` is a power of two in [`MIN_CHUNK_SIZE`] ..= [`MAX_CHUNK_SIZE`].
pub fn is_valid_chunk_size(chunk_size: u64) -> bool {
    chunk_size.is_power_of_two()
        && (u64::from(MIN_CHUNK_SIZE)..=u64::from(MAX_CHUNK_SIZE)).contains(&chunk_size)
}

/// One file of a share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    /// Where it goes, relative to the destination.
    pub path: RelPath,
    /// Its size in bytes.
    pub size: u64,
    /// The BLAKE3 hash of the whole file.
    pub hash: Hash,
}

/// Where one chunk lives and how to check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    /// The global chunk number.
    pub index: u64,
    /// The index of its file in [`Manifest::files`].
    pub file: usize,
    /// Its offset in the file.
    pub offset: u64,
    /// Its length (the chunk size, or less for the last chunk of a file).
    pub len: u32,
    /// Its hash: see [`super::tree`].
    pub hash: Hash,
    /// True when the chunk is its whole file (so its hash is the file's hash).
    pub whole_file: bool,
}

impl ChunkRef {
    /// Whether `data` is this chunk: right length and right hash.
    pub fn verify(&self, data: &[u8]) -> bool {
        data.len() == self.len as usize
            && blake3::Hash::from(tree::chunk_hash(data, self.offset, self.whole_file))
                == blake3::Hash::from(self.hash)
    }
}

/// What is wrong with a manifest, or why one could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A file or folder to share could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A name to share is not valid UTF-8.
    #[error("{path}: the name is not valid UTF-8; rename it to share it")]
    NonUtf8Name {
        /// The file or folder.
        path: std::path::PathBuf,
    },
    /// A name to share cannot be written on every platform.
    #[error("{path}: cannot be shared as is ({reason}); rename it to share it")]
    UnportableName {
        /// The file or folder.
        path: std::path::PathBuf,
        /// Which rule it breaks.
        reason: PathError,
    },
    /// A path given to share has no name of its own (such as `/`).
    #[error("{path}: has no name to share it under; give a folder or file inside it")]
    NoName {
        /// The path.
        path: std::path::PathBuf,
    },
    /// A file changed size while it was hashed.
    #[error("{path}: the file changed while it was read ({expected} bytes expected); try again")]
    FileChanged {
        /// The file.
        path: std::path::PathBuf,
        /// The size it had when listed.
        expected: u64,
    },
    /// The share has no file and no folder.
    #[error("the share is empty: nothing to share")]
    Empty,
    /// The encoded manifest is larger than [`MAX_ENCODED_LEN`].
    #[error("the manifest is {len} bytes, at most {MAX_ENCODED_LEN} are accepted")]
    TooLarge {
        /// Its size.
        len: usize,
    },
    /// The encoding has a version this code does not read.
    #[error("unsupported manifest version {version} (this meshdrop reads version {VERSION})")]
    UnsupportedVersion {
        /// The version found.
        version: u8,
    },
    /// The encoding ends too early.
    #[error("the manifest is truncated")]
    Truncated,
    /// The encoding is not a valid manifest.
    #[error("malformed manifest: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// The chunk size is not a power of two in range.
    #[error(
        "invalid chunk size {chunk_size}: must be a power of two from {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE} bytes"
    )]
    ChunkSize {
        /// The chunk size found.
        chunk_size: u64,
    },
    /// Too many files or folders.
    #[error("the manifest lists {count} {what}, at most {max} are accepted")]
    TooManyEntries {
        /// "files" or "folders".
        what: &'static str,
        /// How many it lists.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// A path is unsafe to write (absolute, `..`, invalid name...).
    #[error("unsafe path {path:?} in manifest: {reason}")]
    UnsafePath {
        /// The path up to the offending component, joined with `/`.
        path: String,
        /// Which rule it breaks.
        reason: PathError,
    },
    /// Two entries have the same path.
    #[error("the path {path:?} appears twice")]
    DuplicatePath {
        /// The path.
        path: String,
    },
    /// A file is also listed as a folder holding other entries.
    #[error("{path:?} is a file but also a folder holding other entries")]
    FileIsFolder {
        /// The path.
        path: String,
    },
    /// Entries are not sorted by path, so the encoding is not canonical.
    #[error("entries are not sorted by path (at {path:?})")]
    Unsorted {
        /// The first path out of order.
        path: String,
    },
    /// The number of chunk hashes does not match the file sizes.
    #[error("the file sizes need {expected} chunks but the manifest has {actual} chunk hashes")]
    ChunkCount {
        /// Chunks needed by the sizes.
        expected: u64,
        /// Hashes present.
        actual: u64,
    },
    /// The chunk hashes of a file do not add up to its hash (see [`super::tree`]).
    #[error("{path:?}: the chunk hashes do not add up to the file hash")]
    FileHash {
        /// The file.
        path: String,
    },
    /// The sizes add up to more than 2^64 bytes.
    #[error("the file sizes add up to more than 2^64 bytes")]
    SizeOverflow,
    /// The bytes decode to a manifest whose canonical encoding differs (an overlong number).
    #[error("the manifest encoding is not canonical")]
    NotCanonical,
    /// The manifest does not hash to the content id it was fetched for.
    #[error("the manifest does not match content id {expected} (it hashes to {actual})")]
    ContentMismatch {
        /// The id asked for.
        expected: ContentId,
        /// The hash of what was received.
        actual: ContentId,
    },
}

/// A checked manifest; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    chunk_size: u32,
    files: Vec<FileEntry>,
    dirs: Vec<RelPath>,
    chunks: Vec<Hash>,
    /// `first_chunk[k]` is the first chunk of file `k`; one more entry holds the chunk count.
    first_chunk: Vec<u64>,
    total_size: u64,
}

/// The encoded layout, borrowed from a [`Manifest`]; decoding is done by hand to check as it reads.
#[derive(Serialize)]
struct Wire<'a> {
    chunk_size: u32,
    files: &'a [FileEntry],
    dirs: &'a [RelPath],
    chunks: &'a [Hash],
}

impl Manifest {
    /// Makes a manifest, checking everything [`Manifest::decode`] checks. `files` and `dirs` must
    /// be sorted by path and `chunks` hold the hashes of the chunks of each file in order.
    pub fn new(
        chunk_size: u32,
        files: Vec<FileEntry>,
        dirs: Vec<RelPath>,
        chunks: Vec<Hash>,
    ) -> Result<Self, ManifestError> {
        if !is_valid_chunk_size(chunk_size.into()) {
            return Err(ManifestError::ChunkSize {
                chunk_size: chunk_size.into(),
            });
        }
        if files.is_empty() && dirs.is_empty() {
            return Err(ManifestError::Empty);
        }
        check_count("files", files.len() as u64, MAX_FILES)?;
        check_count("folders", dirs.len() as u64, MAX_DIRS)?;
        check_sorted(files.iter().map(|f| &f.path))?;
        check_sorted(dirs.iter())?;
        check_no_file_is_folder(&files, &dirs)?;

        let mut first_chunk = Vec::with_capacity(files.len() + 1);
        let mut next: u64 = 0;
        let mut total_size: u64 = 0;
        for file in &files {
            first_chunk.push(next);
            next = next.saturating_add(file.size.div_ceil(chunk_size.into()));
            total_size = total_size
                .checked_add(file.size)
                .ok_or(ManifestError::SizeOverflow)?;
        }
        first_chunk.push(next);
        if next != chunks.len() as u64 {
            return Err(ManifestError::ChunkCount {
                expected: next,
                actual: chunks.len() as u64,
            });
        }
        for (file, range) in files.iter().zip(first_chunk.windows(2)) {
            let hashes = usize::try_from(range[0])
                .ok()
                .zip(usize::try_from(range[1]).ok())
                .and_then(|(a, b)| chunks.get(a..b));
            if hashes.and_then(|h| tree::file_hash(file.size, chunk_size, h)) != Some(file.hash) {
                return Err(ManifestError::FileHash {
                    path: file.path.to_string(),
                });
            }
        }
        Ok(Self {
            chunk_size,
            files,
            dirs,
            chunks,
            first_chunk,
            total_size,
        })
    }

    /// The chunk size in bytes.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// The files, sorted by path.
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// The empty folders, sorted by path.
    pub fn dirs(&self) -> &[RelPath] {
        &self.dirs
    }

    /// The hash of every chunk, in global chunk order.
    pub fn chunk_hashes(&self) -> &[Hash] {
        &self.chunks
    }

    /// The sum of the file sizes.
    pub fn total_size(&self) -> u64 {
        self.total_size
    }

    /// How many chunks the share has.
    pub fn chunk_count(&self) -> u64 {
        self.chunks.len() as u64
    }

    /// The global numbers of the chunks of file `file`: empty for an empty file or an index out
    /// of range.
    pub fn chunks_of(&self, file: usize) -> Range<u64> {
        match (self.first_chunk.get(file), self.first_chunk.get(file + 1)) {
            (Some(&start), Some(&end)) => start..end,
            _ => 0..0,
        }
    }

    /// Chunk number `index`: its file, offset, length and hash; `None` past the last chunk.
    /// O(log files).
    pub fn chunk(&self, index: u64) -> Option<ChunkRef> {
        let hash = *self.chunks.get(usize::try_from(index).ok()?)?;
        // The last file whose first chunk is <= index; empty files before it share its start.
        let file = self.first_chunk.partition_point(|&start| start <= index) - 1;
        let entry = self.files.get(file)?;
        let offset = (index - self.first_chunk[file]) * u64::from(self.chunk_size);
        let len = (entry.size - offset).min(self.chunk_size.into());
        Some(ChunkRef {
            index,
            file,
            offset,
            len: u32::try_from(len).ok()?,
            hash,
            whole_file: entry.size <= u64::from(self.chunk_size),
        })
    }

    /// The canonical encoding: the version byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        let wire = Wire {
            chunk_size: self.chunk_size,
            files: &self.files,
            dirs: &self.dirs,
            chunks: &self.chunks,
        };
        // Serializing these types into a growable vector has no failure case.
        postcard::to_extend(&wire, vec![VERSION]).expect("a manifest always serializes")
    }

    /// The content id: the BLAKE3 hash of [`Manifest::encode`].
    pub fn content_id(&self) -> ContentId {
        ContentId::of(&self.encode())
    }

    /// Decodes and checks a manifest received from anyone; see the module docs.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_ENCODED_LEN {
            return Err(ManifestError::TooLarge { len: bytes.len() });
        }
        let (&version, body) = bytes.split_first().ok_or(ManifestError::Truncated)?;
        if version != VERSION {
            return Err(ManifestError::UnsupportedVersion { version });
        }
        let mut de = postcard::Deserializer::from_bytes(body);
        let chunk_size: u32 = read(&mut de)?;
        if !is_valid_chunk_size(chunk_size.into()) {
            return Err(ManifestError::ChunkSize {
                chunk_size: chunk_size.into(),
            });
        }

        let count = read_count(&mut de, "files", MAX_FILES)?;
        let mut files = Vec::with_capacity(count.min(body.len() / MIN_FILE_ENCODED));
        for _ in 0..count {
            let path = read_path(&mut de)?;
            let size: u64 = read(&mut de)?;
            let hash: Hash = read(&mut de)?;
            files.push(FileEntry { path, size, hash });
        }

        let count = read_count(&mut de, "folders", MAX_DIRS)?;
        // A folder takes at least 3 bytes: a depth, a length and one character.
        let mut dirs = Vec::with_capacity(count.min(body.len() / 3));
        for _ in 0..count {
            dirs.push(read_path(&mut de)?);
        }

        let count: u64 = read(&mut de)?;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let mut chunks = Vec::with_capacity(count.min(body.len() / 32));
        for _ in 0..count {
            chunks.push(read(&mut de)?);
        }

        let rest = de.finalize().map_err(postcard_error)?;
        if !rest.is_empty() {
            return Err(ManifestError::Malformed {
                reason: format!("{} unexpected bytes after the end", rest.len()),
            });
        }
        let manifest = Self::new(chunk_size, files, dirs, chunks)?;
        if manifest.encode() != bytes {
            return Err(ManifestError::NotCanonical);
        }
        Ok(manifest)
    }

    /// Decodes a manifest fetched for `expected`, checking first that it hashes to it.
    pub fn decode_verified(bytes: &[u8], expected: &ContentId) -> Result<Self, ManifestError> {
        let actual = ContentId::of(bytes);
        if actual != *expected {
            return Err(ManifestError::ContentMismatch {
                expected: *expected,
                actual,
            });
        }
        Self::decode(bytes)
    }
}

fn check_count(what: &'static str, count: u64, max: u64) -> Result<(), ManifestError> {
    if count > max {
        return Err(ManifestError::TooManyEntries { what, count, max });
    }
    Ok(())
}

/// Checks that paths are strictly increasing: sorted and without duplicates.
fn check_sorted<'a>(mut paths: impl Iterator<Item = &'a RelPath>) -> Result<(), ManifestError> {
    let Some(mut prev) = paths.next() else {
        return Ok(());
    };
    for path in paths {
        match prev.cmp(path) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => {
                return Err(ManifestError::DuplicatePath {
                    path: path.to_string(),
                });
            }
            std::cmp::Ordering::Greater => {
                return Err(ManifestError::Unsorted {
                    path: path.to_string(),
                });
            }
        }
        prev = path;
    }
    Ok(())
}

/// Checks, over the sorted files and folders merged, that no path appears twice and that no file
/// is the ancestor of another entry. In path order everything inside a folder directly follows
/// it, so comparing neighbours is enough.
fn check_no_file_is_folder(files: &[FileEntry], dirs: &[RelPath]) -> Result<(), ManifestError> {
    let (mut f, mut d) = (0, 0);
    let mut prev: Option<(&RelPath, bool)> = None;
    loop {
        let next = match (files.get(f), dirs.get(d)) {
            (Some(file), Some(dir)) if file.path <= *dir => {
                f += 1;
                (&file.path, true)
            }
            (_, Some(dir)) => {
                d += 1;
                (dir, false)
            }
            (Some(file), None) => {
                f += 1;
                (&file.path, true)
            }
            (None, None) => return Ok(()),
        };
        if let Some((prev_path, prev_is_file)) = prev {
            if prev_path == next.0 {
                return Err(ManifestError::DuplicatePath {
                    path: next.0.to_string(),
                });
            }
            if prev_is_file && prev_path.is_ancestor_of(next.0) {
                return Err(ManifestError::FileIsFolder {
                    path: prev_path.to_string(),
                });
            }
        }
        prev = Some(next);
    }
}

type Input<'de> = postcard::Deserializer<'de, postcard::de_flavors::Slice<'de>>;

fn postcard_error(err: postcard::Error) -> ManifestError {
    match err {
        postcard::Error::DeserializeUnexpectedEnd => ManifestError::Truncated,
        other => ManifestError::Malformed {
            reason: other.to_string(),
        },
    }
}

fn read<'de, T: Deserialize<'de>>(de: &mut Input<'de>) -> Result<T, ManifestError> {
    T::deserialize(de).map_err(postcard_error)
}

/// Reads a sequence length (postcard writes it as a varint, like a `u64`) and checks its limit.
fn read_count(de: &mut Input<'_>, what: &'static str, max: u64) -> Result<usize, ManifestError> {
    let count: u64 = read(de)?;
    check_count(what, count, max)?;
    usize::try_from(count).map_err(|_| ManifestError::TooManyEntries { what, count, max })
}

/// Reads a path component by component, checking each before keeping it.
fn read_path(de: &mut Input<'_>) -> Result<RelPath, ManifestError> {
    let depth: u64 = read(de)?;
    let mut builder = RelPath::builder();
    if depth > super::paths::MAX_DEPTH as u64 {
        return Err(ManifestError::UnsafePath {
            path: String::new(),
            reason: PathError::TooDeep {
                depth: usize::try_from(depth).unwrap_or(usize::MAX),
            },
        });
    }
    for _ in 0..depth {
        let component: &str = read(de)?;
        builder
            .push(component)
            .map_err(|reason| ManifestError::UnsafePath {
                path: if builder.so_far().is_empty() {
                    component.to_owned()
                } else {
                    format!("{}/{component}", builder.so_far())
                },
                reason,
            })?;
    }
    builder
        .finish()
        .map_err(|reason| ManifestError::UnsafePath {
            path: String::new(),
            reason,
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The wire layout with raw, unchecked paths, to hand-craft malicious manifests.
    #[derive(Serialize)]
    pub(crate) struct RawManifest {
        pub chunk_size: u32,
        pub files: Vec<RawFile>,
        pub dirs: Vec<Vec<String>>,
        pub chunks: Vec<Hash>,
    }

    #[derive(Serialize)]
    pub(crate) struct RawFile {
        pub path: Vec<String>,
        pub size: u64,
        pub hash: Hash,
    }

    impl RawManifest {
        pub(crate) fn encode(&self) -> Vec<u8> {
            postcard::to_extend(self, vec![VERSION]).expect("serializes")
        }
    }

    pub(crate) fn raw_file(path: &[&str], size: u64) -> RawFile {
        RawFile {
            path: path.iter().map(|c| (*c).to_owned()).collect(),
            size,
            hash: [7; 32],
        }
    }

    fn raw(mut files: Vec<RawFile>, dirs: &[&[&str]]) -> RawManifest {
        let chunk_size = MIN_CHUNK_SIZE;
        let chunks = files
            .iter()
            .map(|f| f.size.div_ceil(chunk_size.into()))
            .fold(0u64, u64::saturating_add)
            .min(10_000);
        let hashes: Vec<Hash> = (0..chunks).map(|i| [i as u8; 32]).collect();
        // Consistent file hashes where the sizes fit the chunks, so only the flaw under test shows.
        let mut next = 0usize;
        for f in &mut files {
            let n = f.size.div_ceil(chunk_size.into()) as usize;
            if let Some(h) = hashes
                .get(next..next.saturating_add(n))
                .and_then(|h| tree::file_hash(f.size, chunk_size, h))
            {
                f.hash = h;
            }
            next = next.saturating_add(n);
        }
        RawManifest {
            chunk_size,
            files,
            dirs: dirs
                .iter()
                .map(|d| d.iter().map(|c| (*c).to_owned()).collect())
                .collect(),
            chunks: hashes,
        }
    }

    fn path(components: &[&str]) -> RelPath {
        RelPath::new(components).expect("valid path")
    }

    fn entry(components: &[&str], size: u64) -> FileEntry {
        FileEntry {
            path: path(components),
            size,
            hash: [1; 32],
        }
    }

    /// Files of 0, 1, exactly 2 chunks, 2 chunks + 1 byte and one in between empty ones.
    fn sample() -> Manifest {
        let cs = u64::from(MIN_CHUNK_SIZE);
        let files = vec![
            entry(&["a", "empty"], 0),
            entry(&["a", "one"], 1),
            entry(&["a", "two"], 2 * cs),
            entry(&["b"], 2 * cs + 1),
            entry(&["c"], 0),
            entry(&["d"], 5),
        ];
        let chunks: Vec<Hash> = (0..7u8).map(|i| [i; 32]).collect();
        let mut files = files;
        tree::fill_file_hashes(MIN_CHUNK_SIZE, &mut files, &chunks);
        Manifest::new(
            MIN_CHUNK_SIZE,
            files,
            vec![path(&["e", "empty dir"])],
            chunks,
        )
        .expect("valid manifest")
    }

    #[test]
    fn chunk_size_rule() {
        const KIB: u64 = 1024;
        const MIB: u64 = 1024 * KIB;
        const GIB: u64 = 1024 * MIB;
        assert_eq!(chunk_size_for(0), AUTO_MIN_CHUNK_SIZE);
        assert_eq!(chunk_size_for(10 * MIB), AUTO_MIN_CHUNK_SIZE);
        assert_eq!(chunk_size_for(GIB), 256 * 1024);
        assert_eq!(chunk_size_for(GIB + 1), 512 * 1024);
        assert_eq!(chunk_size_for(4 * GIB), 1024 * 1024);
        assert_eq!(chunk_size_for(8 * GIB), 2 * 1024 * 1024);
        assert_eq!(chunk_size_for(50 * GIB), MAX_CHUNK_SIZE);
        assert_eq!(chunk_size_for(u64::MAX), MAX_CHUNK_SIZE);
        for total in [0, 1, 12_345_678, 3 * GIB, 70 * GIB, u64::MAX / 3] {
            assert!(is_valid_chunk_size(chunk_size_for(total).into()));
        }
        assert!(!is_valid_chunk_size(0));
        assert!(!is_valid_chunk_size(MIN_CHUNK_SIZE as u64 / 2));
        assert!(!is_valid_chunk_size(MAX_CHUNK_SIZE as u64 * 2));
        assert!(!is_valid_chunk_size(300_000));
    }

    #[test]
    fn chunk_lookup_at_boundaries() {
        let m = sample();
        let cs = MIN_CHUNK_SIZE;
        assert_eq!(m.chunk_count(), 7);
        assert_eq!(m.total_size(), 1 + 4 * u64::from(cs) + 1 + 5);
        assert_eq!(m.chunks_of(0), 0..0);
        assert_eq!(m.chunks_of(1), 0..1);
        assert_eq!(m.chunks_of(2), 1..3);
        assert_eq!(m.chunks_of(3), 3..6);
        assert_eq!(m.chunks_of(4), 6..6);
        assert_eq!(m.chunks_of(5), 6..7);
        assert_eq!(m.chunks_of(6), 0..0);
        let expect = [
            (0, 1, 0, 1),
            (1, 2, 0, cs),
            (2, 2, u64::from(cs), cs),
            (3, 3, 0, cs),
            (4, 3, u64::from(cs), cs),
            (5, 3, 2 * u64::from(cs), 1),
            (6, 5, 0, 5),
        ];
        for (index, file, offset, len) in expect {
            let chunk = m.chunk(index).expect("in range");
            assert_eq!(
                chunk,
                ChunkRef {
                    index,
                    file,
                    offset,
                    len,
                    hash: [index as u8; 32],
                    whole_file: file != 2 && file != 3,
                }
            );
        }
        assert_eq!(m.chunk(7), None);
        assert_eq!(m.chunk(u64::MAX), None);
        // Every chunk lies inside its file and the chunks of a file tile it exactly.
        for (k, file) in m.files().iter().enumerate() {
            let mut end = 0;
            for i in m.chunks_of(k) {
                let c = m.chunk(i).expect("in range");
                assert_eq!((c.file, c.offset), (k, end));
                end += u64::from(c.len);
            }
            assert_eq!(end, file.size);
        }
    }

    #[test]
    fn chunk_verify() {
        let data = b"hello chunk";
        let c = ChunkRef {
            index: 0,
            file: 0,
            offset: 0,
            len: data.len() as u32,
            hash: *blake3::hash(data).as_bytes(),
            whole_file: true,
        };
        assert!(c.verify(data));
        assert!(!c.verify(b"hello chunK"));
        assert!(!c.verify(b"hello chun"));
    }

    #[test]
    fn encode_decode_round_trip_and_stable_id() {
        let m = sample();
        let bytes = m.encode();
        assert_eq!(bytes[0], VERSION);
        let back = Manifest::decode(&bytes).expect("decodes");
        assert_eq!(back, m);
        assert_eq!(back.encode(), bytes);
        assert_eq!(back.content_id(), m.content_id());
        assert_eq!(m.content_id(), ContentId::of(&bytes));
        assert_eq!(
            Manifest::decode_verified(&bytes, &m.content_id()).expect("verified"),
            m
        );
        let other = ContentId::of(b"something else");
        assert!(matches!(
            Manifest::decode_verified(&bytes, &other),
            Err(ManifestError::ContentMismatch { .. })
        ));
        // The raw layout used by the malicious tests is the same encoding.
        let raw_same = RawManifest {
            chunk_size: m.chunk_size(),
            files: m
                .files()
                .iter()
                .map(|f| RawFile {
                    path: f.path.to_vec(),
                    size: f.size,
                    hash: f.hash,
                })
                .collect(),
            dirs: m.dirs().iter().map(RelPath::to_vec).collect(),
            chunks: m.chunk_hashes().to_vec(),
        };
        assert_eq!(raw_same.encode(), bytes);
    }

    fn decode_err(raw: &RawManifest) -> ManifestError {
        match Manifest::decode(&raw.encode()) {
            Ok(m) => panic!("accepted a bad manifest: {m:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn rejects_path_traversal_and_absolute_paths() {
        let cases: &[(&[&str], &str)] = &[
            (&["..", "etc", "passwd"], "\"..\" is not allowed"),
            (&["ok", "..", "..", "x"], "\"..\" is not allowed"),
            (&["", "etc", "passwd"], "absolute paths are not allowed"),
            (&["/etc/passwd"], "forbidden character '/'"),
            (&["a", "b/../../c"], "forbidden character '/'"),
            (&["a", "x\0y"], "NUL character"),
            (&["a", ""], "empty path component"),
        ];
        for (components, message) in cases {
            let err = decode_err(&raw(vec![raw_file(components, 1)], &[]));
            assert!(
                matches!(err, ManifestError::UnsafePath { .. }),
                "{components:?}: {err:?}"
            );
            let text = err.to_string();
            assert!(text.contains(message), "{components:?}: {text}");
            assert!(text.starts_with("unsafe path"), "{text}");
            // The same path as an empty folder is rejected too.
            let err = decode_err(&raw(vec![], &[components]));
            assert!(matches!(err, ManifestError::UnsafePath { .. }), "{err:?}");
        }
        let err = decode_err(&raw(vec![raw_file(&["..", "etc", "passwd"], 1)], &[]));
        assert_eq!(
            err.to_string(),
            "unsafe path \"..\" in manifest: \"..\" is not allowed as a path component"
        );
        let err = decode_err(&raw(vec![raw_file(&["ok", "..", "x"], 1)], &[]));
        assert_eq!(
            err.to_string(),
            "unsafe path \"ok/..\" in manifest: \"..\" is not allowed as a path component"
        );
        let deep: Vec<&str> = vec!["d"; 65];
        let err = decode_err(&raw(vec![raw_file(&deep, 1)], &[]));
        assert!(err.to_string().contains("65 levels deep"), "{err}");
        let err = decode_err(&raw(vec![raw_file(&[], 1)], &[]));
        assert!(err.to_string().contains("the path is empty"), "{err}");
    }

    #[test]
    fn rejects_duplicates_conflicts_and_disorder() {
        let err = decode_err(&raw(vec![raw_file(&["a"], 1), raw_file(&["a"], 2)], &[]));
        assert_eq!(err.to_string(), "the path \"a\" appears twice");
        let err = decode_err(&raw(vec![raw_file(&["a"], 1)], &[&["a"]]));
        assert_eq!(err.to_string(), "the path \"a\" appears twice");
        let err = decode_err(&raw(vec![], &[&["x"], &["x"]]));
        assert!(matches!(err, ManifestError::DuplicatePath { .. }));
        let err = decode_err(&raw(
            vec![raw_file(&["a"], 1), raw_file(&["a", "b"], 1)],
            &[],
        ));
        assert_eq!(
            err.to_string(),
            "\"a\" is a file but also a folder holding other entries"
        );
        let err = decode_err(&raw(vec![raw_file(&["a"], 1)], &[&["a", "sub"]]));
        assert!(matches!(err, ManifestError::FileIsFolder { .. }), "{err:?}");
        // The conflict is found even with entries sorted in between.
        let err = decode_err(&raw(
            vec![
                raw_file(&["a"], 1),
                raw_file(&["a", "0"], 1),
                raw_file(&["a", "z"], 1),
            ],
            &[],
        ));
        assert!(matches!(err, ManifestError::FileIsFolder { .. }), "{err:?}");
        let err = decode_err(&raw(vec![raw_file(&["b"], 1), raw_file(&["a"], 1)], &[]));
        assert_eq!(err.to_string(), "entries are not sorted by path (at \"a\")");
        // A folder listed beside files inside it is redundant but harmless.
        let ok = raw(vec![raw_file(&["a", "b"], 1)], &[&["a"]]);
        assert!(Manifest::decode(&ok.encode()).is_ok());
    }

    #[test]
    fn rejects_inconsistent_sizes_and_limits() {
        let mut r = raw(vec![raw_file(&["a"], 40_000)], &[]);
        r.chunks.pop();
        let err = decode_err(&r);
        assert_eq!(
            err.to_string(),
            "the file sizes need 3 chunks but the manifest has 2 chunk hashes"
        );
        let mut r = raw(vec![raw_file(&["a"], u64::MAX)], &[]);
        r.chunks.clear();
        assert!(matches!(decode_err(&r), ManifestError::ChunkCount { .. }));
        let mut r = raw(vec![raw_file(&["a"], 1), raw_file(&["b"], 1)], &[]);
        r.files[0].size = u64::MAX - 1;
        let cs = u64::from(r.chunk_size);
        let needed = (u64::MAX - 1).div_ceil(cs) + 1;
        assert!(matches!(
            decode_err(&r),
            ManifestError::ChunkCount { expected, .. } if expected == needed
        ));
        r.files[0].size = u64::MAX;
        assert!(matches!(decode_err(&r), ManifestError::SizeOverflow));
        for chunk_size in [0, 1000, MIN_CHUNK_SIZE / 2, MAX_CHUNK_SIZE * 2, 300_000] {
            let mut r = raw(vec![], &[&["d"]]);
            r.chunk_size = chunk_size;
            let err = decode_err(&r);
            assert!(matches!(err, ManifestError::ChunkSize { .. }), "{err:?}");
            assert!(err.to_string().contains("power of two"));
        }
        let err = decode_err(&raw(vec![], &[]));
        assert_eq!(err.to_string(), "the share is empty: nothing to share");

        // A count claiming ten million files is refused before anything is allocated for it.
        let mut bytes = vec![VERSION];
        bytes.extend(postcard::to_allocvec(&MIN_CHUNK_SIZE).expect("ser"));
        bytes.extend(postcard::to_allocvec(&10_000_000u64).expect("ser"));
        let err = Manifest::decode(&bytes).expect_err("too many");
        assert_eq!(
            err.to_string(),
            "the manifest lists 10000000 files, at most 1000000 are accepted"
        );
        let mut bytes = vec![VERSION];
        bytes.extend(postcard::to_allocvec(&MIN_CHUNK_SIZE).expect("ser"));
        bytes.extend(postcard::to_allocvec(&0u64).expect("ser"));
        bytes.extend(postcard::to_allocvec(&u64::MAX).expect("ser"));
        assert!(matches!(
            Manifest::decode(&bytes),
            Err(ManifestError::TooManyEntries {
                what: "folders",
                ..
            })
        ));
        // Huge chunk and component counts simply run out of input.
        let mut bytes = vec![VERSION];
        for n in [u64::from(MIN_CHUNK_SIZE), 0, 0, u64::MAX] {
            bytes.extend(postcard::to_allocvec(&n).expect("ser"));
        }
        assert!(matches!(
            Manifest::decode(&bytes),
            Err(ManifestError::Truncated)
        ));
        let too_big = vec![VERSION; MAX_ENCODED_LEN + 1];
        assert!(matches!(
            Manifest::decode(&too_big),
            Err(ManifestError::TooLarge { .. })
        ));
    }

    #[test]
    fn rejects_chunk_hashes_that_do_not_add_up_to_the_file_hash() {
        let mut r = raw(
            vec![
                raw_file(&["a"], 3 * u64::from(MIN_CHUNK_SIZE)),
                raw_file(&["b"], 9),
            ],
            &[],
        );
        assert!(Manifest::decode(&r.encode()).is_ok());
        r.chunks[1][0] ^= 1;
        let err = decode_err(&r);
        assert_eq!(
            err.to_string(),
            "\"a\": the chunk hashes do not add up to the file hash"
        );
        // A one-chunk file's chunk hash is its file hash.
        let mut r = raw(vec![raw_file(&["b"], 9)], &[]);
        r.files[0].hash[0] ^= 1;
        assert!(matches!(decode_err(&r), ManifestError::FileHash { .. }));
    }

    #[test]
    fn rejects_bad_framing() {
        assert!(matches!(
            Manifest::decode(&[]),
            Err(ManifestError::Truncated)
        ));
        let mut bytes = sample().encode();
        bytes[0] = 3;
        assert_eq!(
            Manifest::decode(&bytes).expect_err("version").to_string(),
            "unsupported manifest version 3 (this meshdrop reads version 2)"
        );
        let bytes = sample().encode();
        for cut in [1, 2, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                matches!(
                    Manifest::decode(&bytes[..cut]),
                    Err(ManifestError::Truncated)
                ),
                "cut at {cut}"
            );
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(matches!(
            Manifest::decode(&extra),
            Err(ManifestError::Malformed { .. })
        ));
        // An overlong varint (chunk size 16384 written in 4 bytes instead of 3).
        let mut overlong = vec![VERSION, 0x80, 0x80, 0x81, 0x00];
        overlong.extend_from_slice(&bytes[4..]);
        assert!(matches!(
            Manifest::decode(&overlong),
            Err(ManifestError::NotCanonical)
        ));
        let mut bad_utf8 = raw(vec![raw_file(&["ab"], 1)], &[]).encode();
        let at = bad_utf8
            .windows(2)
            .position(|w| w == b"ab")
            .expect("name present");
        bad_utf8[at] = 0xff;
        assert!(matches!(
            Manifest::decode(&bad_utf8),
            Err(ManifestError::Malformed { .. })
        ));
    }
}
