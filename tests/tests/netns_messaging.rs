//! Store-and-forward between real `meshdrop` processes, each in its own network namespace: a line
//! A – B – C where A and C cannot reach each other (nftables drops everything between them, so B
//! is the only path, and B does not route IP). A writes to C while C is off; B carries it; C comes
//! up, gets it exactly once; A sees `delivered`; B's data dir holds no plaintext.
//!
//! Needs root, iproute2 and nftables, and the `meshdrop` binary (`cargo build -p meshdrop`).
//! No sleeps: every step waits for an event, with a timeout.

use std::time::Duration;

use anyhow::{Context, Result};
use meshdrop_tests::netns::{Host, Lab};
use meshdrop_tests::process::MeshdropProcess;
use serde_json::Value;
use tempfile::TempDir;

const STEP: Duration = Duration::from_secs(30);

/// Runs a one-shot `meshdrop --json ARGS` on `dir` (through the running node's control socket when
/// one runs there) and returns its JSON lines.
fn command(host: &Host, dir: &TempDir, label: &str, args: &[&str]) -> Result<Vec<Value>> {
    MeshdropProcess::run_once(host, dir.path(), label, args, STEP)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file of a data dir, concatenated.
fn dir_bytes(dir: &std::path::Path) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            out.extend(std::fs::read(&path)?);
        }
    }
    Ok(out)
}

fn is_message_event(v: &Value, event: &str, id: &str) -> bool {
    v["event"] == event && (v["id"] == id || v["message"]["id"] == id)
}

#[test]
fn a_carrier_between_two_devices_that_never_meet_delivers_exactly_once() -> Result<()> {
    let lab = Lab::new(3)?;
    lab.block(0, &[2])?;
    lab.block(2, &[0])?;
    let dirs = (TempDir::new()?, TempDir::new()?, TempDir::new()?);

    // Carol's id is known (e.g. from a contact card); she is off.
    let mut id = MeshdropProcess::spawn_raw(None, dirs.2.path(), "carol-id", &["--json", "id"])?;
    let carol_id = id.wait_for(|v| v["event"] == "id", STEP)?["peer"]
        .as_str()
        .context("id without peer")?
        .to_string();
    id.wait_exit(STEP)?;

    let mut alice = MeshdropProcess::spawn_in(Some(lab.host(0)), dirs.0.path(), "alice", &[])?;
    let mut bob = MeshdropProcess::spawn_in(Some(lab.host(1)), dirs.1.path(), "bob", &[])?;
    let alice_id = alice.peer_id(STEP)?;
    let bob_id = bob.peer_id(STEP)?;
    alice.wait_peer_event("peer_connected", &bob_id, STEP)?;

    // Alice writes through her running node's control socket.
    let secret = "the water point is behind the school";
    let mut msg = MeshdropProcess::spawn_raw(
        Some(lab.host(0)),
        dirs.0.path(),
        "alice-msg",
        &["--json", "msg", &carol_id, secret],
    )?;
    let queued = msg.wait_for(|v| v["event"] == "message_queued", STEP)?;
    msg.wait_exit(STEP)?;
    let msg_id = queued["id"].as_str().context("no message id")?.to_string();
    alice.wait_for(
        |v| is_message_event(v, "message_state_changed", &msg_id) && v["state"] == "sent",
        STEP,
    )?;

    // Carol comes up; only Bob can reach her.
    let mut carol = MeshdropProcess::spawn_in(Some(lab.host(2)), dirs.2.path(), "carol", &[])?;
    assert_eq!(carol.peer_id(STEP)?, carol_id);
    let got = carol.wait_for(|v| is_message_event(v, "message_received", &msg_id), STEP)?;
    assert_eq!(got["message"]["text"], secret);
    assert_eq!(got["message"]["from"], alice_id.as_str());
    alice.wait_for(
        |v| is_message_event(v, "message_state_changed", &msg_id) && v["state"] == "delivered",
        STEP,
    )?;

    // Exactly once on Carol, and Alice and Carol never connected.
    let received = carol
        .events()
        .iter()
        .filter(|e| is_message_event(&e.value, "message_received", &msg_id))
        .count();
    assert_eq!(received, 1);
    assert!(
        !carol
            .events()
            .iter()
            .any(|e| e.value["event"] == "peer_connected" && e.value["peer"] == alice_id.as_str()),
        "carol connected to alice directly"
    );

    // What Bob stored holds ciphertext only.
    bob.terminate(STEP)?;
    let stored = dir_bytes(dirs.1.path())?;
    assert!(
        !contains(&stored, secret.as_bytes()),
        "plaintext at the carrier"
    );
    alice.terminate(STEP)?;
    carol.terminate(STEP)?;
    Ok(())
}

