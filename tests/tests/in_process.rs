//! Several real nodes in one process on 127.0.0.1: connections over QUIC and TCP, identity that
//! survives restarts, the verification code, mDNS on loopback, redial of remembered peers and of
//! known peers after a network change.

use libp2p::multiaddr::Protocol;
use meshdrop_core::{Event, Multiaddr, Node, NodeConfig, PeerId, Transport};
use meshdrop_tests::wait_for;

async fn start(dir: &std::path::Path, name: &str) -> Node {
    Node::start(NodeConfig::loopback(dir).with_name(name).with_mdns(false))
        .await
        .expect("node starts")
}

/// The listen address of `node` on the given transport, with its peer id.
fn addr_of(node: &Node, transport: Transport) -> Multiaddr {
    node.listen_addrs()
        .into_iter()
        .find(|a| Transport::of(a) == transport)
        .expect("listens on the transport")
        .with(Protocol::P2p(node.peer_id()))
}

async fn two_devices_connect_over(transport: Transport) {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(da.path(), "alice").await;
    let b = start(db.path(), "bob").await;
    let (mut ea, mut eb) = (a.events(), b.events());

    let peer = a.connect(addr_of(&b, transport)).await.expect("connects");
    assert_eq!(peer, b.peer_id());

    let (code_a, used) = wait_for(&mut ea, "alice connected", |e| match e {
        Event::PeerConnected {
            peer,
            verification_code,
            transport,
            ..
        } if *peer == b.peer_id() => Some((verification_code.clone(), *transport)),
        _ => None,
    })
    .await;
    assert_eq!(used, transport);
    let code_b = wait_for(&mut eb, "bob connected", |e| match e {
        Event::PeerConnected {
            peer,
            verification_code,
            ..
        } if *peer == a.peer_id() => Some(verification_code.clone()),
        _ => None,
    })
    .await;
    assert_eq!(code_a, code_b, "both screens show the same code");
    assert_eq!(code_a, a.verification_code(&b.peer_id()));

    let (name, agent, protocol) = wait_for(&mut ea, "bob identified", |e| match e {
        Event::PeerIdentified {
            peer,
            name,
            agent,
            protocol,
            ..
        } if *peer == b.peer_id() => Some((name.clone(), agent.clone(), protocol.clone())),
        _ => None,
    })
    .await;
    assert_eq!(name, "bob");
    assert_eq!(agent, format!("meshdrop/{}", meshdrop_core::VERSION));
    assert_eq!(protocol, "/meshdrop/1");

    let peers = a.peers().await.unwrap();
    let bob = peers
        .iter()
        .find(|p| p.peer == b.peer_id())
        .expect("bob listed");
    assert!(bob.connected);
    assert_eq!(bob.name, "bob");

    b.stop().await.unwrap();
    wait_for(&mut ea, "bob disconnected", |e| {
        matches!(e, Event::PeerDisconnected { peer } if *peer == b.peer_id()).then_some(())
    })
    .await;
    a.stop().await.unwrap();
}

#[tokio::test]
async fn two_devices_connect_by_address_over_quic_and_see_who_they_are() {
    two_devices_connect_over(Transport::Quic).await;
}

#[tokio::test]
async fn two_devices_connect_by_address_over_tcp_and_see_who_they_are() {
    two_devices_connect_over(Transport::Tcp).await;
}

#[tokio::test]
async fn a_restarted_device_keeps_its_peer_id_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path(), "laptop").await;
    let id = first.peer_id();
    first.stop().await.unwrap();
    let again = Node::start(NodeConfig::loopback(dir.path()).with_mdns(false))
        .await
        .unwrap();
    assert_eq!(again.peer_id(), id);
    assert_eq!(again.name(), "laptop");
    again.stop().await.unwrap();
}

