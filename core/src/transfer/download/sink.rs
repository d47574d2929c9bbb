//! The writer side of a download: verifies each chunk, writes it into its `.part` file, and makes
//! progress durable in batches — the files are synced, their chunks recorded in SQLite, then the
//! finished files renamed into place. Syncing runs on a thread of its own, so the disk flush
//! overlaps with receiving and verifying; received chunks not yet recorded stay within
//! [`REFETCH_BOUND`], which is all a crash can cost.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tokio::sync::{mpsc, watch};

use super::handle::{PeerBytes, Progress, Status};
use super::plan::{FilePlan, Plan, same_file};
use super::schedule::Sched;
use super::{DownloadError, Job, io_err};
use crate::store::Store;
use crate::transfer::library::Content;
use crate::transfer::service::Shared;
use crate::transfer::{Manifest, state};

/// How the writer talks with the coordinator: feedback, the shared schedule, the buffer pool.
pub(super) struct Links {
    pub(super) feedback: mpsc::UnboundedSender<Feedback>,
    pub(super) sched: Arc<Mutex<Sched>>,
    pub(super) pool: Pool,
}

/// Received chunks not yet recorded (in batches and on their way to the writer) never exceed this:
/// it is the most a crash makes a download fetch twice.
pub const REFETCH_BOUND: u64 = 4 * 1024 * 1024;
/// Chunks queued between the providers' streams and the writer.
pub(super) const QUEUED_CHUNKS: usize = 2;
/// Chunk buffers kept for reuse.
const POOL_BUFFERS: usize = 4;

/// Buffers handed back by the writer for the next chunks, so a transfer does not allocate per chunk.
#[derive(Clone, Default)]
pub(super) struct Pool(Arc<Mutex<Vec<Vec<u8>>>>);

impl Pool {
    /// A zeroed buffer of `len` bytes, reused when one is free.
    pub(super) fn take(&self, len: usize) -> Vec<u8> {
        let buf = self.0.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut buf = buf.unwrap_or_default();
        buf.resize(len, 0);
        buf
    }

    fn give(&self, buf: Vec<u8>) {
        let mut pool = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL_BUFFERS {
            pool.push(buf);
        }
    }
}

/// What the writer tells the coordinator.
pub(super) enum Feedback {
    /// `peer` sent a chunk that failed verification.
    Bad { peer: PeerId, index: u64 },
    /// Every selected file is in place and recorded.
    Done(SinkReport),
    /// Writing cannot go on.
    Fatal(DownloadError),
}

/// Counters of one run of the writer.
#[derive(Default)]
pub(super) struct SinkReport {
    pub(super) fetched: u64,
    pub(super) rejected: u64,
    pub(super) peers: Vec<PeerBytes>,
}

/// A chunk as received, on its way to verification and disk.
pub(super) struct Received {
    pub(super) peer: PeerId,
    pub(super) index: u64,
    pub(super) data: Vec<u8>,
}

/// A selected file not yet in place.
struct OpenFile {
    plan: FilePlan,
    /// Its chunks still missing.
    left: u64,
    handle: Option<Arc<File>>,
    /// Some of its chunks were written by an earlier run: it is checked whole before the rename.
    resumed: bool,
}

/// A file whose chunks are all written, to rename into place once they are durable.
struct Finished {
    file: usize,
    plan: FilePlan,
    recheck: bool,
}

/// What becomes durable together.
#[derive(Default)]
struct Batch {
    chunks: Vec<u64>,
    bytes: u64,
    files: Vec<(usize, PathBuf, Arc<File>)>,
    finished: Vec<Finished>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.finished.is_empty()
    }
}

/// Makes batches durable: sync, record, rename.
struct Syncer {
    store: Arc<Store>,
    dl: i64,
    manifest: Arc<Manifest>,
    content: Arc<Content>,
}

