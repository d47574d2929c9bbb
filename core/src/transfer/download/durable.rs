//! Making a download's progress durable in batches: the files written are synced (one `syncfs`
//! for a batch of many small files on Linux and Android), their chunks recorded in SQLite, then
//! the finished files checked (those resumed or repaired, read back whole) and renamed into place
//! without ever replacing another file. Batches are synced on a thread of their own, so the disk
//! flush overlaps with receiving.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::DownloadError;
use super::plan::{FilePlan, same_file};
use super::registry::Claims;
use super::sink::{Feedback, QUEUED_BYTES, REFETCH_BOUND};
use crate::store::Store;
use crate::transfer::dest::{Dest, DestError, Entry};
use crate::transfer::library::Content;
use crate::transfer::names::{NameChange, suffixed};
use crate::transfer::{FileEntry, Manifest, state};

/// A file whose chunks are all written, to rename into place once they are durable.
pub(super) struct Finished {
    pub(super) file: usize,
    pub(super) plan: FilePlan,
    pub(super) recheck: bool,
}

/// A file a batch wrote to: its index, where it is, and its handle while the batch keeps one.
pub(super) type Touched = (usize, Vec<String>, Option<Arc<File>>);

/// What becomes durable together: the chunks, and the files they were written to (with their
/// open handle while the batch holds few files; a batch of many is flushed without them).
#[derive(Default)]
pub(super) struct Batch {
    pub(super) chunks: Vec<u64>,
    pub(super) bytes: u64,
    pub(super) files: Vec<Touched>,
    /// The indices in `files`: one lookup per chunk, whatever the batch holds.
    touched: HashSet<usize>,
    pub(super) finished: Vec<Finished>,
}

impl Batch {
    pub(super) fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.finished.is_empty()
    }

    /// Adds file `index` (written at `rel`) to what this batch flushes.
    pub(super) fn touch(&mut self, index: usize, rel: &[String], handle: &Arc<File>) {
        if !self.touched.insert(index) {
            return;
        }
        let keep = self.files.len() + 1 < SYNCFS_FILES;
        if !keep {
            // Many files: flushed by file system or reopened one by one, never all held open.
            for (_, _, h) in &mut self.files {
                *h = None;
            }
        }
        self.files
            .push((index, rel.to_vec(), keep.then(|| handle.clone())));
    }
}

/// Makes batches durable: sync, record, rename.
pub(super) struct Syncer {
    pub(super) store: Arc<Store>,
    pub(super) dl: i64,
    pub(super) manifest: Arc<Manifest>,
    pub(super) content: Arc<Content>,
    pub(super) dest: Arc<Dest>,
    pub(super) claims: Arc<Claims>,
    /// The longest name the destination holds.
    pub(super) name_max: usize,
    /// Files whose final name was taken meanwhile (read once the syncer is done).
    pub(super) renamed: Arc<Mutex<Vec<NameChange>>>,
}

impl Syncer {
    pub(super) fn sync(&self, batch: Batch) -> Result<(), DownloadError> {
        sync_files(&self.dest, &batch.files)?;
        state::record_chunks(&self.store, self.dl, &batch.chunks)?;
        let mut dirs = BTreeSet::new();
        for done in batch.finished {
            if let Some((_, dir)) = done.plan.final_rel.split_last() {
                dirs.insert(dir.to_vec());
            }
            self.finish(done)?;
        }
        for dir in dirs {
            self.dest.sync_folder(&dir);
        }
        Ok(())
    }

    /// Renames a complete `.part` file into place. Its chunks verified on arrival and add up to
    /// the file hash; one with chunks from an earlier run (or repaired in place) is read back and
    /// checked whole first.
    fn finish(&self, done: Finished) -> Result<(), DownloadError> {
        let entry = &self.manifest.files()[done.file];
        if entry.size == 0 {
            // Created in place by the plan: nothing to check or move.
            let at = self.dest.join(&done.plan.final_rel);
            self.content.relocate(done.file, at);
            return Ok(());
        }
        let part = &done.plan.part_rel;
        if done.recheck && !same_file(&self.dest, part, entry.size, &entry.hash)? {
            let chunks: Vec<u64> = self.manifest.chunks_of(done.file).collect();
            state::unrecord_chunks(&self.store, self.dl, &chunks)?;
            return Err(DownloadError::Io {
                path: self.dest.join(part),
                source: std::io::Error::other(
                    "the file does not verify whole; its chunks will be fetched again",
                ),
            });
        }
        let at = if done.plan.in_place() {
            done.plan.final_rel.clone()
        } else {
            self.rename_into_place(&done.plan, entry)?
        };
        self.content.relocate(done.file, self.dest.join(&at));
        Ok(())
    }

