//! Offline-first messaging between real nodes in one process on 127.0.0.1: direct delivery with a
//! receipt, store-and-forward through a carrier to a device that was off, rooms healed after a
//! partition, clock skew, expiry, floods from one peer (carried and addressed to the device),
//! attachments fetched by the transfer engine, contacts and their names, and lost pokes.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use meshdrop_core::messaging::{CarryQuota, InboxQuota};
use meshdrop_core::{
    Event, Message, MessageId, MessageState, Multiaddr, Node, NodeConfig, Recipient, Transport,
};
use meshdrop_tests::wait_for;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Polls `check` until it holds, failing the test after [`TIMEOUT`] (for state without an event).
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config(dir: &Path, name: &str) -> NodeConfig {
    NodeConfig::loopback(dir).with_name(name).with_mdns(false)
}

async fn start(config: NodeConfig) -> Node {
    meshdrop_tests::init_test_logging();
    Node::start(config).await.expect("node starts")
}

fn addr_of(node: &Node) -> Multiaddr {
    node.listen_addrs()
        .into_iter()
        .find(|a| Transport::of(a) == Transport::Tcp)
        .expect("listens on TCP")
        .with(Protocol::P2p(node.peer_id()))
}

async fn link(a: &Node, b: &Node) {
    a.connect(addr_of(b)).await.expect("connects");
}

fn received(ev: &Event, id: MessageId) -> Option<Message> {
    match ev {
        Event::MessageReceived { message } if message.id == id => Some(message.clone()),
        _ => None,
    }
}

fn state_of(ev: &Event, id: MessageId, want: MessageState) -> Option<()> {
    matches!(ev, Event::MessageStateChanged { id: i, state } if *i == id && *state == want)
        .then_some(())
}

/// Every file of a data dir, concatenated (the database, its WAL, everything).
fn dir_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_direct_message_arrives_once_and_the_sender_sees_delivered() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(config(da.path(), "alice")).await;
    let b = start(config(db.path(), "bob")).await;
    let (mut ea, mut eb) = (a.events(), b.events());
    link(&a, &b).await;

    let first = a.send_message(b.peer_id(), "hello bob").unwrap();
    let got = wait_for(&mut eb, "bob gets the message", |e| received(e, first)).await;
    assert_eq!(got.text, "hello bob");
    assert_eq!(got.from, a.peer_id());
    assert_eq!(got.to, Recipient::Peer(b.peer_id()));
    wait_for(&mut ea, "alice sees delivered", |e| {
        state_of(e, first, MessageState::Delivered)
    })
    .await;

    // More traffic both ways, and a reconnection that syncs again: the first message stays single.
    let second = a.send_message(b.peer_id(), "still there?").unwrap();
    let mut seen_first = 0;
    wait_for(&mut eb, "bob gets the second message", |e| {
        if received(e, first).is_some() {
            seen_first += 1;
        }
        received(e, second)
    })
    .await;
    let answer = b.send_message(a.peer_id(), "yes").unwrap();
    wait_for(&mut ea, "alice gets the answer", |e| received(e, answer)).await;
    assert_eq!(seen_first, 0, "the first message is shown once");

    let texts: Vec<(String, MessageState)> = a
        .messages()
        .unwrap()
        .into_iter()
        .map(|m| (m.text, m.state))
        .collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert_eq!(texts[0], ("hello bob".to_string(), MessageState::Delivered));
    let on_b: Vec<MessageId> = b.messages().unwrap().iter().map(|m| m.id).collect();
    assert_eq!(on_b.iter().filter(|id| **id == first).count(), 1);
    assert_eq!(on_b.len(), 3);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn a_carrier_brings_a_message_to_a_device_that_was_off_and_the_receipt_back() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let carol_id = meshdrop_core::DataDir::open(dirs[2].path(), Some("carol"))
        .unwrap()
        .peer_id();
    let a = start(config(dirs[0].path(), "alice")).await;
    let b = start(config(dirs[1].path(), "bob")).await;
    let mut ea = a.events();
    link(&a, &b).await;

    // Carol is off; alice writes to her and bob takes the message along.
    let secret = "meet at the old bridge at noon";
    let id = a.send_message(carol_id, secret).unwrap();
    wait_for(&mut ea, "alice hands the message to bob", |e| {
        state_of(e, id, MessageState::Sent)
    })
    .await;
    eventually("bob carries the message", || {
        b.message_stats().unwrap().carried == 1
    })
    .await;
    assert!(b.messages().unwrap().is_empty(), "bob cannot read it");

    // Carol comes up next to bob only (alice and carol never connect).
    let c = start(config(dirs[2].path(), "carol")).await;
    assert_eq!(c.peer_id(), carol_id);
    let mut ec = c.events();
    link(&c, &b).await;
    let got = wait_for(&mut ec, "carol gets the message", |e| received(e, id)).await;
    assert_eq!(got.text, secret);
    assert_eq!(got.from, a.peer_id());
    wait_for(&mut ea, "alice sees delivered", |e| {
        state_of(e, id, MessageState::Delivered)
    })
    .await;
    let on_c = c.messages().unwrap();
    assert_eq!(on_c.len(), 1, "exactly once: {on_c:?}");
    assert!(
        !a.peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.peer == carol_id && p.connected),
        "alice and carol never connected"
    );

    // Bob lets go of what reached its recipient (the message, then the receipt).
    eventually("bob forgets what he delivered", || {
        b.message_stats().unwrap().carried == 0
    })
    .await;
    // What bob stored (database and WAL, flushed at stop) never held the plaintext.
    b.stop().await.unwrap();
    let stored = dir_bytes(dirs[1].path());
    assert!(!contains(&stored, secret.as_bytes()), "no plaintext at bob");
    a.stop().await.unwrap();
    c.stop().await.unwrap();
}

