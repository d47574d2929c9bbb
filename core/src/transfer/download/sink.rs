//! The writer side of a download: chunks arrive in pieces of at most [`PIECE`] bytes (so memory
//! does not grow with the share's chunk size), each written into its `.part` file (at most
//! [`OPEN_FILES`] open at once) as it comes and hashed on the way; a chunk counts once its last
//! piece makes its hash match (one that does not is fetched again over what it left), and what
//! counts goes to `durable.rs` in batches. Received chunks not yet recorded stay within
//! [`REFETCH_BOUND`] (or two chunks, when chunks are larger), which is all a crash can cost.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::TrySendError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tokio::sync::{mpsc, watch};

use super::durable::{Batch, Finished, SyncThread, Syncer, start_syncer};
use super::handle::{PeerBytes, Progress, Status};
use super::plan::{FilePlan, Plan};
use super::schedule::Sched;
use super::{DownloadError, Job};
use crate::transfer::Manifest;
use crate::transfer::dest::Dest;
use crate::transfer::library::Content;
use crate::transfer::names::NameChange;
use crate::transfer::service::Shared;
use crate::transfer::tree::ChunkHasher;

/// How the writer talks with the coordinator: feedback, the shared schedule, the buffer pool.
pub(super) struct Links {
    pub(super) feedback: mpsc::UnboundedSender<Feedback>,
    pub(super) sched: Arc<Mutex<Sched>>,
    pub(super) pool: Pool,
}

/// Received chunks not yet recorded (in batches and on their way to the writer) never exceed this:
/// it is the most a crash makes a download fetch twice.
pub const REFETCH_BOUND: u64 = 4 * 1024 * 1024;
/// The most bytes of a chunk that travel to the writer at once.
pub(super) const PIECE: u32 = 256 * 1024;
/// Pieces queued between the providers' streams and the writer.
pub(super) const QUEUED_PIECES: usize = 2;
/// Bytes queued between the providers' streams and the writer, at most.
pub(super) const QUEUED_BYTES: u64 = QUEUED_PIECES as u64 * PIECE as u64;
/// Piece buffers kept for reuse.
const POOL_BUFFERS: usize = 4;
/// Files the writer keeps open at once (the least recently written is closed past this), so a
/// share of many small files never runs out of descriptors.
const OPEN_FILES: usize = 32;

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
    /// Files whose final name was taken while they were fetched.
    pub(super) renamed: Vec<NameChange>,
}

/// A piece of a chunk as received, on its way to disk: the bytes of chunk `index` from `at`.
pub(super) struct Received {
    pub(super) peer: PeerId,
    pub(super) index: u64,
    pub(super) at: u32,
    pub(super) data: Vec<u8>,
}

