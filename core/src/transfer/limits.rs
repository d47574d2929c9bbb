//! How much a node uploads and downloads: byte-rate limits shared by every transfer in one
//! direction, and upload slots (how many requests are served at once, as BitTorrent's unchoked
//! peers), so a phone on battery can give back to the swarm without spending itself.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

/// The limits in force, shared by the node's serving sessions and downloads; they can change
/// while transfers run (a phone unplugged from its charger).
pub struct Throttle {
    /// What all uploads together may send.
    pub upload: Rate,
    /// What all downloads together may receive.
    pub download: Rate,
    /// One permit per upload slot, held while a request is served.
    pub slots: Arc<Semaphore>,
    /// How many slots there should be.
    slot_count: AtomicUsize,
}

impl Throttle {
    /// The throttle for `limits`.
    pub fn new(limits: TransferLimits) -> Self {
        let slots = limits.upload_slots.max(1);
        Self {
            upload: Rate::limited(limits.max_upload_rate),
            download: Rate::limited(limits.max_download_rate),
            slots: Arc::new(Semaphore::new(slots)),
            slot_count: AtomicUsize::new(slots),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> TransferLimits {
        TransferLimits {
            max_upload_rate: self.upload.limit(),
            max_download_rate: self.download.limit(),
            upload_slots: self.slot_count.load(Ordering::Acquire),
        }
    }

    /// Applies `limits` from now on. Fewer slots take effect as requests in service end.
    pub fn set(&self, limits: TransferLimits) {
        self.upload.set(limits.max_upload_rate);
        self.download.set(limits.max_download_rate);
        let want = limits.upload_slots.max(1);
        let had = self.slot_count.swap(want, Ordering::AcqRel);
        if want > had {
            self.slots.add_permits(want - had);
        } else {
            let slots = self.slots.clone();
            let fewer = (had - want) as u32;
            // Permits in use are taken back as they are released.
            tokio::spawn(async move {
                if let Ok(permits) = slots.acquire_many_owned(fewer).await {
                    permits.forget();
                }
            });
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
/// rate is exact and bursts are at most [`BURST`] long. No limit: every take returns at once.
pub struct Rate {
    /// Bytes per second; zero: no limit.
    bytes_per_sec: AtomicU64,
    bucket: Mutex<(f64, Instant)>,
}

/// The longest burst a limit allows.
pub const BURST: Duration = Duration::from_millis(50);

impl Rate {
    /// A limit of `bytes_per_sec` (at least one byte per second).
    pub fn new(bytes_per_sec: u64) -> Self {
        Self::limited(Some(bytes_per_sec))
    }

    /// A limit when `limit` is given, none otherwise.
    pub fn limited(limit: Option<u64>) -> Self {
        let rate = Self {
            bytes_per_sec: AtomicU64::new(0),
            bucket: Mutex::new((0.0, Instant::now())),
        };
        rate.set(limit);
        rate
    }

    /// The limit (`None`: no limit).
    pub fn limit(&self) -> Option<u64> {
        Some(self.bytes_per_sec.load(Ordering::Relaxed)).filter(|r| *r > 0)
    }

    /// Changes the limit (`None`: no limit).
    pub fn set(&self, limit: Option<u64>) {
        let rate = limit.map_or(0, |r| r.max(1));
        self.bytes_per_sec.store(rate, Ordering::Relaxed);
    }

    /// Waits until `bytes` may pass.
    pub async fn take(&self, bytes: u64) {
        let rate = self.bytes_per_sec.load(Ordering::Relaxed);
        if rate == 0 {
            return;
        }
        let rate = rate as f64;
        let wait = {
            let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let cap = rate * BURST.as_secs_f64();
            let refill = now.duration_since(bucket.1).as_secs_f64() * rate;
            bucket.0 = (bucket.0 + refill).min(cap) - bytes as f64;
            bucket.1 = now;
            (bucket.0 < 0.0).then(|| Duration::from_secs_f64(-bucket.0 / rate))
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

    #[tokio::test(start_paused = true)]
    async fn limits_change_while_transfers_run() {
        let throttle = Throttle::new(TransferLimits::default());
        let start = tokio::time::Instant::now();
        throttle.upload.take(10_000_000).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "no limit: no wait");
        assert_eq!(throttle.slots.available_permits(), 4);
        throttle.set(TransferLimits::on_battery());
        throttle.upload.take(2_000_000).await;
        throttle.upload.take(2_000_000).await;
        let took = start.elapsed().as_secs_f64();
        assert!(
            (1.95..2.1).contains(&took),
            "4 MB at 2 MB/s on battery: took {took} s"
        );
        tokio::task::yield_now().await;
        assert_eq!(
            throttle.slots.available_permits(),
            2,
            "two slots on battery"
        );
        throttle.set(TransferLimits::default());
        assert_eq!(throttle.slots.available_permits(), 4);
    }
}
