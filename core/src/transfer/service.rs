//! The transfer capability as the node holds it ([`Transfers`]), and the one struct of services
//! every part of it reaches: the network, the store, the library of servable shares, who holds
//! what, the rate limits, the running downloads, the offers awaiting an answer, and the report
//! that tells the app.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use tokio::task::JoinHandle;

use super::download::{self, DownloadSpec, Downloads, TransferHandle};
use super::holders::Holders;
use super::library::{Content, Library};
use super::limits::{Throttle, TransferLimits};
use super::offer::{self, Decision, Pending, SendOutcome};
use super::serve;
use super::{ContentId, Manifest, ManifestError, Notice, Ticket, state};
use crate::error::{Error, Result};
use crate::net::Net;
use crate::report::Report;
use crate::store::Store;

/// How long a stopping node waits for its downloads to record what they wrote.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// How the transfer capability is set up.
#[derive(Clone, Debug)]
pub struct TransferConfig {
    /// Upload and download rates and upload slots.
    pub limits: TransferLimits,
    /// Minimum time between progress updates of a download (zero: one per chunk).
    pub progress_interval: Duration,
    /// Flip a bit in every chunk served: a corrupt provider, for tests.
    pub(crate) corrupt_chunks: bool,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            limits: TransferLimits::default(),
            progress_interval: Duration::from_millis(250),
            corrupt_chunks: false,
        }
    }
}

/// Why files could not be shared.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// The files cannot be shared as they are (unreadable, a name other devices cannot hold…).
    #[error("cannot share: {0}")]
    Files(#[from] ManifestError),
    /// The node failed (its store, or it stopped).
    #[error(transparent)]
    Node(#[from] Error),
}

/// The services of the transfer capability, shared by downloads, serving and offers.
pub(crate) struct Services {
    pub(crate) net: Net,
    pub(crate) store: Arc<Store>,
    pub(crate) library: Library,
    pub(crate) holders: Holders,
    pub(crate) throttle: Throttle,
    pub(crate) downloads: Downloads,
    pub(crate) offers: Pending,
    pub(crate) report: Report<Notice>,
    pub(crate) config: TransferConfig,
}

/// How the parts hold the services.
pub(crate) type Shared = Arc<Services>;

/// Shares, downloads, serving and offers: cheap to clone.
#[derive(Clone)]
pub struct Transfers {
    s: Shared,
}

impl Services {
    /// Starts a download; the app hears of it through the report.
    pub(crate) fn download(self: &Arc<Self>, spec: DownloadSpec) -> TransferHandle {
        let id = self.downloads.next_id();
        let content = spec.ticket.content;
        let handle = download::handle::spawn(self, id, spec);
        self.report.send(Notice::Download {
            transfer: id,
            content,
            status: handle.status(),
        });
        handle
    }
}

impl Transfers {
    /// The capability over `net` and `store`, serving again the shares the store remembers.
    pub fn new(
        net: Net,
        store: Arc<Store>,
        config: TransferConfig,
        report: Report<Notice>,
    ) -> Self {
        let s = Arc::new(Services {
            net,
            library: Library::default(),
            holders: Holders::default(),
            throttle: Throttle::new(config.limits),
            downloads: Downloads::default(),
            offers: Pending::default(),
            report,
            config,
            store,
        });
        load_shares(&s);
        Self { s }
    }

    /// Answers blob streams (`/meshdrop/blob/2`) until aborted.
    pub fn serve(&self, incoming: libp2p_stream::IncomingStreams) -> JoinHandle<()> {
        tokio::spawn(serve::run(incoming, self.s.clone()))
    }

    /// Answers offer streams (`/meshdrop/offer/1`) until aborted.
    pub fn receive_offers(&self, incoming: libp2p_stream::IncomingStreams) -> JoinHandle<()> {
        tokio::spawn(offer::receive(incoming, self.s.clone()))
    }

    /// Shares files and folders: hashes them (streaming, off the async workers), remembers the
    /// share so it is served again after a restart, and returns its content id.
    pub async fn share(&self, paths: Vec<PathBuf>) -> Result<ContentId, ShareError> {
        let (manifest, sources) = tokio::task::spawn_blocking(move || Manifest::build(&paths))
            .await
            .map_err(|_| Error::Stopped)??;
        let encoded = manifest.encode();
        let content = ContentId::of(&encoded);
        state::save_manifest(&self.s.store, &content, &encoded)?;
        state::save_share(&self.s.store, &content, &sources)?;
        let served = Content::complete(Arc::new(manifest), Arc::new(encoded), sources);
        self.s.library.insert(Arc::new(served));
        Ok(content)
    }

    /// Starts downloading a share; the handle pauses, resumes, cancels, follows and waits.
    /// Running the same download again resumes it.
    pub fn download(&self, spec: DownloadSpec) -> TransferHandle {
        self.s.download(spec)
    }

    /// Restarts the downloads that were running when this node last stopped or died.
    pub fn resume_interrupted(&self) {
        let interrupted = match state::interrupted_downloads(&self.s.store) {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list interrupted downloads");
                return;
            }
        };
        for d in interrupted {
            let Ok(ticket) = d.ticket.parse::<Ticket>() else {
                tracing::warn!(ticket = %d.ticket, "stored ticket does not parse");
                continue;
            };
            tracing::info!(content = %ticket.content, dest = %d.dest.display(), "resuming download");
            let spec = DownloadSpec {
                ticket,
                dest: d.dest,
                files: d.files,
            };
            // Runs on by itself (the handle is held until the end); a node stop ends it, to
            // resume at the next start.
            tokio::spawn(self.download(spec).wait());
        }
    }

    /// Offers the share named by `ticket` (in the library already) to `peer` as device `name`,
    /// and follows the offer to its end: declined, or delivered and verified on the receiver.
    pub async fn send_offer(
        &self,
        peer: PeerId,
        ticket: &Ticket,
        name: &str,
    ) -> Result<SendOutcome> {
        offer::send(&self.s, peer, ticket, name).await
    }

    /// Answers an offer received.
    pub fn respond_offer(&self, offer: u64, decision: Decision) -> Result<()> {
        self.s.offers.respond(offer, decision)
    }

    /// Tells running downloads that the node stops and waits (a while) until they recorded what
    /// they wrote; they stay `active` and resume at the next start.
    pub async fn stop(&self) {
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        self.s.downloads.stop(deadline).await;
    }
}

/// Serves again the shares remembered in the store.
fn load_shares(s: &Services) {
    let shares = match state::shares(&s.store) {
        Ok(shares) => shares,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read shares");
            return;
        }
    };
    for share in shares {
        match Manifest::decode_verified(&share.manifest, &share.content) {
            Ok(m) => s.library.insert(Arc::new(Content::complete(
                Arc::new(m),
                Arc::new(share.manifest),
                share.sources,
            ))),
            Err(e) => {
                tracing::warn!(content = %share.content, error = %e, "stored share unreadable")
            }
        }
    }
}
