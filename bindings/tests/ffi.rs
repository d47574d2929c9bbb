//! The bindings as a host uses them, with a listener implemented in Rust: two nodes on loopback
//! share, download, offer, feed a platform browser's finds, message, map errors, and shut down.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use meshdrop_core::transfer::limits::TransferLimits;
use meshdrop_ffi::{
    EventListener, FailureKind, MeshdropError, MessageState, Node, NodeConfig, NodeEvent,
    SendOutcome, TransferStatus, UploadLimits, start_node,
};
use tokio::sync::mpsc;

/// Forwards every event to the test.
struct Recorder(mpsc::UnboundedSender<NodeEvent>);

impl EventListener for Recorder {
    fn on_event(&self, event: NodeEvent) {
        let _ = self.0.send(event);
    }
}

struct TestNode {
    node: Arc<Node>,
    events: mpsc::UnboundedReceiver<NodeEvent>,
    _dir: tempfile::TempDir,
}

async fn node(name: &str) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let (tx, events) = mpsc::unbounded_channel();
    let config = NodeConfig {
        data_dir: dir.path().join("data").display().to_string(),
        device_name: Some(name.into()),
        bind: vec!["127.0.0.1".into()],
        listen: true,
        mdns: false,
        on_battery: false,
        relays: vec![],
    };
    let node = start_node(config, Arc::new(Recorder(tx))).await.unwrap();
    TestNode {
        node,
        events,
        _dir: dir,
    }
}

impl TestNode {
    /// The first event matching `pred`, within 20 s.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&NodeEvent) -> bool) -> NodeEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) if pred(&e) => return e,
                Ok(Some(_)) => {}
                Ok(None) => panic!("event stream closed while waiting for {what}"),
                Err(_) => panic!("no {what} event within 20 s"),
            }
        }
    }

    /// Shuts down, then checks that `Stopped` was the last event and that the listener was
    /// released (no callback can come after shutdown).
    async fn shutdown(mut self) -> Vec<NodeEvent> {
        self.node.shutdown().await.unwrap();
        let mut rest = Vec::new();
        while let Ok(Some(e)) =
            tokio::time::timeout(Duration::from_secs(5), self.events.recv()).await
        {
            rest.push(e);
        }
        assert_eq!(
            rest.last(),
            Some(&NodeEvent::Stopped),
            "events after shutdown: {rest:?}"
        );
        assert!(
            self.events.is_closed(),
            "the listener is still held after shutdown"
        );
        rest
    }
}

fn write_folder(root: &Path) -> Vec<(String, Vec<u8>)> {
    let files = vec![
        (
            "album/a.bin".to_string(),
            (0..3_000_000u32).map(|i| (i % 251) as u8).collect(),
        ),
        (
            "album/notes/b.txt".to_string(),
            b"hello from meshdrop\n".to_vec(),
        ),
    ];
    for (rel, bytes) in &files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    files
}

