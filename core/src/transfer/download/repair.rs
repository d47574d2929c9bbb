//! Repairing a downloaded share in place: the chunks of one file that no longer verify are
//! fetched again from the peers that hold the share's key (the download's providers, those that
//! proved the key here, connected peers), written where they lie, and the file is read back and
//! checked whole. It runs as a download of those chunks alone, under the download's own slot,
//! so it never races a `get` of the same share into the same folder.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;

use super::handle::{Control, Status};
use super::plan::Plan;
use super::{DownloadError, Job, coordinator, providers};
use crate::transfer::dest::Dest;
use crate::transfer::library::Content;
use crate::transfer::service::Shared;
use crate::transfer::{Ticket, state};

/// Fetches `chunks` of file `file` of the downloaded share `content` again, in place.
pub(crate) async fn repair(
    s: &Shared,
    content: &Arc<Content>,
    file: usize,
    chunks: Vec<u64>,
) -> Result<(), DownloadError> {
    let location = content
        .location(file)
        .ok_or_else(|| DownloadError::ProvidersFailed("the file is not in the share".into()))?;
    let (done, rel) = state::finished_downloads(&s.store, &content.id)?
        .into_iter()
        .find_map(|d| relative(&d.dest, &location).map(|rel| (d, rel)))
        .ok_or_else(|| {
            DownloadError::NoProvider(format!(
                "no download of this share went to {}",
                location.display()
            ))
        })?;
    let ticket: Ticket = done
        .ticket
        .parse()
        .map_err(|e| DownloadError::NoProvider(format!("the stored ticket does not parse: {e}")))?;
    let dest = Arc::new(Dest::open(&done.dest)?);
    let slot = s.downloads.slot(content.id, dest.path());
    let _running = slot.lock().await;
    let name_max = s
        .config
        .name_rules
        .map_or_else(|| dest.name_rules().name_max, |r| r.name_max);
    let manifest = content.manifest.clone();
    let plan = Plan::repair(dest, name_max, &manifest, file, rel, chunks);
    tracing::info!(content = %content.id, file, chunks = plan.missing.len(), "repairing");
    let providers = providers::connect(s, &ticket).await;
    let status = Arc::new(watch::Sender::new(Status::Starting));
    let (_control_tx, mut control) = watch::channel(Control::Run);
    let job = Job {
        manifest: &manifest,
        plan: &plan,
        content,
        dl: done.row.id,
        ticket: &ticket,
        status: &status,
    };
    coordinator::fetch(s, job, providers, &mut control)
        .await
        .map(drop)
}

/// `path`'s components under `dest`, when it is inside it.
fn relative(dest: &Path, path: &Path) -> Option<Vec<String>> {
    let rel = path.strip_prefix(dest).ok()?;
    let parts: Option<Vec<String>> = rel
        .components()
        .map(|c| match c {
            std::path::Component::Normal(n) => n.to_str().map(str::to_string),
            _ => None,
        })
        .collect();
    parts.filter(|p| !p.is_empty())
}
