//! The libp2p swarm, driven by one task: commands in, events out, no shared locks.
//!
//! Transports: QUIC, and TCP with Noise and Yamux; every connection is authenticated and encrypted.
//! No DNS transport, no bootstrap peers, no relays: the node dials only what it was given or found.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identify, noise, ping, tcp, yamux};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// The identify protocol version every meshdrop node speaks.
pub const PROTOCOL: &str = "/meshdrop/1";

/// The libp2p behaviours of a node.
#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    stream: libp2p_stream::Behaviour,
}

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
        /// Whether it is the first connection to this peer.
        first: bool,
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
        events: mpsc::Sender<NetEvent>,
        protocols: &[StreamProtocol],
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
        let (commands, rx) = mpsc::channel(256);
        let task = tokio::spawn(run(swarm, rx, events));
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
        .with_behaviour(|key| Behaviour {
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
        })
        .map_err(|e| internal(&e))?
        // Connections to nearby devices stay up while both run; ping notices dead ones.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(24 * 3600)))
        .build();
    Ok(swarm)
}

async fn run(
    mut swarm: Swarm<Behaviour>,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetEvent>,
) {
    let mut pending: HashMap<ConnectionId, DialReply> = HashMap::new();
    loop {
        tokio::select! {
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
                    SwarmEvent::NewListenAddr { address, .. } => Some(NetEvent::NewListenAddr(address)),
                    SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, num_established, .. } => {
                        if let Some(reply) = pending.remove(&connection_id) {
                            let _ = reply.send(Ok(peer_id));
                        }
                        Some(NetEvent::Connected {
                            peer: peer_id,
                            addr: endpoint.get_remote_address().clone(),
                            first: num_established.get() == 1,
                        })
                    }
                    SwarmEvent::ConnectionClosed { peer_id, num_established, .. } => {
                        Some(NetEvent::Disconnected { peer: peer_id, last: num_established == 0 })
                    }
                    SwarmEvent::OutgoingConnectionError { peer_id, connection_id, error } => {
                        let reason = error.to_string();
                        if let Some(reply) = pending.remove(&connection_id) {
                            let _ = reply.send(Err(Error::Unreachable { reason: reason.clone() }));
                        }
                        Some(NetEvent::DialFailed { peer: peer_id, error: reason })
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                        for addr in &info.listen_addrs {
                            swarm.add_peer_address(peer_id, addr.clone());
                        }
                        Some(NetEvent::Identified {
                            peer: peer_id,
                            agent: info.agent_version,
                            protocol: info.protocol_version,
                            listen_addrs: info.listen_addrs,
                        })
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

/// Closes every connection, waiting briefly for the closes to complete.
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
