//! The task that owns the node's peer table: devices discovered, met or added, the names they
//! claim and their addresses, and the redials of those that dropped (1 s … 64 s, 10 attempts). It hears the
//! swarm's news and local discovery, records peers in the store, and tells the app.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::Bus;
use super::addrs::split_agent;
use super::links::{LinkDriver, Nearby, PeerView, WANTED_WINDOW};
use crate::contacts;
use crate::discovery::{Discovery, Update};
use crate::error::{Error, Result};
use crate::events::{Event, PeerInfo, Reachability};
use crate::identity;
use crate::net::{Net, NetEvent, NetTask, Transport};
use crate::store::{self, Store};

/// Redials of a dropped peer stop after this many attempts (about 8 minutes of backoff).
const MAX_REDIALS: u32 = 10;
/// Peers in the table at most; beyond, disconnected ones heard of least recently go first
/// (peers this node does not redial before those it does). A stranger that leaves is forgotten
/// at once unless discovery or the user named it.
const MAX_PEERS: usize = 512;

/// What the node asks of its supervisor.
pub(super) enum Command {
    /// The peer list.
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    /// Remember a peer (and redial it when it drops); replies with every address known for it.
    AddPeer {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<Result<Vec<Multiaddr>>>,
    },
    /// The host's network changed: dial every remembered peer that is not connected, now.
    NetworkChanged,
    /// Use the host's link driver on these media.
    SetLinkDriver {
        driver: Arc<dyn LinkDriver>,
        media: Vec<String>,
    },
    /// The host sees a device on a medium (its peer id when the medium carried it).
    DeviceNearby {
        medium: String,
        device: String,
        peer: Option<PeerId>,
    },
    /// The host no longer sees a device.
    DeviceLost { medium: String, device: String },
    /// Discovery failed in the host on a medium.
    DiscoveryFailed { medium: String },
    /// A link to a device came up: it is this peer.
    Linked {
        medium: String,
        device: String,
        peer: PeerId,
    },
    /// Stop discovery and the swarm, flush the store, tell the app.
    Stop(oneshot::Sender<()>),
}

#[derive(Default)]
struct PeerState {
    name: String,
    addrs: Vec<Multiaddr>,
    connections: usize,
    discovered: bool,
    /// How the best connection is carried (and the link's medium), while one is up.
    via: Option<(Transport, Option<String>)>,
    /// Redial this peer when it drops (found by discovery, added by hand or remembered).
    keep: bool,
    redial: Option<Redial>,
    /// When the table last heard of it.
    heard: Option<Instant>,
}

struct Redial {
    at: Instant,
    attempt: u32,
}

/// The task that owns the peer table.
pub(super) struct Supervisor {
    pub(super) local: PeerId,
    /// This device's relayed addresses, shared with the node for its tickets.
    pub(super) relayed_addrs: Arc<Mutex<Vec<Multiaddr>>>,
    pub(super) store: Arc<Store>,
    pub(super) net: Net,
    /// The swarm task; `None` once shut down.
    pub(super) net_task: Option<NetTask>,
    pub(super) discovery: Option<Discovery>,
    pub(super) bus: Bus,
    peers: HashMap<PeerId, PeerState>,
    nearby: Nearby,
}

impl Supervisor {
    /// A supervisor with an empty peer table.
    pub(super) fn new(
        local: PeerId,
        relayed_addrs: Arc<Mutex<Vec<Multiaddr>>>,
        store: Arc<Store>,
        net: Net,
        net_task: NetTask,
        discovery: Option<Discovery>,
        bus: Bus,
    ) -> Self {
        Self {
            local,
            relayed_addrs,
            store,
            net,
            net_task: Some(net_task),
            discovery,
            bus,
            peers: HashMap::new(),
            nearby: Nearby::default(),
        }
    }

