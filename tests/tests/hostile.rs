//! Hostile peers on the same Wi-Fi cannot exhaust a device. A `meshdrop run` process on
//! 127.0.0.1 plays the device (its data dir, its control socket, its memory); real nodes in this
//! process and raw libp2p peers (`tests/src/raw.rs`) play the others:
//!
//! - 20 fresh identities write 250 messages of 8 KiB each to the device: its data dir grows by
//!   no more than the strangers' budget (16 MiB), its control socket answers every `peers`
//!   within a second meanwhile, and a contact's message sent afterwards is delivered;
//! - 40 offers at once, each with a large manifest: the device's peak RSS stays within twice its
//!   idle RSS and `peers` answers within a second.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::AsyncWriteExt;
use libp2p::PeerId;
use meshdrop_core::messaging::MessageState;
use meshdrop_core::transfer::wire::{self, Request, Response};
use meshdrop_core::transfer::{ContentId, Manifest, Provider, ShareKey, Ticket};
use meshdrop_core::{Multiaddr, Node, NodeConfig};
use meshdrop_tests::process::MeshdropProcess;
use meshdrop_tests::raw::{RawPeer, receive, send};
use serde::{Deserialize, Serialize};

const STEP: Duration = Duration::from_secs(60);

/// A node in this process, on loopback.
async fn node(dir: &Path, name: &str) -> Node {
    meshdrop_tests::init_test_logging();
    let config = NodeConfig::loopback(dir).with_name(name).with_mdns(false);
    Node::start(config).await.expect("node starts")
}

/// `meshdrop run` on 127.0.0.1 without mDNS, with `extra` options; and its TCP address.
fn device(dir: &Path, extra: &[&str]) -> (MeshdropProcess, Multiaddr) {
    let mut args = vec!["--bind", "127.0.0.1", "--no-mdns"];
    args.extend_from_slice(extra);
    let mut p = MeshdropProcess::spawn_in(None, dir, "device", &args).expect("device starts");
    let listening = p
        .wait_for(|v| v["event"] == "listening", STEP)
        .expect("listening");
    let peer = listening["peer"].as_str().expect("peer").to_string();
    let addr = listening["addrs"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .filter_map(|a| a.as_str())
                .find(|a| a.contains("/tcp/"))
        })
        .expect("a TCP address");
    let addr = format!("{addr}/p2p/{peer}").parse().expect("multiaddr");
    (p, addr)
}

/// Runs `meshdrop --json ARGS` on `dir` (through the device's control socket); how long it took.
fn command(dir: &Path, args: &[&str]) -> Duration {
    let started = Instant::now();
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let mut p = MeshdropProcess::spawn_raw(None, dir, "command", &all).expect("spawn");
    let status = p.wait_exit(STEP).expect("command ends");
    assert!(status.success(), "{args:?}: {}", p.stderr());
    started.elapsed()
}

/// Bytes of every file under `dir` but the harness's own logs of the processes' output.
fn size_of(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("readable dir").flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".stdout.jsonl") || name.ends_with(".stderr.log") {
            continue;
        }
        if path.is_dir() {
            total += size_of(&path);
        } else if let Ok(m) = entry.metadata() {
            total += m.len();
        }
    }
    total
}

