//! The node: starts the parts, owns the peer table, redials dropped peers and publishes events.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::NodeConfig;
use crate::discovery::{self, Discovery, Update};
use crate::error::{Error, Result};
use crate::events::{Event, PeerInfo, Reachability, Transport};
use crate::identity;
use crate::messaging::service::Messenger;
use crate::messaging::{self, Message, MessageId, MessageStats, Recipient, Room, RoomId};
use crate::net::{self, Net, NetEvent};
use crate::store::{self, Store};
use crate::transfer::directory::Directory;
use crate::transfer::download::{self, DownloadSpec};
use crate::transfer::handle::{self, TransferHandle};
use crate::transfer::library::{Content, Library};
use crate::transfer::limits::Throttle;
use crate::transfer::offer::{self, Decision, SendOutcome};
use crate::transfer::{Manifest, Provider, Ticket, serve, state};

/// Redials of a dropped peer stop after this many attempts (about 8 minutes of backoff).
const MAX_REDIALS: u32 = 10;
/// How long a start waits for the configured relays to grant (or refuse) a slot.
const RELAY_WAIT: Duration = Duration::from_secs(10);
/// How long `connect` waits for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A running node. Cheap to clone; call [`Node::stop`] to shut it down cleanly.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    peer_id: PeerId,
    name: String,
    listen_addrs: Vec<Multiaddr>,
    /// This device's addresses through relays, while the relays hold its slot.
    relayed_addrs: Arc<Mutex<Vec<Multiaddr>>>,
    events: broadcast::Sender<Event>,
    /// The receiver created before anything ran, handed to the first subscriber so it misses nothing.
    first_events: Mutex<Option<broadcast::Receiver<Event>>>,
    commands: mpsc::Sender<NodeCommand>,
    task: Mutex<Option<JoinHandle<()>>>,
    transfers: download::Ctx,
    /// Tells running downloads that the node stops.
    stop_downloads: tokio::sync::watch::Sender<bool>,
    offers: Arc<offer::Pending>,
    server: JoinHandle<()>,
    offer_server: JoinHandle<()>,
    messenger: Arc<Messenger>,
    message_sync: JoinHandle<()>,
    /// What this node advertises with DNS-SD (also what a platform browser driver advertises).
    advert: discovery::Advert,
    /// Discovery updates from a platform's own browser (Bonjour, Android NSD).
    platform_discovery: mpsc::Sender<Update>,
}

enum NodeCommand {
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    AddPeer {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        reply: net::DialReply,
    },
    Connect {
        addr: Multiaddr,
        reply: net::DialReply,
    },
    Stop(oneshot::Sender<()>),
}