#[tokio::test]
async fn a_restarted_device_redials_the_peers_it_saw_recently() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let b = start(db.path(), "bob").await;
    let a = start(da.path(), "alice").await;
    a.connect(addr_of(&b, Transport::Tcp)).await.unwrap();
    a.stop().await.unwrap();

    // No mDNS, no address given: only the store can bring bob back.
    let a = Node::start(NodeConfig::loopback(da.path()).with_mdns(false))
        .await
        .unwrap();
    let mut ea = a.events();
    wait_for(&mut ea, "bob redialled", |e| {
        matches!(e, Event::PeerConnected { peer, .. } if *peer == b.peer_id()).then_some(())
    })
    .await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn after_a_network_change_a_known_peer_that_was_out_of_reach_is_dialled_at_once() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // Bob listens on one port, so his address stays the same across his restarts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bob_config = || {
        let mut config = NodeConfig::loopback(db.path())
            .with_name("bob")
            .with_mdns(false);
        config.listen = vec![format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()];
        config
    };
    let bob = Node::start(bob_config()).await.unwrap();
    let (id, addrs) = (bob.peer_id(), bob.listen_addrs());
    bob.stop().await.unwrap();

    // Alice is told of bob while he is out of reach: the dial fails, and nothing redials a peer
    // it never reached.
    let alice = start(da.path(), "alice").await;
    alice
        .add_peer(id, addrs)
        .await
        .expect_err("bob is out of reach");

    // Bob is back; alice's phone joins another network and says so: her node dials him now.
    let bob = Node::start(bob_config()).await.unwrap();
    let mut events = alice.events();
    alice.network_changed().await.unwrap();
    wait_for(&mut events, "bob dialled after the network change", |e| {
        matches!(e, Event::PeerConnected { peer, .. } if *peer == id).then_some(())
    })
    .await;
    alice.stop().await.unwrap();
    bob.stop().await.unwrap();
}

#[tokio::test]
async fn devices_on_loopback_find_each_other_with_mdns_and_notice_a_goodbye() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Node::start(NodeConfig::loopback(da.path()).with_name("alice"))
        .await
        .unwrap();
    let mut ea = a.events();
    let b = Node::start(NodeConfig::loopback(db.path()).with_name("bob"))
        .await
        .unwrap();
    let bob = b.peer_id();
    // Discovery and connection race (bob may dial first): wait for both, in any order.
    let (mut name, mut connected) = (None, false);
    while name.is_none() || !connected {
        wait_for(&mut ea, "bob discovered and connected", |e| match e {
            Event::PeerDiscovered { peer, name: n, .. } if *peer == bob => {
                name = Some(n.clone());
                Some(())
            }
            Event::PeerConnected { peer, .. } if *peer == bob => {
                connected = true;
                Some(())
            }
            _ => None,
        })
        .await;
    }
    assert_eq!(name.as_deref(), Some("bob"));
    b.stop().await.unwrap();
    wait_for(&mut ea, "bob lost", |e| {
        matches!(e, Event::PeerLost { peer, .. } if *peer == bob).then_some(())
    })
    .await;
    assert!(
        !a.peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.peer == bob && p.discovered)
    );
    a.stop().await.unwrap();
}

#[tokio::test]
async fn dialling_nobody_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path(), "alice").await;
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{}", PeerId::random())
        .parse()
        .unwrap();
    let err = a.connect(addr).await.unwrap_err().to_string();
    assert!(err.starts_with("peer unreachable"), "{err}");
    let own = a
        .add_peer(a.peer_id(), vec![])
        .await
        .unwrap_err()
        .to_string();
    assert!(own.contains("own peer id"), "{own}");
    a.stop().await.unwrap();
}

#[tokio::test]
async fn a_node_over_its_memory_limit_refuses_new_connections_and_one_inside_an_app_has_none() {
    let (da, db, dc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    // This test process holds more than 1 MiB: a node limited to that takes no one new.
    let mut config = NodeConfig::loopback(da.path())
        .with_name("full")
        .with_mdns(false);
    config.max_process_memory = Some(1 << 20);
    let full = Node::start(config).await.expect("node starts");
    // The default (a node inside an app) counts no process memory.
    let roomy = start(db.path(), "roomy").await;
    let caller = start(dc.path(), "caller").await;

    let refused = caller
        .connect(addr_of(&full, Transport::Tcp))
        .await
        .expect_err("over its memory limit");
    assert!(
        refused.to_string().starts_with("peer unreachable"),
        "{refused}"
    );
    let peer = caller
        .connect(addr_of(&roomy, Transport::Tcp))
        .await
        .expect("no limit by default");
    assert_eq!(peer, roomy.peer_id());
    for node in [full, roomy, caller] {
        node.stop().await.unwrap();
    }
}
