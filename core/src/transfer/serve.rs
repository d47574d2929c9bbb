//! Serving shares: answers downloaders' requests on the blob protocol, streaming chunks from disk.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use tokio::sync::mpsc;

use super::library::{Content, Library};
use super::wire::{self, MAX_RUN, Request, Response, WireError};

/// Accepts blob streams until the node stops, one task per stream.
pub async fn run(
    mut incoming: libp2p_stream::IncomingStreams,
    library: Arc<Library>,
    faults: Faults,
) {
    while let Some((peer, stream)) = incoming.next().await {
        let library = library.clone();
        tokio::spawn(async move {
            if let Err(e) = session(peer, stream, library, faults).await {
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

async fn session(
    peer: PeerId,
    stream: libp2p::Stream,
    library: Arc<Library>,
    faults: Faults,
) -> Result<(), WireError> {
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
    let Some(content) = library.get(&content) else {
        wire::write_msg(&mut w, &Response::Unknown).await?;
        return Ok(());
    };
    let (complete, have) = content.availability();
    wire::write_msg(&mut w, &Response::Hello { complete, have }).await?;
    tracing::debug!(%peer, content = %content.id, "serving");

    // Requests become jobs for a reader thread that reads ahead from disk while earlier chunks
    // are being sent; answers go out in request order.
    let (jobs, job_rx) = mpsc::channel::<Job>(2 * MAX_RUN as usize);
    let (out_tx, mut answers) = mpsc::channel::<Answer>(READ_AHEAD);
    // The reader stops by itself once either channel closes.
    tokio::task::spawn_blocking(move || read_ahead(&content, job_rx, out_tx, faults));
    let requests = async move {
        while let Some(req) = wire::read_msg::<_, Request>(&mut r, &mut buf).await? {
            let sent = match req {
                Request::Hello { .. } => jobs.send(Job::Refuse("one share per stream")).await,
                Request::Manifest => jobs.send(Job::Manifest).await,
                Request::Chunks { first, count } => {
                    let mut sent = Ok(());
                    for index in first..first.saturating_add(count.min(MAX_RUN).into()) {
                        sent = jobs.send(Job::Chunk(index)).await;
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
        while let Some(answer) = answers.recv().await {
            match answer {
                Answer::Manifest(encoded) => {
                    let len = u32::try_from(encoded.len()).unwrap_or(u32::MAX);
                    wire::write_msg(&mut w, &Response::Manifest { len }).await?;
                    w.write_all(&encoded).await?;
                }
                Answer::Chunk(index, chunk) => {
                    let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
                    wire::write_msg(&mut w, &Response::Chunk { index, len }).await?;
                    w.write_all(&chunk).await?;
                }
                Answer::Missing(index) => {
                    wire::write_msg(&mut w, &Response::Missing { index }).await?;
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

/// What the reader is asked for, in request order.
enum Job {
    Manifest,
    Chunk(u64),
    Refuse(&'static str),
}

/// What the reader hands to the sending side.
enum Answer {
    Manifest(Arc<Vec<u8>>),
    Chunk(u64, Vec<u8>),
    Missing(u64),
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
            Job::Chunk(index) => match read_chunk(content, index, &mut open) {
                Some(mut chunk) => {
                    if faults.corrupt_chunks
                        && let Some(b) = chunk.first_mut()
                    {
                        *b ^= 0x01;
                    }
                    Answer::Chunk(index, chunk)
                }
                None => Answer::Missing(index),
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
