//! Pushing a share to a nearby device (the AirDrop / LocalSend flow): the sender offers a ticket,
//! the receiver's app is asked (sender name, verification code, file list, size) and nothing is
//! written before it accepts; then the receiver downloads and tells the sender how it goes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncWriteExt, StreamExt};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::download::{self, Ctx, DownloadSpec};
use super::wire::{self, WireError};
use super::{Manifest, Provider, Ticket, handle};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::identity;

/// The libp2p protocol name.
pub const PROTOCOL: libp2p::StreamProtocol = libp2p::StreamProtocol::new("/meshdrop/offer/1");

/// How long an offer waits for the receiver's answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);

/// Messages on an offer stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Msg {
    /// Sender → receiver: take this share?
    Offer { ticket: String, name: String },
    /// Receiver → sender: yes, these many files.
    Accepted { files: u32 },
    /// Receiver → sender: no.
    Declined { reason: String },
    /// Receiver → sender: bytes verified so far.
    Progress { done: u64, total: u64 },
    /// Receiver → sender: everything verified and in place.
    Finished { bytes: u64 },
    /// Receiver → sender: the download failed.
    Failed { error: String },
}

/// A file in an offer, as shown to the receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferedFile {
    /// Relative path (`/`-separated).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// The receiver's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Accept into `dest`, all files or only those listed (indexes in the offer's file list).
    Accept {
        /// Destination folder.
        dest: PathBuf,
        /// Selected files; all when `None`.
        files: Option<Vec<usize>>,
    },
    /// Decline; nothing is written.
    Decline,
}

/// How an offer ended for the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SendOutcome {
    /// The receiver has every accepted file, verified.
    Delivered {
        /// Bytes delivered.
        bytes: u64,
    },
    /// The receiver said no.
    Declined {
        /// Why, as the receiver put it.
        reason: String,
    },
    /// The receiver accepted but the download failed.
    Failed {
        /// The receiver's error.
        error: String,
    },
}

/// Offers waiting for the app's decision.
#[derive(Default)]
pub struct Pending {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Decision>>>,
}

impl Pending {
    /// Answers offer `id`; an unknown or expired id is an error.
    pub fn respond(&self, id: u64, decision: Decision) -> Result<()> {
        let tx = self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
            .ok_or(Error::NotFound {
                what: format!("offer {id}"),
            })?;
        tx.send(decision).map_err(|_| Error::NotFound {
            what: format!("offer {id} (it expired)"),
        })
    }

    fn register(&self) -> (u64, oneshot::Receiver<Decision>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        (id, rx)
    }