#[tokio::test]
async fn a_room_split_in_two_partitions_ends_with_the_same_messages_in_the_same_order() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let names = ["ana", "ben", "cai", "dee"];
    let mut nodes = Vec::new();
    for (dir, name) in dirs.iter().zip(names) {
        nodes.push(start(config(dir.path(), name)).await);
    }
    let mut events: Vec<_> = nodes.iter().map(Node::events).collect();
    let room = nodes[0].create_room("basecamp").unwrap();
    for n in &nodes[1..] {
        assert_eq!(n.join_room(&room.invite).unwrap().id, room.id);
    }
    // Two partitions: ana–ben and cai–dee; each keeps chatting.
    link(&nodes[0], &nodes[1]).await;
    link(&nodes[2], &nodes[3]).await;
    let mut ids = Vec::new();
    for round in 0..3 {
        for (i, n) in nodes.iter().enumerate() {
            let id = n
                .send_room_message(room.id, &format!("{} says {round}", names[i]))
                .unwrap();
            // Its partition neighbour sees it before the next line is written: a conversation.
            let neighbour = i ^ 1;
            wait_for(&mut events[neighbour], "the partition neighbour", |e| {
                received(e, id)
            })
            .await;
            ids.push(id);
        }
    }
    // Heal: ben meets cai.
    link(&nodes[1], &nodes[2]).await;
    for (i, n) in nodes.iter().enumerate() {
        let total = ids.len();
        eventually(&format!("{} has every message", names[i]), || {
            n.messages().unwrap().len() == total
        })
        .await;
    }
    let orders: Vec<Vec<MessageId>> = nodes
        .iter()
        .map(|n| n.messages().unwrap().iter().map(|m| m.id).collect())
        .collect();
    for order in &orders {
        assert_eq!(order, &orders[0], "the same order everywhere");
        let mut unique = order.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "no duplicates");
    }
    // Within a partition, a reply never sorts before what it answered.
    let position: HashMap<MessageId, usize> = orders[0]
        .iter()
        .enumerate()
        .map(|(p, id)| (*id, p))
        .collect();
    for pair in ids.chunks(2) {
        assert!(position[&pair[0]] < position[&pair[1]]);
    }
    for n in &nodes {
        n.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_room_message_reaches_every_member_of_a_line_longer_than_the_hop_limit() {
    // Ten members in a line: the last is nine hops from the first (the hop limit is eight).
    let dirs: Vec<_> = (0..10).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        nodes.push(start(config(dir.path(), &format!("member-{i}"))).await);
    }
    for pair in nodes.windows(2) {
        link(&pair[0], &pair[1]).await;
    }
    let room = nodes[0].create_room("long line").unwrap();
    for n in &nodes[1..] {
        n.join_room(&room.invite).unwrap();
    }
    let mut last = nodes[9].events();
    let id = nodes[0].send_room_message(room.id, "pass it on").unwrap();
    let got = wait_for(&mut last, "the far end gets the message", |e| {
        received(e, id)
    })
    .await;
    assert_eq!(got.text, "pass it on");
    for (i, n) in nodes.iter().enumerate().skip(1) {
        let on_n: Vec<MessageId> = n.messages().unwrap().iter().map(|m| m.id).collect();
        assert_eq!(on_n, vec![id], "member {i} holds it exactly once");
    }
    for n in &nodes {
        n.stop().await.unwrap();
    }
}

