//! The shares this node can serve right now: complete shares read from their source files, and
//! downloads in progress, served chunk by chunk as each one verifies (seed while downloading).
//! A chunk found damaged on disk is no longer servable until it is repaired. A share of files the
//! host opens on demand is read through the host ([`super::source`]).

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use super::bitfield::Bitfield;
use super::source::Hosted;
use super::state::Stamp;
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
    have: Mutex<Option<Bitfield>>,
    /// Bumped whenever chunks become servable, so sessions can announce them.
    gained: tokio::sync::watch::Sender<u64>,
    /// Which chunks were uploaded at least once.
    served: Mutex<Bitfield>,
    /// Each file's size and change time when it was shared (`None`: not known).
    stamps: RwLock<Vec<Option<Stamp>>>,
    /// Chunks held once and found damaged since (until repaired).
    lost: Mutex<std::collections::BTreeSet<u64>>,
    /// Where the bytes come from.
    origin: Origin,
}

/// Where a share's bytes are read from.
enum Origin {
    /// Files on disk, at the locations.
    Disk,
    /// Files the host opens on demand, registered in this run.
    Host(Hosted),
    /// Files the host opened in an earlier run: nothing is served until it shares them again.
    HostGone,
}

impl Content {
    /// A complete share read from `sources` (one path per manifest file).
    pub fn complete(manifest: Arc<Manifest>, encoded: Arc<Vec<u8>>, sources: Vec<PathBuf>) -> Self {
        let chunks = manifest.chunk_count();
        Self {
            id: ContentId::of(&encoded),
            manifest,
            encoded,
            locations: RwLock::new(sources),
            have: Mutex::new(None),
            gained: tokio::sync::watch::Sender::new(0),
            served: Mutex::new(Bitfield::new(chunks)),
            stamps: RwLock::default(),
            lost: Mutex::default(),
            origin: Origin::Disk,
        }
    }

    /// A complete share of files the host opens on demand (each file's location is its name).
    pub(crate) fn hosted(manifest: Arc<Manifest>, encoded: Arc<Vec<u8>>, files: Hosted) -> Self {
        let names = host_names(&manifest);
        Self {
            origin: Origin::Host(files),
            ..Self::complete(manifest, encoded, names)
        }
    }

    /// A share of files the host opened in an earlier run: listed, but nothing is servable.
    pub fn host_gone(manifest: Arc<Manifest>, encoded: Arc<Vec<u8>>) -> Self {
        let names = host_names(&manifest);
        let chunks = manifest.chunk_count();
        Self {
            origin: Origin::HostGone,
            have: Mutex::new(Some(Bitfield::new(chunks))),
            ..Self::complete(manifest, encoded, names)
        }
    }

    /// A share being downloaded, with no chunk yet servable.
    pub fn partial(
        manifest: Arc<Manifest>,
        encoded: Arc<Vec<u8>>,
        locations: Vec<PathBuf>,
    ) -> Self {
        let chunks = manifest.chunk_count();
        Self {
            id: ContentId::of(&encoded),
            manifest,
            encoded,
            locations: RwLock::new(locations),
            have: Mutex::new(Some(Bitfield::new(chunks))),
            gained: tokio::sync::watch::Sender::new(0),
            served: Mutex::new(Bitfield::new(chunks)),
            stamps: RwLock::default(),
            lost: Mutex::default(),
            origin: Origin::Disk,
        }
    }

    /// The host's files this share is read through, when it is one of files the host opens.
    pub(crate) fn host_files(&self) -> Option<&Hosted> {
        match &self.origin {
            Origin::Host(files) => Some(files),
            Origin::Disk | Origin::HostGone => None,
        }
    }

    /// Whether its files can be read now: not when the host opened them in an earlier run.
    pub fn available(&self) -> bool {
        !matches!(self.origin, Origin::HostGone)
    }

    /// Whether the host opens its files (in this run or an earlier one).
    pub fn from_host(&self) -> bool {
        !matches!(self.origin, Origin::Disk)
    }

    /// Whether chunk `index` can be served.
    pub fn has(&self, index: u64) -> bool {
        match &*self.have.lock().unwrap_or_else(|p| p.into_inner()) {
            None => index < self.manifest.chunk_count(),
            Some(bits) => bits.get(index),
        }
    }

