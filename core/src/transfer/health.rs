//! Whether what this node serves still is what it shared. Serving verifies every chunk it reads;
//! one that no longer verifies (bit rot, an edit, a file gone) makes the node check that file
//! whole, mark every bad chunk missing (never sent again until repaired), tell the app
//! (`share_damaged`: which file, which chunks, and whether the file changed since it was shared)
//! and, where the share came from others (a download), fetch those chunks again from the peers
//! that hold its key, in place (`share_repaired`). `meshdrop verify` runs the same check on
//! every file of a share. Files the host opens are checked as the host reads them.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::library::Content;
use super::service::Shared;
use super::shares::ShareKind;
use super::source::Hosted;
use super::state::{self, Stamp};
use super::{ContentId, Notice, download};

/// Why a served file no longer matches its share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Damage {
    /// It was changed (its size or change time differ) since it was shared.
    Changed,
    /// Its bytes differ from what was shared though it was not changed: the disk's damage.
    Corrupt,
    /// It is gone or unreadable.
    Missing,
}

/// What a check of one file found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHealth {
    /// The file's path in the share.
    pub file: String,
    /// Where it is read from.
    pub path: PathBuf,
    /// The chunks that do not verify (share-wide indexes).
    pub chunks: Vec<u64>,
    /// Their bytes.
    pub bytes: u64,
    /// Why.
    pub damage: Damage,
    /// Whether they were fetched again from peers (a downloaded share).
    pub repaired: bool,
    /// Why a repair failed, or why none was tried.
    pub error: Option<String>,
}

/// What a share's check found, as `verify` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareHealth {
    /// The share's short id (as `shares` lists it).
    pub id: String,
    /// The share.
    pub content: ContentId,
    /// Its top-level names.
    pub name: String,
    /// Files checked.
    pub files: usize,
    /// Bytes read and verified.
    pub bytes: u64,
    /// The files that did not verify, and what became of them.
    pub damaged: Vec<FileHealth>,
}

/// One check at a time per file of a share: a serving thread that finds damage starts one
/// unless one runs; `verify` waits for the one running, then checks again.
#[derive(Default)]
pub(crate) struct Health {
    files: Mutex<HashMap<(ContentId, usize), FileLock>>,
}

/// Held while one file of a share is checked or repaired.
type FileLock = Arc<tokio::sync::Mutex<()>>;

impl Health {
    fn lock_of(&self, key: (ContentId, usize)) -> FileLock {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        files.retain(|_, lock| Arc::strong_count(lock) > 1);
        files.entry(key).or_default().clone()
    }
}

/// Chunk `index` of `content` did not verify when read (called from a serving thread): it is
/// not servable from now on, and its file is checked (and repaired) on `rt` unless that runs.
pub(crate) fn suspect(s: &Shared, rt: &tokio::runtime::Handle, content: &Arc<Content>, index: u64) {
    content.lose(&[index]);
    let Some(file) = content.manifest.chunk(index).map(|c| c.file) else {
        return;
    };
    let Ok(running) = s.health.lock_of((content.id, file)).try_lock_owned() else {
        return;
    };
    let (s, content) = (s.clone(), content.clone());
    rt.spawn(async move {
        let _ = examine(&s, &content, file).await;
        drop(running);
    });
}

/// Checks every file of `content` (after any check of it that runs), repairing what it can.
pub(crate) async fn verify(s: &Shared, content: &Arc<Content>) -> Vec<FileHealth> {
    let mut damaged = Vec::new();
    for file in 0..content.manifest.files().len() {
        let lock = s.health.lock_of((content.id, file));
        let _checking = lock.lock().await;
        if let Some(found) = examine(s, content, file).await {
            damaged.push(found);
        }
    }
    damaged
}

