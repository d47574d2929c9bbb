//! Pushing files to a nearby device (the AirDrop flow) between real nodes on 127.0.0.1: the
//! receiver is asked first, nothing is written before it accepts, the sender learns the outcome;
//! a stranger's offer is declined at once unless the receiver is visible to everyone.

use std::path::Path;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use meshdrop_core::transfer::offer::{Decision, SendOutcome};
use meshdrop_core::transfer::{ShareKind, Visibility};
use meshdrop_core::{Event, Node, NodeConfig, Transport};
use tempfile::TempDir;
use tokio::sync::broadcast;

async fn node(dir: &Path, name: &str) -> Node {
    Node::start(NodeConfig::loopback(dir).with_name(name).with_mdns(false))
        .await
        .expect("node starts")
}

/// Two connected nodes; the receiver has the sender as a contact.
async fn pair(a: &Path, b: &Path) -> (Node, Node) {
    let (sender, receiver) = strangers(a, b).await;
    receiver
        .add_contact(sender.peer_id(), "Sam's laptop")
        .unwrap();
    (sender, receiver)
}

/// Two connected nodes that are strangers to each other.
async fn strangers(a: &Path, b: &Path) -> (Node, Node) {
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
                add_contact: false,
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
    assert!(
        scene
            .sender
            .shares()
            .unwrap()
            .iter()
            .all(|s| s.kind != ShareKind::Offer),
        "the offer's key ends with the offer: {:?}",
        scene.sender.shares()
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
                add_contact: false,
            },
        )
        .unwrap();
    assert_eq!(scene.outcome().await, SendOutcome::Delivered { bytes: 9 });
    assert_eq!(
        std::fs::read(out.join("Holiday/notes.txt")).unwrap(),
        b"sunscreen"
    );
    assert!(!out.join("Holiday/clips/beach.mp4").exists());
    assert!(meshdrop_tests::part_files(&out.join("Holiday/clips"), "beach.mp4").is_empty());
    scene.stop().await;
}

/// Offers `source` from `sender` to `receiver`; the outcome.
async fn offer(sender: &Node, receiver: &Node, source: std::path::PathBuf) -> SendOutcome {
    let sent = sender.send_files(receiver.peer_id(), vec![source]);
    tokio::time::timeout(Duration::from_secs(20), sent)
        .await
        .expect("the offer ends in time")
        .expect("the offer ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_offer_is_declined_at_once_and_the_receiver_sees_only_a_notice() {
    let dirs = [0, 1, 2].map(|_| tempfile::tempdir().unwrap());
    let (sender, receiver) = strangers(dirs[0].path(), dirs[1].path()).await;
    let mut events = receiver.events();
    let source = holiday(dirs[2].path());
    let outcome = offer(&sender, &receiver, source.clone()).await;
    let SendOutcome::Declined { reason } = outcome else {
        panic!("declined, got {outcome:?}")
    };
    assert!(reason.contains("from its contacts only"), "{reason}");
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.recv().await {
                Ok(Event::OfferRefused { peer, name, .. }) => return (peer, name),
                Ok(Event::OfferReceived { .. }) => panic!("a stranger's offer was shown"),
                _ => {}
            }
        }
    })
    .await
    .expect("a notice");
    assert_eq!(refused, (sender.peer_id(), "sender".to_string()));
    // Visible to everyone with no end: the same offer is shown, from a stranger.
    receiver.set_visibility(Visibility::Everyone, None);
    let to = receiver.peer_id();
    let sending = tokio::spawn({
        let sender = sender.clone();
        let source = source.clone();
        async move { sender.send_files(to, vec![source]).await }
    });
    let shown = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(Event::OfferReceived { offer, contact, .. }) = events.recv().await {
                return (offer, contact);
            }
        }
    })
    .await
    .expect("shown");
    assert_eq!(shown.1, None, "shown as a stranger");
    receiver.respond_offer(shown.0, Decision::Decline).unwrap();
    assert!(matches!(
        sending.await.unwrap(),
        Ok(SendOutcome::Declined { .. })
    ));
    // Visible to everyone for a while that is over: back to contacts only.
    receiver.set_visibility(Visibility::Everyone, Some(Duration::ZERO));
    assert_eq!(receiver.visibility(), Visibility::Contacts);
    // Not visible at all: a contact's offer is declined too.
    receiver.add_contact(sender.peer_id(), "Sam").unwrap();
    receiver.set_visibility(Visibility::Off, None);
    let outcome = offer(&sender, &receiver, source).await;
    assert!(
        matches!(&outcome, SendOutcome::Declined { reason } if reason.contains("not receiving")),
        "{outcome:?}"
    );
    assert!(
        sender.shares().unwrap().is_empty(),
        "the offers' keys ended"
    );
    sender.stop().await.unwrap();
    receiver.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_answered_with_add_as_contact_makes_the_sender_a_contact() {
    let dirs = [0, 1, 2, 3].map(|_| tempfile::tempdir().unwrap());
    let (sender, receiver) = strangers(dirs[0].path(), dirs[1].path()).await;
    receiver.set_visibility(Visibility::Everyone, None);
    let mut events = receiver.events();
    let to = receiver.peer_id();
    let source = holiday(dirs[2].path());
    let sending = tokio::spawn({
        let sender = sender.clone();
        async move { sender.send_files(to, vec![source]).await }
    });
    let (id, ..) = next_offer(&mut events).await;
    let accept = Decision::Accept {
        dest: dirs[3].path().to_path_buf(),
        files: None,
        add_contact: true,
    };
    receiver.respond_offer(id, accept).unwrap();
    assert!(matches!(
        sending.await.unwrap(),
        Ok(SendOutcome::Delivered { .. })
    ));
    let contacts = receiver.contacts().unwrap();
    assert_eq!(contacts.len(), 1);
    assert_eq!(
        (contacts[0].peer, contacts[0].name.as_str()),
        (sender.peer_id(), "sender")
    );
    sender.stop().await.unwrap();
    receiver.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_of_a_hidden_top_level_name_is_declined() {
    let dirs = [0, 1, 2].map(|_| tempfile::tempdir().unwrap());
    let (sender, receiver) = pair(dirs[0].path(), dirs[1].path()).await;
    let ssh = dirs[2].path().join(".ssh");
    std::fs::create_dir_all(&ssh).unwrap();
    std::fs::write(ssh.join("authorized_keys"), b"ssh-ed25519 AAAA eve").unwrap();
    let outcome = offer(&sender, &receiver, ssh).await;
    assert!(
        matches!(&outcome, SendOutcome::Declined { reason } if reason.contains("hidden top-level")),
        "{outcome:?}"
    );
    sender.stop().await.unwrap();
    receiver.stop().await.unwrap();
}
