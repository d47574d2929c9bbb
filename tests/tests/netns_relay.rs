//! Friends on different networks: two devices, each behind its own NAT router, and a relay on the
//! public network between them (see `meshdrop_tests::nat`). With nothing but a ticket, a 64 MiB
//! share crosses and verifies; then the two nodes exchange messages both ways. With routers that
//! keep ports, hole punching replaces the relayed connection by a direct one; with routers that
//! pick a random port per flow, it fails and everything still goes through the relay. The relay's
//! interface counters tell which path carried the bytes. A relay full to its limits refuses a
//! reservation with a reason.
//!
//! Needs root, iproute2 and nftables, and the `meshdrop` binary (`cargo build -p meshdrop`).
//! No sleeps: every step waits for an event, with a timeout.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use meshdrop_tests::nat::{NatKind, NatLab};
use meshdrop_tests::netns::Host;
use meshdrop_tests::process::MeshdropProcess;
use serde_json::Value;
use tempfile::TempDir;

const STEP: Duration = Duration::from_secs(30);
const SIZE: usize = 64 << 20;
const MIB: f64 = 1024.0 * 1024.0;
/// How long DCUtR may take to give up (three attempts, each a dial that times out).
const HOLE_PUNCH_GIVE_UP: Duration = Duration::from_secs(120);
/// The relay's uplink: a small server, slower than the path between the homes.
const RELAY_RATE: &str = "80mbit";

/// Starts `meshdrop relay` on the lab's public host; returns it and its TCP address.
fn start_relay(lab: &NatLab, dir: &Path, extra: &[&str]) -> Result<(MeshdropProcess, String)> {
    let bind = lab.relay().addr().to_string();
    let mut args = vec!["--json", "--bind", &bind, "relay", "--allow-private"];
    args.extend_from_slice(extra);
    let mut relay = MeshdropProcess::spawn_raw(Some(lab.relay()), dir, "relay", &args)?;
    let ready = relay.wait_for(|v| v["event"] == "relay_listening", STEP)?;
    let addr = ready["addrs"]
        .as_array()
        .context("relay_listening without addrs")?
        .iter()
        .filter_map(Value::as_str)
        .find(|a| a.contains("/tcp/") && a.contains("/p2p/"))
        .context("no TCP address with /p2p/ among the relay's")?
        .to_string();
    Ok((relay, addr))
}

/// `meshdrop ARGS` on a home device's own node, on its own address, holding a slot on `relay`.
fn spawn_on(
    host: &Host,
    dir: &Path,
    label: &str,
    relay: &str,
    args: &[&str],
) -> Result<MeshdropProcess> {
    let bind = host.addr().to_string();
    let mut all = vec!["--json", "--no-mdns", "--bind", &bind, "--relay", relay];
    all.extend_from_slice(args);
    MeshdropProcess::spawn_raw(Some(host), dir, label, &all)
}

/// A NAT lab with a relay on the public network (its uplink slower than the path between the
/// homes) and a data dir for each home device.
struct World {
    lab: NatLab,
    relay: MeshdropProcess,
    relay_addr: String,
    dirs: [TempDir; 2],
    _relay_dir: TempDir,
}

impl Crossing {
    fn report(&self, nats: &str) {
        let punch = if self.upgraded { "succeeded" } else { "failed" };
        eprintln!(
            "{nats}: hole punching {punch}, {:.1} MiB of 64 went through the relay",
            self.relay_mib
        );
    }
}

impl World {
    fn new(kind: NatKind) -> Result<Self> {
        let lab = NatLab::new(kind)?;
        lab.set_relay_rate(RELAY_RATE)?;
        let relay_dir = TempDir::new()?;
        let (relay, relay_addr) = start_relay(&lab, relay_dir.path(), &[])?;
        Ok(Self {
            lab,
            relay,
            relay_addr,
            dirs: [TempDir::new()?, TempDir::new()?],
            _relay_dir: relay_dir,
        })
    }
}

/// Which path carried a transfer and what the receiver saw of it.
struct Crossing {
    relay_mib: f64,
    upgraded: bool,
    /// The sharing node, still running (it tried the hole punching: DCUtR's initiator).
    sharer: MeshdropProcess,
}

