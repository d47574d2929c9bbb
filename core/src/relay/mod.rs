//! A relay anyone can host: a libp2p circuit relay v2 server, with identify, ping and an AutoNAT
//! server, so devices behind NATs on different networks can reach each other through it.
//!
//! A device reserves a slot on the relay (`NodeConfig::relays`) and puts the relayed address in its
//! tickets; a friend who dials that address gets a circuit through the relay, end-to-end encrypted
//! (the relay sees only ciphertext), and both try to replace it with a direct connection by hole
//! punching (DCUtR). The relay forwards bytes only within [`RelayLimits`], and each device
//! within its byte budget ([`budget`]).

mod budget;

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::identity::Keypair;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, autonat, identify, noise, ping, relay, tcp, yamux};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::net::is_relayed;
pub use budget::DeviceBudget;
use budget::Meter;

/// What the relay forwards. libp2p's defaults (a circuit ends after 2 minutes or 128 KiB) suit
/// a hole-punching rendezvous, not a file transfer; these are set for transfers that cannot go
/// direct. A circuit that ends is dialled again and the download resumes where it stopped.
#[derive(Clone, Copy, Debug)]
pub struct RelayLimits {
    /// Devices holding a reservation at once; more are refused with "resource limit exceeded".
    pub max_reservations: usize,
    /// Reservations one device may hold (one per connection to the relay).
    pub max_reservations_per_peer: usize,
    /// How long a reservation lasts before the device renews it (it does so by itself).
    pub reservation_duration: Duration,
    /// Circuits forwarded at once, across all devices.
    pub max_circuits: usize,
    /// Circuits one device may have at once.
    pub max_circuits_per_peer: usize,
    /// How long one circuit may last.
    pub max_circuit_duration: Duration,
    /// Bytes one circuit may carry (both directions together).
    pub max_circuit_bytes: u64,
    /// Bytes one device may move through the relay in all, per window (its circuits and those
    /// to it, both ways); beyond, it is cut off until the window ends.
    pub device: DeviceBudget,
}

impl Default for RelayLimits {
    /// 128 reservations (4 per device) of an hour; 32 circuits (8 per device), each up to an hour
    /// and 16 GiB: enough for a few 4K videos per circuit, small enough that one user cannot hold
    /// a volunteer's relay for a day.
    fn default() -> Self {
        Self {
            max_reservations: 128,
            max_reservations_per_peer: 4,
            reservation_duration: Duration::from_secs(3600),
            max_circuits: 32,
            max_circuits_per_peer: 8,
            max_circuit_duration: Duration::from_secs(3600),
            max_circuit_bytes: 16 << 30,
            device: DeviceBudget::default(),
        }
    }
}

/// How a relay is started.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Addresses to listen on (TCP and QUIC).
    pub listen: Vec<Multiaddr>,
    /// Addresses others reach the relay on, when they differ from the listen addresses (a port
    /// forwarded through a router). Every listen address that is not a wildcard is announced too.
    pub external: Vec<Multiaddr>,
    /// What the relay forwards.
    pub limits: RelayLimits,
    /// Answer AutoNAT probes of devices seen at private IPs (a relay on a LAN or in a lab); off,
    /// the relay dials back only public addresses.
    pub allow_private: bool,
}

/// Something that happened on the relay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RelayEvent {
    /// A device reserved (or renewed) a slot.
    ReservationAccepted {
        /// The device.
        peer: PeerId,
        /// Whether it renewed an existing reservation.
        renewed: bool,
    },
    /// A device was refused a slot.
    ReservationDenied {
        /// The device.
        peer: PeerId,
        /// Why, in words.
        reason: String,
    },
    /// A device's reservation ended.
    ReservationClosed {
        /// The device.
        peer: PeerId,
    },
    /// A circuit from `src` to `dst` is forwarding.
    CircuitOpened {
        /// The dialling device.
        src: PeerId,
        /// The device it reached.
        dst: PeerId,
    },
    /// A circuit was refused.
    CircuitDenied {
        /// The dialling device.
        src: PeerId,
        /// The device it asked for.
        dst: PeerId,
        /// Why, in words.
        reason: String,
    },
    /// A circuit ended.
    CircuitClosed {
        /// The dialling device.
        src: PeerId,
        /// The device it reached.
        dst: PeerId,
    },
    /// A device spent its byte budget: it is cut off until its window ends.
    DeviceOverBudget {
        /// The device.
        peer: PeerId,
    },
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    relay: relay::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    autonat: autonat::Behaviour,
}

