//! What a node does for each [`Request`]: one implementation behind the control server and
//! behind the commands that start a node of their own.

use std::io::ErrorKind;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use indicatif::HumanBytes;
use meshdrop_core::transfer::ShareKey;
use meshdrop_core::{
    ContentId, DownloadError, DownloadSpec, Event, MessageId, Node, PeerId, Progress, Recipient,
    Status, TransferHandle,
};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::protocol::{Attach, Request, Response, Update};
use super::running::Updates;
use crate::resolve::{self, Target};

/// Runs one request on `node`, sending its updates to `updates`.
pub async fn execute(node: &Node, req: Request, updates: &Updates) -> Result<Response> {
    Ok(match req {
        Request::Id => Response::Id {
            peer: node.peer_id(),
            name: node.name().to_string(),
        },
        Request::Peers => Response::Peers(node.peers().await?),
        Request::Connect { address } => connect(node, &address).await?,
        req @ (Request::Contacts
        | Request::AddContact { .. }
        | Request::RenameContact { .. }
        | Request::RemoveContact { .. }
        | Request::AcceptContactOffer { .. }) => super::contact_ops::execute(node, req)?,
        Request::Messages => Response::Messages(node.messages()?),
        Request::Rooms => Response::Rooms(node.rooms()),
        Request::CreateRoom { name } => Response::Room(node.create_room(&name)?),
        Request::JoinRoom { invite } => Response::Room(node.join_room(&invite)?),
        Request::SendMessage {
            to,
            text,
            attach,
            pin,
            carry,
        } => {
            let attach = Attach {
                paths: attach,
                pin,
                carry,
            };
            Response::MessageQueued {
                id: send_message(node, to, &text, attach).await?,
            }
        }
        Request::Share {
            paths,
            offer_contact,
        } => {
            let ticket = node.share(paths).await?;
            Response::Shared {
                ticket: match offer_contact {
                    true => ticket.offering_contact(node.name()),
                    false => ticket,
                },
            }
        }
        Request::Shares => Response::Shares(node.shares()?),
        Request::Unshare { id } => Response::Unshared(node.unshare(&id)?),
        Request::Verify { id } => Response::Verified(node.verify(id.as_deref()).await?),
        Request::Visibility { set } => {
            if let Some(v) = set {
                node.set_visibility(v, None);
            }
            Response::Visibility(node.visibility())
        }
        Request::Get { ticket, dest } => {
            let (content, key) = (ticket.content, ticket.key);
            let spec = DownloadSpec {
                ticket,
                dest,
                files: None,
            };
            let handle = node.download(spec);
            download(node, handle, content, key, updates)
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

/// Dials an address; the peer that answered and its code.
async fn connect(node: &Node, address: &str) -> Result<Response> {
    let addr = crate::commands::parse_multiaddr(address)?;
    let peer = node
        .connect(addr)
        .await
        .map_err(|e| anyhow!("cannot connect to {address}: {e}"))?;
    Ok(Response::Connected {
        peer,
        verification_code: node.verification_code(&peer),
    })
}

/// Queues a message, sharing its attachment first when there is one.
async fn send_message(node: &Node, to: Recipient, text: &str, a: Attach) -> Result<MessageId> {
    Ok(match (to, a.paths.is_empty(), a.carry.is_empty()) {
        (Recipient::Peer(p), true, _) => node.send_message(p, text)?,
        (Recipient::Room(r), true, _) => node.send_room_message(r, text)?,
        (to, false, true) => node.send_with_attachment(to, text, a.paths, a.pin).await?,
        (Recipient::Peer(p), false, false) => {
            node.send_carried(p, text, a.paths, a.pin, &a.carry).await?
        }
        (Recipient::Room(_), false, false) => {
            bail!("--carry is for direct messages: a room's members carry its attachments")
        }
    })
}

/// Follows a download to its end through its status watch: progress (and a failure) as
/// `transfer_progress` (`transfer_failed`) events, then its report.
pub async fn download(
    node: &Node,
    handle: TransferHandle,
    content: ContentId,
    key: ShareKey,
    updates: &Updates,
) -> Result<Response, DownloadError> {
    let transfer = handle.id;
    let mut status = handle.status();
    let mut shown: Option<Progress> = None;
    let mut progress = |p: Progress| {
        if shown.as_ref() != Some(&p) {
            shown = Some(p.clone());
            updates.send(Update::Event(Box::new(progress_event(
                transfer, content, p,
            ))));
        }
    };
    loop {
        let now = status.borrow_and_update().clone();
        match now {
            Status::Starting => {}
            Status::Running(p) => progress(p),
            Status::WaitingForHolder { last, tried } => {
                let waiting = Event::TransferWaiting {
                    transfer,
                    content,
                    done: last.done,
                    total: last.total,
                    tried,
                };
                updates.send(Update::Event(Box::new(waiting)));
            }
            Status::Finished { last, .. } => {
                progress(last);
                break;
            }
            Status::Failed { error, kind } => {
                let failed = Event::TransferFailed {
                    transfer,
                    content,
                    error,
                    kind,
                };
                updates.send(Update::Event(Box::new(failed)));
                break;
            }
        }
        if status.changed().await.is_err() {
            break;
        }
    }
    let report = handle.wait().await?;
    let ticket = node.ticket_for(report.content, key);
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
        DownloadError::NoHolder { secs, tried } => anyhow!(
            "no one who has this share was in reach for {secs} s (tried: {}); the download is \
             kept and resumes on the next `meshdrop get` of this ticket or while `meshdrop run` runs",
            tried.join("; ")
        ),
        e => anyhow!("download failed: {e}"),
    }
}

/// Waits until the device `who` names (see [`crate::resolve::peer`]) is connected, offers it
/// the files and follows the offer to its end; the offer's events (from the node's bus) come as
/// updates.
async fn send(
    node: &Node,
    who: &str,
    paths: Vec<PathBuf>,
    wait: Duration,
    updates: &Updates,
) -> Result<Response> {
    let mut events = node.events();
    let target = find_peer(node, &mut events, who, wait).await?;
    let peer = target.peer;
    updates.send(Update::Offering {
        peer,
        name: target.claim.unwrap_or_default(),
        contact: target.contact,
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
                    ) if p == peer => updates.send(Update::Event(Box::new(ev))),
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

/// The device `who` names, once connected, within `wait`: a contact's given name resolves at
/// once (whoever else claims it); a name only strangers claim waits until one is heard.
async fn find_peer(
    node: &Node,
    events: &mut broadcast::Receiver<Event>,
    who: &str,
    wait: Duration,
) -> Result<Target> {
    let deadline = Instant::now() + wait;
    let me = node.peer_id();
    let not_found = || {
        anyhow!(
            "no nearby device {:?} found within {} s (see `meshdrop peers` and `meshdrop contacts`)",
            crate::text::clean(who),
            wait.as_secs()
        )
    };
    loop {
        let peers = node.peers().await?;
        if let Some(target) = resolve::peer(who, &node.contacts()?, &peers, &me)? {
            if !peers.iter().any(|p| p.peer == target.peer && p.connected) {
                connected(node, events, target.peer, deadline)
                    .await
                    .map_err(|_| not_found())?;
            }
            return Ok(target);
        }
        loop {
            match next_event(events, deadline).await.ok_or_else(not_found)? {
                Event::PeerDiscovered { .. }
                | Event::PeerIdentified { .. }
                | Event::PeerConnected { .. } => break,
                _ => {}
            }
        }
    }
}

/// Waits until `peer` is connected (`Err` at `deadline`).
async fn connected(
    node: &Node,
    events: &mut broadcast::Receiver<Event>,
    peer: PeerId,
    deadline: Instant,
) -> Result<()> {
    loop {
        match next_event(events, deadline).await {
            None => bail!("{peer} is not connected"),
            Some(Event::PeerConnected { peer: p, .. }) if p == peer => return Ok(()),
            Some(Event::PeerDiscovered { peer: p, .. } | Event::PeerIdentified { peer: p, .. })
                if p == peer =>
            {
                if node
                    .peers()
                    .await?
                    .iter()
                    .any(|i| i.peer == peer && i.connected)
                {
                    return Ok(());
                }
            }
            Some(_) => {}
        }
    }
}

/// The next event before `deadline`; `None` at the deadline or when the node stopped.
async fn next_event(events: &mut broadcast::Receiver<Event>, deadline: Instant) -> Option<Event> {
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(ev)) => return Some(ev),
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => return None,
        }
    }
}
