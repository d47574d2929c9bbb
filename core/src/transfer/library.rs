//! The shares this node can serve right now: complete shares read from their source files, and
//! downloads in progress, served chunk by chunk as each one verifies (seed while downloading).

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use super::{ContentId, Manifest};

/// One share known to the library.
pub struct Content {
    /// The share's id.
    pub id: ContentId,
    /// Its manifest.
    pub manifest: Arc<Manifest>,
    /// The encoded manifest, as served.
    pub encoded: Arc<Vec<u8>>,
    /// Where each file's bytes are read from (a source file, a `.part` file, or the final file).
    locations: RwLock<Vec<PathBuf>>,
    /// Which chunks are verified and may be served; `None` when all are.
    have: Mutex<Option<Vec<u8>>>,
    /// Bumped whenever chunks become servable, so sessions can announce them.
    gained: tokio::sync::watch::Sender<u64>,
    /// Which chunks were uploaded at least once, and how many.
    served: Mutex<(Vec<u8>, u64)>,
}

impl Content {
    /// A complete share read from `sources` (one path per manifest file).
    pub fn complete(manifest: Arc<Manifest>, encoded: Arc<Vec<u8>>, sources: Vec<PathBuf>) -> Self {
        Self {
            id: ContentId::of(&encoded),
            manifest,
            encoded,
            locations: RwLock::new(sources),
            have: Mutex::new(None),
            gained: tokio::sync::watch::Sender::new(0),
            served: Mutex::default(),
        }
    }

    /// A share being downloaded, with no chunk yet servable.
    pub fn partial(
        manifest: Arc<Manifest>,
        encoded: Arc<Vec<u8>>,
        locations: Vec<PathBuf>,
    ) -> Self {
        let bytes = usize::try_from(manifest.chunk_count().div_ceil(8)).unwrap_or(0);
        Self {
            id: ContentId::of(&encoded),
            manifest,
            encoded,
            locations: RwLock::new(locations),
            have: Mutex::new(Some(vec![0; bytes])),
            gained: tokio::sync::watch::Sender::new(0),
            served: Mutex::default(),
        }
    }

    /// Whether chunk `index` can be served.
    pub fn has(&self, index: u64) -> bool {
        match &*self.have.lock().unwrap_or_else(|p| p.into_inner()) {
            None => index < self.manifest.chunk_count(),
            Some(bits) => super::wire::has_bit(bits, index),
        }
    }

    /// Marks chunks as verified and servable.
    pub fn add(&self, chunks: &[u64]) {
        if let Some(bits) = &mut *self.have.lock().unwrap_or_else(|p| p.into_inner()) {
            for &i in chunks {
                if let Some(b) = usize::try_from(i / 8).ok().and_then(|i| bits.get_mut(i)) {
                    *b |= 1 << (i % 8);
                }
            }
        }
        self.gained.send_modify(|n| *n += 1);
    }

    /// Marks every chunk servable.
    pub fn set_complete(&self) {
        *self.have.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.gained.send_modify(|n| *n += 1);
    }

    /// Records that chunk `index` was uploaded; true when that made every chunk uploaded at
    /// least once.
    pub fn mark_served(&self, index: u64) -> bool {
        let count = self.manifest.chunk_count();
        let mut served = self.served.lock().unwrap_or_else(|p| p.into_inner());
        let (bits, distinct) = &mut *served;
        bits.resize(usize::try_from(count.div_ceil(8)).unwrap_or(0), 0);
        match usize::try_from(index / 8)
            .ok()
            .and_then(|i| bits.get_mut(i))
        {
            Some(b) if *b & (1 << (index % 8)) == 0 => {
                *b |= 1 << (index % 8);
                *distinct += 1;
                *distinct == count
            }
            _ => false,
        }
    }

    /// Changes whenever chunks become servable.
    pub fn gains(&self) -> tokio::sync::watch::Receiver<u64> {
        self.gained.subscribe()
    }

    /// Chunks servable now that are not in `announced` (a bitfield), which is updated to match.
    pub fn gained_since(&self, announced: &mut Vec<u8>) -> Vec<u64> {
        let count = self.manifest.chunk_count();
        let have = self.have.lock().unwrap_or_else(|p| p.into_inner());
        announced.resize(usize::try_from(count.div_ceil(8)).unwrap_or(0), 0);
        let mut new = Vec::new();
        for (byte, seen) in announced.iter_mut().enumerate() {
            let now = match &*have {
                None => 0xff,
                Some(bits) => bits.get(byte).copied().unwrap_or(0),
            };
            let fresh = now & !*seen;
            if fresh == 0 {
                continue;
            }
            *seen |= fresh;
            for bit in 0..8u64 {
                let index = byte as u64 * 8 + bit;
                if fresh & (1 << bit) != 0 && index < count {
                    new.push(index);
                }
            }
        }
        new
    }

    /// `(complete, bitfield)` as announced to a downloader.
    pub fn availability(&self) -> (bool, Vec<u8>) {
        match &*self.have.lock().unwrap_or_else(|p| p.into_inner()) {
            None => (true, Vec::new()),
            Some(bits) => (false, bits.clone()),
        }
    }

    /// Moves where file `file` is read from (a `.part` renamed into place).
    pub fn relocate(&self, file: usize, path: PathBuf) {
        let mut locations = self.locations.write().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = locations.get_mut(file) {
            *slot = path;
        }
    }

    /// Opens file `file` for reading.
    pub fn open(&self, file: usize) -> std::io::Result<File> {
        let path = self
            .locations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(file)
            .cloned()
            .ok_or_else(|| std::io::Error::other("no such file in the share"))?;
        File::open(path)
    }
}

/// Every share this node serves, by content id.
#[derive(Default)]
pub struct Library {
    contents: Mutex<HashMap<ContentId, Arc<Content>>>,
}

impl Library {
    /// Adds (or replaces) a share.
    pub fn insert(&self, content: Arc<Content>) {
        self.lock().insert(content.id, content);
    }

    /// The share with this id.
    pub fn get(&self, id: &ContentId) -> Option<Arc<Content>> {
        self.lock().get(id).cloned()
    }

    /// Stops serving a share.
    pub fn remove(&self, id: &ContentId) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ContentId, Arc<Content>>> {
        self.contents.lock().unwrap_or_else(|p| p.into_inner())
    }
}
