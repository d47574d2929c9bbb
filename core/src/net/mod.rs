//! Peers and paths: one libp2p swarm, driven by one task, and [`Net`], the typed client every
//! other part holds (dial, open a stream, who is connected, how, and a subscription to
//! connection changes). Nobody else touches the swarm.
//!
//! Transports: QUIC, TCP with Noise and Yamux, and [links](link) (byte streams the host hands
//! over, Noise and Yamux too); every connection is authenticated and encrypted. Beyond the LAN: circuits through the relays the user configured (circuit relay v2),
//! upgraded to direct connections by hole punching (DCUtR) where the NATs allow, and AutoNAT to
//! learn whether this device is reachable. No DNS transport, no bootstrap peers: the node dials
//! only what it was given or found. Application protocols frame their messages with
//! [`framing`].

mod connections;
mod dial_error;
pub mod framing;
pub mod gate;
mod link;
mod paths;
mod pipe;
mod relays;
mod swarm;
mod transport;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

pub use link::{LINK_TIMEOUT, Link, LinkDirection, LinkIo, MAX_LINKS, link_of};
pub use paths::Path;
pub use pipe::{HostEnd, MAX_CHUNK, PIPE_CHUNKS, PipeClosed, PipeLink, link_pipe};
pub use swarm::MAX_MEMORY;
pub use transport::{Transport, is_relayed, learned_dialable};

use crate::error::{Error, FailureKind, Result};
use link::Links;
use paths::PathTable;
use swarm::Command;

/// The identify protocol version every meshdrop node speaks.
pub const PROTOCOL: &str = "/meshdrop/1";

/// How long a stream to a peer reached only through a relay waits for hole punching to open a
/// direct path (it usually takes a few round trips; failures take longer and end the wait).
pub const UPGRADE_WINDOW: Duration = Duration::from_secs(2);

/// A change in who is connected, for the parts that follow connections (transfers, messaging).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A first connection to the peer is up.
    Connected {
        /// The peer.
        peer: PeerId,
        /// Whether it goes through a relay.
        relayed: bool,
    },
    /// A direct connection replaced the relayed ones of the peer.
    Upgraded {
        /// The peer.
        peer: PeerId,
    },
    /// The last connection to the peer closed.
    Disconnected {
        /// The peer.
        peer: PeerId,
    },
}

/// What the swarm reports to the node, for the app.
#[derive(Debug)]
pub enum NetEvent {
    /// A listener got an address.
    NewListenAddr(Multiaddr),
    /// A connection is up.
    Connected {
        /// The peer (authenticated).
        peer: PeerId,
        /// The remote address.
        addr: Multiaddr,
        /// Whether it goes through a relay.
        relayed: bool,
        /// The medium of the link carrying it (`None`: not a link).
        medium: Option<String>,
        /// Whether it is the first connection to this peer.
        first: bool,
        /// Whether it is carried better than the peer's connections until now (direct or a link
        /// over a relay, direct over a link): those are closed, transfers and messages move over.
        upgraded: bool,
    },
    /// A connection closed.
    Disconnected {
        /// The peer.
        peer: PeerId,
        /// Whether it was the last connection to this peer.
        last: bool,
    },
    /// The peer identified itself.
    Identified {
        /// The peer.
        peer: PeerId,
        /// Its agent string.
        agent: String,
        /// Its protocol version.
        protocol: String,
        /// Its listen addresses.
        listen_addrs: Vec<Multiaddr>,
    },
    /// An outgoing dial failed.
    DialFailed {
        /// The peer, when known.
        peer: Option<PeerId>,
        /// Why.
        error: String,
        /// What kind of failure.
        kind: FailureKind,
    },
    /// A relay holds a slot for this device: it is reachable at `addr` through it.
    RelayReserved {
        /// The relay.
        relay: PeerId,
        /// The relayed address (`<relay address>/p2p-circuit`).
        addr: Multiaddr,
    },
    /// A relayed address of this device no longer works (the reservation ended or was refused);
    /// the node asks again later.
    RelayLost {
        /// The relay address, as configured.
        relay: Multiaddr,
        /// The relayed addresses that stopped working.
        addrs: Vec<Multiaddr>,
        /// Why the reservation is gone; `None` when only an address expired.
        reason: Option<String>,
    },
    /// Hole punching to a peer reached through a relay failed; the relayed connection stays.
    HolePunchFailed {
        /// The peer.
        peer: PeerId,
        /// Why.
        error: String,
    },
    /// AutoNAT's view of this device's reachability changed.
    Reachability {
        /// Reachable from the internet at this address; `None`: behind a NAT or firewall.
        public: Option<Multiaddr>,
    },
}

