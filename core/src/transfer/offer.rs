//! Pushing a share to a nearby device (the AirDrop / LocalSend flow): the sender offers a ticket,
//! the receiver's app is asked (sender name, verification code, file list, size) and nothing is
//! written before it accepts; then the receiver downloads and tells the sender how it goes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::download::{self, DownloadSpec, Status};
use super::service::Shared;
use super::{Manifest, Notice, Provider, Ticket};
use crate::contacts;
use crate::error::{Error, FailureKind, Result};
use crate::identity;
use crate::net::framing::{
    FIRST_FRAME, IO_TIMEOUT, WireError, read_msg, read_within, write_within,
};
use crate::net::gate::Gate;

/// The libp2p protocol name.
pub const PROTOCOL: libp2p::StreamProtocol = libp2p::StreamProtocol::new("/meshdrop/offer/1");

/// How long an offer waits for the receiver's answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);

/// Offers from strangers fetched or waiting for an answer at once; more are declined at once.
pub const MAX_STRANGER_OFFERS: usize = 4;
/// Offers fetched or waiting for an answer at once, in all.
pub const MAX_OFFERS: usize = 16;
/// The largest manifest an offer may have unless the user allows more
/// ([`super::TransferConfig::max_offer_manifest`]): what a stranger makes this device fetch and
/// decode before anyone said yes.
pub const MAX_OFFER_MANIFEST: usize = 1 << 20;
/// Offer streams of one peer served at once, and in all.
const OFFER_SESSIONS: (usize, usize) = (4, 32);
/// How long a receiver's progress may take to come while it downloads (a download waits up to
/// five minutes for its providers to come back).
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(360);

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
    /// Receiver → sender: the download failed. `kind` came last, after the first version: an
    /// older peer's frame ends before it (read as `Other`), and an older peer reading ours stops
    /// before it.
    Failed {
        error: String,
        #[serde(default, deserialize_with = "kind_or_other")]
        kind: FailureKind,
    },
}

/// The failure kind on the wire, `Other` when the frame ends before it or names a kind this
/// version does not know.
fn kind_or_other<'de, D: serde::Deserializer<'de>>(d: D) -> Result<FailureKind, D::Error> {
    Ok(FailureKind::deserialize(d).unwrap_or_default())
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
    /// Accept into `dest`, all files or only those listed (indexes in the offer's file list);
    /// `add_contact` also makes the sender a contact, under the name it gives itself.
    Accept {
        /// Destination folder.
        dest: PathBuf,
        /// Selected files; all when `None`.
        files: Option<Vec<usize>>,
        /// Make the sender a contact.
        add_contact: bool,
    },
    /// Decline; nothing is written.
    Decline,
}

/// Who may offer this device files (as Quick Share and AirDrop do it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Nobody: every offer is declined at once.
    Off,
    /// Contacts only: a stranger's offer is declined at once (the app hears a notice).
    Contacts,
    /// Everyone nearby may offer; the app decides.
    Everyone,
}

/// How an offer ended for the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        /// What kind of failure (`other` from a receiver too old to say).
        #[serde(default)]
        kind: FailureKind,
    },
}

/// An offer waiting for the app's answer (what `offer_received` said, and how long it waits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOffer {
    /// The offer's id.
    pub offer: u64,
    /// The sender.
    pub peer: PeerId,
    /// The name the sender gives itself (a claim).
    pub name: String,
    /// The name the user gave the sender, when a contact.
    pub contact: Option<String>,
    /// The code both screens show.
    pub verification_code: String,
    /// Bytes offered.
    pub total: u64,
    /// The files offered.
    pub files: Vec<OfferedFile>,
    /// Seconds left before it is declined unanswered.
    pub expires_in_secs: u64,
}

/// Offers waiting for the app's decision.
#[derive(Default)]
pub struct Pending {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, Waiting>>,
    /// Offers being fetched or waiting for an answer: (from strangers, in all).
    open: Arc<Mutex<(usize, usize)>>,
}

/// An offer admitted among those pending; dropping it makes room.
pub(crate) struct Slot {
    stranger: bool,
    open: Arc<Mutex<(usize, usize)>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.1 = open.1.saturating_sub(1);
        if self.stranger {
            open.0 = open.0.saturating_sub(1);
        }
    }
}

struct Waiting {
    answer: oneshot::Sender<Decision>,
    offer: PendingOffer,
    until: Instant,
}

impl Pending {
    /// Answers offer `id`; an unknown or expired id is an error.
    pub fn respond(&self, id: u64, decision: Decision) -> Result<()> {
        let waiting = self.lock().remove(&id).ok_or(Error::NotFound {
            what: format!("offer {id}"),
        })?;
        waiting.answer.send(decision).map_err(|_| Error::NotFound {
            what: format!("offer {id} (it expired)"),
        })
    }