impl Node {
    /// Starts a node: opens the data dir, loads or creates the identity, opens the store, listens,
    /// advertises and browses with mDNS, and re-dials peers seen recently.
    pub async fn start(config: NodeConfig) -> Result<Node> {
        let mut relays_pending = HashSet::new();
        for relay in &config.relays {
            relays_pending.insert(relay_peer(relay)?);
        }
        let (key, store, name) = open_data_dir(&config.data_dir, config.name.as_deref())?;
        let store = Arc::new(store);
        let peer_id = key.public().to_peer_id();

        let (events, first_rx) = broadcast::channel(4096);
        let (net_tx, mut net_rx) = mpsc::channel(1024);
        let agent = format!("meshdrop/{} ({})", crate::VERSION, name);
        let messenger = Arc::new(Messenger::new(
            key.clone(),
            &name,
            store.clone(),
            events.clone(),
            &config,
        )?);
        let protocols = [
            crate::transfer::wire::PROTOCOL,
            offer::PROTOCOL,
            messaging::sync::PROTOCOL,
        ];
        let directory = Arc::new(Directory::default());
        let mut net = Net::start(
            key,
            agent,
            &config.listen,
            &config.relays,
            net_tx,
            &protocols,
            directory.clone(),
        )?;

        // Wait until every listener reported an address, so the ports can be advertised, and
        // until the relays answered, so the first ticket carries the relayed addresses. What else
        // happens meanwhile is handed to the supervisor.
        let mut listen_addrs = Vec::new();
        let mut early = Vec::new();
        let expected = config.listen.len();
        let wait = Duration::from_secs(5)
            + if config.relays.is_empty() {
                Duration::ZERO
            } else {
                RELAY_WAIT
            };
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        while distinct_listeners(&listen_addrs) < expected || !relays_pending.is_empty() {
            tokio::select! {
                ev = net_rx.recv() => match ev {
                    Some(NetEvent::NewListenAddr(addr)) => listen_addrs.push(addr),
                    Some(ev) => {
                        match &ev {
                            NetEvent::RelayReserved { relay, .. } => { relays_pending.remove(relay); }
                            NetEvent::RelayLost { relay, .. } => {
                                if let Ok(peer) = relay_peer(relay) {
                                    relays_pending.remove(&peer);
                                }
                            }
                            _ => {}
                        }
                        early.push(ev);
                    }
                    None => return Err(Error::Stopped),
                },
                _ = &mut deadline => break,
            }
        }
        let listen_addrs = complete_listen_addrs(&config.listen, listen_addrs);
        if listen_addrs.is_empty() {
            net.shutdown().await;
            return Err(Error::Listen {
                addr: format!("{:?}", config.listen),
                reason: "no listener came up within 5 s".into(),
            });
        }

        let (disc_tx, disc_rx) = mpsc::channel(256);
        let advert = discovery::Advert {
            peer: peer_id,
            name: name.clone(),
            tcp_port: port_of(&listen_addrs, false),
            quic_port: port_of(&listen_addrs, true),
        };
        let discovery = if config.mdns {
            match Discovery::start(&advert, &config.listen_ips(), disc_tx.clone()) {
                Ok(d) => Some(d),
                Err(e) => {
                    // Peers can still be added by hand or by ticket: keep going, say why.
                    tracing::warn!(error = %e, "mDNS discovery unavailable");
                    None
                }
            }
        } else {
            None
        };

        let library = Arc::new(Library::default());
        load_shares(&store, &library);
        let throttle = Arc::new(Throttle::new(config.limits));
        let incoming = net.take_incoming(&crate::transfer::wire::PROTOCOL)?;
        let server = tokio::spawn(serve::run(
            incoming,
            serve::Server {
                library: library.clone(),
                directory: directory.clone(),
                throttle: throttle.clone(),
                events: events.clone(),
                faults: config.faults,
            },
        ));
        let stop_downloads = tokio::sync::watch::Sender::new(false);
        let transfers = download::Ctx {
            net: net.commands.clone(),
            streams: net.streams.clone(),
            store: store.clone(),
            library,
            events: events.clone(),
            progress_interval: config.progress_interval,
            next_transfer: Arc::new(std::sync::atomic::AtomicU64::new(1)),
            running: Default::default(),
            stopping: stop_downloads.subscribe(),
            directory: directory.clone(),
            throttle,
        };

        let offers = Arc::new(offer::Pending::default());
        let incoming_offers = net.take_incoming(&offer::PROTOCOL)?;
        let offer_server = tokio::spawn(offer::receive(
            incoming_offers,
            transfers.clone(),
            offers.clone(),
            peer_id,
        ));

        let incoming_messages = net.take_incoming(&messaging::sync::PROTOCOL)?;
        let message_sync = messaging::sync::spawn(
            messenger.clone(),
            net.streams.clone(),
            directory.clone(),
            incoming_messages,
            events.subscribe(),
            &config,
        );

        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        // Reservations granted during the start are in the first ticket already.
        let granted = early
            .iter()
            .filter_map(|ev| match ev {
                NetEvent::RelayReserved { addr, .. } => Some(addr.clone()),
                _ => None,
            })
            .collect();
        let relayed_addrs = Arc::new(Mutex::new(granted));
        let mut supervisor = Supervisor {
            local: peer_id,
            relayed_addrs: relayed_addrs.clone(),
            store,
            net: Some(net),
            discovery,
            events: events.clone(),
            peers: HashMap::new(),
            directory,
        };
        // A zero window redials no one (not even peers seen in this very second).
        if !config.redial_recent.is_zero() {
            let since = store::now_secs().saturating_sub(config.redial_recent.as_secs());
            supervisor.load_recent_peers(since);
        }
        let _ = events.send(Event::Listening {
            peer: peer_id,
            name: name.clone(),
            addrs: listen_addrs.clone(),
        });
        let task = tokio::spawn(async move {
            for ev in early {
                supervisor.net_event(ev).await;
            }
            supervisor.run(cmd_rx, &mut net_rx, disc_rx).await;
        });
        let node = Node {
            inner: Arc::new(Inner {
                peer_id,
                name,
                listen_addrs,
                relayed_addrs,
                events,
                first_events: Mutex::new(Some(first_rx)),
                commands: cmd_tx,
                task: Mutex::new(Some(task)),
                transfers,
                stop_downloads,
                offers,
                server,
                offer_server,
                messenger,
                message_sync,
                advert,
                platform_discovery: disc_tx,
            }),
        };
        if config.resume_downloads {
            node.resume_interrupted();
        }
        Ok(node)
    }

