//! The `/meshdrop/msg/1` protocol. When two peers connect, each pulls from the other what it
//! lacks: the puller names the rooms it is in and its cursor (the highest arrival number of the
//! other's store it has already seen for that set of rooms); the other answers with the envelopes
//! after the cursor that concern the puller, then its new cursor; the puller then names the
//! envelopes it took. Only then does the holder count its own messages as `sent` and forget
//! what it carried for the puller: an envelope written to a stream that died is not lost. Peers
//! already in sync exchange three small frames, whatever the history. When a node stores
//! something new it pokes its connected peers, which answer the poke and pull.
//!
//! Nothing waits for the next round: a pull or a poke that fails (the peer dropped the stream
//! because its inbound queue was full, a connection closed as it was reported) is tried again
//! with a backoff of 25 ms doubling to 1 s while the peer stays connected (up to
//! [`MAX_TRIES`] times in a row). Every node also pulls from each connected peer at a low rate
//! ([`super::MessagingConfig::resync`]) as a backstop. A peer has [`FIRST_FRAME`] to send the
//! first frame of a stream it opens, and every frame is read and written within [`IO_TIMEOUT`];
//! at most [`SESSIONS_PER_PEER`] inbound sessions of one peer and [`SESSIONS`] in all are served
//! at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::envelope::Envelope;
use super::service::{Messenger, Outcome};
use super::{MessageId, MessagingConfig, Recipient, RoomId, state};
use crate::net::framing::{FIRST_FRAME, IO_TIMEOUT, WireError, read_within, write_within};
use crate::net::gate::Gate;
use crate::net::{Change, Net};

/// The libp2p protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/meshdrop/msg/1");

/// Envelopes read from the store at a time while answering a pull.
const PAGE: usize = 256;
/// Ids named in one [`Frame::Taken`].
const TAKEN_PER_FRAME: usize = 1024;
/// How often expired messages are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// A pull or poke that takes longer than this is abandoned (and tried again).
const SESSION_TIMEOUT: Duration = Duration::from_secs(120);
/// Inbound sessions of one peer served at once.
pub const SESSIONS_PER_PEER: usize = 4;
/// Inbound sessions served at once, in all.
pub const SESSIONS: usize = 64;
/// The first wait before a failed pull or poke is tried again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(25);
/// The longest wait between tries of a failed pull or poke.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Tries in a row of a failing pull or poke (about 35 s) before it waits for the next change.
const MAX_TRIES: u32 = 40;

/// Frames on a message stream.
#[derive(Debug, Serialize, Deserialize)]
enum Frame {
    /// Puller → holder: send what I lack after `since`, for these rooms.
    Pull { since: u64, rooms: Vec<[u8; 32]> },
    /// "I have something new": the receiver answers [`Frame::Poked`] and pulls.
    Poke,
    /// Holder → puller: one envelope, with the hops it may still travel.
    Envelope { hops: u8, raw: Vec<u8> },
    /// Holder → puller: that is all, up to this arrival number.
    Done { upto: u64 },
    /// Puller → holder, after `Done`: the envelopes it took (stored, or had already).
    Taken { ids: Vec<[u8; 32]> },
    /// The answer to a poke: heard.
    Poked,
}

/// The sync link to one connected peer: a task that pulls from it and pokes it on demand.
struct Link {
    pull: Arc<Notify>,
    poke: Arc<Notify>,
    task: JoinHandle<()>,
}

/// The links to connected peers.
struct Links {
    messenger: Arc<Messenger>,
    net: Net,
    map: Mutex<HashMap<PeerId, Link>>,
}

impl Links {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, Link>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The link to `peer`, created (with its task) when missing.
    fn get(&self, peer: PeerId) -> (Arc<Notify>, Arc<Notify>) {
        let mut map = self.map();
        let link = map.entry(peer).or_insert_with(|| {
            let (pull, poke) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
            let task = tokio::spawn(link_task(
                peer,
                self.messenger.clone(),
                self.net.clone(),
                pull.clone(),
                poke.clone(),
            ));
            Link { pull, poke, task }
        });
        (link.pull.clone(), link.poke.clone())
    }

