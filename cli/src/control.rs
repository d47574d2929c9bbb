//! The local control socket: while `meshdrop run` owns a data dir, other `meshdrop` commands on the
//! same data dir ask it over `<data dir>/control.sock` (one JSON request line, one JSON reply line).
//! Only the owner of the data dir may connect.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use meshdrop_core::{Multiaddr, Node, Recipient};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

const SOCKET: &str = "control.sock";

/// What a command asks the running node.
#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Peer id and name.
    Id,
    /// The peer list.
    Peers,
    /// Connect to an address.
    Connect {
        /// The multiaddr.
        address: String,
    },
    /// Queue a message to a peer id or a room (`room:<id>`).
    SendMessage {
        /// The recipient.
        to: String,
        /// The text.
        text: String,
        /// Absolute paths of files to attach (shared by the running node).
        #[serde(default)]
        attach: Vec<PathBuf>,
    },
    /// The devices this one knows (met or named by an invite).
    Contacts,
    /// Every stored message.
    Messages,
    /// The rooms this device is in.
    Rooms,
    /// Create a room.
    CreateRoom {
        /// Its name.
        name: String,
    },
    /// Join a room.
    JoinRoom {
        /// The invite.
        invite: String,
    },
}

/// The reply: a result value or an error text.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Ok(Value),
    Error(String),
}

fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
}

/// Serves requests for `node` until the returned task is aborted.
pub fn serve(node: Node, data_dir: &Path) -> Result<JoinHandle<()>> {
    let path = socket_path(data_dir);
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
                if let Err(e) = handle(node, stream).await {
                    tracing::debug!(error = %e, "control connection ended");
                }
            });
        }
    }))
}

async fn handle(node: Node, stream: UnixStream) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(req) => match answer(&node, req).await {
                Ok(v) => Reply::Ok(v),
                Err(e) => Reply::Error(format!("{e:#}")),
            },
            Err(e) => Reply::Error(format!("bad request: {e}")),
        };
        let mut out = serde_json::to_vec(&reply)?;
        out.push(b'\n');
        write.write_all(&out).await?;
    }
    Ok(())
}

async fn answer(node: &Node, req: Request) -> Result<Value> {
    Ok(match req {
        Request::Id => json!({"peer": node.peer_id(), "name": node.name()}),
        Request::Peers => json!(node.peers().await?),
        Request::Connect { address } => {
            let addr: Multiaddr = crate::commands::parse_multiaddr(&address)?;
            let peer = node.connect(addr).await?;
            json!({"peer": peer, "verification_code": node.verification_code(&peer)})
        }
        Request::SendMessage { to, text, attach } => {
            let to = to.parse::<Recipient>()?;
            let id = match (to, attach.is_empty()) {
                (Recipient::Peer(p), true) => node.send_message(p, &text)?,
                (Recipient::Room(r), true) => node.send_room_message(r, &text)?,
                (to, false) => node.send_with_attachment(to, &text, attach).await?,
            };
            json!({"id": id})
        }
        Request::Contacts => json!(node.contacts()?),
        Request::Messages => json!(node.messages()?),
        Request::Rooms => json!(node.rooms()),
        Request::CreateRoom { name } => json!(node.create_room(&name)?),
        Request::JoinRoom { invite } => json!(node.join_room(&invite)?),
    })
}

/// A connection to the node running on a data dir.
pub struct Client {
    lines: tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>,
    write: tokio::net::unix::OwnedWriteHalf,
}

impl Client {
    /// Connects to the node running on `data_dir`, or `None` when no node runs there.
    pub async fn connect(data_dir: &Path) -> Option<Client> {
        let stream = UnixStream::connect(socket_path(data_dir)).await.ok()?;
        let (read, write) = stream.into_split();
        Some(Client {
            lines: BufReader::new(read).lines(),
            write,
        })
    }

    /// Sends one request and waits for its reply.
    pub async fn request(&mut self, req: &Request) -> Result<Value> {
        let mut line = serde_json::to_vec(req)?;
        line.push(b'\n');
        self.write.write_all(&line).await?;
        let reply = self
            .lines
            .next_line()
            .await?
            .ok_or_else(|| anyhow!("the running node closed the control socket"))?;
        match serde_json::from_str::<Reply>(&reply)? {
            Reply::Ok(v) => Ok(v),
            Reply::Error(e) => Err(anyhow!(e)),
        }
    }
}
