//! Finding a holder of a share whose manifest this node does not have yet: the ticket's
//! providers first, then every peer that may hold it (connected peers, which prove the ticket's
//! key before they answer; peers that asked this node for the share; the node's hints: contacts,
//! the room an attachment came from). With none in reach the download waits, visibly
//! ([`Status::WaitingForHolder`]), asks each peer that connects, and asks everyone again now and
//! then, until a holder answers, the node's wait runs out, it is cancelled or the node stops.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::handle::{Control, Progress, Status};
use super::providers;
use super::{DownloadError, Manifest};
use crate::net::Change;
use crate::transfer::manifest::MAX_ENCODED_LEN;
use crate::transfer::service::Shared;
use crate::transfer::{Ticket, state};

/// The first wait before everyone is asked again; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(2);
/// The longest wait between two rounds of asking everyone.
pub(super) const MAX_RETRY: Duration = Duration::from_secs(30);
/// What a waiting download shows of who it asked.
pub(super) const SHOWN_TRIES: usize = 8;

/// What seeking found: the peers that answered and the verified manifest (decoded, and as
/// encoded).
pub(super) struct Found {
    pub providers: Vec<PeerId>,
    pub manifest: Arc<Manifest>,
    pub encoded: Arc<Vec<u8>>,
}

/// The share's manifest (from the store when this node has seen it, else from the first holder
/// that answers) and the providers that answered the first dial.
pub(super) async fn holder(
    s: &Shared,
    ticket: &Ticket,
    control: &mut watch::Receiver<Control>,
    status: &watch::Sender<Status>,
) -> Result<Found, DownloadError> {
    let mut changes = s.net.subscribe();
    let mut arrivals = s.holders.arrivals();
    let mut stopping = s.downloads.stopping();
    let reached = reach(s, ticket).await;
    if let Some(encoded) = state::manifest(&s.store, &ticket.content)? {
        return found(s, ticket, reached, encoded).await;
    }
    let started = Instant::now();
    let deadline = s.config.holder_wait.map(|w| started + w);
    let mut retry = FIRST_RETRY;
    let mut ask: Vec<PeerId> = candidates(s, ticket, &reached);
    loop {
        match providers::fetch_manifest(s, &ask, ticket, MAX_ENCODED_LEN).await {
            Ok(encoded) => return found(s, ticket, candidates(s, ticket, &reached), encoded).await,
            Err(DownloadError::NoProvider(why)) => show_waiting(status, asked(ticket, &ask, &why)),
            Err(e) => return Err(e),
        }
        let next_round = tokio::time::sleep(retry);
        tokio::pin!(next_round);
        let until = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(until);
        ask = loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(Change::Connected { peer, .. }) => break vec![peer],
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => break s.net.connected(),
                    Err(RecvError::Closed) => return Err(crate::Error::Stopped.into()),
                },
                arrival = arrivals.recv() => match arrival {
                    Ok((tag, peer)) if tag == ticket.key.tag() => break vec![peer],
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return Err(crate::Error::Stopped.into()),
                },
                () = &mut next_round => {
                    retry = (retry * 2).min(MAX_RETRY);
                    // Whoever of them answers connects, and is asked then.
                    redial(s, ticket);
                    break candidates(s, ticket, &[]);
                }
                () = &mut until => {
                    return Err(DownloadError::NoHolder {
                        secs: started.elapsed().as_secs(),
                        tried: tried(status),
                    });
                }
                changed = control.changed() => {
                    if changed.is_err() || matches!(*control.borrow(), Control::Cancel { .. }) {
                        return Err(DownloadError::Cancelled);
                    }
                }
                changed = stopping.changed() => {
                    if changed.is_err() || *stopping.borrow() {
                        return Err(crate::Error::Stopped.into());
                    }
                }
            }
        };
    }
}

/// Dials the ticket's providers (waiting for them) and the hinted peers (without waiting: they
/// are asked once connected); returns the providers that answered.
pub(super) async fn reach(s: &Shared, ticket: &Ticket) -> Vec<PeerId> {
    dial_hinted(s, ticket);
    providers::connect(s, ticket).await
}

/// Starts dialling the ticket's providers and the hinted peers again, without waiting.
fn redial(s: &Shared, ticket: &Ticket) {
    let connected: HashSet<PeerId> = s.net.connected().into_iter().collect();
    for p in &ticket.providers {
        if !connected.contains(&p.peer) {
            s.net.dial_later(p.peer, p.addrs.clone());
        }
    }
    dial_hinted(s, ticket);
}

fn dial_hinted(s: &Shared, ticket: &Ticket) {
    let connected: HashSet<PeerId> = s.net.connected().into_iter().collect();
    for peer in s.holders.hinted(&ticket.content) {
        if !connected.contains(&peer) && peer != s.net.local_peer_id() {
            s.net.dial_later(peer, s.net.listen_addrs_of(&peer));
        }
    }
}

/// Who to ask, best first: the providers that answered, the peers known to hold or fetch the
/// share, the hinted peers that are connected, then every other connected peer.
fn candidates(s: &Shared, ticket: &Ticket, reached: &[PeerId]) -> Vec<PeerId> {
    let connected = s.net.connected();
    let hinted = s.holders.hinted(&ticket.content);
    let mut out: Vec<PeerId> = Vec::new();
    let known = s.holders.of(&ticket.key.tag());
    let hinted_connected = hinted.into_iter().filter(|p| connected.contains(p));
    for peer in reached
        .iter()
        .copied()
        .chain(known)
        .chain(hinted_connected)
        .chain(connected.iter().copied())
    {
        if !out.contains(&peer) {
            out.push(peer);
        }
    }
    out
}

/// The manifest `encoded`, checked against the ticket and stored for later runs.
async fn found(
    s: &Shared,
    ticket: &Ticket,
    providers: Vec<PeerId>,
    encoded: Vec<u8>,
) -> Result<Found, DownloadError> {
    let (manifest, encoded) = providers::verified(s, ticket, encoded).await?;
    Ok(Found {
        providers,
        manifest,
        encoded,
    })
}

/// Who was asked this round and what they said (at most [`SHOWN_TRIES`]).
fn asked(ticket: &Ticket, asked: &[PeerId], why: &str) -> Vec<String> {
    let mut tried: Vec<String> = why
        .split("; ")
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    if asked.is_empty() {
        tried = vec![nobody_in_reach(ticket)];
    }
    tried.truncate(SHOWN_TRIES);
    tried
}

/// What a wait says when no peer could be asked at all.
pub(super) fn nobody_in_reach(ticket: &Ticket) -> String {
    format!(
        "no peer in reach: the ticket names {}",
        providers_named(ticket)
    )
}

/// Shows the download waiting for a holder, at the progress it had, with `tried`.
pub(super) fn show_waiting(status: &watch::Sender<Status>, tried: Vec<String>) {
    status.send_if_modified(|now| {
        let last = match now {
            Status::Running(p) | Status::WaitingForHolder { last: p, .. } => p.clone(),
            _ => Progress::default(),
        };
        let next = Status::WaitingForHolder { last, tried };
        let changed = *now != next;
        *now = next;
        changed
    });
}

/// "1 provider (12D3…)" or "3 providers".
fn providers_named(ticket: &Ticket) -> String {
    match ticket.providers.as_slice() {
        [one] => format!("1 provider ({})", one.peer),
        many => format!("{} providers", many.len()),
    }
}

/// What the status says was tried.
fn tried(status: &watch::Sender<Status>) -> Vec<String> {
    match &*status.borrow() {
        Status::WaitingForHolder { tried, .. } => tried.clone(),
        _ => Vec::new(),
    }
}
