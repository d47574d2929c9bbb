//! Pushing files to a nearby device (the AirDrop flow) between real nodes on 127.0.0.1: the
//! receiver is asked first, nothing is written before it accepts, the sender learns the outcome.

use std::path::Path;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use meshdrop_core::transfer::offer::{Decision, SendOutcome};
use meshdrop_core::{Event, Node, NodeConfig, Transport};
use tokio::sync::broadcast;

async fn node(dir: &Path, name: &str) -> Node {
    Node::start(NodeConfig::loopback(dir).with_name(name).with_mdns(false))
        .await
        .expect("node starts")
}

/// Two connected nodes.
async fn pair(a: &Path, b: &Path) -> (Node, Node) {
    let sender = node(a, "sender").await;
    let receiver = node(b, "receiver").await;
    let addr = receiver
        .listen_addrs()
        .into_iter()
        .find(|a| Transport::of(a) == Transport::Tcp)
        .unwrap()
        .with(Protocol::P2p(receiver.peer_id()));
    sender.connect(addr).await.unwrap();
    (sender, receiver)
}

/// Waits for the receiver's offer event: (offer id, sender name, code, file paths, total).
async fn next_offer(
    events: &mut broadcast::Receiver<Event>,
) -> (u64, String, String, Vec<String>, u64) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(Event::OfferReceived {
                offer,
                name,
                verification_code,
                files,
                total,
                ..
            }) = events.recv().await
            {
                return (
                    offer,
                    name,
                    verification_code,
                    files.into_iter().map(|f| f.path).collect(),
                    total,
                );
            }
        }
    })
    .await
    .expect("an offer arrives")
}

fn holiday(root: &Path) -> std::path::PathBuf {
    let dir = root.join("Holiday");
    std::fs::create_dir_all(dir.join("clips")).unwrap();
    std::fs::write(dir.join("clips/beach.mp4"), vec![7u8; 3 * 1024 * 1024 + 5]).unwrap();
    std::fs::write(dir.join("notes.txt"), b"sunscreen").unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_offer_arrives_verified_and_the_sender_is_told() {
    let (da, db, files, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (sender, receiver) = pair(da.path(), db.path()).await;
    let source = holiday(files.path());
    let mut rx_events = receiver.events();
    let mut tx_events = sender.events();
    let to = receiver.peer_id();
    let sending = tokio::spawn({
        let sender = sender.clone();
        async move { sender.send_files(to, vec![source]).await }
    });
    let (offer, name, code, paths, total) = next_offer(&mut rx_events).await;
    assert_eq!(name, "sender");
    assert_eq!(code, receiver.verification_code(&sender.peer_id()));
    assert_eq!(paths, vec!["Holiday/clips/beach.mp4", "Holiday/notes.txt"]);
    assert_eq!(total, 3 * 1024 * 1024 + 5 + 9);
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing written before accepting"
    );

    receiver
        .respond_offer(
            offer,
            Decision::Accept {
                dest: out.path().to_path_buf(),
                files: None,
            },
        )
        .unwrap();
    let outcome = sending.await.unwrap().expect("offer completes");
    assert_eq!(outcome, SendOutcome::Delivered { bytes: total });
    assert_eq!(
        std::fs::read(out.path().join("Holiday/clips/beach.mp4")).unwrap(),
        vec![7u8; 3 * 1024 * 1024 + 5]
    );
    assert_eq!(
        std::fs::read(out.path().join("Holiday/notes.txt")).unwrap(),
        b"sunscreen"
    );
    let mut accepted = false;
    while let Ok(ev) = tx_events.try_recv() {
        accepted |= matches!(ev, Event::OfferAccepted { peer, files: 2, .. } if peer == to);
    }
    assert!(accepted, "the sender saw the acceptance");
    assert!(
        receiver.respond_offer(offer, Decision::Decline).is_err(),
        "an answered offer cannot be answered again"
    );
    sender.stop().await.unwrap();
    receiver.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_offer_writes_nothing_and_the_sender_is_told() {
    let (da, db, files, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (sender, receiver) = pair(da.path(), db.path()).await;
    let source = holiday(files.path());
    let mut rx_events = receiver.events();
    let to = receiver.peer_id();
    let sending = tokio::spawn({
        let sender = sender.clone();
        async move { sender.send_files(to, vec![source]).await }
    });
    let (offer, ..) = next_offer(&mut rx_events).await;
    receiver.respond_offer(offer, Decision::Decline).unwrap();
    let outcome = sending.await.unwrap().expect("offer answered");
    assert!(
        matches!(outcome, SendOutcome::Declined { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing written"
    );
    sender.stop().await.unwrap();
    receiver.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partially_accepted_offer_brings_only_the_picked_files() {
    let (da, db, files, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (sender, receiver) = pair(da.path(), db.path()).await;
    let source = holiday(files.path());
    let mut rx_events = receiver.events();
    let to = receiver.peer_id();
    let sending = tokio::spawn({
        let sender = sender.clone();
        async move { sender.send_files(to, vec![source]).await }
    });
    let (offer, _, _, paths, _) = next_offer(&mut rx_events).await;
    let notes = paths.iter().position(|p| p.ends_with("notes.txt")).unwrap();
    receiver
        .respond_offer(
            offer,
            Decision::Accept {
                dest: out.path().to_path_buf(),
                files: Some(vec![notes]),
            },
        )
        .unwrap();
    let outcome = sending.await.unwrap().expect("offer completes");
    assert_eq!(outcome, SendOutcome::Delivered { bytes: 9 });
    assert_eq!(
        std::fs::read(out.path().join("Holiday/notes.txt")).unwrap(),
        b"sunscreen"
    );
    assert!(!out.path().join("Holiday/clips/beach.mp4").exists());
    assert!(!out.path().join("Holiday/clips/beach.mp4.part").exists());
    sender.stop().await.unwrap();
    receiver.stop().await.unwrap();
}
