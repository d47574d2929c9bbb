//! What the node does with messages: writes them (stored before anything is sent), takes in what
//! peers hand over (checked, deduplicated, decrypted when for this device and stored within the
//! author's inbox quota, carried within the carry quota otherwise), answers with receipts, and
//! fails what expired.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use libp2p::PeerId;
use libp2p::identity::Keypair;
use tokio::sync::Notify;

use super::body::{Body, Readable, readable};
use super::budget::{Class, StorageBudget};
use super::crypto::{self, OpeningKey, RoomKey};
use super::envelope::{Envelope, MAX_HOPS};
use super::hlc::Clock;
use super::room::{self, Inviter, Room};
use super::state::{self, Keep};
use super::{
    CarryQuota, InboxQuota, Message, MessageId, MessageState, MessageStats, MessagingConfig,
    Notice, Recipient, RoomId,
};
use crate::contacts;
use crate::error::{Error, Result};
use crate::report::Report;
use crate::store::Store;
use crate::transfer::Ticket;

/// The longest text accepted in one message, in bytes.
pub const MAX_TEXT: usize = 8 * 1024;

/// The window of the inbox quota.
const HOUR_MS: u64 = 3600 * 1000;

/// What became of an envelope a peer handed over.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// New: stored (and shown, when for this device).
    Stored,
    /// Already here.
    Duplicate,
    /// Refused (forged, malformed, expired, over quota, not for a room this device is in...).
    Rejected(String),
}

/// The node's messaging state.
pub struct Messenger {
    local: PeerId,
    /// This device's name, given in the invites it hands out.
    name: String,
    key: Keypair,
    opening: OpeningKey,
    store: Arc<Store>,
    clock: Clock,
    report: Report<Notice>,
    ttl_ms: u64,
    quota: CarryQuota,
    inbox: InboxQuota,
    budget: StorageBudget,
    rooms: Mutex<HashMap<RoomId, (String, RoomKey)>>,
    /// Envelopes handed to peers since start.
    sent: AtomicU64,
    /// Signalled when there is something new to tell connected peers about.
    pub(crate) changed: Notify,
    /// Signalled when this device should pull from every connected peer again (it joined a room).
    pub(crate) pull_all: Notify,
}

/// The message a readable envelope from someone else carries.
fn received(env: &Envelope, text: String, attachment: Option<Ticket>) -> Message {
    Message {
        id: env.id,
        from: env.author,
        from_name: None,
        to: env.to,
        text,
        attachment,
        state: MessageState::Delivered,
        time: env.time.ms,
        outgoing: false,
    }
}

