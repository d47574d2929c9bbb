//! A hybrid logical clock: timestamps that follow the wall clock but never go backwards and always
//! come after every timestamp the node has seen, so a reply sorts after what it answers even when
//! the devices' clocks are minutes apart.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Remote timestamps further ahead of the local clock than this are not adopted (a peer with a
/// clock years ahead must not drag everyone's clock along); their messages still sort by them.
pub const MAX_ADOPTED_DRIFT_MS: u64 = 3600 * 1000;

/// A hybrid logical timestamp: milliseconds since the Unix epoch, then a counter for events
/// within the same millisecond. Ordered by `(ms, counter)`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp {
    /// Milliseconds since the Unix epoch (of the clock that wrote it, possibly skewed).
    pub ms: u64,
    /// Orders events within one millisecond.
    pub counter: u32,
}

impl Timestamp {
    /// The timestamp of a local event at physical time `pt`, after `last`.
    pub fn tick(last: Timestamp, pt: u64) -> Timestamp {
        if pt > last.ms {
            Timestamp { ms: pt, counter: 0 }
        } else {
            last.successor()
        }
    }

    /// The clock after seeing `remote` at physical time `pt`: after both `last` and `remote`.
    pub fn merge(last: Timestamp, remote: Timestamp, pt: u64) -> Timestamp {
        let remote = if remote.ms > pt.saturating_add(MAX_ADOPTED_DRIFT_MS) {
            Timestamp::default()
        } else {
            remote
        };
        let top = last.max(remote);
        if pt > top.ms {
            Timestamp { ms: pt, counter: 0 }
        } else {
            top.successor()
        }
    }

    fn successor(self) -> Timestamp {
        match self.counter.checked_add(1) {
            Some(counter) => Timestamp {
                ms: self.ms,
                counter,
            },
            None => Timestamp {
                ms: self.ms.saturating_add(1),
                counter: 0,
            },
        }
    }
}

/// The node's clock: the system clock shifted by a configurable offset, made hybrid.
pub struct Clock {
    offset_ms: i64,
    last: Mutex<Timestamp>,
}

impl Clock {
    /// A clock `offset_ms` away from the system clock, starting after `seen`.
    pub fn new(offset_ms: i64, seen: Timestamp) -> Self {
        Self {
            offset_ms,
            last: Mutex::new(seen),
        }
    }

    /// The (shifted) wall clock in milliseconds since the Unix epoch.
    pub fn physical_ms(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        u64::try_from(now.saturating_add(self.offset_ms)).unwrap_or(0)
    }

    /// A fresh timestamp for something this node writes.
    pub fn now(&self) -> Timestamp {
        let pt = self.physical_ms();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        *last = Timestamp::tick(*last, pt);
        *last
    }

    /// Takes note of a timestamp received from another node.
    pub fn observe(&self, remote: Timestamp) {
        let pt = self.physical_ms();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        *last = Timestamp::merge(*last, remote, pt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    #[test]
    fn local_events_never_go_backwards_even_when_the_wall_clock_does() {
        let a = Timestamp::tick(Timestamp::default(), 1000);
        let b = Timestamp::tick(a, 1000);
        let c = Timestamp::tick(b, 400);
        assert!(a < b && b < c);
        assert_eq!(
            Timestamp::tick(c, 2000),
            Timestamp {
                ms: 2000,
                counter: 0
            }
        );
    }

    #[test]
    fn replies_sort_after_what_they_answer_under_ten_minutes_of_skew() {
        let real = 1_700_000_000_000u64;
        // Alice runs 10 minutes fast, Bob 10 minutes slow; they talk back and forth.
        let (fast, slow) = (real + 10 * MIN, real - 10 * MIN);
        let mut alice = Timestamp::default();
        let mut bob = Timestamp::default();
        let mut conversation = Vec::new();
        for round in 0..5u64 {
            alice = Timestamp::tick(alice, fast + round);
            let question = alice;
            bob = Timestamp::merge(bob, question, slow + round);
            bob = Timestamp::tick(bob, slow + round);
            let answer = bob;
            alice = Timestamp::merge(alice, answer, fast + round);
            conversation.push(question);
            conversation.push(answer);
        }
        let mut sorted = conversation.clone();
        sorted.sort();
        assert_eq!(sorted, conversation, "causal order survives the skew");

        // And the other way round: the slow device starts.
        let first = Timestamp::tick(Timestamp::default(), slow);
        let reply = Timestamp::tick(Timestamp::merge(Timestamp::default(), first, fast), fast);
        assert!(first < reply);
        let reply_back = Timestamp::tick(Timestamp::merge(first, reply, slow), slow);
        assert!(reply < reply_back);
    }

    #[test]
    fn a_clock_years_ahead_is_not_adopted() {
        let now = 1_700_000_000_000u64;
        let wild = Timestamp {
            ms: now + 365 * 24 * 60 * MIN,
            counter: 0,
        };
        let after = Timestamp::merge(Timestamp::default(), wild, now);
        assert_eq!(
            after,
            Timestamp {
                ms: now,
                counter: 0
            }
        );
    }

    #[test]
    fn the_offset_shifts_the_clock() {
        let ahead = Clock::new(10 * MIN as i64, Timestamp::default());
        let behind = Clock::new(-(10 * MIN as i64), Timestamp::default());
        // Read the clock behind first: the gap is then 20 minutes plus the time between the reads.
        let earlier = behind.physical_ms();
        let gap = ahead.physical_ms() - earlier;
        assert!((20 * MIN..20 * MIN + 5_000).contains(&gap), "{gap}");
        assert!(ahead.now() < ahead.now());
    }
}
