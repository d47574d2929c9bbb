//! Which chunk to ask which peer for next. Every connected peer of a share says which chunks it
//! holds (a bitfield at hello, then announcements as it gains more); chunks go rarest first, so a
//! swarm spreads what only one peer has before that peer leaves. Among equally rare chunks, a
//! download alone with its providers walks on from its own starting point (sequential runs);
//! once other downloaders are about, each request starts at a random place, so downloaders do not
//! fall into step asking a seeder for the same chunks, and trade what they got instead. No chunk is asked twice, except in the endgame: once
//! every missing chunk is requested, an idle peer may duplicate a request still due elsewhere, and
//! the first answer wins.

use std::collections::{BTreeSet, HashMap};

use libp2p::PeerId;

use crate::transfer::Manifest;
use crate::transfer::bitfield::Bitfield;
use crate::transfer::wire::MAX_RUN;

/// Bytes asked for in one request.
pub(super) const RUN_BYTES: u64 = 1024 * 1024;
/// Waiting chunks a peer holds that are compared for rarity per request: bounds the cost of a
/// request in shares of many thousand small files.
const RARITY_CANDIDATES: usize = 1024;

/// What one peer holds.
enum Holding {
    All,
    Some(Bitfield),
}

/// Waiting and requested chunks, what each peer holds, and the peers dropped for bad data.
pub(super) struct Sched {
    waiting: BTreeSet<u64>,
    /// Requested chunks and the peers they are due from (two or more only in the endgame).
    requested: HashMap<u64, Vec<PeerId>>,
    pub(super) banned: HashMap<PeerId, String>,
    /// Peers that said they lack chunks they had said they hold: their copies are damaged.
    pub(super) damaged: HashMap<PeerId, u64>,
    holders: HashMap<PeerId, Holding>,
    /// How many partial peers hold each chunk (complete peers hold all alike).
    partial_holders: Vec<u16>,
    /// Where this download starts its walk over the chunks.
    pivot: u64,
    /// A xorshift state for random starting points (no secret: spreading requests only).
    dice: u64,
}

impl Sched {
    /// A schedule for `missing` chunks out of `chunk_count`, walking from `pivot`.
    pub(super) fn new(
        missing: impl IntoIterator<Item = u64>,
        chunk_count: u64,
        pivot: u64,
    ) -> Self {
        Self {
            waiting: missing.into_iter().collect(),
            requested: HashMap::new(),
            banned: HashMap::new(),
            damaged: HashMap::new(),
            holders: HashMap::new(),
            partial_holders: vec![0; usize::try_from(chunk_count).unwrap_or(0)],
            pivot,
            dice: pivot | 1,
        }
    }

    /// `peer` said hello: it holds every chunk, or those in `bits` (as sent, any length).
    pub(super) fn join(&mut self, peer: PeerId, complete: bool, bits: Vec<u8>) {
        self.leave(&peer);
        if complete {
            self.holders.insert(peer, Holding::All);
            return;
        }
        let bits = Bitfield::from_bytes(bits, self.partial_holders.len() as u64);
        for i in bits.ones() {
            self.count_holder(i, true);
        }
        self.holders.insert(peer, Holding::Some(bits));
    }

    /// One more (`up`) or one fewer partial peer holds chunk `i`.
    fn count_holder(&mut self, i: u64, up: bool) {
        if let Some(count) = usize::try_from(i)
            .ok()
            .and_then(|i| self.partial_holders.get_mut(i))
        {
            *count = if up {
                count.saturating_add(1)
            } else {
                count.saturating_sub(1)
            };
        }
    }

    /// `peer` announced that it holds `chunks` now.
    pub(super) fn gained(&mut self, peer: &PeerId, chunks: &[u64]) {
        let Some(Holding::Some(bits)) = self.holders.get_mut(peer) else {
            return;
        };
        let new: Vec<u64> = chunks.iter().copied().filter(|&i| bits.set(i)).collect();
        for i in new {
            self.count_holder(i, true);
        }
    }

    /// `peer` answered that it lacks chunk `index` after all (its copy is damaged): ask
    /// someone else. A peer that held the whole share holds all but that chunk from now on.
    pub(super) fn lacks(&mut self, peer: &PeerId, index: u64) {
        if let Some(holding) = self.holders.get_mut(peer)
            && matches!(holding, Holding::All)
        {
            let mut bits = Bitfield::full(self.partial_holders.len() as u64);
            bits.clear(index);
            *holding = Holding::Some(bits);
            let all: Vec<u64> = (0..self.partial_holders.len() as u64)
                .filter(|i| *i != index)
                .collect();
            for i in all {
                self.count_holder(i, true);
            }
            *self.damaged.entry(*peer).or_default() += 1;
        } else {
            let cleared = match self.holders.get_mut(peer) {
                Some(Holding::Some(bits)) => bits.clear(index),
                _ => false,
            };
            if cleared {
                self.count_holder(index, false);
                *self.damaged.entry(*peer).or_default() += 1;
            }
        }
        self.unrequest(peer, index);
    }

