//! `meshdrop demo`: several real nodes on this machine, on loopback only, that find each other with
//! mDNS and connect; then one leaves and the others notice. A short, honest report of what happened.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use meshdrop_core::{Event, Node, NodeConfig, PeerId};
use serde_json::json;
use tokio::sync::mpsc;

use crate::output::Output;

const NAMES: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];
const DEADLINE: Duration = Duration::from_secs(30);

/// What one node saw of another.
#[derive(Default)]
struct Seen {
    discovered: Option<Duration>,
    connected: Option<Duration>,
    code: String,
    transport: String,
    lost: bool,
}

/// Runs the demo with `count` nodes.
pub async fn run(count: usize, out: Output) -> Result<()> {
    if !(2..=NAMES.len()).contains(&count) {
        bail!("the demo runs 2 to {} nodes", NAMES.len());
    }
    let dirs: Vec<tempfile::TempDir> = (0..count)
        .map(|_| tempfile::tempdir())
        .collect::<Result<_, _>>()?;
    say(
        out,
        "demo_started",
        json!({"nodes": count, "where": "127.0.0.1 (loopback only, mDNS included)"}),
        &format!(
            "Starting {count} meshdrop nodes on 127.0.0.1 (mDNS on loopback only; nothing leaves this machine)…"
        ),
    );
    let started = Instant::now();
    let mut nodes = Vec::new();
    let (tx, rx) = mpsc::unbounded_channel::<(usize, Event)>();
    for (i, dir) in dirs.iter().enumerate() {
        let node = Node::start(NodeConfig::loopback(dir.path()).with_name(NAMES[i])).await?;
        let mut events = node.events();
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(ev) = events.recv().await {
                if tx.send((i, ev)).is_err() {
                    break;
                }
            }
        });
        nodes.push(node);
    }
    let index: HashMap<PeerId, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.peer_id(), i))
        .collect();
    let mut watch = Watch {
        rx,
        index,
        seen: BTreeMap::new(),
        started,
    };
    let all_pairs = count * (count - 1);

    // 1. Everyone finds and connects to everyone.
    let connected = |seen: &Pairs| seen.values().filter(|s| s.connected.is_some()).count();
    watch
        .until(DEADLINE, |seen| connected(seen) >= all_pairs)
        .await;
    let connected = connected(&watch.seen);
    report_pairs(&watch.seen, all_pairs, out);

    // 2. A trip folder travels: alice shares, bob fetches from alice, then the last node fetches
    //    from alice and bob at once (every downloader is also a seeder).
    let trip = tempfile::tempdir()?;
    share_step(&nodes, trip.path(), out).await?;

    // 2a. An offer pushed to a nearby device: refused from a stranger; accepted once the
    //     receiver compared codes and added the sender as a contact.
    let pushed = tempfile::tempdir()?;
    let ends = ((&nodes[0], NAMES[0]), (&nodes[1], NAMES[1]));
    crate::demo_offer::offer_step(ends.0, ends.1, pushed.path(), out).await?;

    // 2b. A friend on another network: only a ticket through a relay (run here on 127.0.0.1).
    let beyond = tempfile::tempdir()?;
    crate::demo_relay::relay_step(beyond.path(), out).await?;

    // 3. One node leaves; the others are told by its mDNS goodbye.
    let leaver = count - 1;
    let leave_started = Instant::now();
    nodes[leaver].stop().await?;
    let lost = |seen: &Pairs, i: usize| seen.get(&(i, leaver)).is_some_and(|s| s.lost);
    watch
        .until(Duration::from_secs(10), |seen| {
            (0..leaver).all(|i| lost(seen, i))
        })
        .await;
    let seen = &watch.seen;
    let noticed = (0..leaver).filter(|i| lost(seen, *i)).count();
    say(
        out,
        "demo_peer_left",
        json!({"peer": NAMES[leaver], "noticed_by": noticed, "of": leaver,
            "ms": leave_started.elapsed().as_millis()}),
        &format!(
            "{} stopped; {noticed}/{leaver} others reported it lost within {} ms",
            NAMES[leaver],
            leave_started.elapsed().as_millis()
        ),
    );

    // 4. A message reaches the node that left, carried by another, while the sender is away too.
    let carried = if leaver >= 2 {
        let ends = crate::demo_message::Ends {
            sender: (dirs[0].path(), NAMES[0]),
            recipient: (dirs[leaver].path(), NAMES[leaver]),
        };
        crate::demo_message::carry_step(&nodes[0], ends, out).await
    } else {
        Ok(())
    };

    for node in &nodes[..leaver] {
        node.stop().await?;
    }
    carried?;
    let codes_match = seen
        .iter()
        .all(|((a, b), s)| seen.get(&(*b, *a)).is_some_and(|o| o.code == s.code));
    if connected < all_pairs || noticed < leaver || !codes_match {
        return Err(anyhow!("the demo did not complete: see the report above"));
    }
    say(
        out,
        "demo_finished",
        json!({"ok": true}),
        "Demo complete: every node found and connected to every other, codes matched, the folder arrived verified on every node, a stranger's offer was refused and a contact added by code got through, a friend beyond the LAN got a file through a relay, a departure was noticed, and a message reached a device that was off through a carrier.",
    );
    Ok(())
}