    /// The link to `peer` when it is connected (a stream from a peer that is not, say one whose
    /// connection closed as the stream arrived, makes none).
    fn get_connected(&self, peer: PeerId) -> Option<Arc<Notify>> {
        if self.map().contains_key(&peer) || self.net.path(&peer).is_some() {
            return Some(self.get(peer).0);
        }
        None
    }

    fn remove(&self, peer: &PeerId) {
        if let Some(link) = self.map().remove(peer) {
            link.task.abort();
        }
    }

    fn each(&self, f: impl Fn(&Link)) {
        self.map().values().for_each(f);
    }

    /// Makes the links match who is connected now (after missed connection changes): new peers
    /// are pulled from, gone ones dropped.
    fn reconcile(&self) {
        let connected = self.net.connected();
        let gone: Vec<PeerId> = self
            .map()
            .keys()
            .filter(|p| !connected.contains(p))
            .copied()
            .collect();
        for peer in gone {
            self.remove(&peer);
        }
        for peer in connected {
            if !self.map().contains_key(&peer) {
                self.get(peer).0.notify_one();
            }
        }
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        for link in self.map().values() {
            link.task.abort();
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs messaging sync until aborted: follows connections, answers pulls and pokes, pokes peers
/// when something new is stored, pulls from every peer now and then, and sweeps expired messages.
pub fn spawn(
    messenger: Arc<Messenger>,
    net: Net,
    incoming: libp2p_stream::IncomingStreams,
    config: &MessagingConfig,
) -> JoinHandle<()> {
    let drop_pokes = config.drop_pokes;
    let mut resync = (!config.resync.is_zero()).then(|| {
        let every = config.resync;
        tokio::time::interval_at(tokio::time::Instant::now() + every, every)
    });
    let mut changes = net.subscribe();
    tokio::spawn(async move {
        let links = Arc::new(Links {
            messenger: messenger.clone(),
            net,
            map: Mutex::new(HashMap::new()),
        });
        // Peers connected before this task subscribed.
        links.reconcile();
        // Inbound streams wait in a channel of one: accept them in a task of their own, so that
        // few are dropped when several peers open streams at once (a dropped one is retried).
        let _accept = AbortOnDrop(tokio::spawn(accept(
            incoming,
            messenger.clone(),
            links.clone(),
            drop_pokes,
        )));
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(Change::Connected { peer, .. }) => links.get(peer).0.notify_one(),
                    Ok(Change::Disconnected { peer }) => links.remove(&peer),
                    Ok(Change::Upgraded { .. }) => {}
                    Err(RecvError::Lagged(_)) => links.reconcile(),
                    Err(RecvError::Closed) => break,
                },
                _ = messenger.changed.notified() => links.each(|l| l.poke.notify_one()),
                _ = messenger.pull_all.notified() => links.each(|l| l.pull.notify_one()),
                _ = tick(&mut resync) => links.each(|l| l.pull.notify_one()),
                _ = sweep.tick() => messenger.sweep(),
            }
        }
    })
}

/// The next tick of an optional interval; never without one.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Serves inbound streams, a task each, within the session bounds (a stream beyond them is
/// dropped: its opener tries again).
async fn accept(
    mut incoming: libp2p_stream::IncomingStreams,
    messenger: Arc<Messenger>,
    links: Arc<Links>,
    drop_pokes: bool,
) {
    let gate = Gate::new(SESSIONS_PER_PEER, SESSIONS);
    while let Some((peer, stream)) = incoming.next().await {
        let Some(pass) = gate.enter(peer) else {
            tracing::debug!(%peer, "too many message sessions: stream dropped");
            continue;
        };
        let (links, messenger) = (links.clone(), messenger.clone());
        tokio::spawn(async move {
            let session = serve(peer, stream, &messenger, &links, drop_pokes);
            let served = tokio::time::timeout(SESSION_TIMEOUT, session).await;
            if let Ok(Err(e)) = served {
                tracing::debug!(%peer, error = %e, "message sync session ended");
            }
            drop(pass);
        });
    }
}