/// A running relay.
pub struct Relay {
    peer_id: PeerId,
    addrs: Vec<Multiaddr>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Starts a relay with the identity kept in `key_dir` (created on first start, so the relay's
    /// address stays the same across restarts). Events arrive on `events`.
    pub async fn start(
        key_dir: &Path,
        config: RelayConfig,
        events: mpsc::Sender<RelayEvent>,
    ) -> Result<Self> {
        std::fs::create_dir_all(key_dir).map_err(|e| Error::DataDir {
            path: key_dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let key = crate::identity::load_or_create(key_dir)?;
        let peer_id = key.public().to_peer_id();
        let (meter, spent) = Meter::new(config.limits.device);
        let mut swarm = build(key, &config, &meter)?;
        let mut listening = 0;
        for addr in &config.listen {
            match swarm.listen_on(addr.clone()) {
                Ok(_) => listening += 1,
                Err(e) => tracing::warn!(%addr, error = %e, "relay cannot listen"),
            }
        }
        if listening == 0 {
            return Err(Error::Listen {
                addr: format!("{:?}", config.listen),
                reason: "no listen address works".into(),
            });
        }
        for addr in &config.external {
            swarm.add_external_address(addr.clone());
        }
        let addrs = wait_listening(&mut swarm, listening).await;
        let with_id = addrs
            .iter()
            .chain(&config.external)
            .map(|a| a.clone().with_p2p(peer_id).unwrap_or_else(|a| a))
            .collect();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(swarm, meter, spent, events, stopped));
        Ok(Self {
            peer_id,
            addrs: with_id,
            stop: Some(stop),
            task,
        })
    }

    /// The relay's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses devices pass as their relay (each ends in `/p2p/<relay peer id>`).
    pub fn addrs(&self) -> &[Multiaddr] {
        &self.addrs
    }

    /// Closes every circuit and connection and stops.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// A connection of the relay, authenticated, multiplexed and counted against its device.
type Counted = libp2p::core::transport::Boxed<(PeerId, StreamMuxerBox)>;

/// TCP with Noise and Yamux, and QUIC, every connection counted by `meter`.
fn transport(
    key: &Keypair,
    meter: &Meter,
) -> std::result::Result<Counted, Box<dyn std::error::Error + Send + Sync>> {
    use libp2p::core::Transport;
    use libp2p::core::upgrade::Version;
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(Version::V1Lazy)
        .authenticate(noise::Config::new(key)?)
        .multiplex(yamux::Config::default())
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)));
    let quic = libp2p::quic::tokio::Transport::new(libp2p::quic::Config::new(key))
        .map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn)));
    let meter = meter.clone();
    Ok(tcp
        .or_transport(quic)
        .map(move |either, _| {
            let (peer, muxer) = either.into_inner();
            (peer, meter.wrap(peer, muxer))
        })
        .boxed())
}