/// Checks file `file` of `content` whole; damage is reported, and repaired from peers where the
/// share came from others. `None`: the file is fine.
pub(crate) async fn examine(s: &Shared, content: &Arc<Content>, file: usize) -> Option<FileHealth> {
    let checked = content.clone();
    let found = tokio::task::spawn_blocking(move || check_file(&checked, file))
        .await
        .ok()
        .flatten();
    // Chunks suspected before that verify now (a read that failed once) are servable again.
    let bad = found.as_ref().map(|f| f.chunks.as_slice()).unwrap_or(&[]);
    let fine: Vec<u64> = content
        .lost_of(file)
        .into_iter()
        .filter(|i| !bad.contains(i))
        .collect();
    if !fine.is_empty() {
        content.add(&fine);
    }
    let found = found?;
    content.lose(&found.chunks);
    let repairing = came_from_others(s, &content.id) && found.damage != Damage::Missing;
    s.report.send(Notice::ShareDamaged {
        content: content.id,
        file: found.file.clone(),
        path: found.path.clone(),
        chunks: found.chunks.clone(),
        damage: found.damage,
        repairing,
    });
    let mut found = found;
    if !repairing {
        found.error = Some(match found.damage {
            Damage::Missing => "the file is gone: nothing to repair".into(),
            _ => "this device shared it: share the file again to serve what it holds now".into(),
        });
        return Some(found);
    }
    match download::repair(s, content, file, found.chunks.clone()).await {
        Ok(()) => {
            refresh_stamps(s, content);
            found.repaired = true;
            s.report.send(Notice::ShareRepaired {
                content: content.id,
                file: found.file.clone(),
                chunks: found.chunks.clone(),
            });
        }
        Err(e) => {
            tracing::warn!(content = %content.id, file = %found.file, error = %e, "repair failed");
            found.error = Some(e.to_string());
            s.report.send(Notice::ShareRepairFailed {
                content: content.id,
                file: found.file.clone(),
                error: e.to_string(),
            });
        }
    }
    Some(found)
}

/// Whether this node holds the share as a download (a key of kind download opens it).
fn came_from_others(s: &Shared, content: &ContentId) -> bool {
    s.shares
        .records()
        .iter()
        .any(|r| r.content == *content && r.kind == ShareKind::Download)
}

/// Records the files' stamps again after a repair rewrote some.
fn refresh_stamps(s: &Shared, content: &Content) {
    let locations = content.locations();
    match state::save_share(&s.store, &content.id, &locations) {
        Ok(stamps) => content.set_stamps(stamps),
        Err(e) => tracing::warn!(error = %e, "cannot record the repaired files"),
    }
}

/// Reads file `file` of `content` and verifies every chunk this node holds of it; `None` when
/// every one verifies.
pub(crate) fn check_file(content: &Content, file: usize) -> Option<FileHealth> {
    let entry = content.manifest.files().get(file)?;
    let path = content.location(file)?;
    let held: Vec<u64> = content
        .manifest
        .chunks_of(file)
        .filter(|i| content.has(*i) || content.is_lost(*i))
        .collect();
    let (bad, damage) = match content.host_files() {
        Some(host) => check_host_file(content, host, file, held),
        None if !content.available() => return None,
        None => check_disk_file(content, &path, file, held),
    };
    if bad.is_empty() {
        return None;
    }
    let bytes = bad
        .iter()
        .filter_map(|i| content.manifest.chunk(*i))
        .map(|c| u64::from(c.len))
        .sum();
    Some(FileHealth {
        file: entry.path.to_string(),
        path,
        chunks: bad,
        bytes,
        damage,
        repaired: false,
        error: None,
    })
}

/// The chunks of `held` that do not verify in the file on disk at `path`, and why.
fn check_disk_file(
    content: &Content,
    path: &std::path::Path,
    file: usize,
    held: Vec<u64>,
) -> (Vec<u64>, Damage) {
    match std::fs::File::open(path) {
        Err(_) => (held, Damage::Missing),
        Ok(f) => {
            let mut buf = Vec::new();
            let bad: Vec<u64> = held
                .into_iter()
                .filter(|&i| {
                    let Some(c) = content.manifest.chunk(i) else {
                        return false;
                    };
                    buf.resize(c.len as usize, 0);
                    f.read_exact_at(&mut buf, c.offset).is_err() || !c.verify(&buf)
                })
                .collect();
            let changed = content
                .stamp(file)
                .is_some_and(|was| Stamp::of(path) != Some(was));
            (
                bad,
                if changed {
                    Damage::Changed
                } else {
                    Damage::Corrupt
                },
            )
        }
    }
}

/// The chunks of `held` that do not verify in file `file` as the host reads it, and why: a file
/// the host cannot read is missing; one of another size, or whose bytes differ, changed.
fn check_host_file(
    content: &Content,
    host: &Hosted,
    file: usize,
    held: Vec<u64>,
) -> (Vec<u64>, Damage) {
    let size = content.manifest.files().get(file).map(|f| f.size);
    match host.size(file) {
        Err(_) => (held, Damage::Missing),
        Ok(now) if Some(now) != size => (held, Damage::Changed),
        Ok(_) => {
            let bad = held
                .into_iter()
                .filter(|&i| {
                    content.manifest.chunk(i).is_some_and(|c| {
                        host.read_exact(file, c.offset, c.len as usize)
                            .map_or(true, |bytes| !c.verify(&bytes))
                    })
                })
                .collect();
            (bad, Damage::Changed)
        }
    }
}
