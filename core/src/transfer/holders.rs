//! Who else holds or fetches each share, by the key's tag: only peers that proved they hold the
//! key are recorded. Serving sessions record the peers that asked for a share, and running
//! downloads of that share hear about them at once and ask them too (a friend half-way through
//! has chunks to give). Providers name these peers to each other (peer exchange), so a ticket
//! that names only the original sender is enough to find the whole swarm.
//! How to reach a peer is net's business ([`crate::net::Net::listen_addrs_of`]). The table is
//! bounded (64 peers per share, 256 shares) and forgets a share's peers when its key ends.
//! Besides them, the node names peers that may hold a share ([`HolderHints`]: its contacts, the
//! people of the conversation an attachment came from); downloads ask those too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::broadcast;

use super::ContentId;
use super::capability::ShareTag;
use super::wire::{MAX_PEX, PexPeer};

/// Peers remembered per share for peer exchange.
const PEERS_PER_SHARE: usize = 64;
/// Shares whose peers are remembered; the one heard of least recently goes first beyond this.
const SHARES: usize = 256;

/// Hinted peers asked per share; more are left out.
const MAX_HINTS: usize = 64;

/// Peers besides a ticket's providers that may hold a share, as the node knows them (its
/// contacts, the members of the room an attachment was posted in): a download looking for a
/// holder dials and asks them too.
pub trait HolderHints: Send + Sync {
    /// The peers that may hold the share `content`.
    fn holders_of(&self, content: &ContentId) -> Vec<PeerId>;
}

/// Who holds or fetches which share, shared by the node's serving sessions and downloads.
pub struct Holders {
    peers_of: Mutex<HashMap<ShareTag, HashMap<PeerId, Instant>>>,
    arrivals: broadcast::Sender<(ShareTag, PeerId)>,
    hints: OnceLock<Arc<dyn HolderHints>>,
}

impl Default for Holders {
    fn default() -> Self {
        Self {
            peers_of: Mutex::default(),
            arrivals: broadcast::channel(256).0,
            hints: OnceLock::new(),
        }
    }
}

impl Holders {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ShareTag, HashMap<PeerId, Instant>>> {
        self.peers_of.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `peer` proved it holds the key tagged `tag`: remembered for peer exchange, and announced to running
    /// downloads of it.
    pub fn add(&self, tag: ShareTag, peer: PeerId) {
        {
            let mut all = self.lock();
            let peers = all.entry(tag).or_default();
            peers.insert(peer, Instant::now());
            if peers.len() > PEERS_PER_SHARE
                && let Some(oldest) = peers.iter().min_by_key(|(_, t)| **t).map(|(p, _)| *p)
            {
                peers.remove(&oldest);
            }
            if all.len() > SHARES {
                let stale = all
                    .iter()
                    .filter(|(t, _)| **t != tag)
                    .min_by_key(|(_, peers)| peers.values().max().copied())
                    .map(|(t, _)| *t);
                if let Some(stale) = stale {
                    all.remove(&stale);
                }
            }
        }
        let _ = self.arrivals.send((tag, peer));
    }

    /// Forgets the peers of `tag` (a key this node no longer serves or fetches).
    pub fn forget(&self, tag: &ShareTag) {
        self.lock().remove(tag);
    }

    /// Every peer known to hold the key tagged `tag`.
    pub fn of(&self, tag: &ShareTag) -> Vec<PeerId> {
        self.lock()
            .get(tag)
            .map(|peers| peers.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Peers of `tag` other than `asker` with the addresses `addrs_of` knows for them
    /// (net's, in the node), most recently seen first: what peer exchange names.
    pub fn exchange(
        &self,
        tag: &ShareTag,
        asker: &PeerId,
        addrs_of: impl Fn(&PeerId) -> Vec<Multiaddr>,
    ) -> Vec<PexPeer> {
        let mut recent: Vec<(PeerId, Instant)> = match self.lock().get(tag) {
            Some(peers) => peers
                .iter()
                .filter(|(p, _)| *p != asker)
                .map(|(p, t)| (*p, *t))
                .collect(),
            None => return Vec::new(),
        };
        recent.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
        recent
            .into_iter()
            .filter_map(|(p, _)| {
                let addrs = addrs_of(&p);
                (!addrs.is_empty()).then(|| PexPeer::new(&p, &addrs))
            })
            .take(MAX_PEX)
            .collect()
    }

    /// Tells of every peer found holding or fetching a share, as it is found.
    pub fn arrivals(&self) -> broadcast::Receiver<(ShareTag, PeerId)> {
        self.arrivals.subscribe()
    }

    /// Sets where hinted peers come from (once, at the node's start).
    pub fn set_hints(&self, hints: Arc<dyn HolderHints>) {
        let _ = self.hints.set(hints);
    }

    /// The peers the node's hints name for `content`, at most [`MAX_HINTS`].
    pub fn hinted(&self, content: &ContentId) -> Vec<PeerId> {
        let mut peers = self
            .hints
            .get()
            .map(|h| h.holders_of(content))
            .unwrap_or_default();
        peers.truncate(MAX_HINTS);
        peers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peers_of_a_share_are_remembered_and_announced() {
        let holders = Holders::default();
        let tag = ShareTag([1; 32]);
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut arrivals = holders.arrivals();
        holders.add(tag, a);
        holders.add(tag, b);
        assert_eq!(arrivals.try_recv().unwrap(), (tag, a));
        let mut known = holders.of(&tag);
        known.sort();
        let mut all = vec![a, b];
        all.sort();
        assert_eq!(known, all);
        assert!(holders.of(&ShareTag([2; 32])).is_empty());
    }

    #[test]
    fn peer_exchange_names_other_peers_with_addresses_newest_first() {
        let holders = Holders::default();
        let tag = ShareTag([1; 32]);
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let known: HashMap<PeerId, Vec<Multiaddr>> =
            [(a, vec![addr.clone()]), (b, vec![addr.clone()])].into();
        let addrs_of = |p: &PeerId| known.get(p).cloned().unwrap_or_default();
        holders.add(tag, a);
        holders.add(tag, b);
        holders.add(tag, c); // no known address: not named
        let named: Vec<PeerId> = holders
            .exchange(&tag, &a, addrs_of)
            .iter()
            .filter_map(|p| p.parse().map(|(peer, _)| peer))
            .collect();
        assert_eq!(named, vec![b]);
        let both = holders.exchange(&tag, &c, addrs_of);
        assert_eq!(both.len(), 2);
        assert_eq!(both[0].parse().unwrap(), (b, vec![addr]));
        assert!(
            holders
                .exchange(&ShareTag([2; 32]), &a, addrs_of)
                .is_empty()
        );
    }

    #[test]
    fn a_share_remembers_its_most_recent_peers_only() {
        let holders = Holders::default();
        let tag = ShareTag([1; 32]);
        let first = PeerId::random();
        holders.add(tag, first);
        for _ in 0..PEERS_PER_SHARE {
            holders.add(tag, PeerId::random());
        }
        let known = holders.of(&tag);
        assert_eq!(known.len(), PEERS_PER_SHARE);
        assert!(!known.contains(&first));
    }
}
