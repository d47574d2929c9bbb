//! The plaintext inside an envelope: the kinds of body (a message, with or without files, a
//! receipt, a request to carry files) and how a decrypted one is read and checked.

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::MessageId;
use crate::transfer::Ticket;

/// The plaintext inside an envelope. New kinds are added at the end: a node that does not know a
/// kind rejects that one body and reads every other.
#[derive(Serialize, Deserialize)]
pub(super) enum Body {
    /// A message.
    Text(String),
    /// The recipient got the message with this id.
    Receipt([u8; 32]),
    /// A message with files attached: the ticket (`meshdrop1…`) of a share its author serves.
    Attached { text: String, ticket: String },
    /// The author asks this device to fetch and hold the files of `ticket` for the peer
    /// `for_peer` (its bytes), who got them attached to a message: a carrier for files.
    Carry { ticket: String, for_peer: Vec<u8> },
}

impl Body {
    /// The body of a message with `text` and an optional attachment.
    pub(super) fn message(text: &str, attachment: Option<&Ticket>) -> Self {
        match attachment {
            None => Body::Text(text.to_string()),
            Some(t) => Body::Attached {
                text: text.to_string(),
                ticket: t.to_string(),
            },
        }
    }
}

/// What a readable body says.
pub(super) enum Readable {
    /// A message: text and attachment.
    Message(String, Option<Ticket>),
    /// A receipt for this message.
    Receipt(MessageId),
    /// Fetch and hold these files for this peer.
    Carry(Ticket, PeerId),
}

/// Decodes a decrypted body, checking an attachment's ticket; the error says why it is refused.
pub(super) fn readable(plain: &[u8]) -> std::result::Result<Readable, &'static str> {
    match postcard::from_bytes::<Body>(plain) {
        Ok(Body::Text(text)) => Ok(Readable::Message(text, None)),
        Ok(Body::Attached { text, ticket }) => match ticket.parse::<Ticket>() {
            Ok(ticket) => Ok(Readable::Message(text, Some(ticket))),
            Err(_) => Err("the attachment is not a valid ticket"),
        },
        Ok(Body::Receipt(id)) => Ok(Readable::Receipt(MessageId(id))),
        Ok(Body::Carry { ticket, for_peer }) => {
            match (ticket.parse::<Ticket>(), PeerId::from_bytes(&for_peer)) {
                (Ok(ticket), Ok(peer)) => Ok(Readable::Carry(ticket, peer)),
                _ => Err("a carry request with a bad ticket or peer"),
            }
        }
        Err(_) => Err("malformed body"),
    }
}
