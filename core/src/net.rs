//! The libp2p swarm, driven by one task: commands in, events out, no shared locks.
//!
//! Transports: QUIC, and TCP with Noise and Yamux; every connection is authenticated and encrypted.
//! Beyond the LAN: circuits through the relays the user configured (circuit relay v2), upgraded to
//! direct connections by hole punching (DCUtR) where the NATs allow, and AutoNAT to learn whether
//! this device is reachable. No DNS transport, no bootstrap peers: the node dials only what it was
//! given or found.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::transport::ListenerId;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, autonat, dcutr, identify, noise, ping, relay, tcp,
    yamux,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::events::Transport;
use crate::relay::is_relayed;
use crate::transfer::directory::{Directory, UPGRADE_WINDOW};

/// The identify protocol version every meshdrop node speaks.
pub const PROTOCOL: &str = "/meshdrop/1";

/// The libp2p behaviours of a node.
#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    stream: libp2p_stream::Behaviour,
    relay: relay::client::Behaviour,
    dcutr: dcutr::Behaviour,
    autonat: autonat::Behaviour,
}

/// First wait before a lost relay reservation is asked for again; doubles up to [`RELAY_RETRY_MAX`].
const RELAY_RETRY: Duration = Duration::from_secs(2);
/// Longest wait between attempts to reserve on a relay.
const RELAY_RETRY_MAX: Duration = Duration::from_secs(300);

/// A reply to a dial: the peer that answered, or why it failed.
pub type DialReply = oneshot::Sender<Result<PeerId>>;

/// What the rest of the node asks of the swarm.
#[derive(Debug)]
pub enum Command {
    /// Dial a peer (known id, addresses) or an address (id unknown).
    Dial {
        /// The peer, when known.
        peer: Option<PeerId>,
        /// Addresses to try.
        addrs: Vec<Multiaddr>,
        /// Told when a connection is up or the dial failed.
        reply: Option<DialReply>,
    },
    /// Close every connection to a peer (e.g. one that sent corrupt data).
    Disconnect(PeerId),
    /// The addresses the node listens on.
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    /// Close every connection and stop.
    Shutdown(oneshot::Sender<()>),
}

/// What the swarm reports.
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
        /// Whether it is the first connection to this peer.
        first: bool,
        /// Whether it is direct while the peer was reached only through a relay until now (the
        /// relayed connections are closed: transfers and messages go direct).
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
    /// A ping to the peer came back.
    RoundTrip {
        /// The peer.
        peer: PeerId,
        /// The round-trip time.
        rtt: Duration,
    },
}

/// A handle on the swarm task.
pub struct Net {
    /// Commands to the swarm task.
    pub commands: mpsc::Sender<Command>,
    /// Opens application streams (transfers, messages).
    pub streams: libp2p_stream::Control,
    /// Incoming streams of the protocols registered at start, until taken.
    incoming: HashMap<StreamProtocol, libp2p_stream::IncomingStreams>,
    task: JoinHandle<()>,
}

impl Net {
    /// Builds the swarm, accepts `protocols` (before listening, so no early stream is refused),
    /// starts listening on `listen` and spawns the task driving it.
    ///
    /// Fails when no listen address works; addresses that fail while others work are logged.
    pub fn start(
        key: Keypair,
        agent: String,
        listen: &[Multiaddr],
        relays: &[Multiaddr],
        events: mpsc::Sender<NetEvent>,
        protocols: &[StreamProtocol],
        directory: Arc<Directory>,
    ) -> Result<Self> {
        let mut swarm = build_swarm(key, agent)?;
        let streams = swarm.behaviour().stream.new_control();
        let mut incoming = HashMap::new();
        for protocol in protocols {
            let accepted = streams
                .clone()
                .accept(protocol.clone())
                .map_err(|e| Error::Listen {
                    addr: protocol.to_string(),
                    reason: e.to_string(),
                })?;
            incoming.insert(protocol.clone(), accepted);
        }
        let mut listening = 0;
        let mut last_err = None;
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
        if listening == 0 {
            return Err(last_err.unwrap_or(Error::Listen {
                addr: "(none)".into(),
                reason: "no listen address configured".into(),
            }));
        }
        let mut relays = Relays::new(relays);
        relays.reserve_due(&mut swarm);
        let (commands, rx) = mpsc::channel(256);
        let task = tokio::spawn(run(swarm, rx, events, relays, directory));
        Ok(Self {
            commands,
            streams,
            incoming,
            task,
        })
    }