/// What each node saw of each other one, by (observer, observed).
type Pairs = BTreeMap<(usize, usize), Seen>;

/// The nodes' events as they come, recorded per pair.
struct Watch {
    rx: mpsc::UnboundedReceiver<(usize, Event)>,
    index: HashMap<PeerId, usize>,
    seen: Pairs,
    started: Instant,
}

impl Watch {
    /// Records events until `done` holds or `within` passed.
    async fn until(&mut self, within: Duration, done: impl Fn(&Pairs) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !done(&self.seen) {
            let Ok(Some((i, ev))) = tokio::time::timeout_at(deadline, self.rx.recv()).await else {
                break;
            };
            record(&mut self.seen, &self.index, i, &ev, self.started.elapsed());
        }
    }
}

/// Reports each connected pair (transport, the code on both screens) and the timings.
fn report_pairs(seen: &Pairs, all_pairs: usize, out: Output) {
    let connected = seen.values().filter(|s| s.connected.is_some()).count();
    for ((a, b), s) in seen {
        if s.connected.is_some() && a < b {
            let back = seen
                .get(&(*b, *a))
                .map(|s| s.code.as_str())
                .unwrap_or_default();
            let same = back == s.code;
            say(
                out,
                "demo_pair",
                json!({"a": NAMES[*a], "b": NAMES[*b], "transport": s.transport,
                    "code_a": s.code, "code_b": back, "codes_match": same}),
                &format!(
                    "  {:>6} ⇄ {:<6} over {:<4}  verification code {} on both screens: {}",
                    NAMES[*a],
                    NAMES[*b],
                    s.transport,
                    s.code,
                    if same { "yes" } else { "NO" }
                ),
            );
        }
    }
    let discovery_ms: Vec<u128> = seen
        .values()
        .filter_map(|s| s.discovered)
        .map(|d| d.as_millis())
        .collect();
    let connect_ms: Vec<u128> = seen
        .values()
        .filter_map(|s| s.connected)
        .map(|d| d.as_millis())
        .collect();
    say(
        out,
        "demo_connected",
        json!({"pairs_connected": connected, "pairs_expected": all_pairs,
            "last_discovery_ms": discovery_ms.iter().max(), "last_connection_ms": connect_ms.iter().max()}),
        &format!(
            "{connected}/{all_pairs} directed pairs connected; last discovery after {} ms, last connection after {} ms (from start)",
            discovery_ms.iter().max().unwrap_or(&0),
            connect_ms.iter().max().unwrap_or(&0)
        ),
    );
}

fn record(seen: &mut Pairs, index: &HashMap<PeerId, usize>, i: usize, ev: &Event, at: Duration) {
    let peer = match ev {
        Event::PeerDiscovered { peer, .. }
        | Event::PeerConnected { peer, .. }
        | Event::PeerLost { peer, .. } => peer,
        _ => return,
    };
    let Some(&j) = index.get(peer) else { return };
    let s = seen.entry((i, j)).or_default();
    match ev {
        Event::PeerDiscovered { .. } => {
            s.discovered.get_or_insert(at);
        }
        Event::PeerConnected {
            verification_code,
            transport,
            ..
        } => {
            s.connected.get_or_insert(at);
            s.code = verification_code.clone();
            s.transport = format!("{transport:?}").to_lowercase();
        }
        Event::PeerLost { .. } => s.lost = true,
        _ => {}
    }
}

