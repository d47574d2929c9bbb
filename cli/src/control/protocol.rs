//! What travels on the control socket, one JSON object per line: a client writes a [`Request`];
//! the node answers with any number of [`Frame::Update`] lines (progress, events), then one
//! [`Frame::Done`] carrying the [`Response`] of that request, or one [`Frame::Error`].

use std::path::PathBuf;

use meshdrop_core::transfer::offer::SendOutcome;
use meshdrop_core::transfer::{ShareHealth, ShareInfo, Visibility};
use meshdrop_core::{
    Contact, DownloadReport, Event, Message, MessageId, PeerId, PeerInfo, Recipient, Room, Ticket,
};
use serde::{Deserialize, Serialize};

/// Files attached to a message: their paths (absolute), whether they are served until unshared,
/// and the contacts asked to carry them for the recipient.
#[derive(Debug, Clone, Default)]
pub struct Attach {
    pub paths: Vec<PathBuf>,
    pub pin: bool,
    pub carry: Vec<PeerId>,
}

/// What a command asks the node: one variant per operation.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// This device's peer id and name.
    Id,
    /// The peer list.
    Peers,
    /// Connect to an address.
    Connect {
        /// The multiaddr, as typed.
        address: String,
    },
    /// The contacts.
    Contacts,
    /// Make a device a contact (the user compared the verification code).
    AddContact {
        /// The device.
        peer: PeerId,
        /// The name the user gives it.
        name: String,
    },
    /// Give a contact another name.
    RenameContact {
        /// The contact.
        peer: PeerId,
        /// Its new name.
        name: String,
    },
    /// Make a contact a stranger again.
    RemoveContact {
        /// The contact.
        peer: PeerId,
    },
    /// Accept the contact a ticket offers (its sender).
    AcceptContactOffer {
        /// The ticket.
        #[serde(with = "ticket_text")]
        ticket: Ticket,
    },
    /// What this device serves.
    Shares,
    /// Stop serving a share at once.
    Unshare {
        /// Its id, as `shares` lists it.
        id: String,
    },
    /// Check a share's files (every share's when `id` is none) against its manifest, and repair
    /// what came from others.
    Verify {
        /// Its id, as `shares` lists it.
        #[serde(default)]
        id: Option<String>,
    },
    /// Who may offer files: asked, or changed (with no end) when `set` is given.
    Visibility {
        /// The new visibility.
        #[serde(default)]
        set: Option<Visibility>,
    },
    /// Every stored message.
    Messages,
    /// The rooms this device is in.
    Rooms,
    /// Create a room.
    CreateRoom {
        /// Its name.
        name: String,
    },
    /// Join a room.
    JoinRoom {
        /// The invite.
        invite: String,
    },
    /// Queue a message to a peer or a room.
    SendMessage {
        /// The recipient.
        to: Recipient,
        /// The text.
        text: String,
        /// Absolute paths of files to attach (shared by the node).
        #[serde(default)]
        attach: Vec<PathBuf>,
        /// Serve the attachment until unshared (not only for the attachment time).
        #[serde(default)]
        pin: bool,
        /// Contacts asked to fetch and hold the attachment for the recipient.
        #[serde(default)]
        carry: Vec<PeerId>,
    },
    /// Share files and folders (absolute paths); the node keeps seeding them.
    Share {
        /// What to share.
        paths: Vec<PathBuf>,
        /// Offer this device as a contact in the ticket.
        #[serde(default)]
        offer_contact: bool,
    },
    /// Download a share into a folder; progress comes as updates, and the download goes on in
    /// the node when the client leaves.
    Get {
        /// The share and its providers.
        #[serde(with = "ticket_text")]
        ticket: Ticket,
        /// The absolute destination folder.
        dest: PathBuf,
    },
    /// Offer files to a nearby device and follow the offer to its end.
    Send {
        /// The device: a peer id or a name.
        peer: String,
        /// Absolute paths of what to send.
        paths: Vec<PathBuf>,
        /// How long to look for the device, in seconds.
        wait_secs: u64,
    },
}

/// One line of the node's answer.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Frame {
    /// News while the request runs.
    Update(Update),
    /// The request's result; its last line.
    Done(Response),
    /// Why the request failed, as one line for the user; its last line.
    Error(String),
}

/// News while a request runs.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Update {
    /// A node event that concerns the request (a download's progress or failure, an offer's).
    Event(Box<Event>),
    /// The device an offer goes to was found.
    Offering {
        /// The device.
        peer: PeerId,
        /// The name it claims (empty when not learned yet).
        name: String,
        /// The name the user gave it, when a contact (`None`: a stranger).
        #[serde(default)]
        contact: Option<String>,
        /// The code both screens show.
        verification_code: String,
    },
}

