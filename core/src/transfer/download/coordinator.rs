//! Which peers work for a download, one [`Worker`] each: the ticket's providers, every connected
//! peer, the peers known to hold the share, those named by peer exchange, those that ask this
//! node for the same share, and those that connect while it runs. Peers that sent bad data or
//! broke the protocol are not asked again; relayed peers wait while a direct one holds the whole
//! share; when every provider is gone, the download waits for a holder (shown as
//! [`Status::WaitingForHolder`]): providers and hinted peers are dialled again with backoff, and
//! every peer that connects is asked, for as long as the node's holder wait allows.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::{AbortHandle, JoinError, JoinSet};

use super::handle::Control;
use super::schedule::Sched;
use super::sink::{Feedback, Links, Pool, QUEUED_PIECES, Received, Sink, SinkReport};
use super::worker::{Ended, PeerError, Worker};
use super::{DownloadError, Job, random_below};
use super::{providers, seek};
use crate::net::Change;
use crate::transfer::capability::ShareTag;
use crate::transfer::service::Shared;

/// How often a download checks whether relayed peers should wait for a direct one.
const PREFER_DIRECT_EVERY: Duration = Duration::from_secs(1);
/// When every provider is gone, the first redial comes after this; the wait doubles up to
/// [`MAX_RECONNECT_BACKOFF`].
const FIRST_RECONNECT: Duration = Duration::from_secs(1);
/// The longest wait between redials of vanished providers.
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(16);
/// How long a download whose missing chunks only damaged copies hold keeps redialling providers
/// for a good one.
const RECONNECT_FOR: Duration = Duration::from_secs(300);
/// A download whose missing chunks no peer holds (every copy it reached is damaged there) waits
/// this long for a peer to gain them (a seeder repairing its copy, a peer arriving), then fails
/// when every provider's copy is damaged.
const STUCK_FOR: Duration = Duration::from_secs(5);
/// While stuck for another reason, providers not asked now are dialled again this often.
const STUCK_REDIAL: Duration = Duration::from_secs(10);

/// Peers named by peer exchange waiting to be asked; more are dropped.
const FOUND_QUEUE: usize = 64;
/// Workers of one download at once: peer exchange adds none beyond.
const MAX_WORKERS: usize = 64;
/// Failures a download remembers to explain itself.
const MAX_FAILURES: usize = 32;

/// What a worker task returns: its peer and how it ended.
type WorkerEnd = (PeerId, Result<Ended, PeerError>);

/// Fetches what `job.plan` misses, from `providers` and every peer found on the way.
pub(super) async fn fetch(
    s: &Shared,
    job: Job<'_>,
    providers: Vec<PeerId>,
    control: &mut watch::Receiver<Control>,
) -> Result<SinkReport, DownloadError> {
    // Each download walks the chunks from a place of its own, so downloads that start together ask
    // a seeder for different chunks and then have something to trade.
    let chunk_count = job.manifest.chunk_count();
    let sched = Arc::new(Mutex::new(Sched::new(
        job.plan.missing.iter().copied(),
        chunk_count,
        random_below(chunk_count),
        &s.net.local_peer_id(),
    )));
    let (chunk_tx, chunk_rx) = mpsc::channel::<Received>(QUEUED_PIECES);
    let (fb_tx, fb_rx) = mpsc::unbounded_channel::<Feedback>();
    let (found_tx, found_rx) = mpsc::channel(FOUND_QUEUE);
    let pool = Pool::default();
    let links = Links {
        feedback: fb_tx,
        sched: sched.clone(),
        pool: pool.clone(),
    };
    let sink = Sink::new(s, &job, links);
    let sink_thread = std::thread::spawn(move || sink.run(chunk_rx));
    let mut coordinator = Coordinator {
        s: s.clone(),
        job,
        sched,
        wake: Arc::new(Notify::new()),
        chunks: chunk_tx,
        pool,
        control: control.clone(),
        found: found_tx,
        workers: JoinSet::new(),
        running: HashMap::new(),
        failures: Vec::new(),
        deferred: HashSet::new(),
        upgraded: HashSet::new(),
        reconnect: None,
        stuck: None,
    };
    let inputs = Inputs {
        feedback: fb_rx,
        found: found_rx,
        arrivals: s.holders.arrivals(),
        changes: s.net.subscribe(),
        stopping: s.downloads.stopping(),
    };
    coordinator.start(providers);
    let result = coordinator.run(inputs, control).await;
    tracing::debug!(ok = result.is_ok(), "fetch loop ended");
    coordinator.shut_down().await;
    // Workers are gone, so the writer's input closes; it records what it wrote and stops.
    let _ = tokio::task::spawn_blocking(move || sink_thread.join()).await;
    result
}

