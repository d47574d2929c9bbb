//! Messages and rooms: thin async methods over the core's messenger, and their records.

use std::path::PathBuf;

use meshdrop_core::{PeerId, RoomId};

use crate::error::MeshdropError;
use crate::node::Node;
use crate::types::parse;

/// Where a message is on its way. Incoming messages are `Delivered`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum MessageState {
    /// Stored here, not yet handed to any peer.
    Queued,
    /// Handed to at least one peer (the recipient or a carrier).
    Sent,
    /// The recipient confirmed it, or it is an incoming message.
    Delivered,
    /// It expired before a receipt came back.
    Failed,
}

impl From<meshdrop_core::MessageState> for MessageState {
    fn from(s: meshdrop_core::MessageState) -> Self {
        match s {
            meshdrop_core::MessageState::Queued => Self::Queued,
            meshdrop_core::MessageState::Sent => Self::Sent,
            meshdrop_core::MessageState::Delivered => Self::Delivered,
            meshdrop_core::MessageState::Failed => Self::Failed,
        }
    }
}

/// Whom a message is for.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Recipient {
    /// One device.
    Peer {
        /// Its peer id.
        peer_id: String,
    },
    /// Every member of a room.
    Room {
        /// The room's id.
        room_id: String,
    },
}

/// A message this device can read.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Message {
    /// Its unique id.
    pub id: String,
    /// The author's peer id.
    pub from_peer: String,
    /// The name the user gave the author, when a contact (`None`: a stranger).
    pub from_name: Option<String>,
    /// The recipient.
    pub to: Recipient,
    /// The text.
    pub text: String,
    /// The ticket of the files attached (download it with `Node::download`), if any.
    pub attachment: Option<String>,
    /// Where it is on its way.
    pub state: MessageState,
    /// When the author wrote it, by the author's clock (milliseconds since the Unix epoch).
    pub time_ms: u64,
    /// Whether this device wrote it.
    pub outgoing: bool,
}

impl From<meshdrop_core::Message> for Message {
    fn from(m: meshdrop_core::Message) -> Self {
        Self {
            id: m.id.to_string(),
            from_peer: m.from.to_string(),
            from_name: m.from_name,
            to: match m.to {
                meshdrop_core::Recipient::Peer(p) => Recipient::Peer {
                    peer_id: p.to_string(),
                },
                meshdrop_core::Recipient::Room(r) => Recipient::Room {
                    room_id: r.to_string(),
                },
            },
            text: m.text,
            attachment: m.attachment.map(|t| t.to_string()),
            state: m.state.into(),
            time_ms: m.time,
            outgoing: m.outgoing,
        }
    }
}

/// A room this device is in.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Room {
    /// Its id.
    pub id: String,
    /// Its name, as its creator gave it.
    pub name: String,
    /// The invite that lets others join.
    pub invite: String,
}

impl From<meshdrop_core::Room> for Room {
    fn from(r: meshdrop_core::Room) -> Self {
        Self {
            id: r.id.to_string(),
            name: r.name,
            invite: r.invite,
        }
    }
}

impl TryFrom<Recipient> for meshdrop_core::Recipient {
    type Error = MeshdropError;
    fn try_from(r: Recipient) -> Result<Self, MeshdropError> {
        Ok(match r {
            Recipient::Peer { peer_id } => Self::Peer(parse("peer id", &peer_id)?),
            Recipient::Room { room_id } => Self::Room(parse("room id", &room_id)?),
        })
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Node {
    /// Sends a text to a peer; returns the message id. `MessageStateChanged` events follow it.
    pub async fn send_message(
        &self,
        peer_id: String,
        text: String,
    ) -> Result<String, MeshdropError> {
        let peer: PeerId = parse("peer id", &peer_id)?;
        let core = self.core.clone();
        let id = self
            .ops
            .run(async move { Ok(core.send_message(peer, &text)?) });
        Ok(id.await?.to_string())
    }

    /// Sends a text to a room this device is in; returns the message id.
    pub async fn send_room_message(
        &self,
        room_id: String,
        text: String,
    ) -> Result<String, MeshdropError> {
        let room: RoomId = parse("room id", &room_id)?;
        let core = self.core.clone();
        let id = self
            .ops
            .run(async move { Ok(core.send_room_message(room, &text)?) });
        Ok(id.await?.to_string())
    }

    /// Sends a text with files attached to a peer or a room: the files are shared from this
    /// device under a key of their own and the message carries the ticket; they are served for
    /// the node's attachment time (7 days by default), or until unshared when `pin`. Returns the
    /// message id.
    #[uniffi::method(default(pin = false))]
    pub async fn send_with_attachment(
        &self,
        to: Recipient,
        text: String,
        paths: Vec<String>,
        pin: bool,
    ) -> Result<String, MeshdropError> {
        let to = meshdrop_core::Recipient::try_from(to)?;
        let paths: Vec<PathBuf> = paths.into_iter().map(PathBuf::from).collect();
        let core = self.core.clone();
        let id = self
            .ops
            .run(async move { Ok(core.send_with_attachment(to, &text, paths, pin).await?) });
        Ok(id.await?.to_string())
    }

    /// Every message this device can read, in the same causal order on every device.
    pub async fn messages(&self) -> Result<Vec<Message>, MeshdropError> {
        let core = self.core.clone();
        let messages = self.ops.run(async move { Ok(core.messages()?) }).await?;
        Ok(messages.into_iter().map(Into::into).collect())
    }

    /// Creates a room; share its invite with the people who should join.
    pub async fn create_room(&self, name: String) -> Result<Room, MeshdropError> {
        let core = self.core.clone();
        let room = self.ops.run(async move { Ok(core.create_room(&name)?) });
        Ok(room.await?.into())
    }

    /// Joins a room from its invite.
    pub async fn join_room(&self, invite: String) -> Result<Room, MeshdropError> {
        let core = self.core.clone();
        let room = self.ops.run(async move { Ok(core.join_room(&invite)?) });
        Ok(room.await?.into())
    }

    /// The rooms this device is in, with their invites.
    pub fn rooms(&self) -> Vec<Room> {
        self.core.rooms().into_iter().map(Into::into).collect()
    }
}
