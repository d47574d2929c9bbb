//! Files travel like messages: a download looks for anyone who holds the share, not only the
//! providers its ticket names. Real nodes in one process on 127.0.0.1: alice shares, bob fetches,
//! alice goes away; carol's download (a ticket naming only alice) waits, visibly, and completes
//! as soon as bob connects; with a holder wait it gives up clearly and resumes at the next start.
//! Rooms carry their attachments: members' nodes fetch them by themselves, within their settings,
//! and serve them to the other members.

use std::path::Path;
use std::time::Duration;

use meshdrop_core::{
    AutoFetch, ContentId, DownloadError, DownloadSpec, Event, MessageId, Node, NodeConfig,
    Recipient, Status, Ticket, TransferHandle,
};
use meshdrop_tests::{random_file, wait_for};

/// How long a test waits for a download that should finish now.
const FINISH: Duration = Duration::from_secs(30);

async fn node(config: NodeConfig) -> Node {
    meshdrop_tests::init_test_logging();
    Node::start(config).await.expect("node starts")
}

fn config(dir: &Path, name: &str) -> NodeConfig {
    NodeConfig::loopback(dir).with_name(name).with_mdns(false)
}

fn download(node: &Node, ticket: &Ticket, dest: &Path) -> TransferHandle {
    node.download(DownloadSpec {
        ticket: ticket.clone(),
        dest: dest.to_path_buf(),
        files: None,
    })
}

/// Alice shares three photos; bob fetches them (so he holds them); alice stops. Returns the
/// ticket (naming alice only), bob, and the photos' bytes by name.
async fn shared_then_sender_gone(
    root: &Path,
) -> (Ticket, Node, Vec<(String, Vec<u8>)>, tempfile::TempDir) {
    let photos = root.join("day-one");
    std::fs::create_dir_all(&photos).unwrap();
    let mut want = Vec::new();
    for (i, name) in ["a.jpg", "b.jpg", "c.jpg"].iter().enumerate() {
        let path = photos.join(name);
        random_file(&path, 300_000 + i * 70_001, i as u64);
        want.push((format!("day-one/{name}"), std::fs::read(&path).unwrap()));
    }
    let alice = node(config(&root.join("alice"), "alice")).await;
    let ticket = alice.share(vec![photos]).await.expect("shares");
    assert_eq!(ticket.providers.len(), 1, "the ticket names alice only");
    let bob = node(config(&root.join("bob"), "bob")).await;
    let bob_out = tempfile::tempdir().unwrap();
    tokio::time::timeout(FINISH, download(&bob, &ticket, bob_out.path()).wait())
        .await
        .expect("bob's download in time")
        .expect("bob gets the photos from alice");
    alice.stop().await.unwrap();
    (ticket, bob, want, bob_out)
}