    fn forget(&self, id: u64) {
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

/// Opens an offer stream to `peer`, three tries: a connection can vanish just after it was
/// reported (the other side dialled over TCP and QUIC at once and kept the other one), and the
/// stream then fails; by the next try the connection it kept is up.
async fn open(ctx: &Ctx, peer: PeerId) -> Result<libp2p::Stream, libp2p_stream::OpenStreamError> {
    let mut tries = 0u64;
    loop {
        match crate::net::open_stream(&ctx.streams, &ctx.directory, peer, PROTOCOL).await {
            Err(libp2p_stream::OpenStreamError::Io(e)) if tries < 2 => {
                tries += 1;
                tracing::debug!(%peer, error = %e, "offer stream failed, trying again");
                tokio::time::sleep(Duration::from_millis(200 * tries)).await;
            }
            other => return other,
        }
    }
}

/// Offers a share (already in the library, named by `ticket`) to `peer` and follows it to its end.
pub async fn send(ctx: &Ctx, peer: PeerId, ticket: &Ticket, name: &str) -> Result<SendOutcome> {
    let unreachable = |e: &dyn std::fmt::Display| Error::Unreachable {
        reason: e.to_string(),
    };
    let mut stream = open(ctx, peer).await.map_err(|e| unreachable(&e))?;
    let offer = Msg::Offer {
        ticket: ticket.to_string(),
        name: name.to_string(),
    };
    wire::write_msg(&mut stream, &offer)
        .await
        .map_err(|e| unreachable(&e))?;
    let mut buf = Vec::new();
    let first = tokio::time::timeout(
        ANSWER_TIMEOUT,
        wire::read_msg::<_, Msg>(&mut stream, &mut buf),
    )
    .await
    .map_err(|_| Error::Timeout {
        what: "the receiver's answer".into(),
        secs: ANSWER_TIMEOUT.as_secs(),
    })?
    .map_err(|e| unreachable(&e))?;
    match first {
        Some(Msg::Accepted { files }) => {
            let _ = ctx.events.send(Event::OfferAccepted {
                peer,
                content: ticket.content,
                files,
            });
        }
        Some(Msg::Declined { reason }) => {
            let _ = ctx.events.send(Event::OfferDeclined {
                peer,
                content: ticket.content,
                reason: reason.clone(),
            });
            return Ok(SendOutcome::Declined { reason });
        }
        other => return Err(unreachable(&format!("unexpected answer {other:?}"))),
    }
    loop {
        match wire::read_msg::<_, Msg>(&mut stream, &mut buf)
            .await
            .map_err(|e| unreachable(&e))?
        {
            Some(Msg::Progress { done, total }) => {
                let _ = ctx.events.send(Event::SendProgress {
                    peer,
                    content: ticket.content,
                    done,
                    total,
                });
            }
            Some(Msg::Finished { bytes }) => return Ok(SendOutcome::Delivered { bytes }),
            Some(Msg::Failed { error }) => return Ok(SendOutcome::Failed { error }),
            other => return Err(unreachable(&format!("the receiver went away ({other:?})"))),
        }
    }
}

/// Accepts offer streams until the node stops, one task per offer.
pub async fn receive(
    mut incoming: libp2p_stream::IncomingStreams,
    ctx: Ctx,
    pending: Arc<Pending>,
    local: PeerId,
) {
    while let Some((peer, stream)) = incoming.next().await {
        let (ctx, pending) = (ctx.clone(), pending.clone());
        tokio::spawn(async move {
            if let Err(e) = session(peer, stream, &ctx, &pending, local).await {
                tracing::debug!(%peer, error = %e, "offer session ended");
            }
        });
    }
}

async fn session(
    peer: PeerId,
    mut stream: libp2p::Stream,
    ctx: &Ctx,
    pending: &Pending,
    local: PeerId,
) -> Result<(), WireError> {
    let mut buf = Vec::new();
    let Some(Msg::Offer { ticket, name }) = wire::read_msg(&mut stream, &mut buf).await? else {
        return Ok(());
    };
    let decline = |reason: String| Msg::Declined { reason };
    let Ok(ticket) = ticket.parse::<Ticket>() else {
        return wire::write_msg(&mut stream, &decline("the ticket is not valid".into())).await;
    };
    // The offering peer serves the share: fetch and check the manifest to show what is offered.
    let ticket = Ticket::new(
        ticket.content,
        vec![Provider {
            peer,
            addrs: Vec::new(),
        }],
    );
    let manifest = match download::fetch_manifest(ctx, &[peer], &ticket.content).await {
        Ok(bytes) => match Manifest::decode_verified(&bytes, &ticket.content) {
            Ok(m) => m,
            Err(e) => {
                return wire::write_msg(&mut stream, &decline(format!("bad manifest: {e}"))).await;
            }
        },
        Err(e) => {
            return wire::write_msg(&mut stream, &decline(format!("cannot read the offer: {e}")))
                .await;
        }
    };
    let files: Vec<OfferedFile> = manifest
        .files()
        .iter()
        .map(|f| OfferedFile {
            path: f.path.as_str().to_string(),
            size: f.size,
        })
        .collect();
    let (id, decision) = pending.register();
    let _ = ctx.events.send(Event::OfferReceived {
        offer: id,
        peer,
        name,
        verification_code: identity::verification_code(&local, &peer),
        total: manifest.total_size(),
        files,
    });
    let decision = match tokio::time::timeout(ANSWER_TIMEOUT, decision).await {
        Ok(Ok(d)) => d,
        _ => {
            pending.forget(id);
            Decision::Decline
        }
    };
    let (dest, files) = match decision {
        Decision::Decline => {
            return wire::write_msg(&mut stream, &decline("declined".into())).await;
        }
        Decision::Accept { dest, files } => (dest, files),
    };
    let count = files.as_ref().map_or(manifest.files().len(), Vec::len);
    wire::write_msg(
        &mut stream,
        &Msg::Accepted {
            files: u32::try_from(count).unwrap_or(u32::MAX),
        },
    )
    .await?;
    let mut events = ctx.events.subscribe();
    let transfer = handle::spawn(
        ctx,
        DownloadSpec {
            ticket,
            dest,
            files,
        },
    );
    let id = transfer.id;
    let result = tokio::spawn(transfer.wait());
    // Relay this transfer's progress to the sender until it ends.
    loop {
        match events.recv().await {
            Ok(Event::TransferProgress {
                transfer,
                done,
                total,
                ..
            }) if transfer == id => {
                wire::write_msg(&mut stream, &Msg::Progress { done, total }).await?;
            }
            Ok(
                Event::TransferFinished { transfer, .. } | Event::TransferFailed { transfer, .. },
            ) if transfer == id => break,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            _ => {}
        }
    }
    let end = match result.await {
        Ok(Ok(report)) => Msg::Finished {
            bytes: report.bytes,
        },
        Ok(Err(e)) => Msg::Failed {
            error: e.to_string(),
        },
        Err(e) => Msg::Failed {
            error: e.to_string(),
        },
    };
    wire::write_msg(&mut stream, &end).await?;
    let _ = stream.close().await;
    Ok(())
}