impl Syncer {
    fn sync(&self, batch: Batch) -> Result<(), DownloadError> {
        sync_files(&batch.files)?;
        state::record_chunks(&self.store, self.dl, &batch.chunks)?;
        let mut dirs = BTreeSet::new();
        for done in batch.finished {
            if let Some(dir) = done.plan.final_path.parent() {
                dirs.insert(dir.to_path_buf());
            }
            self.finish(done)?;
        }
        for dir in dirs {
            let _ = File::open(&dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    /// Renames a complete `.part` file into place. Its chunks verified on arrival and add up to
    /// the file hash; one with chunks from an earlier run is read back and checked whole first.
    fn finish(&self, done: Finished) -> Result<(), DownloadError> {
        let entry = &self.manifest.files()[done.file];
        if entry.size == 0 {
            // Created in place by the plan: nothing to check or move.
            self.content.relocate(done.file, done.plan.final_path);
            return Ok(());
        }
        let part = &done.plan.part_path;
        if done.recheck && !same_file(part, entry.size, &entry.hash).map_err(io_err(part))? {
            let chunks: Vec<u64> = self.manifest.chunks_of(done.file).collect();
            state::unrecord_chunks(&self.store, self.dl, &chunks)?;
            return Err(DownloadError::Io {
                path: part.clone(),
                source: std::io::Error::other(
                    "the file does not verify whole; its chunks will be fetched again",
                ),
            });
        }
        fs::rename(part, &done.plan.final_path).map_err(io_err(&done.plan.final_path))?;
        self.content.relocate(done.file, done.plan.final_path);
        Ok(())
    }
}

/// A batch of this many files or more is flushed with one `syncfs` (Linux, Android).
const SYNCFS_FILES: usize = 4;

/// Flushes written files to disk. A batch of many small files (a photo roll) is flushed with one
/// `syncfs` per filesystem on Linux and Android, about twice as fast as a sync per file.
fn sync_files(files: &[(usize, PathBuf, Arc<File>)]) -> Result<(), DownloadError> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if files.len() >= SYNCFS_FILES {
        use std::os::unix::fs::MetadataExt;
        let mut synced = BTreeSet::new();
        for (_, path, file) in files {
            let dev = file.metadata().map_err(io_err(path))?.dev();
            if synced.insert(dev) {
                nix::unistd::syncfs(file.as_ref())
                    .map_err(|e| io_err(path)(std::io::Error::from(e)))?;
            }
        }
        return Ok(());
    }
    for (_, path, file) in files {
        file.sync_data().map_err(io_err(path))?;
    }
    Ok(())
}

/// The selected files not yet in place, with the chunks each still misses, and the bytes of
/// every selected file.
fn open_files(plan: &Plan, manifest: &Manifest) -> (HashMap<usize, OpenFile>, u64) {
    let missing: BTreeSet<u64> = plan.missing.iter().copied().collect();
    let mut open = HashMap::new();
    let mut total_bytes = 0;
    for f in &plan.files {
        total_bytes += manifest.files()[f.index].size;
        if f.done {
            continue;
        }
        let chunks = manifest.chunks_of(f.index);
        let all = chunks.end - chunks.start;
        let left = chunks.filter(|i| missing.contains(i)).count() as u64;
        let file = OpenFile {
            plan: f.clone(),
            left,
            handle: None,
            resumed: left < all,
        };
        open.insert(f.index, file);
    }
    (open, total_bytes)
}

/// The batch size and where batches go: with chunks of up to 1 MiB two batches are in flight
/// (one syncing on a thread of its own, one filling) within [`REFETCH_BOUND`]; larger chunks are
/// synced one at a time by the writer.
fn start_syncer(
    syncer: Syncer,
    chunk_size: u32,
    feedback: &mpsc::UnboundedSender<Feedback>,
) -> (u64, SyncTo) {
    let chunk = u64::from(chunk_size);
    let pipelined = (REFETCH_BOUND - QUEUED_CHUNKS as u64 * chunk.min(REFETCH_BOUND)) / 2;
    if pipelined < chunk {
        return (chunk, SyncTo::Inline(syncer));
    }
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
    (pipelined, SyncTo::Thread { batches, thread })
}

/// Where batches go: synced by the writer itself, or handed to the sync thread.
enum SyncTo {
    Inline(Syncer),
    Thread {
        batches: SyncSender<Batch>,
        thread: std::thread::JoinHandle<bool>,
    },
}

/// Why the writer stops early.
enum Stop {
    /// Report this error.
    Fatal(DownloadError),
    /// The sync thread failed and reported it already.
    SyncFailed,
}

impl From<DownloadError> for Stop {
    fn from(e: DownloadError) -> Self {
        Stop::Fatal(e)
    }
}

/// The writer: verifies, writes, batches, reports progress. Runs on its own thread.
pub(super) struct Sink {
    sched: Arc<Mutex<Sched>>,
    /// Chunks written in this run: a chunk fetched twice (requeued while in flight) counts once.
    written: BTreeSet<u64>,
    status: Arc<watch::Sender<Status>>,
    interval: Duration,
    manifest: Arc<Manifest>,
    content: Arc<Content>,
    feedback: mpsc::UnboundedSender<Feedback>,
    open: HashMap<usize, OpenFile>,
    batch: Batch,
    /// A batch is handed over before it grows past this many bytes.
    batch_limit: u64,
    syncer: Option<SyncTo>,
    pool: Pool,
    done_bytes: u64,
    total_bytes: u64,
    report: SinkReport,
    per_peer: HashMap<PeerId, u64>,
    started: Instant,
    last_event: Option<Instant>,
}

impl Sink {
    /// A writer for the job's plan.
    pub(super) fn new(s: &Shared, job: &Job<'_>, links: Links) -> Self {
        let Job {
            manifest,
            plan,
            content,
            dl,
            status,
            ..
        } = job;
        let (manifest, content, dl) = ((*manifest).clone(), (*content).clone(), *dl);
        let Links {
            feedback,
            sched,
            pool,
        } = links;
        let (open, total_bytes) = open_files(plan, &manifest);
        let done_bytes = total_bytes
            - plan
                .missing
                .iter()
                .filter_map(|i| manifest.chunk(*i))
                .map(|c| u64::from(c.len))
                .sum::<u64>();
        let syncer = Syncer {
            store: s.store.clone(),
            dl,
            manifest: manifest.clone(),
            content: content.clone(),
        };
        let (batch_limit, syncer) = start_syncer(syncer, manifest.chunk_size(), &feedback);
        Self {
            sched,
            written: BTreeSet::new(),
            status: (*status).clone(),
            interval: s.config.progress_interval,
            manifest,
            content,
            feedback,
            open,
            batch: Batch::default(),
            batch_limit,
            syncer: Some(syncer),
            pool,
            done_bytes,
            total_bytes,
            report: SinkReport::default(),
            per_peer: HashMap::new(),
            started: Instant::now(),
            last_event: None,
        }
    }

    /// Writes chunks until every file is in place or the input closes (cancel, failure).
    pub(super) fn run(mut self, mut chunks: mpsc::Receiver<Received>) {
        let result = self.drive(&mut chunks);
        // What was written is made durable whatever happened, so a retry does not fetch it again.
        let flushed = self.hand_over(true);
        let synced = self.close_syncer();
        match (result, flushed, synced) {
            (Err(Stop::Fatal(e)), _, _) | (_, Err(Stop::Fatal(e)), _) => {
                let _ = self.feedback.send(Feedback::Fatal(e));
            }
            (Ok(true), Ok(()), true) => {
                self.progress(true);
                self.report.peers = self.peers();
                let report = std::mem::take(&mut self.report);
                let _ = self.feedback.send(Feedback::Done(report));
            }
            // Input closed early (the coordinator decides why), or the sync thread reported.
            _ => {}
        }
    }

    /// Ok(true) when every selected file is written.
    fn drive(&mut self, chunks: &mut mpsc::Receiver<Received>) -> Result<bool, Stop> {
        // Files whose chunks were all on disk already (resumed) are finalised first.
        let ready: Vec<usize> = self
            .open
            .iter()
            .filter(|(_, f)| f.left == 0)
            .map(|(i, _)| *i)
            .collect();
        for file in ready {
            self.finished(file);
        }
        while !self.open.is_empty() {
            let chunk = match chunks.try_recv() {
                Ok(chunk) => chunk,
                Err(mpsc::error::TryRecvError::Empty) => {
                    // Nothing waiting: a good moment to hand over what is written.
                    self.hand_over(false)?;
                    match chunks.blocking_recv() {
                        Some(chunk) => chunk,
                        None => return Ok(false),
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => return Ok(false),
            };
            self.accept(chunk)?;
        }
        Ok(true)
    }

    fn accept(&mut self, chunk: Received) -> Result<(), Stop> {
        let Received { peer, index, data } = chunk;
        self.report.fetched += data.len() as u64;
        let Some(c) = self.manifest.chunk(index) else {
            return Ok(());
        };
        if self.written.contains(&index) {
            self.settle(index);
            self.pool.give(data);
            return Ok(());
        }
        if !c.verify(&data) {
            self.report.rejected += data.len() as u64;
            let _ = self.feedback.send(Feedback::Bad { peer, index });
            self.pool.give(data);
            return Ok(());
        }
        let Some(file) = self.open.get_mut(&c.file) else {
            return Ok(());
        };
        let handle = match &file.handle {
            Some(h) => h.clone(),
            None => {
                let path = &file.plan.part_path;
                let size = self.manifest.files()[c.file].size;
                let f = File::options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)
                    .map_err(io_err(path))?;
                f.set_len(size).map_err(io_err(path))?;
                let h = Arc::new(f);
                file.handle = Some(h.clone());
                h
            }
        };
        handle
            .write_all_at(&data, c.offset)
            .map_err(io_err(&file.plan.part_path))?;
        file.left = file.left.saturating_sub(1);
        let finished = file.left == 0;
        if !self.batch.files.iter().any(|(i, _, _)| *i == c.file) {
            let path = file.plan.part_path.clone();
            self.batch.files.push((c.file, path, handle));
        }
        let len = data.len() as u64;
        self.pool.give(data);
        // Verified and written: served to the swarm at once, before it is durable here.
        self.content.add(&[index]);
        self.written.insert(index);
        self.settle(index);
        self.batch.chunks.push(index);
        self.batch.bytes += len;
        self.done_bytes += len;
        *self.per_peer.entry(peer).or_default() += len;
        if finished {
            self.finished(c.file);
        }
        if self.batch.bytes + u64::from(self.manifest.chunk_size()) > self.batch_limit {
            self.hand_over(true)?;
        }
        self.progress(false);
        Ok(())
    }

    /// Moves a file whose chunks are all written to the batch, to be renamed once durable.
    fn finished(&mut self, file: usize) {
        if let Some(f) = self.open.remove(&file) {
            self.batch.finished.push(Finished {
                file,
                plan: f.plan,
                recheck: f.resumed,
            });
        }
    }

    /// Hands the current batch to the syncer; without `wait` only if the sync thread is free.
    fn hand_over(&mut self, wait: bool) -> Result<(), Stop> {
        if self.batch.is_empty() {
            return Ok(());
        }
        match &self.syncer {
            Some(SyncTo::Inline(syncer)) => syncer.sync(std::mem::take(&mut self.batch))?,
            Some(SyncTo::Thread { batches, .. }) => {
                let batch = std::mem::take(&mut self.batch);
                if wait {
                    batches.send(batch).map_err(|_| Stop::SyncFailed)?;
                } else {
                    match batches.try_send(batch) {
                        Ok(()) => {}
                        Err(TrySendError::Full(batch)) => self.batch = batch,
                        Err(TrySendError::Disconnected(_)) => return Err(Stop::SyncFailed),
                    }
                }
            }
            None => return Err(Stop::SyncFailed),
        }
        Ok(())
    }

    /// Waits until every handed-over batch is durable; false if syncing failed.
    fn close_syncer(&mut self) -> bool {
        match self.syncer.take() {
            Some(SyncTo::Thread { batches, thread }) => {
                drop(batches);
                thread.join().unwrap_or(false)
            }
            Some(SyncTo::Inline(_)) => true,
            None => false,
        }
    }

    /// Bytes kept from each provider, largest first.
    fn peers(&self) -> Vec<PeerBytes> {
        let mut peers: Vec<PeerBytes> = self
            .per_peer
            .iter()
            .map(|(p, b)| PeerBytes {
                peer: *p,
                bytes: *b,
            })
            .collect();
        peers.sort_by_key(|p| std::cmp::Reverse(p.bytes));
        peers
    }

    /// The chunk is written: no longer in flight for the scheduler.
    fn settle(&self, index: u64) {
        self.sched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .settle(index);
    }

    fn progress(&mut self, last: bool) {
        let now = Instant::now();
        if !last
            && self
                .last_event
                .is_some_and(|t| now.duration_since(t) < self.interval)
        {
            return;
        }
        self.last_event = Some(now);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = (self.report.fetched as f64 / secs) as u64;
        let left = self.total_bytes.saturating_sub(self.done_bytes);
        let progress = Progress {
            done: self.done_bytes,
            total: self.total_bytes,
            received: self.report.fetched,
            rate,
            eta_secs: (rate > 0).then(|| left / rate),
            peers: self.peers(),
        };
        self.status.send_replace(Status::Running(progress));
    }
}
