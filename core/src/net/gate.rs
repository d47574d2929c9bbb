//! How many inbound streams of one protocol are served at once, per peer and in all: a stream
//! beyond either bound is dropped at once, before it costs a task or a buffer. A hostile peer
//! opening thousands of streams gets a handful served; the others' sessions go on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use libp2p::PeerId;

/// The bounds of one protocol's inbound sessions.
pub struct Gate {
    per_peer: usize,
    total: usize,
    open: Arc<Mutex<Open>>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_peer: HashMap<PeerId, usize>,
}

/// One admitted session; dropping it makes room for the next.
pub struct Pass {
    peer: PeerId,
    open: Arc<Mutex<Open>>,
}

impl Gate {
    /// At most `per_peer` sessions of one peer and `total` in all.
    pub fn new(per_peer: usize, total: usize) -> Self {
        Self {
            per_peer,
            total,
            open: Arc::default(),
        }
    }

    /// Admits a session of `peer`, or `None` when a bound is reached.
    pub fn enter(&self, peer: PeerId) -> Option<Pass> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let of_peer = open.by_peer.get(&peer).copied().unwrap_or(0);
        if open.total >= self.total || of_peer >= self.per_peer {
            return None;
        }
        open.total += 1;
        open.by_peer.insert(peer, of_peer + 1);
        Some(Pass {
            peer,
            open: self.open.clone(),
        })
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                open.by_peer.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_bounded_per_peer_and_in_all_and_freed_when_they_end() {
        let gate = Gate::new(2, 3);
        let (a, b) = (PeerId::random(), PeerId::random());
        let a1 = gate.enter(a).unwrap();
        let _a2 = gate.enter(a).unwrap();
        assert!(gate.enter(a).is_none(), "a third of one peer");
        let _b1 = gate.enter(b).unwrap();
        assert!(gate.enter(b).is_none(), "a fourth in all");
        drop(a1);
        assert!(gate.enter(b).is_some());
    }
}
