//! The swarm's directory: who else holds or fetches a share, and how to reach them. Serving
//! sessions record the peers that asked for a share, and running downloads of that share hear
//! about them at once and ask them too (a friend half-way through has chunks to give). Providers
//! name these peers to each other (peer exchange), so a ticket that names only the original sender
//! is enough to find the whole swarm.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use tokio::sync::broadcast;

use super::ContentId;
use super::wire::{MAX_PEX, PexPeer};

/// Peers remembered per share for peer exchange.
const PEERS_PER_SHARE: usize = 64;

/// How long a stream to a peer reached only through a relay waits for hole punching to open a
/// direct path (it usually takes a few round trips; failures take longer and end the wait).
pub const UPGRADE_WINDOW: Duration = Duration::from_secs(2);

/// Who holds or fetches which share, their addresses and round-trip times. Shared by the node's
/// serving sessions and downloads.
pub struct Directory {
    inner: Mutex<Inner>,
    arrivals: broadcast::Sender<(ContentId, PeerId)>,
    /// Woken when a peer's path changes (relayed, direct, hole punching failed).
    paths: tokio::sync::Notify,
}

#[derive(Default)]
struct Inner {
    addrs: HashMap<PeerId, Vec<Multiaddr>>,
    rtt: HashMap<PeerId, Duration>,
    connected: HashSet<PeerId>,
    /// Connected peers reached only through a relay, since when.
    relayed: HashMap<PeerId, tokio::time::Instant>,
    /// Relayed peers whose hole punching failed: their path will stay relayed.
    punch_failed: HashSet<PeerId>,
    peers_of: HashMap<ContentId, HashMap<PeerId, Instant>>,
}

impl Default for Directory {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            arrivals: broadcast::channel(256).0,
            paths: tokio::sync::Notify::new(),
        }
    }
}

impl Directory {
    /// A connection to `peer` opened (`up`) or its last one closed.
    pub fn set_connected(&self, peer: PeerId, up: bool) {
        let mut inner = self.lock();
        if up {
            inner.connected.insert(peer);
        } else {
            inner.connected.remove(&peer);
        }
    }

    /// Whether `peer` is reached only through a relay (`relayed`) or directly.
    pub fn set_relayed(&self, peer: PeerId, relayed: bool) {
        {
            let mut inner = self.lock();
            if relayed {
                inner
                    .relayed
                    .entry(peer)
                    .or_insert_with(tokio::time::Instant::now);
            } else {
                inner.relayed.remove(&peer);
                inner.punch_failed.remove(&peer);
            }
        }
        self.paths.notify_waiters();
    }

    /// Hole punching to a relayed `peer` failed: its path stays relayed.
    pub fn set_punch_failed(&self, peer: PeerId) {
        self.lock().punch_failed.insert(peer);
        self.paths.notify_waiters();
    }

    /// Whether `peer` is reached only through a relay.
    pub fn is_relayed(&self, peer: &PeerId) -> bool {
        self.lock().relayed.contains_key(peer)
    }

