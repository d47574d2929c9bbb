//! The transfer capability as the node holds it ([`Transfers`]), and the one struct of services
//! every part of it reaches: the network, the store, the library of servable shares, who holds
//! what, the rate limits, the running downloads, the offers awaiting an answer, and the report
//! that tells the app.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tokio::task::JoinHandle;

use super::capability::{ShareKey, ShareTag};
use super::download::{self, DownloadError, DownloadSpec, Downloads, TransferHandle};
use super::health::{self, Health, ShareHealth};
use super::holders::Holders;
use super::library::{Content, Library};
use super::limits::{Throttle, TransferLimits};
use super::names::NameRules;
use super::offer::{self, Decision, Pending, PendingOffer, SendOutcome, Visibility};
use super::shares::{KeyRecord, ShareKind, Shares};
use super::source::{self, FileSource};
use super::{ContentId, Manifest, ManifestError, Notice, ShareInfo, Ticket, state};
use super::{build, serve};
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
    /// Who may offer files at start.
    pub visibility: Visibility,
    /// What names download destinations hold (`None`: probed on each).
    pub name_rules: Option<NameRules>,
    /// The largest manifest an offer may have (default [`offer::MAX_OFFER_MANIFEST`], 1 MiB).
    pub max_offer_manifest: usize,
    /// How long a download waits with no holder in reach (`None`: until cancelled or stopped).
    pub holder_wait: Option<Duration>,
    /// Flip a bit in every chunk served: a corrupt provider, for tests.
    pub(crate) corrupt_chunks: bool,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            limits: TransferLimits::default(),
            progress_interval: Duration::from_millis(250),
            visibility: Visibility::Contacts,
            name_rules: None,
            max_offer_manifest: offer::MAX_OFFER_MANIFEST,
            holder_wait: None,
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
    pub(crate) shares: Shares,
    pub(crate) holders: Holders,
    pub(crate) throttle: Throttle,
    pub(crate) downloads: Downloads,
    pub(crate) offers: Pending,
    pub(crate) health: Health,
    pub(crate) report: Report<Notice>,
    pub(crate) config: TransferConfig,
    /// Who may offer files now, and until when when it is `Everyone` for a while.
    visible: Mutex<(Visibility, Option<Instant>)>,
}

/// How the parts hold the services.
pub(crate) type Shared = Arc<Services>;

/// Shares, downloads, serving and offers: cheap to clone.
#[derive(Clone)]
pub struct Transfers {
    s: Shared,
}

impl Services {
    /// Who may offer files now (`Everyone` for a while falls back to `Contacts`).
    pub(crate) fn visibility(&self) -> Visibility {
        let mut visible = self.visible.lock().unwrap_or_else(|p| p.into_inner());
        if visible.1.is_some_and(|until| Instant::now() >= until) {
            *visible = (Visibility::Contacts, None);
        }
        visible.0
    }

    /// Serves `record.content` to the holders of `record.key` from now on, after restarts too.
    pub(crate) fn add_key(&self, record: KeyRecord) -> Result<()> {
        state::save_key(&self.store, &record)?;
        self.shares.add(record);
        Ok(())
    }

    /// Stops serving under `tag` (its open sessions end); the content leaves the library once
    /// no key opens it.
    pub(crate) fn remove_key(&self, tag: &ShareTag) -> Result<Option<KeyRecord>> {
        state::forget_key(&self.store, tag)?;
        self.holders.forget(tag);
        let Some(record) = self.shares.remove(tag) else {
            return Ok(None);
        };
        if !self.shares.serves(&record.content) {
            self.library.remove(&record.content);
            state::forget_share(&self.store, &record.content)?;
        }
        Ok(Some(record))
    }

