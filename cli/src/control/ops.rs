//! What a node does for each [`Request`]: one implementation behind the control server and
//! behind the commands that start a node of their own.

use std::io::ErrorKind;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use indicatif::HumanBytes;
use meshdrop_core::{
    ContentId, DownloadError, DownloadSpec, Event, MessageId, Node, PeerId, Progress, Recipient,
    Status, TransferHandle,
};
use tokio::sync::broadcast;

use super::protocol::{Request, Response, Update};
use super::running::Updates;

/// Runs one request on `node`, sending its updates to `updates`.
pub async fn execute(node: &Node, req: Request, updates: &Updates) -> Result<Response> {
    Ok(match req {
        Request::Id => Response::Id {
            peer: node.peer_id(),
            name: node.name().to_string(),
        },
        Request::Peers => Response::Peers(node.peers().await?),
        Request::Connect { address } => {
            let addr = crate::commands::parse_multiaddr(&address)?;
            let peer = node
                .connect(addr)
                .await
                .map_err(|e| anyhow!("cannot connect to {address}: {e}"))?;
            let verification_code = node.verification_code(&peer);
            Response::Connected {
                peer,
                verification_code,
            }
        }
        Request::Contacts => Response::Contacts(node.contacts()?),
        Request::Messages => Response::Messages(node.messages()?),
        Request::Rooms => Response::Rooms(node.rooms()),
        Request::CreateRoom { name } => Response::Room(node.create_room(&name)?),
        Request::JoinRoom { invite } => Response::Room(node.join_room(&invite)?),
        Request::SendMessage { to, text, attach } => Response::MessageQueued {
            id: send_message(node, to, &text, attach).await?,
        },
        Request::Share { paths } => Response::Shared {
            ticket: node.share(paths).await?,
        },
        Request::Get { ticket, dest } => {
            let content = ticket.content;
            let spec = DownloadSpec {
                ticket,
                dest,
                files: None,
            };
            let handle = node.download(spec);
            download(node, handle, content, updates)
                .await
                .map_err(|e| explain(e, false))?
        }
        Request::Send {
            peer,
            paths,
            wait_secs,
        } => send(node, &peer, paths, Duration::from_secs(wait_secs), updates).await?,
    })
}

/// Queues a message, sharing its attachment first when there is one.
async fn send_message(
    node: &Node,
    to: Recipient,
    text: &str,
    attach: Vec<PathBuf>,
) -> Result<MessageId> {
    Ok(match (to, attach.is_empty()) {
        (Recipient::Peer(p), true) => node.send_message(p, text)?,
        (Recipient::Room(r), true) => node.send_room_message(r, text)?,
        (to, false) => node.send_with_attachment(to, text, attach).await?,
    })
}

/// Follows a download to its end through its status watch: progress (and a failure) as
/// `transfer_progress` (`transfer_failed`) events, then its report.
pub async fn download(
    node: &Node,
    handle: TransferHandle,
    content: ContentId,
    updates: &Updates,
) -> Result<Response, DownloadError> {
    let transfer = handle.id;
    let mut status = handle.status();
    let mut shown: Option<Progress> = None;
    let mut progress = |p: Progress| {
        if shown.as_ref() != Some(&p) {
            shown = Some(p.clone());
            updates.send(Update::Event(progress_event(transfer, content, p)));
        }
    };
    loop {
        let now = status.borrow_and_update().clone();
        match now {
            Status::Starting => {}
            Status::Running(p) => progress(p),
            Status::Finished { last, .. } => {
                progress(last);
                break;
            }
            Status::Failed { error } => {
                let failed = Event::TransferFailed {
                    transfer,
                    content,
                    error,
                };
                updates.send(Update::Event(failed));
                break;
            }
        }
        if status.changed().await.is_err() {
            break;
        }
    }
    let report = handle.wait().await?;
    let ticket = node.ticket_for(report.content);
    Ok(Response::Downloaded {
        transfer,
        report,
        ticket,
    })
}