/// What a link has to do, and how it failed so far.
#[derive(Default)]
struct Due {
    /// Failures in a row.
    failures: u32,
}

impl Due {
    /// Records an outcome; the wait before the next try after a failure.
    fn after(
        &mut self,
        result: Result<(), WireError>,
        what: &str,
        peer: PeerId,
    ) -> Option<Duration> {
        match result {
            Ok(()) => {
                self.failures = 0;
                None
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                tracing::debug!(%peer, error = %e, attempt = self.failures, "message {what} failed");
                if self.failures > MAX_TRIES {
                    // A peer that never answers is not hammered: the next change or the
                    // periodic pull tries again.
                    self.failures = 0;
                    return None;
                }
                // Staggered by peer, so that two sides do not collide again.
                let stagger = u64::from(peer.to_bytes().last().copied().unwrap_or(0) % 16);
                let doubled = FIRST_BACKOFF.saturating_mul(1 << self.failures.min(10));
                Some(doubled.min(MAX_BACKOFF) + Duration::from_millis(stagger))
            }
        }
    }
}

/// Pulls from and pokes one peer on demand, trying again with backoff until each works.
async fn link_task(
    peer: PeerId,
    messenger: Arc<Messenger>,
    net: Net,
    pull: Arc<Notify>,
    poke: Arc<Notify>,
) {
    let (mut pulls, mut pokes) = (Due::default(), Due::default());
    loop {
        tokio::select! {
            _ = pull.notified() => {
                let result = bounded(pull_from(peer, &messenger, &net)).await;
                if speaks_not(&result) {
                    return;
                }
                if let Some(wait) = pulls.after(result, "pull", peer) {
                    again_after(&pull, wait);
                }
            }
            _ = poke.notified() => {
                let result = bounded(send_poke(peer, &net)).await;
                if speaks_not(&result) {
                    return;
                }
                if let Some(wait) = pokes.after(result, "poke", peer) {
                    again_after(&poke, wait);
                }
            }
        }
    }
}

/// A session within [`SESSION_TIMEOUT`].
async fn bounded(
    session: impl std::future::Future<Output = Result<(), WireError>>,
) -> Result<(), WireError> {
    tokio::time::timeout(SESSION_TIMEOUT, session)
        .await
        .unwrap_or(Err(WireError::Timeout("a message sync session")))
}

/// Wakes `notify` after `wait`.
fn again_after(notify: &Arc<Notify>, wait: Duration) {
    let again = notify.clone();
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        again.notify_one();
    });
}

/// Whether the peer does not speak the messaging protocol (a relay): nothing to sync with it.
fn speaks_not(result: &Result<(), WireError>) -> bool {
    matches!(result, Err(WireError::Unsupported(_)))
}

/// Identifies a set of rooms: a cursor holds for one set (joining a room starts a new one).
fn scope_of(rooms: &[RoomId]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("meshdrop 2026 sync scope v1");
    for r in rooms {
        h.update(&r.0);
    }
    *h.finalize().as_bytes()
}

fn io_err(e: impl std::fmt::Display) -> WireError {
    WireError::Io(std::io::Error::other(e.to_string()))
}

