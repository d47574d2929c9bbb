//! What a node tells the app: one event stream, serialisable as one JSON object per event. The
//! capabilities do not know it: the node turns their notices into these events. Nothing inside
//! the core decides anything from this stream.

use std::path::PathBuf;

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

pub use crate::error::FailureKind;
pub use crate::net::Transport;
pub use crate::transfer::download::PeerBytes;
use crate::transfer::{ContentId, Damage, OfferedFile, PendingOffer};

/// Whether the device can be dialled from outside its network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reachability {
    /// Peers elsewhere reached it when asked to try.
    Public,
    /// Dial-back attempts failed: behind a NAT or a firewall.
    Private,
}

/// Something that happened on the node. Serialised with an `"event"` tag in snake_case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The node is up and listens on these addresses.
    Listening {
        /// This node's peer id.
        peer: PeerId,
        /// This node's device name.
        name: String,
        /// Where it listens.
        addrs: Vec<Multiaddr>,
    },
    /// Local discovery found a device.
    PeerDiscovered {
        /// The device.
        peer: PeerId,
        /// Its name, as it advertises it.
        name: String,
        /// Where it can be dialled.
        addrs: Vec<Multiaddr>,
    },
    /// Local discovery says the device is gone (goodbye, or its records expired).
    PeerLost {
        /// The device.
        peer: PeerId,
        /// Its name.
        name: String,
    },
    /// A first authenticated, encrypted connection to the peer is up.
    PeerConnected {
        /// The peer.
        peer: PeerId,
        /// The remote address of the connection.
        addr: Multiaddr,
        /// How the connection is carried.
        transport: Transport,
        /// What carries the link (`wifi-aware`, `awdl`, `unix`…) when it is one.
        medium: Option<String>,
        /// The code both people see on their screens.
        verification_code: String,
    },
    /// The peer told us who it is (libp2p identify).
    PeerIdentified {
        /// The peer.
        peer: PeerId,
        /// Its device name.
        name: String,
        /// Its software and version.
        agent: String,
        /// Its protocol version.
        protocol: String,
        /// The addresses it listens on.
        listen_addrs: Vec<Multiaddr>,
    },
    /// A better connection replaced the peer's others (direct over a link or a relay, a link over
    /// a relay): transfers and messages to the peer move over to it.
    ConnectionUpgraded {
        /// The peer.
        peer: PeerId,
        /// The remote address of the direct connection.
        addr: Multiaddr,
        /// How the better connection is carried.
        transport: Transport,
        /// What carries the link when it is one.
        medium: Option<String>,
    },
    /// Hole punching to a peer reached through a relay failed: the connection stays relayed.
    HolePunchFailed {
        /// The peer.
        peer: PeerId,
        /// Why.
        error: String,
    },
    /// A relay holds a slot for this device: others reach it at `addr` (tickets carry it).
    RelayReserved {
        /// The relay.
        relay: PeerId,
        /// This device's address through the relay.
        addr: Multiaddr,
    },
    /// A relay did not give (or no longer holds) a slot; the node asks again later.
    RelayFailed {
        /// The relay's address, as configured.
        relay: Multiaddr,
        /// Why, as the relay or the network said.
        reason: String,
    },
    /// AutoNAT found whether this device can be reached from outside its network.
    Reachability {
        /// `public`: peers can dial it; `private`: behind a NAT or firewall (relays help).
        status: Reachability,
        /// The address it was reached at, when public.
        addr: Option<Multiaddr>,
    },
    /// The last connection to the peer closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
    /// Dialling a peer failed.
    DialFailed {
        /// The peer, when known.
        peer: Option<PeerId>,
        /// Why.
        error: String,
        /// What kind of failure.
        #[serde(default)]
        kind: FailureKind,
    },
    /// A download moved on (at most a few per second).
    TransferProgress {
        /// The transfer.
        transfer: u64,
        /// The share.
        content: ContentId,
        /// Bytes verified and on disk, including those from earlier runs.
        done: u64,
        /// Bytes of the selected files.
        total: u64,
        /// Bytes received from the network in this run.
        received: u64,
        /// Average receive rate of this run, bytes per second.
        rate: u64,
        /// Estimated seconds left.
        eta_secs: Option<u64>,
        /// Bytes received from each provider in this run.
        peers: Vec<PeerBytes>,
    },
    /// Every chunk of a share this node serves has been uploaded at least once: the peers that
    /// fetch it can finish from each other now.
    ShareDistributed {
        /// The share.
        content: ContentId,
    },
    /// A file this node serves no longer matches its share (bit rot, an edit since it was
    /// shared, a file gone): these chunks are no longer served; they are fetched again from
    /// peers when the share came from others (`repairing`).
    ShareDamaged {
        /// The share.
        content: ContentId,
        /// The file's path in the share.
        file: String,
        /// Where it is on disk.
        path: std::path::PathBuf,
        /// The chunks that no longer verify.
        chunks: Vec<u64>,
        /// Why: `changed` (edited since it was shared), `corrupt` (the disk's damage) or
        /// `missing` (gone or unreadable).
        damage: Damage,
        /// Whether they are being fetched again from peers.
        repairing: bool,
    },
    /// A damaged file was fetched again from peers and verifies whole: it is served again.
    ShareRepaired {
        /// The share.
        content: ContentId,
        /// The file's path in the share.
        file: String,
        /// The chunks fetched again.
        chunks: Vec<u64>,
    },
    /// A damaged file could not be repaired (no peer had a good copy, say).
    ShareRepairFailed {
        /// The share.
        content: ContentId,
        /// The file's path in the share.
        file: String,
        /// Why.
        error: String,
    },
    /// A download finished: every selected file verified and in place.
    TransferFinished {
        /// The transfer.
        transfer: u64,
        /// The share.
        content: ContentId,
        /// Bytes of the selected files.
        bytes: u64,
        /// Bytes received in this run.
        fetched: u64,
        /// Where each selected file now is.
        #[serde(default)]
        paths: Vec<PathBuf>,
    },
    /// No peer that holds the share is in reach: the download waits, asks every peer that
    /// connects, and goes on by itself when one has it.
    TransferWaiting {
        /// The transfer.
        transfer: u64,
        /// The share.
        content: ContentId,
        /// Bytes verified and on disk.
        done: u64,
        /// Bytes of the selected files (0 before the manifest is known).
        total: u64,
        /// Who was asked, and what each said.
        tried: Vec<String>,
    },
    /// A room message's attachment was not fetched by itself (too large, the room's budget
    /// spent, on battery…): it can still be fetched by hand.
    AttachmentNotFetched {
        /// The message.
        message: crate::messaging::MessageId,
        /// Why.
        reason: String,
    },
    /// A contact asks this device to fetch and hold files for another peer.
    CarryAsked {
        /// The contact.
        from: PeerId,
        /// Who the files are for.
        for_peer: PeerId,
        /// The share.
        content: ContentId,
    },
    /// This device fetches files to carry them for a peer (then serves them to it).
    Carrying {
        /// The contact who asked.
        from: PeerId,
        /// Who the files are for.
        for_peer: PeerId,
        /// The share.
        content: ContentId,
    },
    /// A contact's request to carry files was left alone (on battery, over its budget…).
    CarryRefused {
        /// The contact.
        from: PeerId,
        /// Who the files were for.
        for_peer: PeerId,
        /// Why.
        reason: String,
    },
    /// A download stopped with an error (partial data kept unless cancelled with removal).
    TransferFailed {
        /// The transfer.
        transfer: u64,
        /// The share.
        content: ContentId,
        /// Why.
        error: String,
        /// What kind of failure.
        #[serde(default)]
        kind: FailureKind,
    },
    /// A nearby device offers files; answer with `Node::respond_offer`. Nothing is written before.
    OfferReceived {
        /// The offer's id.
        offer: u64,
        /// The sender.
        peer: PeerId,
        /// The name the sender gives itself (a claim).
        name: String,
        /// The name the user gave the sender, when a contact (`None`: a stranger).
        contact: Option<String>,
        /// The code both screens show.
        verification_code: String,
        /// Bytes offered.
        total: u64,
        /// The files offered.
        files: Vec<OfferedFile>,
    },
    /// An offer was declined at once: its sender may not offer files to this device now (not a
    /// contact, or this device is not visible). Nothing was fetched or written.
    OfferRefused {
        /// The sender.
        peer: PeerId,
        /// The name it gives itself (a claim).
        name: String,
        /// What the sender was told.
        reason: String,
    },
    /// An offer received was not answered in time (10 minutes): it was declined.
    OfferExpired {
        /// The offer's id.
        offer: u64,
    },
    /// The receiver accepted our offer.
    OfferAccepted {
        /// The receiver.
        peer: PeerId,
        /// The share.
        content: ContentId,
        /// How many files it takes.
        files: u32,
    },
    /// The receiver declined our offer.
    OfferDeclined {
        /// The receiver.
        peer: PeerId,
        /// The share.
        content: ContentId,
        /// Why.
        reason: String,
    },
    /// How far the receiver of our offer is.
    SendProgress {
        /// The receiver.
        peer: PeerId,
        /// The share.
        content: ContentId,
        /// Bytes verified on the receiver.
        done: u64,
        /// Bytes accepted.
        total: u64,
    },
    /// A message for this device (or one of its rooms) arrived; shown once, whatever the path.
    MessageReceived {
        /// The message.
        message: crate::messaging::Message,
    },
    /// A message this device wrote moved on: `sent`, `delivered` or `failed`.
    MessageStateChanged {
        /// The message.
        id: crate::messaging::MessageId,
        /// Its new state.
        state: crate::messaging::MessageState,
    },
    /// The node stopped.
    Stopped,
}

/// A peer as the node knows it now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The peer.
    pub peer: PeerId,
    /// The name it gives itself (a claim; empty when not yet heard).
    pub name: String,
    /// The name the user gave it, when a contact (`None`: a stranger).
    pub contact: Option<String>,
    /// Addresses it can be dialled on.
    pub addrs: Vec<Multiaddr>,
    /// Whether a connection is up.
    pub connected: bool,
    /// How the connection is carried, while one is up.
    pub transport: Option<Transport>,
    /// What carries the link, while the connection is one.
    pub medium: Option<String>,
    /// Whether local discovery currently sees it.
    pub discovered: bool,
    /// The code both people see on their screens.
    pub verification_code: String,
}

/// The `offer_received` event of an offer that still waits for an answer, to show it again.
impl From<PendingOffer> for Event {
    fn from(o: PendingOffer) -> Self {
        Event::OfferReceived {
            offer: o.offer,
            peer: o.peer,
            name: o.name,
            contact: o.contact,
            verification_code: o.verification_code,
            total: o.total,
            files: o.files,
        }
    }
}
