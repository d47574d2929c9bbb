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
use tokio::sync::{Notify, mpsc, watch};

use super::handle::Control;
use super::pex::Intake;
use super::schedule::Sched;
use super::sink::{PIECE, Pool, Received};
use crate::net::framing::{IO_TIMEOUT, WireError, read_msg, read_within, write_within};
use crate::transfer::Manifest;
use crate::transfer::capability::ShareKey;
use crate::transfer::service::Shared;
use crate::transfer::wire::{self, PexPeer, Request, Response};

/// The least a peer is asked for ahead of what it sent (and never less than a chunk: pieces of
/// it make room for the next one as they come).
const MIN_WINDOW: u64 = 1024 * 1024;
/// What is in flight covers at least this much time at the peer's rate, so on a fast link the
/// provider's disk reads and this device's own work overlap with the transfer whatever the
/// chunk size (a window set by the chunk size alone would make memory grow with the share).
const MIN_WINDOW_TIME: Duration = Duration::from_millis(10);
/// The most a peer is asked for ahead of what it sent.
const MAX_WINDOW: u64 = 16 * 1024 * 1024;
/// A provider that sends nothing for this long while chunks are due is given up on.
pub(super) const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for a peer to answer a dial.
pub(super) const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a worker stopped pulling from its peer, which says what the download does with the peer:
/// a peer that broke the protocol or sent bad data is not asked again; one that could not be
/// reached or went silent may be asked again when it comes back.
#[derive(Debug, thiserror::Error)]
pub(super) enum PeerError {
    /// It could not be dialled, or no stream to it could be opened.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The connection or the stream broke.
    #[error("{0}")]
    Lost(#[from] WireError),
    /// It sent nothing for [`STALL_TIMEOUT`] while chunks were due from it.
    #[error("no answer for {} s", STALL_TIMEOUT.as_secs())]
    Stalled,
    /// It answered out of turn or with a chunk of the wrong size.
    #[error("protocol violation: {0}")]
    Violation(String),
    /// The download dropped it (it sent a corrupt chunk).
    #[error("dropped: {0}")]
    Dropped(String),
}

impl PeerError {
    /// Whether the peer is not asked again by this download.
    pub(super) fn bans(&self) -> bool {
        matches!(self, PeerError::Violation(_) | PeerError::Dropped(_))
    }
}

impl From<std::io::Error> for PeerError {
    fn from(e: std::io::Error) -> Self {
        PeerError::Lost(WireError::Io(e))
    }
}

/// A stream open on a peer that holds the share, and what it said at hello.
pub(super) struct Opened {
    pub(super) stream: libp2p::Stream,
    pub(super) complete: bool,
    pub(super) have: Vec<u8>,
    pub(super) peers: Vec<PexPeer>,
}

/// Opens a blob stream to `peer` about the share `key` opens, proving this node holds the key,
/// and reads its hello, checking that the peer holds the key too (three tries: a stream can fail
/// while a connection settles); `None` when the peer does not have the share.
pub(super) async fn open(
    s: &Shared,
    peer: PeerId,
    key: &ShareKey,
) -> Result<Option<Opened>, PeerError> {
    let local = s.net.local_peer_id();
    let mut last = PeerError::Unreachable("no stream".into());
    for attempt in 0..3u64 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
        }
        let mut stream = match s.net.open_stream(peer, wire::PROTOCOL).await {
            Ok(s) => s,
            // Not a meshdrop node (a relay): it holds no share.
            Err(libp2p_stream::OpenStreamError::UnsupportedProtocol(_)) => return Ok(None),
            Err(e) => {
                last = PeerError::Unreachable(e.to_string());
                continue;
            }
        };
        let hello = Request::Hello {
            tag: key.tag().0,
            proof: key.proof(&local, &peer),
        };
        if let Err(e) = write_within(&mut stream, &hello, IO_TIMEOUT).await {
            last = e.into();
            continue;
        }
        return match read_within(&mut stream, &mut Vec::new(), IO_TIMEOUT).await? {
            Some(Response::Hello {
                proof,
                complete,
                have,
                peers,
            }) if key.verify(&proof, &peer, &local) => Ok(Some(Opened {
                stream,
                complete,
                have,
                peers,
            })),
            Some(Response::Hello { .. }) => Err(PeerError::Violation(
                "its proof of the share's key does not hold".into(),
            )),
            Some(Response::Unknown) => Ok(None),
            other => Err(PeerError::Violation(format!(
                "answered hello with {other:?}"
            ))),
        };
    }
    Err(last)
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
    pub(super) s: Shared,
    pub(super) peer: PeerId,
    /// Where to dial it first (a peer named by peer exchange); empty when connected.
    pub(super) addrs: Vec<Multiaddr>,
    /// The share's key (the ticket's).
    pub(super) key: ShareKey,
    pub(super) manifest: Arc<Manifest>,
    pub(super) sched: Arc<Mutex<Sched>>,
    /// Woken when chunks wait again or peers announce new ones.
    pub(super) wake: Arc<Notify>,
    pub(super) chunks: mpsc::Sender<Received>,
    pub(super) pool: Pool,
    pub(super) control: watch::Receiver<Control>,
    /// Where peers named by this one go (dropped when the download has enough to do).
    pub(super) found: mpsc::Sender<(PeerId, Vec<Multiaddr>)>,
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
    pub(super) async fn run(self) -> Result<Ended, PeerError> {
        if !self.addrs.is_empty() {
            self.s
                .net
                .dial(self.peer, self.addrs.clone(), DIAL_TIMEOUT)
                .await
                .map_err(|e| PeerError::Unreachable(e.to_string()))?;
        }
        let Some(opened) = open(&self.s, self.peer, &self.key).await? else {
            return Ok(Ended::NotAProvider);
        };
        tracing::debug!(peer = %self.peer, complete = opened.complete, "worker: stream open");
        self.s.holders.add(self.key.tag(), self.peer);
        let mut intake = Intake::new();
        self.take_peers(&mut intake, &opened.peers);
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
            result = self.receive(BufReader::new(r), &inflight, intake) => result,
        }
    }

    /// Hands the download the peers this one named, within what peer exchange may take.
    fn take_peers(&self, intake: &mut Intake, peers: &[PexPeer]) {
        let net = &self.s.net;
        let local = net.local_peer_id();
        for found in intake.take(peers, &local, |a| net.may_dial_learned(a)) {
            if self.found.try_send(found).is_err() {
                break;
            }
        }
    }

    /// What may be in flight to this peer: about two round trips at its recent rate, at least a
    /// chunk and [`MIN_WINDOW_TIME`] of its rate.
    fn window(&self, inflight: &InFlight) -> u64 {
        let rtt = self
            .s
            .net
            .path(&self.peer)
            .and_then(|p| p.rtt)
            .unwrap_or_default();
        let rate = inflight.rate.load(Ordering::Relaxed) as f64;
        let least = MIN_WINDOW
            .max(u64::from(self.manifest.chunk_size()))
            .max((rate * MIN_WINDOW_TIME.as_secs_f64()) as u64)
            .min(MAX_WINDOW);
        ((2.0 * rate * rtt.as_secs_f64()) as u64).clamp(least, MAX_WINDOW)
    }

    /// The writing half: asks for runs of chunks while the window has room.
    async fn ask(
        &self,
        mut w: futures::io::WriteHalf<libp2p::Stream>,
        inflight: &InFlight,
    ) -> Result<Ended, PeerError> {
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
                return Err(PeerError::Dropped(why.clone()));
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
                    let ask = Request::Chunks { first, count };
                    write_within(&mut w, &ask, IO_TIMEOUT).await?;
                    asked = true;
                }
                if asked {
                    tokio::time::timeout(IO_TIMEOUT, w.flush())
                        .await
                        .map_err(|_| WireError::Timeout("sending requests"))??;
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
        mut intake: Intake,
    ) -> Result<Ended, PeerError> {
        let mut buf = Vec::new();
        let mut meter = RateMeter::new();
        loop {
            let response = next_response(&mut r, &mut buf, inflight).await?;
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
                    self.take_peers(&mut intake, peers);
                    continue;
                }
                _ => {}
            }
            let expected = inflight
                .chunks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
                .ok_or_else(|| PeerError::Violation("an answer nobody asked for".into()))?;
            let want = self
                .manifest
                .chunk(expected)
                .map(|c| c.len)
                .ok_or_else(|| PeerError::Violation("chunk out of range".into()))?;
            match response {
                Response::Chunk { index, len } if index == expected => {
                    if len != want {
                        return Err(PeerError::Violation(format!(
                            "chunk {index} has {len} bytes, expected {want}"
                        )));
                    }
                    // Handed to the writer piece by piece. It stays requested until the writer
                    // settles it, so a worker stopped from here on cannot lose it: it waits
                    // again when this peer leaves.
                    let mut at = 0;
                    while at < len {
                        let n = (len - at).min(PIECE);
                        let data = self.read_piece(&mut r, n, inflight, &mut meter).await?;
                        let piece = Received {
                            peer: self.peer,
                            index,
                            at,
                            data,
                        };
                        if self.chunks.send(piece).await.is_err() {
                            return Ok(Ended::Done);
                        }
                        at += n;
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
                    return Err(PeerError::Violation(format!(
                        "{other:?} while chunk {expected} was due"
                    )));
                }
            }
        }
    }

    /// Reads `len` bytes of a chunk (within the download rate), making room in the window.
    async fn read_piece(
        &self,
        r: &mut BufReader<futures::io::ReadHalf<libp2p::Stream>>,
        len: u32,
        inflight: &InFlight,
        meter: &mut RateMeter,
    ) -> Result<Vec<u8>, PeerError> {
        let mut data = self.pool.take(len as usize);
        r.read_exact(&mut data).await?;
        self.s.throttle.download.take(u64::from(len)).await;
        inflight.bytes.fetch_sub(u64::from(len), Ordering::AcqRel);
        inflight.room.notify_one();
        if let Some(rate) = meter.add(u64::from(len)) {
            inflight.rate.store(rate, Ordering::Relaxed);
        }
        Ok(data)
    }
}

