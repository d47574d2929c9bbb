//! A link as the only path: two `meshdrop` processes in two network namespaces that share no link
//! at all (each has only its loopback) exchange a 64 MiB file and a message through a Unix socket
//! (`--link-listen` / `--link-dial`), as two phones would through Wi-Fi Aware or a Bluetooth
//! channel bridged by `socat`. Bytes verified, the message delivered exactly once, from the CLI.
//!
//! Needs root and iproute2, and the `meshdrop` binary (`cargo build -p meshdrop`). No sleeps:
//! every step waits for an event or an exit, with a timeout.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use meshdrop_tests::netns::Lab;
use meshdrop_tests::process::MeshdropProcess;
use meshdrop_tests::random_file;
use serde_json::Value;
use tempfile::TempDir;

const STEP: Duration = Duration::from_secs(30);
const TRANSFER: Duration = Duration::from_secs(240);

fn is_received(v: &Value, id: &str) -> bool {
    v["event"] == "message_received" && v["message"]["id"] == id
}

#[test]
fn two_devices_with_no_network_between_them_share_a_file_and_a_message_over_a_unix_socket_link()
-> Result<()> {
    let lab = Lab::isolated(2)?;
    let (ana_dir, ben_dir, files, out, sockets) = (
        TempDir::new()?,
        TempDir::new()?,
        TempDir::new()?,
        TempDir::new()?,
        TempDir::new()?,
    );
    let endpoint = format!("unix:{}", sockets.path().join("link.sock").display());
    let video = files.path().join("trip.mp4");
    random_file(&video, 64 * 1024 * 1024, 64);

    let mut ana = MeshdropProcess::spawn_in(
        Some(lab.host(0)),
        ana_dir.path(),
        "ana",
        &[
            "--bind",
            "127.0.0.1",
            "--no-mdns",
            "--link-listen",
            &endpoint,
        ],
    )?;
    let ana_id = ana.peer_id(STEP)?;
    let shared = MeshdropProcess::run_once(
        lab.host(0),
        ana_dir.path(),
        "ana-share",
        &["share", &video.to_string_lossy()],
        STEP,
    )?;
    let ticket = shared
        .iter()
        .find_map(|v| v["ticket"].as_str())
        .context("share printed no ticket")?
        .to_string();

    // Ben's namespace reaches nothing but its own loopback: the link is the only way to ana.
    let out_dir = out.path().to_string_lossy().to_string();
    let mut get = MeshdropProcess::spawn_raw(
        Some(lab.host(1)),
        ben_dir.path(),
        "ben-get",
        &[
            "--json",
            "--no-mdns",
            "--bind",
            "127.0.0.1",
            "--link-dial",
            &endpoint,
            "get",
            &ticket,
            "--out",
            &out_dir,
        ],
    )?;
    let status = get.wait_exit(TRANSFER)?;
    ensure!(status.success(), "get failed: {}", get.stderr());
    let connected = get
        .events()
        .iter()
        .find(|e| e.value["event"] == "peer_connected" && e.value["peer"] == ana_id.as_str())
        .map(|e| e.value.clone())
        .context("ben never connected to ana")?;
    assert_eq!(connected["transport"], "link", "{connected}");
    assert_eq!(connected["medium"], "unix", "{connected}");
    let got = std::fs::read(out.path().join("trip.mp4"))?;
    assert!(got == std::fs::read(&video)?, "64 MiB equal, byte for byte");

    let text = "meet at the north gate at noon";
    let mut msg = MeshdropProcess::spawn_raw(
        Some(lab.host(1)),
        ben_dir.path(),
        "ben-msg",
        &[
            "--json",
            "--no-mdns",
            "--bind",
            "127.0.0.1",
            "--link-dial",
            &endpoint,
            "msg",
            &ana_id,
            text,
        ],
    )?;
    let queued = msg.wait_for(|v| v["event"] == "message_queued", STEP)?;
    let id = queued["id"].as_str().context("no message id")?.to_string();
    let received = ana.wait_for(|v| is_received(v, &id), STEP)?;
    assert_eq!(received["message"]["text"], text);
    let status = msg.wait_exit(STEP)?;
    ensure!(status.success(), "msg failed: {}", msg.stderr());
    ana.terminate(STEP)?;
    let copies = ana
        .events()
        .iter()
        .filter(|e| is_received(&e.value, &id))
        .count();
    assert_eq!(copies, 1, "delivered exactly once");
    Ok(())
}