/// What the coordinator listens to besides its workers.
struct Inputs {
    feedback: mpsc::UnboundedReceiver<Feedback>,
    /// Peers named by another one's hello (peer exchange).
    found: mpsc::Receiver<(PeerId, Vec<Multiaddr>)>,
    /// Peers that asked this node for a share: they hold or fetch it too.
    arrivals: tokio::sync::broadcast::Receiver<(ShareTag, PeerId)>,
    changes: tokio::sync::broadcast::Receiver<Change>,
    stopping: watch::Receiver<bool>,
}

/// Every provider is gone: when to dial them again, since when, and when to give up (never
/// without a holder wait).
#[derive(Clone, Copy)]
struct Reconnect {
    at: Instant,
    since: Instant,
    until: Option<Instant>,
    backoff: Duration,
}

/// What a handled event says.
enum Step {
    /// Go on.
    On,
    /// The download ends with this.
    End(Result<SinkReport, DownloadError>),
}

struct Coordinator<'a> {
    s: Shared,
    job: Job<'a>,
    sched: Arc<Mutex<Sched>>,
    /// Woken when chunks wait again or peers announce new ones.
    wake: Arc<Notify>,
    chunks: mpsc::Sender<Received>,
    pool: Pool,
    control: watch::Receiver<Control>,
    found: mpsc::Sender<(PeerId, Vec<Multiaddr>)>,
    workers: JoinSet<WorkerEnd>,
    /// The peer of each running worker.
    running: HashMap<PeerId, AbortHandle>,
    failures: Vec<String>,
    /// Relayed peers waiting while a direct peer holds the whole share.
    deferred: HashSet<PeerId>,
    /// Peers whose relayed connection gave way to a direct one while their worker ran: the
    /// worker fails with the relayed connection and starts again at once, on the direct one.
    upgraded: HashSet<PeerId>,
    reconnect: Option<Reconnect>,
    /// Since when no peer holds some missing chunks while nothing else is due, and when the
    /// providers were last dialled for them.
    stuck: Option<(Instant, Instant)>,
}