    /// The offers waiting for an answer, oldest first.
    pub fn list(&self) -> Vec<PendingOffer> {
        let now = Instant::now();
        let mut list: Vec<PendingOffer> = self
            .lock()
            .values()
            .map(|w| PendingOffer {
                expires_in_secs: w.until.saturating_duration_since(now).as_secs(),
                ..w.offer.clone()
            })
            .collect();
        list.sort_by_key(|o| o.offer);
        list
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for an answer to `offer` (its id is set here); returns the id and the answer.
    pub(crate) fn register(&self, mut offer: PendingOffer) -> (u64, oneshot::Receiver<Decision>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (answer, rx) = oneshot::channel();
        offer.offer = id;
        let until = Instant::now() + ANSWER_TIMEOUT;
        self.lock().insert(
            id,
            Waiting {
                answer,
                offer,
                until,
            },
        );
        (id, rx)
    }

    pub(crate) fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Admits one more offer (from a stranger or not) while fewer than [`MAX_STRANGER_OFFERS`]
    /// strangers' and [`MAX_OFFERS`] in all are open; `None` otherwise.
    pub(crate) fn admit(&self, stranger: bool) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.1 >= MAX_OFFERS || (stranger && open.0 >= MAX_STRANGER_OFFERS) {
            return None;
        }
        open.1 += 1;
        if stranger {
            open.0 += 1;
        }
        Some(Slot {
            stranger,
            open: self.open.clone(),
        })
    }
}