    /// Marks chunks as verified and servable.
    pub fn add(&self, chunks: &[u64]) {
        {
            let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
            for i in chunks {
                lost.remove(i);
            }
        }
        let mut have = self.have.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bits) = &mut *have {
            for &i in chunks {
                bits.set(i);
            }
            if bits.count() == bits.len() {
                *have = None;
            }
        }
        drop(have);
        self.gained.send_modify(|n| *n += 1);
    }

    /// Marks chunks as no longer servable (their bytes on disk do not verify any more); returns
    /// those that were servable until now.
    pub fn lose(&self, chunks: &[u64]) -> Vec<u64> {
        let mut have = self.have.lock().unwrap_or_else(|p| p.into_inner());
        let bits = have.get_or_insert_with(|| Bitfield::full(self.manifest.chunk_count()));
        let lost: Vec<u64> = chunks.iter().copied().filter(|&i| bits.clear(i)).collect();
        drop(have);
        self.lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(&lost);
        lost
    }

    /// Whether chunk `index` was servable and found damaged since.
    pub fn is_lost(&self, index: u64) -> bool {
        self.lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&index)
    }

    /// The chunks of file `file` found damaged since they were servable.
    pub fn lost_of(&self, file: usize) -> Vec<u64> {
        let range = self.manifest.chunks_of(file);
        self.lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .range(range)
            .copied()
            .collect()
    }

    /// Where every file is read from.
    pub fn locations(&self) -> Vec<PathBuf> {
        self.locations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records each file's size and change time as shared.
    pub fn set_stamps(&self, stamps: Vec<Option<Stamp>>) {
        *self.stamps.write().unwrap_or_else(|p| p.into_inner()) = stamps;
    }

    /// File `file`'s size and change time as shared, when known.
    pub fn stamp(&self, file: usize) -> Option<Stamp> {
        self.stamps
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(file)
            .copied()
            .flatten()
    }

    /// Where file `file` is read from.
    pub fn location(&self, file: usize) -> Option<PathBuf> {
        self.locations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(file)
            .cloned()
    }

    /// Whether every chunk is servable.
    pub fn is_complete(&self) -> bool {
        self.have
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Marks every chunk servable.
    pub fn set_complete(&self) {
        *self.have.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.gained.send_modify(|n| *n += 1);
    }

    /// Records that chunk `index` was uploaded; true when that made every chunk uploaded at
    /// least once.
    pub fn mark_served(&self, index: u64) -> bool {
        let mut served = self.served.lock().unwrap_or_else(|p| p.into_inner());
        served.set(index) && served.count() == served.len()
    }

    /// Changes whenever chunks become servable.
    pub fn gains(&self) -> tokio::sync::watch::Receiver<u64> {
        self.gained.subscribe()
    }

    /// Chunks servable now that are not in `announced`, which is updated to match.
    pub fn gained_since(&self, announced: &mut Bitfield) -> Vec<u64> {
        match &*self.have.lock().unwrap_or_else(|p| p.into_inner()) {
            None => Bitfield::full(self.manifest.chunk_count()).news_since(announced),
            Some(bits) => bits.news_since(announced),
        }
    }

    /// `(complete, chunks servable)` as announced to a downloader.
    pub fn availability(&self) -> (bool, Bitfield) {
        match &*self.have.lock().unwrap_or_else(|p| p.into_inner()) {
            None => (true, Bitfield::full(self.manifest.chunk_count())),
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

    /// Opens file `file` for reading (on disk: not a file the host opens).
    pub fn open(&self, file: usize) -> std::io::Result<File> {
        if self.from_host() {
            return Err(std::io::Error::other("the app opens this share's files"));
        }
        let path = self
            .location(file)
            .ok_or_else(|| std::io::Error::other("no such file in the share"))?;
        File::open(path)
    }
}

/// The location of each file of a share the host opens: its name in the share.
fn host_names(manifest: &Manifest) -> Vec<PathBuf> {
    manifest
        .files()
        .iter()
        .map(|f| PathBuf::from(f.path.as_str()))
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::manifest::{FileEntry, MIN_CHUNK_SIZE};
    use crate::transfer::{RelPath, tree};

    #[test]
    fn a_damaged_chunk_is_not_servable_until_it_is_repaired() {
        let mut files = vec![FileEntry {
            path: RelPath::new(&["f"]).unwrap(),
            size: 3 * u64::from(MIN_CHUNK_SIZE),
            hash: [0; 32],
        }];
        let hashes = vec![[7; 32]; 3];
        tree::fill_file_hashes(MIN_CHUNK_SIZE, &mut files, &hashes);
        let m = Manifest::new(MIN_CHUNK_SIZE, files, Vec::new(), hashes).unwrap();
        let encoded = m.encode();
        let c = Content::complete(Arc::new(m), Arc::new(encoded), vec!["/f".into()]);
        assert_eq!(c.lose(&[1, 1]), [1]);
        assert!(!c.has(1) && c.has(0) && !c.is_complete());
        assert!(c.is_lost(1));
        assert_eq!(c.lost_of(0), [1]);
        let (complete, bits) = c.availability();
        assert!(!complete && bits.get(0) && !bits.get(1));
        c.add(&[1]);
        assert!(c.is_complete() && !c.is_lost(1));
    }
}