impl Coordinator<'_> {
    fn sched(&self) -> MutexGuard<'_, Sched> {
        self.sched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the ticket's providers, every connected peer (any may hold or fetch the share), and
    /// the peers that asked this node for it before this download began.
    fn start(&mut self, providers: Vec<PeerId>) {
        let mut candidates = providers;
        let known = self.s.holders.of(&self.job.ticket.key.tag());
        for peer in self.s.net.connected().into_iter().chain(known) {
            if !candidates.contains(&peer) {
                candidates.push(peer);
            }
        }
        for peer in candidates {
            self.spawn(peer, Vec::new());
        }
    }

    /// Starts a worker for `peer` (dialled at `addrs` first, when given).
    fn spawn(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let worker = Worker {
            s: self.s.clone(),
            peer,
            addrs,
            key: self.job.ticket.key,
            manifest: self.job.manifest.clone(),
            sched: self.sched.clone(),
            wake: self.wake.clone(),
            chunks: self.chunks.clone(),
            pool: self.pool.clone(),
            control: self.control.clone(),
            found: self.found.clone(),
        };
        let abort = self
            .workers
            .spawn(async move { (peer, worker.run().await) });
        self.running.insert(peer, abort);
    }

    /// Whether `peer` may be given a worker now: none runs for it and it was not dropped.
    fn usable(&self, peer: &PeerId) -> bool {
        !self.running.contains_key(peer) && !self.sched().banned.contains_key(peer)
    }

    fn spawn_if_usable(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if self.usable(&peer) {
            self.spawn(peer, addrs);
        }
    }

    /// Stops `peer`'s worker (a read on a closing connection may not wake up) and puts back what
    /// was due from it.
    fn stop_worker(&mut self, peer: &PeerId) -> bool {
        let stopped = self.running.remove(peer).inspect(AbortHandle::abort);
        self.sched().leave(peer);
        self.wake.notify_waiters();
        stopped.is_some()
    }

    async fn run(
        &mut self,
        mut inputs: Inputs,
        control: &mut watch::Receiver<Control>,
    ) -> Result<SinkReport, DownloadError> {
        let mut prefer_direct = tokio::time::interval(PREFER_DIRECT_EVERY);
        loop {
            if *inputs.stopping.borrow_and_update() {
                return Err(DownloadError::Node(crate::Error::Stopped));
            }
            let retry_at = self.reconnect.map(|r| tokio::time::Instant::from_std(r.at));
            let step = tokio::select! {
                fb = inputs.feedback.recv() => self.on_feedback(fb).await,
                Some(joined) = self.workers.join_next(), if !self.workers.is_empty() => {
                    self.on_worker_end(joined)
                }
                Some((peer, addrs)) = inputs.found.recv() => {
                    if self.running.len() < MAX_WORKERS {
                        tracing::debug!(%peer, "peer exchange: asking it too");
                        self.spawn_if_usable(peer, addrs);
                    }
                    Step::On
                }
                arrival = inputs.arrivals.recv() => self.on_arrival(arrival),
                change = inputs.changes.recv() => self.on_change(change),
                _ = prefer_direct.tick() => match self.on_prefer_direct() {
                    Step::On => self.on_stuck().await,
                    end => end,
                },
                () = async { if let Some(at) = retry_at { tokio::time::sleep_until(at).await } },
                    if retry_at.is_some() => self.on_reconnect_due().await,
                changed = inputs.stopping.changed() => match changed {
                    Err(_) => Step::End(Err(DownloadError::Node(crate::Error::Stopped))),
                    Ok(()) => Step::On,
                },
                changed = control.changed() => {
                    if changed.is_err() || matches!(*control.borrow(), Control::Cancel { .. }) {
                        Step::End(Err(DownloadError::Cancelled))
                    } else {
                        self.wake.notify_waiters();
                        Step::On
                    }
                }
            };
            if let Step::End(end) = step {
                return end;
            }
            if let Step::End(end) = self.when_idle(&inputs) {
                return end;
            }
        }
    }

    async fn on_feedback(&mut self, feedback: Option<Feedback>) -> Step {
        match feedback {
            Some(Feedback::Bad { peer, index }) => {
                tracing::warn!(%peer, index, "chunk failed verification: dropping the peer");
                self.sched()
                    .banned
                    .insert(peer, "sent a corrupt chunk".into());
                if self.stop_worker(&peer) {
                    self.note_failure(format!("{peer}: sent a corrupt chunk"));
                }
                self.s.net.disconnect(peer).await;
                Step::On
            }
            Some(Feedback::Done(report)) => Step::End(Ok(report)),
            Some(Feedback::Fatal(e)) => Step::End(Err(e)),
            None => Step::End(Err(DownloadError::ProvidersFailed(
                "the writer stopped".into(),
            ))),
        }
    }

    fn on_worker_end(&mut self, joined: Result<WorkerEnd, JoinError>) -> Step {
        // An aborted worker (a corrupt chunk, a relayed peer deferred) was accounted for then.
        let Ok((peer, result)) = joined else {
            return Step::On;
        };
        if self.running.remove(&peer).is_none() {
            return Step::On;
        }
        match result {
            Ok(Ended::NotAProvider) => tracing::debug!(%peer, "not a provider"),
            Ok(Ended::Done) => {}
            Err(_) if self.upgraded.remove(&peer) => {
                tracing::debug!(%peer, "relayed connection replaced: asking again directly");
                self.sched().leave(&peer);
                self.spawn(peer, Vec::new());
                self.wake.notify_waiters();
                return Step::On;
            }
            Err(why) => {
                tracing::info!(%peer, error = %why, "provider failed");
                if why.bans() {
                    self.sched().banned.insert(peer, why.to_string());
                }
                self.note_failure(format!("{peer}: {why}"));
            }
        }
        self.sched().leave(&peer);
        self.wake.notify_waiters();
        Step::On
    }

    /// A peer proved it holds a share's key: when it is this one's, the peer holds or fetches it.
    fn on_arrival(&mut self, arrival: Result<(ShareTag, PeerId), RecvError>) -> Step {
        if let Ok((of, peer)) = arrival
            && of == self.job.ticket.key.tag()
            && self.usable(&peer)
        {
            tracing::debug!(%peer, "a peer of the swarm arrived: asking it too");
            self.spawn(peer, Vec::new());
        }
        Step::On
    }

    /// A peer connected (found by discovery, say) or its path went direct: it may hold the share.
    fn on_change(&mut self, change: Result<Change, RecvError>) -> Step {
        match change {
            Ok(Change::Connected { peer, .. } | Change::Upgraded { peer }) => {
                self.deferred.remove(&peer);
                if self.usable(&peer) {
                    self.spawn(peer, Vec::new());
                } else if self.running.contains_key(&peer) {
                    self.upgraded.insert(peer);
                }
            }
            Ok(Change::Disconnected { .. }) | Err(RecvError::Closed) => {}
            // Changes were missed: whoever is connected now may hold the share.
            Err(RecvError::Lagged(_)) => {
                for peer in self.s.net.connected() {
                    if !self.deferred.contains(&peer) {
                        self.spawn_if_usable(peer, Vec::new());
                    }
                }
            }
        }
        Step::On
    }

    /// A swarm prefers direct peers: while a directly connected peer holding the whole share
    /// serves this download, peers reached only through a relay (slower, and a volunteer's
    /// bandwidth) wait; they are asked again when that is no longer so, or once a direct path to
    /// them opens.
    fn on_prefer_direct(&mut self) -> Step {
        let relayed = |peer: &PeerId| self.s.net.path(peer).is_some_and(|p| p.relayed);
        let direct_seeder = {
            let sched = self.sched();
            self.running
                .keys()
                .any(|p| !relayed(p) && sched.holds_all(p))
        };
        if direct_seeder {
            let waiting: Vec<PeerId> = self
                .running
                .keys()
                .filter(|p| relayed(p))
                .copied()
                .collect();
            for peer in waiting {
                tracing::info!(%peer, "a direct peer holds the whole share: the relayed one waits");
                self.stop_worker(&peer);
                self.deferred.insert(peer);
            }
        } else {
            for peer in std::mem::take(&mut self.deferred) {
                self.spawn_if_usable(peer, Vec::new());
            }
        }
        Step::On
    }

    /// When no peer holds some missing chunks and nothing else is due: after [`STUCK_FOR`], the
    /// download fails if every provider's copy is damaged (or it was dropped) and no peer still
    /// fetching could gain them; otherwise providers not asked now are dialled again, for up to
    /// [`RECONNECT_FOR`].
    async fn on_stuck(&mut self) -> Step {
        let (unheld, idle) = {
            let sched = self.sched();
            (sched.unheld(), sched.nothing_due())
        };
        if unheld.is_empty() || !idle || self.workers.is_empty() {
            self.stuck = None;
            return Step::On;
        }
        let now = Instant::now();
        let (since, dialled) = *self.stuck.get_or_insert((now, now));
        if now.duration_since(since) < STUCK_FOR {
            return Step::On;
        }
        let hopeless = {
            let sched = self.sched();
            let providers = &self.job.ticket.providers;
            let gone = |p: &PeerId| sched.banned.contains_key(p) || sched.damaged.contains_key(p);
            let fetching = self
                .running
                .keys()
                .any(|p| !sched.holds_all(p) && !sched.damaged.contains_key(p));
            providers.iter().all(|p| gone(&p.peer)) && !fetching
        };
        if hopeless || now.duration_since(since) >= RECONNECT_FOR {
            return Step::End(Err(DownloadError::NoGoodCopy(
                self.describe_unheld(&unheld),
            )));
        }
        if now.duration_since(dialled) >= STUCK_REDIAL {
            self.stuck = Some((since, now));
            for peer in providers::connect(&self.s, self.job.ticket).await {
                self.spawn_if_usable(peer, Vec::new());
            }
        }
        Step::On
    }

    /// "32 chunks (8.0 MiB) of Trip/a.bin: <peer>: its copy is damaged (32 chunks); …".
    fn describe_unheld(&self, unheld: &[u64]) -> String {
        let manifest = self.job.manifest;
        let bytes: u64 = unheld
            .iter()
            .filter_map(|i| manifest.chunk(*i))
            .map(|c| u64::from(c.len))
            .sum();
        let mut files: Vec<usize> = unheld
            .iter()
            .filter_map(|i| manifest.chunk(*i).map(|c| c.file))
            .collect();
        files.dedup();
        let names: Vec<&str> = files
            .iter()
            .take(3)
            .filter_map(|f| manifest.files().get(*f).map(|e| e.path.as_str()))
            .collect();
        let more = match files.len().saturating_sub(3) {
            0 => String::new(),
            n => format!(" and {n} more files"),
        };
        let sched = self.sched();
        let mut why: Vec<String> = sched
            .damaged
            .iter()
            .map(|(p, n)| format!("{p}: its copy is damaged ({n} chunks missing)"))
            .collect();
        why.extend(self.failures.iter().cloned());
        format!(
            "{} chunks ({:.1} MiB) of {}{more}: {}",
            unheld.len(),
            bytes as f64 / (1024.0 * 1024.0),
            names.join(", "),
            why.join("; ")
        )
    }

    /// While every peer is gone: dials the ticket's providers and the hinted peers again and
    /// asks every connected peer (one may have fetched the share meanwhile); gives up when the
    /// node's holder wait is over.
    async fn on_reconnect_due(&mut self) -> Step {
        let reached = seek::reach(&self.s, self.job.ticket).await;
        for peer in reached.into_iter().chain(self.s.net.connected()) {
            if self.usable(&peer) && !self.deferred.contains(&peer) {
                tracing::info!(%peer, "a peer that may hold the share is back: asking it");
                self.spawn(peer, Vec::new());
            }
        }
        let Some(mut r) = self.reconnect else {
            return Step::On;
        };
        r.backoff = (r.backoff * 2).min(MAX_RECONNECT_BACKOFF);
        r.at = Instant::now() + r.backoff;
        self.reconnect = Some(r);
        if !self.workers.is_empty() {
            self.reconnect = None;
        } else if r.until.is_some_and(|until| Instant::now() >= until) {
            return Step::End(Err(DownloadError::NoHolder {
                secs: r.since.elapsed().as_secs(),
                tried: self.tried(),
            }));
        }
        Step::On
    }

    /// The last failures, for a waiting download's status and its error.
    fn tried(&self) -> Vec<String> {
        let mut tried: Vec<String> = self
            .failures
            .iter()
            .rev()
            .take(seek::SHOWN_TRIES)
            .cloned()
            .collect();
        if tried.is_empty() {
            tried.push(seek::nobody_in_reach(self.job.ticket));
        }
        tried
    }

    /// When no worker runs and nothing is due: every provider is gone (a lost network, a
    /// provider that stopped), so they are dialled again with backoff, unless all of them were
    /// dropped for bad data or the node stopped.
    fn when_idle(&mut self, inputs: &Inputs) -> Step {
        if !self.workers.is_empty()
            || self.reconnect.is_some()
            || !inputs.feedback.is_empty()
            || !self.sched().nothing_due()
        {
            return Step::On;
        }
        if self.s.net.is_closed() {
            return Step::End(Err(DownloadError::Node(crate::Error::Stopped)));
        }
        let all_banned = {
            let sched = self.sched();
            let ticket = self.job.ticket;
            ticket
                .providers
                .iter()
                .all(|p| sched.banned.contains_key(&p.peer))
        };
        if all_banned {
            if self.failures.is_empty() {
                self.failures.push("no provider was reachable".into());
            }
            return Step::End(Err(self.providers_failed()));
        }
        let wait = self.s.config.holder_wait;
        match wait {
            Some(w) => tracing::warn!("no peer holds the share: waiting up to {} s", w.as_secs()),
            None => tracing::warn!("no peer holds the share: waiting for one"),
        }
        let now = Instant::now();
        self.reconnect = Some(Reconnect {
            at: now + FIRST_RECONNECT,
            since: now,
            until: wait.map(|w| now + w),
            backoff: FIRST_RECONNECT,
        });
        seek::show_waiting(self.job.status, self.tried());
        Step::On
    }

    /// Remembers why a peer failed (the last [`MAX_FAILURES`]: a download may wait for days).
    fn note_failure(&mut self, why: String) {
        if self.failures.len() >= MAX_FAILURES {
            self.failures.remove(0);
        }
        self.failures.push(why);
    }

    fn providers_failed(&self) -> DownloadError {
        DownloadError::ProvidersFailed(self.failures.join("; "))
    }

    /// Stops every worker and waits for them; the writer's input then closes.
    async fn shut_down(mut self) {
        self.workers.abort_all();
        while self.workers.join_next().await.is_some() {}
        tracing::debug!("workers joined");
    }
}
