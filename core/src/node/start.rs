//! Starting a node: the parts assembled in order. The data dir first; then the swarm, waited on
//! until every listener has an address (so the ports can be advertised) and the relays answered
//! (so the first ticket carries the relayed addresses); then discovery, transfers, messaging and
//! the supervisor, which takes over the swarm's news.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

use super::addrs::{complete_listen_addrs, distinct_listeners, port_of, relay_peer};
use super::supervisor::{Supervisor, redial_since};
use super::{Bus, Inner, Node, Tasks, data_dir};
use crate::config::NodeConfig;
use crate::discovery::{self, Discovery};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::messaging::{self, service::Messenger};
use crate::net::{self, NetEvent};
use crate::transfer::{self, Transfers};

/// How long a start waits for every listener to report an address.
const LISTEN_WAIT: Duration = Duration::from_secs(5);
/// How long a start waits for the configured relays to grant (or refuse) a slot.
const RELAY_WAIT: Duration = Duration::from_secs(10);

/// Starts a node (see [`Node::start`]).
pub(super) async fn start(config: NodeConfig) -> Result<Node> {
    let mut relays_pending = HashSet::new();
    for relay in &config.relays {
        relays_pending.insert(relay_peer(relay)?);
    }
    let opened = data_dir::open(&config.data_dir, config.name.as_deref())?;
    let (key, name) = (opened.key, opened.name);
    let store = Arc::new(opened.store);
    let peer_id = key.public().to_peer_id();
    let bus = Bus::new();
    let (fetcher, jobs) = super::auto_fetch::Fetcher::new(config.auto_fetch);
    let messenger = Arc::new(Messenger::new(
        key.clone(),
        &name,
        store.clone(),
        bus.messaging(fetcher.clone()),
        &config.messaging(),
    )?);
    let agent = format!("meshdrop/{} ({})", crate::VERSION, name);
    let protocols = [
        transfer::wire::PROTOCOL,
        transfer::offer::PROTOCOL,
        messaging::sync::PROTOCOL,
    ];
    let net::Started {
        net,
        events: mut net_events,
        task: mut net_task,
    } = net::start(
        key,
        agent,
        &config.listen,
        &config.relays,
        &protocols,
        config.max_process_memory,
    )?;

    let early = wait_for_listeners(&config, &mut net_events, relays_pending).await?;
    let listen_addrs = complete_listen_addrs(&config.listen, early.listen_addrs);
    let early_news = early.other;
    // No listen address at all is a node that only dials out and takes links (a phone with no
    // network); addresses configured but none up is an error.
    if listen_addrs.is_empty() && !config.listen.is_empty() {
        net_task.shutdown().await;
        return Err(Error::Listen {
            addr: format!("{:?}", config.listen),
            reason: format!("no listener came up within {} s", LISTEN_WAIT.as_secs()),
        });
    }

    let (disc_tx, disc_rx) = mpsc::channel(256);
    let advert = discovery::Advert {
        peer: peer_id,
        name: name.clone(),
        tcp_port: port_of(&listen_addrs, false),
        quic_port: port_of(&listen_addrs, true),
    };
    let discovery = start_discovery(&config, &advert, disc_tx.clone());

    let transfers = Transfers::new(
        net.clone(),
        store.clone(),
        config.transfers(),
        bus.transfers(),
    );
    transfers.set_holder_hints(Arc::new(super::hints::StoreHints {
        store: store.clone(),
    }));
    let fetching = super::auto_fetch::Fetching {
        fetcher: fetcher.clone(),
        transfers: transfers.clone(),
        store: store.clone(),
        bus: bus.clone(),
        dir: config
            .attachments_dir
            .clone()
            .unwrap_or_else(|| config.data_dir.join("attachments")),
    };
    let tasks = Tasks {
        server: transfers.serve(net_task.take_incoming(&transfer::wire::PROTOCOL)?),
        offer_server: transfers.receive_offers(net_task.take_incoming(&transfer::offer::PROTOCOL)?),
        message_sync: messaging::sync::spawn(
            messenger.clone(),
            net.clone(),
            net_task.take_incoming(&messaging::sync::PROTOCOL)?,
            &config.messaging(),
        ),
        auto_fetch: tokio::spawn(fetching.run(jobs)),
        supervisor: None,
    };

    // Reservations granted during the start are in the first ticket already.
    let relayed_addrs = Arc::new(Mutex::new(early.relayed));
    let mut supervisor = Supervisor::new(
        peer_id,
        relayed_addrs.clone(),
        store.clone(),
        net.clone(),
        net_task,
        discovery,
        bus.clone(),
    );
    // A zero window redials no one (not even peers seen in this very second).
    if !config.redial_recent.is_zero() {
        supervisor.load_recent_peers(redial_since(config.redial_recent));
    }
    bus.emit(Event::Listening {
        peer: peer_id,
        name: name.clone(),
        addrs: listen_addrs.clone(),
    });
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let supervisor_task = tokio::spawn(async move {
        supervisor
            .run(early_news, cmd_rx, net_events, disc_rx)
            .await;
    });
    let tasks = Tasks {
        supervisor: Some(supervisor_task),
        ..tasks
    };
    let node = Node {
        inner: Arc::new(Inner {
            peer_id,
            name,
            listen_addrs,
            relayed_addrs,
            bus,
            net,
            supervisor: cmd_tx,
            tasks: Mutex::new(Some(tasks)),
            transfers,
            messenger,
            store,
            attachment_ttl: config.attachment_ttl,
            limits: config.limits,
            advert,
            platform_discovery: disc_tx,
            fetcher,
        }),
    };
    if config.resume_downloads {
        node.inner.transfers.resume_interrupted();
    }
    Ok(node)
}

