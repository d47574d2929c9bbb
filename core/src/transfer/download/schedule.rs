//! Which chunk to ask which peer for next. Every connected peer of a share says which chunks it
//! holds (a bitfield at hello, then announcements as it gains more); chunks go rarest first, so a
//! swarm spreads what only one peer has before that peer leaves. Among equally rare chunks, a
//! download alone with its providers walks on from its own starting point (sequential runs);
//! once other downloaders are about, each request starts at a random place, so downloaders do not
//! fall into step asking a seeder for the same chunks, and trade what they got instead.
//!
//! A seeder's uplink is what a swarm waits on: each chunk it sends twice is a chunk the swarm gets
//! later. So while other downloaders are about, the downloaders split the chunks nobody holds
//! among themselves (rendezvous hashing over the peer ids each one sees, no messages): each asks a
//! complete peer for its own share first, and for the others' chunks from whoever got them. Only
//! once its whole share is asked for does it ask a complete peer for the rest (the owner may be
//! slow, gone, or a holder that does not download); a peer that leaves gives its share back.
//! No chunk is asked twice, except in the endgame: once every missing chunk is requested, an idle
//! peer may duplicate a request still due elsewhere, and the first answer wins.

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
/// Chunks owned together (consecutive, so a request still asks for a run of them).
const OWNED_RUN: u64 = 4;

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
    /// This downloader's key in the split of unheld chunks, and each partial peer's.
    own_key: u64,
    keys: HashMap<PeerId, u64>,
}

/// A peer's key in the split of chunks among downloaders (the same on every node).
fn split_key(peer: &PeerId) -> u64 {
    let hash = blake3::hash(&peer.to_bytes());
    let mut key = [0u8; 8];
    key.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(key)
}