#[tokio::test]
async fn a_shared_folder_downloads_with_progress_and_equal_bytes() {
    let a = node("alice").await;
    let mut b = node("bob").await;
    let src = tempfile::tempdir().unwrap();
    let files = write_folder(src.path());
    let ticket = a
        .node
        .share(vec![src.path().join("album").display().to_string()])
        .await
        .unwrap();

    let dest = tempfile::tempdir().unwrap();
    let transfer = b
        .node
        .download(ticket, dest.path().display().to_string(), None)
        .unwrap();
    // The transfer's own status stream, to its end.
    let mut statuses = Vec::new();
    while let Some(status) = tokio::time::timeout(Duration::from_secs(20), transfer.next_status())
        .await
        .unwrap()
    {
        statuses.push(status);
    }
    let Some(TransferStatus::Finished { bytes, paths, .. }) = statuses.last().cloned() else {
        panic!("the status stream ends finished: {statuses:?}")
    };
    assert_eq!(bytes, 3_000_020);
    let wanted: Vec<String> = files
        .iter()
        .map(|(rel, _)| dest.path().join(rel).display().to_string())
        .collect();
    assert_eq!(paths, wanted, "the finished files, where they are");
    let report = transfer.wait().await.unwrap();
    assert_eq!(report.bytes, 3_000_020);
    assert_eq!(report.paths, wanted);
    for (rel, bytes) in &files {
        assert_eq!(
            &std::fs::read(dest.path().join(rel)).unwrap(),
            bytes,
            "{rel}"
        );
    }

    let id = transfer.id();
    let done = b
        .wait_for("final progress", |e| {
            matches!(e, NodeEvent::TransferProgress { transfer_id, done, total, .. }
                if *transfer_id == id && done == total)
        })
        .await;
    println!("last progress: {done:?}");
    let finished = b
        .wait_for("transfer finished", |e| {
            matches!(e, NodeEvent::TransferFinished { transfer_id, bytes: 3_000_020, .. } if *transfer_id == id)
        })
        .await;
    assert!(
        matches!(&finished, NodeEvent::TransferFinished { paths, .. } if *paths == wanted),
        "{finished:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn an_offer_is_accepted_through_the_listener_and_delivered() {
    let a = node("alice").await;
    let mut b = node("bob").await;
    a.node
        .add_peer(b.node.peer_id(), b.node.listen_addrs())
        .await
        .unwrap();
    let src = tempfile::tempdir().unwrap();
    let files = write_folder(src.path());
    let sender = a.node.clone();
    let (peer, path) = (
        b.node.peer_id(),
        src.path().join("album").display().to_string(),
    );
    // Bob compared codes with Alice: only contacts may offer files.
    b.node
        .add_contact(a.node.peer_id(), "Alice".into())
        .unwrap();
    let sending = tokio::spawn(async move { sender.send_files(peer, vec![path]).await });

    let offer = b
        .wait_for("offer", |e| matches!(e, NodeEvent::OfferReceived { .. }))
        .await;
    let NodeEvent::OfferReceived {
        offer_id,
        name,
        files: offered,
        verification_code,
        ..
    } = offer
    else {
        unreachable!()
    };
    assert_eq!(name, "alice");
    assert_eq!(offered.len(), 2);
    assert_eq!(
        verification_code,
        a.node.verification_code(b.node.peer_id()).unwrap()
    );
    let dest = tempfile::tempdir().unwrap();
    b.node
        .accept_offer(offer_id, dest.path().display().to_string(), None, false)
        .unwrap();

    let outcome = sending.await.unwrap().unwrap();
    assert_eq!(outcome, SendOutcome::Delivered { bytes: 3_000_020 });
    for (rel, bytes) in &files {
        assert_eq!(
            &std::fs::read(dest.path().join(rel)).unwrap(),
            bytes,
            "{rel}"
        );
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_platform_browser_feeds_discovery() {
    let a = node("alice").await;
    let mut b = node("bob").await;
    let advert = a.node.advertisement();
    assert_eq!(advert.service_type, "_meshdrop._udp");
    assert_eq!(advert.instance_name, a.node.peer_id());
    assert_eq!(advert.txt["name"], "alice");
    assert!(advert.txt.contains_key("tcp") && advert.txt.contains_key("quic"));

    // Its own advert, as every browser also sees it, is ignored.
    b.node
        .peer_resolved(b.node.advertisement().txt, vec!["127.0.0.1".into()])
        .await
        .unwrap();
    b.node
        .peer_resolved(
            advert.txt.clone(),
            vec!["127.0.0.1".into(), "fe80::1".into()],
        )
        .await
        .unwrap();
    let found = b
        .wait_for("discovered", |e| {
            matches!(e, NodeEvent::PeerDiscovered { .. })
        })
        .await;
    assert!(
        matches!(&found, NodeEvent::PeerDiscovered { peer_id, name, .. } if *peer_id == a.node.peer_id() && name == "alice"),
        "{found:?}"
    );
    b.wait_for(
        "connected",
        |e| matches!(e, NodeEvent::PeerConnected { peer_id, .. } if *peer_id == a.node.peer_id()),
    )
    .await;
    b.node.peer_gone(advert.instance_name).await.unwrap();
    b.wait_for("lost", |e| {
        matches!(e, NodeEvent::PeerLost { peer_id, name } if *peer_id == a.node.peer_id() && name == "alice")
    })
    .await;
    let peers = b.node.peers().await.unwrap();
    assert!(
        peers
            .iter()
            .any(|p| p.peer_id == a.node.peer_id() && !p.discovered)
    );

    let bad = b
        .node
        .peer_resolved(HashMap::new(), vec!["127.0.0.1".into()])
        .await;
    assert!(
        matches!(bad, Err(MeshdropError::InvalidInput { .. })),
        "{bad:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn errors_map_to_what_a_caller_can_act_on() {
    let a = node("alice").await;
    let mut b = node("bob").await;
    let dest_dir = tempfile::tempdir().unwrap();
    let dest = dest_dir.path().display().to_string();

    let bad_ticket = b
        .node
        .download("meshdrop-nonsense".into(), dest.clone(), None);
    assert!(matches!(
        bad_ticket,
        Err(MeshdropError::InvalidTicket { .. })
    ));
    let unknown_offer = b.node.decline_offer(42);
    assert!(
        matches!(&unknown_offer, Err(MeshdropError::NotFound { what }) if what.contains("42")),
        "{unknown_offer:?}"
    );
    let bad_peer = b.node.add_peer("not-a-peer".into(), vec![]).await;
    assert!(
        matches!(bad_peer, Err(MeshdropError::InvalidInput { .. })),
        "{bad_peer:?}"
    );
    let bad_bind = start_node(
        NodeConfig {
            data_dir: dest.clone(),
            device_name: None,
            bind: vec!["not-an-ip".into()],
            listen: true,
            mdns: false,
            on_battery: false,
            relays: vec![],
        },
        Arc::new(Recorder(mpsc::unbounded_channel().0)),
    )
    .await;
    assert!(
        matches!(bad_bind, Err(MeshdropError::InvalidInput { reason }) if reason.contains("not-an-ip"))
    );
    let relay_config = |relay: &str| NodeConfig {
        data_dir: dest.clone(),
        device_name: None,
        bind: vec!["127.0.0.1".into()],
        listen: true,
        mdns: false,
        on_battery: false,
        relays: vec![relay.into()],
    };
    let not_an_address = start_node(
        relay_config("relay.example.org"),
        Arc::new(Recorder(mpsc::unbounded_channel().0)),
    )
    .await;
    assert!(
        matches!(&not_an_address, Err(MeshdropError::InvalidInput { reason }) if reason.contains("relay address")),
        "{:?}",
        not_an_address.err()
    );
    let no_peer_id = start_node(
        relay_config("/ip4/127.0.0.1/tcp/4001"),
        Arc::new(Recorder(mpsc::unbounded_channel().0)),
    )
    .await;
    assert!(
        matches!(&no_peer_id, Err(MeshdropError::InvalidInput { reason }) if reason.contains("/p2p/<relay peer id>")),
        "{:?}",
        no_peer_id.err()
    );

    // A share whose only provider is gone: the download waits for someone who has it, saying
    // whom it asked, until the app cancels it.
    let src = tempfile::tempdir().unwrap();
    write_folder(src.path());
    let ticket = a
        .node
        .share(vec![src.path().display().to_string()])
        .await
        .unwrap();
    a.shutdown().await;
    let transfer = b.node.download(ticket, dest, None).unwrap();
    let id = transfer.id();
    b.wait_for("the download waiting for a holder", |e| {
        matches!(e, NodeEvent::TransferWaiting { transfer_id, tried, .. }
            if *transfer_id == id && !tried.is_empty())
    })
    .await;
    // Work left for the app's background task: the waiting download, with where it goes.
    let unfinished = b.node.unfinished_downloads().unwrap();
    assert_eq!(unfinished.len(), 1, "{unfinished:?}");
    assert_eq!(
        Path::new(&unfinished[0].dest).canonicalize().unwrap(),
        dest_dir.path().canonicalize().unwrap()
    );
    transfer.cancel(true);
    let gone = transfer.wait().await;
    assert!(matches!(gone, Err(MeshdropError::Cancelled)), "{gone:?}");
    b.shutdown().await;
}

#[test]
fn core_download_errors_keep_their_fields() {
    let e = MeshdropError::from(meshdrop_core::DownloadError::NoSpace {
        path: "/sdcard/Download".into(),
        needed: 10,
        available: 3,
    });
    assert_eq!(
        e,
        MeshdropError::NoSpace {
            path: "/sdcard/Download".into(),
            needed: 10,
            available: 3
        }
    );
    assert_eq!(
        MeshdropError::from(meshdrop_core::DownloadError::Cancelled),
        MeshdropError::Cancelled
    );
}

#[tokio::test]
async fn a_message_arrives_once_and_its_sender_sees_it_delivered() {
    let mut a = node("alice").await;
    let mut b = node("bob").await;
    a.node
        .add_peer(b.node.peer_id(), b.node.listen_addrs())
        .await
        .unwrap();
    let id = a
        .node
        .send_message(b.node.peer_id(), "hi bob".into())
        .await
        .unwrap();

    let received = b
        .wait_for("message", |e| {
            matches!(e, NodeEvent::MessageReceived { .. })
        })
        .await;
    let NodeEvent::MessageReceived { message } = received else {
        unreachable!()
    };
    assert_eq!(
        (message.id.as_str(), message.text.as_str()),
        (id.as_str(), "hi bob")
    );
    assert_eq!(message.from_peer, a.node.peer_id());
    assert_eq!(message.attachment, None);
    assert!(!message.outgoing);
    a.wait_for("delivered", |e| {
        matches!(e, NodeEvent::MessageStateChanged { message_id, state: MessageState::Delivered } if *message_id == id)
    })
    .await;
    let history = b.node.messages().await.unwrap();
    assert_eq!(history.iter().filter(|m| m.id == id).count(), 1);
    // Meeting alice made her no contact: her message has no name until bob gives her one.
    let history = b.node.messages().await.unwrap();
    let from = history.iter().find(|m| m.id == id).unwrap();
    assert_eq!(from.from_name, None);
    assert!(b.node.contacts().unwrap().is_empty());
    b.node
        .add_contact(a.node.peer_id(), "Alice".into())
        .unwrap();
    let history = b.node.messages().await.unwrap();
    let from = history.iter().find(|m| m.id == id).unwrap();
    assert_eq!(from.from_name.as_deref(), Some("Alice"));
    assert_eq!(
        b.node.contacts().unwrap()[0].claimed_name.as_deref(),
        Some("alice")
    );

    let bad = a.node.send_message("not-a-peer".into(), "x".into()).await;
    assert!(
        matches!(bad, Err(MeshdropError::InvalidInput { .. })),
        "{bad:?}"
    );
    a.shutdown().await;
    let after = b.shutdown().await;
    assert!(
        !after
            .iter()
            .any(|e| matches!(e, NodeEvent::MessageReceived { .. })),
        "the message arrived twice: {after:?}"
    );
}

#[tokio::test]
async fn a_transfer_pauses_resumes_and_cancels() {
    let a = node("alice").await;
    let mut b = node("bob").await;
    let src = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..8_000_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(src.path().join("big.bin"), &data).unwrap();
    let ticket = a
        .node
        .share(vec![src.path().join("big.bin").display().to_string()])
        .await
        .unwrap();

    let dest = tempfile::tempdir().unwrap();
    let paused = b
        .node
        .download(ticket.clone(), dest.path().display().to_string(), None)
        .unwrap();
    paused.pause();
    paused.resume();
    paused.wait().await.unwrap();
    assert_eq!(std::fs::read(dest.path().join("big.bin")).unwrap(), data);

    let other = tempfile::tempdir().unwrap();
    let cancelled = b
        .node
        .download(ticket, other.path().display().to_string(), None)
        .unwrap();
    cancelled.pause();
    cancelled.cancel(false);
    assert_eq!(cancelled.wait().await, Err(MeshdropError::Cancelled));
    assert!(!other.path().join("big.bin").exists());
    let mut last = None;
    while let Some(status) = cancelled.next_status().await {
        last = Some(status);
    }
    assert_eq!(
        last,
        Some(TransferStatus::Failed {
            error: "cancelled".into(),
            kind: FailureKind::Cancelled
        })
    );
    let id = cancelled.id();
    let failed = b
        .wait_for(
            "transfer failed",
            |e| matches!(e, NodeEvent::TransferFailed { transfer_id, .. } if *transfer_id == id),
        )
        .await;
    assert!(
        matches!(
            failed,
            NodeEvent::TransferFailed {
                kind: FailureKind::Cancelled,
                ..
            }
        ),
        "{failed:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_phone_on_battery_seeds_within_the_battery_limits_and_follows_the_charger() {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig {
        data_dir: dir.path().display().to_string(),
        device_name: Some("phone".into()),
        bind: vec!["127.0.0.1".into()],
        listen: true,
        mdns: false,
        on_battery: true,
        relays: vec![],
    };
    let (tx, _events) = mpsc::unbounded_channel();
    let phone = start_node(config, Arc::new(Recorder(tx))).await.unwrap();
    let battery = TransferLimits::on_battery();
    assert_eq!(
        phone.upload_limits(),
        UploadLimits {
            max_upload_rate: battery.max_upload_rate,
            upload_slots: battery.upload_slots as u32
        }
    );
    phone.set_on_battery(false).unwrap();
    let plugged = TransferLimits::default();
    assert_eq!(
        phone.upload_limits(),
        UploadLimits {
            max_upload_rate: plugged.max_upload_rate,
            upload_slots: plugged.upload_slots as u32
        }
    );
    phone.shutdown().await.unwrap();
}
