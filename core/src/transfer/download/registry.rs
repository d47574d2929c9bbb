//! The node's running downloads: their ids, one run at a time per share and destination, the
//! final names each run claimed (two downloads into one folder never pick the same name), and
//! the node's stop, which every download hears (it records what it wrote and ends, to resume at
//! the next start).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::transfer::ContentId;

/// The lock held by the download running for one share and destination.
type Slot = Arc<tokio::sync::Mutex<()>>;

/// Running downloads.
pub(crate) struct Downloads {
    next: AtomicU64,
    running: Mutex<HashMap<(ContentId, PathBuf), Slot>>,
    claims: Arc<Claims>,
    stopping: watch::Sender<bool>,
}

impl Default for Downloads {
    fn default() -> Self {
        Self {
            next: AtomicU64::new(1),
            running: Mutex::default(),
            claims: Arc::default(),
            stopping: watch::Sender::new(false),
        }
    }
}

/// The final paths claimed by running downloads (by their id in the store).
#[derive(Default)]
pub(crate) struct Claims(Mutex<HashMap<PathBuf, i64>>);

impl Claims {
    /// Claims `path` for download `owner`: false when another running download holds it.
    pub(crate) fn claim(&self, path: &std::path::Path, owner: i64) -> bool {
        let mut claims = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *claims.entry(path.to_path_buf()).or_insert(owner) == owner
    }

    /// Gives back every path `owner` claimed.
    pub(crate) fn release(&self, owner: i64) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, o| *o != owner);
    }
}

/// Gives back a run's claims when it ends, however it ends.
pub(crate) struct ClaimGuard {
    pub(crate) claims: Arc<Claims>,
    pub(crate) owner: i64,
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        self.claims.release(self.owner);
    }
}

impl Downloads {
    /// A new transfer id.
    pub(crate) fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// The lock of downloads of `content` into `dest`.
    pub(super) fn slot(&self, content: ContentId, dest: &Path) -> Slot {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.retain(|_, lock| Arc::strong_count(lock) > 1);
        running
            .entry((content, dest.to_path_buf()))
            .or_default()
            .clone()
    }

    /// The names claimed by running downloads.
    pub(crate) fn claims(&self) -> Arc<Claims> {
        self.claims.clone()
    }

    /// Turns true when the node stops.
    pub(super) fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Tells every download that the node stops, and waits until none runs, at most until
    /// `deadline`.
    pub(crate) async fn stop(&self, deadline: tokio::time::Instant) {
        self.stopping.send_replace(true);
        let slots: Vec<Slot> = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for slot in slots {
            let _ = tokio::time::timeout_at(deadline, slot.lock()).await;
        }
    }
}
