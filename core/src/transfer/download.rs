//! Downloading a share: fetch and check the manifest, plan what is missing, pull chunks pipelined
//! from every peer that holds some (the ticket's providers, connected peers, and those found
//! through the swarm), verify each chunk before it is written to a `.part` file, record written
//! chunks in SQLite in durable batches, and rename each file into place once it verifies whole.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{Multiaddr, PeerId};
use serde::Serialize;
use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};

use super::directory::Directory;
use super::library::{Content, Library};
use super::limits::Throttle;
use super::schedule::Sched;
use super::sink::{Feedback, Pool, QUEUED_CHUNKS, Received, Sink, SinkReport};
use super::wire::{self, Request, Response};
use super::worker::{DIAL_TIMEOUT, Ended, Worker, open};
use super::{ContentId, Manifest, ManifestError, PathError, Ticket, join_safe, state};
use crate::events::{Event, PeerBytes};
use crate::net;
use crate::store::Store;

/// How often a download checks whether relayed peers should wait for a direct one.
const PREFER_DIRECT_EVERY: Duration = Duration::from_secs(1);
/// When every provider is gone, the first redial comes after this; the wait doubles up to
/// [`MAX_RECONNECT_BACKOFF`].
const FIRST_RECONNECT: Duration = Duration::from_secs(1);
/// The longest wait between redials of vanished providers.
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(16);
/// A download whose providers are all gone waits this long for one to come back, then fails.
const RECONNECT_FOR: Duration = Duration::from_secs(300);

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
    /// A different file is already where a shared file would go.
    #[error(
        "{path} already exists and differs from the shared file: move it away or pick another destination"
    )]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// Reading or writing the destination failed (a full disk among others); partial data is kept.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
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

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DownloadError + '_ {
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
#[derive(Clone, Debug, PartialEq, Serialize)]
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
    /// Bytes of files already present and identical.
    pub skipped: u64,
    /// Bytes rejected because they failed verification.
    pub rejected: u64,
    /// Bytes per provider in this run.
    pub peers: Vec<PeerBytes>,
    /// Wall time.
    pub secs: f64,
}

/// Running, paused or cancelled (keeping or removing partial data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Fetching.
    Run,
    /// Not requesting anything until resumed.
    Pause,
    /// Stop; keep the partial data for a later resume when `keep`.
    Cancel {
        /// Keep partial data.
        keep: bool,
    },
}

/// One lock per share and destination (see [`Ctx::running`]).
pub type Running = Arc<Mutex<HashMap<(ContentId, PathBuf), Arc<tokio::sync::Mutex<()>>>>>;

/// What the downloader needs from the node.
#[derive(Clone)]
pub struct Ctx {
    /// Dials providers and drops bad ones.
    pub net: mpsc::Sender<net::Command>,
    /// Opens blob streams.
    pub streams: libp2p_stream::Control,
    /// Where progress is recorded.
    pub store: Arc<Store>,
    /// Where verified chunks become servable.
    pub library: Arc<Library>,
    /// Where progress is published.
    pub events: broadcast::Sender<Event>,
    /// Minimum time between progress events (zero: one per chunk).
    pub progress_interval: Duration,
    /// Numbers transfers.
    pub next_transfer: Arc<std::sync::atomic::AtomicU64>,
    /// One lock per share and destination, held by the download running there.
    pub running: Running,
    /// Turns true when the node stops: running downloads record what they wrote and end.
    pub stopping: watch::Receiver<bool>,
    /// Who else holds or fetches each share.
    pub directory: Arc<Directory>,
    /// The node's rate limits.
    pub throttle: Arc<Throttle>,
}

impl Ctx {
    /// Waits until no download runs (they end once [`Ctx::stopping`] turns true), at most until
    /// `deadline`.
    pub async fn wait_idle(&self, deadline: tokio::time::Instant) {
        let slots: Vec<_> = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for slot in slots {
            let _ = tokio::time::timeout_at(deadline, slot.lock()).await;
        }
    }

    /// The lock of downloads of `content` into `dest`.
    fn slot(&self, content: ContentId, dest: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.retain(|_, lock| Arc::strong_count(lock) > 1);
        running
            .entry((content, dest.to_path_buf()))
            .or_default()
            .clone()
    }
}