/// Alice shares 64 MiB from behind her NAT; Bob, behind his, downloads it with the ticket alone.
fn share_across(lab: &NatLab, relay: &str, dirs: &[TempDir; 2]) -> Result<Crossing> {
    let file = dirs[0].path().join("trip.mp4");
    meshdrop_tests::random_file(&file, SIZE, 7);
    let file_arg = file.to_string_lossy().into_owned();
    let mut alice = spawn_on(
        lab.home(0),
        dirs[0].path(),
        "alice-share",
        relay,
        &["share", &file_arg],
    )?;
    let ticket = alice.wait_for(|v| v["event"] == "ticket", STEP)?["ticket"]
        .as_str()
        .context("ticket event without ticket")?
        .to_string();
    // Alice's direct addresses are private to her home; the ticket also carries the relayed one.
    let parsed: meshdrop_core::Ticket = ticket.parse()?;
    ensure!(
        parsed.providers[0]
            .addrs
            .iter()
            .any(|a| a.to_string().contains("/p2p-circuit")),
        "the ticket has no relayed address: {:?}",
        parsed.providers[0].addrs
    );

    let before = lab.relay_rx_bytes()?;
    let out = dirs[1].path().join("downloads");
    let mut bob =
        MeshdropProcess::spawn_get(lab.home(1), dirs[1].path(), "bob-get", &ticket, &out, &[])?;
    let status = bob.wait_exit(Duration::from_secs(120))?;
    ensure!(status.success(), "get failed: {}", bob.diagnostics());
    let relayed = (lab.relay_rx_bytes()? - before) as f64 / MIB;
    let events: Vec<Value> = bob.events().iter().map(|e| e.value.clone()).collect();
    ensure!(
        std::fs::read(out.join("trip.mp4"))? == std::fs::read(&file)?,
        "bytes differ"
    );
    ensure!(
        events
            .iter()
            .any(|v| v["event"] == "peer_connected" && v["transport"] == "relay"),
        "bob never connected through the relay: {events:?}"
    );
    Ok(Crossing {
        relay_mib: relayed,
        upgraded: events.iter().any(|v| v["event"] == "connection_upgraded"),
        sharer: alice,
    })
}

/// Both devices run; Alice connects to Bob's relayed address; a message goes each way, once.
fn talk_across(lab: &NatLab, relay: &str, dirs: &[TempDir; 2]) -> Result<()> {
    let mut alice = spawn_on(
        lab.home(0),
        dirs[0].path(),
        "alice",
        relay,
        &["--name", "alice", "run"],
    )?;
    let mut bob = spawn_on(
        lab.home(1),
        dirs[1].path(),
        "bob",
        relay,
        &["--name", "bob", "run"],
    )?;
    let alice_id = alice.peer_id(STEP)?;
    let bob_id = bob.peer_id(STEP)?;
    let reserved = bob.wait_for(|v| v["event"] == "relay_reserved", STEP)?;
    // Bob's address through the relay (it ends in his peer id), as he would pass it to a friend.
    let bob_addr = reserved["addr"]
        .as_str()
        .context("relay_reserved without addr")?
        .to_string();
    command(
        lab.home(0),
        &dirs[0],
        "alice-connect",
        &["connect", &bob_addr],
    )?;

    let alice_side = (lab.home(0), &dirs[0]);
    let bob_side = (lab.home(1), &dirs[1]);
    message(
        alice_side,
        &mut alice,
        &mut bob,
        &bob_id,
        "hello from alice",
    )?;
    message(bob_side, &mut bob, &mut alice, &alice_id, "hello from bob")?;
    alice.terminate(STEP)?;
    bob.terminate(STEP)?;
    Ok(())
}

/// `from` sends `text` to `to` (through `from`'s control socket): received once, then delivered.
fn message(
    (host, dir): (&Host, &TempDir),
    from: &mut MeshdropProcess,
    to: &mut MeshdropProcess,
    to_id: &str,
    text: &str,
) -> Result<()> {
    let sent = command(host, dir, "msg", &["msg", to_id, text])?;
    let id = sent
        .iter()
        .find(|v| v["event"] == "message_queued")
        .and_then(|v| v["id"].as_str())
        .context("no message_queued")?
        .to_string();
    let got = to.wait_for(
        |v| v["event"] == "message_received" && v["message"]["id"] == id.as_str(),
        STEP,
    )?;
    ensure!(got["message"]["text"] == text, "wrong text: {got}");
    from.wait_for(
        |v| {
            v["event"] == "message_state_changed"
                && v["id"] == id.as_str()
                && v["state"] == "delivered"
        },
        STEP,
    )?;
    let copies = to
        .events()
        .iter()
        .filter(|e| {
            e.value["event"] == "message_received" && e.value["message"]["id"] == id.as_str()
        })
        .count();
    ensure!(copies == 1, "{copies} copies of the message");
    Ok(())
}

/// A one-shot `meshdrop --json ARGS` through the running node's control socket.
fn command(host: &Host, dir: &TempDir, label: &str, args: &[&str]) -> Result<Vec<Value>> {
    MeshdropProcess::run_once(host, dir.path(), label, args, STEP)
}