    /// Remembers the peers seen since `since` (Unix seconds) and redials them soon.
    pub(super) fn load_recent_peers(&mut self, since: u64) {
        match self.store.peers_since(since) {
            Ok(known) => {
                let with_addrs = known.into_iter().filter(|k| !k.addrs.is_empty());
                for k in with_addrs.take(MAX_PEERS) {
                    let state = PeerState {
                        name: k.name,
                        addrs: k.addrs,
                        keep: true,
                        redial: Some(Redial {
                            at: Instant::now(),
                            attempt: MAX_REDIALS.saturating_sub(3),
                        }),
                        ..PeerState::default()
                    };
                    self.peers.insert(k.peer, state);
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

    /// Runs until stopped: the swarm's news from the start first, then commands, the swarm's
    /// news, discovery, redials.
    pub(super) async fn run(
        &mut self,
        early: Vec<NetEvent>,
        mut commands: mpsc::Receiver<Command>,
        mut net_events: mpsc::Receiver<NetEvent>,
        mut discovery: mpsc::Receiver<Update>,
    ) {
        for ev in early {
            self.net_event(ev);
        }
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(Command::Stop(reply)) => {
                        self.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(cmd) => self.command(cmd),
                    None => {
                        self.shutdown().await;
                        return;
                    }
                },
                Some(ev) = net_events.recv() => self.net_event(ev),
                Some(update) = discovery.recv() => self.discovery_update(update),
                _ = tick.tick() => {
                    self.redial_due();
                    self.links_due();
                }
            }
        }
    }

    async fn shutdown(&mut self) {
        self.nearby.stop();
        if let Some(d) = self.discovery.take() {
            d.stop().await;
        }
        if let Some(task) = self.net_task.take() {
            task.shutdown().await;
        }
        if let Err(e) = self.store.flush() {
            tracing::warn!(error = %e, "cannot flush the store");
        }
        self.store.release();
        self.bus.emit(Event::Stopped);
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Peers(reply) => {
                let _ = reply.send(self.peer_list());
            }
            Command::AddPeer { peer, addrs, reply } => {
                let _ = reply.send(self.add_peer(peer, addrs));
            }
            Command::NetworkChanged => self.network_changed(),
            Command::SetLinkDriver { driver, media } => self.nearby.set_driver(driver, media),
            Command::DeviceNearby {
                medium,
                device,
                peer,
            } => {
                self.nearby.seen(medium, device, peer);
                self.links_due();
            }
            Command::DeviceLost { medium, device } => self.nearby.lost(medium, device),
            Command::DiscoveryFailed { medium } => self.nearby.discovery_failed(medium),
            Command::Linked {
                medium,
                device,
                peer,
            } => self.nearby.linked(medium, device, peer),
            Command::Stop(_) => {}
        }
    }

    /// Asks the host for the links worth opening now.
    fn links_due(&mut self) {
        let (peers, net, store) = (&self.peers, &self.net, &self.store);
        self.nearby.open_due(|peer| {
            let state = peers.get(peer);
            let linked_or_direct = state.is_some_and(|s| {
                s.connections > 0 && s.via.as_ref().is_some_and(|v| v.0 != Transport::Relay)
            });
            PeerView {
                contact: matches!(contacts::name_of(store, peer), Ok(Some(_))),
                wanted: state.is_some_and(|s| s.keep) || net.wanted(peer, WANTED_WINDOW),
                linked_or_direct,
            }
        });
    }

    fn peer_list(&self) -> Vec<PeerInfo> {
        let contacts: HashMap<PeerId, String> = contacts::list(&self.store)
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.peer, c.name))
            .collect();
        let mut list: Vec<PeerInfo> = self
            .peers
            .iter()
            .filter(|(_, s)| s.connections > 0 || s.discovered || s.keep)
            .map(|(peer, s)| PeerInfo {
                peer: *peer,
                name: s.name.clone(),
                contact: contacts.get(peer).cloned(),
                addrs: s.addrs.clone(),
                connected: s.connections > 0,
                transport: s.via.as_ref().map(|v| v.0),
                medium: s.via.as_ref().and_then(|v| v.1.clone()),
                discovered: s.discovered,
                verification_code: identity::verification_code(&self.local, peer),
            })
            .collect();
        list.sort_by(|a, b| (&a.name, a.peer).cmp(&(&b.name, b.peer)));
        list
    }

    fn add_peer(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<Vec<Multiaddr>> {
        if peer == self.local {
            return Err(Error::InvalidAddress {
                input: peer.to_string(),
                reason: "that is this device's own peer id".into(),
            });
        }
        let state = self.entry(peer);
        state.keep = true;
        for a in addrs {
            if !state.addrs.contains(&a) {
                state.addrs.push(a);
            }
        }
        let all = state.addrs.clone();
        self.record_seen(&peer, "", &all);
        Ok(all)
    }

    /// The entry of `peer`, created when missing, marked as heard of now; the table stays
    /// within [`MAX_PEERS`].
    fn entry(&mut self, peer: PeerId) -> &mut PeerState {
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS {
            self.forget_one();
        }
        let state = self.peers.entry(peer).or_default();
        state.heard = Some(Instant::now());
        state
    }

    /// Forgets the disconnected peer heard of least recently, one not redialled first.
    fn forget_one(&mut self) {
        let victim = self
            .peers
            .iter()
            .filter(|(_, s)| s.connections == 0)
            .min_by_key(|(_, s)| (s.keep, s.heard))
            .map(|(p, _)| *p);
        if let Some(peer) = victim {
            self.peers.remove(&peer);
        }
    }

    fn net_event(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::NewListenAddr(addr) => tracing::info!(%addr, "listening"),
            NetEvent::Connected {
                peer,
                addr,
                relayed,
                medium,
                first,
                upgraded,
            } => {
                let transport = if relayed {
                    Transport::Relay
                } else {
                    Transport::of(&addr)
                };
                self.connected(peer, addr, (transport, medium), first, upgraded)
            }
            NetEvent::Disconnected { peer, last } => self.disconnected(peer, last),
            NetEvent::Identified {
                peer,
                agent,
                protocol,
                listen_addrs,
            } => self.identified(peer, &agent, protocol, listen_addrs),
            NetEvent::RelayReserved { relay, addr } => {
                let mut relayed = self.relayed_addrs.lock().unwrap_or_else(|p| p.into_inner());
                if !relayed.contains(&addr) {
                    relayed.push(addr.clone());
                }
                drop(relayed);
                self.bus.emit(Event::RelayReserved { relay, addr });
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
                    self.bus.emit(Event::RelayFailed { relay, reason });
                }
            }
            NetEvent::HolePunchFailed { peer, error } => {
                self.bus.emit(Event::HolePunchFailed { peer, error })
            }
            NetEvent::Reachability { public } => self.bus.emit(Event::Reachability {
                status: match public {
                    Some(_) => Reachability::Public,
                    None => Reachability::Private,
                },
                addr: public,
            }),
            NetEvent::DialFailed { peer, error, kind } => {
                tracing::debug!(?peer, %error, ?kind, "dial failed");
                self.bus.emit(Event::DialFailed { peer, error, kind });
            }
        }
    }

    fn connected(
        &mut self,
        peer: PeerId,
        addr: Multiaddr,
        (transport, medium): (Transport, Option<String>),
        first: bool,
        upgraded: bool,
    ) {
        let state = self.entry(peer);
        state.connections += 1;
        state.redial = None;
        if first || upgraded {
            state.via = Some((transport, medium.clone()));
        }
        let name = state.name.clone();
        if first {
            self.record_seen(&peer, &name, &[]);
            self.bus.emit(Event::PeerConnected {
                peer,
                transport,
                medium,
                addr,
                verification_code: identity::verification_code(&self.local, &peer),
            });
        } else if upgraded {
            self.bus.emit(Event::ConnectionUpgraded {
                peer,
                addr,
                transport,
                medium,
            });
        }
    }

    fn disconnected(&mut self, peer: PeerId, last: bool) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        state.connections = state.connections.saturating_sub(1);
        if !last {
            return;
        }
        state.connections = 0;
        state.via = None;
        if state.keep {
            state.redial = Some(Redial {
                at: Instant::now() + Duration::from_secs(1),
                attempt: 0,
            });
        }
        let (discovered, keep) = (state.discovered, state.keep);
        if !keep {
            // A stranger that connected and left: nothing to redial, nothing to list.
            self.peers.remove(&peer);
        }
        self.bus.emit(Event::PeerDisconnected { peer });
        if discovered && let Some(d) = &self.discovery {
            d.verify(peer);
        }
    }

    fn identified(
        &mut self,
        peer: PeerId,
        agent: &str,
        protocol: String,
        listen_addrs: Vec<Multiaddr>,
    ) {
        let (agent, name) = split_agent(agent);
        let state = self.entry(peer);
        if !name.is_empty() {
            state.name = name.clone();
        }
        let with_id: Vec<Multiaddr> = listen_addrs
            .iter()
            .map(|a| a.clone().with_p2p(peer).unwrap_or_else(|a| a))
            .collect();
        // Every device met is remembered with the name it claims (never a contact by itself);
        // only peers this node redials keep their addresses.
        let addrs: &[Multiaddr] = if state.keep { &with_id } else { &[] };
        self.record_seen(&peer, &name, addrs);
        self.bus.emit(Event::PeerIdentified {
            peer,
            name,
            agent,
            protocol,
            listen_addrs,
        });
    }

    fn discovery_update(&mut self, update: Update) {
        match update {
            Update::Found(found) => {
                let state = self.entry(found.peer);
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
                    self.bus.emit(Event::PeerDiscovered {
                        peer: found.peer,
                        name: found.name,
                        addrs: found.addrs.clone(),
                    });
                }
                if !connected {
                    self.net.dial_later(found.peer, found.addrs);
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
                    self.bus.emit(Event::PeerLost { peer, name });
                }
            }
        }
    }

    /// Connections may be dead and addresses new: every peer worth redialling that is not
    /// connected is dialled now, its backoff started afresh.
    fn network_changed(&mut self) {
        let now = Instant::now();
        for state in self.peers.values_mut() {
            if state.keep && state.connections == 0 && !state.addrs.is_empty() {
                state.redial = Some(Redial {
                    at: now,
                    attempt: 0,
                });
            }
        }
        self.redial_due();
    }

    fn redial_due(&mut self) {
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
            self.net.dial_later(peer, addrs);
        }
    }
}

/// Unix seconds since which remembered peers are redialled at start (`window` back from now).
pub(super) fn redial_since(window: Duration) -> u64 {
    store::now_secs().saturating_sub(window.as_secs())
}