/// Opens an offer stream to `peer`, three tries: a connection can vanish just after it was
/// reported (the other side dialled over TCP and QUIC at once and kept the other one), and the
/// stream then fails; by the next try the connection it kept is up.
async fn open(s: &Shared, peer: PeerId) -> Result<Stream, libp2p_stream::OpenStreamError> {
    let mut tries = 0u64;
    loop {
        match s.net.open_stream(peer, PROTOCOL).await {
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
pub(crate) async fn send(
    s: &Shared,
    peer: PeerId,
    ticket: &Ticket,
    name: &str,
) -> Result<SendOutcome> {
    let mut stream = open(s, peer).await.map_err(|e| unreachable(&e))?;
    let offer = Msg::Offer {
        ticket: ticket.to_string(),
        name: name.to_string(),
    };
    write_within(&mut stream, &offer, IO_TIMEOUT)
        .await
        .map_err(|e| unreachable(&e))?;
    let mut buf = Vec::new();
    let first = tokio::time::timeout(ANSWER_TIMEOUT, read_msg::<_, Msg>(&mut stream, &mut buf))
        .await
        .map_err(|_| Error::Timeout {
            what: "the receiver's answer".into(),
            secs: ANSWER_TIMEOUT.as_secs(),
        })?
        .map_err(|e| unreachable(&e))?;
    let content = ticket.content;
    match first {
        Some(Msg::Accepted { files }) => s.report.send(Notice::OfferAccepted {
            peer,
            content,
            files,
        }),
        Some(Msg::Declined { reason }) => {
            s.report.send(Notice::OfferDeclined {
                peer,
                content,
                reason: reason.clone(),
            });
            return Ok(SendOutcome::Declined { reason });
        }
        other => return Err(unreachable(&format!("unexpected answer {other:?}"))),
    }
    loop {
        match read_within::<_, Msg>(&mut stream, &mut buf, PROGRESS_TIMEOUT)
            .await
            .map_err(|e| unreachable(&e))?
        {
            Some(Msg::Progress { done, total }) => s.report.send(Notice::SendProgress {
                peer,
                content,
                done,
                total,
            }),
            Some(Msg::Finished { bytes }) => return Ok(SendOutcome::Delivered { bytes }),
            Some(Msg::Failed { error, kind }) => return Ok(SendOutcome::Failed { error, kind }),
            other => return Err(unreachable(&format!("the receiver went away ({other:?})"))),
        }
    }
}

fn unreachable(e: &dyn std::fmt::Display) -> Error {
    Error::Unreachable {
        reason: e.to_string(),
    }
}

/// Accepts offer streams until the node stops, one task per offer (a few per peer at once).
pub(crate) async fn receive(mut incoming: libp2p_stream::IncomingStreams, s: Shared) {
    let gate = Gate::new(OFFER_SESSIONS.0, OFFER_SESSIONS.1);
    while let Some((peer, stream)) = incoming.next().await {
        let Some(pass) = gate.enter(peer) else {
            tracing::debug!(%peer, "too many offer streams: dropped");
            continue;
        };
        let s = s.clone();
        tokio::spawn(async move {
            if let Err(e) = session(peer, stream, &s).await {
                tracing::debug!(%peer, error = %e, "offer session ended");
            }
            drop(pass);
        });
    }
}

/// One offer received: refused at once when the sender may not offer (visibility, contacts),
/// otherwise shown to the app with its manifest, answered, and when accepted downloaded with
/// progress told to the sender.
async fn session(peer: PeerId, mut stream: Stream, s: &Shared) -> Result<(), WireError> {
    let mut buf = Vec::new();
    let first = read_within(&mut stream, &mut buf, FIRST_FRAME).await?;
    let Some(Msg::Offer { ticket, name }) = first else {
        return Ok(());
    };
    let decline = |reason: String| Msg::Declined { reason };
    let contact = contacts::name_of(&s.store, &peer).unwrap_or_default();
    if let Err(reason) = admitted(s.visibility(), contact.is_some()) {
        s.report.send(Notice::OfferRefused {
            peer,
            name,
            reason: reason.clone(),
        });
        return write_within(&mut stream, &decline(reason), IO_TIMEOUT).await;
    }
    let Ok(ticket) = ticket.parse::<Ticket>() else {
        let reason = decline("the ticket is not valid".into());
        return write_within(&mut stream, &reason, IO_TIMEOUT).await;
    };
    // Held while the offer is fetched and waits for an answer.
    let Some(slot) = s.offers.admit(contact.is_none()) else {
        let reason = decline("this device has too many offers waiting: try again later".into());
        return write_within(&mut stream, &reason, IO_TIMEOUT).await;
    };
    // The offering peer serves the share: fetch and check the manifest to show what is offered.
    let ticket = Ticket::new(
        ticket.content,
        ticket.key,
        vec![Provider {
            peer,
            addrs: Vec::new(),
        }],
    );
    let listing = match offered_manifest(s, peer, &ticket).await {
        Ok(m) => m,
        Err(reason) => return write_within(&mut stream, &decline(reason), IO_TIMEOUT).await,
    };
    let offer = Offered {
        peer,
        name,
        contact,
    };
    let file_count = listing.files.len();
    let decision = ask(s, &offer, listing).await;
    drop(slot);
    let (dest, files, add_contact) = match decision {
        Decision::Decline => {
            return write_within(&mut stream, &decline("declined".into()), IO_TIMEOUT).await;
        }
        Decision::Accept {
            dest,
            files,
            add_contact,
        } => (dest, files, add_contact),
    };
    if add_contact && let Err(e) = contacts::add(&s.store, &peer, &offer.name, contacts::Via::Offer)
    {
        tracing::warn!(error = %e, "cannot add the sender as a contact");
    }
    let count = files.as_ref().map_or(file_count, Vec::len);
    let files_accepted = u32::try_from(count).unwrap_or(u32::MAX);
    let accepted = Msg::Accepted {
        files: files_accepted,
    };
    write_within(&mut stream, &accepted, IO_TIMEOUT).await?;
    let spec = DownloadSpec {
        ticket,
        dest,
        files,
    };
    let end = download_for(s, spec, &mut stream).await?;
    write_within(&mut stream, &end, IO_TIMEOUT).await?;
    let _ = stream.close().await;
    Ok(())
}

/// Whether a sender may offer files at this visibility; why not, for the sender.
fn admitted(visibility: Visibility, from_contact: bool) -> std::result::Result<(), String> {
    match (visibility, from_contact) {
        (Visibility::Off, _) => Err("this device is not receiving files now".into()),
        (Visibility::Contacts, false) => Err(
            "this device receives files from its contacts only: ask its owner to add you as a \
             contact (compare your verification codes)"
                .into(),
        ),
        _ => Ok(()),
    }
}

/// Who offers.
struct Offered {
    peer: PeerId,
    /// The name the sender gives itself.
    name: String,
    /// The name the user gave it, when a contact.
    contact: Option<String>,
}

/// Why an offer's top-level names will not do: a hidden name (`.bashrc`, `.ssh`) would land as
/// a dotfile of the receiver's folder.
fn hidden_top_level(manifest: &Manifest) -> Option<String> {
    let files = manifest.files().iter().map(|f| f.path.as_str());
    let dirs = manifest.dirs().iter().map(|d| d.as_str());
    files
        .chain(dirs)
        .filter_map(|p| p.split('/').next())
        .find(|top| top.starts_with('.'))
        .map(|top| format!("the offer holds a hidden top-level name ({top:?}): not accepted"))
}

/// What an offer holds, as shown to the app.
struct Listing {
    files: Vec<OfferedFile>,
    total: u64,
}

impl Listing {
    fn of(manifest: &Manifest) -> Self {
        let files = manifest
            .files()
            .iter()
            .map(|f| OfferedFile {
                path: f.path.as_str().to_string(),
                size: f.size,
            })
            .collect();
        Self {
            files,
            total: manifest.total_size(),
        }
    }
}

/// The offered share's manifest, checked against the ticket, as its listing (the manifest itself
/// is not kept while the offer waits: an accepted offer fetches it again); why not as the
/// reason to decline.
async fn offered_manifest(
    s: &Shared,
    peer: PeerId,
    ticket: &Ticket,
) -> std::result::Result<Listing, String> {
    let most = s.config.max_offer_manifest;
    let bytes = download::fetch_manifest(s, &[peer], ticket, most)
        .await
        .map_err(|e| format!("cannot read the offer: {e}"))?;
    let content = ticket.content;
    // Decoding checks every hash: off the async workers.
    tokio::task::spawn_blocking(move || {
        let manifest = Manifest::decode_verified(&bytes, &content)
            .map_err(|e| format!("bad manifest: {e}"))?;
        drop(bytes);
        match hidden_top_level(&manifest) {
            Some(why) => Err(why),
            None => Ok(Listing::of(&manifest)),
        }
    })
    .await
    .map_err(|_| "the node is stopping".to_string())?
}

/// Shows the offer to the app and waits for its decision (declined after [`ANSWER_TIMEOUT`]).
async fn ask(s: &Shared, offer: &Offered, listing: Listing) -> Decision {
    let peer = offer.peer;
    let code = identity::verification_code(&s.net.local_peer_id(), &peer);
    let shown = listing.files.clone();
    let waiting = PendingOffer {
        offer: 0,
        peer,
        name: offer.name.clone(),
        contact: offer.contact.clone(),
        verification_code: code.clone(),
        total: listing.total,
        files: listing.files,
        expires_in_secs: ANSWER_TIMEOUT.as_secs(),
    };
    let (id, decision) = s.offers.register(waiting);
    s.report.send(Notice::OfferReceived {
        offer: id,
        peer,
        name: offer.name.clone(),
        contact: offer.contact.clone(),
        verification_code: code,
        total: listing.total,
        files: shown,
    });
    match tokio::time::timeout(ANSWER_TIMEOUT, decision).await {
        Ok(Ok(d)) => d,
        _ => {
            s.offers.forget(id);
            s.report.send(Notice::OfferExpired { offer: id });
            Decision::Decline
        }
    }
}

/// Downloads an accepted offer, telling the sender how far it is; returns the last message.
async fn download_for(
    s: &Shared,
    spec: DownloadSpec,
    stream: &mut Stream,
) -> Result<Msg, WireError> {
    let transfer = s.download(spec);
    let mut status = transfer.status();
    loop {
        let now = status.borrow_and_update().clone();
        match now {
            Status::Running(p) => {
                let progress = Msg::Progress {
                    done: p.done,
                    total: p.total,
                };
                write_within(stream, &progress, IO_TIMEOUT).await?;
            }
            Status::Finished { .. } | Status::Failed { .. } => break,
            Status::Starting | Status::WaitingForHolder { .. } => {}
        }
        if status.changed().await.is_err() {
            break;
        }
    }
    Ok(match transfer.wait().await {
        Ok(report) => Msg::Finished {
            bytes: report.bytes,
        },
        Err(e) => Msg::Failed {
            error: e.to_string(),
            kind: e.kind(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages as the first version of the protocol had them.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum FirstMsg {
        Offer { ticket: String, name: String },
        Accepted { files: u32 },
        Declined { reason: String },
        Progress { done: u64, total: u64 },
        Finished { bytes: u64 },
        Failed { error: String },
    }

    fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
        postcard::to_stdvec(msg).expect("encodes")
    }

    #[test]
    fn a_failure_kind_crosses_the_wire_and_first_version_peers_still_read_each_other() {
        let failed = Msg::Failed {
            error: "not enough free space".into(),
            kind: FailureKind::NoSpace,
        };
        let ours = encode(&failed);
        assert_eq!(postcard::from_bytes::<Msg>(&ours), Ok(failed));
        assert_eq!(
            postcard::from_bytes::<FirstMsg>(&ours),
            Ok(FirstMsg::Failed {
                error: "not enough free space".into()
            }),
            "a first-version sender reads our failure"
        );
        let theirs = encode(&FirstMsg::Failed {
            error: "gone".into(),
        });
        let gone = Msg::Failed {
            error: "gone".into(),
            kind: FailureKind::Other,
        };
        assert_eq!(postcard::from_bytes::<Msg>(&theirs), Ok(gone.clone()));
        let mut newer = theirs;
        newer.push(0x7f);
        assert_eq!(
            postcard::from_bytes::<Msg>(&newer),
            Ok(gone),
            "a kind this version does not know reads as other"
        );
    }
}