/// Pokes `peer`; done once it answered (a stream it dropped unread is a failure, tried again).
async fn send_poke(peer: PeerId, net: &Net) -> Result<(), WireError> {
    let mut stream = net.open_stream(peer, PROTOCOL).await?;
    write_within(&mut stream, &Frame::Poke, IO_TIMEOUT).await?;
    stream.flush().await?;
    match read_within(&mut stream, &mut Vec::new(), IO_TIMEOUT).await? {
        Some(Frame::Poked) => {
            let _ = stream.close().await;
            Ok(())
        }
        other => Err(WireError::Malformed(format!(
            "unexpected answer to a poke: {other:?}"
        ))),
    }
}

/// Runs `f` on the messenger off the async workers (every check and write of the store).
async fn off_workers<R: Send + 'static>(
    messenger: &Arc<Messenger>,
    f: impl FnOnce(&Messenger) -> R + Send + 'static,
) -> Result<R, WireError> {
    let messenger = messenger.clone();
    tokio::task::spawn_blocking(move || f(&messenger))
        .await
        .map_err(io_err)
}

/// Pulls from `peer` what this device lacks, and names what it took.
async fn pull_from(peer: PeerId, messenger: &Arc<Messenger>, net: &Net) -> Result<(), WireError> {
    let rooms = messenger.room_ids();
    let scope = scope_of(&rooms);
    let since = state::cursor(messenger.store(), &peer, &scope).map_err(io_err)?;
    let mut stream = net.open_stream(peer, PROTOCOL).await?;
    let pull = Frame::Pull {
        since,
        rooms: rooms.iter().map(|r| r.0).collect(),
    };
    write_within(&mut stream, &pull, IO_TIMEOUT).await?;
    let mut buf = Vec::new();
    let (mut taken, mut rejected) = (Vec::new(), 0u64);
    let upto = loop {
        match read_within::<_, Frame>(&mut stream, &mut buf, IO_TIMEOUT).await? {
            Some(Frame::Envelope { hops, raw }) => {
                let outcome = off_workers(messenger, move |m| {
                    let outcome = m.accept(peer, hops, &raw);
                    (outcome, Envelope::id_in(&raw))
                });
                match outcome.await? {
                    (Outcome::Stored | Outcome::Duplicate, id) => taken.extend(id.map(|id| id.0)),
                    (Outcome::Rejected(why), _) => {
                        rejected += 1;
                        tracing::trace!(%peer, %why, "envelope rejected");
                    }
                }
            }
            Some(Frame::Done { upto }) => break upto,
            other => {
                return Err(WireError::Malformed(format!(
                    "unexpected frame during a pull: {other:?}"
                )));
            }
        }
    };
    tracing::debug!(local = %messenger.local(), %peer, since, upto, taken = taken.len(), rejected, "pulled");
    state::set_cursor(messenger.store(), &peer, &scope, upto).map_err(io_err)?;
    for ids in taken.chunks(TAKEN_PER_FRAME) {
        let frame = Frame::Taken { ids: ids.to_vec() };
        write_within(&mut stream, &frame, IO_TIMEOUT).await?;
    }
    tokio::time::timeout(IO_TIMEOUT, stream.close())
        .await
        .map_err(|_| WireError::Timeout("closing a pull"))??;
    Ok(())
}

/// Answers a stream a peer opened: a poke (pull from it) or a pull (send what it lacks).
async fn serve(
    peer: PeerId,
    mut stream: Stream,
    messenger: &Arc<Messenger>,
    links: &Links,
    drop_pokes: bool,
) -> Result<(), WireError> {
    let mut buf = Vec::new();
    let (since, rooms) = match read_within::<_, Frame>(&mut stream, &mut buf, FIRST_FRAME).await? {
        Some(Frame::Poke) => {
            if drop_pokes {
                return Ok(());
            }
            if let Some(pull) = links.get_connected(peer) {
                pull.notify_one();
            }
            write_within(&mut stream, &Frame::Poked, IO_TIMEOUT).await?;
            let _ = stream.close().await;
            return Ok(());
        }
        Some(Frame::Pull { since, rooms }) => (since, rooms),
        other => {
            return Err(WireError::Malformed(format!(
                "unexpected first frame {other:?}"
            )));
        }
    };
    let rooms: Vec<RoomId> = rooms.into_iter().map(RoomId).collect();
    answer_pull(peer, stream, messenger, since, &rooms).await
}