/// Prints one step of the report: a JSON event, or a line of text.
pub(crate) fn say(out: Output, event: &str, mut fields: serde_json::Value, text: &str) {
    if out.json {
        fields["event"] = json!(event);
        out.raw(&fields);
    } else {
        println!("{text}");
    }
}

/// Generates a folder (one large file, many small photos), shares it from the first node and
/// downloads it on the others; reports rates, where the bytes came from, and the verification.
async fn share_step(nodes: &[Node], root: &std::path::Path, out: Output) -> Result<()> {
    let source = root.join("src").join("Trip");
    let (files, bytes) = generate_trip(&source)?;
    say(
        out,
        "demo_share",
        json!({"files": files, "bytes": bytes}),
        &format!(
            "{} shares a folder of {files} files ({:.1} MiB): one video and many photos",
            NAMES[0],
            mib(bytes)
        ),
    );
    let ticket = nodes[0].share(vec![source.clone()]).await?;
    let mut providers = ticket.providers.clone();
    for (i, node) in nodes.iter().enumerate().skip(1) {
        let dest = root.join(NAMES[i]);
        let spec = meshdrop_core::DownloadSpec {
            ticket: meshdrop_core::Ticket::new(ticket.content, ticket.key, providers.clone()),
            dest: dest.clone(),
            files: None,
        };
        let report = node.download(spec).wait().await?;
        let same = same_tree(&source, &dest.join("Trip"))?;
        let from: Vec<String> = report
            .peers
            .iter()
            .map(|p| {
                let who = nodes
                    .iter()
                    .position(|n| n.peer_id() == p.peer)
                    .map_or("?", |k| NAMES[k]);
                format!("{who} {:.1} MiB", mib(p.bytes))
            })
            .collect();
        say(
            out,
            "demo_download",
            json!({"node": NAMES[i], "bytes": report.bytes, "secs": report.secs,
                "mib_per_s": mib(report.bytes) / report.secs.max(1e-6), "from": report.peers, "verified": same}),
            &format!(
                "  {:>6} got it in {:.2} s ({:.0} MiB/s), from {}; every file matches BLAKE3: {}",
                NAMES[i],
                report.secs,
                mib(report.bytes) / report.secs.max(1e-6),
                from.join(", "),
                if same { "yes" } else { "NO" }
            ),
        );
        if !same {
            return Err(anyhow!("{} received different bytes", NAMES[i]));
        }
        // Whoever has the share now seeds it to the next.
        providers.push(
            node.ticket_for(ticket.content, ticket.key)
                .providers
                .remove(0),
        );
    }
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Writes a 48 MiB "video" and 300 "photos" of 24 KiB with deterministic pseudo-random bytes.
fn generate_trip(dir: &std::path::Path) -> Result<(usize, u64)> {
    let mut total = 0;
    let mut write = |path: std::path::PathBuf, len: usize, seed: u64| -> Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, pseudo_random(len, seed))?;
        total += len as u64;
        Ok(())
    };
    write(dir.join("videos/GOPR0001.MP4"), 48 * 1024 * 1024, 0)?;
    for i in 0..300u64 {
        write(
            dir.join(format!("photos/day {}/IMG_{i:04}.jpg", i / 100 + 1)),
            24 * 1024,
            i + 1,
        )?;
    }
    Ok((301, total))
}

/// `len` bytes that look random (BLAKE3's output stream for `seed`), the same for the same seed.
pub(crate) fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut data);
    data
}

/// Whether every file under `a` has an identical twin under `b` and nothing else is there.
fn same_tree(a: &std::path::Path, b: &std::path::Path) -> Result<bool> {
    fn hashes(root: &std::path::Path) -> Result<Vec<(std::path::PathBuf, [u8; 32])>> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let mut h = blake3::Hasher::new();
                    h.update_reader(std::fs::File::open(&path)?)?;
                    out.push((
                        path.strip_prefix(root)?.to_path_buf(),
                        *h.finalize().as_bytes(),
                    ));
                }
            }
        }
        out.sort();
        Ok(out)
    }
    Ok(hashes(a)? == hashes(b)?)
}