    /// Restarts the downloads that were running when this node last stopped or died; they report
    /// through the usual transfer events.
    fn resume_interrupted(&self) {
        let ctx = &self.inner.transfers;
        let interrupted = match state::interrupted_downloads(&ctx.store) {
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
            // Runs on by itself (the handle is held until the end, which is announced as a
            // transfer event); a node stop ends it, to resume at the next start.
            let handle = handle::spawn(ctx, spec);
            tokio::spawn(handle.wait());
        }
    }

    /// What to advertise with DNS-SD: instance name, port and TXT record
    /// (service type [`discovery::PLATFORM_SERVICE_TYPE`]).
    pub fn advertisement(&self) -> discovery::Advert {
        self.inner.advert.clone()
    }

    /// Feeds what a platform's own browser (Bonjour, Android NSD) found or lost: handled exactly
    /// like an mDNS update (a `peer_discovered` / `peer_lost` event, a dial).
    pub async fn platform_discovery(&self, update: Update) -> Result<()> {
        if let Update::Found(found) = &update
            && found.peer == self.inner.peer_id
        {
            return Ok(()); // a browser sees this device's own advert too
        }
        self.inner
            .platform_discovery
            .send(update)
            .await
            .map_err(|_| Error::Stopped)
    }

    /// This device's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    /// This device's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The addresses the node listened on when it started.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.inner.listen_addrs.clone()
    }

    /// The event stream. The first subscriber sees every event since start; later ones from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        let first = self
            .inner
            .first_events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        first.unwrap_or_else(|| self.inner.events.subscribe())
    }

    /// The code both people see for the connection between this device and `other`.
    pub fn verification_code(&self, other: &PeerId) -> String {
        identity::verification_code(&self.inner.peer_id, other)
    }

    /// Peers discovered, connected, added or remembered.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>> {
        let (tx, rx) = oneshot::channel();
        self.send(NodeCommand::Peers(tx)).await?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Adds a peer found by other means (a platform's Bonjour/NSD browser, a ticket, a user) and
    /// connects to it; the node keeps redialling it when it drops.
    pub async fn add_peer(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.send(NodeCommand::AddPeer { peer, addrs, reply })
            .await?;
        wait_dial(rx).await.map(drop)
    }

    /// Connects to a multiaddr (with or without `/p2p/<peer id>`) and returns the peer that answered.
    pub async fn connect(&self, addr: Multiaddr) -> Result<PeerId> {
        let (reply, rx) = oneshot::channel();
        match addr.iter().last() {
            Some(Protocol::P2p(peer)) => {
                self.send(NodeCommand::AddPeer {
                    peer,
                    addrs: vec![addr],
                    reply,
                })
                .await?
            }
            _ => self.send(NodeCommand::Connect { addr, reply }).await?,
        }
        wait_dial(rx).await
    }

    /// Shares files and folders: hashes them (streaming), remembers the share so it is served again
    /// after a restart, and returns a ticket naming this device and its addresses.
    pub async fn share(&self, paths: Vec<std::path::PathBuf>) -> Result<Ticket> {
        let (manifest, sources) = tokio::task::spawn_blocking(move || Manifest::build(&paths))
            .await
            .map_err(|_| Error::Stopped)?
            .map_err(|e| Error::Share(e.to_string()))?;
        let encoded = manifest.encode();
        let content = crate::transfer::ContentId::of(&encoded);
        let store = &self.inner.transfers.store;
        state::save_manifest(store, &content, &encoded)?;
        state::save_share(store, &content, &sources)?;
        self.inner
            .transfers
            .library
            .insert(Arc::new(Content::complete(
                Arc::new(manifest),
                Arc::new(encoded),
                sources,
            )));
        Ok(self.ticket_for(content))
    }

    /// This device's addresses through relays (empty when no relay holds a slot for it).
    pub fn relayed_addrs(&self) -> Vec<Multiaddr> {
        self.inner
            .relayed_addrs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A ticket for `content` naming this device as provider, with its direct addresses and its
    /// addresses through relays.
    pub fn ticket_for(&self, content: crate::transfer::ContentId) -> Ticket {
        let max = crate::transfer::ticket::MAX_ADDRS;
        let mut relayed = self.relayed_addrs();
        relayed.truncate(max / 2);
        let mut addrs: Vec<Multiaddr> = self
            .inner
            .listen_addrs
            .iter()
            .filter(|a| !is_wildcard(a))
            .take(max - relayed.len())
            .cloned()
            .collect();
        addrs.extend(relayed);
        Ticket::new(
            content,
            vec![Provider {
                peer: self.inner.peer_id,
                addrs,
            }],
        )
    }

    /// Starts downloading a share; progress arrives as events, the handle pauses, resumes,
    /// cancels and waits. Running the same download again resumes it.
    pub fn download(&self, spec: DownloadSpec) -> TransferHandle {
        handle::spawn(&self.inner.transfers, spec)
    }

    /// Offers files to a nearby peer (AirDrop-style) and follows the offer to its end: declined,
    /// or delivered and verified on the receiver. Progress arrives as `send_progress` events.
    pub async fn send_files(
        &self,
        peer: PeerId,
        paths: Vec<std::path::PathBuf>,
    ) -> Result<SendOutcome> {
        let ticket = self.share(paths).await?;
        let addrs = self
            .peers()
            .await?
            .into_iter()
            .find(|p| p.peer == peer)
            .map(|p| p.addrs)
            .unwrap_or_default();
        let (reply, rx) = oneshot::channel();
        let dial = net::Command::Dial {
            peer: Some(peer),
            addrs,
            reply: Some(reply),
        };
        self.inner
            .transfers
            .net
            .send(dial)
            .await
            .map_err(|_| Error::Stopped)?;
        if let Err(e) = wait_dial(rx).await {
            // The peer may be connecting to this device right now (it found this one first, and
            // a connection it gave up on just closed): the offer stream's own tries decide.
            tracing::debug!(%peer, error = %e, "dial before the offer failed");
        }
        offer::send(&self.inner.transfers, peer, &ticket, &self.inner.name).await
    }

    /// Answers an `offer_received` event: accept (all or some files, into a folder) or decline.
    pub fn respond_offer(&self, offer: u64, decision: Decision) -> Result<()> {
        self.inner.offers.respond(offer, decision)
    }

    /// Sends a text message to a peer: stored as `queued`, then handed to the peer (or to peers
    /// that carry it) whenever a path appears. Follow it with `message_state_changed` events.
    pub fn send_message(&self, to: PeerId, text: &str) -> Result<MessageId> {
        self.inner.messenger.send(Recipient::Peer(to), text, None)
    }

    /// Sends a text message to a room this device is in.
    pub fn send_room_message(&self, room: RoomId, text: &str) -> Result<MessageId> {
        self.inner.messenger.send(Recipient::Room(room), text, None)
    }

    /// Sends a message to a peer or a room with files attached: shares `paths` (served by this
    /// device like any share, also after a restart) and puts the share's ticket in the message.
    /// The recipient fetches it with [`Node::download_attachment`].
    pub async fn send_with_attachment(
        &self,
        to: Recipient,
        text: &str,
        paths: Vec<std::path::PathBuf>,
    ) -> Result<MessageId> {
        self.inner.messenger.check(to, text)?;
        let ticket = self.share(paths).await?;
        self.inner.messenger.send(to, text, Some(&ticket))
    }

    /// Downloads the files attached to `message` into `dest` (a plain [`Node::download`] of its
    /// ticket); `NotFound` when it has none.
    pub fn download_attachment(
        &self,
        message: &Message,
        dest: std::path::PathBuf,
    ) -> Result<TransferHandle> {
        let ticket = message.attachment.clone().ok_or_else(|| Error::NotFound {
            what: format!("an attachment in message {}", message.id),
        })?;
        Ok(self.download(DownloadSpec {
            ticket,
            dest,
            files: None,
        }))
    }

    /// The devices this one knows, with their names: met on the network or named by an invite.
    pub fn contacts(&self) -> Result<Vec<store::Contact>> {
        self.inner.transfers.store.contacts()
    }

    /// Every message this device can read (written here, addressed to it, or in its rooms), in
    /// causal order: the same order on every device.
    pub fn messages(&self) -> Result<Vec<Message>> {
        self.inner.messenger.messages()
    }

    /// Creates a room; share [`Room::invite`] with the people who should join.
    pub fn create_room(&self, name: &str) -> Result<Room> {
        self.inner.messenger.create_room(name)
    }

    /// Joins a room from its invite (`meshroom1…`).
    pub fn join_room(&self, invite: &str) -> Result<Room> {
        self.inner.messenger.join_room(invite)
    }

    /// The rooms this device is in, with their invites.
    pub fn rooms(&self) -> Vec<Room> {
        self.inner.messenger.room_list()
    }

    /// How many envelopes and messages the store holds (and how many are carried for others), and
    /// how many envelopes this node handed to peers since it started.
    pub fn message_stats(&self) -> Result<MessageStats> {
        self.inner.messenger.stats()
    }

    /// Stops the node: mDNS goodbye, connections closed, store flushed. Returns when all is done.
    pub async fn stop(&self) -> Result<()> {
        // Downloads first: they record what they wrote, stay `active`, and resume at next start.
        let _ = self.inner.stop_downloads.send(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        self.inner.transfers.wait_idle(deadline).await;
        self.inner.server.abort();
        self.inner.offer_server.abort();
        self.inner.message_sync.abort();
        let (tx, rx) = oneshot::channel();
        if self.send(NodeCommand::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        Ok(())
    }

    async fn send(&self, cmd: NodeCommand) -> Result<()> {
        self.inner
            .commands
            .send(cmd)
            .await
            .map_err(|_| Error::Stopped)
    }
}

/// The relay's peer id at the end of a relay address, or why the address will not do.
fn relay_peer(addr: &Multiaddr) -> Result<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Ok(peer),
        _ => Err(Error::InvalidAddress {
            input: addr.to_string(),
            reason: "a relay address ends in /p2p/<relay peer id>, as `meshdrop relay` prints it"
                .into(),
        }),
    }
}

fn is_wildcard(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_unspecified(),
        Some(Protocol::Ip6(ip)) => ip.is_unspecified(),
        _ => false,
    }
}

