//! How much a node uploads and downloads: byte-rate limits shared by every transfer in one
//! direction, and upload slots (how many requests are served at once, as BitTorrent's unchoked
//! peers), so a phone on battery can give back to the swarm without spending itself.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The transfer limits of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferLimits {
    /// Bytes per second served to all peers together; unlimited when `None`.
    pub max_upload_rate: Option<u64>,
    /// Bytes per second received by all downloads together; unlimited when `None`.
    pub max_download_rate: Option<u64>,
    /// Requests served at once, across peers; the others wait their turn in order.
    pub upload_slots: usize,
}

impl Default for TransferLimits {
    /// No rate limit, four upload slots: enough to seed to a household of friends at once
    /// without one device serving a crowd.
    fn default() -> Self {
        Self {
            max_upload_rate: None,
            max_download_rate: None,
            upload_slots: 4,
        }
    }
}

/// The limits in force, shared by the node's serving sessions and downloads.
pub struct Throttle {
    /// What all uploads together may send.
    pub upload: Option<Rate>,
    /// What all downloads together may receive.
    pub download: Option<Rate>,
    /// One permit per upload slot, held while a request is served.
    pub slots: Arc<Semaphore>,
}

impl Throttle {
    /// The throttle for `limits`.
    pub fn new(limits: TransferLimits) -> Self {
        Self {
            upload: Rate::optional(limits.max_upload_rate),
            download: Rate::optional(limits.max_download_rate),
            slots: Arc::new(Semaphore::new(limits.upload_slots.max(1))),
        }
    }
}

impl TransferLimits {
    /// For a phone on battery: it still seeds, but at most 2 MB/s to two peers at a time.
    pub fn on_battery() -> Self {
        Self {
            max_upload_rate: Some(2_000_000),
            max_download_rate: None,
            upload_slots: 2,
        }
    }
}

/// A byte-rate limit (a token bucket that may go into debt): [`Rate::take`] returns at once
/// while the bucket has bytes and otherwise waits until the debt is paid back, so the long-run
/// rate is exact and bursts are at most [`BURST`] long.
pub struct Rate {
    bytes_per_sec: f64,
    bucket: Mutex<(f64, Instant)>,
}

/// The longest burst a limit allows.
pub const BURST: Duration = Duration::from_millis(50);

impl Rate {
    /// A limit of `bytes_per_sec` (at least one byte per second).
    pub fn new(bytes_per_sec: u64) -> Self {
        Self {
            bytes_per_sec: bytes_per_sec.max(1) as f64,
            bucket: Mutex::new((0.0, Instant::now())),
        }
    }

    fn optional(limit: Option<u64>) -> Option<Self> {
        limit.map(Self::new)
    }

    /// Waits until `bytes` may pass.
    pub async fn take(&self, bytes: u64) {
        let wait = {
            let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let cap = self.bytes_per_sec * BURST.as_secs_f64();
            let refill = now.duration_since(bucket.1).as_secs_f64() * self.bytes_per_sec;
            bucket.0 = (bucket.0 + refill).min(cap) - bytes as f64;
            bucket.1 = now;
            (bucket.0 < 0.0).then(|| Duration::from_secs_f64(-bucket.0 / self.bytes_per_sec))
        };
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_rate_holds_over_time_whatever_the_piece_sizes() {
        let rate = Rate::new(1_000_000);
        let start = tokio::time::Instant::now();
        for piece in [300_000u64, 1, 700_000, 250_000, 750_000, 1_000_000] {
            rate.take(piece).await;
        }
        // 3 MB at 1 MB/s, from an empty bucket: 3 s, give or take the burst.
        let took = start.elapsed().as_secs_f64();
        assert!((2.95..3.05).contains(&took), "took {took} s");
    }
}
