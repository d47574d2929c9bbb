//! A share is a capability: the ticket is the only key. A raw libp2p peer that speaks the blob
//! protocol by hand plays the stranger on the same Wi-Fi: knowing a share's content id, replaying
//! a proof it saw, or sitting connected to a downloader gets it nothing it could fetch with.

use std::path::Path;

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::PeerId;
use meshdrop_core::transfer::wire::{self, Request, Response};
use meshdrop_core::transfer::{ShareKey, Ticket};
use meshdrop_core::{DownloadSpec, Node, NodeConfig};
use meshdrop_tests::random_file;
use meshdrop_tests::raw::{RawPeer, receive, send};

async fn node(dir: &Path, name: &str) -> Node {
    meshdrop_tests::init_test_logging();
    let mut config = NodeConfig::loopback(dir).with_name(name).with_mdns(false);
    // As a standalone `get`: a download no one serves gives up soon, saying who refused.
    config.holder_wait = Some(std::time::Duration::from_secs(2));
    Node::start(config).await.expect("node starts")
}

/// A node sharing a 1 MiB file, and its ticket.
async fn sharer(dir: &tempfile::TempDir) -> (Node, Ticket) {
    let file = dir.path().join("files/trip.bin");
    random_file(&file, 1 << 20, 7);
    let alice = node(&dir.path().join("alice"), "alice").await;
    let ticket = alice.share(vec![file]).await.expect("shared");
    (alice, ticket)
}

/// Sends a hello, then asks for the manifest and the first chunks; returns every answer.
async fn try_fetch(eve: &RawPeer, to: PeerId, hello: Option<Request>) -> Vec<Response> {
    let mut stream = eve.open(to, wire::PROTOCOL).await;
    if let Some(hello) = hello {
        send(&mut stream, &hello).await;
    }
    send(&mut stream, &Request::Manifest).await;
    send(&mut stream, &Request::Chunks { first: 0, count: 4 }).await;
    // Done asking: the node answers what it will, then ends the stream.
    let _ = stream.close().await;
    let mut answers = Vec::new();
    while let Some(answer) = receive::<Response>(&mut stream).await {
        // A manifest's or a chunk's bytes follow its header unframed.
        if let Response::Manifest { len } | Response::Chunk { len, .. } = &answer {
            let mut payload = vec![0; *len as usize];
            if stream.read_exact(&mut payload).await.is_err() {
                break;
            }
        }
        answers.push(answer);
    }
    answers
}

/// Whether an answer gives away anything of the share.
fn gives_away(r: &Response) -> bool {
    !matches!(r, Response::Unknown | Response::Error { .. })
}

#[tokio::test]
async fn a_peer_that_knows_the_content_id_but_not_the_ticket_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, ticket) = sharer(&dir).await;
    let eve = RawPeer::start(&[]).await;
    let a = eve.connect(&alice.listen_addrs()[0]).await;
    let tag = ticket.key.tag().0;
    let wrong_key = ShareKey::from_bytes([1; 32]);
    let attempts = [
        // The content id where the tag goes, with no real proof.
        Some(Request::Hello {
            tag: ticket.content.0,
            proof: [0; 32],
        }),
        // The real tag (seen somewhere), a made-up proof.
        Some(Request::Hello {
            tag,
            proof: [0xab; 32],
        }),
        // The real tag, a proof from another key.
        Some(Request::Hello {
            tag,
            proof: wrong_key.proof(&eve.peer_id(), &a),
        }),
        // No hello at all: straight to the manifest and the chunks.
        None,
    ];
    for hello in attempts {
        let answers = try_fetch(&eve, a, hello.clone()).await;
        assert!(
            !answers.is_empty(),
            "{hello:?}: some answer, or a clear error"
        );
        assert!(!answers.iter().any(gives_away), "{hello:?} got {answers:?}");
    }
    // Garbage instead of a frame: the stream ends, nothing is said.
    let mut stream = eve.open(a, wire::PROTOCOL).await;
    send(&mut stream, &"not a request").await;
    assert!(
        receive::<Response>(&mut stream)
            .await
            .is_none_or(|r| !gives_away(&r))
    );
    alice.stop().await.unwrap();
}

#[tokio::test]
async fn a_ticket_holder_is_served_and_a_proof_replayed_from_another_device_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, ticket) = sharer(&dir).await;
    let eve = RawPeer::start(&[]).await;
    let a = eve.connect(&alice.listen_addrs()[0]).await;
    let tag = ticket.key.tag().0;
    // Bob's proof for his connection to Alice, as if Eve had seen it.
    let bob = PeerId::random();
    let replayed = Request::Hello {
        tag,
        proof: ticket.key.proof(&bob, &a),
    };
    let answers = try_fetch(&eve, a, Some(replayed)).await;
    assert!(!answers.iter().any(gives_away), "replayed: {answers:?}");
    // With the ticket, the same peer proves the key for its own connection and is served.
    let own = Request::Hello {
        tag,
        proof: ticket.key.proof(&eve.peer_id(), &a),
    };
    let answers = try_fetch(&eve, a, Some(own)).await;
    match answers.first() {
        Some(Response::Hello { proof, .. }) => {
            assert!(
                ticket.key.verify(proof, &a, &eve.peer_id()),
                "Alice proves the key too"
            )
        }
        other => panic!("a ticket holder is answered, got {other:?}"),
    }
    assert!(
        answers
            .iter()
            .any(|r| matches!(r, Response::Manifest { .. })),
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .any(|r| matches!(r, Response::Chunk { index: 0, .. })),
        "{answers:?}"
    );
    alice.stop().await.unwrap();
}

