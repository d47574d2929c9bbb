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
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, Event)>();
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
    let mut seen: BTreeMap<(usize, usize), Seen> = BTreeMap::new();
    let all_pairs = count * (count - 1);

    // 1. Everyone finds and connects to everyone.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while seen.values().filter(|s| s.connected.is_some()).count() < all_pairs {
        let Ok(Some((i, ev))) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            break;
        };
        record(&mut seen, &index, i, &ev, started.elapsed());
    }
    let connected = seen.values().filter(|s| s.connected.is_some()).count();

    for ((a, b), s) in &seen {
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

    // 2. One node leaves; the others are told by its mDNS goodbye.
    let leaver = count - 1;
    let leave_started = Instant::now();
    nodes[leaver].stop().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while (0..leaver).any(|i| !seen.get(&(i, leaver)).is_some_and(|s| s.lost)) {
        let Ok(Some((i, ev))) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            break;
        };
        record(&mut seen, &index, i, &ev, started.elapsed());
    }
    let noticed = (0..leaver)
        .filter(|i| seen.get(&(*i, leaver)).is_some_and(|s| s.lost))
        .count();
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

    for node in &nodes[..leaver] {
        node.stop().await?;
    }
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
        "Demo complete: every node found and connected to every other, codes matched, and a departure was noticed.",
    );
    Ok(())
}

fn record(
    seen: &mut BTreeMap<(usize, usize), Seen>,
    index: &HashMap<PeerId, usize>,
    i: usize,
    ev: &Event,
    at: Duration,
) {
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

fn say(out: Output, event: &str, mut fields: serde_json::Value, text: &str) {
    if out.json {
        fields["event"] = json!(event);
        out.raw(&fields);
    } else {
        println!("{text}");
    }
}