#[tokio::test]
async fn replies_sort_after_questions_with_clocks_ten_minutes_apart() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut fast = config(da.path(), "fast");
    fast.clock_offset_ms = 10 * 60 * 1000;
    let mut slow = config(db.path(), "slow");
    slow.clock_offset_ms = -10 * 60 * 1000;
    let a = start(fast).await;
    let b = start(slow).await;
    let (mut ea, mut eb) = (a.events(), b.events());
    link(&a, &b).await;
    let mut conversation = Vec::new();
    for round in 0..3 {
        let q = a
            .send_message(b.peer_id(), &format!("question {round}"))
            .unwrap();
        wait_for(&mut eb, "the question", |e| received(e, q)).await;
        let r = b
            .send_message(a.peer_id(), &format!("answer {round}"))
            .unwrap();
        wait_for(&mut ea, "the answer", |e| received(e, r)).await;
        conversation.extend([q, r]);
    }
    for n in [&a, &b] {
        let order: Vec<MessageId> = n.messages().unwrap().iter().map(|m| m.id).collect();
        assert_eq!(order, conversation);
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn an_undelivered_message_fails_when_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let nobody = tempfile::tempdir().unwrap();
    let offline = meshdrop_core::DataDir::open(nobody.path(), None)
        .unwrap()
        .peer_id();
    let mut cfg = config(dir.path(), "alice");
    cfg.message_ttl = Duration::from_secs(1);
    let a = start(cfg).await;
    let mut ea = a.events();
    let id = a.send_message(offline, "are you there?").unwrap();
    wait_for(&mut ea, "the message fails", |e| {
        state_of(e, id, MessageState::Failed)
    })
    .await;
    assert_eq!(a.messages().unwrap()[0].state, MessageState::Failed);
    assert_eq!(
        a.message_stats().unwrap().envelopes,
        0,
        "expired envelope dropped"
    );
    a.stop().await.unwrap();
}

