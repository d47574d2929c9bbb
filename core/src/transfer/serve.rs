//! Serving shares: answers downloaders' requests on the blob protocol, streaming chunks from disk.

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use tokio::sync::{OwnedSemaphorePermit, broadcast, mpsc};
use tokio::time::Instant;

use super::directory::Directory;
use super::library::{Content, Library};
use super::limits::Throttle;
use super::wire::{self, MAX_HAVE, MAX_RUN, Request, Response, WireError};
use crate::events::Event;

/// What serving needs from the node.
#[derive(Clone)]
pub struct Server {
    /// The shares served.
    pub library: Arc<Library>,
    /// Where the peers of each share are recorded and looked up.
    pub directory: Arc<Directory>,
    /// Upload rate and slots.
    pub throttle: Arc<Throttle>,
    /// Where [`Event::ShareDistributed`] goes.
    pub events: broadcast::Sender<Event>,
    /// Injected faults (tests only).
    pub faults: Faults,
}

/// Chunks gained are announced at most this often per session, in one message.
const HAVE_EVERY: Duration = Duration::from_millis(100);
/// How often a session names peers of the share that it has not named yet.
const PEX_EVERY: Duration = Duration::from_secs(1);

/// Accepts blob streams until the node stops, one task per stream.
pub async fn run(mut incoming: libp2p_stream::IncomingStreams, server: Server) {
    while let Some((peer, stream)) = incoming.next().await {
        let server = server.clone();
        tokio::spawn(async move {
            if let Err(e) = session(peer, stream, server).await {
                tracing::debug!(%peer, error = %e, "blob session ended");
            }
        });
    }
}

/// Faults a test can inject into what this node serves. Always off outside tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Flip a bit in every chunk served (a corrupt or malicious provider).
    pub corrupt_chunks: bool,
}