    /// The incoming streams of a protocol given to [`Net::start`] (once).
    pub fn take_incoming(
        &mut self,
        protocol: &StreamProtocol,
    ) -> Result<libp2p_stream::IncomingStreams> {
        self.incoming.remove(protocol).ok_or_else(|| Error::Listen {
            addr: protocol.to_string(),
            reason: "not registered at start, or taken already".into(),
        })
    }

    /// Closes every connection and waits for the swarm task to end.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.await;
    }
}

fn build_swarm(key: Keypair, agent: String) -> Result<Swarm<Behaviour>> {
    let internal = |e: &dyn std::fmt::Display| Error::Listen {
        addr: "(transport)".into(),
        reason: e.to_string(),
    };
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| internal(&e))?
        .with_quic()
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| internal(&e))?
        .with_behaviour(|key, relay| Behaviour {
            identify: identify::Behaviour::new(
                identify::Config::new(PROTOCOL.to_string(), key.public())
                    .with_agent_version(agent)
                    .with_push_listen_addr_updates(true),
            ),
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(10)),
            ),
            stream: libp2p_stream::Behaviour::new(),
            relay,
            dcutr: dcutr::Behaviour::new(key.public().to_peer_id()),
            autonat: autonat::Behaviour::new(
                key.public().to_peer_id(),
                autonat::Config {
                    boot_delay: Duration::from_secs(2),
                    retry_interval: Duration::from_secs(30),
                    // The relays are added as servers; other peers answer only from public IPs.
                    ..Default::default()
                },
            ),
        })
        .map_err(|e| internal(&e))?
        // Connections to nearby devices stay up while both run; ping notices dead ones.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(24 * 3600)))
        .build();
    Ok(swarm)
}

/// The relays this node keeps a reservation on, and when to ask again after one is lost.
struct Relays {
    entries: Vec<RelayEntry>,
}

struct RelayEntry {
    /// The relay's address, as configured (ends in `/p2p/<relay>`).
    addr: Multiaddr,
    /// The listener holding the reservation, while there is one.
    listener: Option<ListenerId>,
    /// The relayed addresses the reservation gave.
    reserved: Vec<Multiaddr>,
    /// When to ask again; `None` while a listener is up.
    retry_at: Option<tokio::time::Instant>,
    backoff: Duration,
}

impl Relays {
    fn new(addrs: &[Multiaddr]) -> Self {
        let now = tokio::time::Instant::now();
        Self {
            entries: addrs
                .iter()
                .map(|addr| RelayEntry {
                    addr: addr.clone(),
                    listener: None,
                    reserved: Vec::new(),
                    retry_at: Some(now),
                    backoff: RELAY_RETRY,
                })
                .collect(),
        }
    }

    /// Asks the relays whose turn it is for a reservation (a listener on `<relay>/p2p-circuit`).
    fn reserve_due(&mut self, swarm: &mut Swarm<Behaviour>) {
        let now = tokio::time::Instant::now();
        for e in &mut self.entries {
            if e.retry_at.is_none_or(|at| at > now) {
                continue;
            }
            if let Some(Protocol::P2p(relay)) = e.addr.iter().last() {
                swarm
                    .behaviour_mut()
                    .autonat
                    .add_server(relay, Some(e.addr.clone()));
            }
            match swarm.listen_on(e.addr.clone().with(Protocol::P2pCircuit)) {
                Ok(id) => {
                    e.listener = Some(id);
                    e.retry_at = None;
                }
                Err(err) => {
                    tracing::warn!(relay = %e.addr, error = %err, "cannot ask the relay for a slot");
                    e.retry_at = Some(now + e.backoff);
                    e.backoff = (e.backoff * 2).min(RELAY_RETRY_MAX);
                }
            }
        }
    }

    fn by_listener(&mut self, id: ListenerId) -> Option<&mut RelayEntry> {
        self.entries.iter_mut().find(|e| e.listener == Some(id))
    }
}

/// The connections to each peer: their remote addresses and whether each goes through a relay.
#[derive(Default)]
struct Paths(HashMap<PeerId, HashMap<ConnectionId, (Multiaddr, bool)>>);

impl Paths {
    /// Records a connection; for a direct one, returns the peer's relayed connections (to close:
    /// a swarm prefers direct peers, and streams pick any connection of a peer).
    fn add(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        remote: Multiaddr,
        relayed: bool,
    ) -> Vec<ConnectionId> {
        let conns = self.0.entry(peer).or_default();
        let superseded = if relayed {
            Vec::new()
        } else {
            conns
                .iter()
                .filter(|(_, (_, r))| *r)
                .map(|(c, _)| *c)
                .collect()
        };
        conns.insert(id, (remote, relayed));
        superseded
    }