#[tokio::test]
async fn a_flood_of_ten_thousand_from_one_peer_stays_within_the_quota() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let nobody = tempfile::tempdir().unwrap();
    let target = meshdrop_core::DataDir::open(nobody.path(), None)
        .unwrap()
        .peer_id();
    let a = start(config(da.path(), "flooder")).await;
    let mut cfg = config(db.path(), "carrier");
    cfg.carry = CarryQuota {
        per_author: 300,
        total: 1000,
    };
    let b = start(cfg).await;
    let mut eb = b.events();
    const FLOOD: usize = 10_000;
    let started = std::time::Instant::now();
    for i in 0..FLOOD {
        a.send_message(target, &format!("spam {i}")).unwrap();
    }
    println!("wrote {FLOOD} messages in {:?}", started.elapsed());
    let started = std::time::Instant::now();
    link(&a, &b).await;

    // While the flood comes in, bob still talks to alice promptly.
    let hello = b.send_message(a.peer_id(), "still responsive").unwrap();
    let mut ea = a.events();
    wait_for(&mut ea, "alice hears bob", |e| received(e, hello)).await;
    println!("bob's message got through after {:?}", started.elapsed());
    wait_for(&mut eb, "bob's message delivered", |e| {
        state_of(e, hello, MessageState::Delivered)
    })
    .await;
    // Only what the carrier took counts as sent: the rest waits for another carrier.
    eventually("alice sees as sent what bob took", || {
        a.messages()
            .unwrap()
            .iter()
            .filter(|m| m.outgoing && m.state == MessageState::Sent)
            .count()
            == 300
    })
    .await;
    println!("flood handed over after {:?}", started.elapsed());
    let stats = b.message_stats().unwrap();
    println!("bob carries {} envelopes", stats.carried);
    assert_eq!(
        stats.carried, 300,
        "bob carries at most the per-author quota"
    );
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn a_flood_of_ten_thousand_direct_messages_stays_within_the_inbox_quota() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(config(da.path(), "flooder")).await;
    let mut cfg = config(db.path(), "target");
    cfg.inbox = InboxQuota {
        per_author_per_hour: 300,
    };
    let b = start(cfg).await;
    let (mut ea, mut eb) = (a.events(), b.events());
    const FLOOD: usize = 10_000;
    let started = std::time::Instant::now();
    for i in 0..FLOOD {
        a.send_message(b.peer_id(), &format!("spam {i}")).unwrap();
    }
    println!("wrote {FLOOD} messages in {:?}", started.elapsed());
    // Bob writes to alice too: her receipt is stored after the flood, so bob sees `delivered`
    // only once he has been through the whole flood.
    let hello = b.send_message(a.peer_id(), "still responsive").unwrap();
    let started = std::time::Instant::now();
    link(&a, &b).await;
    wait_for(&mut ea, "alice hears bob", |e| received(e, hello)).await;
    println!("bob's message got through after {:?}", started.elapsed());
    wait_for(&mut eb, "bob's message delivered", |e| {
        state_of(e, hello, MessageState::Delivered)
    })
    .await;
    println!("flood gone through after {:?}", started.elapsed());
    let from_alice = b
        .messages()
        .unwrap()
        .iter()
        .filter(|m| m.from == a.peer_id())
        .count();
    assert_eq!(from_alice, 300, "bob stores at most the inbox quota");
    eventually("alice gets a receipt for each message bob kept", || {
        a.messages()
            .unwrap()
            .iter()
            .filter(|m| m.outgoing && m.state == MessageState::Delivered)
            .count()
            == 300
    })
    .await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn a_file_attached_to_a_message_is_downloaded_by_its_recipient_byte_for_byte() {
    let (da, dc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let files = tempfile::tempdir().unwrap();
    let video = files.path().join("trip.mp4");
    let bytes: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&video, &bytes).unwrap();
    let a = start(config(da.path(), "alice")).await;
    let c = start(config(dc.path(), "carol")).await;
    let mut ec = c.events();
    link(&a, &c).await;

    let id = a
        .send_with_attachment(
            Recipient::Peer(c.peer_id()),
            "the video",
            vec![video],
            false,
        )
        .await
        .unwrap();
    let got = wait_for(&mut ec, "carol gets the message", |e| received(e, id)).await;
    assert_eq!(got.text, "the video");
    let ticket = got.attachment.clone().expect("an attachment");
    assert_eq!(ticket.providers[0].peer, a.peer_id(), "alice serves it");
    let stored = c.messages().unwrap();
    assert_eq!(stored[0].attachment.as_ref(), Some(&ticket));

    let dest = tempfile::tempdir().unwrap();
    let report = c
        .download_attachment(&stored[0], dest.path().to_path_buf())
        .unwrap()
        .wait()
        .await
        .expect("the attachment downloads");
    println!("attachment: {report:?}");
    assert_eq!(std::fs::read(dest.path().join("trip.mp4")).unwrap(), bytes);
    // A message without an attachment has nothing to download.
    let plain = a.send_message(c.peer_id(), "did it arrive?").unwrap();
    let plain = wait_for(&mut ec, "the plain message", |e| received(e, plain)).await;
    assert!(
        c.download_attachment(&plain, dest.path().to_path_buf())
            .is_err()
    );
    a.stop().await.unwrap();
    c.stop().await.unwrap();
}