    /// Before a stream is opened to `peer`: while its only connection is a relayed one younger
    /// than `window` and hole punching has not failed, waits for the direct connection (or the end
    /// of the window). A stream opened on the relayed connection would die when the direct one
    /// replaces it, and a yamux stream on a gracefully closed connection is never woken up.
    pub async fn wait_direct(&self, peer: &PeerId, window: Duration) {
        loop {
            let changed = self.paths.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let deadline = {
                let inner = self.lock();
                match inner.relayed.get(peer) {
                    Some(since) if !inner.punch_failed.contains(peer) => *since + window,
                    _ => return,
                }
            };
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// The peers connected now.
    pub fn connected(&self) -> Vec<PeerId> {
        self.lock().connected.iter().copied().collect()
    }

    /// The addresses `peer` listens on (from identify).
    pub fn set_addrs(&self, peer: PeerId, addrs: Vec<Multiaddr>) {
        self.lock().addrs.insert(peer, addrs);
    }

    /// The latest round-trip time to `peer` (from ping).
    pub fn set_rtt(&self, peer: PeerId, rtt: Duration) {
        self.lock().rtt.insert(peer, rtt);
    }

    /// The latest round-trip time to `peer`, if measured.
    pub fn rtt(&self, peer: &PeerId) -> Option<Duration> {
        self.lock().rtt.get(peer).copied()
    }

    /// `peer` holds or fetches `content`: remembered for peer exchange, and announced to running
    /// downloads of it.
    pub fn add_peer_of(&self, content: ContentId, peer: PeerId) {
        {
            let mut inner = self.lock();
            let peers = inner.peers_of.entry(content).or_default();
            peers.insert(peer, Instant::now());
            if peers.len() > PEERS_PER_SHARE
                && let Some(oldest) = peers.iter().min_by_key(|(_, t)| **t).map(|(p, _)| *p)
            {
                peers.remove(&oldest);
            }
        }
        let _ = self.arrivals.send((content, peer));
    }

    /// Every peer known to hold or fetch `content`.
    pub fn peers_of(&self, content: &ContentId) -> Vec<PeerId> {
        self.lock()
            .peers_of
            .get(content)
            .map(|peers| peers.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Peers of `content` other than `asker`, most recently seen first, with their addresses.
    pub fn exchange(&self, content: &ContentId, asker: &PeerId) -> Vec<PexPeer> {
        let inner = self.lock();
        let Some(peers) = inner.peers_of.get(content) else {
            return Vec::new();
        };
        let mut recent: Vec<(&PeerId, &Instant)> =
            peers.iter().filter(|(p, _)| *p != asker).collect();
        recent.sort_by_key(|(_, t)| std::cmp::Reverse(**t));
        recent
            .into_iter()
            .filter_map(|(p, _)| inner.addrs.get(p).map(|a| PexPeer::new(p, a)))
            .take(MAX_PEX)
            .collect()
    }

    /// Tells of every peer found holding or fetching a share, as it is found.
    pub fn arrivals(&self) -> broadcast::Receiver<(ContentId, PeerId)> {
        self.arrivals.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_exchange_names_other_peers_with_addresses_newest_first() {
        let dir = Directory::default();
        let content = ContentId([1; 32]);
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        dir.set_addrs(a, vec![addr.clone()]);
        dir.set_addrs(b, vec![addr.clone()]);
        let mut arrivals = dir.arrivals();
        dir.add_peer_of(content, a);
        dir.add_peer_of(content, b);
        dir.add_peer_of(content, c); // no known address: not named
        assert_eq!(arrivals.try_recv().unwrap(), (content, a));

        let named: Vec<PeerId> = dir
            .exchange(&content, &a)
            .iter()
            .filter_map(|p| p.parse().map(|(peer, _)| peer))
            .collect();
        assert_eq!(named, vec![b]);
        let both = dir.exchange(&content, &c);
        assert_eq!(both.len(), 2);
        assert_eq!(both[0].parse().unwrap(), (b, vec![addr]));
        assert!(dir.exchange(&ContentId([2; 32]), &a).is_empty());
        let mut known = dir.peers_of(&content);
        known.sort();
        let mut all = vec![a, b, c];
        all.sort();
        assert_eq!(known, all);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_to_a_relayed_peer_waits_for_the_direct_path_within_the_window() {
        let dir = std::sync::Arc::new(Directory::default());
        let peer = PeerId::random();
        // Direct (or unknown) peers: no wait at all.
        tokio::time::timeout(
            Duration::from_millis(1),
            dir.wait_direct(&peer, UPGRADE_WINDOW),
        )
        .await
        .expect("no wait for a direct peer");

        // Relayed: waits until the direct connection replaces the relayed one.
        dir.set_relayed(peer, true);
        let waiting = tokio::spawn({
            let dir = dir.clone();
            async move { dir.wait_direct(&peer, UPGRADE_WINDOW).await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!waiting.is_finished(), "returned before the path changed");
        dir.set_relayed(peer, false);
        tokio::time::timeout(Duration::from_millis(1), waiting)
            .await
            .expect("woken by the direct connection")
            .unwrap();

        // Hole punching failed: no reason to wait.
        dir.set_relayed(peer, true);
        dir.set_punch_failed(peer);
        tokio::time::timeout(
            Duration::from_millis(1),
            dir.wait_direct(&peer, UPGRADE_WINDOW),
        )
        .await
        .expect("no wait once hole punching failed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_relayed_peer_waits_at_most_the_window_from_its_first_relayed_connection() {
        let dir = Directory::default();
        let peer = PeerId::random();
        dir.set_relayed(peer, true);
        let started = tokio::time::Instant::now();
        dir.wait_direct(&peer, Duration::from_millis(300)).await;
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }
}
