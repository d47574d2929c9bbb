//! Downloading a share: fetch and check the manifest, plan what is missing, pull chunks pipelined
//! from every peer that holds some (the ticket's providers, connected peers, and those found
//! through the swarm), verify each chunk before it is written to this download's own `.part`
//! file (never through a link: `dest.rs`), record written chunks in SQLite in durable batches,
//! and rename each file into place, never over another file, once it verifies whole.
//!
//! The parts: [`handle`] (what the app holds: controls and a status watch), `registry` (ids, one
//! run per share and destination, the names claimed, the node's stop), `providers` (dialling the
//! ticket's providers, asking for the manifest), `seek` (finding a holder when the providers are
//! gone: any peer that proves the ticket, the node's hints; waiting for one), `plan` (where each file goes, what is on disk and what is
//! missing), `coordinator` (which peers work for the download, and when no good copy is left),
//! `worker` (one peer's pipelined stream), `schedule` (which chunk next), `sink` (verify, write,
//! report progress), `durable` (sync, record, rename) and `repair` (a downloaded share's damaged
//! chunks fetched again, in place).

mod coordinator;
mod durable;
pub mod handle;
mod pex;
mod plan;
mod providers;
mod registry;
mod repair;
mod schedule;
mod seek;
mod sink;
mod worker;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use handle::{Control, PeerBytes, Progress, Status, TransferControls, TransferHandle};
pub(crate) use providers::fetch_manifest;
pub(crate) use registry::Downloads;
pub(crate) use repair::repair;

use super::dest::{Dest, DestError};
use super::library::Content;
use super::names::NameChange;
use super::service::Shared;
use super::shares::{KeyRecord, ShareKind};
use super::{ContentId, Manifest, ManifestError, PathError, Ticket, state};
use crate::error::FailureKind;
use plan::{Plan, PlanInput};
use registry::ClaimGuard;
use sink::SinkReport;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// No provider answered or had the share.
    #[error("no provider could be reached: {0}")]
    NoProvider(String),
    /// The manifest does not match the ticket or is malformed.
    #[error("manifest rejected: {0}")]
    Manifest(#[from] ManifestError),
    /// A path in the manifest is unsafe.
    #[error("unsafe path in the share: {0}")]
    Path(#[from] PathError),
    /// The destination lacks space for what is missing.
    #[error("not enough free space in {path}: {needed} bytes needed, {available} available")]
    NoSpace {
        /// The destination.
        path: PathBuf,
        /// Bytes still to write.
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// Every name a shared file could go under is taken.
    #[error(
        "{path} and every `name (n)` after it are taken by other files: move them away or pick another destination"
    )]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A path under the destination cannot be written safely (a link, a file for a folder).
    #[error(transparent)]
    Dest(#[from] DestError),
    /// Some chunks are held by no peer as they should be: every copy reachable is damaged.
    #[error("no peer has a good copy of {0}")]
    NoGoodCopy(String),
    /// Reading or writing the destination failed (a full disk among others); partial data is kept.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// No peer holding the share was in reach for the whole wait; the download is kept.
    #[error(
        "no one who has this share was in reach for {secs} s ({}); the download is kept and resumes when started again",
        tried.join("; ")
    )]
    NoHolder {
        /// How long it waited.
        secs: u64,
        /// Who was asked, and what each said.
        tried: Vec<String>,
    },
    /// Every provider failed or was dropped before the download finished.
    #[error("every provider failed: {0}")]
    ProvidersFailed(String),
    /// The download was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The node failed.
    #[error(transparent)]
    Node(#[from] crate::Error),
}