/// The next frame from the peer. Waiting for it is cancel-safe (the bytes stay buffered); only
/// while answers are due does a silent peer count as stalled.
async fn next_response(
    r: &mut BufReader<futures::io::ReadHalf<libp2p::Stream>>,
    buf: &mut Vec<u8>,
    inflight: &InFlight,
) -> Result<Response, PeerError> {
    let due = !inflight
        .chunks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_empty();
    let ready = if due {
        tokio::time::timeout(STALL_TIMEOUT, r.fill_buf())
            .await
            .map_err(|_| PeerError::Stalled)?
    } else {
        r.fill_buf().await
    };
    if ready?.is_empty() {
        return Err(closed());
    }
    tokio::time::timeout(STALL_TIMEOUT, read_msg(r, buf))
        .await
        .map_err(|_| PeerError::Stalled)??
        .ok_or_else(closed)
}

fn closed() -> PeerError {
    PeerError::Lost(WireError::Io(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "the peer closed the stream",
    )))
}

/// Bytes per second received, measured over windows of at least 250 ms.
struct RateMeter {
    start: Instant,
    bytes: u64,
}

impl RateMeter {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            bytes: 0,
        }
    }

    /// Counts `bytes`; the rate when a window just ended.
    fn add(&mut self, bytes: u64) -> Option<u64> {
        self.bytes += bytes;
        let elapsed = self.start.elapsed();
        if elapsed < Duration::from_millis(250) {
            return None;
        }
        let rate = self.bytes as f64 / elapsed.as_secs_f64();
        (self.start, self.bytes) = (Instant::now(), 0);
        Some(rate as u64)
    }
}
