//! What a download takes from peer exchange. Only a provider that proved the share's key is
//! heard at all (its hello's proof is checked first); of what it names, a download takes at
//! most [`PER_MESSAGE`] peers of one message and [`PER_MINUTE`] of one provider a minute, at
//! most [`ADDRS_PER_PEER`] addresses of each, never this device, and only addresses that may
//! be dialled on a peer's word ([`crate::net::learned_dialable`]: no loopback, no link-local).

use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};

use crate::transfer::wire::PexPeer;

/// Peers taken from one message.
pub const PER_MESSAGE: usize = 50;
/// Peers taken from one provider in a minute.
pub const PER_MINUTE: usize = 100;
/// Addresses taken for one peer.
pub const ADDRS_PER_PEER: usize = 8;
/// Addresses of one peer looked at (the rest are not even parsed).
const ADDRS_READ: usize = 32;
const MINUTE: Duration = Duration::from_secs(60);

/// What one provider's peer exchange has given so far.
pub(super) struct Intake {
    since: Instant,
    taken: usize,
}

impl Intake {
    pub(super) fn new() -> Self {
        Self {
            since: Instant::now(),
            taken: 0,
        }
    }

    /// The peers of one message worth asking, within the bounds, each with the addresses that
    /// `dialable` allows (a peer left with none is dropped).
    pub(super) fn take(
        &mut self,
        peers: &[PexPeer],
        local: &PeerId,
        dialable: impl Fn(&Multiaddr) -> bool,
    ) -> Vec<(PeerId, Vec<Multiaddr>)> {
        let now = Instant::now();
        if now.duration_since(self.since) >= MINUTE {
            (self.since, self.taken) = (now, 0);
        }
        let room = PER_MESSAGE.min(PER_MINUTE.saturating_sub(self.taken));
        let mut out = Vec::new();
        for named in peers.iter().take(PER_MESSAGE) {
            if out.len() >= room {
                break;
            }
            let Ok(peer) = PeerId::from_bytes(&named.peer) else {
                continue;
            };
            let addrs: Vec<Multiaddr> = named
                .addrs
                .iter()
                .take(ADDRS_READ)
                .filter_map(|a| Multiaddr::try_from(a.clone()).ok())
                .filter(|a| dialable(a))
                .take(ADDRS_PER_PEER)
                .collect();
            if peer != *local && !addrs.is_empty() {
                out.push((peer, addrs));
            }
        }
        self.taken += out.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(n: usize, addr: &str) -> Vec<PexPeer> {
        let addr: Multiaddr = addr.parse().unwrap();
        (0..n)
            .map(|_| PexPeer::new(&PeerId::random(), &vec![addr.clone(); 40]))
            .collect()
    }

    #[test]
    fn a_flood_of_peer_exchange_is_cut_to_the_bounds() {
        let mut intake = Intake::new();
        let local = PeerId::random();
        let ok = |a: &Multiaddr| crate::net::learned_dialable(a, false);
        let first = intake.take(&named(1000, "/ip4/192.168.1.9/tcp/1"), &local, ok);
        assert_eq!(first.len(), PER_MESSAGE);
        assert!(first.iter().all(|(_, a)| a.len() == ADDRS_PER_PEER));
        let second = intake.take(&named(1000, "/ip4/192.168.1.9/tcp/1"), &local, ok);
        assert_eq!(second.len(), PER_MINUTE - PER_MESSAGE);
        assert!(
            intake
                .take(&named(10, "/ip4/192.168.1.9/tcp/1"), &local, ok)
                .is_empty(),
            "the minute's share is spent"
        );
        let mut fresh = Intake::new();
        assert!(
            fresh
                .take(&named(10, "/ip4/127.0.0.1/tcp/1"), &local, ok)
                .is_empty(),
            "loopback named by a peer is never dialled"
        );
        let me = vec![PexPeer::new(
            &local,
            &["/ip4/192.168.1.9/tcp/1".parse().unwrap()],
        )];
        assert!(fresh.take(&me, &local, ok).is_empty());
    }
}
