//! Serving shares: answers downloaders' requests on the blob protocol, streaming chunks from disk
//! (or through the host, for files it opens).
//! Requests become jobs for a reader task that reads ahead (each read on the blocking pool, no
//! thread held between reads) while earlier chunks are being sent, and verifies each chunk it read
//! against the manifest: one that does not verify is never sent (the answer is `Missing`, and
//! `health.rs` checks and repairs its file). Answers go out in request order, with announcements
//! of chunks gained and of other peers of the share (peer exchange) between them.
//!
//! Bounds: a peer has [`FIRST_FRAME`] to say hello, [`REQUEST_IDLE`] between requests, and every
//! write must go through within [`WRITE_TIMEOUT`]; a downloader that stops reading for
//! [`SLOT_STALL`] gives its upload slot to the next in line meanwhile. At most
//! [`SESSIONS_PER_PEER`] sessions of one peer and [`SESSIONS`] in all run at once.

use std::collections::HashSet;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use futures::io::{ReadHalf, WriteHalf};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use tokio::time::Instant;

use super::Notice;
use super::bitfield::Bitfield;
use super::capability::ShareTag;
use super::health;
use super::library::Content;
use super::service::Shared;
use super::shares::Opened;
use super::wire::{MAX_HAVE, MAX_RUN, Request, Response};
use crate::net::framing::{FIRST_FRAME, IO_TIMEOUT, WireError, read_within, write_within};
use crate::net::gate::Gate;

/// Chunks gained are announced at most this often per session, in one message.
const HAVE_EVERY: Duration = Duration::from_millis(100);
/// How often a session names peers of the share that it has not named yet.
const PEX_EVERY: Duration = Duration::from_secs(1);
/// Chunks read ahead of the one being sent.
const READ_AHEAD: usize = 4;
/// Chunk reads a session overlaps at most (see [`Reader`]).
const PARALLEL_READS: usize = 8;
/// Bytes the overlapping reads of a session hold at most (one read is always allowed).
const PARALLEL_READ_BYTES: u64 = 1024 * 1024;
/// How long a session waits for the downloader's next request.
pub const REQUEST_IDLE: Duration = Duration::from_secs(120);
/// How long one write (a frame, a piece of a chunk) may wait for the downloader to read.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// A write waiting this long gives up its upload slot until it goes through.
pub const SLOT_STALL: Duration = Duration::from_millis(500);
/// Bytes written at a time, each within [`SLOT_STALL`] to keep the slot.
const PIECE: usize = 64 * 1024;
/// Blob sessions of one peer at once (a stream per share it fetches, manifests).
pub const SESSIONS_PER_PEER: usize = 8;
/// Blob sessions at once, in all.
pub const SESSIONS: usize = 128;

/// Accepts blob streams until the node stops, one task per stream, within the bounds.
pub(crate) async fn run(mut incoming: libp2p_stream::IncomingStreams, s: Shared) {
    let gate = Gate::new(SESSIONS_PER_PEER, SESSIONS);
    while let Some((peer, stream)) = incoming.next().await {
        let Some(pass) = gate.enter(peer) else {
            tracing::debug!(%peer, "too many blob sessions: stream dropped");
            continue;
        };
        let s = s.clone();
        tokio::spawn(async move {
            if let Err(e) = session(peer, stream, s).await {
                tracing::debug!(%peer, error = %e, "blob session ended");
            }
            drop(pass);
        });
    }
}

