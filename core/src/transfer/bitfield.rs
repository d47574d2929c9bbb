//! One bit per chunk: which chunks a peer holds, which this node can serve, which were uploaded.
//! Bit `i % 8` of byte `i / 8`, as on the wire.

/// A fixed number of bits, all clear at first. Indexes past the end read as clear and are
/// ignored when set, so a peer's out-of-range index can do no harm.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: u64,
}

impl Bitfield {
    /// `len` clear bits.
    pub fn new(len: u64) -> Self {
        Self {
            bytes: vec![0; byte_len(len)],
            len,
        }
    }

    /// The bits a peer sent as bytes, cut or padded to `len` bits.
    pub fn from_bytes(mut bytes: Vec<u8>, len: u64) -> Self {
        bytes.resize(byte_len(len), 0);
        if let Some(last) = bytes.last_mut()
            && !len.is_multiple_of(8)
        {
            *last &= (1u8 << (len % 8)) - 1;
        }
        Self { bytes, len }
    }

    /// The bytes, as sent on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// How many bits.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether there are no bits at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether bit `i` is set.
    pub fn get(&self, i: u64) -> bool {
        self.slot(i)
            .is_some_and(|(byte, mask)| self.bytes[byte] & mask != 0)
    }

    /// Sets bit `i`; true when it was clear.
    pub fn set(&mut self, i: u64) -> bool {
        let Some((byte, mask)) = self.slot(i) else {
            return false;
        };
        let was_clear = self.bytes[byte] & mask == 0;
        self.bytes[byte] |= mask;
        was_clear
    }

    /// Clears bit `i`; true when it was set.
    pub fn clear(&mut self, i: u64) -> bool {
        let Some((byte, mask)) = self.slot(i) else {
            return false;
        };
        let was_set = self.bytes[byte] & mask != 0;
        self.bytes[byte] &= !mask;
        was_set
    }

    /// The indexes of the set bits, in order.
    pub fn ones(&self) -> impl Iterator<Item = u64> + '_ {
        self.bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b != 0)
            .flat_map(|(byte, b)| {
                (0..8u64)
                    .filter(move |bit| b & (1 << bit) != 0)
                    .map(move |bit| byte as u64 * 8 + bit)
            })
    }

    /// How many bits are set.
    pub fn count(&self) -> u64 {
        self.bytes.iter().map(|b| u64::from(b.count_ones())).sum()
    }

    /// The bits set in `self` but not in `seen`, which is updated to include them (the same
    /// length is assumed; `seen` grows to it).
    pub fn news_since(&self, seen: &mut Bitfield) -> Vec<u64> {
        if seen.len != self.len {
            *seen = Bitfield::from_bytes(std::mem::take(&mut seen.bytes), self.len);
        }
        let mut new = Vec::new();
        for (byte, (now, old)) in self.bytes.iter().zip(seen.bytes.iter_mut()).enumerate() {
            let fresh = now & !*old;
            if fresh == 0 {
                continue;
            }
            *old |= fresh;
            new.extend(
                (0..8u64)
                    .filter(|bit| fresh & (1 << bit) != 0)
                    .map(|bit| byte as u64 * 8 + bit),
            );
        }
        new
    }

    /// A bitfield of `len` bits, all set.
    pub fn full(len: u64) -> Self {
        Self::from_bytes(vec![0xff; byte_len(len)], len)
    }

    fn slot(&self, i: u64) -> Option<(usize, u8)> {
        if i >= self.len {
            return None;
        }
        let byte = usize::try_from(i / 8).ok()?;
        Some((byte, 1 << (i % 8)))
    }
}

fn byte_len(bits: u64) -> usize {
    usize::try_from(bits.div_ceil(8)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_set_cleared_and_read_and_out_of_range_is_clear() {
        let mut b = Bitfield::new(10);
        assert!(b.set(0) && b.set(9) && !b.set(9));
        assert!(!b.set(10) && !b.set(u64::MAX), "out of range is ignored");
        assert!(b.get(0) && b.get(9) && !b.get(1) && !b.get(800));
        assert_eq!(b.ones().collect::<Vec<_>>(), vec![0, 9]);
        assert_eq!(b.count(), 2);
        assert!(b.clear(0) && !b.clear(0));
        assert_eq!(b.as_bytes(), &[0, 0b10]);
    }

    #[test]
    fn bytes_from_a_peer_are_cut_to_the_length() {
        let b = Bitfield::from_bytes(vec![0xff, 0xff, 0xff], 10);
        assert_eq!(b.as_bytes(), &[0xff, 0b11]);
        assert_eq!(b.count(), 10);
        assert_eq!(Bitfield::from_bytes(Vec::new(), 9).as_bytes(), &[0, 0]);
        assert_eq!(Bitfield::full(10), b);
    }

    #[test]
    fn news_are_reported_once() {
        let mut have = Bitfield::new(20);
        let mut seen = Bitfield::default();
        have.set(3);
        have.set(17);
        assert_eq!(have.news_since(&mut seen), vec![3, 17]);
        assert!(have.news_since(&mut seen).is_empty());
        have.set(4);
        assert_eq!(have.news_since(&mut seen), vec![4]);
    }
}