fn assert_photos(dest: &Path, want: &[(String, Vec<u8>)]) {
    for (name, bytes) in want {
        let got = std::fs::read(dest.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(got == *bytes, "{name} differs from what alice shared");
    }
}

#[tokio::test]
async fn a_download_with_no_holder_in_reach_waits_and_completes_once_one_connects() {
    let root = tempfile::tempdir().unwrap();
    let (ticket, bob, want, _bob_out) = shared_then_sender_gone(root.path()).await;

    // Carol has only the ticket; alice is gone and carol knows no one else yet.
    let carol = node(config(&root.path().join("carol"), "carol")).await;
    let mut events = carol.events();
    let out = tempfile::tempdir().unwrap();
    let handle = download(&carol, &ticket, out.path());
    let tried = wait_for(
        &mut events,
        "carol's download waits for a holder",
        |e| match e {
            Event::TransferWaiting {
                transfer, tried, ..
            } if *transfer == handle.id => Some(tried.clone()),
            _ => None,
        },
    )
    .await;
    assert!(
        tried
            .iter()
            .any(|t| t.contains(&ticket.providers[0].peer.to_string())),
        "the wait says alice was tried: {tried:?}"
    );
    assert!(
        matches!(*handle.status().borrow(), Status::WaitingForHolder { .. }),
        "the handle shows the wait too"
    );

    // Bob, who fetched the photos, connects: carol asks him and gets everything from him.
    carol
        .add_peer(bob.peer_id(), bob.listen_addrs())
        .await
        .expect("carol reaches bob");
    let report = tokio::time::timeout(FINISH, handle.wait())
        .await
        .expect("carol's download finishes soon after bob connects")
        .expect("carol's download succeeds");
    assert_eq!(report.files, 3);
    assert!(
        report
            .peers
            .iter()
            .any(|p| p.peer == bob.peer_id() && p.bytes > 0),
        "bob served the photos: {:?}",
        report.peers
    );
    assert_photos(out.path(), &want);
    carol.stop().await.unwrap();
    bob.stop().await.unwrap();
}

#[tokio::test]
async fn a_holder_wait_ends_with_a_clear_error_and_the_download_resumes_at_the_next_start() {
    let root = tempfile::tempdir().unwrap();
    let (ticket, bob, want, _bob_out) = shared_then_sender_gone(root.path()).await;

    // A standalone `get`: carol's node gives up after its holder wait.
    let carol_dir = root.path().join("carol");
    let mut waiting = config(&carol_dir, "carol");
    waiting.holder_wait = Some(Duration::from_secs(2));
    let carol = node(waiting).await;
    let out = tempfile::tempdir().unwrap();
    let ended = tokio::time::timeout(FINISH, download(&carol, &ticket, out.path()).wait())
        .await
        .expect("the wait ends");
    let err = ended.expect_err("no one holds the share in reach");
    assert!(matches!(err, DownloadError::NoHolder { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("no one who has this share was in reach for ")
            && text.contains(&ticket.providers[0].peer.to_string())
            && text.contains("resumes when started again"),
        "{text}"
    );
    carol.stop().await.unwrap();

    // The next start (a running node) resumes it by itself and finishes once bob is in reach;
    // until then it is listed as unfinished (what a phone's background task asks), with where
    // it goes.
    let carol = node(config(&carol_dir, "carol")).await;
    let mut events = carol.events();
    let unfinished = carol
        .unfinished_downloads()
        .expect("lists unfinished downloads");
    assert_eq!(unfinished.len(), 1, "{unfinished:?}");
    assert_eq!(unfinished[0].content, ticket.content);
    assert_eq!(
        unfinished[0].dest.canonicalize().unwrap(),
        out.path().canonicalize().unwrap()
    );
    carol
        .add_peer(bob.peer_id(), bob.listen_addrs())
        .await
        .expect("carol reaches bob");
    let content = ticket.content;
    wait_for(&mut events, "the resumed download finishes", |e| match e {
        Event::TransferFinished { content: c, .. } if *c == content => Some(()),
        Event::TransferFailed {
            content: c, error, ..
        } if *c == content => {
            panic!("the resumed download failed: {error}")
        }
        _ => None,
    })
    .await;
    assert_photos(out.path(), &want);
    let left = carol
        .unfinished_downloads()
        .expect("lists unfinished downloads");
    assert!(
        left.is_empty(),
        "a finished download is not unfinished: {left:?}"
    );
    carol.stop().await.unwrap();
    bob.stop().await.unwrap();
}

/// A photo of `len` bytes to post.
fn photo(dir: &Path, name: &str, len: usize, seed: u64) -> std::path::PathBuf {
    let path = dir.join(name);
    random_file(&path, len, seed);
    path
}

/// Waits until `node`'s download of `content` finishes (a failure fails the test).
async fn finished(events: &mut tokio::sync::broadcast::Receiver<Event>, content: ContentId) {
    wait_for(events, "the attachment fetched by itself", |e| match e {
        Event::TransferFinished { content: c, .. } if *c == content => Some(()),
        Event::TransferFailed {
            content: c, error, ..
        } if *c == content => {
            panic!("the attachment's download failed: {error}")
        }
        _ => None,
    })
    .await;
}

/// Waits until `node` says why it left message `id`'s attachment alone.
async fn left_alone(events: &mut tokio::sync::broadcast::Receiver<Event>, id: MessageId) -> String {
    wait_for(events, "the attachment left alone", |e| match e {
        Event::AttachmentNotFetched { message, reason } if *message == id => Some(reason.clone()),
        _ => None,
    })
    .await
}

/// The ticket of message `id`'s attachment, once `events` say it arrived.
async fn attachment_of(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    id: MessageId,
) -> Ticket {
    wait_for(events, "the room message", |e| match e {
        Event::MessageReceived { message } if message.id == id => message.attachment.clone(),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn a_room_photo_spreads_through_the_members_while_its_sender_is_offline() {
    let root = tempfile::tempdir().unwrap();
    let alice = node(config(&root.path().join("alice"), "alice")).await;
    let bob = node(config(&root.path().join("bob"), "bob")).await;
    let carol = node(config(&root.path().join("carol"), "carol")).await;
    let room = alice.create_room("trip").unwrap();
    bob.join_room(&room.invite).unwrap();
    carol.join_room(&room.invite).unwrap();
    let (mut eb, mut ec) = (bob.events(), carol.events());
    bob.add_peer(alice.peer_id(), alice.listen_addrs())
        .await
        .unwrap();

    // Alice posts; bob's node fetches the photo by itself (the default settings, on power).
    let files = tempfile::tempdir().unwrap();
    let shot = photo(files.path(), "sunset.jpg", 400_000, 9);
    let id = alice
        .send_with_attachment(
            Recipient::Room(room.id),
            "day one",
            vec![shot.clone()],
            false,
        )
        .await
        .unwrap();
    let ticket = attachment_of(&mut eb, id).await;
    finished(&mut eb, ticket.content).await;
    let in_room = |dir: &Path| dir.join("attachments").join(room.id.to_string());
    let want = std::fs::read(&shot).unwrap();
    assert!(std::fs::read(in_room(&root.path().join("bob")).join("sunset.jpg")).unwrap() == want);

    // Alice goes offline; carol meets bob only: the message and then the photo come from him.
    alice.stop().await.unwrap();
    carol
        .add_peer(bob.peer_id(), bob.listen_addrs())
        .await
        .unwrap();
    assert_eq!(attachment_of(&mut ec, id).await, ticket);
    finished(&mut ec, ticket.content).await;
    assert!(
        std::fs::read(in_room(&root.path().join("carol")).join("sunset.jpg")).unwrap() == want,
        "carol's copy is alice's photo"
    );
    carol.stop().await.unwrap();
    bob.stop().await.unwrap();
}

#[tokio::test]
async fn attachments_too_large_on_battery_or_over_the_room_budget_are_left_to_the_user() {
    let root = tempfile::tempdir().unwrap();
    let alice = node(config(&root.path().join("alice"), "alice")).await;
    let mut small = config(&root.path().join("bob"), "bob");
    small.auto_fetch = AutoFetch {
        max_message_bytes: 100_000,
        ..AutoFetch::default()
    };
    let bob = node(small).await;
    let room = alice.create_room("trip").unwrap();
    bob.join_room(&room.invite).unwrap();
    let mut eb = bob.events();
    bob.add_peer(alice.peer_id(), alice.listen_addrs())
        .await
        .unwrap();
    let files = tempfile::tempdir().unwrap();
    let to = Recipient::Room(room.id);
    let post = async |n: u64| {
        let shot = photo(files.path(), &format!("p{n}.jpg"), 300_000, n);
        alice
            .send_with_attachment(to, "a photo", vec![shot], false)
            .await
            .unwrap()
    };

    let big = post(1).await;
    let why = left_alone(&mut eb, big).await;
    assert!(why.contains("300000 bytes, more than the 100000"), "{why}");

    bob.set_auto_fetch(AutoFetch {
        max_message_bytes: 1_000_000,
        room_budget_bytes: 400_000,
        ..AutoFetch::default()
    });
    bob.set_on_battery(true);
    let on_battery = post(2).await;
    assert_eq!(
        left_alone(&mut eb, on_battery).await,
        "the device is on battery"
    );

    bob.set_on_battery(false);
    let fits = post(3).await;
    let ticket = attachment_of(&mut eb, fits).await;
    finished(&mut eb, ticket.content).await;
    let over = post(4).await;
    let why = left_alone(&mut eb, over).await;
    assert_eq!(why, "the budget of 400000 bytes is spent");
    let fetched = root
        .path()
        .join("bob/attachments")
        .join(room.id.to_string());
    let names: Vec<_> = std::fs::read_dir(&fetched)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["p3.jpg"], "only what was allowed was fetched");
    alice.stop().await.unwrap();
    bob.stop().await.unwrap();
}

#[tokio::test]
async fn files_pinned_on_a_carrier_reach_their_recipient_with_the_sender_gone() {
    let root = tempfile::tempdir().unwrap();
    let alice = node(config(&root.path().join("alice"), "alice")).await;
    let bob = node(config(&root.path().join("bob"), "bob")).await;
    let carol = node(config(&root.path().join("carol"), "carol")).await;
    let dave = node(config(&root.path().join("dave"), "dave")).await;
    // Carol carries for alice, a contact; dave is a stranger to her.
    carol.add_contact(alice.peer_id(), "alice").unwrap();
    let mut ec = carol.events();
    for sender in [&alice, &dave] {
        sender
            .add_peer(carol.peer_id(), carol.listen_addrs())
            .await
            .unwrap();
    }

    // A stranger cannot make carol fetch anything: his request is dropped before his next message.
    let files = tempfile::tempdir().unwrap();
    let junk = photo(files.path(), "junk.bin", 200_000, 1);
    dave.send_carried(
        bob.peer_id(),
        "take this",
        vec![junk],
        false,
        &[carol.peer_id()],
    )
    .await
    .unwrap();
    let hello = dave.send_message(carol.peer_id(), "hello").unwrap();
    wait_for(&mut ec, "dave's plain message", |e| match e {
        Event::CarryAsked { from, .. } if *from == dave.peer_id() => {
            panic!("carol considered a stranger's carry request")
        }
        Event::MessageReceived { message } if message.id == hello => Some(()),
        _ => None,
    })
    .await;

    // Alice sends bob the trip video and pins it on carol.
    let video = photo(files.path(), "trip.mp4", 900_000, 2);
    let want = std::fs::read(&video).unwrap();
    let id = alice
        .send_carried(
            bob.peer_id(),
            "the trip",
            vec![video],
            false,
            &[carol.peer_id()],
        )
        .await
        .unwrap();
    let content = wait_for(&mut ec, "carol carries the video", |e| match e {
        Event::Carrying {
            from,
            for_peer,
            content,
        } if *from == alice.peer_id() => {
            assert_eq!(*for_peer, bob.peer_id());
            Some(*content)
        }
        Event::CarryRefused { reason, .. } => panic!("carol refused: {reason}"),
        _ => None,
    })
    .await;
    finished(&mut ec, content).await;
    alice.stop().await.unwrap();

    // Bob never met alice: he meets carol, gets the message and then the video from her.
    let mut eb = bob.events();
    bob.add_peer(carol.peer_id(), carol.listen_addrs())
        .await
        .unwrap();
    let ticket = attachment_of(&mut eb, id).await;
    let out = tempfile::tempdir().unwrap();
    let report = tokio::time::timeout(FINISH, download(&bob, &ticket, out.path()).wait())
        .await
        .expect("bob's download in time")
        .expect("bob gets the video from carol");
    assert!(std::fs::read(out.path().join("trip.mp4")).unwrap() == want);
    assert_eq!(report.peers.len(), 1);
    assert_eq!(report.peers[0].peer, carol.peer_id(), "carol served it");
    for n in [bob, carol, dave] {
        n.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_carrier_refuses_files_over_what_it_carries_for_a_contact() {
    let root = tempfile::tempdir().unwrap();
    let alice = node(config(&root.path().join("alice"), "alice")).await;
    let mut small = config(&root.path().join("carol"), "carol");
    small.auto_fetch.carry_budget_bytes = 100_000;
    let carol = node(small).await;
    carol.add_contact(alice.peer_id(), "alice").unwrap();
    let mut ec = carol.events();
    alice
        .add_peer(carol.peer_id(), carol.listen_addrs())
        .await
        .unwrap();
    let files = tempfile::tempdir().unwrap();
    let video = photo(files.path(), "trip.mp4", 300_000, 3);
    let bob = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    alice
        .send_carried(bob, "the trip", vec![video], false, &[carol.peer_id()])
        .await
        .unwrap();
    let why = wait_for(&mut ec, "carol refuses", |e| match e {
        Event::CarryRefused { reason, .. } => Some(reason.clone()),
        Event::Carrying { .. } => panic!("carol carries more than her budget"),
        _ => None,
    })
    .await;
    assert_eq!(why, "the budget of 100000 bytes is spent");
    alice.stop().await.unwrap();
    carol.stop().await.unwrap();
}
