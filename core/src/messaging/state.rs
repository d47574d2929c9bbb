//! The messaging tables (created by the store's migrations 3, 5 and 6): envelopes as received
//! (ciphertext, numbered in arrival order for sync cursors), the readable messages, rooms and sync
//! cursors. Messages are shown with the name the user gave their author, when a contact.

use libp2p::PeerId;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::budget::{self, Budget, Class};
use super::crypto::RoomKey;
use super::envelope::Envelope;
use super::hlc::Timestamp;
use super::{Message, MessageId, MessageState, MessageStats, Recipient, RoomId};
use crate::error::Result;
use crate::store::Store;
use crate::transfer::{ContentId, Ticket};

/// How an envelope is kept.
pub struct Keep<'a> {
    /// Hops it may still travel from here.
    pub hops: u8,
    /// Whether it is only carried for others (counts against the carry quota).
    pub carried: bool,
    /// The peer it came from; `None` when written here.
    pub source: Option<&'a PeerId>,
    /// Whose storage budget it counts against.
    pub class: Class,
    /// Whether its bytes are kept: an envelope that travels no further (a message or a receipt
    /// for this device) is kept by its id alone, to recognise copies.
    pub raw: bool,
    /// The bytes it is counted for beyond its envelope (the message text it carries).
    pub extra: usize,
}

impl Keep<'_> {
    /// What this device writes itself: travels, not counted.
    pub fn own() -> Keep<'static> {
        Keep {
            hops: super::envelope::MAX_HOPS,
            carried: false,
            source: None,
            class: Class::Own,
            raw: true,
            extra: 0,
        }
    }

    /// The bytes the envelope `env` is counted for, kept this way.
    pub fn cost(&self, env: &Envelope) -> u64 {
        let raw = if self.raw { env.raw().len() } else { 0 };
        budget::cost(raw + self.extra)
    }
}

/// Stores an envelope within its class's budget (evicting the class's oldest when full);
/// `false` when one with the same id is already there or it cannot fit.
pub fn insert_envelope(
    tx: &Transaction<'_>,
    env: &Envelope,
    keep: &Keep<'_>,
    limit: Option<Budget>,
) -> rusqlite::Result<bool> {
    let cost = keep.cost(env);
    let exists = tx
        .query_row(
            "SELECT 1 FROM msg_envelopes WHERE id = ?1",
            [&env.id.0[..]],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if exists || !budget::make_room(tx, keep.class, cost, limit)? {
        return Ok(false);
    }
    let raw: &[u8] = if keep.raw { env.raw() } else { &[] };
    let n = tx.execute(
        "INSERT OR IGNORE INTO msg_envelopes
            (id, author, recipient, expires, hops, carried, source, raw, class, cost)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            &env.id.0[..],
            env.author.to_base58(),
            env.to,
            ms(env.expires_ms),
            keep.hops,
            keep.carried,
            keep.source.map(|p| p.to_base58()).unwrap_or_default(),
            raw,
            keep.class as i64,
            ms(cost),
        ],
    )?;
    Ok(n == 1)
}

/// Stores a readable message that arrived (or was written) at `arrived_ms`, local time.
pub fn insert_message(
    tx: &Transaction<'_>,
    msg: &Message,
    time: Timestamp,
    expires_ms: u64,
    arrived_ms: u64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO msg_messages
            (id, author, recipient, text, hlc_ms, hlc_counter, expires, state, outgoing,
             attachment, arrived, to_room)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            &msg.id.0[..],
            msg.from.to_base58(),
            msg.to,
            msg.text,
            ms(time.ms),
            time.counter,
            ms(expires_ms),
            msg.state,
            msg.outgoing,
            msg.attachment.as_ref().map(Ticket::to_string),
            ms(arrived_ms),
            matches!(msg.to, Recipient::Room(_)),
        ],
    )
    .map(drop)
}

/// How many messages of `author` arrived here (not written here) after `since_ms`, local time.
pub fn arrivals(store: &Store, author: &PeerId, since_ms: u64) -> Result<u64> {
    store.with(|c| {
        c.query_row(
            "SELECT COUNT(*) FROM msg_messages WHERE author = ?1 AND arrived > ?2 AND outgoing = 0",
            params![author.to_base58(), ms(since_ms)],
            |r| r.get::<_, i64>(0),
        )
        .map(count)
    })
}

