//! The event listener a host implements, the events it receives, and the thread that delivers them.

use std::sync::Arc;

use meshdrop_core::Event;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;

use crate::messaging::{Message, MessageState};
use crate::types::{FailureKind, OfferedFile, Transport, strings};

/// Receives every event of a node, in order, on one thread of the bindings (not the UI thread).
/// Hand events on (to a channel, a flow, a queue) and return: never wait in it for a call of the
/// node, least of all `shutdown`, which waits for this thread.
#[uniffi::export(foreign)]
pub trait EventListener: Send + Sync {
    /// Something happened on the node. Return quickly: events wait behind this call.
    fn on_event(&self, event: NodeEvent);
}

/// Something that happened on the node.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum NodeEvent {
    /// The node is up and listens on these addresses.
    Listening {
        /// This node's peer id.
        peer_id: String,
        /// This node's device name.
        name: String,
        /// Where it listens.
        addrs: Vec<String>,
    },
    /// Local discovery found a device.
    PeerDiscovered {
        /// The device.
        peer_id: String,
        /// Its name.
        name: String,
        /// Where it can be dialled.
        addrs: Vec<String>,
    },
    /// Local discovery says the device is gone.
    PeerLost {
        /// The device.
        peer_id: String,
        /// Its name.
        name: String,
    },
    /// A first encrypted connection to the peer is up.
    PeerConnected {
        /// The peer.
        peer_id: String,
        /// The remote address.
        addr: String,
        /// How it is carried.
        transport: Transport,
        /// What carries the link (`wifi-aware`…) when it is one.
        medium: Option<String>,
        /// The code both people see.
        verification_code: String,
    },
    /// The peer told its name and version.
    PeerIdentified {
        /// The peer.
        peer_id: String,
        /// Its device name.
        name: String,
        /// Its software and version.
        agent: String,
    },
    /// A better connection replaced the peer's others (direct over a link or a relay, a link
    /// over a relay).
    ConnectionUpgraded {
        /// The peer.
        peer_id: String,
        /// How the better connection is carried.
        transport: Transport,
        /// What carries the link when it is one.
        medium: Option<String>,
    },
    /// Hole punching to a peer reached through a relay failed: the connection stays relayed.
    HolePunchFailed {
        /// The peer.
        peer_id: String,
        /// Why.
        error: String,
    },
    /// A relay holds a slot for this device, reachable at `addr` through it.
    RelayReserved {
        /// This device's address through the relay.
        addr: String,
    },
    /// A relay gave no slot (or lost it); the node asks again later.
    RelayFailed {
        /// The relay.
        relay: String,
        /// Why.
        reason: String,
    },
    /// Whether devices elsewhere can dial this one (AutoNAT).
    Reachability {
        /// True when reachable from outside its network.
        public: bool,
    },
    /// The last connection to the peer closed.
    PeerDisconnected {
        /// The peer.
        peer_id: String,
    },
    /// Dialling a peer failed.
    DialFailed {
        /// The peer, when known.
        peer_id: Option<String>,
        /// Why.
        error: String,
        /// What kind of failure.
        kind: FailureKind,
    },
    /// A download moved on (at most a few times per second).
    TransferProgress {
        /// The transfer (its `Transfer` object's id).
        transfer_id: u64,
        /// The share's content id.
        content: String,
        /// Bytes verified and on disk.
        done: u64,
        /// Bytes of the selected files.
        total: u64,
        /// Receive rate, bytes per second.
        rate: u64,
        /// Estimated seconds left.
        eta_secs: Option<u64>,
    },
    /// Every chunk of a served share was uploaded at least once.
    ShareDistributed {
        /// The share's content id.
        content: String,
    },
    /// A served file no longer matches its share: these chunks are no longer served (and are
    /// fetched again from peers when `repairing`).
    ShareDamaged {
        /// The share's content id.
        content: String,
        /// The file's path in the share.
        file: String,
        /// Where it is on disk.
        path: String,
        /// How many chunks no longer verify.
        chunks: u64,
        /// `changed` (edited since it was shared), `corrupt` (damaged on disk) or `missing`.
        damage: String,
        /// Whether they are fetched again from peers.
        repairing: bool,
    },
    /// A damaged file was fetched again from peers and verifies whole.
    ShareRepaired {
        /// The share's content id.
        content: String,
        /// The file's path in the share.
        file: String,
        /// How many chunks were fetched again.
        chunks: u64,
    },
    /// A damaged file could not be repaired.
    ShareRepairFailed {
        /// The share's content id.
        content: String,
        /// The file's path in the share.
        file: String,
        /// Why.
        error: String,
    },
    /// A download finished: every selected file verified and in place.
    TransferFinished {
        /// The transfer.
        transfer_id: u64,
        /// The share's content id.
        content: String,
        /// Bytes of the selected files.
        bytes: u64,
        /// Where each selected file now is (to hand to the gallery or Photos).
        paths: Vec<String>,
    },
    /// No one who has the share is in reach: the download waits ("waiting for someone who has
    /// it") and goes on by itself when one connects.
    TransferWaiting {
        /// The transfer.
        transfer_id: u64,
        /// The share's content id.
        content: String,
        /// Bytes verified and on disk.
        done: u64,
        /// Bytes of the selected files (0 before anyone answered).
        total: u64,
        /// Who was asked, and what each said.
        tried: Vec<String>,
    },
    /// A download stopped with an error.
    TransferFailed {
        /// The transfer.
        transfer_id: u64,
        /// The share's content id.
        content: String,
        /// Why.
        error: String,
        /// What kind of failure.
        kind: FailureKind,
    },
    /// A nearby device offers files: answer with `accept_offer` or `decline_offer`. The same
    /// offer may come again after the listener fell behind (see `Node::pending_offers`).
    OfferReceived {
        /// The offer.
        offer_id: u64,
        /// The sender.
        peer_id: String,
        /// The name the sender gives itself (a claim).
        name: String,
        /// The name the user gave the sender, when a contact (`None`: a stranger).
        contact_name: Option<String>,
        /// The code both screens show.
        verification_code: String,
        /// Bytes offered.
        total: u64,
        /// The files offered.
        files: Vec<OfferedFile>,
    },
    /// An offer received was not answered in time: it was declined.
    OfferExpired {
        /// The offer.
        offer_id: u64,
    },
    /// An offer was declined at once: its sender may not offer files now (not a contact, or
    /// this device is not visible). Nothing was fetched or written.
    OfferRefused {
        /// The sender.
        peer_id: String,
        /// The name it gives itself (a claim).
        name: String,
        /// What the sender was told.
        reason: String,
    },
    /// The receiver accepted our offer.
    OfferAccepted {
        /// The receiver.
        peer_id: String,
        /// The share's content id.
        content: String,
        /// How many files it takes.
        files: u32,
    },
    /// The receiver declined our offer.
    OfferDeclined {
        /// The receiver.
        peer_id: String,
        /// The share's content id.
        content: String,
        /// Why.
        reason: String,
    },
    /// How far the receiver of our offer is.
    SendProgress {
        /// The receiver.
        peer_id: String,
        /// The share's content id.
        content: String,
        /// Bytes verified on the receiver.
        done: u64,
        /// Bytes accepted.
        total: u64,
    },
    /// A message for this device (or one of its rooms) arrived; shown once, whatever the path.
    MessageReceived {
        /// The message.
        message: Message,
    },
    /// A message this device wrote moved on.
    MessageStateChanged {
        /// The message's id.
        message_id: String,
        /// Its new state.
        state: MessageState,
    },
    /// A room message's attachment was not fetched by itself (too large, the room's budget
    /// spent, on battery…): offer to fetch it by hand.
    AttachmentNotFetched {
        /// The message's id.
        message_id: String,
        /// Why.
        reason: String,
    },
    /// A contact asks this device to fetch and hold files for another peer.
    CarryAsked {
        /// The contact.
        from_peer_id: String,
        /// Who the files are for.
        for_peer_id: String,
        /// The share's content id.
        content: String,
    },
    /// This device fetches files to carry them for a peer.
    Carrying {
        /// The contact who asked.
        from_peer_id: String,
        /// Who the files are for.
        for_peer_id: String,
        /// The share's content id.
        content: String,
    },
    /// A contact's request to carry files was left alone.
    CarryRefused {
        /// The contact.
        from_peer_id: String,
        /// Who the files were for.
        for_peer_id: String,
        /// Why.
        reason: String,
    },
    /// The node stopped: the last event.
    Stopped,
}