/// Kilobytes of a process's memory from `/proc/PID/status` (`VmRSS`, `VmHWM` for the peak).
fn memory_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a memory figure")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_strangers_flooding_a_device_fill_only_their_budget_and_a_contact_still_gets_through()
 {
    const IDENTITIES: usize = 20;
    const EACH: usize = 125;
    let dirs = tempfile::tempdir().unwrap();
    let dev_dir = dirs.path().join("device");
    // The data dir as a fresh node leaves it (identity, an empty store), before any flood.
    let (mut dev, addr) = device(&dev_dir, &[]);
    dev.terminate(STEP).unwrap();
    let before = size_of(&dev_dir);
    let (mut dev, addr2) = device(&dev_dir, &[]);
    assert_eq!(addr.iter().last(), addr2.iter().last(), "same identity");
    let target: PeerId = match addr2.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(p)) => p,
        _ => panic!("no peer id in {addr2}"),
    };

    let text = "x".repeat(8 * 1024);
    let mut flooders = Vec::new();
    for i in 0..IDENTITIES {
        let n = node(&dirs.path().join(format!("stranger{i}")), &format!("s{i}")).await;
        for _ in 0..EACH {
            n.send_message(target, &text).unwrap();
        }
        flooders.push(n);
    }
    let started = Instant::now();
    for n in &flooders {
        n.connect(addr2.clone()).await.expect("connects");
    }
    // While the flood comes in, the control socket answers.
    let mut slowest = Duration::ZERO;
    let mut asked = 0;
    loop {
        let took = command(&dev_dir, &["peers"]);
        slowest = slowest.max(took);
        asked += 1;
        let queued: usize = flooders
            .iter()
            .map(|n| {
                n.messages()
                    .unwrap()
                    .iter()
                    .filter(|m| m.state == MessageState::Queued)
                    .count()
            })
            .sum();
        if queued == 0 && asked >= 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "{queued} still queued"
        );
    }
    println!(
        "flood of {} messages taken in {:?}; `peers` answered {asked} times, slowest {slowest:?}",
        IDENTITIES * EACH,
        started.elapsed()
    );
    assert!(slowest < Duration::from_secs(1), "peers took {slowest:?}");
    let running = size_of(&dev_dir);

    // A contact writes afterwards: delivered.
    let friend = node(&dirs.path().join("friend"), "friend").await;
    command(
        &dev_dir,
        &[
            "contacts",
            "add",
            &friend.peer_id().to_string(),
            "--name",
            "friend",
        ],
    );
    let mut events = friend.events();
    let hello = friend.send_message(target, "are you still there?").unwrap();
    friend
        .connect(addr2.clone())
        .await
        .expect("friend connects");
    meshdrop_tests::wait_for(&mut events, "the contact's message delivered", |e| {
        matches!(e, meshdrop_core::Event::MessageStateChanged { id, state: MessageState::Delivered } if *id == hello)
            .then_some(())
    })
    .await;
    let took = started.elapsed();
    for n in flooders.iter().chain([&friend]) {
        n.stop().await.unwrap();
    }
    dev.terminate(STEP).unwrap();
    let after = size_of(&dev_dir);
    let grew = after.saturating_sub(before);
    println!(
        "data dir: {before} B before, {running} B running after the flood, {after} B after stop \
         (grew {grew} B; budget {} B); contact delivered {took:?} after the flood began",
        16u64 << 20
    );
    assert!(grew <= 16 << 20, "the data dir grew by {grew} bytes");
    let grew_running = running.saturating_sub(before);
    assert!(
        grew_running <= 16 << 20,
        "the running node's data dir grew by {grew_running} bytes"
    );
    // Fresh from the store: the contact's message is there, and many strangers' are not.
    let inbox = meshdrop_core::DataDir::open(&dev_dir, None)
        .unwrap()
        .messages()
        .unwrap();
    assert!(inbox.iter().any(|m| m.text == "are you still there?"));
    let kept = inbox.iter().filter(|m| m.text.len() == text.len()).count();
    println!("strangers' messages kept: {kept} of {}", IDENTITIES * EACH);
    assert!(kept < IDENTITIES * EACH);
}

/// The offer protocol's messages, spoken by hand (the same order as the node's).
#[derive(Debug, Serialize, Deserialize)]
enum OfferMsg {
    Offer { ticket: String, name: String },
    Accepted { files: u32 },
    Declined { reason: String },
    Progress { done: u64, total: u64 },
    Finished { bytes: u64 },
    Failed { error: String },
}

/// A manifest of about 1 MiB encoded (many empty files), what a device takes at most.
fn large_manifest() -> Vec<u8> {
    let empty = *blake3::hash(b"").as_bytes();
    let files = (0..18_000)
        .map(|i| meshdrop_core::transfer::FileEntry {
            path: meshdrop_core::transfer::RelPath::new(&["holiday", &format!("IMG_{i:06}.jpg")])
                .unwrap(),
            size: 0,
            hash: empty,
        })
        .collect();
    let encoded = Manifest::new(256 * 1024, files, Vec::new(), Vec::new())
        .unwrap()
        .encode();
    assert!(encoded.len() <= 1 << 20, "{} bytes", encoded.len());
    encoded
}