/// The result of a request, one variant per kind of result.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// For [`Request::Id`].
    Id {
        /// The peer id.
        peer: PeerId,
        /// The device name.
        name: String,
    },
    /// For [`Request::Peers`].
    Peers(Vec<PeerInfo>),
    /// For [`Request::Connect`].
    Connected {
        /// The peer that answered.
        peer: PeerId,
        /// The code both screens show.
        verification_code: String,
    },
    /// For [`Request::Contacts`].
    Contacts(Vec<Contact>),
    /// For [`Request::AddContact`], [`Request::RenameContact`] and
    /// [`Request::AcceptContactOffer`]: the contact as it is now.
    Contact(ContactNow),
    /// For [`Request::RemoveContact`].
    ContactRemoved {
        /// The device, a stranger again.
        peer: PeerId,
    },
    /// For [`Request::Shares`].
    Shares(Vec<ShareInfo>),
    /// For [`Request::Unshare`]: what is no longer served.
    Unshared(ShareInfo),
    /// For [`Request::Verify`]: what each share held.
    Verified(Vec<ShareHealth>),
    /// For [`Request::Visibility`]: who may offer files now.
    Visibility(Visibility),
    /// For [`Request::Messages`].
    Messages(Vec<Message>),
    /// For [`Request::Rooms`].
    Rooms(Vec<Room>),
    /// For [`Request::CreateRoom`] and [`Request::JoinRoom`].
    Room(Room),
    /// For [`Request::SendMessage`].
    MessageQueued {
        /// The message's id.
        id: MessageId,
    },
    /// For [`Request::Share`].
    Shared {
        /// The share's ticket.
        #[serde(with = "ticket_text")]
        ticket: Ticket,
    },
    /// For [`Request::Get`].
    Downloaded {
        /// The transfer's id, as in its events.
        transfer: u64,
        /// What the download did.
        report: DownloadReport,
        /// A ticket naming the node as a provider of the share (it seeds it).
        #[serde(with = "ticket_text")]
        ticket: Ticket,
    },
    /// For [`Request::Send`].
    Sent {
        /// The receiving device.
        peer: PeerId,
        /// How the offer ended.
        outcome: SendOutcome,
    },
}

/// A contact just added, renamed or accepted.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ContactNow {
    /// The contact.
    pub contact: Contact,
    /// The code both screens show for it.
    pub verification_code: String,
    /// Whether it became a contact just now (`false`: it was one already).
    pub new: bool,
}

/// A ticket in its text form (`meshdrop1…`).
mod ticket_text {
    use meshdrop_core::Ticket;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(ticket: &Ticket, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(ticket)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ticket, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

/// An answer line as a reader takes it: an update, or the end ([`Frame::Error`] becomes `Err`).
#[derive(Debug)]
pub enum Step {
    /// News while the request runs.
    Update(Update),
    /// The request's result.
    Done(Response),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Serialize + for<'de> Deserialize<'de>>(value: &T) -> T {
        let line = serde_json::to_string(value).unwrap();
        assert!(!line.contains('\n'), "one line: {line}");
        serde_json::from_str(&line).unwrap()
    }

    #[test]
    fn requests_and_frames_read_back_as_they_were_written() {
        let provider = meshdrop_core::transfer::Provider {
            peer: PeerId::random(),
            addrs: vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()],
        };
        let key = meshdrop_core::transfer::ShareKey::from_bytes([9; 32]);
        let ticket = Ticket::new(meshdrop_core::ContentId([7; 32]), key, vec![provider])
            .offering_contact("ana");
        let get = Request::Get {
            ticket: ticket.clone(),
            dest: "/tmp/out".into(),
        };
        assert_eq!(round_trip(&get), get);
        let line = serde_json::to_value(&get).unwrap();
        assert_eq!(line["op"], "get");
        assert_eq!(line["ticket"], ticket.to_string());
        let peer = PeerId::random();
        for req in [
            Request::AcceptContactOffer {
                ticket: ticket.clone(),
            },
            Request::AddContact {
                peer,
                name: "Ana".into(),
            },
            Request::Visibility {
                set: Some(Visibility::Everyone),
            },
            Request::Unshare {
                id: "0a1b2c3d".into(),
            },
            Request::Verify { id: None },
            Request::Verify {
                id: Some("0a1b".into()),
            },
        ] {
            assert_eq!(round_trip(&req), req);
        }
        let line = serde_json::to_value(Request::Visibility { set: None }).unwrap();
        assert_eq!(line, serde_json::json!({"op": "visibility", "set": null}));
        let frames = [
            Frame::Update(Update::Event(Box::new(Event::PeerDisconnected { peer }))),
            Frame::Update(Update::Offering {
                peer,
                name: "ana".into(),
                contact: Some("Ana".into()),
                verification_code: "123456".into(),
            }),
            Frame::Done(Response::Visibility(Visibility::Contacts)),
            Frame::Done(Response::Shared { ticket }),
            Frame::Done(Response::Id {
                peer,
                name: "ana".into(),
            }),
            Frame::Error("no".into()),
        ];
        for frame in frames {
            assert_eq!(round_trip(&frame), frame);
        }
    }

    #[test]
    fn a_malformed_request_is_an_error_not_a_guess() {
        for bad in [
            "",
            "{}",
            r#"{"op":"launch"}"#,
            r#"{"op":"get","ticket":"meshdrop1zz","dest":"/"}"#,
            r#"{"op":"send_message","to":"nobody","text":"hi"}"#,
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad:?}");
        }
        let id: Request = serde_json::from_str(r#"{"op":"id"}"#).unwrap();
        assert_eq!(id, Request::Id);
    }
}
