//! What the node knows of each peer's path, shared by the swarm task (which writes it) and every
//! holder of the [`super::Net`] client (which read it): connected or not, reached directly or
//! only through a relay (and whether hole punching failed), the round trip, the addresses the
//! peer listens on.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Peers remembered while disconnected (for their listen addresses); the least recently seen go
/// first beyond this.
const REMEMBERED: usize = 1024;

/// The path to a connected peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Path {
    /// Every connection to it goes through a relay.
    pub relayed: bool,
    /// Hole punching to it failed: the relayed path stays until a direct dial gets through.
    pub punch_failed: bool,
    /// The latest ping round trip, once measured.
    pub rtt: Option<Duration>,
}

#[derive(Default)]
struct Entry {
    connected: bool,
    /// Reached only through a relay, since when.
    relayed_since: Option<Instant>,
    punch_failed: bool,
    rtt: Option<Duration>,
    listen: Vec<Multiaddr>,
    last_seen: Option<Instant>,
    /// When a part of the node last tried to reach it (a download, an offer, a redial).
    wanted_at: Option<Instant>,
}

/// Every peer's path, behind one lock; woken waiters learn of changes.
#[derive(Default)]
pub(super) struct PathTable {
    peers: Mutex<HashMap<PeerId, Entry>>,
    changed: Notify,
}

impl PathTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<PeerId, Entry>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `peer`'s connections changed: `up` when any is open, `only_relayed` when all go through a
    /// relay.
    pub(super) fn set_connections(&self, peer: PeerId, up: bool, only_relayed: bool) {
        {
            let mut peers = self.lock();
            let e = peers.entry(peer).or_default();
            e.connected = up;
            e.last_seen = Some(Instant::now());
            if up && only_relayed {
                e.relayed_since.get_or_insert_with(Instant::now);
            } else {
                e.relayed_since = None;
                e.punch_failed = false;
            }
            if !up {
                forget_oldest(&mut peers);
            }
        }
        self.changed.notify_waiters();
    }

    /// Hole punching to relayed `peer` failed.
    pub(super) fn set_punch_failed(&self, peer: PeerId) {
        if let Some(e) = self.lock().get_mut(&peer) {
            e.punch_failed = e.relayed_since.is_some();
        }
        self.changed.notify_waiters();
    }

    pub(super) fn set_rtt(&self, peer: PeerId, rtt: Duration) {
        if let Some(e) = self.lock().get_mut(&peer) {
            e.rtt = Some(rtt);
        }
    }

    /// A part of the node tries to reach `peer` now.
    pub(super) fn set_wanted(&self, peer: PeerId) {
        let mut peers = self.lock();
        let e = peers.entry(peer).or_default();
        e.wanted_at = Some(Instant::now());
        e.last_seen.get_or_insert_with(Instant::now);
        forget_oldest(&mut peers);
    }

    /// Whether a part of the node tried to reach `peer` within `window`.
    pub(super) fn wanted_within(&self, peer: &PeerId, window: Duration) -> bool {
        let peers = self.lock();
        let at = peers.get(peer).and_then(|e| e.wanted_at);
        at.is_some_and(|at| at.elapsed() <= window)
    }

    pub(super) fn set_listen_addrs(&self, peer: PeerId, addrs: Vec<Multiaddr>) {
        self.lock().entry(peer).or_default().listen = addrs;
    }

    /// The path to `peer`, while connected.
    pub(super) fn path(&self, peer: &PeerId) -> Option<Path> {
        self.lock().get(peer).filter(|e| e.connected).map(|e| Path {
            relayed: e.relayed_since.is_some(),
            punch_failed: e.punch_failed,
            rtt: e.rtt,
        })
    }

    /// The peers connected now.
    pub(super) fn connected(&self) -> Vec<PeerId> {
        let peers = self.lock();
        peers
            .iter()
            .filter(|(_, e)| e.connected)
            .map(|(p, _)| *p)
            .collect()
    }

    /// The addresses `peer` said it listens on (identify).
    pub(super) fn listen_addrs(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.lock()
            .get(peer)
            .map(|e| e.listen.clone())
            .unwrap_or_default()
    }

    /// While `peer`'s only connection is a relayed one younger than `window` and hole punching
    /// has not failed, waits for a direct connection (or the end of the window). A stream opened
    /// on the relayed connection would die when the direct one replaces it, and a yamux stream on
    /// a gracefully closed connection is never woken up.
    pub(super) async fn wait_direct(&self, peer: &PeerId, window: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let deadline = match self.lock().get(peer) {
                Some(Entry {
                    relayed_since: Some(since),
                    punch_failed: false,
                    ..
                }) => *since + window,
                _ => return,
            };
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }
}