/// What the swarm task and the clients share.
struct Shared {
    commands: mpsc::Sender<Command>,
    streams: libp2p_stream::Control,
    paths: PathTable,
    changes: broadcast::Sender<Change>,
    local: PeerId,
    /// Whether every listen address is a loopback one.
    loopback_only: bool,
    links: Arc<Links>,
    /// Who waits for an inbound link to become a connection, by link number.
    link_waiters: std::sync::Mutex<HashMap<u64, oneshot::Sender<Result<PeerId>>>>,
}

impl Shared {
    /// Takes the waiter of inbound link `n`, if any.
    fn link_waiter(&self, n: u64) -> Option<oneshot::Sender<Result<PeerId>>> {
        let mut waiters = self.link_waiters.lock().unwrap_or_else(|p| p.into_inner());
        waiters.remove(&n)
    }
}

/// The client of the swarm: cheap to clone, every method safe to call from any task.
#[derive(Clone)]
pub struct Net {
    shared: Arc<Shared>,
}

/// A started swarm: the client, the node's event feed, and the task with its inbound streams.
pub struct Started {
    /// The client.
    pub net: Net,
    /// What the node should hear (for the app and its peer table).
    pub events: mpsc::Receiver<NetEvent>,
    /// The task and the inbound streams of the registered protocols.
    pub task: NetTask,
}

/// The swarm task, and the inbound streams of the protocols registered at start until taken.
pub struct NetTask {
    incoming: HashMap<StreamProtocol, libp2p_stream::IncomingStreams>,
    task: JoinHandle<()>,
    net: Net,
}

/// Builds the swarm, accepts `protocols` (before listening, so no early stream is refused),
/// listens on `listen`, asks `relays` for a slot and spawns the task driving it.
///
/// Fails when no listen address works; addresses that fail while others work are logged.
pub fn start(
    key: Keypair,
    agent: String,
    listen: &[Multiaddr],
    relays: &[Multiaddr],
    protocols: &[StreamProtocol],
    max_memory: Option<usize>,
) -> Result<Started> {
    let local = key.public().to_peer_id();
    let links = Arc::new(Links::default());
    let mut swarm = swarm::build(key, agent, links.clone(), max_memory)?;
    let streams = swarm.behaviour().stream.new_control();
    let mut incoming = HashMap::new();
    for protocol in protocols {
        let accepted = streams
            .clone()
            .accept(protocol.clone())
            .map_err(|e| Error::Network {
                reason: format!("cannot accept {protocol}: {e}"),
            })?;
        incoming.insert(protocol.clone(), accepted);
    }
    listen_on(&mut swarm, listen)?;
    swarm
        .listen_on(link::link_addr(link::LISTEN_ID))
        .map_err(|e| Error::Network {
            reason: format!("cannot accept links: {e}"),
        })?;
    let (commands, command_rx) = mpsc::channel(256);
    let (events_tx, events) = mpsc::channel(1024);
    let shared = Arc::new(Shared {
        commands,
        streams,
        paths: PathTable::default(),
        changes: broadcast::channel(1024).0,
        local,
        loopback_only: loopback_only(listen),
        links,
        link_waiters: Default::default(),
    });
    let mut driver = swarm::Driver {
        swarm,
        shared: shared.clone(),
        events: events_tx,
        relays: relays::Relays::new(relays),
        pending: HashMap::new(),
        waiting: HashMap::new(),
        conns: Default::default(),
        upgrade_dials: Default::default(),
        link_conns: HashMap::new(),
    };
    driver.reserve_due();
    let net = Net { shared };
    let task = tokio::spawn(driver.run(command_rx));
    Ok(Started {
        net: net.clone(),
        events,
        task: NetTask {
            incoming,
            task,
            net,
        },
    })
}