/// What a pull handed over, to settle once the puller names what it took.
#[derive(Default)]
struct Handed {
    /// This device's own envelopes.
    own: Vec<MessageId>,
    /// Envelopes carried for the puller itself.
    arrived: Vec<MessageId>,
}

/// Sends `peer` what it lacks after `since` (for `rooms` and itself, and what it may carry),
/// then the cursor to pull from next time; then settles what the puller says it took.
async fn answer_pull(
    peer: PeerId,
    mut stream: Stream,
    messenger: &Arc<Messenger>,
    since: u64,
    rooms: &[RoomId],
) -> Result<(), WireError> {
    let upto = state::max_seq(messenger.store()).map_err(io_err)?;
    let handed = send_after(peer, &mut stream, messenger, (since, upto), rooms).await?;
    write_within(&mut stream, &Frame::Done { upto }, IO_TIMEOUT).await?;
    stream.flush().await?;
    let mut buf = Vec::new();
    let mut taken = std::collections::HashSet::new();
    while let Some(frame) = read_within::<_, Frame>(&mut stream, &mut buf, IO_TIMEOUT).await? {
        match frame {
            Frame::Taken { ids } => taken.extend(ids.into_iter().map(MessageId)),
            other => {
                return Err(WireError::Malformed(format!(
                    "unexpected frame after a pull: {other:?}"
                )));
            }
        }
    }
    let _ = stream.close().await;
    let own: Vec<MessageId> = handed
        .own
        .into_iter()
        .filter(|i| taken.contains(i))
        .collect();
    // What reached its recipient need not be carried any further.
    let arrived: Vec<MessageId> = handed
        .arrived
        .into_iter()
        .filter(|i| taken.contains(i))
        .collect();
    off_workers(messenger, move |m| {
        m.handed_over(&own);
        state::forget_carried(m.store(), &arrived)
    })
    .await?
    .map_err(io_err)
}

/// Writes the envelopes numbered in `(since, upto]` that `peer` should get.
async fn send_after(
    peer: PeerId,
    stream: &mut Stream,
    messenger: &Arc<Messenger>,
    (since, upto): (u64, u64),
    rooms: &[RoomId],
) -> Result<Handed, WireError> {
    let local = messenger.local();
    let mut cursor = since;
    let mut handed = Handed::default();
    let mut sent = 0usize;
    loop {
        let page = off_workers(messenger, move |m| {
            state::candidates(m.store(), &local, &peer, (cursor, upto), m.now_ms(), PAGE)
        })
        .await?
        .map_err(io_err)?;
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        for env in page {
            let wanted = match env.recipient {
                Recipient::Room(room) => rooms.contains(&room),
                Recipient::Peer(to) => to == peer || to != local,
            };
            if !wanted {
                continue;
            }
            let frame = Frame::Envelope {
                hops: env.hops,
                raw: env.raw,
            };
            write_within(stream, &frame, IO_TIMEOUT).await?;
            messenger.count_sent();
            sent += 1;
            if env.own {
                handed.own.push(env.id);
            }
            if env.carried && env.recipient == Recipient::Peer(peer) {
                handed.arrived.push(env.id);
            }
        }
    }
    tracing::debug!(local = %local, %peer, since, upto, sent, "served a pull");
    Ok(handed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_changes_with_the_rooms() {
        let a = RoomId([1; 32]);
        let b = RoomId([2; 32]);
        assert_eq!(scope_of(&[a, b]), scope_of(&[a, b]));
        assert_ne!(scope_of(&[a]), scope_of(&[a, b]));
        assert_ne!(scope_of(&[]), scope_of(&[a]));
    }
}