#[test]
fn a_room_of_four_split_in_two_and_healed_ends_with_the_same_messages_in_the_same_order()
-> Result<()> {
    let lab = Lab::new(4)?;
    let names = ["ana", "ben", "cai", "dee"];
    let dirs: Vec<TempDir> = (0..4).map(|_| TempDir::new()).collect::<Result<_, _>>()?;
    // The room exists before the nodes run: created by ana, joined by invite by the others.
    let room = command(lab.host(0), &dirs[0], "create", &["room", "create", "camp"])?;
    let invite = room[0]["invite"].as_str().context("no invite")?.to_string();
    let room_id = format!("room:{}", room[0]["id"].as_str().context("no room id")?);
    for (host, dir) in lab.hosts().iter().zip(&dirs).skip(1) {
        command(host, dir, "join", &["room", "join", &invite])?;
    }
    // Two partitions: {ana, ben} and {cai, dee}.
    for (i, j) in [(0, 2), (1, 3)] {
        lab.block(i, &[2, 3])?;
        lab.block(j, &[0, 1])?;
    }
    let mut nodes = Vec::new();
    for (i, name) in names.iter().enumerate() {
        nodes.push(MeshdropProcess::spawn_in(
            Some(lab.host(i)),
            dirs[i].path(),
            name,
            &[],
        )?);
    }
    let ids: Vec<String> = nodes
        .iter_mut()
        .map(|n| n.peer_id(STEP))
        .collect::<Result<_>>()?;
    nodes[0].wait_peer_event("peer_connected", &ids[1], STEP)?;
    nodes[2].wait_peer_event("peer_connected", &ids[3], STEP)?;

    // Each partition chats: every line is seen by the partition neighbour before the next one.
    let mut sent: Vec<String> = Vec::new();
    for round in 0..2 {
        for i in 0..4 {
            let text = format!("{} says {round}", names[i]);
            let out = command(lab.host(i), &dirs[i], "msg", &["msg", &room_id, &text])?;
            let id = out[0]["id"].as_str().context("no message id")?.to_string();
            nodes[i ^ 1].wait_for(|v| is_message_event(v, "message_received", &id), STEP)?;
            sent.push(id);
        }
    }
    // Heal: the partitions can reach each other again, and ben meets cai.
    for i in 0..4 {
        lab.unblock(i)?;
    }
    let cai_addr = format!("/ip4/{}/tcp/", lab.host(2).addr());
    let listening = nodes[2].wait_for(|v| v["event"] == "listening", STEP)?;
    let addr = listening["addrs"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .find(|a| a.starts_with(&cai_addr))
        })
        .context("cai has no LAN TCP address")?
        .to_string();
    command(
        lab.host(1),
        &dirs[1],
        "connect",
        &["connect", &format!("{addr}/p2p/{}", ids[2])],
    )?;

    // Every node gets every line it did not write (the k-th line was written by node k % 4).
    for (i, node) in nodes.iter_mut().enumerate() {
        for (k, id) in sent.iter().enumerate() {
            if k % 4 != i {
                node.wait_for(|v| is_message_event(v, "message_received", id), STEP)
                    .with_context(|| format!("{} waiting for {id}", names[i]))?;
            }
        }
    }
    let mut orders = Vec::new();
    for i in 0..4 {
        let inbox = command(lab.host(i), &dirs[i], "inbox", &["inbox"])?;
        let order: Vec<String> = inbox
            .iter()
            .filter_map(|m| m["id"].as_str().map(String::from))
            .collect();
        let mut unique = order.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            sent.len(),
            "{}: every message once: {order:?}",
            names[i]
        );
        assert_eq!(order.len(), sent.len(), "{}: no duplicates", names[i]);
        orders.push(order);
    }
    for (i, order) in orders.iter().enumerate() {
        assert_eq!(
            order, &orders[0],
            "{} orders differently from ana",
            names[i]
        );
    }
    for node in &mut nodes {
        node.terminate(STEP)?;
    }
    Ok(())
}