/// A chunk whose pieces are arriving from `peer`: how far it came, and its hash so far.
struct Arriving {
    peer: PeerId,
    next: u32,
    hasher: ChunkHasher,
    /// False for a chunk written already (a duplicate): its pieces are counted, never written.
    write: bool,
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
    /// Chunks part-way through their pieces, by the peer sending them.
    arriving: HashMap<u64, Arriving>,
    status: Arc<watch::Sender<Status>>,
    interval: Duration,
    manifest: Arc<Manifest>,
    content: Arc<Content>,
    feedback: mpsc::UnboundedSender<Feedback>,
    open: HashMap<usize, OpenFile>,
    batch: Batch,
    /// A batch is handed over before it grows past this many bytes.
    batch_limit: u64,
    syncer: Option<SyncThread>,
    pool: Pool,
    done_bytes: u64,
    total_bytes: u64,
    report: SinkReport,
    per_peer: HashMap<PeerId, u64>,
    started: Instant,
    last_event: Option<Instant>,
    dest: Arc<Dest>,
    /// Files with an open handle, least recently opened first.
    recent: VecDeque<usize>,
    /// Where the syncer reports names taken while files were fetched.
    renamed: Arc<Mutex<Vec<NameChange>>>,
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
        let renamed = Arc::new(Mutex::new(Vec::new()));
        let syncer = Syncer {
            store: s.store.clone(),
            dl,
            manifest: manifest.clone(),
            content: content.clone(),
            dest: plan.dest.clone(),
            claims: s.downloads.claims(),
            name_max: plan.name_max,
            renamed: renamed.clone(),
        };
        let (batch_limit, syncer) = start_syncer(syncer, manifest.chunk_size(), &feedback);
        Self {
            sched,
            written: BTreeSet::new(),
            arriving: HashMap::new(),
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
            dest: plan.dest.clone(),
            recent: VecDeque::new(),
            renamed,
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
                self.report.renamed =
                    std::mem::take(&mut *self.renamed.lock().unwrap_or_else(|p| p.into_inner()));
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

    /// Takes one piece: written where it goes (unless its chunk is written already) and hashed;
    /// the last piece of a chunk settles it. A first piece from another peer than the one a
    /// chunk was arriving from takes the chunk over (the other's answer no longer counts: its
    /// peer left, or the endgame asked twice), so a chunk's bytes on disk are always one peer's.
    fn accept(&mut self, piece: Received) -> Result<(), Stop> {
        let Received {
            peer,
            index,
            at,
            data,
        } = piece;
        self.report.fetched += data.len() as u64;
        let Some(c) = self.manifest.chunk(index) else {
            self.pool.give(data);
            return Ok(());
        };
        if at == 0 {
            let arriving = Arriving {
                peer,
                next: 0,
                hasher: ChunkHasher::new(c.offset, c.whole_file),
                write: !self.written.contains(&index),
            };
            if let Some(old) = self.arriving.insert(index, arriving)
                && old.peer != peer
            {
                self.sched
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .unrequest(&old.peer, index);
            }
        }
        let Some(arriving) = self.arriving.get_mut(&index).filter(|a| {
            a.peer == peer && a.next == at && at as usize + data.len() <= c.len as usize
        }) else {
            // A piece of an answer that no longer counts.
            self.pool.give(data);
            return Ok(());
        };
        arriving.hasher.update(&data);
        arriving.next += data.len() as u32;
        let (write, last) = (arriving.write, arriving.next >= c.len);
        if write {
            self.write_piece(c.file, c.offset + u64::from(at), &data)?;
        }
        self.pool.give(data);
        if !last {
            return Ok(());
        }
        let Some(arriving) = self.arriving.remove(&index) else {
            return Ok(());
        };
        if !write || self.written.contains(&index) {
            self.settle(index);
            return Ok(());
        }
        if blake3::Hash::from(arriving.hasher.finalize()) != blake3::Hash::from(c.hash) {
            self.report.rejected += u64::from(c.len);
            let _ = self.feedback.send(Feedback::Bad { peer, index });
            return Ok(());
        }
        self.chunk_written(peer, c.index, c.file, u64::from(c.len))
    }

    /// Writes `data` at `offset` of file `file`'s `.part`.
    fn write_piece(&mut self, file: usize, offset: u64, data: &[u8]) -> Result<(), Stop> {
        let Some(handle) = self.handle_for(file)? else {
            return Ok(());
        };
        let Some(open) = self.open.get(&file) else {
            return Ok(());
        };
        handle
            .write_all_at(data, offset)
            .map_err(|source| DownloadError::Io {
                path: self.dest.join(&open.plan.part_rel),
                source,
            })?;
        Ok(())
    }

    /// Chunk `index` of file `file` (`len` bytes, from `peer`) is verified and on disk.
    fn chunk_written(
        &mut self,
        peer: PeerId,
        index: u64,
        file: usize,
        len: u64,
    ) -> Result<(), Stop> {
        let Some(handle) = self.handle_for(file)? else {
            return Ok(());
        };
        let Some(open) = self.open.get_mut(&file) else {
            return Ok(());
        };
        open.left = open.left.saturating_sub(1);
        let finished = open.left == 0;
        self.batch.touch(file, &open.plan.part_rel, &handle);
        // Verified and written: served to the swarm at once, before it is durable here.
        self.content.add(&[index]);
        self.written.insert(index);
        self.settle(index);
        self.batch.chunks.push(index);
        self.batch.bytes += len;
        self.done_bytes += len;
        *self.per_peer.entry(peer).or_default() += len;
        if finished {
            self.finished(file);
        }
        if self.batch.bytes + u64::from(self.manifest.chunk_size()) > self.batch_limit {
            self.hand_over(true)?;
        }
        self.progress(false);
        Ok(())
    }

    /// The open handle of file `index`'s `.part` (created on first use, never through a link),
    /// closing the least recently written file past [`OPEN_FILES`]; `None` when the file is not
    /// one this run writes.
    fn handle_for(&mut self, index: usize) -> Result<Option<Arc<File>>, Stop> {
        let size = self.manifest.files().get(index).map_or(0, |f| f.size);
        let Some(file) = self.open.get_mut(&index) else {
            return Ok(None);
        };
        if let Some(h) = &file.handle {
            return Ok(Some(h.clone()));
        }
        let rel = &file.plan.part_rel;
        let opened = match self.dest.write_existing(rel) {
            Err(crate::transfer::dest::DestError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && !file.plan.in_place() =>
            {
                self.dest.create_new(rel)
            }
            other => other,
        };
        let f = opened.map_err(DownloadError::from)?;
        f.set_len(size).map_err(|source| DownloadError::Io {
            path: self.dest.join(rel),
            source,
        })?;
        let h = Arc::new(f);
        file.handle = Some(h.clone());
        self.recent.push_back(index);
        while self.recent.len() > OPEN_FILES {
            if let Some(old) = self.recent.pop_front()
                && let Some(f) = self.open.get_mut(&old)
            {
                f.handle = None;
            }
        }
        Ok(Some(h))
    }

    /// Moves a file whose chunks are all written to the batch, to be renamed once durable.
    fn finished(&mut self, file: usize) {
        self.recent.retain(|i| *i != file);
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
        let Some(SyncThread { batches, .. }) = &self.syncer else {
            return Err(Stop::SyncFailed);
        };
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
        Ok(())
    }

    /// Waits until every handed-over batch is durable; false if syncing failed.
    fn close_syncer(&mut self) -> bool {
        match self.syncer.take() {
            Some(SyncThread { batches, thread }) => {
                drop(batches);
                thread.join().unwrap_or(false)
            }
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