/// Serves again the shares remembered in the store.
fn load_shares(store: &Store, library: &Library) {
    let shares = match state::shares(store) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read shares");
            return;
        }
    };
    for share in shares {
        match Manifest::decode_verified(&share.manifest, &share.content) {
            Ok(m) => library.insert(Arc::new(Content::complete(
                Arc::new(m),
                Arc::new(share.manifest),
                share.sources,
            ))),
            Err(e) => {
                tracing::warn!(content = %share.content, error = %e, "stored share unreadable")
            }
        }
    }
}

async fn wait_dial(rx: oneshot::Receiver<Result<PeerId>>) -> Result<PeerId> {
    match tokio::time::timeout(CONNECT_TIMEOUT, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(Error::Stopped),
        Err(_) => Err(Error::Timeout {
            what: "connecting".into(),
            secs: CONNECT_TIMEOUT.as_secs(),
        }),
    }
}

/// This device's peer id and name, read from (or created in) `data_dir` without starting a node;
/// `name`, when given, is kept for later runs.
pub fn describe(data_dir: &Path, name: Option<&str>) -> Result<(PeerId, String)> {
    let (key, _store, name) = open_data_dir(data_dir, name)?;
    Ok((key.public().to_peer_id(), name))
}

/// Opens the data dir: identity, store (and its lock), device name.
fn open_data_dir(data_dir: &Path, name: Option<&str>) -> Result<(Keypair, Store, String)> {
    prepare_data_dir(data_dir)?;
    let key = identity::load_or_create(data_dir)?;
    let store = Store::open(data_dir)?;
    let name = match name {
        Some(name) => {
            store.set_setting("name", name)?;
            name.to_string()
        }
        None => match store.setting("name")? {
            Some(name) => name,
            None => default_name(),
        },
    };
    Ok((key, store, name))
}