/// What the swarm said while the start waited for it.
struct Early {
    listen_addrs: Vec<Multiaddr>,
    /// Addresses through the relays that granted a slot.
    relayed: Vec<Multiaddr>,
    /// Everything else, for the supervisor.
    other: Vec<NetEvent>,
}

/// Waits until every listener reported an address and every relay answered (granted or refused),
/// at most [`LISTEN_WAIT`] (plus [`RELAY_WAIT`] with relays). Other news of the swarm during the
/// wait (a peer dialling in early) is kept for the supervisor.
async fn wait_for_listeners(
    config: &NodeConfig,
    events: &mut mpsc::Receiver<NetEvent>,
    mut relays_pending: HashSet<PeerId>,
) -> Result<Early> {
    let mut early = Early {
        listen_addrs: Vec::new(),
        relayed: Vec::new(),
        other: Vec::new(),
    };
    let mut other = Vec::new();
    let wait = LISTEN_WAIT
        + if config.relays.is_empty() {
            Duration::ZERO
        } else {
            RELAY_WAIT
        };
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    while distinct_listeners(&early.listen_addrs) < config.listen.len()
        || !relays_pending.is_empty()
    {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(NetEvent::NewListenAddr(addr)) => early.listen_addrs.push(addr),
                Some(ev) => {
                    match &ev {
                        NetEvent::RelayReserved { relay, addr } => {
                            relays_pending.remove(relay);
                            early.relayed.push(addr.clone());
                        }
                        NetEvent::RelayLost { relay, .. } => {
                            if let Ok(peer) = relay_peer(relay) {
                                relays_pending.remove(&peer);
                            }
                        }
                        _ => {}
                    }
                    other.push(ev);
                }
                None => return Err(Error::Stopped),
            },
            _ = &mut deadline => break,
        }
    }
    early.other = other;
    Ok(early)
}

/// Starts mDNS when configured; without it peers can still be added by hand or by ticket.
fn start_discovery(
    config: &NodeConfig,
    advert: &discovery::Advert,
    updates: mpsc::Sender<discovery::Update>,
) -> Option<Discovery> {
    if !config.mdns || config.listen.is_empty() {
        return None;
    }
    match Discovery::start(advert, &config.listen_ips(), updates) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(error = %e, "mDNS discovery unavailable");
            None
        }
    }
}