/// The rendezvous weight of `key` for the run of chunks holding `chunk` (splitmix64).
fn weight(key: u64, chunk: u64) -> u64 {
    let mut z = (key ^ (chunk / OWNED_RUN)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Sched {
    /// A schedule for `missing` chunks out of `chunk_count`, walking from `pivot`, for the
    /// downloader `me`.
    pub(super) fn new(
        missing: impl IntoIterator<Item = u64>,
        chunk_count: u64,
        pivot: u64,
        me: &PeerId,
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
            own_key: split_key(me),
            keys: HashMap::new(),
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
        self.keys.insert(peer, split_key(&peer));
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
        self.keys.remove(peer);
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
        let swarming = self.swarming();
        let from = if swarming { self.roll() } else { self.pivot };
        // A complete peer in a swarm is asked for this downloader's share of the chunks first.
        let mut own = swarming && self.holds_all(peer);
        let mut first = self.rarest_waiting(peer, from, own);
        if first.is_none() && own {
            own = false;
            first = self.rarest_waiting(peer, from, false);
        }
        let Some(first) = first else {
            return self.endgame(peer);
        };
        let mut count = 0u32;
        let mut bytes = 0u64;
        let mut i = first;
        while self.waiting.contains(&i)
            && self.holds(peer, i)
            && (!own || self.in_own_share(i))
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

    /// Whether nobody holds chunk `i` and it is in this downloader's share of such chunks.
    fn in_own_share(&self, i: u64) -> bool {
        let mine = weight(self.own_key, i);
        self.rarity(i) == 0 && self.keys.values().all(|&key| weight(key, i) > mine)
    }

    /// The waiting chunk `peer` holds that the fewest other peers hold, first from `from` on
    /// (among the first [`RARITY_CANDIDATES`] it holds); with `own`, only those of them in this
    /// downloader's share (each is weighed against every partial peer: the bound keeps a request
    /// cheap in a share of a hundred thousand chunks).
    fn rarest_waiting(&self, peer: &PeerId, from: u64, own: bool) -> Option<u64> {
        // Nothing is rarer than a chunk that no partial peer holds besides `peer` itself.
        let floor = u16::from(matches!(self.holders.get(peer), Some(Holding::Some(_))));
        let mut best: Option<(u16, u64)> = None;
        let walk = self
            .waiting
            .range(from..)
            .chain(self.waiting.range(..from))
            .filter(|i| self.holds(peer, **i))
            .take(RARITY_CANDIDATES)
            .filter(|i| !own || self.in_own_share(**i));
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
        let mut s = Sched::new(0..8, 8, 5, &PeerId::random());
        let seeder = PeerId::random();
        s.join(seeder, true, Vec::new());
        assert_eq!(s.next_run(&seeder, &m), Some((5, 3)));
        assert_eq!(s.next_run(&seeder, &m), Some((0, 5)));
        assert_eq!(s.next_run(&seeder, &m), None);
    }

    #[test]
    fn the_rarest_chunk_goes_first() {
        let m = manifest(8);
        let mut s = Sched::new(0..8, 8, 5, &PeerId::random());
        let (seeder, a, b) = (PeerId::random(), PeerId::random(), PeerId::random());
        s.join(seeder, true, Vec::new());
        s.join(a, false, bits(8, &[1, 2, 6]));
        s.join(b, false, bits(8, &[2, 6]));
        // Chunk 1 is held by `a` alone, 2 and 6 by both: `a` starts at 1 and goes on to 2.
        assert_eq!(s.next_run(&a, &m), Some((1, 2)));
        assert_eq!(s.next_run(&b, &m), Some((6, 1)));
        // Nothing `b` holds waits any more, and others still wait: no endgame yet.
        assert_eq!(s.next_run(&b, &m), None);
        // The seeder is asked for what no other downloader holds: this one's share first, then
        // the rest.
        let mut asked = Vec::new();
        while let Some((first, count)) = s.next_run(&seeder, &m) {
            asked.extend(first..first + u64::from(count));
            if s.waiting.is_empty() {
                break;
            }
        }
        asked.sort_unstable();
        assert_eq!(asked, [0, 3, 4, 5, 7]);
    }

    /// The chunks `s` asks `seeder` for while in its own share (its first runs).
    fn own_share(s: &mut Sched, seeder: &PeerId, m: &Manifest) -> Vec<u64> {
        let mut share = Vec::new();
        while let Some((first, count)) = s.next_run(seeder, m) {
            if !s.in_own_share(first) {
                for i in first..first + u64::from(count) {
                    s.unrequest(seeder, i);
                }
                break;
            }
            share.extend(first..first + u64::from(count));
        }
        share
    }

    #[test]
    fn downloaders_in_a_swarm_ask_a_seeder_for_disjoint_shares_of_what_nobody_holds() {
        let m = manifest(64);
        let seeder = PeerId::random();
        let downloaders: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        let mut shares: Vec<Vec<u64>> = Vec::new();
        for (n, me) in downloaders.iter().enumerate() {
            let mut s = Sched::new(0..64, 64, n as u64 * 20, me);
            s.join(seeder, true, Vec::new());
            for other in downloaders.iter().filter(|p| *p != me) {
                s.join(*other, false, bits(64, &[]));
            }
            shares.push(own_share(&mut s, &seeder, &m));
            // Its share asked for, it asks the seeder for the others' too.
            assert!(s.next_run(&seeder, &m).is_some());
        }
        // Every chunk is in exactly one downloader's share.
        let mut all = shares.concat();
        all.sort_unstable();
        assert_eq!(all, (0..64).collect::<Vec<_>>(), "shares {shares:?}");
        assert!(shares.iter().all(|s| !s.is_empty()), "shares {shares:?}");
    }

    #[test]
    fn a_downloader_that_leaves_gives_its_share_back() {
        let m = manifest(64);
        let (me, other, seeder) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut s = Sched::new(0..64, 64, 0, &me);
        s.join(seeder, true, Vec::new());
        s.join(other, false, bits(64, &[]));
        let mut asked = own_share(&mut s, &seeder, &m);
        assert!(asked.len() < 64, "the other's share is not asked at first");
        s.leave(&other);
        // Alone with the seeder again: everything left is this one's to ask for.
        while let Some((first, count)) = s.next_run(&seeder, &m) {
            assert!(s.in_own_share(first));
            asked.extend(first..first + u64::from(count));
        }
        asked.sort_unstable();
        assert_eq!(asked, (0..64).collect::<Vec<_>>());
    }

    #[test]
    fn announcements_and_departures_change_what_is_asked() {
        let m = manifest(4);
        let mut s = Sched::new(0..4, 4, 0, &PeerId::random());
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
        let mut s = Sched::new(0..2, 2, 0, &PeerId::random());
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
        let mut s = Sched::new(0..4, 4, 0, &PeerId::random());
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