impl NodeEvent {
    /// The bindings' form of a core event: every kind is mapped (a new core event fails to
    /// compile here until the bindings carry it).
    pub fn from_core(event: Event) -> Self {
        match event {
            Event::Listening { peer, name, addrs } => Self::Listening {
                peer_id: peer.to_string(),
                name,
                addrs: strings(&addrs),
            },
            Event::PeerDiscovered { peer, name, addrs } => Self::PeerDiscovered {
                peer_id: peer.to_string(),
                name,
                addrs: strings(&addrs),
            },
            Event::PeerLost { peer, name } => Self::PeerLost {
                peer_id: peer.to_string(),
                name,
            },
            Event::PeerConnected {
                peer,
                addr,
                transport,
                medium,
                verification_code,
            } => Self::PeerConnected {
                peer_id: peer.to_string(),
                addr: addr.to_string(),
                transport: transport.into(),
                medium,
                verification_code,
            },
            Event::ConnectionUpgraded {
                peer,
                transport,
                medium,
                ..
            } => Self::ConnectionUpgraded {
                peer_id: peer.to_string(),
                transport: transport.into(),
                medium,
            },
            Event::HolePunchFailed { peer, error } => Self::HolePunchFailed {
                peer_id: peer.to_string(),
                error,
            },
            Event::RelayReserved { addr, .. } => Self::RelayReserved {
                addr: addr.to_string(),
            },
            Event::RelayFailed { relay, reason } => Self::RelayFailed {
                relay: relay.to_string(),
                reason,
            },
            Event::Reachability { status, .. } => Self::Reachability {
                public: status == meshdrop_core::events::Reachability::Public,
            },
            Event::PeerIdentified {
                peer, name, agent, ..
            } => Self::PeerIdentified {
                peer_id: peer.to_string(),
                name,
                agent,
            },
            Event::PeerDisconnected { peer } => Self::PeerDisconnected {
                peer_id: peer.to_string(),
            },
            Event::DialFailed { peer, error, kind } => Self::DialFailed {
                peer_id: peer.map(|p| p.to_string()),
                error,
                kind: kind.into(),
            },
            Event::TransferProgress {
                transfer,
                content,
                done,
                total,
                rate,
                eta_secs,
                ..
            } => Self::TransferProgress {
                transfer_id: transfer,
                content: content.to_string(),
                done,
                total,
                rate,
                eta_secs,
            },
            Event::ShareDistributed { content } => Self::ShareDistributed {
                content: content.to_string(),
            },
            Event::ShareDamaged {
                content,
                file,
                path,
                chunks,
                damage,
                repairing,
            } => Self::ShareDamaged {
                content: content.to_string(),
                file,
                path: path.display().to_string(),
                chunks: chunks.len() as u64,
                damage: crate::types::damage_name(damage),
                repairing,
            },
            Event::ShareRepaired {
                content,
                file,
                chunks,
            } => Self::ShareRepaired {
                content: content.to_string(),
                file,
                chunks: chunks.len() as u64,
            },
            Event::ShareRepairFailed {
                content,
                file,
                error,
            } => Self::ShareRepairFailed {
                content: content.to_string(),
                file,
                error,
            },
            Event::TransferFinished {
                transfer,
                content,
                bytes,
                paths,
                ..
            } => Self::TransferFinished {
                transfer_id: transfer,
                content: content.to_string(),
                bytes,
                paths: crate::types::paths(&paths),
            },
            Event::TransferWaiting {
                transfer,
                content,
                done,
                total,
                tried,
            } => Self::TransferWaiting {
                transfer_id: transfer,
                content: content.to_string(),
                done,
                total,
                tried,
            },
            Event::TransferFailed {
                transfer,
                content,
                error,
                kind,
            } => Self::TransferFailed {
                transfer_id: transfer,
                content: content.to_string(),
                error,
                kind: kind.into(),
            },
            Event::OfferExpired { offer } => Self::OfferExpired { offer_id: offer },
            Event::OfferRefused { peer, name, reason } => Self::OfferRefused {
                peer_id: peer.to_string(),
                name,
                reason,
            },
            Event::OfferReceived {
                offer,
                peer,
                name,
                contact,
                verification_code,
                total,
                files,
            } => Self::OfferReceived {
                offer_id: offer,
                peer_id: peer.to_string(),
                name,
                contact_name: contact,
                verification_code,
                total,
                files: files.into_iter().map(Into::into).collect(),
            },
            Event::OfferAccepted {
                peer,
                content,
                files,
            } => Self::OfferAccepted {
                peer_id: peer.to_string(),
                content: content.to_string(),
                files,
            },
            Event::OfferDeclined {
                peer,
                content,
                reason,
            } => Self::OfferDeclined {
                peer_id: peer.to_string(),
                content: content.to_string(),
                reason,
            },
            Event::SendProgress {
                peer,
                content,
                done,
                total,
            } => Self::SendProgress {
                peer_id: peer.to_string(),
                content: content.to_string(),
                done,
                total,
            },
            Event::MessageReceived { message } => Self::MessageReceived {
                message: message.into(),
            },
            Event::MessageStateChanged { id, state } => Self::MessageStateChanged {
                message_id: id.to_string(),
                state: state.into(),
            },
            Event::AttachmentNotFetched { message, reason } => Self::AttachmentNotFetched {
                message_id: message.to_string(),
                reason,
            },
            Event::CarryAsked {
                from,
                for_peer,
                content,
            } => Self::CarryAsked {
                from_peer_id: from.to_string(),
                for_peer_id: for_peer.to_string(),
                content: content.to_string(),
            },
            Event::Carrying {
                from,
                for_peer,
                content,
            } => Self::Carrying {
                from_peer_id: from.to_string(),
                for_peer_id: for_peer.to_string(),
                content: content.to_string(),
            },
            Event::CarryRefused {
                from,
                for_peer,
                reason,
            } => Self::CarryRefused {
                from_peer_id: from.to_string(),
                for_peer_id: for_peer.to_string(),
                reason,
            },
            Event::Stopped => Self::Stopped,
        }
    }
}

