//! Serving shares: answers downloaders' requests on the blob protocol, streaming chunks from disk.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::PeerId;

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

    let mut data = Vec::new();
    while let Some(req) = wire::read_msg::<_, Request>(&mut r, &mut buf).await? {
        match req {
            Request::Hello { .. } => {
                wire::write_msg(
                    &mut w,
                    &Response::Error {
                        message: "one share per stream".into(),
                    },
                )
                .await?;
                return Ok(());
            }
            Request::Manifest => {
                let len = u32::try_from(content.encoded.len()).unwrap_or(u32::MAX);
                wire::write_msg(&mut w, &Response::Manifest { len }).await?;
                w.write_all(&content.encoded).await?;
            }
            Request::Chunks { first, count } => {
                for index in first..first.saturating_add(count.min(MAX_RUN).into()) {
                    match read_chunk(&content, index, std::mem::take(&mut data)).await {
                        Some(mut chunk) => {
                            if faults.corrupt_chunks
                                && let Some(b) = chunk.first_mut()
                            {
                                *b ^= 0x01;
                            }
                            let len = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
                            wire::write_msg(&mut w, &Response::Chunk { index, len }).await?;
                            w.write_all(&chunk).await?;
                            data = chunk;
                        }
                        None => wire::write_msg(&mut w, &Response::Missing { index }).await?,
                    }
                }
            }
        }
        w.flush().await?;
    }
    let _ = w.close().await;
    Ok(())
}

/// Reads chunk `index` into `buf` (reused), or `None` when it is not servable.
async fn read_chunk(content: &Arc<Content>, index: u64, mut buf: Vec<u8>) -> Option<Vec<u8>> {
    if !content.has(index) {
        return None;
    }
    let chunk = content.manifest.chunk(index)?;
    let content = content.clone();
    tokio::task::spawn_blocking(move || {
        let file = content.open(chunk.file).ok()?;
        buf.resize(chunk.len as usize, 0);
        file.read_exact_at(&mut buf, chunk.offset).ok()?;
        Some(buf)
    })
    .await
    .ok()
    .flatten()
}