/// A raw peer serving `manifest` under `key` on the blob protocol, to anyone proving the key.
async fn manifest_server(key: ShareKey, manifest: std::sync::Arc<Vec<u8>>) -> RawPeer {
    let handler: meshdrop_tests::raw::Handler =
        std::sync::Arc::new(move |local, peer, mut stream| {
            let manifest = manifest.clone();
            Box::pin(async move {
                let Some(Request::Hello { .. }) = receive::<Request>(&mut stream).await else {
                    return;
                };
                let hello = Response::Hello {
                    proof: key.proof(&local, &peer),
                    complete: true,
                    have: Vec::new(),
                    peers: Vec::new(),
                };
                send(&mut stream, &hello).await;
                if let Some(Request::Manifest) = receive::<Request>(&mut stream).await {
                    let len = manifest.len() as u32;
                    send(&mut stream, &Response::Manifest { len }).await;
                    let _ = stream.write_all(&manifest).await;
                    let _ = stream.close().await;
                }
            })
        });
    RawPeer::start_with(&[], vec![(wire::PROTOCOL, handler)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_offers_with_large_manifests_at_once_keep_the_device_small_and_answering() {
    meshdrop_tests::init_test_logging();
    const SENDERS: usize = 10;
    const EACH: usize = 4;
    let dirs = tempfile::tempdir().unwrap();
    let dev_dir = dirs.path().join("device");
    // Visible to everyone, asking on a terminal nobody answers: offers stay pending.
    let all = [
        "--name",
        "device",
        "--json",
        "--bind",
        "127.0.0.1",
        "--no-mdns",
        "--visible",
        "everyone",
        "run",
        "--accept",
        "ask",
    ];
    let mut dev =
        MeshdropProcess::spawn_raw_stdin(None, &dev_dir, "device", &all, true).expect("device");
    let listening = dev.wait_for(|v| v["event"] == "listening", STEP).unwrap();
    let peer: PeerId = listening["peer"].as_str().unwrap().parse().unwrap();
    let tcp = listening["addrs"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .filter_map(|a| a.as_str())
                .find(|a| a.contains("/tcp/"))
        })
        .unwrap()
        .to_string();
    let addr: Multiaddr = tcp.parse().unwrap();

    let manifest = std::sync::Arc::new(large_manifest());
    let content = ContentId::of(&manifest);
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let key = ShareKey::generate().unwrap();
        let raw = manifest_server(key, manifest.clone()).await;
        assert_eq!(raw.connect(&addr).await, peer);
        let ticket = Ticket::new(
            content,
            key,
            vec![Provider {
                peer: raw.peer_id(),
                addrs: vec![raw.addr.clone()],
            }],
        );
        senders.push((raw, ticket));
    }
    // Idle: up, with its neighbours connected.
    let idle = memory_kb(dev.pid(), "VmRSS:");
    let idle_peak = memory_kb(dev.pid(), "VmHWM:");
    let started = Instant::now();
    let mut offers = Vec::new();
    for (raw, ticket) in &senders {
        for i in 0..EACH {
            let offer = OfferMsg::Offer {
                ticket: ticket.to_string(),
                name: format!("stranger {i}"),
            };
            // A connection can give way to another one as it settles: try again on the next.
            let mut tries = 0;
            let stream = loop {
                let mut stream = raw
                    .open(peer, meshdrop_core::transfer::offer::PROTOCOL)
                    .await;
                let sent = meshdrop_core::net::framing::write_msg(&mut stream, &offer).await;
                if sent.is_ok() && stream.flush().await.is_ok() {
                    break stream;
                }
                tries += 1;
                assert!(tries < 5, "cannot offer: {sent:?}");
                raw.connect(&addr).await;
            };
            offers.push(stream);
        }
    }
    // The device answers at once all it will not keep, and keeps the rest waiting.
    let slowest = command(&dev_dir, &["peers"]);
    // Every answer is read at once; the offers kept waiting get none (the user never answers).
    let answers = futures::future::join_all(offers.iter_mut().map(|stream| {
        tokio::time::timeout(Duration::from_secs(10), async {
            let mut buf = Vec::new();
            meshdrop_core::net::framing::read_msg::<_, OfferMsg>(stream, &mut buf).await
        })
    }))
    .await;
    // Refused: declined, or (past the 32 offer sessions running at once, on a slow machine)
    // closed without a word; only the kept offers wait.
    let (mut declined, mut closed) = (0, 0);
    for answer in answers {
        match answer {
            Ok(Ok(Some(OfferMsg::Declined { reason }))) => {
                assert!(reason.contains("too many offers"), "{reason}");
                declined += 1;
            }
            Ok(Ok(None) | Err(_)) => closed += 1,
            Ok(Ok(Some(other))) => panic!("an offer answered with {other:?}"),
            Err(_) => {}
        }
    }
    // The terminal prompt shows one waiting offer at a time.
    let pending = dev
        .events()
        .iter()
        .filter(|e| e.value["event"] == "offer_received")
        .count();
    let peak = memory_kb(dev.pid(), "VmHWM:");
    let slowest = slowest.max(command(&dev_dir, &["peers"]));
    println!(
        "{} offers: {declined} declined at once, {closed} closed, {pending} shown; RSS idle {idle} kB (peak so \
         far {idle_peak} kB), peak {peak} kB; `peers` slowest {slowest:?}; {:?}",
        SENDERS * EACH,
        started.elapsed()
    );
    assert_eq!(
        declined + closed,
        SENDERS * EACH - 4,
        "all but the strangers' four refused"
    );
    assert!(
        declined >= 32 - 4,
        "at least what the sessions at once hold is declined"
    );
    assert!(
        peak <= 2 * idle,
        "peak RSS {peak} kB over twice the idle {idle} kB"
    );
    assert!(slowest < Duration::from_secs(1), "peers took {slowest:?}");
    dev.terminate(STEP).unwrap();
}

/// The message protocol's frames, spoken by hand (the same order as the node's).
#[derive(Debug, Serialize, Deserialize)]
enum SyncFrame {
    Pull { since: u64, rooms: Vec<[u8; 32]> },
    Poke,
    Envelope { hops: u8, raw: Vec<u8> },
    Done { upto: u64 },
    Taken { ids: Vec<[u8; 32]> },
    Poked,
}

/// Junk frame `i` of a protocol: garbage, an oversize length, or a well-formed frame that makes
/// no sense there.
fn junk<T: Serialize>(i: usize, sensible: &T) -> Vec<u8> {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut noise = |n: usize| {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<u8>>()
    };
    match i % 3 {
        0 => {
            let body = noise(1 + i % 200);
            let mut frame = (body.len() as u32).to_le_bytes().to_vec();
            frame.extend(body);
            frame
        }
        1 => {
            let mut frame = u32::MAX.to_le_bytes().to_vec();
            frame.extend(noise(16));
            frame
        }
        _ => {
            let body = postcard::to_stdvec(sensible).unwrap();
            let mut frame = (body.len() as u32).to_le_bytes().to_vec();
            frame.extend(body);
            frame
        }
    }
}

/// Writes `total` junk frames of `protocol` to `to`, over as many streams as it takes (the node
/// ends a stream at the first frame it cannot use); returns how many went out.
async fn flood<T: Serialize>(
    raw: &RawPeer,
    to: PeerId,
    protocol: libp2p::StreamProtocol,
    total: usize,
    sensible: impl Fn(usize) -> T,
) -> usize {
    let mut sent = 0;
    let mut i = 0;
    while sent < total && i < total * 4 {
        let mut control = raw.control();
        let Ok(Ok(mut stream)) = tokio::time::timeout(
            Duration::from_secs(5),
            control.open_stream(to, protocol.clone()),
        )
        .await
        else {
            i += 1;
            continue;
        };
        for _ in 0..100 {
            let frame = junk(i, &sensible(i));
            i += 1;
            match tokio::time::timeout(Duration::from_secs(5), stream.write_all(&frame)).await {
                Ok(Ok(())) => sent += 1,
                _ => break,
            }
        }
        let _ = stream.close().await;
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_junk_frames_of_each_kind_store_nothing_and_the_node_answers() {
    const JUNK: usize = 10_000;
    let dirs = tempfile::tempdir().unwrap();
    let bob = node(&dirs.path().join("bob"), "bob").await;
    bob.set_visibility(meshdrop_core::transfer::Visibility::Everyone, None);
    // The raw peer also answers bob's pulls with junk envelopes.
    let answered = std::sync::Arc::new(tokio::sync::Notify::new());
    let told = answered.clone();
    let answer_pulls: meshdrop_tests::raw::Handler =
        std::sync::Arc::new(move |_, _, mut stream| {
            let told = told.clone();
            Box::pin(async move {
                if let Some(SyncFrame::Pull { .. }) = receive::<SyncFrame>(&mut stream).await {
                    for i in 0..JUNK {
                        let raw = junk(i, &i).split_off(4);
                        let frame = SyncFrame::Envelope { hops: 3, raw };
                        if meshdrop_core::net::framing::write_msg(&mut stream, &frame)
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    let _ = meshdrop_core::net::framing::write_msg(
                        &mut stream,
                        &SyncFrame::Done { upto: JUNK as u64 },
                    )
                    .await;
                    let _ = stream.close().await;
                    told.notify_one();
                }
            })
        });
    let eve = RawPeer::start_with(
        &[],
        vec![(meshdrop_core::messaging::sync::PROTOCOL, answer_pulls)],
    )
    .await;
    let b = eve.connect(&bob.listen_addrs()[0]).await;
    // Bob pulls from every peer that connects: eve answers with junk envelopes.
    tokio::time::timeout(STEP, answered.notified())
        .await
        .expect("bob pulled from eve");
    let started = Instant::now();
    let blob = flood(&eve, b, wire::PROTOCOL, JUNK, |i| Request::Hello {
        tag: [i as u8; 32],
        proof: [7; 32],
    })
    .await;
    let offers = flood(
        &eve,
        b,
        meshdrop_core::transfer::offer::PROTOCOL,
        JUNK,
        |i| OfferMsg::Offer {
            ticket: format!("meshdrop2junk{i}"),
            name: "eve".into(),
        },
    )
    .await;
    let sync = flood(
        &eve,
        b,
        meshdrop_core::messaging::sync::PROTOCOL,
        JUNK,
        |i| SyncFrame::Envelope {
            hops: 1,
            raw: vec![i as u8; 64],
        },
    )
    .await;
    println!(
        "junk frames sent: blob {blob}, offer {offers}, sync {sync} in {:?}",
        started.elapsed()
    );
    assert!(blob >= JUNK && offers >= JUNK && sync >= JUNK);

    // Responsive: the peer list within a second, and a friend's message goes through.
    let asked = Instant::now();
    bob.peers().await.unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    let stats = bob.message_stats().unwrap();
    assert_eq!(stats.envelopes, 0, "nothing stored: {stats:?}");
    assert!(bob.pending_offers().is_empty());
    assert!(!dirs.path().join("bob/received").exists());
    let alice = node(&dirs.path().join("alice"), "alice").await;
    let mut events = alice.events();
    let hi = alice
        .send_message(bob.peer_id(), "hello after the junk")
        .unwrap();
    alice.connect(bob.listen_addrs()[0].clone()).await.unwrap();
    meshdrop_tests::wait_for(&mut events, "delivered", |e| {
        matches!(e, meshdrop_core::Event::MessageStateChanged { id, state: MessageState::Delivered } if *id == hi)
            .then_some(())
    })
    .await;
    alice.stop().await.unwrap();
    bob.stop().await.unwrap();
}