    /// Shares files and folders under a new key: hashes them (streaming, off the async workers)
    /// and remembers the share so it is served again after a restart.
    pub(crate) async fn share(
        &self,
        paths: Vec<PathBuf>,
        kind: ShareKind,
        ttl: Option<Duration>,
    ) -> Result<(ContentId, ShareKey), ShareError> {
        let key = new_key()?;
        let store = self.store.clone();
        let (manifest, sources) = tokio::task::spawn_blocking(move || build_cached(&store, &paths))
            .await
            .map_err(|_| Error::Stopped)??;
        let encoded = manifest.encode();
        let content = ContentId::of(&encoded);
        state::save_manifest(&self.store, &content, &encoded)?;
        let stamps = state::save_share(&self.store, &content, &sources)?;
        if self.library.get(&content).is_none_or(|c| !c.is_complete()) {
            let served = Content::complete(Arc::new(manifest), Arc::new(encoded), sources);
            served.set_stamps(stamps);
            self.library.insert(Arc::new(served));
        }
        self.add_new_key(key, content, kind, ttl)?;
        Ok((content, key))
    }

    /// Shares the files `source` opens under a new key: hashes them through it (off the async
    /// workers) and serves them through it while this run lasts (see [`super::source`]).
    pub(crate) async fn share_source(
        &self,
        source: Arc<dyn FileSource>,
        kind: ShareKind,
    ) -> Result<(ContentId, ShareKey), ShareError> {
        let key = new_key()?;
        let (manifest, files) =
            tokio::task::spawn_blocking(move || source::build(source, None, None))
                .await
                .map_err(|_| Error::Stopped)??;
        let encoded = manifest.encode();
        let content = ContentId::of(&encoded);
        state::save_manifest(&self.store, &content, &encoded)?;
        // Files already served whole (from disk, or through the host) are kept as they are; a
        // share the host opened in an earlier run is served again from now on.
        if self.library.get(&content).is_none_or(|c| !c.is_complete()) {
            let listed: Vec<(String, u64)> = manifest
                .files()
                .iter()
                .map(|f| (f.path.to_string(), f.size))
                .collect();
            state::save_host_share(&self.store, &content, &listed)?;
            let served = Content::hosted(Arc::new(manifest), Arc::new(encoded), files);
            self.library.insert(Arc::new(served));
        }
        self.add_new_key(key, content, kind, None)?;
        Ok((content, key))
    }