/// Runs `f` in one transaction.
pub fn write<R>(
    store: &Store,
    f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<R>,
) -> Result<R> {
    store.with(|conn| {
        let tx = conn.transaction()?;
        let r = f(&tx)?;
        tx.commit()?;
        Ok(r)
    })
}

/// Whether an envelope with this id is stored.
pub fn has_envelope(store: &Store, id: &MessageId) -> Result<bool> {
    store.with(|c| {
        c.query_row(
            "SELECT 1 FROM msg_envelopes WHERE id = ?1",
            [&id.0[..]],
            |_| Ok(()),
        )
        .optional()
        .map(|r| r.is_some())
    })
}

/// How many envelopes are carried for `author`, and in all.
pub fn carried_counts(store: &Store, author: &PeerId) -> Result<(u64, u64)> {
    store.with(|c| {
        let of_author: i64 = c.query_row(
            "SELECT COUNT(*) FROM msg_envelopes WHERE carried = 1 AND author = ?1",
            [author.to_base58()],
            |r| r.get(0),
        )?;
        let total: i64 = c.query_row(
            "SELECT COUNT(*) FROM msg_envelopes WHERE carried = 1",
            [],
            |r| r.get(0),
        )?;
        Ok((count(of_author), count(total)))
    })
}

/// Moves an outgoing message to `to` if it is in one of `from`; `true` when it moved.
pub fn set_state(
    store: &Store,
    id: &MessageId,
    from: &[MessageState],
    to: MessageState,
) -> Result<bool> {
    store.with(|c| {
        let mut changed = false;
        for state in from {
            changed |= c.execute(
                "UPDATE msg_messages SET state = ?1 WHERE id = ?2 AND outgoing = 1 AND state = ?3",
                params![to, &id.0[..], state],
            )? > 0;
        }
        Ok(changed)
    })
}

/// Marks this device's message `id` to `recipient` delivered, unless it already was; `true` when
/// it moved. A receipt from anyone else (a carrier that saw the id) changes nothing.
pub fn deliver(store: &Store, id: &MessageId, recipient: &PeerId) -> Result<bool> {
    store.with(|c| {
        c.execute(
            "UPDATE msg_messages SET state = ?3
             WHERE id = ?1 AND outgoing = 1 AND recipient = ?2 AND state != ?3",
            params![
                &id.0[..],
                Recipient::Peer(*recipient),
                MessageState::Delivered
            ],
        )
        .map(|n| n > 0)
    })
}

/// Every readable message, in causal (hybrid clock) order, the same on every replica.
pub fn messages(store: &Store) -> Result<Vec<Message>> {
    store.with(|c| {
        let mut stmt = c.prepare(
            "SELECT m.id, m.author, m.recipient, m.text, m.state, m.hlc_ms, m.outgoing,
                    m.attachment, p.name
             FROM msg_messages m LEFT JOIN contacts p ON p.peer_id = m.author
             ORDER BY m.hlc_ms, m.hlc_counter, m.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Recipient>(2).ok(),
                r.get::<_, String>(3)?,
                r.get::<_, MessageState>(4).ok(),
                r.get::<_, i64>(5)?,
                r.get::<_, bool>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Option<String>>(8)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, from, to, text, state, time, outgoing, attachment, from_name) = row?;
            // A row that does not parse is skipped: the store outlives format changes.
            let (Ok(id), Ok(from), Some(to), Some(state)) =
                (<[u8; 32]>::try_from(id), from.parse::<PeerId>(), to, state)
            else {
                continue;
            };
            out.push(Message {
                id: MessageId(id),
                from,
                from_name: from_name.filter(|n| !n.is_empty()),
                to,
                text,
                attachment: attachment.and_then(|t| t.parse().ok()),
                state,
                time: u64::try_from(time).unwrap_or(0),
                outgoing,
            });
        }
        Ok(out)
    })
}

