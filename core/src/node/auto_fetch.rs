//! Rooms carry their attachments: a member's node fetches the files attached to room messages
//! by itself, as chat apps download media, up to a size per message and a budget per room, and
//! not on battery or on a metered network unless allowed. What it fetched it serves to the
//! other members, who hold the ticket from the message: photos spread through the group while
//! their sender is offline. An attachment left alone is told to the app with the reason.
//! The same part carries files for contacts: a contact who sent someone files attached to a
//! direct message may ask this device to fetch and hold them for that peer, within a budget per
//! contact, so they reach the peer through this device with the sender gone.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::params;
use tokio::sync::{Semaphore, mpsc};

use super::bus::Bus;
use crate::config::AutoFetch;
use crate::events::Event;
use crate::messaging::{Message, Recipient};
use crate::store::Store;
use crate::transfer::{DownloadSpec, Ticket, Transfers};
use libp2p::PeerId;

/// Fetches waiting to be considered; more are left alone (and told so).
const QUEUE: usize = 64;
/// Fetches looked up or running at once.
const AT_ONCE: usize = 4;
/// How long the holders of files to fetch by themselves are looked for before they are left.
const FIND_FOR: Duration = Duration::from_secs(600);

/// Files to fetch by themselves.
pub(super) enum Job {
    /// A room message with files attached, from another device.
    Room(Message),
    /// A contact asks this device to carry files for a peer.
    Carry {
        from: PeerId,
        ticket: Ticket,
        for_peer: PeerId,
    },
}

impl Job {
    fn ticket(&self) -> Option<&Ticket> {
        match self {
            Job::Room(m) => m.attachment.as_ref(),
            Job::Carry { ticket, .. } => Some(ticket),
        }
    }

    /// The key of the budget it counts against.
    fn budget_key(&self) -> String {
        match self {
            Job::Room(m) => m.to.to_string(),
            Job::Carry { from, .. } => format!("carry:{from}"),
        }
    }

    /// Tells the app this job is left alone, and why.
    fn left(&self, bus: &Bus, reason: String) {
        tracing::info!(%reason, "files not fetched by themselves");
        bus.emit(match self {
            Job::Room(m) => Event::AttachmentNotFetched {
                message: m.id,
                reason,
            },
            Job::Carry { from, for_peer, .. } => Event::CarryRefused {
                from: *from,
                for_peer: *for_peer,
                reason,
            },
        });
    }
}

/// The node's part that decides which files to fetch by themselves.
pub(super) struct Fetcher {
    settings: Mutex<AutoFetch>,
    on_battery: AtomicBool,
    metered: AtomicBool,
    queue: mpsc::Sender<Job>,
}

impl Fetcher {
    /// A fetcher with `settings`, and the end its task reads jobs from.
    pub(super) fn new(settings: AutoFetch) -> (Arc<Self>, mpsc::Receiver<Job>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let fetcher = Self {
            settings: Mutex::new(settings),
            on_battery: AtomicBool::new(false),
            metered: AtomicBool::new(false),
            queue,
        };
        (Arc::new(fetcher), rx)
    }

    pub(super) fn settings(&self) -> AutoFetch {
        *self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn set(&self, settings: AutoFetch) {
        *self.settings.lock().unwrap_or_else(|p| p.into_inner()) = settings;
    }

    pub(super) fn set_on_battery(&self, on: bool) {
        self.on_battery.store(on, Ordering::Relaxed);
    }

    pub(super) fn set_metered(&self, on: bool) {
        self.metered.store(on, Ordering::Relaxed);
    }

    pub(super) fn metered(&self) -> bool {
        self.metered.load(Ordering::Relaxed)
    }

    /// Considers a message that arrived: a room message from another device with files attached
    /// is queued.
    pub(super) fn arrived(&self, message: &Message, bus: &Bus) {
        if !message.outgoing
            && message.attachment.is_some()
            && matches!(message.to, Recipient::Room(_))
        {
            self.queue(Job::Room(message.clone()), bus);
        }
    }

    /// Queues a contact's request to carry files (the messaging layer admitted contacts only).
    pub(super) fn carry(&self, from: PeerId, ticket: Ticket, for_peer: PeerId, bus: &Bus) {
        self.queue(
            Job::Carry {
                from,
                ticket,
                for_peer,
            },
            bus,
        );
    }

    fn queue(&self, job: Job, bus: &Bus) {
        if let Err(e) = self.queue.try_send(job) {
            let job = match e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
            };
            job.left(bus, "too many files to fetch arrived at once".into());
        }
    }

