//! The `/meshdrop/msg/1` protocol. When two peers connect, each pulls from the other what it
//! lacks: the puller names the rooms it is in and its cursor (the highest arrival number of the
//! other's store it has already seen for that set of rooms); the other answers with the envelopes
//! after the cursor that concern the puller, then its new cursor. Peers already in sync exchange
//! two small frames, whatever the history. When a node stores something new it pokes its
//! connected peers, which pull. A poke can be lost (a peer busy accepting other streams drops
//! it, and a failed pull or poke is retried only a few times), so every node also pulls from each
//! connected peer at a low rate ([`super::MessagingConfig::resync`]): what a lost poke
//! announced arrives then.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::service::{Messenger, Outcome};
use super::{MessagingConfig, Recipient, RoomId, state};
use crate::net::framing::{WireError, read_msg, write_msg};
use crate::net::{Change, Net};

/// The libp2p protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/meshdrop/msg/1");

/// Envelopes read from the store at a time while answering a pull.
const PAGE: usize = 256;
/// How often expired messages are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// A pull or poke that takes longer than this is abandoned.
const SESSION_TIMEOUT: Duration = Duration::from_secs(120);

/// Frames on a message stream.
#[derive(Debug, Serialize, Deserialize)]
enum Frame {
    /// Puller → holder: send what I lack after `since`, for these rooms.
    Pull { since: u64, rooms: Vec<[u8; 32]> },
    /// "I have something new": the receiver pulls.
    Poke,
    /// Holder → puller: one envelope, with the hops it may still travel.
    Envelope { hops: u8, raw: Vec<u8> },
    /// Holder → puller: that is all, up to this arrival number.
    Done { upto: u64 },
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

async fn accept(
    mut incoming: libp2p_stream::IncomingStreams,
    messenger: Arc<Messenger>,
    links: Arc<Links>,
    drop_pokes: bool,
) {
    while let Some((peer, stream)) = incoming.next().await {
        let (links, messenger) = (links.clone(), messenger.clone());
        tokio::spawn(async move {
            let session = serve(peer, stream, &messenger, &links, drop_pokes);
            let served = tokio::time::timeout(SESSION_TIMEOUT, session).await;
            if let Ok(Err(e)) = served {
                tracing::debug!(%peer, error = %e, "message sync session ended");
            }
        });
    }
}

async fn link_task(
    peer: PeerId,
    messenger: Arc<Messenger>,
    net: Net,
    pull: Arc<Notify>,
    poke: Arc<Notify>,
) {
    // Failed pulls and pokes are retried a few times with a growing delay: a stream can be
    // dropped when the peer is busy accepting others. Beyond that, the periodic pull catches up.
    let (mut pull_failures, mut poke_failures) = (0u32, 0u32);
    loop {
        tokio::select! {
            _ = pull.notified() => {
                let result = tokio::time::timeout(SESSION_TIMEOUT, pull_from(peer, &messenger, &net)).await;
                if speaks_not(&result) {
                    return;
                }
                retry_on_failure(result, &mut pull_failures, &pull, peer);
            }
            _ = poke.notified() => {
                let result = tokio::time::timeout(SESSION_TIMEOUT, send_poke(peer, &net)).await;
                if speaks_not(&result) {
                    return;
                }
                retry_on_failure(result, &mut poke_failures, &poke, peer);
            }
        }
    }
}

/// Whether the peer does not speak the messaging protocol (a relay): nothing to sync with it.
fn speaks_not(result: &Result<Result<(), WireError>, tokio::time::error::Elapsed>) -> bool {
    matches!(result, Ok(Err(WireError::Unsupported(_))))
}

/// How many times in a row a failed pull or poke is retried.
const RETRIES: u32 = 6;

fn retry_on_failure(
    result: Result<Result<(), WireError>, tokio::time::error::Elapsed>,
    failures: &mut u32,
    again: &Arc<Notify>,
    peer: PeerId,
) {
    let error = match result {
        Ok(Ok(())) => {
            *failures = 0;
            return;
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => "timed out".to_string(),
    };
    *failures += 1;
    tracing::debug!(%peer, %error, attempt = *failures, "message sync failed");
    if *failures > RETRIES {
        *failures = 0;
        return;
    }
    // 50 ms, 100 ms, ... 1.6 s, staggered by peer so that two sides do not collide again.
    let stagger = u64::from(peer.to_bytes().last().copied().unwrap_or(0) % 32);
    let delay = Duration::from_millis((25u64 << *failures) + stagger);
    let again = again.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        again.notify_one();
    });
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

async fn send_poke(peer: PeerId, net: &Net) -> Result<(), WireError> {
    let mut stream = net.open_stream(peer, PROTOCOL).await?;
    write_msg(&mut stream, &Frame::Poke).await?;
    // The peer may drop the stream as soon as it read the poke: that is not a failure.
    let _ = stream.close().await;
    Ok(())
}

/// Pulls from `peer` what this device lacks.
async fn pull_from(peer: PeerId, messenger: &Messenger, net: &Net) -> Result<(), WireError> {
    let rooms = messenger.room_ids();
    let scope = scope_of(&rooms);
    let since = state::cursor(messenger.store(), &peer, &scope).map_err(io_err)?;
    let mut stream = net.open_stream(peer, PROTOCOL).await?;
    let pull = Frame::Pull {
        since,
        rooms: rooms.iter().map(|r| r.0).collect(),
    };
    write_msg(&mut stream, &pull).await?;
    let mut buf = Vec::new();
    let (mut stored, mut duplicates, mut rejected) = (0u64, 0u64, 0u64);
    loop {
        match read_msg::<_, Frame>(&mut stream, &mut buf).await? {
            Some(Frame::Envelope { hops, raw }) => match messenger.accept(peer, hops, &raw) {
                Outcome::Stored => stored += 1,
                Outcome::Duplicate => duplicates += 1,
                Outcome::Rejected(why) => {
                    rejected += 1;
                    tracing::trace!(%peer, %why, "envelope rejected");
                }
            },
            Some(Frame::Done { upto }) => {
                tracing::debug!(local = %messenger.local(), %peer, since, upto, stored, duplicates, rejected, "pulled");
                state::set_cursor(messenger.store(), &peer, &scope, upto).map_err(io_err)?;
                let _ = stream.close().await;
                return Ok(());
            }
            other => {
                return Err(WireError::Malformed(format!(
                    "unexpected frame during a pull: {other:?}"
                )));
            }
        }
    }
}

/// Answers a stream a peer opened: a poke (pull from it) or a pull (send what it lacks).
async fn serve(
    peer: PeerId,
    mut stream: Stream,
    messenger: &Messenger,
    links: &Links,
    drop_pokes: bool,
) -> Result<(), WireError> {
    let mut buf = Vec::new();
    let (pull, _) = links.get(peer);
    let (since, rooms) = match read_msg::<_, Frame>(&mut stream, &mut buf).await? {
        Some(Frame::Poke) => {
            if !drop_pokes {
                pull.notify_one();
            }
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

/// Sends `peer` what it lacks after `since` (for `rooms` and itself, and what it may carry),
/// then the cursor to pull from next time.
async fn answer_pull(
    peer: PeerId,
    mut stream: Stream,
    messenger: &Messenger,
    since: u64,
    rooms: &[RoomId],
) -> Result<(), WireError> {
    let store = messenger.store();
    let local = messenger.local();
    let upto = state::max_seq(store).map_err(io_err)?;
    let mut cursor = since;
    let mut sent = 0usize;
    let mut arrived = Vec::new();
    loop {
        let page = state::candidates(
            store,
            &local,
            &peer,
            (cursor, upto),
            messenger.now_ms(),
            PAGE,
        )
        .map_err(io_err)?;
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        let mut own = Vec::new();
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
            write_msg(&mut stream, &frame).await?;
            messenger.count_sent();
            sent += 1;
            if env.own {
                own.push(env.id);
            }
            if env.carried && env.recipient == Recipient::Peer(peer) {
                arrived.push(env.id);
            }
        }
        messenger.handed_over(&own);
    }
    tracing::debug!(local = %messenger.local(), %peer, since, upto, sent, "served a pull");
    write_msg(&mut stream, &Frame::Done { upto }).await?;
    stream.close().await?;
    // What reached its recipient need not be carried any further.
    state::forget_carried(store, &arrived).map_err(io_err)?;
    Ok(())
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
