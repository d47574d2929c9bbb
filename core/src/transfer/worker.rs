//! One peer of a download: a pipelined stream on which requests go out while answers come in.
//! The writing half asks for what the schedule hands it, keeping about one round trip of this
//! peer's own measured rate in flight (at least [`MIN_WINDOW`]); the reading half verifies
//! nothing itself — it hands chunks to the writer thread — and keeps the schedule up to date with
//! what the peer announces it gained.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::io::BufReader;
use futures::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::download::{Control, Ctx};
use super::schedule::Sched;
use super::sink::{Pool, Received};
use super::wire::{self, PexPeer, Request, Response};
use super::{ContentId, Manifest};
use crate::net;

/// The least a peer is asked for ahead of what it sent.
const MIN_WINDOW: u64 = 1024 * 1024;
/// The most a peer is asked for ahead of what it sent.
const MAX_WINDOW: u64 = 16 * 1024 * 1024;
/// A provider that sends nothing for this long while chunks are due is given up on.
pub(super) const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for a peer to answer a dial.
pub(super) const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// A stream open on a peer that holds the share, and what it said at hello.
pub(super) struct Opened {
    pub(super) stream: libp2p::Stream,
    pub(super) complete: bool,
    pub(super) have: Vec<u8>,
    pub(super) peers: Vec<PexPeer>,
}

/// Opens a blob stream to `peer` about `content` and reads its hello; `None` when the peer does
/// not have the share.
pub(super) async fn open(
    ctx: &Ctx,
    peer: PeerId,
    content: &ContentId,
) -> Result<Option<Opened>, String> {
    let mut last = String::new();
    for attempt in 0..3u64 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
        }
        let opened =
            crate::net::open_stream(&ctx.streams, &ctx.directory, peer, wire::PROTOCOL).await;
        let mut stream = match opened {
            Ok(s) => s,
            // Not a meshdrop node (a relay): it holds no share.
            Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_)) => return Ok(None),
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        let hello = Request::Hello { content: *content };
        if let Err(e) = wire::write_msg(&mut stream, &hello).await {
            last = e.to_string();
            continue;
        }
        return match wire::read_msg(&mut stream, &mut Vec::new()).await {
            Ok(Some(Response::Hello {
                complete,
                have,
                peers,
            })) => Ok(Some(Opened {
                stream,
                complete,
                have,
                peers,
            })),
            Ok(Some(Response::Unknown)) => Ok(None),
            Ok(other) => Err(format!("unexpected answer {other:?}")),
            Err(e) => Err(e.to_string()),
        };
    }
    Err(last)
}

/// Dials `peer` at `addrs` (or at what the node knows of it).
pub(super) async fn dial(ctx: &Ctx, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), String> {
    let (tx, rx) = oneshot::channel();
    let cmd = net::Command::Dial {
        peer: Some(peer),
        addrs,
        reply: Some(tx),
    };
    ctx.net
        .send(cmd)
        .await
        .map_err(|_| "the node stopped".to_string())?;
    match tokio::time::timeout(DIAL_TIMEOUT, rx).await {
        Ok(Ok(Ok(_))) => Ok(()),
        Ok(Ok(Err(e))) => Err(e.to_string()),
        _ => Err("no answer to the dial".into()),
    }
}

/// How a worker ended without an error.
pub(super) enum Ended {
    /// The peer does not have the share (yet).
    NotAProvider,
    /// The download no longer needs it.
    Done,
}

/// Pulls chunks from one peer.
pub(super) struct Worker {
    pub(super) ctx: Ctx,
    pub(super) peer: PeerId,
    /// Where to dial it first (a peer named by peer exchange); empty when connected.
    pub(super) addrs: Vec<Multiaddr>,
    pub(super) content: ContentId,
    pub(super) manifest: Arc<Manifest>,
    pub(super) sched: Arc<Mutex<Sched>>,
    /// Woken when chunks wait again or peers announce new ones.
    pub(super) wake: Arc<Notify>,
    pub(super) chunks: mpsc::Sender<Received>,
    pub(super) pool: Pool,
    pub(super) control: watch::Receiver<Control>,
    /// Where peers named by this one's hello go.
    pub(super) found: mpsc::UnboundedSender<(PeerId, Vec<Multiaddr>)>,
}

/// Requests sent and not yet answered, shared by the two halves of a worker.
#[derive(Default)]
struct InFlight {
    chunks: Mutex<VecDeque<u64>>,
    bytes: AtomicU64,
    /// Woken when answers make room in the window.
    room: Notify,
    /// Bytes per second received lately.
    rate: AtomicU64,
}

impl Worker {
    pub(super) async fn run(self) -> Result<Ended, String> {
        if !self.addrs.is_empty() {
            dial(&self.ctx, self.peer, self.addrs.clone()).await?;
        }
        let Some(opened) = open(&self.ctx, self.peer, &self.content).await? else {
            return Ok(Ended::NotAProvider);
        };
        tracing::debug!(peer = %self.peer, complete = opened.complete, "worker: stream open");
        self.ctx.directory.add_peer_of(self.content, self.peer);
        for found in opened.peers.iter().filter_map(PexPeer::parse) {
            let _ = self.found.send(found);
        }
        self.sched.lock().unwrap_or_else(|p| p.into_inner()).join(
            self.peer,
            opened.complete,
            opened.have,
        );
        self.wake.notify_waiters();
        let (r, w) = opened.stream.split();
        let inflight = InFlight::default();
        tokio::select! {
            result = self.ask(w, &inflight) => result,
            result = self.receive(BufReader::new(r), &inflight) => result,
        }
    }