    /// Why `job` (of `bytes`, 0 before its size is known) is not fetched now, if it is not.
    fn refusal(&self, job: &Job, bytes: u64) -> Option<String> {
        let s = self.settings();
        if let Job::Room(_) = job {
            if s.max_message_bytes == 0 {
                return Some("attachments are not fetched by themselves".into());
            }
            if bytes > s.max_message_bytes {
                return Some(format!(
                    "{bytes} bytes, more than the {} fetched by themselves",
                    s.max_message_bytes
                ));
            }
        }
        if self.on_battery.load(Ordering::Relaxed) && !s.on_battery {
            return Some("the device is on battery".into());
        }
        if self.metered.load(Ordering::Relaxed) && !s.on_metered {
            return Some("the network is metered".into());
        }
        None
    }

    /// The budget `job` counts against.
    fn budget(&self, job: &Job) -> u64 {
        let s = self.settings();
        match job {
            Job::Room(_) => s.room_budget_bytes,
            Job::Carry { .. } => s.carry_budget_bytes,
        }
    }
}

/// Where the fetches go and what they use.
pub(super) struct Fetching {
    pub(super) fetcher: Arc<Fetcher>,
    pub(super) transfers: Transfers,
    pub(super) store: Arc<Store>,
    pub(super) bus: Bus,
    /// Room attachments land in `<dir>/<room id>/`, carried files in `<dir>/carried/<peer>/`.
    pub(super) dir: PathBuf,
}

impl Fetching {
    /// Fetches what may be fetched of the queued jobs, until the node stops.
    pub(super) async fn run(self, mut queue: mpsc::Receiver<Job>) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(AT_ONCE));
        while let Some(job) = queue.recv().await {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let this = this.clone();
            tokio::spawn(async move {
                this.consider(job).await;
                drop(slot);
            });
        }
    }

    async fn consider(&self, job: Job) {
        let Some(ticket) = job.ticket().cloned() else {
            return;
        };
        if let Some(why) = self.fetcher.refusal(&job, 0) {
            return job.left(&self.bus, why);
        }
        let bytes = match self.transfers.size_of(&ticket, FIND_FOR).await {
            Ok(bytes) => bytes,
            Err(e) => return job.left(&self.bus, e.to_string()),
        };
        if let Some(why) = self.fetcher.refusal(&job, bytes) {
            return job.left(&self.bus, why);
        }
        let (key, budget) = (job.budget_key(), self.fetcher.budget(&job));
        match reserve(&self.store, &key, bytes, budget) {
            Ok(true) => {}
            Ok(false) => {
                return job.left(&self.bus, format!("the budget of {budget} bytes is spent"));
            }
            Err(e) => return job.left(&self.bus, e.to_string()),
        }
        let dest = match &job {
            Job::Room(m) => self.dir.join(m.to.to_string().trim_start_matches("room:")),
            Job::Carry { from, for_peer, .. } => {
                self.bus.emit(Event::Carrying {
                    from: *from,
                    for_peer: *for_peer,
                    content: ticket.content,
                });
                self.dir.join("carried").join(for_peer.to_string())
            }
        };
        let spec = DownloadSpec {
            ticket,
            dest,
            files: None,
        };
        if let Err(e) = self.transfers.download(spec).wait().await {
            tracing::info!(error = %e, "files to fetch by themselves were not fetched");
            if let Err(e) = give_back(&self.store, &key, bytes) {
                tracing::warn!(error = %e, "cannot give the budget back");
            }
        }
    }
}

/// Counts `bytes` against the budget `key` when they fit in `budget`; whether they did.
fn reserve(store: &Store, key: &str, bytes: u64, budget: u64) -> crate::Result<bool> {
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    let budget = i64::try_from(budget).unwrap_or(i64::MAX);
    store.with(|c| {
        let changed = c.execute(
            "INSERT INTO auto_fetched (room, bytes) SELECT ?1, ?2 WHERE ?2 <= ?3
             ON CONFLICT (room) DO UPDATE SET bytes = bytes + ?2 WHERE bytes + ?2 <= ?3",
            params![key, bytes, budget],
        )?;
        Ok(changed > 0)
    })
}

/// Gives `bytes` of a fetch that failed back to the budget `key`.
fn give_back(store: &Store, key: &str, bytes: u64) -> crate::Result<()> {
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    store.with(|c| {
        c.execute(
            "UPDATE auto_fetched SET bytes = max(0, bytes - ?2) WHERE room = ?1",
            params![key, bytes],
        )
        .map(drop)
    })
}