/// The peers around the messages that attach the share `content`: each author, a direct
/// message's recipient, and for a room message everyone who wrote in that room (the members this
/// device knows). They may hold the files: an author serves them, members fetch them.
pub fn attachment_peers(store: &Store, content: &ContentId) -> Result<Vec<PeerId>> {
    store.with(|c| {
        let mut stmt = c.prepare(
            "SELECT author, recipient, attachment FROM msg_messages WHERE attachment IS NOT NULL",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Recipient>(1).ok(),
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut peers: Vec<PeerId> = Vec::new();
        let mut rooms: Vec<Recipient> = Vec::new();
        for row in rows {
            let (author, to, ticket) = row?;
            if !ticket
                .parse::<Ticket>()
                .is_ok_and(|t| t.content == *content)
            {
                continue;
            }
            peers.extend(author.parse::<PeerId>().ok());
            match to {
                Some(Recipient::Peer(p)) => peers.push(p),
                Some(room @ Recipient::Room(_)) => rooms.push(room),
                None => {}
            }
        }
        let mut members =
            c.prepare("SELECT DISTINCT author FROM msg_messages WHERE recipient = ?1")?;
        for room in rooms {
            let authors = members.query_map([room], |r| r.get::<_, String>(0))?;
            for author in authors {
                peers.extend(author?.parse::<PeerId>().ok());
            }
        }
        let mut seen = std::collections::HashSet::new();
        peers.retain(|p| seen.insert(*p));
        Ok(peers)
    })
}

/// The latest hybrid timestamp stored, to start the clock after it.
pub fn latest_time(store: &Store) -> Result<Timestamp> {
    store.with(|c| {
        c.query_row(
            "SELECT hlc_ms, hlc_counter FROM msg_messages ORDER BY hlc_ms DESC, hlc_counter DESC LIMIT 1",
            [],
            |r| {
                Ok(Timestamp {
                    ms: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                    counter: r.get(1)?,
                })
            },
        )
        .optional()
        .map(Option::unwrap_or_default)
    })
}

/// An envelope offered to a peer.
pub struct Offered {
    /// Its arrival number here.
    pub seq: u64,
    /// Its id.
    pub id: MessageId,
    /// Hops it may still travel.
    pub hops: u8,
    /// Its recipient.
    pub recipient: Recipient,
    /// Whether this node wrote it.
    pub own: bool,
    /// Whether this node only carries it for others.
    pub carried: bool,
    /// The envelope.
    pub raw: Vec<u8>,
}

/// The highest arrival number.
pub fn max_seq(store: &Store) -> Result<u64> {
    store.with(|c| {
        c.query_row("SELECT COALESCE(MAX(seq), 0) FROM msg_envelopes", [], |r| {
            r.get::<_, i64>(0)
        })
        .map(count)
    })
}

/// Unexpired envelopes numbered in `(since, upto]` that `peer` might take: addressed to it, or
/// still allowed to travel; neither written by it nor received from it. At most `limit`.
pub fn candidates(
    store: &Store,
    local: &PeerId,
    peer: &PeerId,
    (since, upto): (u64, u64),
    now_ms: u64,
    limit: usize,
) -> Result<Vec<Offered>> {
    let peer = peer.to_base58();
    let local = local.to_base58();
    store.with(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT seq, id, hops, recipient, author, raw, carried FROM msg_envelopes
             WHERE seq > ?1 AND seq <= ?2 AND expires > ?3 AND author != ?4 AND source != ?4
               AND (recipient = ?4 OR hops > 0) AND length(raw) > 0
             ORDER BY seq LIMIT ?5",
        )?;
        let rows = stmt.query_map(
            params![
                ms(since),
                ms(upto),
                ms(now_ms),
                peer,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, u8>(2)?,
                    r.get::<_, Recipient>(3).ok(),
                    r.get::<_, String>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                    r.get::<_, bool>(6)?,
                ))
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, id, hops, recipient, author, raw, carried) = row?;
            let (Ok(id), Some(recipient)) = (<[u8; 32]>::try_from(id), recipient) else {
                continue;
            };
            out.push(Offered {
                seq: count(seq),
                id: MessageId(id),
                hops,
                recipient,
                own: author == local,
                carried,
                raw,
            });
        }
        Ok(out)
    })
}

