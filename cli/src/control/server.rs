//! The control server of `meshdrop run`: accepts connections from the data dir's owner on its
//! socket, reads one request per line and runs each on the node, streaming its frames back.
//! Requests run in tasks of their own, so a client that leaves (a closed terminal, a killed
//! `get`) does not stop what it asked for.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use meshdrop_core::Node;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use super::protocol::{Frame, Request, Step};
use super::running::Running;

/// The longest request line read; a longer one is refused and the connection closed.
const MAX_REQUEST: u64 = 4 << 20;

/// Serves requests for `node` on `<data_dir>/control.sock` until the returned task is aborted.
pub fn serve(node: Node, data_dir: &Path) -> Result<JoinHandle<()>> {
    let path = super::socket_path(data_dir);
    // The node holds the data dir's lock, so a socket file left here is stale.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot create the control socket {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    let owner = std::fs::metadata(data_dir)
        .with_context(|| format!("cannot stat {}", data_dir.display()))?
        .uid();
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            match stream.peer_cred() {
                Ok(cred) if cred.uid() == owner => {}
                _ => {
                    tracing::warn!("control connection from another user refused");
                    continue;
                }
            }
            let node = node.clone();
            tokio::spawn(async move {
                if let Err(e) = connection(node, stream).await {
                    tracing::debug!(error = %e, "control connection ended");
                }
            });
        }
    }))
}

/// Answers the requests of one client, one after the other, until it closes the connection.
async fn connection(node: Node, stream: UnixStream) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut read)
            .take(MAX_REQUEST)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') && n as u64 == MAX_REQUEST {
            let refused = format!("bad request: longer than {MAX_REQUEST} bytes");
            return send(&mut write, &Frame::Error(refused)).await;
        }
        match serde_json::from_slice::<Request>(&line) {
            Ok(req) => answer(&node, req, &mut write).await?,
            Err(e) => send(&mut write, &Frame::Error(format!("bad request: {e}"))).await?,
        }
    }
}

/// Runs `req` and streams its updates, then its result; fails only when the client is gone
/// (the request goes on).
async fn answer(node: &Node, req: Request, write: &mut OwnedWriteHalf) -> Result<()> {
    let mut running = Running::detached(node, req);
    loop {
        let frame = match running.next().await {
            Ok(Step::Update(update)) => Frame::Update(update),
            Ok(Step::Done(response)) => return send(write, &Frame::Done(response)).await,
            Err(e) => return send(write, &Frame::Error(format!("{e:#}"))).await,
        };
        send(write, &frame).await?;
    }
}

/// Writes one frame as a line.
async fn send(write: &mut OwnedWriteHalf, frame: &Frame) -> Result<()> {
    let mut line = serde_json::to_vec(frame)?;
    line.push(b'\n');
    write.write_all(&line).await?;
    Ok(())
}