    /// The waiting chunks that no peer of the download holds (none can be asked for them).
    pub(super) fn unheld(&self) -> Vec<u64> {
        self.waiting
            .iter()
            .copied()
            .filter(|i| !self.holders.keys().any(|p| self.holds(p, *i)))
            .collect()
    }

    /// `peer` is gone: what it held no longer counts and what was due from it waits again.
    pub(super) fn leave(&mut self, peer: &PeerId) {
        if let Some(Holding::Some(bits)) = self.holders.remove(peer) {
            for i in bits.ones() {
                self.count_holder(i, false);
            }
        }
        let due: Vec<u64> = self
            .requested
            .iter()
            .filter(|(_, peers)| peers.contains(peer))
            .map(|(i, _)| *i)
            .collect();
        for i in due {
            self.unrequest(peer, i);
        }
    }

    /// Chunk `index` is written: settled for everyone.
    pub(super) fn settle(&mut self, index: u64) {
        self.requested.remove(&index);
    }

    /// Whether `peer` said it holds the whole share.
    pub(super) fn holds_all(&self, peer: &PeerId) -> bool {
        matches!(self.holders.get(peer), Some(Holding::All))
    }

    /// Whether no chunk is requested (all asked for were settled).
    pub(super) fn nothing_due(&self) -> bool {
        self.requested.is_empty()
    }

    fn holds(&self, peer: &PeerId, i: u64) -> bool {
        match self.holders.get(peer) {
            Some(Holding::All) => true,
            Some(Holding::Some(bits)) => bits.get(i),
            None => false,
        }
    }

    fn rarity(&self, i: u64) -> u16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.partial_holders.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// The next run of chunks to ask `peer` for (first, count), up to [`RUN_BYTES`]: the rarest
    /// waiting chunk it holds and the waiting chunks after it; in the endgame, one chunk due
    /// elsewhere. `None` when there is nothing to ask it.
    pub(super) fn next_run(&mut self, peer: &PeerId, manifest: &Manifest) -> Option<(u64, u32)> {
        if self.banned.contains_key(peer) || !self.holders.contains_key(peer) {
            return None;
        }
        let from = if self.swarming() {
            self.roll()
        } else {
            self.pivot
        };
        let Some(first) = self.rarest_waiting(peer, from) else {
            return self.endgame(peer);
        };
        let mut count = 0u32;
        let mut bytes = 0u64;
        let mut i = first;
        while self.waiting.contains(&i)
            && self.holds(peer, i)
            && count < MAX_RUN
            && (count == 0 || bytes < RUN_BYTES)
        {
            self.waiting.remove(&i);
            self.requested.insert(i, vec![*peer]);
            bytes += manifest.chunk(i).map_or(0, |c| u64::from(c.len));
            count += 1;
            i += 1;
        }
        Some((first, count))
    }

    /// Whether other downloaders (peers that hold only part of the share) are about.
    fn swarming(&self) -> bool {
        self.holders.values().any(|h| matches!(h, Holding::Some(_)))
    }

    /// A random chunk index.
    fn roll(&mut self) -> u64 {
        self.dice ^= self.dice << 13;
        self.dice ^= self.dice >> 7;
        self.dice ^= self.dice << 17;
        self.dice % (self.partial_holders.len().max(1) as u64)
    }

    /// The waiting chunk `peer` holds that the fewest other peers hold, first from `from` on
    /// (among the first [`RARITY_CANDIDATES`] it holds).
    fn rarest_waiting(&self, peer: &PeerId, from: u64) -> Option<u64> {
        // Nothing is rarer than a chunk that no partial peer holds besides `peer` itself.
        let floor = u16::from(matches!(self.holders.get(peer), Some(Holding::Some(_))));
        let mut best: Option<(u16, u64)> = None;
        let walk = self
            .waiting
            .range(from..)
            .chain(self.waiting.range(..from))
            .filter(|i| self.holds(peer, **i))
            .take(RARITY_CANDIDATES);
        for &i in walk {
            let rarity = self.rarity(i);
            if best.is_none_or(|(r, _)| rarity < r) {
                best = Some((rarity, i));
                if rarity <= floor {
                    break;
                }
            }
        }
        best.map(|(_, i)| i)
    }

    /// Once nothing waits, `peer` may duplicate a request due from one other peer only.
    fn endgame(&mut self, peer: &PeerId) -> Option<(u64, u32)> {
        if !self.waiting.is_empty() {
            return None;
        }
        let index = self
            .requested
            .iter()
            .filter(|(i, due)| due.len() == 1 && !due.contains(peer) && self.holds(peer, **i))
            .map(|(i, _)| *i)
            .min()?;
        self.requested.entry(index).or_default().push(*peer);
        Some((index, 1))
    }