/// Whether every address of `listen` is a loopback one.
fn loopback_only(listen: &[Multiaddr]) -> bool {
    use libp2p::multiaddr::Protocol;
    !listen.is_empty()
        && listen.iter().all(|a| match a.iter().next() {
            Some(Protocol::Ip4(ip)) => ip.is_loopback(),
            Some(Protocol::Ip6(ip)) => ip.is_loopback(),
            _ => false,
        })
}

/// Listens on every address that works; an error only when none does (no address at all is
/// fine: the node dials out and takes links).
fn listen_on(swarm: &mut libp2p::Swarm<swarm::Behaviour>, listen: &[Multiaddr]) -> Result<()> {
    let mut last_err = None;
    let mut listening = 0;
    for addr in listen {
        match swarm.listen_on(addr.clone()) {
            Ok(_) => listening += 1,
            Err(e) => {
                tracing::warn!(%addr, error = %e, "cannot listen");
                last_err = Some(Error::Listen {
                    addr: addr.to_string(),
                    reason: e.to_string(),
                });
            }
        }
    }
    match (listening, last_err) {
        (0, Some(e)) => Err(e),
        _ => Ok(()),
    }
}

impl NetTask {
    /// The inbound streams of a protocol given to [`start`] (once).
    pub fn take_incoming(
        &mut self,
        protocol: &StreamProtocol,
    ) -> Result<libp2p_stream::IncomingStreams> {
        self.incoming
            .remove(protocol)
            .ok_or_else(|| Error::Network {
                reason: format!("{protocol} was not registered at start, or taken already"),
            })
    }

    /// Closes every connection and waits for the swarm task to end.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.net.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.await;
    }
}

impl Net {
    async fn send(&self, cmd: Command) -> Result<()> {
        self.shared
            .commands
            .send(cmd)
            .await
            .map_err(|_| Error::Stopped)
    }