async fn session(peer: PeerId, stream: Stream, s: Shared) -> Result<(), WireError> {
    let (mut r, mut w) = stream.split();
    let mut buf = Vec::new();
    let first = read_within(&mut r, &mut buf, FIRST_FRAME).await?;
    let Some(Request::Hello { tag, proof }) = first else {
        let message = "expected hello".into();
        return write_within(&mut w, &Response::Error { message }, IO_TIMEOUT).await;
    };
    // A peer that does not prove the key hears the same as one asking for a share this node
    // does not have: nothing.
    let tag = ShareTag(tag);
    let local = s.net.local_peer_id();
    let opened = s
        .shares
        .open(&tag, crate::store::now_secs())
        .filter(|o| o.key.verify(&proof, &peer, &local));
    // Files the host opened in an earlier run are not had until it shares them again.
    let content_of = |o: Opened| {
        s.library
            .get(&o.content)
            .filter(|c| c.available())
            .map(|c| (o, c))
    };
    let Some((share, content)) = opened.and_then(content_of) else {
        return write_within(&mut w, &Response::Unknown, IO_TIMEOUT).await;
    };
    // Whoever proves the key holds or fetches the share: a peer for the others, and for this
    // node's own download of it (running now, or started later), which hears of it through the
    // holders.
    s.holders.add(tag, peer);
    let peers = s
        .holders
        .exchange(&tag, &peer, |p| s.net.listen_addrs_of(p));
    let named = peers.iter().map(|p| p.peer.clone()).collect();
    let (complete, announced) = content.availability();
    let have = if complete {
        Vec::new()
    } else {
        announced.as_bytes().to_vec()
    };
    let hello = Response::Hello {
        proof: share.key.proof(&local, &peer),
        complete,
        have,
        peers,
    };
    write_within(&mut w, &hello, IO_TIMEOUT).await?;
    tracing::debug!(%peer, content = %content.id, share = %tag, "serving");

    let (jobs, job_rx) = mpsc::channel::<Job>(2 * MAX_RUN as usize);
    let (out_tx, answers) = mpsc::channel::<Answer>(READ_AHEAD);
    // The reader stops by itself once either channel closes.
    let reader = Reader {
        content: content.clone(),
        s: s.clone(),
        rt: tokio::runtime::Handle::current(),
    }
    .read_ahead(job_rx, out_tx);
    let responder = Responder {
        gains: content.gains(),
        w,
        content,
        s: s.clone(),
        peer,
        tag,
        share,
        named,
        announced,
        slot: None,
        sent: 0,
    };
    // The session ends when the downloader closes its side, an answer cannot be sent, or the
    // share is unshared.
    let reader = async {
        reader.await;
        Ok(())
    };
    tokio::try_join!(requests(r, buf, jobs), responder.run(answers), reader).map(drop)
}

/// Turns the downloader's requests into jobs for the reader, in order.
async fn requests(
    mut r: ReadHalf<Stream>,
    mut buf: Vec<u8>,
    jobs: mpsc::Sender<Job>,
) -> Result<(), WireError> {
    while let Some(req) = read_within::<_, Request>(&mut r, &mut buf, REQUEST_IDLE).await? {
        let sent = match req {
            Request::Hello { .. } => jobs.send(Job::Refuse("one share per stream")).await,
            Request::Manifest => jobs.send(Job::Manifest).await,
            Request::Chunks { first, count } => {
                let mut sent = Ok(());
                let end = first.saturating_add(count.min(MAX_RUN).into());
                for index in first..end {
                    sent = jobs.send(Job::Chunk(index, index + 1 == end)).await;
                    if sent.is_err() {
                        break;
                    }
                }
                sent
            }
        };
        if sent.is_err() {
            break;
        }
    }
    Ok(())
}

/// The sending half of a session.
struct Responder {
    w: WriteHalf<Stream>,
    content: Arc<Content>,
    s: Shared,
    peer: PeerId,
    tag: ShareTag,
    /// The key this session serves under.
    share: Opened,
    /// Chunk bytes sent in this session.
    sent: u64,
    /// Peers already named to this downloader.
    named: HashSet<Vec<u8>>,
    /// Chunks already announced to it.
    announced: Bitfield,
    gains: watch::Receiver<u64>,
    /// Held while a request (a run of chunks) is served: one of the node's upload slots.
    slot: Option<OwnedSemaphorePermit>,
}

impl Responder {
    async fn run(mut self, answers: mpsc::Receiver<Answer>) -> Result<(), WireError> {
        let result = self.answer_all(answers).await;
        self.record_served();
        result
    }

    async fn answer_all(&mut self, mut answers: mpsc::Receiver<Answer>) -> Result<(), WireError> {
        let mut pex_tick = tokio::time::interval_at(Instant::now() + PEX_EVERY, PEX_EVERY);
        pex_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When chunks gained since the last announcement are next announced.
        let mut have_due: Option<Instant> = None;
        let mut last_have = Instant::now();
        let mut revoked = self.share.revoked.clone();
        loop {
            tokio::select! {
                answer = answers.recv() => match answer {
                    Some(Answer::Refuse(message)) => {
                        let message = message.into();
                        write_within(&mut self.w, &Response::Error { message }, IO_TIMEOUT).await?;
                        break;
                    }
                    Some(answer) => {
                        self.answer(answer).await?;
                        if answers.is_empty() {
                            flush(&mut self.w).await?;
                        }
                    }
                    None => break,
                },
                // Never an error: the session holds the share, which holds the sender.
                Ok(()) = self.gains.changed(), if have_due.is_none() => {
                    have_due = Some(last_have + HAVE_EVERY);
                }
                () = async { if let Some(at) = have_due { tokio::time::sleep_until(at).await } },
                    if have_due.is_some() => {
                    have_due = None;
                    last_have = Instant::now();
                    self.announce_gains().await?;
                }
                _ = pex_tick.tick() => self.name_new_peers().await?,
                // Unshared: the session ends at once.
                () = async {
                    let _ = revoked.wait_for(|revoked| *revoked).await;
                } => break,
            }
        }
        flush(&mut self.w).await?;
        let _ = tokio::time::timeout(IO_TIMEOUT, self.w.close()).await;
        Ok(())
    }

