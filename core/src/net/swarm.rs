//! The libp2p swarm and the one task that drives it: commands from the [`super::Net`] clients
//! in, connection changes and [`NetEvent`]s out, the shared path table kept up to date.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError, NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, autonat, connection_limits, dcutr, identify,
    memory_connection_limits, noise, ping, relay, tcp, yamux,
};
use tokio::sync::{mpsc, oneshot};

use super::connections::{Carrier, Connections};
use super::dial_error::dial_kind;
use super::link::{LinkTransport, LinkUse, Links, link_of};
use super::relays::Relays;
use super::{Change, NetEvent, PROTOCOL, Shared};
use crate::error::{Error, Result};

/// How many connections a node keeps: per peer (TCP and QUIC both ways, a relayed one and the
/// direct one replacing it), being set up, and in all. A neighbourhood of phones needs far less;
/// a peer opening connections without end is refused beyond these.
pub const MAX_PER_PEER: u32 = 8;
/// Connections being set up at once, each way.
pub const MAX_PENDING: u32 = 64;
/// Established connections, in all.
pub const MAX_ESTABLISHED: u32 = 512;
/// Above this much resident memory a standalone node refuses new connections (what it has goes
/// on); a node inside an app has no such limit, as the app's memory would count.
pub const MAX_MEMORY: usize = 512 << 20;

/// The libp2p behaviours of a node.
#[derive(NetworkBehaviour)]
pub(super) struct Behaviour {
    limits: connection_limits::Behaviour,
    memory: Toggle<memory_connection_limits::Behaviour>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    pub(super) stream: libp2p_stream::Behaviour,
    relay: relay::client::Behaviour,
    dcutr: dcutr::Behaviour,
    autonat: autonat::Behaviour,
}

/// Told when a dial connected (with the peer that answered) or failed.
pub(super) type DialReply = oneshot::Sender<Result<PeerId>>;

/// What the clients ask of the swarm task.
pub(super) enum Command {
    /// Dial a peer (known id, addresses) or an address (id unknown).
    Dial {
        peer: Option<PeerId>,
        addrs: Vec<Multiaddr>,
        reply: Option<DialReply>,
    },
    /// Close every connection to a peer.
    Disconnect(PeerId),
    /// Close every connection and stop.
    Shutdown(oneshot::Sender<()>),
}

/// How long a link's Noise and Yamux upgrade may take.
const LINK_UPGRADE_TIMEOUT: Duration = Duration::from_secs(20);
/// How often idle links are looked for.
const LINK_IDLE_CHECK: Duration = Duration::from_secs(30);

/// Builds the swarm: QUIC, TCP with Noise and Yamux, links the host hands over (Noise and Yamux
/// too), a relay client; identify, ping, DCUtR, AutoNAT and application streams.
/// The swarm; `max_memory`: the process's resident memory above which new connections are
/// refused.
pub(super) fn build(
    key: Keypair,
    agent: String,
    links: Arc<Links>,
    max_memory: Option<usize>,
) -> Result<Swarm<Behaviour>> {
    let transport = |e: &dyn std::fmt::Display| Error::Network {
        reason: e.to_string(),
    };
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| transport(&e))?
        .with_quic()
        .with_other_transport(|key| {
            use libp2p::Transport as _;
            let noise = noise::Config::new(key)?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
                LinkTransport { links }
                    .upgrade(libp2p::core::upgrade::Version::V1Lazy)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default())
                    .timeout(LINK_UPGRADE_TIMEOUT),
            )
        })
        .map_err(|e| transport(&e))?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| transport(&e))?
        .with_behaviour(|key, relay| Behaviour {
            limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_established_per_peer(Some(MAX_PER_PEER))
                    .with_max_pending_incoming(Some(MAX_PENDING))
                    .with_max_pending_outgoing(Some(MAX_PENDING))
                    .with_max_established(Some(MAX_ESTABLISHED)),
            ),
            memory: max_memory
                .map(memory_connection_limits::Behaviour::with_max_bytes)
                .into(),
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
        .map_err(|e| transport(&e))?
        // Connections to nearby devices stay up while both run; ping notices dead ones.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(24 * 3600)))
        .build();
    Ok(swarm)
}

