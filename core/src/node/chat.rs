//! The node's messaging: messages to peers and rooms, attachments and the carriers that hold
//! them for an offline recipient, rooms.

use std::path::PathBuf;

use libp2p::PeerId;

use super::Node;
use crate::error::{Error, Result};
use crate::messaging::{Message, MessageId, MessageStats, Recipient, Room, RoomId};
use crate::transfer::{DownloadSpec, ShareError, ShareKind, Ticket, TransferHandle};

impl Node {
    /// Sends a text message to a peer: stored as `queued`, then handed to the peer (or to peers
    /// that carry it) whenever a path appears. Follow it with `message_state_changed` events.
    pub fn send_message(&self, to: PeerId, text: &str) -> Result<MessageId> {
        self.inner.messenger.send(Recipient::Peer(to), text, None)
    }

    /// Sends a text message to a room this device is in.
    pub fn send_room_message(&self, room: RoomId, text: &str) -> Result<MessageId> {
        self.inner.messenger.send(Recipient::Room(room), text, None)
    }

    /// Sends a message to a peer or a room with files attached: shares `paths` under a key of
    /// their own and puts the ticket in the message. The files are served (also after a restart)
    /// for [`NodeConfig::attachment_ttl`], or until unshared when `pin`. The recipient fetches
    /// them with [`Node::download_attachment`].
    pub async fn send_with_attachment(
        &self,
        to: Recipient,
        text: &str,
        paths: Vec<PathBuf>,
        pin: bool,
    ) -> Result<MessageId, ShareError> {
        self.inner.messenger.check(to, text)?;
        let ticket = self.attach(paths, pin).await?;
        Ok(self.inner.messenger.send(to, text, Some(&ticket))?)
    }

    /// Shares `paths` as an attachment (served for the attachment TTL, or until unshared when
    /// `pin`); its ticket.
    async fn attach(&self, paths: Vec<PathBuf>, pin: bool) -> Result<Ticket, ShareError> {
        let ttl = (!pin).then_some(self.inner.attachment_ttl);
        let shared = self
            .inner
            .transfers
            .share(paths, ShareKind::Attachment, ttl);
        let (content, key) = shared.await?;
        Ok(self.ticket_for(content, key))
    }

    /// Sends `to` a message with files attached, as [`Node::send_with_attachment`], and asks each
    /// of `carriers` (contacts who have this device as a contact) to fetch and hold the files
    /// for `to`: they reach `to` through whichever of them it meets, with this device gone.
    pub async fn send_carried(
        &self,
        to: PeerId,
        text: &str,
        paths: Vec<PathBuf>,
        pin: bool,
        carriers: &[PeerId],
    ) -> Result<MessageId, ShareError> {
        self.inner.messenger.check(Recipient::Peer(to), text)?;
        let ticket = self.attach(paths, pin).await?;
        let id = self
            .inner
            .messenger
            .send(Recipient::Peer(to), text, Some(&ticket))?;
        for carrier in carriers {
            self.inner.messenger.ask_to_carry(*carrier, &ticket, to)?;
        }
        Ok(id)
    }

    /// Downloads the files attached to `message` into `dest` (a plain [`Node::download`] of its
    /// ticket); `NotFound` when it has none.
    pub fn download_attachment(&self, message: &Message, dest: PathBuf) -> Result<TransferHandle> {
        let ticket = message.attachment.clone().ok_or_else(|| Error::NotFound {
            what: format!("an attachment in message {}", message.id),
        })?;
        Ok(self.download(DownloadSpec {
            ticket,
            dest,
            files: None,
        }))
    }

    /// Every message this device can read (written here, addressed to it, or in its rooms), in
    /// causal order: the same order on every device.
    pub fn messages(&self) -> Result<Vec<Message>> {
        self.inner.messenger.messages()
    }

    /// Creates a room; share [`Room::invite`] with the people who should join.
    pub fn create_room(&self, name: &str) -> Result<Room> {
        self.inner.messenger.create_room(name)
    }

    /// Joins a room from its invite (`meshroom1…`).
    pub fn join_room(&self, invite: &str) -> Result<Room> {
        self.inner.messenger.join_room(invite)
    }

    /// The rooms this device is in, with their invites.
    pub fn rooms(&self) -> Vec<Room> {
        self.inner.messenger.room_list()
    }

    /// How many envelopes and messages the store holds (and how many are carried for others), and
    /// how many envelopes this node handed to peers since it started.
    pub fn message_stats(&self) -> Result<MessageStats> {
        self.inner.messenger.stats()
    }
}