    /// Chunk `index` is no longer due from `peer`; it waits again when no one else was asked.
    pub(super) fn unrequest(&mut self, peer: &PeerId, index: u64) {
        if let Some(due) = self.requested.get_mut(&index) {
            due.retain(|p| p != peer);
            if due.is_empty() {
                self.requested.remove(&index);
                self.waiting.insert(index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::manifest::{FileEntry, MIN_CHUNK_SIZE};
    use crate::transfer::{Manifest, RelPath, tree};

    /// A manifest of one file of `chunks` chunks of the smallest size.
    fn manifest(chunks: u64) -> Manifest {
        let mut files = vec![FileEntry {
            path: RelPath::new(&["f"]).unwrap(),
            size: chunks * u64::from(MIN_CHUNK_SIZE),
            hash: [0; 32],
        }];
        let hashes = vec![[7; 32]; chunks as usize];
        tree::fill_file_hashes(MIN_CHUNK_SIZE, &mut files, &hashes);
        Manifest::new(MIN_CHUNK_SIZE, files, Vec::new(), hashes).unwrap()
    }

    fn bits(n: u64, set: &[u64]) -> Vec<u8> {
        let mut b = Bitfield::new(n);
        for &i in set {
            b.set(i);
        }
        b.as_bytes().to_vec()
    }

    #[test]
    fn alone_with_a_seeder_a_download_walks_on_from_its_pivot() {
        let m = manifest(8);
        let mut s = Sched::new(0..8, 8, 5);
        let seeder = PeerId::random();
        s.join(seeder, true, Vec::new());
        assert_eq!(s.next_run(&seeder, &m), Some((5, 3)));
        assert_eq!(s.next_run(&seeder, &m), Some((0, 5)));
        assert_eq!(s.next_run(&seeder, &m), None);
    }

    #[test]
    fn the_rarest_chunk_goes_first() {
        let m = manifest(8);
        let mut s = Sched::new(0..8, 8, 5);
        let (seeder, a, b) = (PeerId::random(), PeerId::random(), PeerId::random());
        s.join(seeder, true, Vec::new());
        s.join(a, false, bits(8, &[1, 2, 6]));
        s.join(b, false, bits(8, &[2, 6]));
        // Chunk 1 is held by `a` alone, 2 and 6 by both: `a` starts at 1 and goes on to 2.
        assert_eq!(s.next_run(&a, &m), Some((1, 2)));
        assert_eq!(s.next_run(&b, &m), Some((6, 1)));
        // Nothing `b` holds waits any more, and others still wait: no endgame yet.
        assert_eq!(s.next_run(&b, &m), None);
        // The seeder is asked for what no other downloader holds.
        let (first, _) = s.next_run(&seeder, &m).unwrap();
        assert!([0, 3, 4, 5, 7].contains(&first), "started at {first}");
    }

    #[test]
    fn announcements_and_departures_change_what_is_asked() {
        let m = manifest(4);
        let mut s = Sched::new(0..4, 4, 0);
        let a = PeerId::random();
        s.join(a, false, bits(4, &[]));
        assert_eq!(s.next_run(&a, &m), None);
        s.gained(&a, &[2, 3, 99]);
        assert_eq!(s.next_run(&a, &m), Some((2, 2)));
        s.lacks(&a, 3);
        s.leave(&a);
        // Both requested chunks wait again; nobody holds anything.
        let c = PeerId::random();
        s.join(c, true, Vec::new());
        assert_eq!(s.next_run(&c, &m), Some((0, 4)));
    }

    #[test]
    fn the_endgame_duplicates_a_request_once_nothing_waits() {
        let m = manifest(2);
        let mut s = Sched::new(0..2, 2, 0);
        let (slow, fast, third) = (PeerId::random(), PeerId::random(), PeerId::random());
        s.join(slow, true, Vec::new());
        s.join(fast, true, Vec::new());
        s.join(third, true, Vec::new());
        assert_eq!(s.next_run(&slow, &m), Some((0, 2)));
        // Everything is requested: `fast` duplicates one chunk at a time.
        assert_eq!(s.next_run(&fast, &m), Some((0, 1)));
        assert_eq!(s.next_run(&fast, &m), Some((1, 1)));
        // Each chunk is due from two peers now: no third copy.
        assert_eq!(s.next_run(&third, &m), None);
        s.settle(0);
        s.leave(&slow);
        // Chunk 1 is still due from `fast`: it does not wait again.
        assert_eq!(s.next_run(&slow, &m), None);
        assert!(!s.nothing_due());
        s.settle(1);
        assert!(s.nothing_due());
    }

    #[test]
    fn a_seeder_that_lacks_a_chunk_is_asked_for_the_others_and_someone_else_for_it() {
        let m = manifest(4);
        let mut s = Sched::new(0..4, 4, 0);
        let (damaged, honest) = (PeerId::random(), PeerId::random());
        s.join(damaged, true, Vec::new());
        assert_eq!(s.next_run(&damaged, &m), Some((0, 4)));
        // Its copy of chunk 1 does not verify: it answers Missing.
        s.lacks(&damaged, 1);
        assert_eq!(s.damaged.get(&damaged), Some(&1));
        assert!(!s.holds_all(&damaged));
        assert_eq!(s.unheld(), [1], "nobody else holds it");
        assert_eq!(s.next_run(&damaged, &m), None, "it is not asked again");
        s.join(honest, true, Vec::new());
        assert!(s.unheld().is_empty());
        assert_eq!(s.next_run(&honest, &m), Some((1, 1)));
    }
}
