//! Reaching a ticket's providers, and asking peers for the share's manifest: the first whose
//! manifest hashes to the content id wins; it is decoded, checked and stored.

use std::sync::Arc;

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::PeerId;

use super::DownloadError;
use super::worker::{self, DIAL_TIMEOUT, STALL_TIMEOUT};
use crate::net::framing::{read_msg, write_msg};
use crate::transfer::capability::ShareKey;
use crate::transfer::manifest::MAX_ENCODED_LEN;
use crate::transfer::service::Shared;
use crate::transfer::wire::{Request, Response};
use crate::transfer::{ContentId, Manifest, Ticket, state};

/// Dials every provider of the ticket at once; returns those that answered.
pub(super) async fn connect(s: &Shared, ticket: &Ticket) -> Vec<PeerId> {
    let dials = ticket.providers.iter().map(|p| async move {
        match s.net.dial(p.peer, p.addrs.clone(), DIAL_TIMEOUT).await {
            Ok(()) => Some(p.peer),
            Err(e) => {
                tracing::info!(peer = %p.peer, error = %e, "provider unreachable");
                None
            }
        }
    });
    futures::future::join_all(dials)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The ticket's share's manifest `encoded`, decoded and checked against the content id, and
/// stored for later runs.
pub(super) async fn verified(
    s: &Shared,
    ticket: &Ticket,
    encoded: Vec<u8>,
) -> Result<(Arc<Manifest>, Arc<Vec<u8>>), DownloadError> {
    let content = &ticket.content;
    // Decoding checks every hash: off the async workers.
    let (encoded, manifest) = tokio::task::spawn_blocking({
        let content = *content;
        move || {
            let manifest = Manifest::decode_verified(&encoded, &content);
            (encoded, manifest)
        }
    })
    .await
    .map_err(|_| DownloadError::Node(crate::Error::Stopped))?;
    let manifest = manifest?;
    state::save_manifest(&s.store, content, &encoded)?;
    Ok((Arc::new(manifest), Arc::new(encoded)))
}

/// Asks `providers` in turn for the manifest of the ticket's share, at most `most` bytes; the
/// first that hashes to the content id wins (one that does not is that provider's lie: the next
/// is asked).
pub(crate) async fn fetch_manifest(
    s: &Shared,
    providers: &[PeerId],
    ticket: &Ticket,
    most: usize,
) -> Result<Vec<u8>, DownloadError> {
    let content = &ticket.content;
    let mut errors = Vec::new();
    for peer in providers {
        // Bounded: a stream can die silently with its connection.
        let asked = ask_manifest(s, *peer, &ticket.key, most.min(MAX_ENCODED_LEN));
        let attempt = tokio::time::timeout(STALL_TIMEOUT, asked).await;
        let result = attempt
            .unwrap_or_else(|_| Err(format!("no manifest within {} s", STALL_TIMEOUT.as_secs())));
        match result {
            Ok(bytes) if ContentId::of(&bytes) == *content => return Ok(bytes),
            Ok(_) => errors.push(format!("{peer}: manifest does not match the ticket")),
            Err(e) => errors.push(format!("{peer}: {e}")),
        }
    }
    if errors.is_empty() {
        errors.push("no peer answered".into());
    }
    Err(DownloadError::NoProvider(errors.join("; ")))
}

async fn ask_manifest(
    s: &Shared,
    peer: PeerId,
    key: &ShareKey,
    most: usize,
) -> Result<Vec<u8>, String> {
    let mut stream = worker::open(s, peer, key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("does not have this share, or does not serve it to this ticket")?
        .stream;
    write_msg(&mut stream, &Request::Manifest)
        .await
        .map_err(|e| e.to_string())?;
    match read_msg(&mut stream, &mut Vec::new())
        .await
        .map_err(|e| e.to_string())?
    {
        Some(Response::Manifest { len }) if u64::from(len) <= most as u64 => {
            let mut bytes = vec![0; len as usize];
            stream
                .read_exact(&mut bytes)
                .await
                .map_err(|e| e.to_string())?;
            let _ = stream.close().await;
            Ok(bytes)
        }
        Some(Response::Manifest { len }) => Err(format!(
            "the manifest has {len} bytes, more than the {most} accepted"
        )),
        other => Err(format!("unexpected answer {other:?}")),
    }
}