/// Runs one download to its end.
pub async fn run(
    ctx: Ctx,
    transfer: u64,
    spec: DownloadSpec,
    mut control: watch::Receiver<Control>,
) -> Result<DownloadReport, DownloadError> {
    let started = Instant::now();
    let content_id = spec.ticket.content;
    let providers = connect_providers(&ctx, &spec.ticket).await;

    let encoded = match state::manifest(&ctx.store, &content_id)? {
        Some(m) => m,
        None => fetch_manifest(&ctx, &providers, &content_id).await?,
    };
    let manifest = Arc::new(Manifest::decode_verified(&encoded, &content_id)?);
    state::save_manifest(&ctx.store, &content_id, &encoded)?;
    fs::create_dir_all(&spec.dest).map_err(io_err(&spec.dest))?;
    let dest = spec.dest.canonicalize().map_err(io_err(&spec.dest))?;
    // One run at a time per share and destination: a second one (a node that resumed it at
    // start, and the user asking again) waits, then finds the files in place.
    let slot = ctx.slot(content_id, &dest);
    let _running = slot.lock().await;
    let dl = state::download_id(&ctx.store, &content_id, &dest)?;
    state::set_download_state(&ctx.store, dl, "active")?;
    state::save_download_source(
        &ctx.store,
        dl,
        &spec.ticket.to_string(),
        spec.files.as_deref(),
    )?;

    let plan = Plan::make(&ctx.store, dl, &manifest, &dest, spec.files.as_deref())?;
    let needed: u64 = plan
        .missing
        .iter()
        .filter_map(|i| manifest.chunk(*i))
        .map(|c| u64::from(c.len))
        .sum();
    let available = fs4::available_space(&dest).map_err(io_err(&dest))?;
    if needed > available {
        return Err(DownloadError::NoSpace {
            path: dest,
            needed,
            available,
        });
    }
    plan.prepare(&manifest)?;

    let encoded = Arc::new(encoded);
    let content = match ctx.library.get(&content_id) {
        Some(c) => c,
        None => {
            let c = Arc::new(Content::partial(
                manifest.clone(),
                encoded.clone(),
                plan.locations.clone(),
            ));
            c.add(&plan.done);
            ctx.library.insert(c.clone());
            c
        }
    };

    let report = if plan.missing.is_empty() {
        Ok(SinkReport::default())
    } else {
        fetch(
            &ctx,
            transfer,
            &manifest,
            &plan,
            &content,
            dl,
            &spec.ticket,
            providers,
            &mut control,
        )
        .await
    };
    tracing::debug!(ok = report.is_ok(), "fetched");
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            let cancelled = matches!(e, DownloadError::Cancelled);
            let keep = !matches!(*control.borrow(), Control::Cancel { keep: false });
            if cancelled && !keep {
                plan.remove_parts();
                state::forget_download(&ctx.store, dl)?;
            } else if matches!(e, DownloadError::Node(crate::Error::Stopped)) {
                // Stays `active`: the node resumes it when it starts again.
            } else {
                state::set_download_state(
                    &ctx.store,
                    dl,
                    if cancelled { "cancelled" } else { "failed" },
                )?;
            }
            return Err(e);
        }
    };
    content.set_complete();
    state::set_download_state(&ctx.store, dl, "done")?;
    let bytes: u64 = plan
        .files
        .iter()
        .map(|f| manifest.files()[f.index].size)
        .sum();
    Ok(DownloadReport {
        content: content_id,
        files: plan.files.len(),
        bytes,
        fetched: report.fetched,
        resumed: plan.resumed,
        skipped: plan.skipped,
        rejected: report.rejected,
        peers: report.peers,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// Dials every provider of the ticket; returns those that answered.
pub(crate) async fn connect_providers(ctx: &Ctx, ticket: &Ticket) -> Vec<PeerId> {
    let mut waits = Vec::new();
    for p in &ticket.providers {
        let (tx, rx) = oneshot::channel();
        let cmd = net::Command::Dial {
            peer: Some(p.peer),
            addrs: p.addrs.clone(),
            reply: Some(tx),
        };
        if ctx.net.send(cmd).await.is_ok() {
            waits.push((p.peer, rx));
        }
    }
    let mut up = Vec::new();
    for (peer, rx) in waits {
        match tokio::time::timeout(DIAL_TIMEOUT, rx).await {
            Ok(Ok(Ok(_))) => up.push(peer),
            other => tracing::info!(%peer, ?other, "provider unreachable"),
        }
    }
    up
}

pub(crate) async fn fetch_manifest(
    ctx: &Ctx,
    providers: &[PeerId],
    content: &ContentId,
) -> Result<Vec<u8>, DownloadError> {
    let mut errors = Vec::new();
    for peer in providers {
        // Bounded: a stream can die silently with its connection.
        let attempt = tokio::time::timeout(super::worker::STALL_TIMEOUT, async {
            let mut stream = open(ctx, *peer, content)
                .await?
                .ok_or("does not have this share")?
                .stream;
            wire::write_msg(&mut stream, &Request::Manifest)
                .await
                .map_err(|e| e.to_string())?;
            match wire::read_msg(&mut stream, &mut Vec::new())
                .await
                .map_err(|e| e.to_string())?
            {
                Some(Response::Manifest { len })
                    if u64::from(len) <= super::manifest::MAX_ENCODED_LEN as u64 =>
                {
                    let mut bytes = vec![0; len as usize];
                    stream
                        .read_exact(&mut bytes)
                        .await
                        .map_err(|e| e.to_string())?;
                    let _ = stream.close().await;
                    Ok(bytes)
                }
                other => Err(format!("unexpected answer {other:?}")),
            }
        })
        .await;
        let result = attempt.unwrap_or_else(|_| {
            Err(format!(
                "no manifest within {} s",
                super::worker::STALL_TIMEOUT.as_secs()
            ))
        });
        match result {
            // A manifest that does not hash to the content id is that provider's lie: try the next.
            Ok(bytes) if ContentId::of(&bytes) == *content => return Ok(bytes),
            Ok(_) => errors.push(format!("{peer}: manifest does not match the ticket")),
            Err(e) => errors.push(format!("{peer}: {e}")),
        }
    }
    if errors.is_empty() {
        errors.push("none of the ticket's providers answered".into());
    }
    Err(DownloadError::NoProvider(errors.join("; ")))
}

/// One selected file and where its bytes go.
#[derive(Clone, Debug)]
pub(super) struct FilePlan {
    pub(super) index: usize,
    pub(super) final_path: PathBuf,
    pub(super) part_path: PathBuf,
    pub(super) done: bool,
}

/// What is on disk, what is missing, where everything goes.
pub(super) struct Plan {
    pub(super) files: Vec<FilePlan>,
    dirs: Vec<PathBuf>,
    /// Chunks still to fetch.
    pub(super) missing: Vec<u64>,
    /// Chunks already safely on disk (servable).
    done: Vec<u64>,
    /// Where each manifest file is read from when served.
    locations: Vec<PathBuf>,
    resumed: u64,
    skipped: u64,
}

impl Plan {
    fn make(
        store: &Store,
        dl: i64,
        manifest: &Manifest,
        dest: &Path,
        selection: Option<&[usize]>,
    ) -> Result<Self, DownloadError> {
        // Every path is checked before anything is written.
        let mut locations = Vec::with_capacity(manifest.files().len());
        for f in manifest.files() {
            locations.push(join_safe(dest, &f.path.to_vec())?);
        }
        let dirs = manifest
            .dirs()
            .iter()
            .map(|d| join_safe(dest, &d.to_vec()))
            .collect::<Result<Vec<_>, _>>()?;
        let recorded: BTreeSet<u64> = state::done_chunks(store, dl)?.into_iter().collect();
        let mut plan = Plan {
            files: Vec::new(),
            dirs,
            missing: Vec::new(),
            done: Vec::new(),
            locations: Vec::new(),
            resumed: 0,
            skipped: 0,
        };
        let mut stale = Vec::new();
        for (index, f) in manifest.files().iter().enumerate() {
            let final_path = locations[index].clone();
            let mut part_name = final_path
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_default();
            part_name.push(".part");
            let part_path = final_path.with_file_name(part_name);
            let selected = selection.is_none_or(|s| s.contains(&index));
            let chunks = manifest.chunks_of(index);
            if !selected {
                plan.locations.push(part_path);
                continue;
            }
            let mut done = false;
            if final_path.exists() {
                if same_file(&final_path, f.size, &f.hash).map_err(io_err(&final_path))? {
                    done = true;
                    plan.skipped += f.size;
                    plan.done.extend(chunks.clone());
                } else {
                    return Err(DownloadError::Exists { path: final_path });
                }
            } else if part_path.exists() {
                for i in chunks.clone() {
                    if recorded.contains(&i) {
                        plan.done.push(i);
                        plan.resumed += manifest.chunk(i).map_or(0, |c| u64::from(c.len));
                    } else {
                        plan.missing.push(i);
                    }
                }
            } else {
                // Records without their data (the .part was removed): fetch again.
                stale.extend(chunks.clone().filter(|i| recorded.contains(i)));
                plan.missing.extend(chunks.clone());
            }
            plan.locations.push(if done {
                final_path.clone()
            } else {
                part_path.clone()
            });
            plan.files.push(FilePlan {
                index,
                final_path,
                part_path,
                done,
            });
        }
        state::unrecord_chunks(store, dl, &stale)?;
        Ok(plan)
    }

    /// Creates folders and empty files; `.part` files are created by the writer on first use.
    fn prepare(&self, manifest: &Manifest) -> Result<(), DownloadError> {
        let mut made: BTreeSet<&Path> = BTreeSet::new();
        let parents = self
            .files
            .iter()
            .filter(|f| !f.done)
            .filter_map(|f| f.final_path.parent());
        for d in self.dirs.iter().map(PathBuf::as_path).chain(parents) {
            if made.insert(d) {
                fs::create_dir_all(d).map_err(io_err(d))?;
            }
        }
        for f in self.files.iter().filter(|f| !f.done) {
            if manifest.files()[f.index].size == 0 {
                File::create(&f.final_path).map_err(io_err(&f.final_path))?;
            }
        }
        Ok(())
    }

    fn remove_parts(&self) {
        for f in &self.files {
            let _ = fs::remove_file(&f.part_path);
        }
    }
}

/// Whether the file at `path` has this size and BLAKE3 hash.
pub(super) fn same_file(path: &Path, size: u64, hash: &[u8; 32]) -> io::Result<bool> {
    if fs::metadata(path)?.len() != size {
        return Ok(false);
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(File::open(path)?)?;
    Ok(hasher.finalize().as_bytes() == hash)
}

#[allow(clippy::too_many_arguments)]
async fn fetch(
    ctx: &Ctx,
    transfer: u64,
    manifest: &Arc<Manifest>,
    plan: &Plan,
    content: &Arc<Content>,
    dl: i64,
    ticket: &Ticket,
    providers: Vec<PeerId>,
    control: &mut watch::Receiver<Control>,
) -> Result<SinkReport, DownloadError> {
    // Each download walks the chunks from a place of its own, so downloads that start together ask
    // a seeder for different chunks and then have something to trade.
    let pivot = random_below(manifest.chunk_count());
    let sched = Arc::new(Mutex::new(Sched::new(
        plan.missing.iter().copied(),
        manifest.chunk_count(),
        pivot,
    )));
    let wake = Arc::new(Notify::new());
    let (chunk_tx, chunk_rx) = mpsc::channel::<Received>(QUEUED_CHUNKS);
    let pool = Pool::default();
    let (fb_tx, mut fb_rx) = mpsc::unbounded_channel::<Feedback>();
    let (found_tx, mut found_rx) = mpsc::unbounded_channel::<(PeerId, Vec<Multiaddr>)>();
    let mut arrivals = ctx.directory.arrivals();
    let mut node_events = ctx.events.subscribe();

    let sink = Sink::new(
        ctx,
        transfer,
        manifest.clone(),
        plan,
        content.clone(),
        dl,
        fb_tx.clone(),
        sched.clone(),
        pool.clone(),
    );
    let sink_thread = std::thread::spawn(move || sink.run(chunk_rx));

    let mut workers = tokio::task::JoinSet::new();
    let mut aborts = HashMap::new();
    let worker_control = control.clone();
    let spawn = |peer: PeerId, addrs: Vec<Multiaddr>, workers: &mut tokio::task::JoinSet<_>| {
        let worker = Worker {
            ctx: ctx.clone(),
            peer,
            addrs,
            content: content.id,
            manifest: manifest.clone(),
            sched: sched.clone(),
            wake: wake.clone(),
            chunks: chunk_tx.clone(),
            pool: pool.clone(),
            control: worker_control.clone(),
            found: found_tx.clone(),
        };
        workers.spawn(async move { (peer, worker.run().await) })
    };
    // The ticket's providers, every connected peer (any may hold or fetch the share), and the
    // peers that asked this node for it before this download began.
    let mut candidates = providers;
    let known = ctx.directory.peers_of(&content.id);
    for peer in ctx.directory.connected().into_iter().chain(known) {
        if !candidates.contains(&peer) {
            candidates.push(peer);
        }
    }
    for peer in candidates {
        aborts.insert(peer, spawn(peer, Vec::new(), &mut workers));
    }
    let usable = |peer: &PeerId, aborts: &HashMap<PeerId, _>| {
        !aborts.contains_key(peer)
            && !sched
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .banned
                .contains_key(peer)
    };
    let mut failures: Vec<String> = Vec::new();
    // A swarm prefers direct peers: while a directly connected peer holding the whole share serves
    // this download, peers reached only through a relay (slower, and a volunteer's bandwidth) wait
    // here; they are asked again when that is no longer so, or once a direct path to them opens.
    let mut deferred: HashSet<PeerId> = HashSet::new();
    let mut prefer_direct = tokio::time::interval(PREFER_DIRECT_EVERY);
    // Peers whose relayed connection gave way to a direct one while their worker ran: the worker
    // fails with the relayed connection and starts again at once, on the direct one.
    let mut upgraded: HashSet<PeerId> = HashSet::new();
    // Set while every provider is gone: when to dial them again, and when to give up.
    let mut reconnect: Option<(Instant, Instant, Duration)> = None;
    let mut stopping = ctx.stopping.clone();
    let result = loop {
        if *stopping.borrow_and_update() {
            break Err(DownloadError::Node(crate::Error::Stopped));
        }
        let retry_at = reconnect.map(|(at, _, _)| tokio::time::Instant::from_std(at));
        tokio::select! {
            fb = fb_rx.recv() => match fb {
                Some(Feedback::Bad { peer, index }) => {
                    tracing::warn!(%peer, index, "chunk failed verification: dropping the peer");
                    {
                        let mut s = sched.lock().unwrap_or_else(|p| p.into_inner());
                        s.banned.insert(peer, "sent a corrupt chunk".into());
                        s.leave(&peer);
                    }
                    // Stop its worker now (a read on a closing connection may not wake up) and hang up.
                    if let Some(worker) = aborts.remove(&peer) {
                        worker.abort();
                        failures.push(format!("{peer}: sent a corrupt chunk"));
                    }
                    let _ = ctx.net.send(net::Command::Disconnect(peer)).await;
                    wake.notify_waiters();
                }
                Some(Feedback::Done(report)) => break Ok(report),
                Some(Feedback::Fatal(e)) => break Err(e),
                None => break Err(DownloadError::ProvidersFailed("the writer stopped".into())),
            },
            Some(joined) = workers.join_next(), if !workers.is_empty() => {
                if let Ok((peer, result)) = joined {
                    // A worker already stopped for a corrupt chunk was accounted for then.
                    if aborts.remove(&peer).is_some() {
                        match result {
                            Ok(Ended::NotAProvider) => tracing::debug!(%peer, "not a provider"),
                            Ok(Ended::Done) => {}
                            Err(_) if upgraded.remove(&peer) => {
                                tracing::debug!(%peer, "relayed connection replaced: asking again directly");
                                sched.lock().unwrap_or_else(|p| p.into_inner()).leave(&peer);
                                aborts.insert(peer, spawn(peer, Vec::new(), &mut workers));
                                wake.notify_waiters();
                                continue;
                            }
                            Err(why) => {
                                tracing::info!(%peer, error = %why, "provider failed");
                                failures.push(format!("{peer}: {why}"));
                            }
                        }
                    }
                    sched.lock().unwrap_or_else(|p| p.into_inner()).leave(&peer);
                    wake.notify_waiters();
                }
            }
            // A peer named by another one's hello (peer exchange).
            Some((peer, addrs)) = found_rx.recv() => {
                if usable(&peer, &aborts) {
                    tracing::debug!(%peer, "peer exchange: asking it too");
                    aborts.insert(peer, spawn(peer, addrs, &mut workers));
                }
            }
            // A peer that asked this node for the same share: it holds or fetches it too. (Both
            // channels' senders live as long as the node's context: they never close.)
            arrival = arrivals.recv() => {
                if let Ok((of, peer)) = arrival
                    && of == content.id
                    && usable(&peer, &aborts)
                {
                    tracing::debug!(%peer, "a peer of the swarm arrived: asking it too");
                    aborts.insert(peer, spawn(peer, Vec::new(), &mut workers));
                }
            }
            // A peer connected meanwhile (found by discovery, say): it may hold the share too.
            event = node_events.recv() => {
                if let Ok(Event::PeerConnected { peer, .. } | Event::ConnectionUpgraded { peer, .. }) = event {
                    deferred.remove(&peer);
                    if usable(&peer, &aborts) {
                        aborts.insert(peer, spawn(peer, Vec::new(), &mut workers));
                    } else if aborts.contains_key(&peer) {
                        upgraded.insert(peer);
                    }
                }
            }
            _ = prefer_direct.tick() => {
                let direct_seeder = {
                    let s = sched.lock().unwrap_or_else(|p| p.into_inner());
                    aborts.keys().any(|p| !ctx.directory.is_relayed(p) && s.holds_all(p))
                };
                if direct_seeder {
                    let relayed: Vec<PeerId> =
                        aborts.keys().filter(|p| ctx.directory.is_relayed(p)).copied().collect();
                    for peer in relayed {
                        tracing::info!(%peer, "a direct peer holds the whole share: the relayed one waits");
                        if let Some(worker) = aborts.remove(&peer) {
                            worker.abort();
                        }
                        sched.lock().unwrap_or_else(|p| p.into_inner()).leave(&peer);
                        deferred.insert(peer);
                        wake.notify_waiters();
                    }
                } else {
                    for peer in std::mem::take(&mut deferred) {
                        if usable(&peer, &aborts) {
                            aborts.insert(peer, spawn(peer, Vec::new(), &mut workers));
                        }
                    }
                }
            }
            () = async { if let Some(at) = retry_at { tokio::time::sleep_until(at).await } },
                if retry_at.is_some() => {
                let banned = sched.lock().unwrap_or_else(|p| p.into_inner()).banned.clone();
                for peer in connect_providers(ctx, ticket).await {
                    if !banned.contains_key(&peer) && !aborts.contains_key(&peer) {
                        tracing::info!(%peer, "provider back: resuming");
                        aborts.insert(peer, spawn(peer, Vec::new(), &mut workers));
                    }
                }
                if let Some((at, until, backoff)) = reconnect.as_mut() {
                    *backoff = (*backoff * 2).min(MAX_RECONNECT_BACKOFF);
                    *at = Instant::now() + *backoff;
                    if !workers.is_empty() {
                        reconnect = None;
                    } else if Instant::now() >= *until {
                        failures.push(format!(
                            "none came back within {} s",
                            RECONNECT_FOR.as_secs()
                        ));
                        break Err(DownloadError::ProvidersFailed(failures.join("; ")));
                    }
                }
            }
            changed = stopping.changed() => {
                if changed.is_err() {
                    break Err(DownloadError::Node(crate::Error::Stopped));
                }
            }
            changed = control.changed() => {
                if changed.is_err() || matches!(*control.borrow(), Control::Cancel { .. }) {
                    break Err(DownloadError::Cancelled);
                }
                wake.notify_waiters();
            }
        }
        if workers.is_empty()
            && reconnect.is_none()
            && fb_rx.is_empty()
            && sched
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .nothing_due()
        {
            // Every provider is gone (a lost network, a provider that stopped): dial them again
            // with backoff, unless all of them were dropped for bad data or the node stopped.
            if ctx.net.is_closed() {
                break Err(DownloadError::Node(crate::Error::Stopped));
            }
            let banned = sched
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .banned
                .clone();
            if ticket
                .providers
                .iter()
                .all(|p| banned.contains_key(&p.peer))
            {
                if failures.is_empty() {
                    failures.push("no provider was reachable".into());
                }
                break Err(DownloadError::ProvidersFailed(failures.join("; ")));
            }
            tracing::warn!(
                "every provider is gone: redialling them for up to {} s",
                RECONNECT_FOR.as_secs()
            );
            let now = Instant::now();
            reconnect = Some((now + FIRST_RECONNECT, now + RECONNECT_FOR, FIRST_RECONNECT));
        }
    };
    drop(chunk_tx);
    tracing::debug!(ok = result.is_ok(), "fetch loop ended");
    workers.abort_all();
    while workers.join_next().await.is_some() {}
    tracing::debug!("workers joined");
    // Workers are gone, so the writer's input closes; it records what it wrote and stops.
    let _ = tokio::task::spawn_blocking(move || sink_thread.join()).await;
    result
}

/// A random number below `n` (zero when `n` is zero).
fn random_below(n: u64) -> u64 {
    let mut bytes = [0u8; 8];
    // Without randomness every download starts at the first chunk: slower swarms, still correct.
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes).checked_rem(n).unwrap_or(0)
}
