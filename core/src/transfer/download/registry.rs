//! The node's running downloads: their ids, one run at a time per share and destination, and the
//! node's stop, which every download hears (it records what it wrote and ends, to resume at the
//! next start).

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
    stopping: watch::Sender<bool>,
}

impl Default for Downloads {
    fn default() -> Self {
        Self {
            next: AtomicU64::new(1),
            running: Mutex::default(),
            stopping: watch::Sender::new(false),
        }
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