impl DownloadError {
    /// What kind of failure this is.
    pub fn kind(&self) -> FailureKind {
        match self {
            DownloadError::NoProvider(_) | DownloadError::NoHolder { .. } => {
                FailureKind::NoProvider
            }
            DownloadError::Manifest(_) | DownloadError::Path(_) => FailureKind::ManifestRejected,
            DownloadError::NoSpace { .. } => FailureKind::NoSpace,
            DownloadError::Io { source, .. } if source.kind() == io::ErrorKind::StorageFull => {
                FailureKind::NoSpace
            }
            DownloadError::Exists { .. } | DownloadError::Dest(_) => FailureKind::Destination,
            DownloadError::NoGoodCopy(_) => FailureKind::NoGoodCopy,
            DownloadError::Io { .. } => FailureKind::DiskError,
            DownloadError::ProvidersFailed(_) => FailureKind::ProvidersFailed,
            DownloadError::Cancelled => FailureKind::Cancelled,
            DownloadError::Node(e) => e.kind(),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DownloadError + '_ {
    move |source| DownloadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What to download and where.
#[derive(Clone, Debug)]
pub struct DownloadSpec {
    /// The share and its providers.
    pub ticket: Ticket,
    /// The destination folder.
    pub dest: PathBuf,
    /// Only these files (manifest indexes); all when `None`.
    pub files: Option<Vec<usize>>,
}

/// What a finished download did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DownloadReport {
    /// The share.
    pub content: ContentId,
    /// Files now in place.
    pub files: usize,
    /// Bytes of the selected files.
    pub bytes: u64,
    /// Bytes received from the network in this run (including rejected chunks).
    pub fetched: u64,
    /// Bytes already on disk from an earlier run.
    pub resumed: u64,
    /// Bytes already in the destination: identical files, and the chunks of unfinished copies
    /// (completed in place).
    pub skipped: u64,
    /// Bytes rejected because they failed verification.
    pub rejected: u64,
    /// Bytes per provider in this run.
    pub peers: Vec<PeerBytes>,
    /// Wall time.
    pub secs: f64,
    /// Files of the share saved under another name (a name the destination cannot hold, or
    /// taken by another file).
    #[serde(default)]
    pub renamed: Vec<NameChange>,
    /// What the download found and mended on the way (a link planted where it writes).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Where each selected file now is, in the share's order.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
}

/// One run of a download, as its coordinator and writer see it: the share, the plan, the
/// download's row in the store, the ticket, and where progress goes.
struct Job<'a> {
    manifest: &'a Arc<Manifest>,
    plan: &'a Plan,
    content: &'a Arc<Content>,
    dl: i64,
    ticket: &'a Ticket,
    status: &'a Arc<watch::Sender<Status>>,
}

/// Runs one download to its end; progress goes to `status`.
async fn run(
    s: Shared,
    spec: DownloadSpec,
    mut control: watch::Receiver<Control>,
    status: Arc<watch::Sender<Status>>,
) -> Result<DownloadReport, DownloadError> {
    let started = Instant::now();
    let content_id = spec.ticket.content;
    let dest = Arc::new(Dest::open(&spec.dest)?);
    let found = find_holder(&s, &spec, &dest, &mut control, &status).await?;
    let (providers, manifest, encoded) = (found.providers, found.manifest, found.encoded);
    // One run at a time per share and destination: a second one (a node that resumed it at
    // start, and the user asking again) waits, then finds the files in place.
    let slot = s.downloads.slot(content_id, dest.path());
    let _running = slot.lock().await;
    let row = state::start_download(&s.store, &spec.ticket, dest.path(), spec.files.as_deref())?;
    let claims = s.downloads.claims();
    let _claimed = ClaimGuard {
        claims: claims.clone(),
        owner: row.id,
    };
    let input = PlanInput {
        manifest: &manifest,
        row: &row,
        dest: &dest,
        rules: s.config.name_rules.unwrap_or_else(|| dest.name_rules()),
        selection: spec.files.as_deref(),
        claims: &claims,
    };
    let plan = Plan::make(&s.store, input)?;
    plan.check_space(&manifest)?;
    plan.prepare(&manifest)?;
    let content = served_while_fetched(&s, content_id, &manifest, encoded, &plan);
    // Seed to the ticket's other holders while downloading, and after.
    s.add_key(KeyRecord {
        key: spec.ticket.key,
        content: content_id,
        kind: ShareKind::Download,
        since: crate::store::now_secs(),
        expires: None,
        served: 0,
    })?;
    let fetched = if plan.missing.is_empty() {
        Ok(SinkReport::default())
    } else {
        let job = Job {
            manifest: &manifest,
            plan: &plan,
            content: &content,
            dl: row.id,
            ticket: &spec.ticket,
            status: &status,
        };
        coordinator::fetch(&s, job, providers, &mut control).await
    };
    tracing::debug!(ok = fetched.is_ok(), "fetched");
    let report = match fetched {
        Ok(report) => report,
        Err(e) => return Err(record_failure(&s, row.id, &plan, &control, e)),
    };
    content.set_complete();
    state::set_download_state(&s.store, row.id, state::DownloadState::Done)?;
    if spec.files.is_none() {
        // Every file is in place: served from there after a restart too.
        let stamps = state::save_share(&s.store, &content_id, &plan.final_paths())?;
        content.set_stamps(stamps);
    }
    Ok(DownloadReport::of(
        content_id, &plan, &manifest, report, started,
    ))
}

/// Finds a holder of the share and its manifest, recorded meanwhile (in `sought`) so that a
/// download still waiting for one resumes after a restart.
async fn find_holder(
    s: &Shared,
    spec: &DownloadSpec,
    dest: &Dest,
    control: &mut watch::Receiver<Control>,
    status: &watch::Sender<Status>,
) -> Result<seek::Found, DownloadError> {
    state::seek_download(&s.store, &spec.ticket, dest.path(), spec.files.as_deref())?;
    let sought = seek::holder(s, &spec.ticket, control, status).await;
    let keep = matches!(
        sought,
        Err(DownloadError::NoHolder { .. } | DownloadError::Node(crate::Error::Stopped))
    );
    if !keep {
        state::found_download(&s.store, &spec.ticket.content, dest.path())?;
    }
    sought
}

impl DownloadReport {
    /// What a run that planned `plan` and wrote `report` did.
    fn of(
        content: ContentId,
        plan: &Plan,
        manifest: &Manifest,
        report: SinkReport,
        started: Instant,
    ) -> Self {
        let paths = plan
            .files
            .iter()
            .map(|f| final_path(plan, &f.final_rel, &report.renamed))
            .collect();
        let mut renamed = plan.renamed.clone();
        renamed.extend(report.renamed);
        DownloadReport {
            content,
            files: plan.files.len(),
            bytes: plan.selected_bytes(manifest),
            fetched: report.fetched,
            resumed: plan.resumed,
            skipped: plan.skipped,
            rejected: report.rejected,
            peers: report.peers,
            secs: started.elapsed().as_secs_f64(),
            renamed,
            notes: plan.notes.clone(),
            paths,
        }
    }
}

/// The bytes of the ticket's share, from its manifest: stored, or from the first holder found
/// within `within` (the manifest is then stored, so a download of it starts at once).
pub(crate) async fn size_of(
    s: &Shared,
    ticket: &Ticket,
    within: std::time::Duration,
) -> Result<u64, DownloadError> {
    let (_keep, mut control) = watch::channel(Control::Run);
    let status = watch::Sender::new(Status::Starting);
    let found = tokio::time::timeout(within, seek::holder(s, ticket, &mut control, &status))
        .await
        .map_err(|_| DownloadError::NoHolder {
            secs: within.as_secs(),
            tried: Vec::new(),
        })??;
    Ok(found.manifest.files().iter().map(|f| f.size).sum())
}

/// Where a file planned at `rel` ended: there, or where it went when another file took the name
/// while it was fetched (`moved`).
fn final_path(plan: &Plan, rel: &[String], moved: &[NameChange]) -> PathBuf {
    let planned = rel.join("/");
    match moved.iter().find(|c| c.path == planned) {
        Some(c) => plan.dest.path().join(&c.saved_as),
        None => plan.dest.join(rel),
    }
}

/// The share as this node serves it while fetching: the library's when it has one, else a new
/// partial one reading from where the plan puts each file.
fn served_while_fetched(
    s: &Shared,
    id: ContentId,
    manifest: &Arc<Manifest>,
    encoded: Arc<Vec<u8>>,
    plan: &Plan,
) -> Arc<Content> {
    if let Some(c) = s.library.get(&id) {
        return c;
    }
    let c = Arc::new(Content::partial(
        manifest.clone(),
        encoded,
        plan.locations.clone(),
    ));
    c.add(&plan.done);
    s.library.insert(c.clone());
    c
}

/// Records how a download ended early: removed (cancelled without keeping), left `active` (the
/// node stopped, or no holder was in reach: it resumes when started again or at the next start),
/// or `cancelled` / `failed`.
fn record_failure(
    s: &Shared,
    dl: i64,
    plan: &Plan,
    control: &watch::Receiver<Control>,
    e: DownloadError,
) -> DownloadError {
    let cancelled = matches!(e, DownloadError::Cancelled);
    let keep = !matches!(*control.borrow(), Control::Cancel { keep: false });
    let recorded = if cancelled && !keep {
        plan.remove_parts();
        state::forget_download(&s.store, dl)
    } else if matches!(
        e,
        DownloadError::Node(crate::Error::Stopped) | DownloadError::NoHolder { .. }
    ) {
        Ok(())
    } else if cancelled {
        state::set_download_state(&s.store, dl, state::DownloadState::Cancelled)
    } else {
        state::set_download_state(&s.store, dl, state::DownloadState::Failed)
    };
    match recorded {
        Ok(()) => e,
        Err(store) => store.into(),
    }
}

/// A random number below `n` (zero when `n` is zero).
fn random_below(n: u64) -> u64 {
    let mut bytes = [0u8; 8];
    // Without randomness every download starts at the first chunk: slower swarms, still correct.
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes).checked_rem(n).unwrap_or(0)
}
