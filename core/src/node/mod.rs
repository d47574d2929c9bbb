//! The node: assembles the parts ([`Node::start`], in `start.rs`), owns the peer table through
//! its supervisor (`supervisor.rs`), turns the capabilities' notices into the app's events
//! (`bus.rs`), and offers the API the CLI and the bindings use. It decides nothing about
//! transfers or messages itself.

mod addrs;
mod auto_fetch;
mod bus;
mod chat;
mod data_dir;
mod hints;
mod links;
mod start;
mod supervisor;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

pub use data_dir::DataDir;
pub use links::LinkDriver;

use crate::config::{AutoFetch, NodeConfig};
use crate::contacts::{self, Contact, Via};
use crate::discovery::{self, Update};
use crate::error::{Error, Result};
use crate::events::{Event, PeerInfo};
use crate::identity;
use crate::messaging::service::Messenger;
use crate::net::{Link, LinkDirection, LinkIo, Net};
use crate::store::Store;
use crate::transfer::limits::TransferLimits;
use crate::transfer::offer::{Decision, PendingOffer, SendOutcome};
use crate::transfer::state::UnfinishedDownload;
use crate::transfer::{
    ContentId, DownloadSpec, FileSource, Provider, ShareError, ShareHealth, ShareInfo, ShareKey,
    ShareKind, Ticket, TransferHandle, Transfers, Visibility,
};
use addrs::is_wildcard;
use bus::Bus;
use supervisor::Command;

/// How long `connect` and `add_peer` wait for a connection.
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
    bus: Bus,
    net: Net,
    supervisor: mpsc::Sender<Command>,
    tasks: Mutex<Option<Tasks>>,
    transfers: Transfers,
    messenger: Arc<Messenger>,
    store: Arc<Store>,
    /// How long attachments are served unless pinned.
    attachment_ttl: Duration,
    /// The transfer limits the node started with (off battery).
    limits: TransferLimits,
    /// What this node advertises with DNS-SD (also what a platform browser driver advertises).
    advert: discovery::Advert,
    /// Discovery updates from a platform's own browser (Bonjour, Android NSD).
    platform_discovery: mpsc::Sender<Update>,
    /// What room attachments the node fetches by itself.
    fetcher: Arc<auto_fetch::Fetcher>,
}

/// The node's long-running tasks, ended by [`Node::stop`].
struct Tasks {
    server: JoinHandle<()>,
    offer_server: JoinHandle<()>,
    message_sync: JoinHandle<()>,
    auto_fetch: JoinHandle<()>,
    supervisor: Option<JoinHandle<()>>,
}

impl Node {
    /// Starts a node: opens the data dir, loads or creates the identity, opens the store, listens,
    /// advertises and browses with mDNS, re-dials peers seen recently, and (when configured)
    /// resumes the downloads that were running when it last stopped.
    pub async fn start(config: NodeConfig) -> Result<Node> {
        start::start(config).await
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
        self.inner.bus.subscribe()
    }

    /// The code both people see for the connection between this device and `other`.
    pub fn verification_code(&self, other: &PeerId) -> String {
        identity::verification_code(&self.inner.peer_id, other)
    }