    /// Serves `content` under the new `key` from now on; `ttl`: how long it opens it.
    fn add_new_key(
        &self,
        key: ShareKey,
        content: ContentId,
        kind: ShareKind,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let since = crate::store::now_secs();
        self.add_key(KeyRecord {
            key,
            content,
            kind,
            since,
            expires: ttl.map(|t| since.saturating_add(t.as_secs())),
            served: 0,
        })
    }

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
            shares: Shares::default(),
            holders: Holders::default(),
            throttle: Throttle::new(config.limits),
            downloads: Downloads::default(),
            offers: Pending::default(),
            health: Health::default(),
            report,
            visible: Mutex::new((config.visibility, None)),
            config,
            store,
        });
        load_shares(&s);
        Self { s }
    }

    /// Where downloads learn of peers that may hold a share besides its providers (set once).
    pub fn set_holder_hints(&self, hints: Arc<dyn super::HolderHints>) {
        self.s.holders.set_hints(hints);
    }

    /// Answers blob streams (`/meshdrop/blob/2`) until aborted.
    pub fn serve(&self, incoming: libp2p_stream::IncomingStreams) -> JoinHandle<()> {
        tokio::spawn(serve::run(incoming, self.s.clone()))
    }

    /// Answers offer streams (`/meshdrop/offer/1`) until aborted.
    pub fn receive_offers(&self, incoming: libp2p_stream::IncomingStreams) -> JoinHandle<()> {
        tokio::spawn(offer::receive(incoming, self.s.clone()))
    }

    /// Shares files and folders under a new key (a new ticket): hashes them, remembers the share
    /// so it is served again after a restart, and returns its content id and key. `ttl`: how long
    /// the key opens it (`None`: until unshared).
    pub async fn share(
        &self,
        paths: Vec<PathBuf>,
        kind: ShareKind,
        ttl: Option<Duration>,
    ) -> Result<(ContentId, ShareKey), ShareError> {
        self.s.share(paths, kind, ttl).await
    }

    /// Shares the files `source` opens on demand under a new key (a new ticket): hashes them
    /// through it and serves them through it, never copied, while this run lasts; returns its
    /// content id and key.
    pub async fn share_source(
        &self,
        source: Arc<dyn FileSource>,
        kind: ShareKind,
    ) -> Result<(ContentId, ShareKey), ShareError> {
        self.s.share_source(source, kind).await
    }

    /// Stops serving the share named `id` (its short id, or any longer start of its tag) at once:
    /// its open sessions end. Returns what it was.
    pub fn unshare(&self, id: &str) -> Result<ShareInfo> {
        let info = self.find(id)?;
        self.s.remove_key(&info.tag)?;
        Ok(info)
    }

    /// What this device serves: every key, with what it opens and how much it served.
    pub fn shares(&self) -> Result<Vec<ShareInfo>> {
        self.sweep()?;
        let mut list: Vec<ShareInfo> = self
            .s
            .shares
            .records()
            .into_iter()
            .map(|r| ShareInfo::of(&r, self.s.library.get(&r.content).as_deref()))
            .collect();
        list.sort_by_key(|i| (i.since, i.tag));
        Ok(list)
    }

    /// Checks the files of the share named `id` (every share when `None`) against its manifest,
    /// reading every byte; what no longer verifies is no longer served, is reported, and is
    /// fetched again from peers where the share came from others.
    pub async fn verify(&self, id: Option<&str>) -> Result<Vec<ShareHealth>> {
        let mut infos = match id {
            Some(id) => vec![self.find(id)?],
            None => self.shares()?,
        };
        infos.dedup_by_key(|i| i.content);
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for info in infos.into_iter().filter(|i| seen.insert(i.content)) {
            let Some(content) = self.s.library.get(&info.content) else {
                continue;
            };
            let damaged = health::verify(&self.s, &content).await;
            out.push(ShareHealth {
                id: info.id,
                content: info.content,
                name: info.name,
                files: info.files,
                bytes: info.bytes,
                damaged,
            });
        }
        Ok(out)
    }

    /// The one share whose id starts with `id`.
    fn find(&self, id: &str) -> Result<ShareInfo> {
        let found = self.s.shares.find(id);
        let not_found = || Error::NotFound {
            what: format!("a share {id:?} (`meshdrop shares` lists them)"),
        };
        match found.as_slice() {
            [tag] => self
                .shares()?
                .into_iter()
                .find(|i| i.tag == *tag)
                .ok_or_else(not_found),
            [] => Err(not_found()),
            many => Err(Error::Message(format!(
                "{id:?} names {} shares: give more of the id",
                many.len()
            ))),
        }
    }

    /// Forgets the keys that expired.
    fn sweep(&self) -> Result<()> {
        let now = crate::store::now_secs();
        for r in self.s.shares.records() {
            if r.expires.is_some_and(|at| at <= now) {
                self.s.remove_key(&r.key.tag())?;
            }
        }
        Ok(())
    }

    /// Starts downloading a share; the handle pauses, resumes, cancels, follows and waits.
    /// Running the same download again resumes it.
    pub fn download(&self, spec: DownloadSpec) -> TransferHandle {
        self.s.download(spec)
    }

    /// The bytes of the ticket's share, looking for a holder for at most `within` when its
    /// manifest is not known here yet.
    pub async fn size_of(&self, ticket: &Ticket, within: Duration) -> Result<u64, DownloadError> {
        download::size_of(&self.s, ticket, within).await
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

    /// The downloads that have not finished: running, waiting for someone who has the share, or
    /// interrupted (they resume at the next start).
    pub fn unfinished_downloads(&self) -> Result<Vec<state::UnfinishedDownload>> {
        state::unfinished_downloads(&self.s.store)
    }

    /// Offers the share named by `ticket` (made for this offer) to `peer` as device `name`, and
    /// follows the offer to its end: declined, or delivered and verified on the receiver. The
    /// ticket's key opens nothing once the offer ended.
    pub async fn send_offer(
        &self,
        peer: PeerId,
        ticket: &Ticket,
        name: &str,
    ) -> Result<SendOutcome> {
        let outcome = offer::send(&self.s, peer, ticket, name).await;
        self.s.remove_key(&ticket.key.tag())?;
        outcome
    }

    /// Who may offer files from now on; `for_` bounds it (then back to contacts), as phones do
    /// for `Everyone`.
    pub fn set_visibility(&self, visibility: Visibility, for_: Option<Duration>) {
        let until = for_.map(|d| Instant::now() + d);
        *self.s.visible.lock().unwrap_or_else(|p| p.into_inner()) = (visibility, until);
    }

    /// Who may offer files now.
    pub fn visibility(&self) -> Visibility {
        self.s.visibility()
    }

    /// The rate limits and upload slots in force.
    pub fn limits(&self) -> TransferLimits {
        self.s.throttle.limits()
    }

    /// Applies other rate limits and upload slots from now on, to running transfers too.
    pub fn set_limits(&self, limits: TransferLimits) {
        self.s.throttle.set(limits);
    }

    /// The offers received that wait for an answer (what the app shows after it was away).
    pub fn pending_offers(&self) -> Vec<PendingOffer> {
        self.s.offers.list()
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

/// A new share key.
fn new_key() -> Result<ShareKey> {
    ShareKey::generate().ok_or_else(|| Error::Network {
        reason: "no randomness for a share key".into(),
    })
}

/// Serves again the shares remembered in the store, under their keys (expired keys are
/// forgotten; shares no key opens are not loaded).
fn load_shares(s: &Services) {
    let now = crate::store::now_secs();
    let (keys, shares) = match (state::keys(&s.store), state::shares(&s.store)) {
        (Ok(keys), Ok(shares)) => (keys, shares),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "cannot read shares");
            return;
        }
    };
    for record in keys {
        if record.expires.is_some_and(|at| at <= now) {
            if let Err(e) = state::forget_key(&s.store, &record.key.tag()) {
                tracing::warn!(error = %e, "cannot forget an expired key");
            }
            continue;
        }
        s.shares.add(record);
    }
    for share in shares.into_iter().filter(|sh| s.shares.serves(&sh.content)) {
        match Manifest::decode_verified(&share.manifest, &share.content) {
            // Files the host opened in an earlier run are listed, not served, until it shares
            // them again.
            Ok(m) if share.host => {
                let c = Content::host_gone(Arc::new(m), Arc::new(share.manifest));
                s.library.insert(Arc::new(c));
            }
            Ok(m) => {
                let c = Content::complete(Arc::new(m), Arc::new(share.manifest), share.sources);
                c.set_stamps(share.stamps);
                s.library.insert(Arc::new(c));
            }
            Err(e) => {
                tracing::warn!(content = %share.content, error = %e, "stored share unreadable")
            }
        }
    }
}

/// Builds the manifest of `paths` on every core, taking the chunk hashes of files unchanged since
/// they were last hashed from the store's hash cache, and remembering those it hashed.
fn build_cached(
    store: &Store,
    paths: &[PathBuf],
) -> std::result::Result<(Manifest, Vec<PathBuf>), ManifestError> {
    let lookup = |path: &Path, stamp: &build::FileStamp, chunk_size: u32| {
        state::cached_hashes(store, path, stamp, chunk_size)
            .inspect_err(|e| tracing::warn!(%e, "hash cache unreadable"))
            .ok()
            .flatten()
    };
    let options = build::BuildOptions {
        cache: Some(&lookup),
        ..build::BuildOptions::default()
    };
    let built = build::build_with(paths, options)?;
    tracing::debug!(bytes = built.bytes_hashed, "hashed");
    // The cache only saves work: a share does not fail for want of it.
    if let Err(e) = state::save_hashes(store, &built.hashed) {
        tracing::warn!(%e, "hash cache not written");
    }
    Ok((built.manifest, built.sources))
}
