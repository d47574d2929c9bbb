//! Links between real nodes in one process: byte streams handed to the core as a host would hand
//! it a Wi-Fi Aware socket or an L2CAP channel. Nodes with no network at all exchange a file and
//! a message over a link; a link that breaks mid-transfer is reported and the download resumes
//! over a new one; a LAN path replaces a link; the node asks the host's driver for links to the
//! devices worth one.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshdrop_core::{
    DownloadSpec, Event, Link, LinkDirection, LinkDriver, LinkIo, MessageId, Node, NodeConfig,
    PeerId, Transport,
};
use meshdrop_tests::{random_file, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::compat::TokioAsyncReadCompatExt;

const TIMEOUT: Duration = Duration::from_secs(60);

/// A node with no listen address and no mDNS: links are its only way to anyone.
async fn isolated(dir: &Path, name: &str) -> Node {
    meshdrop_tests::init_test_logging();
    let mut config = NodeConfig::loopback(dir).with_name(name).with_mdns(false);
    config.listen.clear();
    Node::start(config).await.expect("node starts")
}

fn io(stream: DuplexStream) -> Box<dyn LinkIo> {
    Box::new(stream.compat())
}

/// A pipe between two hosts that breaks (both ends see the end of the stream) once `cut_after`
/// bytes went from the first end to the second.
fn pipe(cut_after: Option<u64>) -> (DuplexStream, DuplexStream) {
    const BUF: usize = 256 * 1024;
    let (a, a_far) = tokio::io::duplex(BUF);
    let (b, b_far) = tokio::io::duplex(BUF);
    tokio::spawn(async move {
        let (mut a_read, mut a_write) = tokio::io::split(a_far);
        let (mut b_read, mut b_write) = tokio::io::split(b_far);
        let forward = async {
            let mut buf = vec![0u8; 64 * 1024];
            let mut moved = 0u64;
            loop {
                let n = match a_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if b_write.write_all(&buf[..n]).await.is_err() {
                    return;
                }
                moved += n as u64;
                if cut_after.is_some_and(|cut| moved >= cut) {
                    return;
                }
            }
        };
        let back = tokio::io::copy(&mut b_read, &mut a_write);
        // Either direction ending ends the pipe: both halves drop, both ends read EOF.
        tokio::select! {
            _ = forward => {}
            _ = back => {}
        }
    });
    (a, b)
}

/// Links `dialer` to `listener` through `pipe` ends; returns both sides' links.
async fn link(
    dialer: &Node,
    listener: &Node,
    (near, far): (DuplexStream, DuplexStream),
) -> (Link, Link) {
    let (out, inbound) = tokio::join!(
        dialer.add_link(io(near), LinkDirection::Outbound, "pipe", None),
        listener.add_link(io(far), LinkDirection::Inbound, "pipe", None),
    );
    let (out, inbound) = (out.expect("outbound link"), inbound.expect("inbound link"));
    assert_eq!(
        out.peer,
        listener.peer_id(),
        "the handshake names the listener"
    );
    assert_eq!(inbound.peer, dialer.peer_id(), "and the dialer");
    (out, inbound)
}

fn received(ev: &Event, id: MessageId) -> Option<String> {
    match ev {
        Event::MessageReceived { message } if message.id == id => Some(message.text.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_that_link_to_each_other_at_once_keep_one_link() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let ana = isolated(dirs[0].path(), "ana").await;
    let ben = isolated(dirs[1].path(), "ben").await;
    let mut ben_events = ben.events();

    // Both are each other's contact: each host opens a link to the other at the same moment.
    let (from_ana, from_ben) =
        tokio::join!(link(&ana, &ben, pipe(None)), link(&ben, &ana, pipe(None)));
    // Both sides keep the link the smaller peer id dialled, and close the other.
    let ((kept, kept_far), (gone, gone_far)) = if ana.peer_id() < ben.peer_id() {
        (from_ana, from_ben)
    } else {
        (from_ben, from_ana)
    };
    tokio::time::timeout(TIMEOUT, gone.closed())
        .await
        .expect("the twin link closes");
    tokio::time::timeout(TIMEOUT, gone_far.closed())
        .await
        .expect("on both sides");

    let id = ana.send_message(ben.peer_id(), "one link").unwrap();
    let text = wait_for(&mut ben_events, "the message", |e| received(e, id)).await;
    assert_eq!(text, "one link");
    let (mut kept, mut kept_far) = (Box::pin(kept.closed()), Box::pin(kept_far.closed()));
    assert!(
        futures::poll!(kept.as_mut()).is_pending(),
        "the kept link is up"
    );
    assert!(
        futures::poll!(kept_far.as_mut()).is_pending(),
        "on both sides"
    );
    for node in [ana, ben] {
        node.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_no_network_exchange_a_file_and_a_message_over_a_link() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let ana = isolated(dirs[0].path(), "ana").await;
    let ben = isolated(dirs[1].path(), "ben").await;
    assert!(ana.listen_addrs().is_empty(), "ana has no address at all");
    let mut ben_events = ben.events();
    let _links = link(&ben, &ana, pipe(None)).await;

    let (transport, medium) = wait_for(&mut ben_events, "connected over the link", |e| match e {
        Event::PeerConnected {
            peer,
            transport,
            medium,
            ..
        } if *peer == ana.peer_id() => Some((*transport, medium.clone())),
        _ => None,
    })
    .await;
    assert_eq!(
        (transport, medium.as_deref()),
        (Transport::Link, Some("pipe"))
    );
    let peers = ben.peers().await.unwrap();
    let seen = peers.iter().find(|p| p.peer == ana.peer_id()).expect("ana");
    assert_eq!(seen.transport, Some(Transport::Link));
    assert_eq!(seen.medium.as_deref(), Some("pipe"));

    let file = dirs[2].path().join("clip.mp4");
    random_file(&file, 16 * 1024 * 1024 + 7, 15);
    let ticket = ana.share(vec![file.clone()]).await.expect("shares");
    let done = ben.download(DownloadSpec {
        ticket,
        dest: dirs[3].path().to_path_buf(),
        files: None,
    });
    let report = tokio::time::timeout(TIMEOUT, done.wait())
        .await
        .expect("in time")
        .expect("downloads over the link");
    assert_eq!(report.rejected, 0);
    let got = std::fs::read(dirs[3].path().join("clip.mp4")).unwrap();
    assert!(got == std::fs::read(&file).unwrap(), "bytes equal");

    let mut ana_events = ana.events();
    let id = ben.send_message(ana.peer_id(), "over the link").unwrap();
    let text = wait_for(&mut ana_events, "the message", |e| received(e, id)).await;
    assert_eq!(text, "over the link");
    let copies = ana
        .messages()
        .unwrap()
        .iter()
        .filter(|m| m.id == id)
        .count();
    assert_eq!(copies, 1, "delivered exactly once");
    ana.stop().await.unwrap();
    ben.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_breaks_mid_transfer_is_reported_and_the_download_resumes_over_a_new_one() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let ana = isolated(dirs[0].path(), "ana").await;
    let ben = isolated(dirs[1].path(), "ben").await;
    let file = dirs[2].path().join("trip.mov");
    let size = 24 * 1024 * 1024;
    random_file(&file, size, 16);
    let ticket = ana.share(vec![file.clone()]).await.expect("shares");

    let mut events = ben.events();
    // Ana's side dials; the pipe breaks after 6 MiB went from ana to ben.
    let (first, _) = link(&ana, &ben, pipe(Some(6 * 1024 * 1024))).await;
    let done = ben.download(DownloadSpec {
        ticket,
        dest: dirs[3].path().to_path_buf(),
        files: None,
    });
    tokio::time::timeout(TIMEOUT, first.closed())
        .await
        .expect("the broken link is reported closed");
    wait_for(&mut events, "ana gone with the link", |e| {
        matches!(e, Event::PeerDisconnected { peer } if *peer == ana.peer_id()).then_some(())
    })
    .await;
    assert!(
        !ben.peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.peer == ana.peer_id() && p.connected),
        "no longer connected"
    );

    let _second = link(&ana, &ben, pipe(None)).await;
    let report = tokio::time::timeout(TIMEOUT, done.wait())
        .await
        .expect("in time")
        .expect("the download finishes over the new link");
    assert!(
        std::fs::read(dirs[3].path().join("trip.mov")).unwrap() == std::fs::read(&file).unwrap()
    );
    assert_eq!(report.rejected, 0);
    assert!(
        report.fetched < size as u64 + 6 * 1024 * 1024,
        "resumed, not restarted: fetched {} of {size}",
        report.fetched
    );
    ana.stop().await.unwrap();
    ben.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lan_path_replaces_a_link_and_a_later_link_gives_way_to_it() {
    meshdrop_tests::init_test_logging();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let config = |d: &Path, name: &str| NodeConfig::loopback(d).with_name(name).with_mdns(false);
    let ana = Node::start(config(dirs[0].path(), "ana")).await.unwrap();
    let ben = Node::start(config(dirs[1].path(), "ben")).await.unwrap();
    let mut events = ben.events();
    let (link_up, _) = link(&ben, &ana, pipe(None)).await;

    let addr = ana.listen_addrs()[0].clone();
    ben.connect(addr).await.expect("the LAN path");
    let transport = wait_for(&mut events, "the upgrade", |e| match e {
        Event::ConnectionUpgraded {
            peer, transport, ..
        } if *peer == ana.peer_id() => Some(*transport),
        _ => None,
    })
    .await;
    assert_ne!(transport, Transport::Link);
    tokio::time::timeout(TIMEOUT, link_up.closed())
        .await
        .expect("the link closes: the LAN is better");
    let peers = ben.peers().await.unwrap();
    let seen = peers.iter().find(|p| p.peer == ana.peer_id()).expect("ana");
    assert!(seen.connected && seen.transport == Some(transport) && seen.medium.is_none());

    // A link handed over while the LAN path is up closes at once: each side hears it closed,
    // or (when the other side closed it mid-handshake) that it did not open.
    let (near, far) = pipe(None);
    let (out, inbound) = tokio::join!(
        ben.add_link(io(near), LinkDirection::Outbound, "pipe", None),
        ana.add_link(io(far), LinkDirection::Inbound, "pipe", None),
    );
    let out = out.expect("the dialer sees the link up before closing it");
    tokio::time::timeout(TIMEOUT, out.closed())
        .await
        .expect("the late link closes");
    if let Ok(inbound) = inbound {
        tokio::time::timeout(TIMEOUT, inbound.closed())
            .await
            .expect("on both sides");
    }
    let peers = ben.peers().await.unwrap();
    assert!(peers.iter().any(|p| p.peer == ana.peer_id() && p.connected));
    ana.stop().await.unwrap();
    ben.stop().await.unwrap();
}

/// A host's link driver joining two nodes in this process: opening a link to a device makes a
/// pipe and hands its ends to both nodes.
struct Radio {
    asked: Mutex<Vec<String>>,
    here: Node,
    there: Node,
}

impl LinkDriver for Radio {
    fn start_discovery(&self, medium: String) {
        self.asked.lock().unwrap().push(format!("start {medium}"));
    }
    fn stop_discovery(&self, medium: String) {
        self.asked.lock().unwrap().push(format!("stop {medium}"));
    }
    fn open_link(&self, medium: String, device: String) {
        self.asked.lock().unwrap().push(format!("open {device}"));
        let (here, there) = (self.here.clone(), self.there.clone());
        tokio::spawn(async move {
            let (near, far) = pipe(None);
            let _ = tokio::join!(
                here.add_link(io(near), LinkDirection::Outbound, &medium, Some(device)),
                there.add_link(io(far), LinkDirection::Inbound, &medium, None),
            );
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_asks_the_host_for_links_to_contacts_and_not_to_strangers() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ana = isolated(dirs[0].path(), "ana").await;
    let ben = isolated(dirs[1].path(), "ben").await;
    let eve = isolated(dirs[2].path(), "eve").await;
    let radio = Arc::new(Radio {
        asked: Mutex::default(),
        here: ana.clone(),
        there: ben.clone(),
    });
    ana.set_link_driver(radio.clone(), vec!["wifi-aware".into()])
        .await
        .unwrap();
    ana.add_contact(ben.peer_id(), "Ben").unwrap();
    let mut events = ana.events();
    ana.device_nearby("wifi-aware", "eve-phone", Some(eve.peer_id()))
        .await
        .unwrap();
    ana.device_nearby("wifi-aware", "ben-phone", Some(ben.peer_id()))
        .await
        .unwrap();
    let medium = wait_for(&mut events, "a link to the contact", |e| match e {
        Event::PeerConnected { peer, medium, .. } if *peer == ben.peer_id() => medium.clone(),
        _ => None,
    })
    .await;
    assert_eq!(medium, "wifi-aware");
    let asked = radio.asked.lock().unwrap().clone();
    assert_eq!(
        asked,
        ["start wifi-aware", "open ben-phone"],
        "no link to the stranger"
    );
    let connected: Vec<PeerId> = ana
        .peers()
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.connected)
        .map(|p| p.peer)
        .collect();
    assert_eq!(connected, [ben.peer_id()]);
    ana.stop().await.unwrap();
    assert_eq!(
        radio.asked.lock().unwrap().last().unwrap(),
        "stop wifi-aware"
    );
    ben.stop().await.unwrap();
    eve.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_speaks_no_meshdrop_fails_with_a_clear_error_and_links_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let ana = isolated(dir.path(), "ana").await;

    // Garbage instead of a handshake: the link does not open, and says so.
    let (near, mut far) = tokio::io::duplex(1024);
    far.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let failed = tokio::time::timeout(
        TIMEOUT,
        ana.add_link(io(near), LinkDirection::Inbound, "pipe", None),
    )
    .await
    .expect("fails in time")
    .expect_err("no meshdrop node at the other end");
    assert!(
        failed.to_string().contains("the link did not open"),
        "{failed}"
    );

    // Silent links wait for their handshake (at most LINK_TIMEOUT each); beyond MAX_LINKS at
    // once, a new one is refused at once.
    let mut silent = Vec::new();
    let mut waiting = Vec::new();
    for _ in 0..meshdrop_core::net::MAX_LINKS {
        let (near, far) = tokio::io::duplex(1024);
        silent.push(far);
        let mut link = Box::pin(ana.add_link(io(near), LinkDirection::Inbound, "pipe", None));
        assert!(
            futures::poll!(link.as_mut()).is_pending(),
            "waits for the handshake"
        );
        waiting.push(link);
    }
    let (near, _far) = tokio::io::duplex(1024);
    let refused = ana
        .add_link(io(near), LinkDirection::Inbound, "pipe", None)
        .await
        .expect_err("one link too many");
    assert!(
        refused
            .to_string()
            .contains("links are open already; close one first"),
        "{refused}"
    );
    drop(silent);
    for link in waiting {
        let result = tokio::time::timeout(TIMEOUT, link).await.expect("ends");
        assert!(
            result.is_err(),
            "a link whose far end hung up does not open"
        );
    }
    ana.stop().await.unwrap();
}