/// The task's state: the swarm and what it tracks beside it.
pub(super) struct Driver {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) shared: Arc<Shared>,
    pub(super) events: mpsc::Sender<NetEvent>,
    pub(super) relays: Relays,
    /// Dials whose caller waits for the outcome.
    pub(super) pending: HashMap<ConnectionId, DialReply>,
    /// Callers of a dial to a peer that was being dialled already: they hear that dial's outcome.
    pub(super) waiting: HashMap<PeerId, Vec<DialReply>>,
    pub(super) conns: Connections,
    /// Dials to peers reached only through a relay: hole punching (or a plain direct attempt).
    pub(super) upgrade_dials: HashSet<ConnectionId>,
    /// Open link connections and how much each is used.
    pub(super) link_conns: HashMap<ConnectionId, LinkUse>,
}

impl Driver {
    /// Drives the swarm until shut down or every client is gone.
    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut relay_tick = tokio::time::interval(Duration::from_secs(1));
        let mut link_tick = tokio::time::interval(LINK_IDLE_CHECK);
        loop {
            tokio::select! {
                _ = relay_tick.tick() => self.reserve_due(),
                _ = link_tick.tick() => self.close_idle_links(),
                cmd = commands.recv() => match cmd {
                    Some(Command::Dial { peer, addrs, reply }) => self.dial(peer, addrs, reply),
                    Some(Command::Disconnect(peer)) => {
                        let _ = self.swarm.disconnect_peer_id(peer);
                    }
                    Some(Command::Shutdown(reply)) => {
                        self.close_all().await;
                        let _ = reply.send(());
                        return;
                    }
                    None => return,
                },
                event = self.swarm.select_next_some() => {
                    if let Some(out) = self.on_event(event)
                        && self.events.send(out).await.is_err()
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Asks the relays whose turn it is for a slot.
    pub(super) fn reserve_due(&mut self) {
        let swarm = &mut self.swarm;
        self.relays.reserve_due(|relay, addr| {
            swarm
                .behaviour_mut()
                .autonat
                .add_server(relay, Some(addr.clone()));
            swarm
                .listen_on(addr.clone().with(Protocol::P2pCircuit))
                .map_err(|e| e.to_string())
        });
    }

    fn dial(&mut self, peer: Option<PeerId>, addrs: Vec<Multiaddr>, reply: Option<DialReply>) {
        let opts = match (peer, addrs.first()) {
            (Some(peer), _) => DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build(),
            (None, Some(addr)) => DialOpts::unknown_peer_id().address(addr.clone()).build(),
            (None, None) => {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(Error::Unreachable {
                        reason: "no address to dial".into(),
                    }));
                }
                return;
            }
        };
        let id = opts.connection_id();
        match (self.swarm.dial(opts), reply) {
            (Ok(()), Some(reply)) => {
                self.pending.insert(id, reply);
            }
            (Ok(()), None) => {}
            // Being dialled already (two downloads from one sender at once): the caller hears
            // how that dial ends.
            (Err(DialError::DialPeerConditionFalse(_)), Some(reply))
                if peer.is_some_and(|p| !self.swarm.is_connected(&p)) =>
            {
                if let Some(peer) = peer {
                    self.waiting.entry(peer).or_default().push(reply);
                }
            }
            (Err(e), reply) => {
                // Already connected counts as success for the caller.
                let connected = peer.filter(|p| self.swarm.is_connected(p));
                if let Some(reply) = reply {
                    let _ = reply.send(connected.ok_or(Error::Unreachable {
                        reason: e.to_string(),
                    }));
                }
            }
        }
    }

    /// Handles one swarm event; returns what the node should hear of it.
    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) -> Option<NetEvent> {
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => match self.relays.owns(listener_id) {
                true => self.relays.reserved(listener_id, address),
                false => Some(NetEvent::NewListenAddr(address)),
            },
            SwarmEvent::ExpiredListenAddr {
                listener_id,
                address,
            } => self.relays.expired(listener_id, address),
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } => {
                let reason = match reason {
                    Ok(()) => "the connection to the relay closed".to_string(),
                    Err(e) => error_chain(&e),
                };
                self.relays.closed(listener_id, reason)
            }
            SwarmEvent::Dialing {
                peer_id: Some(peer),
                connection_id,
            } => {
                if self.conns.only_relayed(&peer) {
                    self.upgrade_dials.insert(connection_id);
                }
                None
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => Some(self.on_established(
                peer_id,
                connection_id,
                endpoint.get_remote_address().clone(),
                endpoint.is_relayed(),
                endpoint.is_dialer(),
                num_established.get() == 1,
            )),
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => Some(self.on_closed(peer_id, connection_id, num_established == 0)),
            SwarmEvent::OutgoingConnectionError {
                peer_id,
                connection_id,
                error,
            } => Some(self.on_dial_error(peer_id, connection_id, &error)),
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                if let Some(n) = link_of(&send_back_addr) {
                    self.link_failed(n, error.to_string());
                }
                None
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour(event),
            _ => None,
        }
    }

    /// An inbound link that did not become a connection: its waiter hears why.
    fn link_failed(&mut self, n: u64, error: String) {
        self.shared.links.forget(n);
        if let Some(reply) = self.shared.link_waiter(n) {
            let _ = reply.send(Err(Error::Unreachable {
                reason: format!("the link did not open: {error}"),
            }));
        }
    }

    /// Closes the links that carried (almost) nothing for a while: links cost battery.
    fn close_idle_links(&mut self) {
        let now = tokio::time::Instant::now();
        let mut idle = Vec::new();
        for (id, using) in &mut self.link_conns {
            let Some((_, bytes)) = self.shared.links.info(using.link) else {
                continue;
            };
            if using.idle(bytes, now) {
                idle.push(*id);
            }
        }
        for id in idle {
            tracing::debug!(connection = ?id, "closing an idle link");
            self.swarm.close_connection(id);
        }
    }

    fn on_established(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        addr: Multiaddr,
        relayed: bool,
        dialer: bool,
        first: bool,
    ) -> NetEvent {
        self.upgrade_dials.remove(&id);
        let link = link_of(&addr);
        let carrier = match (relayed, link) {
            (true, _) => Carrier::Relay,
            (false, Some(_)) => Carrier::Link,
            (false, None) => Carrier::Direct,
        };
        let superseded = self.conns.add(peer, id, addr.clone(), carrier);
        // Before anyone hears of the connection: streams wait for a path better than a relay.
        self.shared
            .paths
            .set_connections(peer, true, self.conns.only_relayed(&peer));
        if let Some(reply) = self.pending.remove(&id) {
            let _ = reply.send(Ok(peer));
        }
        for reply in self.waiting.remove(&peer).unwrap_or_default() {
            let _ = reply.send(Ok(peer));
        }
        let medium = link.and_then(|n| self.link_opened(n, id, peer, dialer));
        for id in &superseded {
            self.swarm.close_connection(*id);
        }
        if link.is_some() && self.conns.best(&peer) == Some(Carrier::Direct) {
            tracing::debug!(%peer, "a direct path is up: the new link closes");
            self.swarm.close_connection(id);
        }
        let upgraded = !superseded.is_empty();
        if first {
            let _ = self
                .shared
                .changes
                .send(Change::Connected { peer, relayed });
        } else if upgraded {
            let _ = self.shared.changes.send(Change::Upgraded { peer });
        }
        NetEvent::Connected {
            peer,
            addr,
            relayed,
            medium,
            first,
            upgraded,
        }
    }

    /// Link `n` is a connection to `peer`: watched for idleness, its waiter told; its medium.
    /// Two devices that opened links to each other at once keep one: the link the smaller peer
    /// id dialled (both sides pick the same one). The smaller peer closes the other: it listened
    /// on that link, and a listener finishes the handshake after its dialer, so neither side's
    /// `add_link` sees its link torn down halfway through the handshake.
    fn link_opened(
        &mut self,
        n: u64,
        id: ConnectionId,
        peer: PeerId,
        dialer: bool,
    ) -> Option<String> {
        let (medium, bytes) = self.shared.links.info(n)?;
        let by_smaller = dialer == (self.shared.local < peer);
        let twin = self
            .link_conns
            .iter()
            .find(|(_, other)| other.peer == peer && other.by_smaller != by_smaller)
            .map(|(twin, _)| *twin);
        self.link_conns
            .insert(id, LinkUse::new(n, bytes, peer, by_smaller));
        if let Some(reply) = self.shared.link_waiter(n) {
            let _ = reply.send(Ok(peer));
        }
        if let Some(twin) = twin
            && self.shared.local < peer
        {
            tracing::debug!(%peer, "links opened both ways at once: one closes");
            self.swarm
                .close_connection(if by_smaller { twin } else { id });
        }
        Some(medium)
    }

    fn on_closed(&mut self, peer: PeerId, id: ConnectionId, last: bool) -> NetEvent {
        self.conns.remove(peer, id);
        if let Some(using) = self.link_conns.remove(&id) {
            self.shared.links.forget(using.link);
        }
        self.shared
            .paths
            .set_connections(peer, !last, self.conns.only_relayed(&peer));
        if last {
            let _ = self.shared.changes.send(Change::Disconnected { peer });
        }
        NetEvent::Disconnected { peer, last }
    }

    fn on_dial_error(&mut self, peer: Option<PeerId>, id: ConnectionId, e: &DialError) -> NetEvent {
        let error = e.to_string();
        let waiting = peer
            .filter(|p| !self.swarm.is_connected(p))
            .and_then(|p| self.waiting.remove(&p))
            .unwrap_or_default();
        for reply in self.pending.remove(&id).into_iter().chain(waiting) {
            let _ = reply.send(Err(Error::Unreachable {
                reason: error.clone(),
            }));
        }
        match peer {
            Some(peer) if self.upgrade_dials.remove(&id) => {
                self.shared.paths.set_punch_failed(peer);
                NetEvent::HolePunchFailed { peer, error }
            }
            _ => NetEvent::DialFailed {
                peer,
                error,
                kind: dial_kind(e),
            },
        }
    }

    fn on_behaviour(&mut self, event: BehaviourEvent) -> Option<NetEvent> {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                Some(self.on_identified(peer_id, info))
            }
            BehaviourEvent::Dcutr(dcutr::Event {
                remote_peer_id,
                result,
            }) => match result {
                Ok(_) => None, // the direct connection reports itself as `upgraded`
                Err(e) => Some(NetEvent::HolePunchFailed {
                    peer: remote_peer_id,
                    error: error_chain(&e),
                }),
            },
            BehaviourEvent::Autonat(autonat::Event::StatusChanged { new, .. }) => match new {
                autonat::NatStatus::Public(addr) => {
                    Some(NetEvent::Reachability { public: Some(addr) })
                }
                autonat::NatStatus::Private => Some(NetEvent::Reachability { public: None }),
                autonat::NatStatus::Unknown => None,
            },
            BehaviourEvent::Relay(e) => {
                tracing::debug!(event = ?e, "relay client");
                None
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            }) => {
                self.shared.paths.set_rtt(peer, rtt);
                None
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(e),
            }) => {
                tracing::debug!(%peer, error = %e, "ping failed, closing the connection");
                self.swarm.close_connection(connection);
                None
            }
            _ => None,
        }
    }

    fn on_identified(&mut self, peer: PeerId, info: identify::Info) -> NetEvent {
        for addr in &info.listen_addrs {
            self.swarm.add_peer_address(peer, addr.clone());
        }
        self.shared
            .paths
            .set_listen_addrs(peer, info.listen_addrs.clone());
        if info.protocols.contains(&relay::HOP_PROTOCOL_NAME) {
            for addr in self.conns.missing_transports(&peer, &info.listen_addrs) {
                tracing::debug!(relay = %peer, %addr, "connecting to the relay over another transport");
                let opts = DialOpts::peer_id(peer)
                    .addresses(vec![addr])
                    .condition(PeerCondition::Always)
                    .build();
                if let Err(e) = self.swarm.dial(opts) {
                    tracing::debug!(error = %e, "cannot dial the relay");
                }
            }
        }
        NetEvent::Identified {
            peer,
            agent: info.agent_version,
            protocol: info.protocol_version,
            listen_addrs: info.listen_addrs,
        }
    }

    /// Closes every connection, waiting at most 2 s for them to go.
    async fn close_all(&mut self) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
        let deadline = tokio::time::sleep(Duration::from_secs(2));
        tokio::pin!(deadline);
        while self.swarm.connected_peers().next().is_some() {
            tokio::select! {
                _ = self.swarm.select_next_some() => {}
                _ = &mut deadline => break,
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
