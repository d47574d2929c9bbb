//! Pushing files to a nearby device (the AirDrop flow) between real nodes on 127.0.0.1: the
//! receiver is asked first, nothing is written before it accepts, the sender learns the outcome.

use std::path::Path;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use meshdrop_core::transfer::offer::{Decision, SendOutcome};
use meshdrop_core::{Event, Node, NodeConfig, Transport};
use tempfile::TempDir;
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

/// The offer received by the receiver: id, sender name, code, file paths, total bytes.
struct Offer {
    id: u64,
    name: String,
    code: String,
    paths: Vec<String>,
    total: u64,
}

/// Two connected nodes, the sender offering a holiday folder, the offer arrived at the receiver.
struct Scene {
    sender: Node,
    receiver: Node,
    sender_events: broadcast::Receiver<Event>,
    sending: tokio::task::JoinHandle<Result<SendOutcome, meshdrop_core::ShareError>>,
    offer: Offer,
    out: TempDir,
    _dirs: [TempDir; 3],
}

async fn offer_holiday() -> Scene {
    let dirs = [0, 1, 2].map(|_| tempfile::tempdir().unwrap());
    let (sender, receiver) = pair(dirs[0].path(), dirs[1].path()).await;
    let source = holiday(dirs[2].path());
    let mut rx_events = receiver.events();
    let sender_events = sender.events();
    let to = receiver.peer_id();
    let sending = tokio::spawn({
        let sender = sender.clone();
        async move { sender.send_files(to, vec![source]).await }
    });
    let (id, name, code, paths, total) = next_offer(&mut rx_events).await;
    Scene {
        sender,
        receiver,
        sender_events,
        sending,
        offer: Offer {
            id,
            name,
            code,
            paths,
            total,
        },
        out: tempfile::tempdir().unwrap(),
        _dirs: dirs,
    }
}

impl Scene {
    async fn outcome(&mut self) -> SendOutcome {
        (&mut self.sending).await.unwrap().expect("the offer ends")
    }

    async fn stop(self) {
        self.sender.stop().await.unwrap();
        self.receiver.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_offer_arrives_verified_and_the_sender_is_told() {
    let mut scene = offer_holiday().await;
    let out = scene.out.path().to_path_buf();
    let offer = &scene.offer;
    assert_eq!(offer.name, "sender");
    assert_eq!(
        offer.code,
        scene.receiver.verification_code(&scene.sender.peer_id())
    );
    assert_eq!(
        offer.paths,
        vec!["Holiday/clips/beach.mp4", "Holiday/notes.txt"]
    );
    assert_eq!(offer.total, 3 * 1024 * 1024 + 5 + 9);
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "nothing written before accepting"
    );

    let (id, total) = (offer.id, offer.total);
    scene
        .receiver
        .respond_offer(
            id,
            Decision::Accept {
                dest: out.clone(),
                files: None,
            },
        )
        .unwrap();
    assert_eq!(
        scene.outcome().await,
        SendOutcome::Delivered { bytes: total }
    );
    assert_eq!(
        std::fs::read(out.join("Holiday/clips/beach.mp4")).unwrap(),
        vec![7u8; 3 * 1024 * 1024 + 5]
    );
    assert_eq!(
        std::fs::read(out.join("Holiday/notes.txt")).unwrap(),
        b"sunscreen"
    );
    let to = scene.receiver.peer_id();
    let mut accepted = false;
    while let Ok(ev) = scene.sender_events.try_recv() {
        accepted |= matches!(ev, Event::OfferAccepted { peer, files: 2, .. } if peer == to);
    }
    assert!(accepted, "the sender saw the acceptance");
    assert!(
        scene.receiver.respond_offer(id, Decision::Decline).is_err(),
        "an answered offer cannot be answered again"
    );
    scene.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_offer_writes_nothing_and_the_sender_is_told() {
    let mut scene = offer_holiday().await;
    scene
        .receiver
        .respond_offer(scene.offer.id, Decision::Decline)
        .unwrap();
    let outcome = scene.outcome().await;
    assert!(
        matches!(outcome, SendOutcome::Declined { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        std::fs::read_dir(scene.out.path()).unwrap().count(),
        0,
        "nothing written"
    );
    scene.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partially_accepted_offer_brings_only_the_picked_files() {
    let mut scene = offer_holiday().await;
    let out = scene.out.path().to_path_buf();
    let notes = scene
        .offer
        .paths
        .iter()
        .position(|p| p.ends_with("notes.txt"))
        .unwrap();
    scene
        .receiver
        .respond_offer(
            scene.offer.id,
            Decision::Accept {
                dest: out.clone(),
                files: Some(vec![notes]),
            },
        )
        .unwrap();
    assert_eq!(scene.outcome().await, SendOutcome::Delivered { bytes: 9 });
    assert_eq!(
        std::fs::read(out.join("Holiday/notes.txt")).unwrap(),
        b"sunscreen"
    );
    assert!(!out.join("Holiday/clips/beach.mp4").exists());
    assert!(!out.join("Holiday/clips/beach.mp4.part").exists());
    scene.stop().await;
}