    /// Peers discovered, connected, added or remembered.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Peers(tx)).await?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Adds a peer found by other means (a platform's Bonjour/NSD browser, a ticket, a user) and
    /// connects to it; the node keeps redialling it when it drops.
    pub async fn add_peer(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::AddPeer { peer, addrs, reply })
            .await?;
        let all = rx.await.map_err(|_| Error::Stopped)??;
        self.inner.net.dial(peer, all, CONNECT_TIMEOUT).await
    }

    /// The host's network changed (Wi-Fi joined or left, back from a suspension): connections may
    /// be dead and addresses new, so every remembered peer worth a connection that is not
    /// connected is dialled again now, its redial backoff started afresh.
    pub async fn network_changed(&self) -> Result<()> {
        self.command(Command::NetworkChanged).await
    }

    /// Connects to a multiaddr (with or without `/p2p/<peer id>`) and returns the peer that answered.
    pub async fn connect(&self, addr: Multiaddr) -> Result<PeerId> {
        match addr.iter().last() {
            Some(Protocol::P2p(peer)) => self.add_peer(peer, vec![addr]).await.map(|()| peer),
            _ => self.inner.net.dial_addr(addr, CONNECT_TIMEOUT).await,
        }
    }

    /// Makes a byte stream to a nearby device, handed over by the host (Wi-Fi Aware, AWDL,
    /// Bluetooth, a Unix socket), a connection: Noise and Yamux over it as over TCP, so the peer
    /// is authenticated and every protocol works over it. The side that opened the link is
    /// `Outbound`. `medium` names what carries it (shown in events and peers); `device` is the
    /// host's name for the device when it reported it nearby. Returns once the peer is known;
    /// [`Link::closed`] tells when the link's connection ends (a better path replaces a link,
    /// and a link idle for 5 minutes is closed: links cost battery).
    pub async fn add_link(
        &self,
        io: Box<dyn LinkIo>,
        direction: LinkDirection,
        medium: &str,
        device: Option<String>,
    ) -> Result<Link> {
        let link = self.inner.net.add_link(io, direction, medium).await?;
        if let Some(device) = device {
            let medium = medium.to_string();
            let peer = link.peer;
            self.command(Command::Linked {
                medium,
                device,
                peer,
            })
            .await?;
        }
        Ok(link)
    }

    /// Uses the host's link driver on `media` (`wifi-aware`, `awdl`, `bluetooth`…): discovery
    /// starts on each at once, and the node asks the driver for links to the devices worth one
    /// (contacts, peers it tries to reach, devices of unknown identity).
    pub async fn set_link_driver(
        &self,
        driver: Arc<dyn LinkDriver>,
        media: Vec<String>,
    ) -> Result<()> {
        self.command(Command::SetLinkDriver { driver, media }).await
    }

    /// The host's link driver sees `device` on `medium`, with its peer id when the medium carried
    /// it (a few bytes of service info); the node may ask for a link to it.
    pub async fn device_nearby(
        &self,
        medium: &str,
        device: &str,
        peer: Option<PeerId>,
    ) -> Result<()> {
        if peer == Some(self.peer_id()) {
            return Ok(()); // The host heard this device's own advertisement.
        }
        let (medium, device) = (medium.to_string(), device.to_string());
        self.command(Command::DeviceNearby {
            medium,
            device,
            peer,
        })
        .await
    }

    /// The host's link driver no longer sees `device` on `medium`.
    pub async fn device_lost(&self, medium: &str, device: &str) -> Result<()> {
        let (medium, device) = (medium.to_string(), device.to_string());
        self.command(Command::DeviceLost { medium, device }).await
    }

    /// Discovery on `medium` failed in the host (radio off, idle timeout, app suspended): the
    /// node asks the driver to start it again after a wait (5 s, doubling to 5 minutes).
    pub async fn link_discovery_failed(&self, medium: &str) -> Result<()> {
        let medium = medium.to_string();
        self.command(Command::DiscoveryFailed { medium }).await
    }

    /// Shares files and folders under a new key: hashes them (streaming), remembers the share so
    /// it is served again after a restart, and returns a ticket naming this device and its
    /// addresses. The ticket is the only key to the share: whoever holds it can fetch it.
    pub async fn share(&self, paths: Vec<PathBuf>) -> Result<Ticket, ShareError> {
        let shared = self.inner.transfers.share(paths, ShareKind::Shared, None);
        let (content, key) = shared.await?;
        Ok(self.ticket_for(content, key))
    }

    /// Shares the files the host opens on demand (an app's content URIs) under a new key, never
    /// copying them: hashes them through `source`, serves them through it while this run lasts,
    /// and returns a ticket as [`Node::share`] does. After a restart the share is listed as
    /// unavailable until the host shares the same files again.
    pub async fn share_source(&self, source: Arc<dyn FileSource>) -> Result<Ticket, ShareError> {
        let shared = self.inner.transfers.share_source(source, ShareKind::Shared);
        let (content, key) = shared.await?;
        Ok(self.ticket_for(content, key))
    }

    /// Stops serving the share named `id` (as `shares` lists it) at once: open sessions end, and
    /// its ticket opens nothing here any more.
    pub fn unshare(&self, id: &str) -> Result<ShareInfo> {
        self.inner.transfers.unshare(id)
    }

    /// What this device serves: each share (a key), what it holds, and how much it served.
    pub fn shares(&self) -> Result<Vec<ShareInfo>> {
        self.inner.transfers.shares()
    }

    /// Checks the files of share `id` (its short id, as [`Node::shares`] lists it; every share
    /// when `None`) against its manifest, reading every byte. What no longer verifies is no
    /// longer served and is reported (`share_damaged`); a share that came from others is repaired
    /// from the peers holding its key (`share_repaired`). Returns what each share held.
    pub async fn verify(&self, id: Option<&str>) -> Result<Vec<ShareHealth>> {
        self.inner.transfers.verify(id).await
    }

    /// Who may offer files to this device from now on; `for_` bounds it (then back to contacts),
    /// as phones do for `Everyone` (10 minutes).
    pub fn set_visibility(&self, visibility: Visibility, for_: Option<Duration>) {
        self.inner.transfers.set_visibility(visibility, for_);
    }

    /// Who may offer files to this device now.
    pub fn visibility(&self) -> Visibility {
        self.inner.transfers.visibility()
    }

    /// The rate limits and upload slots in force.
    pub fn limits(&self) -> TransferLimits {
        self.inner.transfers.limits()
    }

    /// What room attachments this node fetches by itself.
    pub fn auto_fetch(&self) -> AutoFetch {
        self.inner.fetcher.settings()
    }

    /// Changes what room attachments this node fetches by itself, from the next one on.
    pub fn set_auto_fetch(&self, settings: AutoFetch) {
        self.inner.fetcher.set(settings);
    }

    /// Tells the node whether the network is metered (a phone's mobile data): room attachments
    /// are then not fetched by themselves unless [`AutoFetch::on_metered`].
    pub fn set_metered(&self, metered: bool) {
        self.inner.fetcher.set_metered(metered);
    }

    /// Whether the node was told the network is metered.
    pub fn is_metered(&self) -> bool {
        self.inner.fetcher.metered()
    }

    /// Tells the node whether the device runs on battery: on battery it still seeds, within the
    /// battery limits (2 MB/s to two peers at a time); on power, within the limits it started
    /// with. Running transfers follow at once. Room attachments are not fetched by themselves
    /// on battery unless [`AutoFetch::on_battery`].
    pub fn set_on_battery(&self, on_battery: bool) {
        self.inner.fetcher.set_on_battery(on_battery);
        let limits = if on_battery {
            TransferLimits::on_battery()
        } else {
            self.inner.limits
        };
        self.inner.transfers.set_limits(limits);
    }

    /// Makes `peer` a contact named `name` (the user compared the verification code). A contact
    /// added earlier takes the new name.
    pub fn add_contact(&self, peer: PeerId, name: &str) -> Result<()> {
        if peer == self.inner.peer_id {
            return Err(Error::Message("that is this device's own peer id".into()));
        }
        contacts::add(&self.inner.store, &peer, name, Via::Code).map(drop)
    }

    /// Makes the sender a ticket offers as a contact a contact, under the name the ticket gives;
    /// `false` when the ticket offers none (or it is a contact already).
    pub fn accept_contact_offer(&self, ticket: &Ticket) -> Result<bool> {
        match (&ticket.contact, ticket.providers.first()) {
            (Some(name), Some(sender)) if sender.peer != self.inner.peer_id => {
                contacts::add(&self.inner.store, &sender.peer, name, Via::Ticket)
            }
            _ => Ok(false),
        }
    }

    /// Gives contact `peer` another name.
    pub fn rename_contact(&self, peer: PeerId, name: &str) -> Result<()> {
        contacts::rename(&self.inner.store, &peer, name)
    }

    /// Makes contact `peer` a stranger again.
    pub fn remove_contact(&self, peer: PeerId) -> Result<()> {
        contacts::remove(&self.inner.store, &peer)
    }

    /// This device's addresses through relays (empty when no relay holds a slot for it).
    pub fn relayed_addrs(&self) -> Vec<Multiaddr> {
        self.inner
            .relayed_addrs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A ticket for `content`, opened by `key`, naming this device as provider with its direct
    /// addresses and its addresses through relays.
    pub fn ticket_for(&self, content: ContentId, key: ShareKey) -> Ticket {
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
        let me = Provider {
            peer: self.inner.peer_id,
            addrs,
        };
        Ticket::new(content, key, vec![me])
    }

    /// Starts downloading a share; progress arrives as events and on the handle's status, the
    /// handle pauses, resumes, cancels and waits. Running the same download again resumes it.
    pub fn download(&self, spec: DownloadSpec) -> TransferHandle {
        self.inner.transfers.download(spec)
    }

    /// The downloads that have not finished: running, waiting for someone who has the share, or
    /// interrupted by a stop (a start resumes them). What a host's background task asks to know
    /// whether there is work left.
    pub fn unfinished_downloads(&self) -> Result<Vec<UnfinishedDownload>> {
        self.inner.transfers.unfinished_downloads()
    }

    /// Offers files to a nearby peer (AirDrop-style) and follows the offer to its end: declined,
    /// or delivered and verified on the receiver. Progress arrives as `send_progress` events.
    pub async fn send_files(
        &self,
        peer: PeerId,
        paths: Vec<PathBuf>,
    ) -> Result<SendOutcome, ShareError> {
        let shared = self.inner.transfers.share(paths, ShareKind::Offer, None);
        let (content, key) = shared.await?;
        self.offer(peer, content, key).await
    }

    /// Offers the files the host opens on demand to a nearby peer, as [`Node::send_files`] does,
    /// reading them through `source` (never copied).
    pub async fn send_source(
        &self,
        peer: PeerId,
        source: Arc<dyn FileSource>,
    ) -> Result<SendOutcome, ShareError> {
        let shared = self.inner.transfers.share_source(source, ShareKind::Offer);
        let (content, key) = shared.await?;
        self.offer(peer, content, key).await
    }

    /// Offers `content`, opened by `key` (made for this offer), to `peer` and follows the offer.
    async fn offer(
        &self,
        peer: PeerId,
        content: ContentId,
        key: ShareKey,
    ) -> Result<SendOutcome, ShareError> {
        let ticket = self.ticket_for(content, key);
        let addrs = self
            .peers()
            .await?
            .into_iter()
            .find(|p| p.peer == peer)
            .map(|p| p.addrs)
            .unwrap_or_default();
        if let Err(e) = self.inner.net.dial(peer, addrs, CONNECT_TIMEOUT).await {
            // The peer may be connecting to this device right now (it found this one first, and
            // a connection it gave up on just closed): the offer stream's own tries decide.
            tracing::debug!(%peer, error = %e, "dial before the offer failed");
        }
        let name = &self.inner.name;
        Ok(self.inner.transfers.send_offer(peer, &ticket, name).await?)
    }

    /// The offers received that wait for an answer: what the app shows when it comes back, so
    /// an offer is never lost with an event it missed.
    pub fn pending_offers(&self) -> Vec<PendingOffer> {
        self.inner.transfers.pending_offers()
    }

    /// Answers an `offer_received` event: accept (all or some files, into a folder) or decline.
    pub fn respond_offer(&self, offer: u64, decision: Decision) -> Result<()> {
        self.inner.transfers.respond_offer(offer, decision)
    }

    /// The contacts: the devices the user chose to trust, with the names the user gave them.
    pub fn contacts(&self) -> Result<Vec<Contact>> {
        contacts::list(&self.inner.store)
    }

    /// Stops the node: downloads record what they wrote (to resume at the next start), mDNS
    /// goodbye, connections closed, store flushed. Returns when all is done.
    pub async fn stop(&self) -> Result<()> {
        self.inner.transfers.stop().await;
        let tasks = self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(tasks) = tasks else {
            return Ok(()); // stopped already
        };
        tasks.server.abort();
        tasks.offer_server.abort();
        tasks.message_sync.abort();
        tasks.auto_fetch.abort();
        let (tx, rx) = oneshot::channel();
        if self.command(Command::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
        if let Some(task) = tasks.supervisor {
            let _ = task.await;
        }
        Ok(())
    }

    async fn command(&self, cmd: Command) -> Result<()> {
        self.inner
            .supervisor
            .send(cmd)
            .await
            .map_err(|_| Error::Stopped)
    }
}