#[test]
fn behind_port_preserving_nats_friends_meet_through_the_relay_and_go_direct() -> Result<()> {
    let mut w = World::new(NatKind::PortPreserving)?;
    let mut crossing = share_across(&w.lab, &w.relay_addr, &w.dirs)?;
    crossing.report("port-preserving NATs");
    crossing.sharer.terminate(STEP)?;
    assert!(
        crossing.upgraded,
        "no direct connection after hole punching"
    );
    assert!(
        crossing.relay_mib < 32.0,
        "{:.1} MiB went through the relay although a direct path was up",
        crossing.relay_mib
    );
    talk_across(&w.lab, &w.relay_addr, &w.dirs)?;
    w.relay.terminate(STEP)?;
    Ok(())
}

#[test]
fn behind_symmetric_nats_hole_punching_fails_and_the_relay_carries_everything() -> Result<()> {
    let mut w = World::new(NatKind::Symmetric)?;
    let mut crossing = share_across(&w.lab, &w.relay_addr, &w.dirs)?;
    crossing.report("symmetric NATs");
    assert!(
        !crossing.upgraded,
        "a direct connection through symmetric NATs"
    );
    // The sharer tried (DCUtR's initiator) and says it gave up.
    let t = std::time::Instant::now();
    let failed = crossing
        .sharer
        .wait_for(|v| v["event"] == "hole_punch_failed", HOLE_PUNCH_GIVE_UP)?;
    eprintln!(
        "hole punching gave up {:.1} s after the download: {}",
        t.elapsed().as_secs_f64(),
        failed["error"]
    );
    crossing.sharer.terminate(STEP)?;
    assert!(
        crossing.relay_mib >= 64.0,
        "only {:.1} MiB went through the relay",
        crossing.relay_mib
    );
    talk_across(&w.lab, &w.relay_addr, &w.dirs)?;
    w.relay.terminate(STEP)?;
    Ok(())
}

#[test]
fn a_relay_at_its_limit_refuses_a_reservation_and_says_why() -> Result<()> {
    let lab = NatLab::new(NatKind::PortPreserving)?;
    let relay_dir = TempDir::new()?;
    let (mut relay, relay_addr) =
        start_relay(&lab, relay_dir.path(), &["--max-reservations", "1"])?;
    let dirs = [TempDir::new()?, TempDir::new()?];

    let mut alice = spawn_on(lab.home(0), dirs[0].path(), "alice", &relay_addr, &["run"])?;
    alice.wait_for(|v| v["event"] == "relay_reserved", STEP)?;
    let mut bob = spawn_on(lab.home(1), dirs[1].path(), "bob", &relay_addr, &["run"])?;
    let bob_id = bob.peer_id(STEP)?;
    let failed = bob.wait_for(|v| v["event"] == "relay_failed", STEP)?;
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("resource limit exceeded"),
        "unclear reason: {reason}"
    );
    let denied = relay.wait_for(
        |v| v["event"] == "reservation_denied" && v["peer"] == bob_id.as_str(),
        STEP,
    )?;
    assert!(
        denied["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("limits are reached"),
        "{denied}"
    );
    alice.terminate(STEP)?;
    bob.terminate(STEP)?;
    relay.terminate(STEP)?;
    Ok(())
}