/// Drops the least recently seen disconnected peers beyond [`REMEMBERED`].
fn forget_oldest(peers: &mut HashMap<PeerId, Entry>) {
    let idle = peers.values().filter(|e| !e.connected).count();
    if idle <= REMEMBERED {
        return;
    }
    let mut idle: Vec<(PeerId, Option<Instant>)> = peers
        .iter()
        .filter(|(_, e)| !e.connected)
        .map(|(p, e)| (*p, e.last_seen))
        .collect();
    idle.sort_by_key(|(_, seen)| *seen);
    let excess = idle.len() - REMEMBERED;
    for (peer, _) in idle.into_iter().take(excess) {
        peers.remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(2);

    #[tokio::test(start_paused = true)]
    async fn a_stream_to_a_relayed_peer_waits_for_the_direct_path_within_the_window() {
        let table = std::sync::Arc::new(PathTable::default());
        let peer = PeerId::random();
        // Direct (or unknown) peers: no wait at all.
        tokio::time::timeout(Duration::from_millis(1), table.wait_direct(&peer, WINDOW))
            .await
            .expect("no wait for a direct peer");

        // Relayed: waits until the direct connection replaces the relayed one.
        table.set_connections(peer, true, true);
        let waiting = tokio::spawn({
            let table = table.clone();
            async move { table.wait_direct(&peer, WINDOW).await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!waiting.is_finished(), "returned before the path changed");
        table.set_connections(peer, true, false);
        tokio::time::timeout(Duration::from_millis(1), waiting)
            .await
            .expect("woken by the direct connection")
            .unwrap();

        // Hole punching failed: no reason to wait.
        table.set_connections(peer, true, true);
        table.set_punch_failed(peer);
        assert_eq!(
            table.path(&peer),
            Some(Path {
                relayed: true,
                punch_failed: true,
                rtt: None
            })
        );
        tokio::time::timeout(Duration::from_millis(1), table.wait_direct(&peer, WINDOW))
            .await
            .expect("no wait once hole punching failed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_relayed_peer_waits_at_most_the_window_from_its_first_relayed_connection() {
        let table = PathTable::default();
        let peer = PeerId::random();
        table.set_connections(peer, true, true);
        let started = Instant::now();
        table.wait_direct(&peer, Duration::from_millis(300)).await;
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[test]
    fn paths_are_known_while_connected_and_addresses_outlive_the_connection() {
        let table = PathTable::default();
        let peer = PeerId::random();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        table.set_listen_addrs(peer, vec![addr.clone()]);
        table.set_connections(peer, true, false);
        table.set_rtt(peer, Duration::from_millis(7));
        assert_eq!(table.connected(), vec![peer]);
        assert_eq!(
            table.path(&peer).and_then(|p| p.rtt),
            Some(Duration::from_millis(7))
        );
        table.set_connections(peer, false, false);
        assert!(table.path(&peer).is_none() && table.connected().is_empty());
        assert_eq!(table.listen_addrs(&peer), vec![addr]);
    }

    #[tokio::test(start_paused = true)]
    async fn disconnected_peers_are_forgotten_oldest_first_beyond_the_bound() {
        let table = PathTable::default();
        let first = PeerId::random();
        table.set_connections(first, true, false);
        table.set_connections(first, false, false);
        tokio::time::advance(Duration::from_millis(1)).await;
        for _ in 0..REMEMBERED {
            let p = PeerId::random();
            table.set_listen_addrs(p, Vec::new());
            table.set_connections(p, false, false);
        }
        assert_eq!(table.lock().len(), REMEMBERED);
        assert!(!table.lock().contains_key(&first));
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_is_wanted_for_a_while_after_the_node_tried_to_reach_it() {
        let table = PathTable::default();
        let peer = PeerId::random();
        let window = Duration::from_secs(600);
        assert!(!table.wanted_within(&peer, window));
        table.set_wanted(peer);
        assert!(table.wanted_within(&peer, window));
        tokio::time::advance(window + Duration::from_secs(1)).await;
        assert!(!table.wanted_within(&peer, window));
    }
}