/// Creates the data dir (owner-only) or explains why it cannot be used.
fn prepare_data_dir(dir: &Path) -> Result<()> {
    let bad = |reason: String| Error::DataDir {
        path: dir.to_path_buf(),
        reason,
    };
    if dir.exists() && !dir.is_dir() {
        return Err(bad("exists but is not a directory".into()));
    }
    fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| bad(e.to_string()))?;
    }
    fs::read_dir(dir).map_err(|e| bad(format!("cannot read it: {e}")))?;
    Ok(())
}

fn default_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "meshdrop device".to_string())
}

/// Every address the node can be reached on. A wildcard listener reports its per-interface
/// addresses one by one (QUIC's come later than TCP's), so each interface IP seen on any listener
/// is combined with every wildcard listener's port of the same IP family.
fn complete_listen_addrs(config: &[Multiaddr], reported: Vec<Multiaddr>) -> Vec<Multiaddr> {
    let wildcard = |a: &Multiaddr| match a.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_unspecified(),
        Some(Protocol::Ip6(ip)) => ip.is_unspecified(),
        _ => false,
    };
    let mut out = reported.clone();
    for listener in reported.iter() {
        let Some(first) = listener.iter().next() else {
            continue;
        };
        let v6 = matches!(first, Protocol::Ip6(_));
        let from_wildcard = config.iter().any(|c| {
            wildcard(c)
                && matches!(c.iter().next(), Some(Protocol::Ip6(_))) == v6
                && Transport::of(c) == Transport::of(listener)
        });
        if !from_wildcard {
            continue;
        }
        for other in &reported {
            let Some(ip) = other.iter().next() else {
                continue;
            };
            if matches!(ip, Protocol::Ip6(_)) != v6 {
                continue;
            }
            let candidate: Multiaddr = std::iter::once(ip).chain(listener.iter().skip(1)).collect();
            if !out.contains(&candidate) {
                out.push(candidate);
            }
        }
    }
    out.sort();
    out
}