/// Delivers the node's events to `listener` on a blocking thread of the runtime, in order, until
/// the node stops (its `Stopped` event is delivered last) or its event stream closes. When the
/// listener fell behind and events were dropped, the offers still waiting (`pending`) come again.
pub(crate) fn deliver(
    runtime: &tokio::runtime::Runtime,
    mut events: broadcast::Receiver<Event>,
    pending: impl Fn() -> Vec<Event> + Send + 'static,
    listener: Arc<dyn EventListener>,
) -> JoinHandle<()> {
    runtime.spawn_blocking(move || {
        loop {
            match events.blocking_recv() {
                Ok(event) => {
                    let last = event == Event::Stopped;
                    listener.on_event(NodeEvent::from_core(event));
                    if last {
                        return;
                    }
                }
                // A listener this slow misses events: progress comes again, state can be
                // re-read, and an offer waiting for an answer is shown again.
                Err(RecvError::Lagged(_)) => {
                    for offer in pending() {
                        listener.on_event(NodeEvent::from_core(offer));
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Remembers every event it receives.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<NodeEvent>>);

    impl EventListener for Recorder {
        fn on_event(&self, event: NodeEvent) {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).push(event);
        }
    }

    fn offer(id: u64) -> Event {
        Event::OfferReceived {
            offer: id,
            peer: meshdrop_core::PeerId::random(),
            name: "Ana".into(),
            contact: None,
            verification_code: "1234".into(),
            total: 5,
            files: Vec::new(),
        }
    }

    #[test]
    fn an_offer_dropped_while_the_listener_lagged_comes_again() {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let (tx, rx) = broadcast::channel(2);
        // The listener is behind by more than the channel holds: the offer event is dropped.
        for event in [
            offer(7),
            Event::ShareDistributed {
                content: meshdrop_core::ContentId([1; 32]),
            },
        ] {
            tx.send(event).expect("sent");
        }
        tx.send(Event::PeerDisconnected {
            peer: meshdrop_core::PeerId::random(),
        })
        .expect("sent");
        tx.send(Event::Stopped).expect("sent");
        let recorder = Arc::new(Recorder::default());
        let delivery = deliver(&runtime, rx, || vec![offer(7)], recorder.clone());
        runtime.block_on(delivery).expect("delivered");
        let got = recorder.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let offers: Vec<u64> = got
            .iter()
            .filter_map(|e| match e {
                NodeEvent::OfferReceived { offer_id, .. } => Some(*offer_id),
                _ => None,
            })
            .collect();
        assert_eq!(offers, [7], "{got:?}");
        assert_eq!(got.last(), Some(&NodeEvent::Stopped));
    }
}
