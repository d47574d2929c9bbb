//! Chunk hashes that add up to the file hash, using BLAKE3's own tree.
//!
//! A chunk of a file with several chunks is hashed as the BLAKE3 subtree it is in the whole file
//! (its *chaining value* at its offset), so the chunk hashes of a file merge into the file's plain
//! BLAKE3 hash. The manifest checks that merge when it is decoded; from then on a file whose
//! chunks each verified is the file, and nothing has to be read back to check it. A file of one
//! chunk is its own root: its chunk hash is its BLAKE3 hash. Chunk sizes are powers of two of at
//! least 16 KiB, so every chunk is a whole BLAKE3 subtree.

use blake3::hazmat::{
    HasherExt, Mode, left_subtree_len, merge_subtrees_non_root, merge_subtrees_root,
};

use super::manifest::Hash;

/// The hash of one chunk: `data` at byte `offset` of its file. `whole_file` is true when the file
/// is this one chunk.
pub fn chunk_hash(data: &[u8], offset: u64, whole_file: bool) -> Hash {
    if whole_file || data.is_empty() {
        return *blake3::hash(data).as_bytes();
    }
    blake3::Hasher::new()
        .set_input_offset(offset)
        .update(data)
        .finalize_non_root()
}

/// [`chunk_hash`] of a chunk fed in pieces, so a chunk is checked without ever being held whole.
pub struct ChunkHasher {
    hasher: blake3::Hasher,
    root: bool,
}

impl ChunkHasher {
    /// For the chunk at byte `offset` of its file; `whole_file` as in [`chunk_hash`].
    pub fn new(offset: u64, whole_file: bool) -> Self {
        let mut hasher = blake3::Hasher::new();
        if !whole_file {
            hasher.set_input_offset(offset);
        }
        Self {
            hasher,
            root: whole_file,
        }
    }

    /// Feeds the next piece of the chunk.
    pub fn update(&mut self, piece: &[u8]) {
        self.hasher.update(piece);
    }

    /// The chunk's hash, as [`chunk_hash`] gives it for the whole chunk.
    pub fn finalize(&self) -> Hash {
        if self.hasher.count() == 0 {
            *blake3::hash(&[]).as_bytes()
        } else if self.root {
            *self.hasher.finalize().as_bytes()
        } else {
            self.hasher.finalize_non_root()
        }
    }
}

/// The BLAKE3 hash of a file of `size` bytes from the hashes of its chunks, or `None` when the
/// number of chunk hashes does not fit the size.
pub fn file_hash(size: u64, chunk_size: u32, chunks: &[Hash]) -> Option<Hash> {
    let chunk_size = u64::from(chunk_size);
    if chunks.len() as u64 != size.div_ceil(chunk_size) {
        return None;
    }
    match chunks {
        [] => Some(*blake3::hash(&[]).as_bytes()),
        [only] => Some(*only),
        _ => {
            let left = left_subtree_len(size);
            let split = usize::try_from(left / chunk_size).ok()?;
            let (l, r) = chunks.split_at(split);
            let l = subtree(left, chunk_size, l)?;
            let r = subtree(size - left, chunk_size, r)?;
            Some(*merge_subtrees_root(&l, &r, Mode::Hash).as_bytes())
        }
    }
}

/// The chaining value of a subtree of `len` bytes made of `chunks` (not the root).
fn subtree(len: u64, chunk_size: u64, chunks: &[Hash]) -> Option<Hash> {
    match chunks {
        [] => None,
        [only] => Some(*only),
        _ => {
            let left = left_subtree_len(len);
            let split = usize::try_from(left / chunk_size).ok()?;
            if split == 0 || split >= chunks.len() {
                return None;
            }
            let (l, r) = chunks.split_at(split);
            let l = subtree(left, chunk_size, l)?;
            let r = subtree(len - left, chunk_size, r)?;
            Some(merge_subtrees_non_root(&l, &r, Mode::Hash))
        }
    }
}

/// Sets each file's hash to what its chunk hashes add up to, for tests that make up hashes.
#[cfg(test)]
pub(crate) fn fill_file_hashes(
    chunk_size: u32,
    files: &mut [super::manifest::FileEntry],
    chunks: &[Hash],
) {
    let mut next = 0usize;
    for f in files {
        let n = f.size.div_ceil(u64::from(chunk_size)) as usize;
        f.hash = file_hash(f.size, chunk_size, &chunks[next..next + n]).expect("counts fit");
        next += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk_hashes(data: &[u8], chunk_size: u32) -> Vec<Hash> {
        let whole = data.len() <= chunk_size as usize;
        data.chunks(chunk_size as usize)
            .enumerate()
            .map(|(i, c)| chunk_hash(c, i as u64 * u64::from(chunk_size), whole))
            .collect()
    }

    #[test]
    fn a_chunk_hashed_in_pieces_has_the_hash_of_the_whole_chunk() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        // A whole file of one chunk, the first and a later chunk of 64 KiB of a larger file.
        for (offset, len, whole) in [
            (0, 100_000, true),
            (0, 65_536, false),
            (65_536, 65_536, false),
        ] {
            let chunk = &data[..len];
            for piece in [1, 1000, 16_384, 100_000] {
                let mut h = ChunkHasher::new(offset, whole);
                chunk.chunks(piece).for_each(|p| h.update(p));
                assert_eq!(
                    h.finalize(),
                    chunk_hash(chunk, offset, whole),
                    "{offset} {piece}"
                );
            }
        }
    }

    #[test]
    fn chunk_hashes_merge_into_the_plain_blake3_hash_for_every_shape() {
        let cs = 16 * 1024u32;
        let data: Vec<u8> = (0..40 * 16 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        // Sizes around every chunk count up to 40 chunks, including exact multiples and 1 byte.
        for chunks in 0..=40usize {
            for delta in [-1i64, 0, 1] {
                let size = (chunks as i64 * i64::from(cs) + delta).clamp(0, data.len() as i64);
                let part = &data[..size as usize];
                let hashes = chunk_hashes(part, cs);
                assert_eq!(
                    file_hash(size as u64, cs, &hashes),
                    Some(*blake3::hash(part).as_bytes()),
                    "size {size}"
                );
            }
        }
    }

    #[test]
    fn a_wrong_chunk_count_or_a_changed_chunk_does_not_give_the_file_hash() {
        let cs = 16 * 1024u32;
        let data = vec![7u8; 3 * cs as usize + 5];
        let mut hashes = chunk_hashes(&data, cs);
        let real = *blake3::hash(&data).as_bytes();
        assert_eq!(file_hash(data.len() as u64, cs, &hashes[..3]), None);
        hashes[1] = chunk_hash(&[8u8; 16 * 1024], u64::from(cs), false);
        assert_ne!(file_hash(data.len() as u64, cs, &hashes), Some(real));
    }

    #[test]
    fn a_chunk_hashed_at_another_offset_differs() {
        let data = [1u8; 16 * 1024];
        assert_ne!(
            chunk_hash(&data, 16 * 1024, false),
            chunk_hash(&data, 32 * 1024, false)
        );
        assert_ne!(chunk_hash(&data, 0, true), chunk_hash(&data, 0, false));
    }
}
