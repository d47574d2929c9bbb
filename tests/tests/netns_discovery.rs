//! Discovery across devices: real `meshdrop run --json` processes, each in its own network namespace
//! on a private bridge (see `meshdrop_tests::netns`), finding each other with mDNS and connecting.
//!
//! Needs root and `ip netns` (fails loudly otherwise), the `meshdrop` binary (`cargo build -p
//! meshdrop`, or `MESHDROP_BIN`) and, for the interop test, `python3` with the `zeroconf` package.
//! No test sleeps to synchronise: every step waits for an event, with a timeout.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use meshdrop_tests::netns::{Host, Lab};
use meshdrop_tests::process::{JsonProcess, MeshdropProcess};
use serde_json::Value;
use tempfile::TempDir;

/// Upper bound for one discovery/connection step. The goal is about a second; this only keeps a
/// broken build from hanging the suite.
const STEP: Duration = Duration::from_secs(20);

/// Starts a node named `name` in `host` with data dir `dir`.
fn start_node(host: &Host, dir: &TempDir, name: &str) -> Result<MeshdropProcess> {
    MeshdropProcess::spawn_in(Some(host), dir.path(), name, &[])
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str> {
    v[key]
        .as_str()
        .with_context(|| format!("event has no string `{key}`: {v}"))
}

fn addrs(v: &Value) -> Vec<String> {
    v["addrs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The port of the first `listening` address of `transport` ("tcp" or "quic") on IPv4 address `ip`
/// (any IPv4 address when `None`).
fn listen_port(listening: &Value, ip: Option<&str>, transport: &str) -> Option<String> {
    addrs(listening).into_iter().find_map(|a| {
        let parts: Vec<&str> = a.split('/').collect();
        // "/ip4/10.1.0.1/tcp/4567" or "/ip4/10.1.0.1/udp/4567/quic-v1"
        if parts.get(1) != Some(&"ip4") || ip.is_some_and(|ip| parts.get(2) != Some(&ip)) {
            return None;
        }
        match (transport, parts.get(3), parts.get(5)) {
            ("tcp", Some(&"tcp"), _) => parts.get(4).map(|p| p.to_string()),
            ("quic", Some(&"udp"), Some(q)) if q.starts_with("quic") => {
                parts.get(4).map(|p| p.to_string())
            }
            _ => None,
        }
    })
}

/// Alice and Bob, two nodes on one LAN (two namespaces of one lab), each already listening.
struct TwoNodes {
    // Field order is drop order: processes first (printing their logs on panic), then their data
    // dirs, then the lab that kills anything left and deletes the namespaces.
    alice: MeshdropProcess,
    bob: MeshdropProcess,
    alice_id: String,
    bob_id: String,
    _dirs: (TempDir, TempDir),
    lab: Lab,
}

impl TwoNodes {
    fn start() -> Result<Self> {
        let lab = Lab::new(2)?;
        let dirs = (TempDir::new()?, TempDir::new()?);
        let mut alice = start_node(lab.host(0), &dirs.0, "alice")?;
        let mut bob = start_node(lab.host(1), &dirs.1, "bob")?;
        let alice_id = alice.peer_id(STEP)?;
        let bob_id = bob.peer_id(STEP)?;
        ensure!(
            alice_id != bob_id,
            "two data dirs gave one peer id {alice_id}"
        );
        Ok(Self {
            alice,
            bob,
            alice_id,
            bob_id,
            _dirs: dirs,
            lab,
        })
    }

    /// Waits until both sides report `peer_connected` for the other; returns (alice's, bob's) event.
    fn wait_connected(&mut self) -> Result<(Value, Value)> {
        let a = self
            .alice
            .wait_peer_event("peer_connected", &self.bob_id, STEP)?;
        let b = self
            .bob
            .wait_peer_event("peer_connected", &self.alice_id, STEP)?;
        Ok((a, b))
    }
}

#[test]
fn two_devices_on_one_wifi_find_and_connect_to_each_other() -> Result<()> {
    let mut t = TwoNodes::start()?;
    let alice_ip = t.lab.host(0).addr().to_string();
    let bob_ip = t.lab.host(1).addr().to_string();

    // mDNS: each sees the other with its name and an address on the LAN.
    let a_sees_b = t
        .alice
        .wait_peer_event("peer_discovered", &t.bob_id, STEP)?;
    let b_sees_a = t
        .bob
        .wait_peer_event("peer_discovered", &t.alice_id, STEP)?;
    assert_eq!(a_sees_b["name"], "bob", "{a_sees_b}");
    assert_eq!(b_sees_a["name"], "alice", "{b_sees_a}");
    assert!(
        addrs(&a_sees_b)
            .iter()
            .any(|a| a.starts_with(&format!("/ip4/{bob_ip}/"))),
        "alice discovered bob without his LAN address {bob_ip}: {a_sees_b}"
    );
    assert!(
        addrs(&b_sees_a)
            .iter()
            .any(|a| a.starts_with(&format!("/ip4/{alice_ip}/"))),
        "bob discovered alice without her LAN address {alice_ip}: {b_sees_a}"
    );

    // Connected on both sides, over the LAN, with the same code shown to both people.
    let (a_conn, b_conn) = t.wait_connected()?;
    for ev in [&a_conn, &b_conn] {
        let transport = str_field(ev, "transport")?;
        assert!(
            transport == "tcp" || transport == "quic",
            "unexpected transport: {ev}"
        );
        let addr = str_field(ev, "addr")?;
        assert!(
            addr.contains(&alice_ip) || addr.contains(&bob_ip),
            "connection not over the lab LAN: {ev}"
        );
    }
    let code_a = str_field(&a_conn, "verification_code")?;
    let code_b = str_field(&b_conn, "verification_code")?;
    assert!(
        !code_a.trim().is_empty(),
        "empty verification code: {a_conn}"
    );
    assert_eq!(
        code_a, code_b,
        "alice and bob would be shown different verification codes"
    );

    // Identify: each learns the other's device name and protocol.
    let a_id_b = t
        .alice
        .wait_peer_event("peer_identified", &t.bob_id, STEP)?;
    let b_id_a = t
        .bob
        .wait_peer_event("peer_identified", &t.alice_id, STEP)?;
    assert_eq!(a_id_b["name"], "bob", "{a_id_b}");
    assert_eq!(b_id_a["name"], "alice", "{b_id_a}");
    assert_eq!(a_id_b["protocol"], "/meshdrop/1", "{a_id_b}");
    assert_eq!(b_id_a["protocol"], "/meshdrop/1", "{b_id_a}");

    // Each node listens on its LAN address with both transports, not only on loopback.
    let alice_listening = t.alice.wait_for(|v| v["event"] == "listening", STEP)?;
    assert_eq!(alice_listening["name"], "alice");
    for transport in ["tcp", "quic"] {
        assert!(
            listen_port(&alice_listening, Some(&alice_ip), transport).is_some(),
            "alice does not listen on {transport} at {alice_ip}: {alice_listening}"
        );
    }

    // Both stop cleanly.
    for node in [&mut t.alice, &mut t.bob] {
        let status = node.terminate(Duration::from_secs(10))?;
        assert!(status.success(), "{} exited with {status}", node.name());
        node.wait_for(|v| v["event"] == "stopped", Duration::ZERO)?;
    }
    Ok(())
}

#[test]
fn a_device_that_is_switched_off_disappears_from_the_others_list() -> Result<()> {
    let mut t = TwoNodes::start()?;
    t.wait_connected()?;
    t.alice
        .wait_peer_event("peer_discovered", &t.bob_id, STEP)?;

    let status = t.bob.terminate(Duration::from_secs(10))?;
    assert!(status.success(), "bob exited with {status} on SIGTERM");
    t.bob
        .wait_for(|v| v["event"] == "stopped", Duration::ZERO)
        .context("bob printed no `stopped` event before exiting")?;

    let lost = t.alice.wait_peer_event("peer_lost", &t.bob_id, STEP)?;
    assert_eq!(lost["name"], "bob", "{lost}");
    t.alice
        .wait_peer_event("peer_disconnected", &t.bob_id, STEP)?;

    // Alice itself is unaffected and still stops cleanly.
    let status = t.alice.terminate(Duration::from_secs(10))?;
    assert!(status.success(), "alice exited with {status}");
    Ok(())
}

/// Path of the python-zeroconf browser script.
fn browse_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py/browse_meshdrop.py")
}

#[test]
fn a_standard_zeroconf_browser_sees_the_node_and_its_peer_id() -> Result<()> {
    let lab = Lab::new(2)?;
    let dir = TempDir::new()?;
    let logs = TempDir::new()?;
    let mut alice = start_node(lab.host(0), &dir, "alice")?;
    let alice_id = alice.peer_id(STEP)?;
    let listening = alice.wait_for(|v| v["event"] == "listening", STEP)?;
    let alice_ip = lab.host(0).addr().to_string();

    // python-zeroconf, a DNS-SD implementation we did not write, browsing from another device.
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut cmd: Command = lab.host(1).exec(python);
    cmd.arg(browse_script())
        .args(["--timeout", "20", "--expect-peer", &alice_id]);
    let mut browser = JsonProcess::spawn(cmd, "zeroconf-browser", logs.path())?;
    let service = browser.wait_for(
        |v| v["event"] == "service" && v["properties"]["peer"] == alice_id.as_str(),
        Duration::from_secs(25),
    )?;
    let status = browser.wait_exit(Duration::from_secs(10))?;
    assert!(status.success(), "browser exited with {status}");

    let props = &service["properties"];
    assert_eq!(props["name"], "alice", "TXT name: {service}");
    assert_eq!(props["proto"], "1", "TXT proto: {service}");
    let service_addrs: Vec<&str> = service["addresses"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        service_addrs.contains(&alice_ip.as_str()),
        "service does not resolve to alice's LAN address {alice_ip}: {service}"
    );
    // The TXT ports are the ones the node listens on (TCP on its LAN address; QUIC's one IPv4
    // socket serves every interface).
    for (transport, ip) in [("tcp", Some(alice_ip.as_str())), ("quic", None)] {
        let port = listen_port(&listening, ip, transport)
            .with_context(|| format!("alice does not listen on {transport}: {listening}"))?;
        assert_eq!(
            props[transport].as_str(),
            Some(port.as_str()),
            "TXT {transport} port vs listening addrs {listening}: {service}"
        );
    }
    Ok(())
}

#[test]
fn a_device_joining_right_after_a_bonjour_browser_looked_still_discovers_the_node() -> Result<()> {
    // mDNS responders may not multicast the same record twice within a second (RFC 6762 §6), so a
    // query that arrives just after another device's query must still lead to a resolved, dialable
    // advert — through the answer to the first query, or a later one.
    let lab = Lab::new(2)?;
    let dir_a = TempDir::new()?;
    let dir_b = TempDir::new()?;
    let logs = TempDir::new()?;
    let mut alice = start_node(lab.host(0), &dir_a, "alice")?;
    let alice_id = alice.peer_id(STEP)?;

    // The browser runs twice: the second time alice is past her start-up announcements, as a
    // device that has been on the network for a while.
    for round in 0..2 {
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let mut cmd: Command = lab.host(1).exec(python);
        cmd.arg(browse_script())
            .args(["--timeout", "20", "--expect-peer", &alice_id]);
        let mut browser =
            JsonProcess::spawn(cmd, &format!("zeroconf-browser-{round}"), logs.path())?;
        browser.wait_for(
            |v| v["event"] == "service" && v["properties"]["peer"] == alice_id.as_str(),
            Duration::from_secs(25),
        )?;
        browser.wait_exit(Duration::from_secs(10))?;
    }

    // Bob switches on right after, on the same device the browser ran on.
    let mut bob = start_node(lab.host(1), &dir_b, "bob")?;
    let found = bob.wait_peer_event("peer_discovered", &alice_id, STEP)?;
    let alice_ip = lab.host(0).addr().to_string();
    assert!(
        addrs(&found)
            .iter()
            .any(|a| a.starts_with(&format!("/ip4/{alice_ip}/"))),
        "bob discovered alice without her LAN address {alice_ip}: {found}"
    );
    Ok(())
}

#[test]
fn two_devices_switched_on_at_the_same_moment_both_discover_the_one_already_there() -> Result<()> {
    let lab = Lab::new(3)?;
    let dirs = [TempDir::new()?, TempDir::new()?, TempDir::new()?];
    let mut alice = start_node(lab.host(0), &dirs[0], "alice")?;
    let alice_id = alice.peer_id(STEP)?;
    let mut bob = start_node(lab.host(1), &dirs[1], "bob")?;
    let mut carol = start_node(lab.host(2), &dirs[2], "carol")?;
    for node in [&mut bob, &mut carol] {
        let found = node.wait_peer_event("peer_discovered", &alice_id, STEP)?;
        assert_eq!(found["name"], "alice", "{found}");
        node.wait_peer_event("peer_connected", &alice_id, STEP)?;
    }
    let bob_id = bob.peer_id(STEP)?;
    let carol_id = carol.peer_id(STEP)?;
    for id in [&bob_id, &carol_id] {
        alice.wait_peer_event("peer_discovered", id, STEP)?;
        alice.wait_peer_event("peer_connected", id, STEP)?;
    }
    Ok(())
}
