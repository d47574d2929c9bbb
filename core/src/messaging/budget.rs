//! What other devices can make this one store: every envelope that arrives (a message for this
//! device, a room message, one carried for others, a receipt) and every receipt written for one
//! is counted against its author's class: contacts share one budget, strangers (everyone who is
//! not a contact) share a smaller one. When a class is full, its oldest items go first, so a
//! stranger's flood only ever evicts strangers' items, never a contact's. What this device
//! writes itself is not counted.

use rusqlite::{Transaction, params};

/// How much one class may make this device store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Bytes stored (envelopes and message texts, with a per-row allowance).
    pub bytes: u64,
    /// Envelopes stored.
    pub envelopes: u32,
}

/// The budgets of the two classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageBudget {
    /// Everyone who is not a contact, together.
    pub strangers: Budget,
    /// Contacts, together.
    pub contacts: Budget,
}

impl Default for StorageBudget {
    /// Strangers: 16 MiB and 5,000 envelopes; contacts: 64 MiB and 20,000.
    fn default() -> Self {
        Self {
            strangers: Budget {
                bytes: 16 << 20,
                envelopes: 5000,
            },
            contacts: Budget {
                bytes: 64 << 20,
                envelopes: 20_000,
            },
        }
    }
}

/// Whose budget a stored envelope counts against (stored as a number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Written by this device: not counted.
    Own = 0,
    /// From a contact (or a receipt for a contact's message).
    Contact = 1,
    /// From anyone else.
    Stranger = 2,
}

impl Class {
    /// The class of what `author` makes this device store.
    pub fn of(is_contact: bool) -> Self {
        if is_contact {
            Class::Contact
        } else {
            Class::Stranger
        }
    }
}

impl StorageBudget {
    /// The budget of `class`; `None` for what this device writes.
    pub fn of(&self, class: Class) -> Option<Budget> {
        match class {
            Class::Own => None,
            Class::Contact => Some(self.contacts),
            Class::Stranger => Some(self.strangers),
        }
    }
}

/// What a row costs beyond its payload (ids, indexes, page slack, the log of recent writes), so
/// the budget bounds the data dir and not only the payload: 20 strangers writing 250 messages
/// of 8 KiB each grew a data dir by 15.8 MB of a 16 MiB budget with 1 KiB (without the log).
const ROW_OVERHEAD: u64 = 1536;

/// The bytes an item is counted for: what it stores, plus a row's overhead.
pub fn cost(stored: usize) -> u64 {
    stored as u64 + ROW_OVERHEAD
}

/// Makes room in `class` for one more envelope of `cost` bytes by evicting the class's oldest
/// envelopes (and the messages they carry); `false` when it can never fit.
pub fn make_room(
    tx: &Transaction<'_>,
    class: Class,
    cost: u64,
    budget: Option<Budget>,
) -> rusqlite::Result<bool> {
    let Some(budget) = budget else {
        return Ok(true);
    };
    if cost > budget.bytes || budget.envelopes == 0 {
        return Ok(false);
    }
    let (mut count, mut bytes) = used(tx, class)?;
    let fits = |count: u64, bytes: u64| {
        count < u64::from(budget.envelopes) && bytes.saturating_add(cost) <= budget.bytes
    };
    while !fits(count, bytes) {
        let oldest: Vec<(i64, Vec<u8>, i64)> = {
            let mut stmt = tx.prepare_cached(
                "SELECT seq, id, cost FROM msg_envelopes WHERE class = ?1 ORDER BY seq LIMIT 64",
            )?;
            stmt.query_map([class as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        if oldest.is_empty() {
            return Ok(false);
        }
        for (seq, id, freed) in oldest {
            if fits(count, bytes) {
                break;
            }
            evict(tx, seq, &id)?;
            count = count.saturating_sub(1);
            bytes = bytes.saturating_sub(u64::try_from(freed).unwrap_or(0));
        }
    }
    Ok(true)
}

/// Forgets one envelope and the message it carried here.
fn evict(tx: &Transaction<'_>, seq: i64, id: &[u8]) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM msg_envelopes WHERE seq = ?1", [seq])?;
    tx.execute(
        "DELETE FROM msg_messages WHERE id = ?1 AND outgoing = 0",
        params![id],
    )?;
    Ok(())
}

/// What `class` holds now: envelopes and bytes counted.
pub fn used(tx: &rusqlite::Connection, class: Class) -> rusqlite::Result<(u64, u64)> {
    tx.query_row(
        "SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM msg_envelopes WHERE class = ?1",
        [class as i64],
        |r| {
            Ok((
                u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
            ))
        },
    )
}