impl Messenger {
    /// Loads the rooms and the clock from the store; `name` is this device's name.
    pub fn new(
        key: Keypair,
        name: &str,
        store: Arc<Store>,
        report: Report<Notice>,
        config: &MessagingConfig,
    ) -> Result<Self> {
        let opening = OpeningKey::of(&key)
            .ok_or_else(|| Error::Message("the device key is not Ed25519".into()))?;
        let rooms = state::rooms(&store)?
            .into_iter()
            .map(|(id, name, key)| (id, (name, key)))
            .collect();
        let clock = Clock::new(config.clock_offset_ms, state::latest_time(&store)?);
        Ok(Self {
            local: key.public().to_peer_id(),
            name: name.to_string(),
            key,
            opening,
            store,
            clock,
            report,
            ttl_ms: u64::try_from(config.ttl.as_millis()).unwrap_or(u64::MAX),
            quota: config.carry,
            inbox: config.inbox,
            budget: config.storage,
            rooms: Mutex::new(rooms),
            sent: AtomicU64::new(0),
            changed: Notify::new(),
            pull_all: Notify::new(),
        })
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<RoomId, (String, RoomKey)>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The ids of the rooms this device is in, sorted.
    pub fn room_ids(&self) -> Vec<RoomId> {
        let mut ids: Vec<RoomId> = self.rooms().keys().copied().collect();
        ids.sort();
        ids
    }

    /// Writes and signs an envelope with `body` for `to`.
    fn write(&self, to: Recipient, body: &Body) -> Result<Envelope> {
        let time = self.clock.now();
        let expires = self.clock.physical_ms().saturating_add(self.ttl_ms);
        let plain = postcard::to_stdvec(body).map_err(|e| Error::Message(e.to_string()))?;
        let aad = Envelope::aad(&self.local, &to);
        let sealed = match to {
            Recipient::Peer(peer) => crypto::seal(&peer, &aad, &plain),
            Recipient::Room(room) => {
                let key = self
                    .rooms()
                    .get(&room)
                    .map(|(_, k)| k.clone())
                    .ok_or_else(|| Error::NotFound {
                        what: format!("room {room}"),
                    })?;
                key.encrypt(&aad, &plain)
            }
        }
        .map_err(|e| Error::Message(format!("cannot encrypt to {to}: {e}")))?;
        Envelope::sign(&self.key, to, time, expires, sealed)
            .map_err(|e| Error::Message(e.to_string()))
    }

    /// Checks that a message with `text` can be written to `to` (before sharing its attachment).
    pub fn check(&self, to: Recipient, text: &str) -> Result<()> {
        if text.len() > MAX_TEXT {
            return Err(Error::Message(format!(
                "the text has {} bytes; at most {MAX_TEXT} fit in a message",
                text.len()
            )));
        }
        if to == Recipient::Peer(self.local) {
            return Err(Error::Message("that is this device's own peer id".into()));
        }
        if let Recipient::Room(room) = to
            && !self.rooms().contains_key(&room)
        {
            return Err(Error::NotFound {
                what: format!("room {room}"),
            });
        }
        Ok(())
    }

    /// Writes a message to a peer or a room, with an optional attachment (a share's ticket):
    /// stored as `queued` before anything is sent.
    pub fn send(
        &self,
        to: Recipient,
        text: &str,
        attachment: Option<&Ticket>,
    ) -> Result<MessageId> {
        self.check(to, text)?;
        let env = self.write(to, &Body::message(text, attachment))?;
        let msg = Message {
            id: env.id,
            from: self.local,
            from_name: None,
            to,
            text: text.to_string(),
            attachment: attachment.cloned(),
            state: MessageState::Queued,
            time: env.time.ms,
            outgoing: true,
        };
        let now = self.clock.physical_ms();
        state::write(&self.store, |tx| {
            state::insert_envelope(tx, &env, &Keep::own(), None)?;
            state::insert_message(tx, &msg, env.time, env.expires_ms, now)
        })?;
        self.changed.notify_one();
        Ok(env.id)
    }

    /// Asks `carrier` to fetch and hold the files of `ticket` for `for_peer` (who got them
    /// attached to a message), so they reach `for_peer` through the carrier with this device
    /// gone. Travels like a direct message, sealed to the carrier.
    pub fn ask_to_carry(&self, carrier: PeerId, ticket: &Ticket, for_peer: PeerId) -> Result<()> {
        let body = Body::Carry {
            ticket: ticket.to_string(),
            for_peer: for_peer.to_bytes(),
        };
        let env = self.write(Recipient::Peer(carrier), &body)?;
        state::write(&self.store, |tx| {
            state::insert_envelope(tx, &env, &Keep::own(), None)
        })?;
        self.changed.notify_one();
        Ok(())
    }

    /// Takes an envelope handed over by `from` with `hops` left.
    pub fn accept(&self, from: PeerId, hops: u8, raw: &[u8]) -> Outcome {
        match self.try_accept(from, hops, raw) {
            Ok(o) => o,
            Err(e) => Outcome::Rejected(e.to_string()),
        }
    }

    fn try_accept(&self, from: PeerId, hops: u8, raw: &[u8]) -> Result<Outcome> {
        let reject = |why: &str| Ok(Outcome::Rejected(why.to_string()));
        let env = match Envelope::decode(raw, self.clock.physical_ms()) {
            Ok(env) => env,
            Err(e) => return Ok(Outcome::Rejected(e.to_string())),
        };
        if hops > MAX_HOPS {
            return reject("hop limit above the maximum");
        }
        if env.author == self.local || state::has_envelope(&self.store, &env.id)? {
            return Ok(Outcome::Duplicate);
        }
        match env.to {
            Recipient::Peer(p) if p == self.local => self.receive_direct(from, env),
            Recipient::Peer(_) => self.carry(from, hops, env),
            Recipient::Room(room) => {
                let key = self.rooms().get(&room).map(|(_, k)| k.clone());
                match key {
                    Some(key) => self.receive_room(from, hops, env, &key),
                    None => reject("not a room this device is in"),
                }
            }
        }
    }

    fn receive_direct(&self, from: PeerId, env: Envelope) -> Result<Outcome> {
        let aad = Envelope::aad(&env.author, &env.to);
        let Ok(plain) = crypto::open(&self.opening, &aad, &env.body) else {
            return Ok(Outcome::Rejected("cannot decrypt".into()));
        };
        // It travels no further: kept by its id alone (the text is in the message).
        let mut keep = Keep {
            hops: 0,
            carried: false,
            source: Some(&from),
            class: self.class_of(&env.author)?,
            raw: false,
            extra: 0,
        };
        match readable(&plain) {
            Ok(Readable::Message(text, attachment)) => {
                if self.over_inbox_quota(&env.author)? {
                    return Ok(Outcome::Rejected("over the author's inbox quota".into()));
                }
                keep.extra = text.len();
                let msg = received(&env, text, attachment);
                if !self.store_readable(&env, &keep, msg)? {
                    return Ok(Outcome::Duplicate);
                }
                self.write_receipt(&env, keep.class)?;
                Ok(Outcome::Stored)
            }
            Ok(Readable::Receipt(id)) => {
                // Only the recipient of one of this device's messages may mark it delivered, once:
                // anything else is not stored, so receipts cannot fill the store.
                if !state::deliver(&self.store, &id, &env.author)? {
                    return Ok(Outcome::Rejected(
                        "a receipt for nothing awaiting one".into(),
                    ));
                }
                let limit = self.budget.of(keep.class);
                state::write(&self.store, |tx| {
                    state::insert_envelope(tx, &env, &keep, limit)
                })?;
                self.report.send(Notice::StateChanged {
                    id,
                    state: MessageState::Delivered,
                });
                Ok(Outcome::Stored)
            }
            Ok(Readable::Carry(ticket, for_peer)) => {
                // Only contacts may make this device fetch and hold files for someone.
                if keep.class != Class::Contact {
                    return Ok(Outcome::Rejected("a carry request from a stranger".into()));
                }
                let limit = self.budget.of(keep.class);
                state::write(&self.store, |tx| {
                    state::insert_envelope(tx, &env, &keep, limit)
                })?;
                self.report.send(Notice::CarryAsked {
                    from: env.author,
                    ticket: Box::new(ticket),
                    for_peer,
                });
                Ok(Outcome::Stored)
            }
            Err(why) => Ok(Outcome::Rejected(why.into())),
        }
    }

    /// Writes the receipt for a message received; it counts against the author's class (a
    /// stranger's flood cannot make this device store receipts without bound).
    fn write_receipt(&self, env: &Envelope, class: Class) -> Result<()> {
        let receipt = self.write(Recipient::Peer(env.author), &Body::Receipt(env.id.0))?;
        let keep = Keep {
            class,
            ..Keep::own()
        };
        let limit = self.budget.of(class);
        state::write(&self.store, |tx| {
            state::insert_envelope(tx, &receipt, &keep, limit)
        })?;
        self.changed.notify_one();
        Ok(())
    }

    /// Whose budget what `author` makes this device store counts against.
    fn class_of(&self, author: &PeerId) -> Result<Class> {
        Ok(Class::of(contacts::name_of(&self.store, author)?.is_some()))
    }

    /// Whether `author` already made this device store its inbox quota of messages this hour.
    fn over_inbox_quota(&self, author: &PeerId) -> Result<bool> {
        let hour_ago = self.clock.physical_ms().saturating_sub(HOUR_MS);
        let arrived = state::arrivals(&self.store, author, hour_ago)?;
        Ok(arrived >= u64::from(self.inbox.per_author_per_hour))
    }

    fn receive_room(
        &self,
        from: PeerId,
        hops: u8,
        env: Envelope,
        key: &RoomKey,
    ) -> Result<Outcome> {
        let aad = Envelope::aad(&env.author, &env.to);
        let Ok(plain) = key.decrypt(&aad, &env.body) else {
            return Ok(Outcome::Rejected("cannot decrypt".into()));
        };
        let (text, attachment) = match readable(&plain) {
            Ok(Readable::Message(text, attachment)) => (text, attachment),
            Ok(Readable::Receipt(_)) => return Ok(Outcome::Rejected("a receipt in a room".into())),
            Ok(Readable::Carry(..)) => {
                return Ok(Outcome::Rejected("a carry request in a room".into()));
            }
            Err(why) => return Ok(Outcome::Rejected(why.into())),
        };
        if self.over_inbox_quota(&env.author)? {
            return Ok(Outcome::Rejected("over the author's inbox quota".into()));
        }
        let msg = received(&env, text, attachment);
        // Members pass room messages on without spending a hop (only members accept them, and
        // each stores one once): every member must end with every message, however far.
        let keep = Keep {
            hops,
            carried: false,
            source: Some(&from),
            class: self.class_of(&env.author)?,
            raw: true,
            extra: msg.text.len(),
        };
        if !self.store_readable(&env, &keep, msg)? {
            return Ok(Outcome::Duplicate);
        }
        self.changed.notify_one();
        Ok(Outcome::Stored)
    }

    /// Stores an envelope and its readable message once; shows it (with the author's name when
    /// known). `false` when already there.
    fn store_readable(&self, env: &Envelope, keep: &Keep<'_>, mut msg: Message) -> Result<bool> {
        let now = self.clock.physical_ms();
        let limit = self.budget.of(keep.class);
        let new = state::write(&self.store, |tx| {
            let new = state::insert_envelope(tx, env, keep, limit)?;
            if new {
                state::insert_message(tx, &msg, env.time, env.expires_ms, now)?;
            }
            Ok(new)
        })?;
        if new {
            self.clock.observe(env.time);
            msg.from_name = contacts::name_of(&self.store, &msg.from).unwrap_or_default();
            self.report.send(Notice::Received(Box::new(msg)));
        }
        Ok(new)
    }

    fn carry(&self, from: PeerId, hops: u8, env: Envelope) -> Result<Outcome> {
        if hops == 0 {
            return Ok(Outcome::Rejected("hop limit reached".into()));
        }
        let (of_author, total) = state::carried_counts(&self.store, &env.author)?;
        if of_author >= u64::from(self.quota.per_author) || total >= u64::from(self.quota.total) {
            return Ok(Outcome::Rejected("over the carry quota".into()));
        }
        let keep = Keep {
            hops: hops - 1,
            carried: true,
            source: Some(&from),
            class: self.class_of(&env.author)?,
            raw: true,
            extra: 0,
        };
        let limit = self.budget.of(keep.class);
        if !state::write(&self.store, |tx| {
            state::insert_envelope(tx, &env, &keep, limit)
        })? {
            return Ok(Outcome::Duplicate);
        }
        self.changed.notify_one();
        Ok(Outcome::Stored)
    }

    /// Marks this device's messages handed to a peer as `sent`.
    pub fn handed_over(&self, ids: &[MessageId]) {
        for id in ids {
            match state::set_state(&self.store, id, &[MessageState::Queued], MessageState::Sent) {
                Ok(true) => self.report.send(Notice::StateChanged {
                    id: *id,
                    state: MessageState::Sent,
                }),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot record a sent message"),
            }
        }
    }

    /// Drops expired envelopes and fails this device's messages that expired undelivered.
    pub fn sweep(&self) {
        match state::expire(&self.store, self.clock.physical_ms()) {
            Ok(failed) => {
                for id in failed {
                    self.report.send(Notice::StateChanged {
                        id,
                        state: MessageState::Failed,
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot expire messages"),
        }
    }

    /// This device's peer id.
    pub fn local(&self) -> PeerId {
        self.local
    }

    /// The (shifted) wall clock in milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.clock.physical_ms()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Every message this device can read, in causal order.
    pub fn messages(&self) -> Result<Vec<Message>> {
        state::messages(&self.store)
    }

    /// Counts one envelope handed to a peer.
    pub(crate) fn count_sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// What the store holds, and how many envelopes were handed to peers since start.
    pub fn stats(&self) -> Result<MessageStats> {
        Ok(MessageStats {
            sent: self.sent.load(Ordering::Relaxed),
            ..state::stats(&self.store)?
        })
    }

    /// Creates a room; the returned invite lets others join.
    pub fn create_room(&self, name: &str) -> Result<Room> {
        room::check_name(name)?;
        let key = RoomKey::generate().map_err(|e| Error::Message(e.to_string()))?;
        self.add_room(name, key)
    }

    /// Joins a room from its invite (joining twice is harmless); the device that handed out the
    /// invite becomes a contact (joining is the user's act), keeping any name the user gave it.
    pub fn join_room(&self, invite: &str) -> Result<Room> {
        let invitation = room::decode_invite(invite)?;
        if let Some(from) = &invitation.inviter
            && from.peer != self.local
        {
            contacts::add(&self.store, &from.peer, &from.name, contacts::Via::Invite)?;
        }
        self.add_room(&invitation.name, invitation.key)
    }

    /// This device, as named in the invites it hands out.
    fn inviter(&self) -> Inviter {
        Inviter {
            peer: self.local,
            name: self.name.clone(),
        }
    }

    fn add_room(&self, name: &str, key: RoomKey) -> Result<Room> {
        state::insert_room(&self.store, name, &key)?;
        let id = RoomId(key.room_id());
        let invite = room::encode_invite(name, &key, &self.inviter());
        self.rooms().insert(id, (name.to_string(), key));
        // A new room widens what peers should hand over: pull again.
        self.pull_all.notify_one();
        Ok(Room {
            id,
            name: name.to_string(),
            invite,
        })
    }

    /// The rooms this device is in.
    pub fn room_list(&self) -> Vec<Room> {
        let inviter = self.inviter();
        let mut rooms: Vec<Room> = self
            .rooms()
            .iter()
            .map(|(id, (name, key))| Room {
                id: *id,
                name: name.clone(),
                invite: room::encode_invite(name, key, &inviter),
            })
            .collect();
        rooms.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
        rooms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Device {
        messenger: Messenger,
        notices: std::sync::mpsc::Receiver<Notice>,
        _dir: tempfile::TempDir,
    }

    fn device(quota: CarryQuota) -> Device {
        device_with(quota, InboxQuota::default())
    }

    fn device_with(quota: CarryQuota, inbox: InboxQuota) -> Device {
        device_budget(quota, inbox, StorageBudget::default())
    }

    fn device_budget(quota: CarryQuota, inbox: InboxQuota, storage: StorageBudget) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let (tx, notices) = std::sync::mpsc::channel();
        let report = Report::new(move |n| {
            let _ = tx.send(n);
        });
        let config = MessagingConfig {
            carry: quota,
            inbox,
            storage,
            ..MessagingConfig::default()
        };
        let messenger = Messenger::new(
            Keypair::generate_ed25519(),
            "test device",
            store,
            report,
            &config,
        )
        .unwrap();
        Device {
            messenger,
            notices,
            _dir: dir,
        }
    }

    /// The envelopes `from` would hand to `to`, as (hops, raw).
    fn handover(from: &Messenger, to: &PeerId) -> Vec<(u8, Vec<u8>)> {
        let upto = state::max_seq(from.store()).unwrap();
        state::candidates(
            from.store(),
            &from.local(),
            to,
            (0, upto),
            from.now_ms(),
            10_000,
        )
        .unwrap()
        .into_iter()
        .map(|o| (o.hops, o.raw))
        .collect()
    }

    #[test]
    fn a_message_arriving_twice_is_stored_and_shown_once() {
        let alice = device(CarryQuota::default());
        let bob = device(CarryQuota::default());
        let bob_id = bob.messenger.local();
        alice
            .messenger
            .send(Recipient::Peer(bob_id), "hello", None)
            .unwrap();
        let (hops, raw) = handover(&alice.messenger, &bob_id).remove(0);
        let from = alice.messenger.local();
        assert_eq!(bob.messenger.accept(from, hops, &raw), Outcome::Stored);
        assert_eq!(bob.messenger.accept(from, hops, &raw), Outcome::Duplicate);
        assert_eq!(bob.messenger.messages().unwrap().len(), 1);
        let shown = std::iter::from_fn(|| bob.notices.try_recv().ok())
            .filter(|n| matches!(n, Notice::Received(_)))
            .count();
        assert_eq!(shown, 1);
    }

    #[test]
    fn peers_in_sync_have_nothing_to_exchange_whatever_the_history() {
        let alice = device(CarryQuota::default());
        let bob = device(CarryQuota::default());
        let bob_id = bob.messenger.local();
        for i in 0..300 {
            alice
                .messenger
                .send(Recipient::Peer(bob_id), &format!("line {i}"), None)
                .unwrap();
        }
        let store = alice.messenger.store();
        let upto = state::max_seq(store).unwrap();
        let now = alice.messenger.now_ms();
        let first = state::candidates(
            store,
            &alice.messenger.local(),
            &bob_id,
            (0, upto),
            now,
            1000,
        );
        assert_eq!(first.unwrap().len(), 300);
        // Bob's cursor is now `upto`: the next pull is answered from an empty index range.
        let again = state::candidates(
            store,
            &alice.messenger.local(),
            &bob_id,
            (upto, upto),
            now,
            1000,
        );
        assert!(again.unwrap().is_empty());
    }

    #[test]
    fn forged_and_garbage_envelopes_are_rejected_and_nothing_is_stored() {
        let alice = device(CarryQuota::default());
        let bob = device(CarryQuota::default());
        let bob_id = bob.messenger.local();
        alice
            .messenger
            .send(Recipient::Peer(bob_id), "hi", None)
            .unwrap();
        let (hops, mut raw) = handover(&alice.messenger, &bob_id).remove(0);
        let mid = raw.len() / 2;
        raw[mid] ^= 0x55;
        let from = alice.messenger.local();
        assert!(matches!(
            bob.messenger.accept(from, hops, &raw),
            Outcome::Rejected(_)
        ));
        assert!(matches!(
            bob.messenger.accept(from, hops, b"\x00\x01garbage"),
            Outcome::Rejected(_)
        ));
        assert_eq!(bob.messenger.stats().unwrap().envelopes, 0);
    }

    #[test]
    fn a_carrier_stores_ciphertext_within_its_quota_and_decrements_the_hops() {
        let alice = device(CarryQuota::default());
        let carrier = device(CarryQuota {
            per_author: 3,
            total: 10,
        });
        let carol = Keypair::generate_ed25519().public().to_peer_id();
        for i in 0..5 {
            alice
                .messenger
                .send(Recipient::Peer(carol), &format!("secret {i}"), None)
                .unwrap();
        }
        let from = alice.messenger.local();
        let outcomes: Vec<Outcome> = handover(&alice.messenger, &carrier.messenger.local())
            .into_iter()
            .map(|(hops, raw)| carrier.messenger.accept(from, hops, &raw))
            .collect();
        assert_eq!(
            outcomes.iter().filter(|o| **o == Outcome::Stored).count(),
            3
        );
        assert_eq!(carrier.messenger.stats().unwrap().carried, 3);
        assert!(carrier.messenger.messages().unwrap().is_empty());
        let onward = handover(&carrier.messenger, &carol);
        assert!(onward.iter().all(|(hops, _)| *hops == MAX_HOPS - 1));
        // A hop limit of zero travels no further.
        let dave = device(CarryQuota::default());
        let (_, raw) = &onward[0];
        assert_eq!(
            dave.messenger.accept(carrier.messenger.local(), 0, raw),
            Outcome::Rejected("hop limit reached".into())
        );
    }

    /// A ticket for a share that `provider` serves.
    fn ticket_of(provider: PeerId) -> Ticket {
        Ticket::new(
            crate::transfer::ContentId::of(b"some manifest"),
            crate::transfer::ShareKey::from_bytes([5; 32]),
            vec![crate::transfer::Provider {
                peer: provider,
                addrs: vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()],
            }],
        )
    }

    #[test]
    fn an_attachment_travels_as_a_ticket_and_a_bad_one_is_refused() {
        let alice = device(CarryQuota::default());
        let bob = device(CarryQuota::default());
        let (a, b) = (alice.messenger.local(), bob.messenger.local());
        let ticket = ticket_of(a);
        alice
            .messenger
            .send(Recipient::Peer(b), "the photos", Some(&ticket))
            .unwrap();
        let (hops, raw) = handover(&alice.messenger, &b).remove(0);
        assert_eq!(bob.messenger.accept(a, hops, &raw), Outcome::Stored);
        let got = &bob.messenger.messages().unwrap()[0];
        assert_eq!(
            (got.text.as_str(), got.attachment.as_ref()),
            ("the photos", Some(&ticket))
        );
        assert_eq!(
            alice.messenger.messages().unwrap()[0].attachment,
            Some(ticket)
        );

        // A body whose attachment is not a ticket is refused whole.
        let bad = Body::Attached {
            text: "look".into(),
            ticket: "meshdrop1notaticket".into(),
        };
        let env = alice.messenger.write(Recipient::Peer(b), &bad).unwrap();
        assert_eq!(
            bob.messenger.accept(a, MAX_HOPS, env.raw()),
            Outcome::Rejected("the attachment is not a valid ticket".into())
        );
        assert_eq!(bob.messenger.messages().unwrap().len(), 1);
    }

    #[test]
    fn one_author_cannot_make_this_device_store_more_than_its_hourly_quota() {
        let alice = device(CarryQuota::default());
        let carol = device(CarryQuota::default());
        let bob = device_with(
            CarryQuota::default(),
            InboxQuota {
                per_author_per_hour: 5,
            },
        );
        let b = bob.messenger.local();
        for i in 0..8 {
            alice
                .messenger
                .send(Recipient::Peer(b), &format!("spam {i}"), None)
                .unwrap();
        }
        carol
            .messenger
            .send(Recipient::Peer(b), "a friend", None)
            .unwrap();
        let from_alice: Vec<Outcome> = handover(&alice.messenger, &b)
            .into_iter()
            .map(|(hops, raw)| bob.messenger.accept(alice.messenger.local(), hops, &raw))
            .collect();
        let stored = from_alice.iter().filter(|o| **o == Outcome::Stored).count();
        assert_eq!(stored, 5, "{from_alice:?}");
        assert!(
            from_alice[5..]
                .iter()
                .all(|o| matches!(o, Outcome::Rejected(_)))
        );
        // Another author is not held back by alice's flood.
        let (hops, raw) = handover(&carol.messenger, &b).remove(0);
        assert_eq!(
            bob.messenger.accept(carol.messenger.local(), hops, &raw),
            Outcome::Stored
        );
        assert_eq!(bob.messenger.messages().unwrap().len(), 6);
    }

    #[test]
    fn only_the_recipient_can_mark_a_message_delivered() {
        let alice = device(CarryQuota::default());
        let bob = device(CarryQuota::default());
        let carrier = device(CarryQuota::default());
        let (a, b) = (alice.messenger.local(), bob.messenger.local());
        let id = alice
            .messenger
            .send(Recipient::Peer(b), "hi", None)
            .unwrap();
        // A carrier saw the id and forges a receipt of its own.
        let forged = carrier
            .messenger
            .write(Recipient::Peer(a), &Body::Receipt(id.0))
            .unwrap();
        let from = carrier.messenger.local();
        assert!(matches!(
            alice.messenger.accept(from, MAX_HOPS, forged.raw()),
            Outcome::Rejected(_)
        ));
        assert_eq!(
            alice.messenger.messages().unwrap()[0].state,
            MessageState::Queued
        );
        // Bob's own receipt counts, once.
        let (hops, raw) = handover(&alice.messenger, &b).remove(0);
        assert_eq!(bob.messenger.accept(a, hops, &raw), Outcome::Stored);
        let (hops, receipt) = handover(&bob.messenger, &a).remove(0);
        assert_eq!(alice.messenger.accept(b, hops, &receipt), Outcome::Stored);
        assert_eq!(
            alice.messenger.accept(b, hops, &receipt),
            Outcome::Duplicate
        );
        assert_eq!(
            alice.messenger.messages().unwrap()[0].state,
            MessageState::Delivered
        );
    }

    #[test]
    fn a_flood_of_strangers_evicts_the_oldest_strangers_and_never_a_contact() {
        let budget = crate::messaging::Budget {
            bytes: 1 << 20,
            envelopes: 10,
        };
        let bob = device_budget(
            CarryQuota::default(),
            InboxQuota::default(),
            StorageBudget {
                strangers: budget,
                contacts: budget,
            },
        );
        let b = bob.messenger.local();
        let friend = device(CarryQuota::default());
        let f = friend.messenger.local();
        contacts::add(bob.messenger.store(), &f, "friend", contacts::Via::Code).unwrap();
        friend
            .messenger
            .send(Recipient::Peer(b), "from a friend", None)
            .unwrap();
        let (hops, raw) = handover(&friend.messenger, &b).remove(0);
        assert_eq!(bob.messenger.accept(f, hops, &raw), Outcome::Stored);
        // Twelve strangers write two messages each: each stored with its receipt, so the
        // strangers' ten envelopes hold the last five messages.
        for n in 0..12 {
            let stranger = device(CarryQuota::default());
            let s = stranger.messenger.local();
            for i in 0..2 {
                stranger
                    .messenger
                    .send(Recipient::Peer(b), &format!("spam {n}.{i}"), None)
                    .unwrap();
            }
            for (hops, raw) in handover(&stranger.messenger, &b) {
                assert_eq!(bob.messenger.accept(s, hops, &raw), Outcome::Stored);
            }
        }
        let texts: Vec<String> = bob
            .messenger
            .messages()
            .unwrap()
            .into_iter()
            .map(|m| m.text)
            .collect();
        assert!(texts.contains(&"from a friend".to_string()), "{texts:?}");
        assert!(texts.contains(&"spam 11.1".to_string()), "{texts:?}");
        assert!(!texts.contains(&"spam 0.0".to_string()), "{texts:?}");
        assert_eq!(texts.len(), 1 + 5, "{texts:?}");
        let store = bob.messenger.store();
        let strangers = store
            .with(|c| super::super::budget::used(c, Class::Stranger))
            .unwrap();
        assert_eq!(strangers.0, 10);
    }
}