#[test]
fn a_download_prefers_a_direct_seeder_to_one_behind_the_relay() -> Result<()> {
    // Alice sits behind a NAT that defeats hole punching; Carol, on the public network, fetched
    // the share from her through the relay and seeds it. Bob's ticket names only Alice: he learns
    // of Carol from Alice (peer exchange), reaches her directly, and takes the bytes from her.
    let mut w = World::new(NatKind::Symmetric)?;
    let carol_dir = TempDir::new()?;
    let file = w.dirs[0].path().join("trip.mp4");
    meshdrop_tests::random_file(&file, SIZE, 11);
    let file_arg = file.to_string_lossy().into_owned();
    let mut alice = spawn_on(
        w.lab.home(0),
        w.dirs[0].path(),
        "alice",
        &w.relay_addr,
        &["share", &file_arg],
    )?;
    let ticket = alice.wait_for(|v| v["event"] == "ticket", STEP)?["ticket"]
        .as_str()
        .context("ticket event without ticket")?
        .to_string();

    let carol_out = carol_dir.path().join("downloads");
    let mut carol = MeshdropProcess::spawn_get(
        w.lab.relay(),
        carol_dir.path(),
        "carol",
        &ticket,
        &carol_out,
        &["--seed"],
    )?;
    let carol_id = carol.peer_id(STEP)?;
    carol.wait_for(
        |v| v["event"] == "transfer_finished",
        Duration::from_secs(120),
    )?;

    let bob_out = w.dirs[1].path().join("downloads");
    let mut bob = MeshdropProcess::spawn_get(
        w.lab.home(1),
        w.dirs[1].path(),
        "bob",
        &ticket,
        &bob_out,
        &[],
    )?;
    let finished = bob.wait_for(
        |v| v["event"] == "transfer_finished",
        Duration::from_secs(120),
    )?;
    ensure!(
        std::fs::read(bob_out.join("trip.mp4"))? == std::fs::read(&file)?,
        "bytes differ"
    );
    let from = |peer: &str| -> u64 {
        finished["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["peer"] == peer)
            .filter_map(|p| p["bytes"].as_u64())
            .sum()
    };
    let alice_id = alice.peer_id(STEP)?;
    let (direct, relayed) = (from(&carol_id), from(&alice_id));
    eprintln!(
        "from Carol (direct): {:.1} MiB, from Alice (relayed): {:.1} MiB",
        direct as f64 / MIB,
        relayed as f64 / MIB
    );
    assert!(
        direct as f64 >= 0.75 * SIZE as f64,
        "only {direct} of {SIZE} bytes came from the direct seeder"
    );
    bob.wait_exit(STEP)?;
    carol.terminate(STEP)?;
    alice.terminate(STEP)?;
    w.relay.terminate(STEP)?;
    Ok(())
}

#[test]
fn autonat_tells_a_device_behind_a_nat_from_one_on_the_public_network() -> Result<()> {
    let lab = NatLab::new(NatKind::PortPreserving)?;
    let relay_dir = TempDir::new()?;
    let (mut relay, relay_addr) = start_relay(&lab, relay_dir.path(), &[])?;
    let dirs = [TempDir::new()?, TempDir::new()?];
    let mut alice = spawn_on(lab.home(0), dirs[0].path(), "alice", &relay_addr, &["run"])?;
    let mut carol = spawn_on(lab.relay(), dirs[1].path(), "carol", &relay_addr, &["run"])?;
    let behind = alice.wait_for(|v| v["event"] == "reachability", Duration::from_secs(90))?;
    assert_eq!(behind["status"], "private", "{behind}");
    let public = carol.wait_for(|v| v["event"] == "reachability", Duration::from_secs(90))?;
    assert_eq!(public["status"], "public", "{public}");
    assert!(
        public["addr"]
            .as_str()
            .is_some_and(|a| a.starts_with(&format!("/ip4/{}/", lab.relay().addr()))),
        "{public}"
    );
    alice.terminate(STEP)?;
    carol.terminate(STEP)?;
    relay.terminate(STEP)?;
    Ok(())
}

#[test]
fn a_device_that_spends_its_byte_budget_on_a_relay_is_cut_off() -> Result<()> {
    // Symmetric NATs: every byte of the download would cross the relay.
    let lab = NatLab::new(NatKind::Symmetric)?;
    lab.set_relay_rate(RELAY_RATE)?;
    let relay_dir = TempDir::new()?;
    let budget = ["--max-device-bytes", "8MiB", "--device-window-secs", "3600"];
    let (mut relay, relay_addr) = start_relay(&lab, relay_dir.path(), &budget)?;
    let dirs = [TempDir::new()?, TempDir::new()?];
    let file = dirs[0].path().join("trip.mp4");
    meshdrop_tests::random_file(&file, SIZE, 9);
    let file_arg = file.to_string_lossy().into_owned();
    let mut alice = spawn_on(
        lab.home(0),
        dirs[0].path(),
        "alice-share",
        &relay_addr,
        &["share", &file_arg],
    )?;
    let ticket = alice.wait_for(|v| v["event"] == "ticket", STEP)?["ticket"]
        .as_str()
        .context("ticket event without ticket")?
        .to_string();
    let before = lab.relay_rx_bytes()?;
    let out = dirs[1].path().join("downloads");
    let mut bob =
        MeshdropProcess::spawn_get(lab.home(1), dirs[1].path(), "bob-get", &ticket, &out, &[])?;
    let cut = relay.wait_for(|v| v["event"] == "device_over_budget", STEP)?;
    let carried = (lab.relay_rx_bytes()? - before) as f64 / MIB;
    eprintln!("the relay cut off {} after {carried:.1} MiB", cut["peer"]);
    bob.kill9()?;
    alice.terminate(STEP)?;
    relay.terminate(STEP)?;
    assert!(
        carried < 24.0,
        "the relay carried {carried:.1} MiB with a budget of 8 MiB a device"
    );
    assert!(
        std::fs::metadata(out.join("trip.mp4")).is_err(),
        "the whole download went through"
    );
    Ok(())
}
