//! Who else holds or fetches each share. Serving sessions record the peers that asked for a
//! share, and running downloads of that share hear about them at once and ask them too (a friend
//! half-way through has chunks to give). Providers name these peers to each other (peer
//! exchange), so a ticket that names only the original sender is enough to find the whole swarm.
//! How to reach a peer is net's business ([`crate::net::Net::listen_addrs_of`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::broadcast;

use super::ContentId;
use super::wire::{MAX_PEX, PexPeer};

/// Peers remembered per share for peer exchange.
const PEERS_PER_SHARE: usize = 64;

/// Who holds or fetches which share, shared by the node's serving sessions and downloads.
pub struct Holders {
    peers_of: Mutex<HashMap<ContentId, HashMap<PeerId, Instant>>>,
    arrivals: broadcast::Sender<(ContentId, PeerId)>,
}

impl Default for Holders {
    fn default() -> Self {
        Self {
            peers_of: Mutex::default(),
            arrivals: broadcast::channel(256).0,
        }
    }
}

impl Holders {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ContentId, HashMap<PeerId, Instant>>> {
        self.peers_of.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `peer` holds or fetches `content`: remembered for peer exchange, and announced to running
    /// downloads of it.
    pub fn add(&self, content: ContentId, peer: PeerId) {
        {
            let mut all = self.lock();
            let peers = all.entry(content).or_default();
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
    pub fn of(&self, content: &ContentId) -> Vec<PeerId> {
        self.lock()
            .get(content)
            .map(|peers| peers.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Peers of `content` other than `asker` with the addresses `addrs_of` knows for them
    /// (net's, in the node), most recently seen first: what peer exchange names.
    pub fn exchange(
        &self,
        content: &ContentId,
        asker: &PeerId,
        addrs_of: impl Fn(&PeerId) -> Vec<Multiaddr>,
    ) -> Vec<PexPeer> {
        let mut recent: Vec<(PeerId, Instant)> = match self.lock().get(content) {
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
    pub fn arrivals(&self) -> broadcast::Receiver<(ContentId, PeerId)> {
        self.arrivals.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peers_of_a_share_are_remembered_and_announced() {
        let holders = Holders::default();
        let content = ContentId([1; 32]);
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut arrivals = holders.arrivals();
        holders.add(content, a);
        holders.add(content, b);
        assert_eq!(arrivals.try_recv().unwrap(), (content, a));
        let mut known = holders.of(&content);
        known.sort();
        let mut all = vec![a, b];
        all.sort();
        assert_eq!(known, all);
        assert!(holders.of(&ContentId([2; 32])).is_empty());
    }

    #[test]
    fn peer_exchange_names_other_peers_with_addresses_newest_first() {
        let holders = Holders::default();
        let content = ContentId([1; 32]);
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let known: HashMap<PeerId, Vec<Multiaddr>> =
            [(a, vec![addr.clone()]), (b, vec![addr.clone()])].into();
        let addrs_of = |p: &PeerId| known.get(p).cloned().unwrap_or_default();
        holders.add(content, a);
        holders.add(content, b);
        holders.add(content, c); // no known address: not named
        let named: Vec<PeerId> = holders
            .exchange(&content, &a, addrs_of)
            .iter()
            .filter_map(|p| p.parse().map(|(peer, _)| peer))
            .collect();
        assert_eq!(named, vec![b]);
        let both = holders.exchange(&content, &c, addrs_of);
        assert_eq!(both.len(), 2);
        assert_eq!(both[0].parse().unwrap(), (b, vec![addr]));
        assert!(
            holders
                .exchange(&ContentId([2; 32]), &a, addrs_of)
                .is_empty()
        );
    }

    #[test]
    fn a_share_remembers_its_most_recent_peers_only() {
        let holders = Holders::default();
        let content = ContentId([1; 32]);
        let first = PeerId::random();
        holders.add(content, first);
        for _ in 0..PEERS_PER_SHARE {
            holders.add(content, PeerId::random());
        }
        let known = holders.of(&content);
        assert_eq!(known.len(), PEERS_PER_SHARE);
        assert!(!known.contains(&first));
    }
}