    /// A relay's listen addresses on the IPs this node already reaches it at, over the transports
    /// (TCP, QUIC) it has no connection on yet. Hole punching needs this node's public address as
    /// the relay observes it on the transport the other side uses: one connection per transport
    /// gives one observed address per transport.
    fn missing_transports(&self, relay: &PeerId, listen: &[Multiaddr]) -> Vec<Multiaddr> {
        let Some(conns) = self.0.get(relay) else {
            return Vec::new();
        };
        fn ip(a: &Multiaddr) -> Option<Protocol<'_>> {
            a.iter().next()
        }
        let mut out: Vec<Multiaddr> = Vec::new();
        for addr in listen.iter().filter(|a| !is_relayed(a)) {
            let transport = Transport::of(addr);
            let reached = conns.values().any(|(remote, _)| ip(remote) == ip(addr));
            let covered = conns
                .values()
                .any(|(remote, _)| Transport::of(remote) == transport)
                || out.iter().any(|a| Transport::of(a) == transport);
            if reached && !covered && transport != Transport::Other {
                out.push(addr.clone());
            }
        }
        out
    }

    fn remove(&mut self, peer: PeerId, id: ConnectionId) {
        if let Some(conns) = self.0.get_mut(&peer) {
            conns.remove(&id);
            if conns.is_empty() {
                self.0.remove(&peer);
            }
        }
    }

    /// Whether every connection to the peer goes through a relay (none: false).
    fn only_relayed(&self, peer: &PeerId) -> bool {
        self.0
            .get(peer)
            .is_some_and(|c| !c.is_empty() && c.values().all(|(_, r)| *r))
    }

    fn has_direct(&self, peer: &PeerId) -> bool {
        self.0
            .get(peer)
            .is_some_and(|c| c.values().any(|(_, r)| !r))
    }
}