#[tokio::test]
async fn a_room_invite_makes_a_contact_and_meeting_a_device_does_not() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(config(da.path(), "alice")).await;
    let b = start(config(db.path(), "bob")).await;
    let (mut ea, mut eb) = (a.events(), b.events());
    // Bob joins alice's room before the two ever met: the invite names alice.
    let room = a.create_room("camp").unwrap();
    b.join_room(&room.invite).unwrap();
    let known = b.contacts().unwrap();
    assert_eq!(known.len(), 1, "{known:?}");
    assert_eq!(
        (known[0].peer, known[0].name.as_str(), known[0].last_seen),
        (a.peer_id(), "alice", None)
    );
    assert!(a.contacts().unwrap().is_empty(), "alice knows no one yet");

    // They meet: bob records the meeting with his contact; alice hears bob's claimed name, but
    // meeting makes no contact.
    link(&b, &a).await;
    eventually("bob has met alice", || {
        b.contacts()
            .unwrap()
            .iter()
            .any(|c| c.peer == a.peer_id() && c.last_seen.is_some())
    })
    .await;
    let bob = b.peer_id();
    wait_for(&mut ea, "alice hears bob's name", |e| {
        matches!(e, Event::PeerIdentified { peer, name, .. } if *peer == bob && name == "bob")
            .then_some(())
    })
    .await;
    let peers = a.peers().await.unwrap();
    let seen = peers
        .iter()
        .find(|p| p.peer == bob)
        .expect("bob in the list");
    assert_eq!(
        (seen.name.as_str(), &seen.contact),
        ("bob", &None),
        "a claim, no contact"
    );
    assert!(a.contacts().unwrap().is_empty(), "meeting makes no contact");

    // Messages show the name the user gave their author, and none for a stranger.
    let line = a.send_room_message(room.id, "tea is ready").unwrap();
    let got = wait_for(&mut eb, "bob gets the room line", |e| received(e, line)).await;
    assert_eq!(got.from_name.as_deref(), Some("alice"));
    let reply = b.send_message(a.peer_id(), "coming").unwrap();
    wait_for(&mut ea, "alice gets the reply", |e| received(e, reply)).await;
    let on_a = a.messages().unwrap();
    let reply_msg = on_a.iter().find(|m| m.id == reply).unwrap();
    assert_eq!(reply_msg.from_name, None, "bob is a stranger to alice");
    a.add_contact(b.peer_id(), "Bob (camp)").unwrap();
    let on_a = a.messages().unwrap();
    let reply_msg = on_a.iter().find(|m| m.id == reply).unwrap();
    assert_eq!(reply_msg.from_name.as_deref(), Some("Bob (camp)"));
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn a_message_whose_poke_was_lost_still_arrives() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(config(da.path(), "alice")).await;
    // Bob drops every poke (as a busy node drops streams); only his periodic pull remains.
    let mut cfg = config(db.path(), "bob").with_dropped_pokes();
    cfg.message_resync = Duration::from_millis(300);
    let b = start(cfg).await;
    let mut eb = b.events();
    let first = a.send_message(b.peer_id(), "before we met").unwrap();
    link(&a, &b).await;
    // Bob's pull at connection brings the first message; the second is written after it.
    wait_for(&mut eb, "the first message", |e| received(e, first)).await;
    let second = a
        .send_message(b.peer_id(), "after the poke was lost")
        .unwrap();
    let got = wait_for(&mut eb, "the second message", |e| received(e, second)).await;
    assert_eq!(got.text, "after the poke was lost");
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