/// Forgets carried envelopes (handed to their recipient: carrying them on is pointless).
pub fn forget_carried(store: &Store, ids: &[MessageId]) -> Result<()> {
    write(store, |tx| {
        for id in ids {
            tx.execute(
                "DELETE FROM msg_envelopes WHERE id = ?1 AND carried = 1",
                [&id.0[..]],
            )?;
        }
        Ok(())
    })
}

/// The cursor of what was pulled from `peer` for a set of rooms (`scope`).
pub fn cursor(store: &Store, peer: &PeerId, scope: &[u8; 32]) -> Result<u64> {
    store.with(|c| {
        c.query_row(
            "SELECT seq FROM msg_cursors WHERE peer = ?1 AND scope = ?2",
            params![peer.to_base58(), &scope[..]],
            |r| r.get::<_, i64>(0),
        )
        .optional()
        .map(|s| s.map(count).unwrap_or(0))
    })
}

/// Records the cursor of `peer` for `scope`.
pub fn set_cursor(store: &Store, peer: &PeerId, scope: &[u8; 32], seq: u64) -> Result<()> {
    store.with(|c| {
        c.execute(
            "INSERT INTO msg_cursors (peer, scope, seq) VALUES (?1, ?2, ?3)
             ON CONFLICT (peer, scope) DO UPDATE SET seq = excluded.seq",
            params![peer.to_base58(), &scope[..], ms(seq)],
        )
        .map(drop)
    })
}

/// Remembers a room.
pub fn insert_room(store: &Store, name: &str, key: &RoomKey) -> Result<()> {
    store.with(|c| {
        c.execute(
            "INSERT INTO msg_rooms (id, name, key) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO NOTHING",
            params![&key.room_id()[..], name, &key.0[..]],
        )
        .map(drop)
    })
}

/// Every room this device is in.
pub fn rooms(store: &Store) -> Result<Vec<(RoomId, String, RoomKey)>> {
    store.with(|c| {
        let mut stmt = c.prepare("SELECT name, key FROM msg_rooms ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (name, key) = row?;
            let Ok(key) = <[u8; 32]>::try_from(key) else {
                continue;
            };
            let key = RoomKey(key);
            out.push((RoomId(key.room_id()), name, key));
        }
        Ok(out)
    })
}

/// Drops envelopes past their expiry and fails the outgoing messages that expired undelivered
/// (direct messages without a receipt, room messages never handed over). Returns the failed ones.
pub fn expire(store: &Store, now_ms: u64) -> Result<Vec<MessageId>> {
    write(store, |tx| {
        let mut stmt = tx.prepare(
            "SELECT id FROM msg_messages WHERE outgoing = 1 AND expires <= ?1
               AND (state = ?2 OR (state = ?3 AND to_room = 0))",
        )?;
        let ids: Vec<Vec<u8>> = stmt
            .query_map(
                params![ms(now_ms), MessageState::Queued, MessageState::Sent],
                |r| r.get(0),
            )?
            .collect::<rusqlite::Result<_>>()?;
        drop(stmt);
        let mut failed = Vec::new();
        for id in ids {
            tx.execute(
                "UPDATE msg_messages SET state = ?2 WHERE id = ?1",
                params![&id, MessageState::Failed],
            )?;
            if let Ok(id) = <[u8; 32]>::try_from(id) {
                failed.push(MessageId(id));
            }
        }
        tx.execute(
            "DELETE FROM msg_envelopes WHERE expires <= ?1",
            [ms(now_ms)],
        )?;
        Ok(failed)
    })
}

/// What the store holds (`sent` is counted in memory by the service, not here).
pub fn stats(store: &Store) -> Result<MessageStats> {
    store.with(|c: &mut Connection| {
        let q = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).map(count);
        Ok(MessageStats {
            envelopes: q("SELECT COUNT(*) FROM msg_envelopes")?,
            carried: q("SELECT COUNT(*) FROM msg_envelopes WHERE carried = 1")?,
            messages: q("SELECT COUNT(*) FROM msg_messages")?,
            sent: 0,
        })
    })
}

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