    /// Adds what this session sent to the share's count (in memory, and in the store).
    fn record_served(&mut self) {
        let sent = std::mem::take(&mut self.sent);
        self.share
            .served
            .fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
        if sent > 0
            && let Err(e) = super::state::add_served(&self.s.store, &self.tag, sent)
        {
            tracing::warn!(error = %e, "cannot record bytes served");
        }
    }

    async fn answer(&mut self, answer: Answer) -> Result<(), WireError> {
        match answer {
            Answer::Manifest(encoded) => {
                let len = u32::try_from(encoded.len()).unwrap_or(u32::MAX);
                write_within(&mut self.w, &Response::Manifest { len }, IO_TIMEOUT).await?;
                write_payload(&mut self.w, &encoded, &mut None).await?;
            }
            Answer::Chunk(index, chunk, last) => {
                if self.slot.is_none() {
                    self.slot = self.s.throttle.slots.clone().acquire_owned().await.ok();
                }
                let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
                self.s.throttle.upload.take(chunk.len() as u64).await;
                write_within(&mut self.w, &Response::Chunk { index, len }, IO_TIMEOUT).await?;
                write_payload(&mut self.w, &chunk, &mut self.slot).await?;
                self.sent += chunk.len() as u64;
                if self.content.mark_served(index) {
                    let content = self.content.id;
                    self.s.report.send(Notice::ShareDistributed { content });
                }
                if last {
                    self.slot = None;
                }
            }
            Answer::Missing(index, last) => {
                // Announced again should it be repaired.
                self.announced.clear(index);
                write_within(&mut self.w, &Response::Missing { index }, IO_TIMEOUT).await?;
                if last {
                    self.slot = None;
                }
            }
            Answer::Refuse(_) => {}
        }
        Ok(())
    }

    /// Tells the downloader of the chunks this node gained since the last announcement.
    async fn announce_gains(&mut self) -> Result<(), WireError> {
        let gained = self.content.gained_since(&mut self.announced);
        for chunks in gained.chunks(MAX_HAVE) {
            let chunks = chunks.to_vec();
            write_within(&mut self.w, &Response::Have { chunks }, IO_TIMEOUT).await?;
        }
        flush(&mut self.w).await?;
        Ok(())
    }

    /// Names peers of the share that this downloader has not heard of yet.
    async fn name_new_peers(&mut self) -> Result<(), WireError> {
        let net = &self.s.net;
        let peers: Vec<_> = self
            .s
            .holders
            .exchange(&self.tag, &self.peer, |p| net.listen_addrs_of(p))
            .into_iter()
            .filter(|p| self.named.insert(p.peer.clone()))
            .collect();
        if !peers.is_empty() {
            write_within(&mut self.w, &Response::Peers { peers }, IO_TIMEOUT).await?;
            flush(&mut self.w).await?;
        }
        Ok(())
    }
}

