//! Self-tests of the network-namespace lab the multi-process scenarios run on: the hosts form one
//! LAN that multicast crosses, nothing of it appears in the root namespace, the impairments (rate,
//! loss, partition) do what they say, and a lab leaves nothing behind.
//!
//! Needs root, iproute2, nftables and python3 (probes in `tests/py/nettool.py`).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use meshdrop_tests::netns::{self, Host, Lab};
use meshdrop_tests::process::JsonProcess;
use serde_json::Value;
use tempfile::TempDir;

const STEP: Duration = Duration::from_secs(20);

fn nettool(host: &Host, logs: &TempDir, label: &str, args: &[&str]) -> Result<JsonProcess> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py/nettool.py");
    let mut cmd = host.exec("python3");
    cmd.arg(script).args(args);
    JsonProcess::spawn(cmd, label, logs.path())
}

/// Starts a UDP echo server on `host` and waits until it is ready.
fn echo_server(host: &Host, logs: &TempDir) -> Result<JsonProcess> {
    let mut p = nettool(host, logs, "echo", &["udp-echo", "--port", "7777"])?;
    p.wait_for(|v| v["event"] == "ready", STEP)?;
    Ok(p)
}

/// Sends `count` UDP probes from `from` to `to` and returns how many came back.
fn probe(from: &Host, to: &Host, logs: &TempDir, count: u32) -> Result<u64> {
    let to_addr = to.addr().to_string();
    let count = count.to_string();
    let mut p = nettool(
        from,
        logs,
        "probe",
        &[
            "udp-probe",
            "--to",
            &to_addr,
            "--port",
            "7777",
            "--count",
            &count,
        ],
    )?;
    let r = p.wait_for(|v| v["event"] == "result", STEP)?;
    p.wait_exit(STEP)?;
    r["received"].as_u64().context("result without received")
}