/// How many distinct listeners (transport + port) the addresses cover.
fn distinct_listeners(addrs: &[Multiaddr]) -> usize {
    let mut keys: Vec<(bool, bool, u16)> = addrs
        .iter()
        .filter_map(|a| {
            let v6 = matches!(a.iter().next(), Some(Protocol::Ip6(_)));
            let quic = Transport::of(a) == Transport::Quic;
            port(a).map(|p| (v6, quic, p))
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys.len()
}

fn port(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| match p {
        Protocol::Tcp(p) | Protocol::Udp(p) => Some(p),
        _ => None,
    })
}

/// The TCP (or QUIC) port among the listen addresses, preferring IPv4.
fn port_of(addrs: &[Multiaddr], quic: bool) -> Option<u16> {
    addrs
        .iter()
        .filter(|a| (Transport::of(a) == Transport::Quic) == quic)
        .min_by_key(|a| !matches!(a.iter().next(), Some(Protocol::Ip4(_))))
        .and_then(port)
}

/// Splits an agent string `meshdrop/0.1.0 (Device name)` into agent and name.
fn split_agent(agent: &str) -> (String, String) {
    match agent.split_once(" (") {
        Some((a, rest)) => (a.to_string(), rest.trim_end_matches(')').to_string()),
        None => (agent.to_string(), String::new()),
    }
}

#[derive(Default)]
struct PeerState {
    name: String,
    addrs: Vec<Multiaddr>,
    connections: usize,
    discovered: bool,
    /// Redial this peer when it drops (found by discovery, added by hand or remembered).
    keep: bool,
    redial: Option<Redial>,
}

struct Redial {
    at: Instant,
    attempt: u32,
}

/// The task that owns the node's state.
struct Supervisor {
    local: PeerId,
    /// This device's relayed addresses, shared with the node for its tickets.
    relayed_addrs: Arc<Mutex<Vec<Multiaddr>>>,
    store: Arc<Store>,
    /// The swarm; `None` once shut down.
    net: Option<Net>,
    discovery: Option<Discovery>,
    events: broadcast::Sender<Event>,
    peers: HashMap<PeerId, PeerState>,
    /// What transfers know of peers: who is connected, their addresses and round trips.
    directory: Arc<Directory>,
}

impl Supervisor {
    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    fn load_recent_peers(&mut self, since: u64) {
        match self.store.peers_since(since) {
            Ok(known) => {
                for k in known.into_iter().filter(|k| !k.addrs.is_empty()) {
                    self.peers.insert(
                        k.peer,
                        PeerState {
                            name: k.name,
                            addrs: k.addrs,
                            keep: true,
                            redial: Some(Redial {
                                at: Instant::now(),
                                attempt: MAX_REDIALS.saturating_sub(3),
                            }),
                            ..PeerState::default()
                        },
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read known peers"),
        }
    }

    fn record_seen(&self, peer: &PeerId, name: &str, addrs: &[Multiaddr]) {
        if let Err(e) = self.store.peer_seen(peer, name, addrs) {
            tracing::warn!(error = %e, "cannot record peer");
        }
    }

    async fn run(
        &mut self,
        mut commands: mpsc::Receiver<NodeCommand>,
        net_events: &mut mpsc::Receiver<NetEvent>,
        mut discovery: mpsc::Receiver<Update>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(NodeCommand::Stop(reply)) => {
                        self.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(cmd) => self.command(cmd).await,
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
                Some(ev) = net_events.recv() => self.net_event(ev).await,
                Some(update) = discovery.recv() => self.discovery_update(update).await,
                _ = tick.tick() => self.redial_due().await,
            }
        }
    }

    async fn shutdown(&mut self) {
        if let Some(d) = self.discovery.take() {
            d.stop().await;
        }
        if let Some(net) = self.net.take() {
            net.shutdown().await;
        }
        if let Err(e) = self.store.flush() {
            tracing::warn!(error = %e, "cannot flush the store");
        }
        self.store.release();
        self.emit(Event::Stopped);
    }

    async fn dial(
        &self,
        peer: Option<PeerId>,
        addrs: Vec<Multiaddr>,
        reply: Option<net::DialReply>,
    ) {
        let Some(net) = &self.net else { return };
        let cmd = net::Command::Dial { peer, addrs, reply };
        if net.commands.send(cmd).await.is_err() {
            tracing::debug!("swarm gone, dial dropped");
        }
    }

    async fn command(&mut self, cmd: NodeCommand) {
        match cmd {
            NodeCommand::Peers(reply) => {
                let mut list: Vec<PeerInfo> = self
                    .peers
                    .iter()
                    .filter(|(_, s)| s.connections > 0 || s.discovered || s.keep)
                    .map(|(peer, s)| PeerInfo {
                        peer: *peer,
                        name: s.name.clone(),
                        addrs: s.addrs.clone(),
                        connected: s.connections > 0,
                        discovered: s.discovered,
                        verification_code: identity::verification_code(&self.local, peer),
                    })
                    .collect();
                list.sort_by(|a, b| (&a.name, a.peer).cmp(&(&b.name, b.peer)));
                let _ = reply.send(list);
            }
            NodeCommand::AddPeer { peer, addrs, reply } => {
                if peer == self.local {
                    let _ = reply.send(Err(Error::InvalidAddress {
                        input: peer.to_string(),
                        reason: "that is this device's own peer id".into(),
                    }));
                    return;
                }
                let state = self.peers.entry(peer).or_default();
                state.keep = true;
                for a in &addrs {
                    if !state.addrs.contains(a) {
                        state.addrs.push(a.clone());
                    }
                }
                let all = state.addrs.clone();
                self.record_seen(&peer, "", &all);
                self.dial(Some(peer), all, Some(reply)).await;
            }
            NodeCommand::Connect { addr, reply } => {
                self.dial(None, vec![addr], Some(reply)).await;
            }
            NodeCommand::Stop(_) => {}
        }
    }

    async fn net_event(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::NewListenAddr(addr) => tracing::info!(%addr, "listening"),
            NetEvent::Connected {
                peer,
                addr,
                relayed,
                first,
                upgraded,
            } => {
                self.directory.set_connected(peer, true);
                let state = self.peers.entry(peer).or_default();
                state.connections += 1;
                state.redial = None;
                let name = state.name.clone();
                let transport = if relayed {
                    Transport::Relay
                } else {
                    Transport::of(&addr)
                };
                if first {
                    self.record_seen(&peer, &name, &[]);
                    self.emit(Event::PeerConnected {
                        peer,
                        transport,
                        addr,
                        verification_code: identity::verification_code(&self.local, &peer),
                    });
                } else if upgraded {
                    self.emit(Event::ConnectionUpgraded {
                        peer,
                        addr,
                        transport,
                    });
                }
            }
            NetEvent::RelayReserved { relay, addr } => {
                let mut relayed = self.relayed_addrs.lock().unwrap_or_else(|p| p.into_inner());
                if !relayed.contains(&addr) {
                    relayed.push(addr.clone());
                }
                drop(relayed);
                self.emit(Event::RelayReserved { relay, addr });
            }
            NetEvent::RelayLost {
                relay,
                addrs,
                reason,
            } => {
                self.relayed_addrs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|a| !addrs.contains(a));
                if let Some(reason) = reason {
                    self.emit(Event::RelayFailed { relay, reason });
                }
            }
            NetEvent::HolePunchFailed { peer, error } => {
                self.emit(Event::HolePunchFailed { peer, error })
            }
            NetEvent::Reachability { public } => self.emit(Event::Reachability {
                status: if public.is_some() {
                    Reachability::Public
                } else {
                    Reachability::Private
                },
                addr: public,
            }),
            NetEvent::Disconnected { peer, last } => {
                let Some(state) = self.peers.get_mut(&peer) else {
                    return;
                };
                state.connections = state.connections.saturating_sub(1);
                if last {
                    self.directory.set_connected(peer, false);
                    state.connections = 0;
                    if state.keep {
                        state.redial = Some(Redial {
                            at: Instant::now() + Duration::from_secs(1),
                            attempt: 0,
                        });
                    }
                    let discovered = state.discovered;
                    self.emit(Event::PeerDisconnected { peer });
                    if discovered && let Some(d) = &self.discovery {
                        d.verify(peer);
                    }
                }
            }
            NetEvent::Identified {
                peer,
                agent,
                protocol,
                listen_addrs,
            } => {
                let (agent, name) = split_agent(&agent);
                self.directory.set_addrs(peer, listen_addrs.clone());
                let state = self.peers.entry(peer).or_default();
                if !name.is_empty() {
                    state.name = name.clone();
                }
                let with_id: Vec<Multiaddr> = listen_addrs
                    .iter()
                    .map(|a| a.clone().with_p2p(peer).unwrap_or_else(|a| a))
                    .collect();
                // Every device met becomes a contact with its name; only peers this node redials
                // keep their addresses.
                let addrs: &[Multiaddr] = if state.keep { &with_id } else { &[] };
                self.record_seen(&peer, &name, addrs);
                self.emit(Event::PeerIdentified {
                    peer,
                    name,
                    agent,
                    protocol,
                    listen_addrs,
                });
            }
            NetEvent::RoundTrip { peer, rtt } => self.directory.set_rtt(peer, rtt),
            NetEvent::DialFailed { peer, error } => {
                tracing::debug!(?peer, %error, "dial failed");
                self.emit(Event::DialFailed { peer, error });
            }
        }
    }

    async fn discovery_update(&mut self, update: Update) {
        match update {
            Update::Found(found) => {
                let state = self.peers.entry(found.peer).or_default();
                let new = !state.discovered;
                state.discovered = true;
                state.keep = true;
                state.name = found.name.clone();
                for a in &found.addrs {
                    if !state.addrs.contains(a) {
                        state.addrs.insert(0, a.clone());
                    }
                }
                let connected = state.connections > 0;
                self.record_seen(&found.peer, &found.name, &found.addrs);
                if new {
                    self.emit(Event::PeerDiscovered {
                        peer: found.peer,
                        name: found.name,
                        addrs: found.addrs.clone(),
                    });
                }
                if !connected {
                    self.dial(Some(found.peer), found.addrs, None).await;
                }
            }
            Update::Gone(peer) => {
                if let Some(state) = self.peers.get_mut(&peer)
                    && state.discovered
                {
                    state.discovered = false;
                    // It said goodbye (or vanished): stop redialling until it shows up again.
                    state.redial = None;
                    let name = state.name.clone();
                    self.emit(Event::PeerLost { peer, name });
                }
            }
        }
    }

    async fn redial_due(&mut self) {
        let now = Instant::now();
        let mut due = Vec::new();
        for (peer, state) in self.peers.iter_mut() {
            let Some(r) = &mut state.redial else { continue };
            if r.at > now || state.connections > 0 {
                continue;
            }
            if r.attempt >= MAX_REDIALS || state.addrs.is_empty() {
                state.redial = None;
                continue;
            }
            let backoff = Duration::from_secs(1u64 << r.attempt.min(6));
            r.at = now + backoff;
            r.attempt += 1;
            due.push((*peer, state.addrs.clone()));
        }
        for (peer, addrs) in due {
            tracing::debug!(%peer, "redialling");
            self.dial(Some(peer), addrs, None).await;
        }
    }
}