async fn run(
    mut swarm: Swarm<Behaviour>,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetEvent>,
    mut relays: Relays,
    directory: Arc<Directory>,
) {
    let mut pending: HashMap<ConnectionId, DialReply> = HashMap::new();
    let mut paths = Paths::default();
    // Dials to peers reached only through a relay: hole punching (or a plain direct attempt).
    let mut upgrade_dials: std::collections::HashSet<ConnectionId> = Default::default();
    let mut relay_tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = relay_tick.tick() => relays.reserve_due(&mut swarm),
            cmd = commands.recv() => match cmd {
                Some(Command::Dial { peer, addrs, reply }) => {
                    let opts = match peer {
                        Some(peer) => DialOpts::peer_id(peer)
                            .addresses(addrs)
                            .condition(PeerCondition::DisconnectedAndNotDialing)
                            .build(),
                        None => match addrs.into_iter().next() {
                            Some(addr) => DialOpts::unknown_peer_id().address(addr).build(),
                            None => {
                                if let Some(reply) = reply {
                                    let _ = reply.send(Err(Error::Unreachable { reason: "no address to dial".into() }));
                                }
                                continue;
                            }
                        },
                    };
                    let id = opts.connection_id();
                    match swarm.dial(opts) {
                        Ok(()) => {
                            if let Some(reply) = reply {
                                pending.insert(id, reply);
                            }
                        }
                        Err(e) => {
                            // Already connected counts as success for the caller.
                            let connected = peer.filter(|p| swarm.is_connected(p));
                            if let Some(reply) = reply {
                                let _ = reply.send(connected.ok_or(Error::Unreachable { reason: e.to_string() }));
                            }
                        }
                    }
                }
                Some(Command::Disconnect(peer)) => {
                    let _ = swarm.disconnect_peer_id(peer);
                }
                Some(Command::ListenAddrs(reply)) => {
                    let _ = reply.send(swarm.listeners().cloned().collect());
                }
                Some(Command::Shutdown(reply)) => {
                    close_all(&mut swarm).await;
                    let _ = reply.send(());
                    return;
                }
                None => return,
            },
            event = swarm.select_next_some() => {
                let out = match event {
                    SwarmEvent::NewListenAddr { listener_id, address } => match relays.by_listener(listener_id) {
                        Some(entry) => {
                            entry.backoff = RELAY_RETRY;
                            entry.reserved.push(address.clone());
                            relay_of(&address).map(|relay| NetEvent::RelayReserved { relay, addr: address })
                        }
                        None => Some(NetEvent::NewListenAddr(address)),
                    },
                    SwarmEvent::ExpiredListenAddr { listener_id, address } => {
                        relays.by_listener(listener_id).map(|entry| {
                            entry.reserved.retain(|a| a != &address);
                            NetEvent::RelayLost { relay: entry.addr.clone(), addrs: vec![address], reason: None }
                        })
                    }
                    SwarmEvent::ListenerClosed { listener_id, reason, .. } => {
                        relays.by_listener(listener_id).map(|entry| {
                            entry.listener = None;
                            entry.retry_at = Some(tokio::time::Instant::now() + entry.backoff);
                            entry.backoff = (entry.backoff * 2).min(RELAY_RETRY_MAX);
                            let reason = match reason {
                                Ok(()) => "the connection to the relay closed".to_string(),
                                Err(e) => error_chain(&e),
                            };
                            NetEvent::RelayLost {
                                relay: entry.addr.clone(),
                                addrs: std::mem::take(&mut entry.reserved),
                                reason: Some(reason),
                            }
                        })
                    }
                    SwarmEvent::Dialing { peer_id: Some(peer), connection_id } => {
                        if paths.only_relayed(&peer) {
                            upgrade_dials.insert(connection_id);
                        }
                        None
                    }
                    SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, num_established, .. } => {
                        upgrade_dials.remove(&connection_id);
                        let relayed = endpoint.is_relayed();
                        let had_direct = paths.has_direct(&peer_id);
                        let remote = endpoint.get_remote_address().clone();
                        let superseded = paths.add(peer_id, connection_id, remote, relayed);
                        // Before anyone hears of the connection: streams wait for a direct path.
                        directory.set_relayed(peer_id, paths.only_relayed(&peer_id));
                        if let Some(reply) = pending.remove(&connection_id) {
                            let _ = reply.send(Ok(peer_id));
                        }
                        for id in &superseded {
                            swarm.close_connection(*id);
                        }
                        Some(NetEvent::Connected {
                            peer: peer_id,
                            addr: endpoint.get_remote_address().clone(),
                            relayed,
                            first: num_established.get() == 1,
                            upgraded: !superseded.is_empty() && !had_direct,
                        })
                    }
                    SwarmEvent::ConnectionClosed { peer_id, connection_id, num_established, .. } => {
                        paths.remove(peer_id, connection_id);
                        directory.set_relayed(peer_id, paths.only_relayed(&peer_id));
                        Some(NetEvent::Disconnected { peer: peer_id, last: num_established == 0 })
                    }
                    SwarmEvent::OutgoingConnectionError { peer_id, connection_id, error } => {
                        let reason = error.to_string();
                        if let Some(reply) = pending.remove(&connection_id) {
                            let _ = reply.send(Err(Error::Unreachable { reason: reason.clone() }));
                        }
                        match peer_id {
                            Some(peer) if upgrade_dials.remove(&connection_id) => {
                                directory.set_punch_failed(peer);
                                Some(NetEvent::HolePunchFailed { peer, error: reason })
                            }
                            _ => Some(NetEvent::DialFailed { peer: peer_id, error: reason }),
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                        for addr in &info.listen_addrs {
                            swarm.add_peer_address(peer_id, addr.clone());
                        }
                        if info.protocols.contains(&relay::HOP_PROTOCOL_NAME) {
                            for addr in paths.missing_transports(&peer_id, &info.listen_addrs) {
                                tracing::debug!(relay = %peer_id, %addr, "connecting to the relay over another transport");
                                let opts = DialOpts::peer_id(peer_id)
                                    .addresses(vec![addr])
                                    .condition(PeerCondition::Always)
                                    .build();
                                if let Err(e) = swarm.dial(opts) {
                                    tracing::debug!(error = %e, "cannot dial the relay");
                                }
                            }
                        }
                        Some(NetEvent::Identified {
                            peer: peer_id,
                            agent: info.agent_version,
                            protocol: info.protocol_version,
                            listen_addrs: info.listen_addrs,
                        })
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Dcutr(dcutr::Event { remote_peer_id, result })) => match result {
                        Ok(_) => None, // the direct connection reports itself as `upgraded`
                        Err(e) => Some(NetEvent::HolePunchFailed { peer: remote_peer_id, error: error_chain(&e) }),
                    },
                    SwarmEvent::Behaviour(BehaviourEvent::Autonat(autonat::Event::StatusChanged { new, .. })) => match new {
                        autonat::NatStatus::Public(addr) => Some(NetEvent::Reachability { public: Some(addr) }),
                        autonat::NatStatus::Private => Some(NetEvent::Reachability { public: None }),
                        autonat::NatStatus::Unknown => None,
                    },
                    SwarmEvent::Behaviour(BehaviourEvent::Relay(e)) => {
                        tracing::debug!(event = ?e, "relay client");
                        None
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, result: Ok(rtt), .. })) => {
                        Some(NetEvent::RoundTrip { peer, rtt })
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, connection, result: Err(e) })) => {
                        tracing::debug!(%peer, error = %e, "ping failed, closing the connection");
                        swarm.close_connection(connection);
                        None
                    }
                    _ => None,
                };
                if let Some(out) = out
                    && events.send(out).await.is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Opens an application stream (transfer, offer, messages) to `peer`. A peer reached only
