//! Offline-first messaging: signed, encrypted envelopes written to SQLite before anything is sent,
//! reconciled between peers whenever they meet, carried for others within a quota, acknowledged by
//! receipts that travel back the same way, and ordered by a hybrid logical clock.
//!
//! The parts: [`envelope`] (the signed unit and its checks), [`crypto`] (encryption to a peer id
//! or a room key), [`hlc`] (the clock), [`room`] (room invites), [`state`] (the tables),
//! [`budget`] (what contacts and strangers may make this device store),
//! [`service`] (what the node does with messages) and [`sync`] (the `/meshdrop/msg/1` protocol).

mod body;
pub mod budget;
pub mod crypto;
pub mod envelope;
pub mod hlc;
pub mod room;
pub mod service;
pub mod state;
pub mod sync;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use libp2p::PeerId;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize, Serializer};

pub use budget::{Budget, StorageBudget};
pub use room::Room;

use crate::transfer::Ticket;

/// A message's unique id: the BLAKE3 hash of its signed envelope.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct MessageId(pub [u8; 32]);

/// A room's id, derived from its key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct RoomId(pub [u8; 32]);

macro_rules! hex_id {
    ($t:ty, $what:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", $what)
            }
        }
        impl FromStr for $t {
            type Err = crate::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                data_encoding::HEXLOWER_PERMISSIVE
                    .decode(s.as_bytes())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .map(Self)
                    .ok_or_else(|| crate::Error::Message(format!("not a {}: {s:?}", $what)))
            }
        }
        impl TryFrom<String> for $t {
            type Error = crate::Error;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }
    };
}
hex_id!(MessageId, "message id");
hex_id!(RoomId, "room id");

/// Whom a message is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Recipient {
    /// One device.
    Peer(PeerId),
    /// Every member of a room.
    Room(RoomId),
}

impl fmt::Display for Recipient {
    /// A peer id, or `room:<hex id>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipient::Peer(p) => write!(f, "{p}"),
            Recipient::Room(r) => write!(f, "room:{r}"),
        }
    }
}

impl FromStr for Recipient {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("room:") {
            Some(room) => room.parse().map(Recipient::Room),
            None => s
                .parse()
                .map(Recipient::Peer)
                .map_err(|e| crate::Error::Message(format!("not a peer id: {s:?}: {e}"))),
        }
    }
}

impl Serialize for Recipient {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Recipient {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Stored as its text form (a peer id, or `room:<hex id>`).
impl ToSql for Recipient {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.to_string().into())
    }
}

impl FromSql for Recipient {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: crate::Error| FromSqlError::Other(e.to_string().into()))
    }
}

/// Where a message is on its way. Incoming messages are `delivered`. Stored by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageState {
    /// Stored here, not yet handed to any peer.
    Queued,
    /// Handed to at least one peer (the recipient or a carrier).
    Sent,
    /// The recipient confirmed it (a receipt came back), or it is an incoming message.
    Delivered,
    /// It expired before a receipt came back.
    Failed,
}

impl MessageState {
    /// The name stored and shown: `queued`, `sent`, `delivered` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Queued => "queued",
            MessageState::Sent => "sent",
            MessageState::Delivered => "delivered",
            MessageState::Failed => "failed",
        }
    }

    /// Parses a state name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => MessageState::Queued,
            "sent" => MessageState::Sent,
            "delivered" => MessageState::Delivered,
            "failed" => MessageState::Failed,
            _ => return None,
        })
    }
}

impl ToSql for MessageState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for MessageState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let name = value.as_str()?;
        Self::parse(name)
            .ok_or_else(|| FromSqlError::Other(format!("unknown message state {name:?}").into()))
    }
}