#[tokio::test]
async fn a_downloader_connected_to_a_stranger_leaks_nothing_fetchable() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, ticket) = sharer(&dir).await;
    let eve = RawPeer::start(&[wire::PROTOCOL]).await;
    let bob = node(&dir.path().join("bob"), "bob").await;
    let e = bob.connect(eve.addr.clone()).await.expect("bob meets eve");
    // Bob's download asks every connected peer, the stranger too.
    let out = dir.path().join("out");
    let report = bob
        .download(DownloadSpec {
            ticket: ticket.clone(),
            dest: out.clone(),
            files: None,
        })
        .wait()
        .await
        .expect("downloaded");
    assert_eq!(report.bytes, 1 << 20);
    assert_eq!(
        std::fs::read(out.join("trip.bin")).unwrap(),
        std::fs::read(dir.path().join("files/trip.bin")).unwrap()
    );
    let heard = eve.heard(1).await;
    let said = heard.concat();
    assert!(!said.is_empty(), "Bob asked the stranger");
    for secret in [&ticket.content.0, &ticket.key.to_bytes()] {
        assert!(
            !said.windows(32).any(|w| w == secret.as_slice()),
            "the stranger heard the content id or the key"
        );
    }
    // What Eve heard opens nothing: not at Alice, not at Bob.
    let first = &heard[0];
    let len = u32::from_le_bytes(first[..4].try_into().unwrap()) as usize;
    let hello: Request = meshdrop_core::net::framing::decode(&first[4..4 + len]).expect("a hello");
    let a = eve.connect(&alice.listen_addrs()[0]).await;
    for to in [a, bob.peer_id()] {
        let answers = try_fetch(&eve, to, Some(hello.clone())).await;
        assert!(!answers.iter().any(gives_away), "{to}: {answers:?}");
    }
    assert_eq!(e, eve.peer_id());
    bob.stop().await.unwrap();
    alice.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unshared_share_stops_at_once_and_its_ticket_opens_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("files/trip.bin");
    random_file(&file, 8 << 20, 3);
    // A slow seeder, so the download is midway when the share ends.
    let mut config = NodeConfig::loopback(dir.path().join("alice"))
        .with_name("alice")
        .with_mdns(false);
    config.limits.max_upload_rate = Some(1 << 20);
    let alice = Node::start(config).await.unwrap();
    let ticket = alice.share(vec![file]).await.unwrap();
    let shares = alice.shares().unwrap();
    assert_eq!(shares.len(), 1);
    assert_eq!(
        (shares[0].name.as_str(), shares[0].bytes),
        ("trip.bin", 8 << 20)
    );
    let bob = node(&dir.path().join("bob"), "bob").await;
    let mut events = bob.events();
    let handle = bob.download(DownloadSpec {
        ticket: ticket.clone(),
        dest: dir.path().join("out"),
        files: None,
    });
    meshdrop_tests::wait_for(&mut events, "the first bytes", |e| {
        matches!(e, meshdrop_core::Event::TransferProgress { done, .. } if *done > 0).then_some(())
    })
    .await;
    let gone = alice.unshare(&shares[0].id).unwrap();
    assert_eq!(gone.content, ticket.content);
    assert!(alice.shares().unwrap().is_empty());
    // The open session ended; the download stops getting bytes and, with its only provider
    // refusing the ticket, gives up.
    handle.cancel(true);
    let _ = handle.wait().await;
    let carol = node(&dir.path().join("carol"), "carol").await;
    let err = carol
        .download(DownloadSpec {
            ticket,
            dest: dir.path().join("carol-out"),
            files: None,
        })
        .wait()
        .await
        .expect_err("the ticket opens nothing now");
    assert!(
        err.to_string().contains("does not serve it to this ticket"),
        "{err}"
    );
    for n in [alice, bob, carol] {
        n.stop().await.unwrap();
    }
}

#[tokio::test]
async fn an_attachment_is_served_until_it_expires_unless_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("files/photo.jpg");
    random_file(&file, 100_000, 5);
    // Attachments that expire at once: only a pinned one is served.
    let mut config = NodeConfig::loopback(dir.path().join("alice"))
        .with_name("alice")
        .with_mdns(false);
    config.attachment_ttl = std::time::Duration::ZERO;
    let alice = Node::start(config).await.unwrap();
    let bob = node(&dir.path().join("bob"), "bob").await;
    let to = meshdrop_core::Recipient::Peer(bob.peer_id());
    alice
        .send_with_attachment(to, "expired", vec![file.clone()], false)
        .await
        .unwrap();
    alice
        .send_with_attachment(to, "pinned", vec![file], true)
        .await
        .unwrap();
    let messages = alice.messages().unwrap();
    let expired = messages.iter().find(|m| m.text == "expired").unwrap();
    let pinned = messages.iter().find(|m| m.text == "pinned").unwrap();
    let err = bob
        .download_attachment(expired, dir.path().join("a"))
        .unwrap()
        .wait()
        .await
        .expect_err("expired");
    assert!(err.to_string().contains("does not serve it"), "{err}");
    let report = bob
        .download_attachment(pinned, dir.path().join("b"))
        .unwrap()
        .wait()
        .await
        .expect("a pinned attachment is served");
    assert_eq!(report.bytes, 100_000);
    assert_eq!(
        alice.shares().unwrap().len(),
        1,
        "the expired one is forgotten"
    );
    alice.stop().await.unwrap();
    bob.stop().await.unwrap();
}