/// through a relay first gets up to [`UPGRADE_WINDOW`] for hole punching: a stream opened on the
/// relayed connection would die when the direct one replaces it.
pub async fn open_stream(
    control: &libp2p_stream::Control,
    directory: &Directory,
    peer: PeerId,
    protocol: StreamProtocol,
) -> std::result::Result<libp2p::Stream, libp2p_stream::OpenStreamError> {
    directory.wait_direct(&peer, UPGRADE_WINDOW).await;
    control.clone().open_stream(peer, protocol).await
}

/// The relay's peer id in a relayed address (`…/p2p/<relay>/p2p-circuit…`).
fn relay_of(addr: &Multiaddr) -> Option<PeerId> {
    let mut last_peer = None;
    for p in addr.iter() {
        match p {
            Protocol::P2p(peer) => last_peer = Some(peer),
            Protocol::P2pCircuit => return last_peer,
            _ => {}
        }
    }
    None
}

/// An error and its causes in one line ("Failed to get Reservation.: Remote reported resource
/// limit exceeded.").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

async fn close_all(swarm: &mut Swarm<Behaviour>) {
    let peers: Vec<PeerId> = swarm.connected_peers().copied().collect();
    for peer in peers {
        let _ = swarm.disconnect_peer_id(peer);
    }
    let deadline = tokio::time::sleep(Duration::from_secs(2));
    tokio::pin!(deadline);
    while swarm.connected_peers().next().is_some() {
        tokio::select! {
            _ = swarm.select_next_some() => {}
            _ = &mut deadline => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("test address")
    }

    #[test]
    fn the_relay_of_a_relayed_address_is_the_peer_before_the_circuit() {
        let relay = PeerId::random();
        let me = PeerId::random();
        let relayed = addr(&format!(
            "/ip4/198.18.0.10/tcp/4001/p2p/{relay}/p2p-circuit/p2p/{me}"
        ));
        assert_eq!(relay_of(&relayed), Some(relay));
        assert_eq!(
            relay_of(&addr(&format!("/ip4/1.2.3.4/tcp/1/p2p/{me}"))),
            None
        );
    }

    #[test]
    fn an_error_reads_with_its_causes_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("Failed to get Reservation.")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other(
            "Remote reported resource limit exceeded.",
        ));
        assert_eq!(
            error_chain(&e),
            "Failed to get Reservation.: Remote reported resource limit exceeded."
        );
    }

    #[test]
    fn a_direct_connection_supersedes_the_relayed_ones_of_its_peer() {
        let mut paths = Paths::default();
        let (peer, other) = (PeerId::random(), PeerId::random());
        let circuit = addr("/ip4/198.18.0.10/tcp/4001/p2p-circuit");
        let (relayed, other_relayed) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        assert!(paths.add(peer, relayed, circuit.clone(), true).is_empty());
        assert!(paths.add(other, other_relayed, circuit, true).is_empty());
        assert!(paths.only_relayed(&peer));
        let direct = ConnectionId::new_unchecked(3);
        let superseded = paths.add(peer, direct, addr("/ip4/198.18.0.1/udp/5/quic-v1"), false);
        assert_eq!(superseded, vec![relayed]);
        assert!(paths.has_direct(&peer) && !paths.has_direct(&other));
        paths.remove(peer, relayed);
        assert!(!paths.only_relayed(&peer));
    }

    #[test]
    fn a_relay_is_reached_over_each_transport_it_offers_on_the_same_ip() {
        let mut paths = Paths::default();
        let relay = PeerId::random();
        paths.add(
            relay,
            ConnectionId::new_unchecked(1),
            addr("/ip4/198.18.0.10/tcp/4001"),
            false,
        );
        let listen = [
            addr("/ip4/198.18.0.10/tcp/4001"),
            addr("/ip4/198.18.0.10/udp/4001/quic-v1"),
            addr("/ip4/10.0.0.5/udp/4001/quic-v1"),
            addr("/ip4/198.18.0.10/tcp/4001/p2p-circuit"),
        ];
        assert_eq!(
            paths.missing_transports(&relay, &listen),
            vec![addr("/ip4/198.18.0.10/udp/4001/quic-v1")]
        );
        assert!(
            paths
                .missing_transports(&PeerId::random(), &listen)
                .is_empty()
        );
    }
}