/// What the reader is asked for, in request order; a chunk says whether it ends its request.
enum Job {
    Manifest,
    Chunk(u64, bool),
    Refuse(&'static str),
}

/// What the reader hands to the sending side.
enum Answer {
    Manifest(Arc<Vec<u8>>),
    Chunk(u64, Vec<u8>, bool),
    Missing(u64, bool),
    Refuse(&'static str),
}

/// Writes a payload piece by piece; a piece the downloader does not take within [`SLOT_STALL`]
/// gives up `slot` (taken again before the next chunk), and one not taken within
/// [`WRITE_TIMEOUT`] ends the session.
async fn write_payload(
    w: &mut WriteHalf<Stream>,
    data: &[u8],
    slot: &mut Option<OwnedSemaphorePermit>,
) -> Result<(), WireError> {
    for piece in data.chunks(PIECE) {
        let write = w.write_all(piece);
        tokio::pin!(write);
        match tokio::time::timeout(SLOT_STALL, &mut write).await {
            Ok(written) => written?,
            Err(_) => {
                // A stalled reader: its slot serves someone else meanwhile.
                *slot = None;
                tokio::time::timeout(WRITE_TIMEOUT, write)
                    .await
                    .map_err(|_| {
                        WireError::Timeout("writing to a downloader that stopped reading")
                    })??;
            }
        }
    }
    Ok(())
}

/// Flushes within [`WRITE_TIMEOUT`].
async fn flush(w: &mut WriteHalf<Stream>) -> Result<(), WireError> {
    tokio::time::timeout(WRITE_TIMEOUT, w.flush())
        .await
        .map_err(|_| WireError::Timeout("flushing to a downloader"))?
        .map_err(Into::into)
}

/// Reads chunks from disk for one session, answering in job order. Several reads overlap (at
/// most [`PARALLEL_READS`] holding [`PARALLEL_READ_BYTES`], always one): a roll of small photos
/// cold on disk waits on each file's inode and data once per batch, not once per photo, while a
/// video is read a chunk at a time, the kernel's readahead doing the rest.
struct Reader {
    content: Arc<Content>,
    s: Shared,
    /// Where a damaged file's check runs.
    rt: tokio::runtime::Handle,
}

/// One read of the reader: its answer (`None`: the read task died), and the bytes it holds.
type Reading = futures::future::BoxFuture<'static, (Option<Answer>, u64)>;

impl Reader {
    /// Answers jobs until either channel closes, each read on the blocking pool (no thread held
    /// between reads); with the `corrupt_chunks` fault it flips a bit in every chunk after
    /// verifying it (a test's malicious provider).
    async fn read_ahead(self, mut jobs: mpsc::Receiver<Job>, answers: mpsc::Sender<Answer>) {
        let reader = Arc::new(self);
        let mut reading = futures::stream::FuturesOrdered::<Reading>::new();
        let (mut held, mut next, mut open) = (0u64, None::<Job>, true);
        loop {
            if let Some(job) = next.take() {
                let len = reader.len_of(&job);
                let fits = reading.len() < PARALLEL_READS && held + len <= PARALLEL_READ_BYTES;
                if reading.is_empty() || fits {
                    held += len;
                    reading.push_back(reader.start(job, len));
                    continue;
                }
                next = Some(job);
            }
            tokio::select! {
                biased;
                Some((answer, len)) = reading.next(), if !reading.is_empty() => {
                    held -= len;
                    let Some(answer) = answer else { return };
                    if answers.send(answer).await.is_err() {
                        return;
                    }
                }
                job = jobs.recv(), if next.is_none() && open => match job {
                    Some(job) => next = Some(job),
                    None => open = false,
                },
                else => return,
            }
        }
    }

    /// The bytes `job` reads.
    fn len_of(&self, job: &Job) -> u64 {
        match job {
            Job::Chunk(index, _) => self
                .content
                .manifest
                .chunk(*index)
                .map_or(0, |c| u64::from(c.len)),
            Job::Manifest | Job::Refuse(_) => 0,
        }
    }

    /// Starts `job`, which reads `len` bytes.
    fn start(self: &Arc<Self>, job: Job, len: u64) -> Reading {
        let (index, last) = match job {
            Job::Manifest => {
                let answer = Answer::Manifest(self.content.encoded.clone());
                return Box::pin(std::future::ready((Some(answer), len)));
            }
            Job::Refuse(why) => {
                return Box::pin(std::future::ready((Some(Answer::Refuse(why)), len)));
            }
            Job::Chunk(index, last) => (index, last),
        };
        let (reader, corrupt) = (self.clone(), self.s.config.corrupt_chunks);
        Box::pin(async move {
            let Ok(chunk) = tokio::task::spawn_blocking(move || reader.read_chunk(index)).await
            else {
                return (None, len);
            };
            let answer = match chunk {
                Some(mut chunk) => {
                    if corrupt && let Some(b) = chunk.first_mut() {
                        *b ^= 0x01;
                    }
                    Answer::Chunk(index, chunk, last)
                }
                None => Answer::Missing(index, last),
            };
            (Some(answer), len)
        })
    }

    /// Reads chunk `index` and verifies it; `None` when it is not servable. A chunk this node
    /// holds that cannot be read or does not verify is reported to [`health`].
    fn read_chunk(&self, index: u64) -> Option<Vec<u8>> {
        if !self.content.has(index) {
            return None;
        }
        let chunk = self.content.manifest.chunk(index)?;
        let read = self.read(chunk.file, chunk.offset, chunk.len as usize);
        match read {
            Some(buf) if chunk.verify(&buf) => Some(buf),
            _ => {
                tracing::warn!(content = %self.content.id, index, "a chunk read does not verify");
                health::suspect(&self.s, &self.rt, &self.content, index);
                None
            }
        }
    }

    fn read(&self, file: usize, offset: u64, len: usize) -> Option<Vec<u8>> {
        if let Some(host) = self.content.host_files() {
            return host.read_exact(file, offset, len).ok();
        }
        let f = self.content.open(file).ok()?;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset).ok()?;
        Some(buf)
    }
}