fn namespaces() -> Result<String> {
    let out = Command::new("ip").args(["netns", "list"]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn hosts_of_a_lab_share_a_lan_that_is_invisible_from_the_root_namespace() -> Result<()> {
    let lab = Lab::new(2)?;
    let logs = TempDir::new()?;
    let _echo = echo_server(lab.host(1), &logs)?;
    assert_eq!(probe(lab.host(0), lab.host(1), &logs, 5)?, 5);

    // The root namespace has none of the lab's interfaces: they were created inside the namespaces.
    let root_links = Command::new("ip").args(["-d", "link", "show"]).output()?;
    let root_links = String::from_utf8_lossy(&root_links.stdout);
    assert!(
        !root_links.contains(lab.prefix()),
        "root namespace has a link into the lab:\n{root_links}"
    );
    // Host addresses exist only inside the hosts.
    let root_addrs = Command::new("ip").args(["-4", "addr", "show"]).output()?;
    let root_addrs = String::from_utf8_lossy(&root_addrs.stdout);
    assert!(
        !root_addrs.contains(&lab.host(0).addr().to_string()),
        "{root_addrs}"
    );
    // Hosts hang off the bridge in the switch namespace.
    let sw = Command::new("ip")
        .args(["-n", lab.switch_ns(), "link", "show", "master", "br0"])
        .output()?;
    let sw = String::from_utf8_lossy(&sw.stdout);
    assert!(sw.contains("p0@") && sw.contains("p1@"), "{sw}");
    Ok(())
}

#[test]
fn multicast_from_one_host_reaches_every_other_host() -> Result<()> {
    let lab = Lab::new(3)?;
    let logs = TempDir::new()?;
    let listen = ["mcast-listen", "--group", "224.0.0.251", "--port", "5399"];
    let mut l1 = nettool(lab.host(1), &logs, "listen1", &listen)?;
    let mut l2 = nettool(lab.host(2), &logs, "listen2", &listen)?;
    l1.wait_for(|v| v["event"] == "ready", STEP)?;
    l2.wait_for(|v| v["event"] == "ready", STEP)?;
    let iface = lab.host(0).addr().to_string();
    let mut s = nettool(
        lab.host(0),
        &logs,
        "send",
        &[
            "mcast-send",
            "--group",
            "224.0.0.251",
            "--port",
            "5399",
            "--iface",
            &iface,
        ],
    )?;
    s.wait_exit(STEP)?;
    for l in [&mut l1, &mut l2] {
        let got = l.wait_for(|v| v["event"] == "recv", STEP)?;
        assert_eq!(got["from"], Value::from(iface.clone()), "{got}");
    }
    Ok(())
}

#[test]
fn a_host_whose_link_goes_down_is_unreachable_until_it_comes_back() -> Result<()> {
    let lab = Lab::new(2)?;
    let logs = TempDir::new()?;
    let _echo = echo_server(lab.host(1), &logs)?;
    assert_eq!(probe(lab.host(0), lab.host(1), &logs, 3)?, 3);
    lab.link_down(1)?;
    assert_eq!(probe(lab.host(0), lab.host(1), &logs, 3)?, 0);
    lab.link_up(1)?;
    assert_eq!(probe(lab.host(0), lab.host(1), &logs, 3)?, 3);
    Ok(())
}

#[test]
fn incoming_loss_drops_packets_and_clearing_it_restores_them() -> Result<()> {
    let lab = Lab::new(2)?;
    let logs = TempDir::new()?;
    let _echo = echo_server(lab.host(1), &logs)?;
    lab.drop_incoming(1, 100)?;
    assert_eq!(probe(lab.host(0), lab.host(1), &logs, 5)?, 0);
    // Replacing the rule works too (no duplicate tables).
    lab.drop_incoming(1, 0)?;
    assert_eq!(probe(lab.host(0), lab.host(1), &logs, 5)?, 5);
    lab.drop_incoming(1, 100)?;
    lab.clear_drop(1)?;
    lab.clear_drop(1)?;
    assert_eq!(probe(lab.host(0), lab.host(1), &logs, 5)?, 5);
    Ok(())
}

#[test]
fn a_rate_limit_slows_a_transfer_to_that_rate() -> Result<()> {
    let lab = Lab::new(2)?;
    let logs = TempDir::new()?;
    // 400 KB at 2 Mbit/s takes ~1.6 s; unlimited it takes milliseconds.
    let bytes = 400_000u64;
    let transfer = |label: &str| -> Result<u64> {
        let mut sink = nettool(
            lab.host(1),
            &logs,
            &format!("sink-{label}"),
            &["tcp-sink", "--port", "7778"],
        )?;
        sink.wait_for(|v| v["event"] == "ready", STEP)?;
        let to = lab.host(1).addr().to_string();
        let n = bytes.to_string();
        let mut send = nettool(
            lab.host(0),
            &logs,
            &format!("send-{label}"),
            &["tcp-send", "--to", &to, "--port", "7778", "--bytes", &n],
        )?;
        let got = sink.wait_for(|v| v["event"] == "received", STEP)?;
        send.wait_exit(STEP)?;
        assert_eq!(got["bytes"].as_u64(), Some(bytes), "{got}");
        got["ms"].as_u64().context("ms")
    };
    lab.set_rate(0, "2mbit")?;
    let limited = transfer("limited")?;
    assert!(limited >= 1000, "2 mbit/s transfer took only {limited} ms");
    lab.clear_rate(0)?;
    let free = transfer("free")?;
    assert!(
        free < limited / 2,
        "unlimited {free} ms vs limited {limited} ms"
    );
    Ok(())
}

#[test]
fn dropping_a_lab_kills_its_processes_and_deletes_its_namespaces() -> Result<()> {
    let lab = Lab::new(2)?;
    let names: Vec<String> = lab
        .hosts()
        .iter()
        .map(|h| h.ns().to_owned())
        .chain([lab.switch_ns().to_owned()])
        .collect();
    let mut child = lab.host(1).exec("sleep").arg("600").spawn()?;
    // Wait (bounded) until `ip netns exec` has entered the namespace and exec'd sleep.
    let deadline = std::time::Instant::now() + STEP;
    while !lab.pids(1).contains(&child.id()) {
        assert!(
            std::time::Instant::now() < deadline,
            "sleep never entered the namespace"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(lab);
    let status = child.wait()?;
    assert!(!status.success(), "sleep was not killed: {status}");
    let left = namespaces()?;
    for ns in &names {
        assert!(
            !left.split_whitespace().any(|w| w == ns),
            "{ns} survived: {left}"
        );
    }
    Ok(())
}

#[test]
fn namespaces_left_by_a_crashed_run_are_removed() -> Result<()> {
    // A pid that is certainly dead: a child we started and reaped.
    let mut c = Command::new("true").spawn()?;
    c.wait()?;
    let dead = c.id();
    let stale = format!("{}{dead}-0-h0", netns::NS_PREFIX);
    let st = Command::new("ip").args(["netns", "add", &stale]).status()?;
    assert!(st.success());
    netns::cleanup_stale()?;
    let left = namespaces()?;
    assert!(
        !left.split_whitespace().any(|w| w == stale),
        "{stale} survived: {left}"
    );
    Ok(())
}
