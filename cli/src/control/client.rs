//! The client side of the control socket: a command's connection to the node running on its
//! data dir.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::protocol::{Frame, Request, Step};

/// A connection to the node running on a data dir.
pub struct Client {
    lines: Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
}

impl Client {
    /// Connects to the node running on `data_dir`, or `None` when no node runs there.
    pub async fn connect(data_dir: &Path) -> Option<Client> {
        let stream = UnixStream::connect(super::socket_path(data_dir))
            .await
            .ok()?;
        let (read, write) = stream.into_split();
        Some(Client {
            lines: BufReader::new(read).lines(),
            write,
        })
    }

    /// Sends a request; read its answer with [`Client::next`].
    pub async fn send(&mut self, req: &Request) -> Result<()> {
        let mut line = serde_json::to_vec(req)?;
        line.push(b'\n');
        self.write
            .write_all(&line)
            .await
            .context("cannot reach the running node")
    }

    /// The next line of the answer: an update, or the end.
    pub async fn next(&mut self) -> Result<Step> {
        let line = self
            .lines
            .next_line()
            .await
            .context("cannot read from the running node")?
            .ok_or_else(|| anyhow!("the running node closed the control socket"))?;
        let frame = serde_json::from_str::<Frame>(&line)
            .with_context(|| format!("unexpected answer from the running node: {line:.200}"))?;
        match frame {
            Frame::Update(update) => Ok(Step::Update(update)),
            Frame::Done(response) => Ok(Step::Done(response)),
            Frame::Error(e) => Err(anyhow!(e)),
        }
    }
}