    /// This device's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.shared.local
    }

    /// Connects to `peer` (at `addrs`, or at what the swarm knows of it) within `within`.
    /// Already connected counts as connected.
    pub async fn dial(&self, peer: PeerId, addrs: Vec<Multiaddr>, within: Duration) -> Result<()> {
        self.dial_and_wait(Some(peer), addrs, within)
            .await
            .map(drop)
    }

    /// Connects to an address whose peer id is not known; returns the peer that answered.
    pub async fn dial_addr(&self, addr: Multiaddr, within: Duration) -> Result<PeerId> {
        self.dial_and_wait(None, vec![addr], within).await
    }

    async fn dial_and_wait(
        &self,
        peer: Option<PeerId>,
        addrs: Vec<Multiaddr>,
        within: Duration,
    ) -> Result<PeerId> {
        if let Some(peer) = peer {
            self.shared.paths.set_wanted(peer);
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::Dial {
            peer,
            addrs,
            reply: Some(reply),
        })
        .await?;
        match tokio::time::timeout(within, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(Error::Timeout {
                what: "connecting".into(),
                secs: within.as_secs(),
            }),
        }
    }

    /// Starts dialling `peer` without waiting for the outcome (discovery, redials); dropped when
    /// the swarm task is far behind.
    pub fn dial_later(&self, peer: PeerId, addrs: Vec<Multiaddr>) {
        self.shared.paths.set_wanted(peer);
        let cmd = Command::Dial {
            peer: Some(peer),
            addrs,
            reply: None,
        };
        if self.shared.commands.try_send(cmd).is_err() {
            tracing::debug!(%peer, "swarm busy or gone, dial dropped");
        }
    }

    /// Closes every connection to `peer` (one that sent corrupt data, say).
    pub async fn disconnect(&self, peer: PeerId) {
        let _ = self.send(Command::Disconnect(peer)).await;
    }

    /// Opens an application stream to `peer`. A peer reached only through a relay first gets up
    /// to [`UPGRADE_WINDOW`] for hole punching: a stream opened on the relayed connection would
    /// die when the direct one replaces it.
    pub async fn open_stream(
        &self,
        peer: PeerId,
        protocol: StreamProtocol,
    ) -> std::result::Result<libp2p::Stream, libp2p_stream::OpenStreamError> {
        self.shared.paths.wait_direct(&peer, UPGRADE_WINDOW).await;
        self.shared
            .streams
            .clone()
            .open_stream(peer, protocol)
            .await
    }

    /// The peers connected now.
    pub fn connected(&self) -> Vec<PeerId> {
        self.shared.paths.connected()
    }

    /// The path to `peer` while it is connected: relayed or direct, hole punching, round trip.
    pub fn path(&self, peer: &PeerId) -> Option<Path> {
        self.shared.paths.path(peer)
    }

    /// Whether an address another peer named may be dialled ([`learned_dialable`]).
    pub fn may_dial_learned(&self, addr: &Multiaddr) -> bool {
        learned_dialable(addr, self.shared.loopback_only)
    }

    /// Whether a part of this node (a download, an offer, a redial) tried to reach `peer`
    /// within `window`: a link to it is worth opening.
    pub fn wanted(&self, peer: &PeerId, window: Duration) -> bool {
        self.shared.paths.wanted_within(peer, window)
    }

    /// The addresses `peer` said it listens on (kept for a while after it disconnects).
    pub fn listen_addrs_of(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.shared.paths.listen_addrs(peer)
    }

    /// Connection changes from now on. A receiver that falls behind misses some (and is told):
    /// it should then read [`Net::connected`] again.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.shared.changes.subscribe()
    }

    /// Makes a byte stream to a nearby device a connection (Noise and Yamux over it, as over TCP)
    /// and returns it once the peer is authenticated. `direction` says which side handshakes
    /// first: the device that opened the link dials. Fails within [`LINK_TIMEOUT`] when no
    /// meshdrop node answers, and when [`MAX_LINKS`] links are open already.
    pub async fn add_link(
        &self,
        io: Box<dyn LinkIo>,
        direction: LinkDirection,
        medium: &str,
    ) -> Result<Link> {
        let links = &self.shared.links;
        let (n, closed) = links.add(io, medium)?;
        let peer = match direction {
            LinkDirection::Outbound => self.dial_addr(link::link_addr(n), LINK_TIMEOUT).await,
            LinkDirection::Inbound => self.wait_inbound_link(n).await,
        };
        if peer.is_err() {
            links.forget(n);
        }
        Ok(Link {
            peer: peer?,
            closed,
        })
    }

    async fn wait_inbound_link(&self, n: u64) -> Result<PeerId> {
        let (tx, rx) = oneshot::channel();
        let waiters = &self.shared.link_waiters;
        waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(n, tx);
        self.shared.links.accept(n);
        let outcome = tokio::time::timeout(LINK_TIMEOUT, rx).await;
        self.shared.link_waiter(n);
        match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(Error::Timeout {
                what: "the link's handshake".into(),
                secs: LINK_TIMEOUT.as_secs(),
            }),
        }
    }

    /// Whether the swarm task has stopped.
    pub fn is_closed(&self) -> bool {
        self.shared.commands.is_closed()
    }
}