/// A message this device can read: one it wrote, one addressed to it, or one in a room it is in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Its unique id.
    pub id: MessageId,
    /// The author.
    pub from: PeerId,
    /// The name the user gave the author, when a contact (`None`: a stranger).
    pub from_name: Option<String>,
    /// The recipient: a peer, or a room.
    pub to: Recipient,
    /// The text.
    pub text: String,
    /// Files attached: the ticket of a share the author serves; fetch it with
    /// [`crate::Node::download`] (any size: the transfer engine moves it, not the message).
    #[serde(serialize_with = "ticket_text", deserialize_with = "ticket_from_text")]
    pub attachment: Option<Ticket>,
    /// Where it is on its way.
    pub state: MessageState,
    /// When the author wrote it, by the author's clock (milliseconds since the Unix epoch).
    pub time: u64,
    /// Whether this device wrote it.
    pub outgoing: bool,
}

/// A ticket in its string form (`meshdrop1…`), or `null`.
fn ticket_text<S: Serializer>(ticket: &Option<Ticket>, s: S) -> Result<S::Ok, S::Error> {
    match ticket {
        Some(t) => s.serialize_str(&t.to_string()),
        None => s.serialize_none(),
    }
}

/// A ticket from its string form, or `null`.
fn ticket_from_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Ticket>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|t| t.parse().map_err(serde::de::Error::custom))
        .transpose()
}

/// How much one author may make this device store for itself and its rooms (direct messages and
/// room messages it can read); beyond it, that author's messages are dropped until the hour ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboxQuota {
    /// At most this many messages of one author arrive in any hour.
    pub per_author_per_hour: u32,
}

impl Default for InboxQuota {
    fn default() -> Self {
        Self {
            per_author_per_hour: 1000,
        }
    }
}

/// How much a node carries for others (messages neither from nor for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CarryQuota {
    /// At most this many messages of one author.
    pub per_author: u32,
    /// At most this many messages in all.
    pub total: u32,
}

impl Default for CarryQuota {
    fn default() -> Self {
        Self {
            per_author: 500,
            total: 5000,
        }
    }
}

/// How messaging is set up.
#[derive(Clone, Debug)]
pub struct MessagingConfig {
    /// Added to the system clock when stamping messages (tests simulate skewed device clocks).
    pub clock_offset_ms: i64,
    /// How long a message this node writes may travel before it expires undelivered.
    pub ttl: Duration,
    /// How much this node carries for others.
    pub carry: CarryQuota,
    /// How many messages one author may make this node store for itself and its rooms.
    pub inbox: InboxQuota,
    /// How much contacts and strangers may make this node store.
    pub storage: StorageBudget,
    /// How often the node pulls from every connected peer without being poked (zero: never).
    pub resync: Duration,
    /// Ignore every poke received, as when the inbound stream slot was full (tests only).
    pub(crate) drop_pokes: bool,
}

impl Default for MessagingConfig {
    fn default() -> Self {
        Self {
            clock_offset_ms: 0,
            ttl: Duration::from_secs(7 * 24 * 3600),
            carry: CarryQuota::default(),
            inbox: InboxQuota::default(),
            storage: StorageBudget::default(),
            resync: Duration::from_secs(30),
            drop_pokes: false,
        }
    }
}

/// What messaging tells the app (the node turns each into an event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A message for this device (or one of its rooms) arrived; told once, whatever the path.
    Received(Box<Message>),
    /// A message this device wrote moved on: `sent`, `delivered` or `failed`.
    StateChanged {
        /// The message.
        id: MessageId,
        /// Its new state.
        state: MessageState,
    },
    /// A contact asks this device to fetch and hold files for another peer (told once).
    CarryAsked {
        /// The contact.
        from: PeerId,
        /// The files.
        ticket: Box<Ticket>,
        /// Who they are for.
        for_peer: PeerId,
    },
}

/// Counts of what the node stores, for the app and for tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MessageStats {
    /// Envelopes stored (own, for this device, and carried).
    pub envelopes: u64,
    /// Envelopes carried for others.
    pub carried: u64,
    /// Messages this device can read.
    pub messages: u64,
    /// Envelopes handed to peers since the node started (every transmission, repeats included).
    pub sent: u64,
}