    /// Renames a `.part` to its final name, never over another file: a name taken since the
    /// plan (by another program, another node) moves on to the next free `name (n)`.
    fn rename_into_place(
        &self,
        plan: &FilePlan,
        entry: &FileEntry,
    ) -> Result<Vec<String>, DownloadError> {
        let Some((name, parent)) = plan.final_rel.split_last() else {
            return Err(DownloadError::Exists {
                path: self.dest.join(&plan.final_rel),
            });
        };
        let name_max = self.name_max;
        for n in 0..1000 {
            let mut to = parent.to_vec();
            to.push(if n == 0 {
                name.clone()
            } else {
                suffixed(name, n, name_max)
            });
            if n > 0 && !self.claims.claim(&self.dest.join(&to), self.dl) {
                continue;
            }
            match self.dest.rename_new(&plan.part_rel, &to) {
                Ok(()) => {
                    if n > 0 {
                        self.renamed
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(NameChange {
                                path: plan.final_rel.join("/"),
                                saved_as: to.join("/"),
                                reason: "another file took its name while it was fetched".into(),
                            });
                    }
                    return Ok(to);
                }
                Err(DestError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    // The same file, put there by another download of this share: kept.
                    let same = matches!(self.dest.entry(&to)?,
                        Entry::File { size, links: 1 } if size == entry.size)
                        && same_file(&self.dest, &to, entry.size, &entry.hash)?;
                    if same {
                        self.dest.remove(&plan.part_rel)?;
                        return Ok(to);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(DownloadError::Exists {
            path: self.dest.join(&plan.final_rel),
        })
    }
}

/// A batch of this many files or more is flushed with one `syncfs` (Linux, Android).
const SYNCFS_FILES: usize = 4;

/// Flushes written files to disk. A batch of many small files (a photo roll) is flushed with one
/// `syncfs` of the destination's file system on Linux and Android, about twice as fast as a sync
/// per file; elsewhere each file is synced, reopened when its handle was let go.
fn sync_files(dest: &Dest, files: &[Touched]) -> Result<(), DownloadError> {
    let io = |rel: &[String]| {
        let path = dest.join(rel);
        move |source| DownloadError::Io { path, source }
    };
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if files.len() >= SYNCFS_FILES {
        return nix::unistd::syncfs(dest.root()).map_err(|e| io(&[])(std::io::Error::from(e)));
    }
    for (_, rel, file) in files {
        match file {
            Some(f) => f.sync_data().map_err(io(rel))?,
            None => dest.read(rel)?.sync_data().map_err(io(rel))?,
        }
    }
    Ok(())
}

/// The batch size and the sync thread. Two batches are in flight (one syncing on the thread, one
/// filling), each at most half of what [`REFETCH_BOUND`] leaves beside the writer's queue and at
/// least one chunk: with chunks over 1.5 MiB, two chunks and the queue are what a crash can cost.
pub(super) fn start_syncer(
    syncer: Syncer,
    chunk_size: u32,
    feedback: &mpsc::UnboundedSender<Feedback>,
) -> (u64, SyncThread) {
    let limit = ((REFETCH_BOUND - QUEUED_BYTES) / 2).max(u64::from(chunk_size));
    let (batches, rx) = sync_channel::<Batch>(0);
    let fb = feedback.clone();
    let thread = std::thread::spawn(move || {
        for batch in rx {
            if let Err(e) = syncer.sync(batch) {
                let _ = fb.send(Feedback::Fatal(e));
                return false;
            }
        }
        true
    });
    (limit, SyncThread { batches, thread })
}

/// The thread that makes batches durable, and the way batches go to it.
pub(super) struct SyncThread {
    pub(super) batches: SyncSender<Batch>,
    pub(super) thread: std::thread::JoinHandle<bool>,
}