fn build(key: Keypair, config: &RelayConfig, meter: &Meter) -> Result<Swarm<Behaviour>> {
    let internal = |e: &dyn std::fmt::Display| Error::Network {
        reason: e.to_string(),
    };
    let limits = config.limits;
    let allow_private = config.allow_private;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| transport(key, meter))
        .map_err(|e| internal(&e))?
        .with_behaviour(|key| {
            let local = key.public().to_peer_id();
            Behaviour {
                relay: relay::Behaviour::new(
                    local,
                    relay::Config {
                        max_reservations: limits.max_reservations,
                        max_reservations_per_peer: limits.max_reservations_per_peer,
                        reservation_duration: limits.reservation_duration,
                        max_circuits: limits.max_circuits,
                        max_circuits_per_peer: limits.max_circuits_per_peer,
                        max_circuit_duration: limits.max_circuit_duration,
                        max_circuit_bytes: limits.max_circuit_bytes,
                        ..Default::default()
                    },
                ),
                identify: identify::Behaviour::new(
                    identify::Config::new(crate::net::PROTOCOL.to_string(), key.public())
                        .with_agent_version(format!("meshdrop-relay/{}", crate::VERSION)),
                ),
                ping: ping::Behaviour::new(ping::Config::new()),
                autonat: autonat::Behaviour::new(
                    local,
                    autonat::Config {
                        // A server only: it answers probes and never probes itself.
                        use_connected: false,
                        only_global_ips: !allow_private,
                        ..Default::default()
                    },
                ),
            }
        })
        .map_err(|e| internal(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    Ok(swarm)
}

/// Waits (at most 5 s) until `expected` listeners reported an address; each concrete address is
/// announced to devices as one they can reach the relay on.
async fn wait_listening(swarm: &mut Swarm<Behaviour>, expected: usize) -> Vec<Multiaddr> {
    let mut addrs: Vec<Multiaddr> = Vec::new();
    let mut listeners = std::collections::HashSet::new();
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    while listeners.len() < expected {
        tokio::select! {
            event = swarm.select_next_some() => {
                if let SwarmEvent::NewListenAddr { listener_id, address } = event {
                    listeners.insert(listener_id);
                    swarm.add_external_address(address.clone());
                    addrs.push(address);
                }
            }
            _ = &mut deadline => break,
        }
    }
    addrs
}

async fn run(
    mut swarm: Swarm<Behaviour>,
    meter: Meter,
    mut spent: mpsc::UnboundedReceiver<PeerId>,
    events: mpsc::Sender<RelayEvent>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut sweep = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = sweep.tick() => meter.sweep(),
            Some(peer) = spent.recv() => {
                tracing::info!(%peer, "device spent its byte budget: cut off");
                let _ = swarm.disconnect_peer_id(peer);
                if events.send(RelayEvent::DeviceOverBudget { peer }).await.is_err() {
                    tracing::debug!("nobody reads relay events any more");
                }
            }
            event = swarm.select_next_some() => {
                let out = match event {
                    SwarmEvent::NewListenAddr { address, .. } => {
                        swarm.add_external_address(address);
                        None
                    }
                    // A device over its budget is not served until its window ends.
                    SwarmEvent::ConnectionEstablished { peer_id, connection_id, .. }
                        if meter.is_spent(&peer_id) =>
                    {
                        swarm.close_connection(connection_id);
                        None
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Relay(e)) => relay_event(e),
                    SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                        // Relayed addresses are useless for dialling back; the rest help AutoNAT.
                        for addr in info.listen_addrs.into_iter().filter(|a| !is_relayed(a)) {
                            swarm.add_peer_address(peer_id, addr);
                        }
                        None
                    }
                    _ => None,
                };
                if let Some(out) = out
                    && events.send(out).await.is_err()
                {
                    tracing::debug!("nobody reads relay events any more");
                }
            }
        }
    }
    let peers: Vec<PeerId> = swarm.connected_peers().copied().collect();
    for peer in peers {
        let _ = swarm.disconnect_peer_id(peer);
    }
}

#[allow(deprecated)] // the failure variants libp2p will drop are only logged here
fn relay_event(event: relay::Event) -> Option<RelayEvent> {
    Some(match event {
        relay::Event::ReservationReqAccepted {
            src_peer_id,
            renewed,
        } => RelayEvent::ReservationAccepted {
            peer: src_peer_id,
            renewed,
        },
        relay::Event::ReservationReqDenied {
            src_peer_id,
            status,
        } => RelayEvent::ReservationDenied {
            peer: src_peer_id,
            reason: status_text(&status).into(),
        },
        relay::Event::ReservationClosed { src_peer_id }
        | relay::Event::ReservationTimedOut { src_peer_id } => {
            RelayEvent::ReservationClosed { peer: src_peer_id }
        }
        relay::Event::CircuitReqAccepted {
            src_peer_id,
            dst_peer_id,
        } => RelayEvent::CircuitOpened {
            src: src_peer_id,
            dst: dst_peer_id,
        },
        relay::Event::CircuitReqDenied {
            src_peer_id,
            dst_peer_id,
            status,
        } => RelayEvent::CircuitDenied {
            src: src_peer_id,
            dst: dst_peer_id,
            reason: status_text(&status).into(),
        },
        relay::Event::CircuitClosed {
            src_peer_id,
            dst_peer_id,
            ..
        } => RelayEvent::CircuitClosed {
            src: src_peer_id,
            dst: dst_peer_id,
        },
        other => {
            tracing::debug!(event = ?other, "relay");
            return None;
        }
    })
}

/// Why the relay refused, in words a user can act on.
fn status_text(status: &relay::StatusCode) -> &'static str {
    match status {
        relay::StatusCode::ResourceLimitExceeded => {
            "the relay's limits are reached (reservations or circuits, in total or for this device)"
        }
        relay::StatusCode::ReservationRefused => "the relay refused the reservation",
        relay::StatusCode::PermissionDenied => "the relay does not allow this device",
        relay::StatusCode::NoReservation => "the device asked for holds no reservation here",
        relay::StatusCode::ConnectionFailed => "the relay could not reach the device asked for",
        relay::StatusCode::MalformedMessage | relay::StatusCode::UnexpectedMessage => {
            "the request broke the relay protocol"
        }
        relay::StatusCode::OK => "ok",
    }
}