async fn session(peer: PeerId, stream: libp2p::Stream, server: Server) -> Result<(), WireError> {
    let Server {
        library,
        directory,
        throttle,
        events,
        faults,
    } = server;
    let (mut r, mut w) = stream.split();
    let mut buf = Vec::new();
    let Some(Request::Hello { content }) = wire::read_msg(&mut r, &mut buf).await? else {
        wire::write_msg(
            &mut w,
            &Response::Error {
                message: "expected hello".into(),
            },
        )
        .await?;
        return Ok(());
    };
    // Whoever asks for a share holds or fetches it: a peer for the others, and for this node's
    // own download of it (running now, or started later, as when it has yet to fetch the
    // manifest), which hears of it through the directory.
    directory.add_peer_of(content, peer);
    let Some(content) = library.get(&content) else {
        wire::write_msg(&mut w, &Response::Unknown).await?;
        return Ok(());
    };
    let peers = directory.exchange(&content.id, &peer);
    let mut named: std::collections::HashSet<Vec<u8>> =
        peers.iter().map(|p| p.peer.clone()).collect();
    let mut pex_tick = tokio::time::interval_at(Instant::now() + PEX_EVERY, PEX_EVERY);
    pex_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut gains = content.gains();
    let (complete, have) = content.availability();
    let mut announced = have.clone();
    wire::write_msg(
        &mut w,
        &Response::Hello {
            complete,
            have,
            peers,
        },
    )
    .await?;
    tracing::debug!(%peer, content = %content.id, "serving");

    // Requests become jobs for a reader thread that reads ahead from disk while earlier chunks
    // are being sent; answers go out in request order.
    let (jobs, job_rx) = mpsc::channel::<Job>(2 * MAX_RUN as usize);
    let (out_tx, mut answers) = mpsc::channel::<Answer>(READ_AHEAD);
    // The reader stops by itself once either channel closes.
    let reading = content.clone();
    tokio::task::spawn_blocking(move || read_ahead(&reading, job_rx, out_tx, faults));
    let requests = async move {
        while let Some(req) = wire::read_msg::<_, Request>(&mut r, &mut buf).await? {
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
        Ok::<_, WireError>(())
    };
    let responses = async move {
        // Held while a request (a run of chunks) is served: one of the node's upload slots.
        let mut slot: Option<OwnedSemaphorePermit> = None;
        // When chunks gained since the last announcement are next announced.
        let mut have_due: Option<Instant> = None;
        let mut last_have = Instant::now();
        loop {
            let answer = tokio::select! {
                answer = answers.recv() => match answer {
                    Some(answer) => answer,
                    None => break,
                },
                // Never an error: the session holds the share, which holds the sender.
                Ok(()) = gains.changed(), if have_due.is_none() => {
                    have_due = Some(last_have + HAVE_EVERY);
                    continue;
                }
                () = async { if let Some(at) = have_due { tokio::time::sleep_until(at).await } },
                    if have_due.is_some() => {
                    have_due = None;
                    last_have = Instant::now();
                    let gained = content.gained_since(&mut announced);
                    for chunks in gained.chunks(MAX_HAVE) {
                        let chunks = chunks.to_vec();
                        wire::write_msg(&mut w, &Response::Have { chunks }).await?;
                    }
                    w.flush().await?;
                    continue;
                }
                _ = pex_tick.tick() => {
                    let peers: Vec<_> = directory
                        .exchange(&content.id, &peer)
                        .into_iter()
                        .filter(|p| named.insert(p.peer.clone()))
                        .collect();
                    if !peers.is_empty() {
                        wire::write_msg(&mut w, &Response::Peers { peers }).await?;
                        w.flush().await?;
                    }
                    continue;
                }
            };
            match answer {
                Answer::Manifest(encoded) => {
                    let len = u32::try_from(encoded.len()).unwrap_or(u32::MAX);
                    wire::write_msg(&mut w, &Response::Manifest { len }).await?;
                    w.write_all(&encoded).await?;
                }
                Answer::Chunk(index, chunk, last) => {
                    if slot.is_none() {
                        slot = throttle.slots.clone().acquire_owned().await.ok();
                    }
                    let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
                    if let Some(rate) = &throttle.upload {
                        rate.take(chunk.len() as u64).await;
                    }
                    wire::write_msg(&mut w, &Response::Chunk { index, len }).await?;
                    w.write_all(&chunk).await?;
                    if content.mark_served(index) {
                        let _ = events.send(Event::ShareDistributed {
                            content: content.id,
                        });
                    }
                    if last {
                        slot = None;
                    }
                }
                Answer::Missing(index, last) => {
                    wire::write_msg(&mut w, &Response::Missing { index }).await?;
                    if last {
                        slot = None;
                    }
                }
                Answer::Refuse(message) => {
                    let message = message.into();
                    wire::write_msg(&mut w, &Response::Error { message }).await?;
                    break;
                }
            }
            if answers.is_empty() {
                w.flush().await?;
            }
        }
        w.flush().await?;
        let _ = w.close().await;
        Ok::<_, WireError>(())
    };
    // The session ends when the downloader closes its side or an answer cannot be sent.
    tokio::try_join!(requests, responses).map(drop)
}

/// Chunks read ahead of the one being sent.
const READ_AHEAD: usize = 4;

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

/// Reads chunks from disk in job order, keeping the last file open.
fn read_ahead(
    content: &Arc<Content>,
    mut jobs: mpsc::Receiver<Job>,
    answers: mpsc::Sender<Answer>,
    faults: Faults,
) {
    let mut open: Option<(usize, std::fs::File)> = None;
    while let Some(job) = jobs.blocking_recv() {
        let answer = match job {
            Job::Manifest => Answer::Manifest(content.encoded.clone()),
            Job::Refuse(why) => Answer::Refuse(why),
            Job::Chunk(index, last) => match read_chunk(content, index, &mut open) {
                Some(mut chunk) => {
                    if faults.corrupt_chunks
                        && let Some(b) = chunk.first_mut()
                    {
                        *b ^= 0x01;
                    }
                    Answer::Chunk(index, chunk, last)
                }
                None => Answer::Missing(index, last),
            },
        };
        if answers.blocking_send(answer).is_err() {
            return;
        }
    }
}

/// Reads chunk `index`, or `None` when it is not servable.
fn read_chunk(
    content: &Content,
    index: u64,
    open: &mut Option<(usize, std::fs::File)>,
) -> Option<Vec<u8>> {
    if !content.has(index) {
        return None;
    }
    let chunk = content.manifest.chunk(index)?;
    if open.as_ref().is_none_or(|(file, _)| *file != chunk.file) {
        *open = Some((chunk.file, content.open(chunk.file).ok()?));
    }
    let (_, file) = open.as_ref()?;
    let mut buf = vec![0u8; chunk.len as usize];
    file.read_exact_at(&mut buf, chunk.offset).ok()?;
    Some(buf)
}