fn progress_event(transfer: u64, content: ContentId, p: Progress) -> Event {
    Event::TransferProgress {
        transfer,
        content,
        done: p.done,
        total: p.total,
        received: p.received,
        rate: p.rate,
        eta_secs: p.eta_secs,
        peers: p.peers,
    }
}

/// A download error as one line a user can act on (`interrupted`: the user stopped it here).
pub fn explain(e: DownloadError, interrupted: bool) -> anyhow::Error {
    match e {
        DownloadError::Cancelled if interrupted => {
            anyhow!("interrupted: the partial data is kept; run the same command again to resume")
        }
        DownloadError::NoSpace {
            path,
            needed,
            available,
        } => anyhow!(
            "not enough free space in {}: {} still to download, {} available; nothing was written",
            path.display(),
            HumanBytes(needed),
            HumanBytes(available)
        ),
        DownloadError::Io { path, source } if source.kind() == ErrorKind::StorageFull => anyhow!(
            "the disk is full (writing {}): the verified part is kept; free some space and run \
             the same command again to resume",
            path.display()
        ),
        e => anyhow!("download failed: {e}"),
    }
}

/// Waits until the device `who` (a peer id or a name) is connected, offers it the files and
/// follows the offer to its end; the offer's events (from the node's bus) come as updates.
async fn send(
    node: &Node,
    who: &str,
    paths: Vec<PathBuf>,
    wait: Duration,
    updates: &Updates,
) -> Result<Response> {
    let mut events = node.events();
    let peer = find_peer(node, &mut events, who, wait).await?;
    let name = node
        .peers()
        .await?
        .into_iter()
        .find(|p| p.peer == peer)
        .map(|p| p.name)
        .unwrap_or_default();
    updates.send(Update::Offering {
        peer,
        name,
        verification_code: node.verification_code(&peer),
    });
    let forward = tokio::spawn({
        let updates = updates.clone();
        async move {
            loop {
                match events.recv().await {
                    Ok(
                        ev @ (Event::OfferAccepted { peer: p, .. }
                        | Event::OfferDeclined { peer: p, .. }
                        | Event::SendProgress { peer: p, .. }),
                    ) if p == peer => updates.send(Update::Event(ev)),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    });
    let outcome = node.send_files(peer, paths).await;
    forward.abort();
    Ok(Response::Sent {
        peer,
        outcome: outcome?,
    })
}

/// The peer named `who` (peer id or device name), once connected, within `wait`.
async fn find_peer(
    node: &Node,
    events: &mut broadcast::Receiver<Event>,
    who: &str,
    wait: Duration,
) -> Result<PeerId> {
    let by_id: Option<PeerId> = who.parse().ok();
    let matches = |peer: &PeerId, name: &str| by_id.as_ref() == Some(peer) || name == who;
    if let Some(p) = node
        .peers()
        .await?
        .into_iter()
        .find(|p| p.connected && matches(&p.peer, &p.name))
    {
        return Ok(p.peer);
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut named: Option<PeerId> = None;
    loop {
        let ev = match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(ev)) => ev,
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(broadcast::error::RecvError::Closed)) => bail!("the node stopped"),
            Err(_) => bail!(
                "no nearby device {who:?} found within {} s (see `meshdrop peers`)",
                wait.as_secs()
            ),
        };
        match ev {
            Event::PeerDiscovered { peer, name, .. } | Event::PeerIdentified { peer, name, .. }
                if matches(&peer, &name) =>
            {
                named = Some(peer);
                if node
                    .peers()
                    .await?
                    .iter()
                    .any(|p| p.peer == peer && p.connected)
                {
                    return Ok(peer);
                }
            }
            Event::PeerConnected { peer, .. } if by_id == Some(peer) || named == Some(peer) => {
                return Ok(peer);
            }
            _ => {}
        }
    }
}