    /// What may be in flight to this peer: about two round trips at its recent rate.
    fn window(&self, inflight: &InFlight) -> u64 {
        let rtt = self.ctx.directory.rtt(&self.peer).unwrap_or_default();
        let rate = inflight.rate.load(Ordering::Relaxed) as f64;
        ((2.0 * rate * rtt.as_secs_f64()) as u64).clamp(MIN_WINDOW, MAX_WINDOW)
    }

    /// The writing half: asks for runs of chunks while the window has room.
    async fn ask(
        &self,
        mut w: futures::io::WriteHalf<libp2p::Stream>,
        inflight: &InFlight,
    ) -> Result<Ended, String> {
        let mut control = self.control.clone();
        loop {
            // Registered before looking at the shared state, so no wake-up between the two is lost.
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(why) = self
                .sched
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .banned
                .get(&self.peer)
            {
                return Err(format!("dropped: {why}"));
            }
            if *control.borrow() == Control::Run {
                let window = self.window(inflight);
                let mut asked = false;
                while inflight.bytes.load(Ordering::Acquire) < window {
                    let run = self
                        .sched
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .next_run(&self.peer, &self.manifest);
                    let Some((first, count)) = run else { break };
                    let bytes: u64 = (first..first + u64::from(count))
                        .map(|i| self.manifest.chunk(i).map_or(0, |c| u64::from(c.len)))
                        .sum();
                    inflight
                        .chunks
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend(first..first + u64::from(count));
                    inflight.bytes.fetch_add(bytes, Ordering::AcqRel);
                    wire::write_msg(&mut w, &Request::Chunks { first, count })
                        .await
                        .map_err(|e| e.to_string())?;
                    asked = true;
                }
                if asked {
                    w.flush().await.map_err(|e| e.to_string())?;
                }
            }
            tokio::select! {
                _ = notified => {}
                _ = inflight.room.notified() => {}
                changed = control.changed() => if changed.is_err() {
                    return Ok(Ended::Done);
                },
            }
        }
    }

    /// The reading half: answers in request order, and announcements between them.
    async fn receive(
        &self,
        mut r: BufReader<futures::io::ReadHalf<libp2p::Stream>>,
        inflight: &InFlight,
    ) -> Result<Ended, String> {
        let mut buf = Vec::new();
        let (mut window_start, mut window_bytes) = (Instant::now(), 0u64);
        loop {
            // Waiting for the next frame is cancel-safe (the bytes stay buffered); only while
            // answers are due does a silent peer count as stalled.
            let due = !inflight
                .chunks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty();
            let ready = if due {
                tokio::time::timeout(STALL_TIMEOUT, r.fill_buf())
                    .await
                    .map_err(|_| format!("no answer for {} s", STALL_TIMEOUT.as_secs()))?
            } else {
                r.fill_buf().await
            };
            if ready.map_err(|e| e.to_string())?.is_empty() {
                return Err("the peer closed the stream".into());
            }
            let response: Response =
                tokio::time::timeout(STALL_TIMEOUT, wire::read_msg(&mut r, &mut buf))
                    .await
                    .map_err(|_| format!("no answer for {} s", STALL_TIMEOUT.as_secs()))?
                    .map_err(|e| e.to_string())?
                    .ok_or("the peer closed the stream")?;
            match &response {
                Response::Have { chunks } => {
                    self.sched
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .gained(&self.peer, chunks);
                    self.wake.notify_waiters();
                    continue;
                }
                Response::Peers { peers } => {
                    for found in peers.iter().filter_map(PexPeer::parse) {
                        let _ = self.found.send(found);
                    }
                    continue;
                }
                _ => {}
            }
            let expected = inflight
                .chunks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
                .ok_or("unrequested answer")?;
            let want = self
                .manifest
                .chunk(expected)
                .map(|c| c.len)
                .ok_or("chunk out of range")?;
            match response {
                Response::Chunk { index, len } if index == expected => {
                    if len != want {
                        return Err(format!("chunk {index} has {len} bytes, expected {want}"));
                    }
                    let mut data = self.pool.take(len as usize);
                    r.read_exact(&mut data).await.map_err(|e| e.to_string())?;
                    if let Some(rate) = &self.ctx.throttle.download {
                        rate.take(u64::from(len)).await;
                    }
                    inflight.bytes.fetch_sub(u64::from(len), Ordering::AcqRel);
                    inflight.room.notify_one();
                    window_bytes += u64::from(len);
                    let elapsed = window_start.elapsed();
                    if elapsed >= Duration::from_millis(250) {
                        let rate = window_bytes as f64 / elapsed.as_secs_f64();
                        inflight.rate.store(rate as u64, Ordering::Relaxed);
                        (window_start, window_bytes) = (Instant::now(), 0);
                    }
                    // It stays requested until the writer settles it, so a worker stopped from
                    // here on cannot lose it: it waits again when this peer leaves.
                    let received = Received {
                        peer: self.peer,
                        index,
                        data,
                    };
                    if self.chunks.send(received).await.is_err() {
                        return Ok(Ended::Done);
                    }
                }
                Response::Missing { index } if index == expected => {
                    inflight.bytes.fetch_sub(u64::from(want), Ordering::AcqRel);
                    inflight.room.notify_one();
                    self.sched
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .lacks(&self.peer, index);
                    self.wake.notify_waiters();
                }
                other => {
                    return Err(format!(
                        "protocol violation: {other:?} while chunk {expected} was due"
                    ));
                }
            }
        }
    }
}
