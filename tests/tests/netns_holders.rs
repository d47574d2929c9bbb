//! Files travel like messages, between real `meshdrop run` processes in three network namespaces:
//! a line A – B – C where A and C share no link (nftables drops everything between them). A posts
//! day-one photos in a room; B, next to A, gets the message and fetches the photos; A's device
//! dies. C, who was away, later meets only B: C gets the room message from B and then every
//! photo, verified, from B, although the attachment's ticket names only A. B and C run their
//! node the whole time: every command goes through the running node. A direct message's video
//! pinned on a carrier (`msg --carry`) reaches a friend the sender never meets.
//!
//! Needs root, iproute2 and nftables, and the `meshdrop` binary (`cargo build -p meshdrop`).
//! No sleeps: every step waits for an event, with a timeout.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use meshdrop_tests::netns::{Host, Lab};
use meshdrop_tests::process::MeshdropProcess;
use meshdrop_tests::random_file;
use serde_json::Value;
use tempfile::TempDir;

const STEP: Duration = Duration::from_secs(30);
const PHOTOS: usize = 12;

/// Runs a one-shot `meshdrop --json ARGS` on `dir` through the node running there.
fn command(host: &Host, dir: &TempDir, label: &str, args: &[&str]) -> Result<Vec<Value>> {
    MeshdropProcess::run_once(host, dir.path(), label, args, STEP)
}

/// The node's LAN TCP address with its peer id, from its `listening` event.
fn dial_addr(node: &mut MeshdropProcess, host: &Host) -> Result<String> {
    let id = node.peer_id(STEP)?;
    let prefix = format!("/ip4/{}/tcp/", host.addr());
    let listening = node.wait_for(|v| v["event"] == "listening", STEP)?;
    let addr = listening["addrs"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .find(|a| a.starts_with(&prefix))
        })
        .context("no LAN TCP address")?;
    Ok(format!("{addr}/p2p/{id}"))
}

/// Three devices in a line, A – B – C, whose data dirs are ready; C is away (no link to A or B).
struct Line {
    lab: Lab,
    dirs: (TempDir, TempDir, TempDir),
}

impl Line {
    fn new() -> Result<Self> {
        Ok(Self {
            lab: Lab::new(3)?,
            dirs: (TempDir::new()?, TempDir::new()?, TempDir::new()?),
        })
    }

    /// Starts the three nodes with C away; returns them once A and B are connected.
    fn run(&self) -> Result<[MeshdropProcess; 3]> {
        self.lab.block(0, &[2])?;
        self.lab.block(2, &[0, 1])?;
        self.lab.block(1, &[2])?;
        let mut a = self.spawn(0, &self.dirs.0, "a")?;
        let mut b = self.spawn(1, &self.dirs.1, "b")?;
        let c = self.spawn(2, &self.dirs.2, "c")?;
        a.wait_peer_event("peer_connected", &b.peer_id(STEP)?, STEP)?;
        Ok([a, b, c])
    }

    fn spawn(&self, i: usize, dir: &TempDir, name: &str) -> Result<MeshdropProcess> {
        MeshdropProcess::spawn_in(Some(self.lab.host(i)), dir.path(), name, &[])
    }

    /// C comes back, in reach of B only, and connects to B.
    fn c_meets_b(&self, b: &mut MeshdropProcess) -> Result<()> {
        self.lab.unblock(1)?;
        self.lab.block(2, &[0])?;
        let b_addr = dial_addr(b, self.lab.host(1))?;
        command(
            self.lab.host(2),
            &self.dirs.2,
            "meet-b",
            &["connect", &b_addr],
        )?;
        Ok(())
    }
}

/// `meshdrop get TICKET` through the node running on `dir`, into a new folder (removed when the
/// returned `TempDir` is dropped: keep it while the node serves the files).
fn get(host: &Host, dir: &TempDir, label: &str, ticket: &str) -> Result<TempDir> {
    let out = TempDir::new()?;
    let dest = out.path().to_string_lossy().to_string();
    command(host, dir, label, &["get", ticket, "--out", &dest])?;
    Ok(out)
}

/// The attachment's ticket of message `id`, once `node` received it.
fn attachment(node: &mut MeshdropProcess, id: &str, what: &str) -> Result<String> {
    let got = node
        .wait_for(
            |v| v["event"] == "message_received" && v["message"]["id"] == id,
            STEP,
        )
        .context(what.to_string())?;
    Ok(got["message"]["attachment"]
        .as_str()
        .context("the message has an attachment")?
        .to_string())
}

#[test]
fn photos_posted_in_a_room_reach_a_member_who_meets_only_a_friend_after_the_sender_is_gone()
-> Result<()> {
    let line = Line::new()?;
    let (lab, dirs) = (&line.lab, &line.dirs);
    // The room exists before the nodes run: created by A, joined by invite by B and C.
    let room = command(lab.host(0), &dirs.0, "create", &["room", "create", "trip"])?;
    let invite = room[0]["invite"].as_str().context("no invite")?.to_string();
    let room_id = format!("room:{}", room[0]["id"].as_str().context("no room id")?);
    command(lab.host(1), &dirs.1, "join-b", &["room", "join", &invite])?;
    command(lab.host(2), &dirs.2, "join-c", &["room", "join", &invite])?;

    // A and C never share a link; C is away from B too, for now.
    let [mut a, mut b, mut c] = line.run()?;

    // A posts the day's photos in the room.
    let photos = TempDir::new()?;
    let day = photos.path().join("day-one");
    std::fs::create_dir_all(&day)?;
    let mut want = Vec::new();
    for i in 0..PHOTOS {
        let name = format!("IMG_{i:04}.jpg");
        random_file(&day.join(&name), 150_000 + i * 1_031, i as u64);
        want.push((name.clone(), std::fs::read(day.join(&name))?));
    }
    let day_arg = day.to_string_lossy().to_string();
    let posted = command(
        lab.host(0),
        &dirs.0,
        "post",
        &["msg", &room_id, "day one", "--attach", &day_arg],
    )?;
    let msg_id = posted[0]["id"]
        .as_str()
        .context("no message id")?
        .to_string();
    let ticket = attachment(&mut b, &msg_id, "B gets the room message")?;

    // B fetches the photos through its running node, then A's device dies.
    // Kept: B serves the files from there.
    let _b_out = get(lab.host(1), &dirs.1, "get-b", &ticket)?;
    a.terminate(STEP)?;

    // C comes back and meets only B: the room message comes from B, then the photos.
    line.c_meets_b(&mut b)?;
    attachment(&mut c, &msg_id, "C gets the room message from B")?;
    let c_out = get(lab.host(2), &dirs.2, "get-c", &ticket)
        .context("C's get through its running node, with A gone")?;
    for (name, bytes) in &want {
        let got = std::fs::read(c_out.path().join("day-one").join(name))
            .with_context(|| format!("C has {name}"))?;
        ensure!(got == *bytes, "{name} on C differs from what A posted");
    }
    b.terminate(STEP)?;
    c.terminate(STEP)?;
    Ok(())
}

#[test]
fn a_get_on_a_running_node_waits_for_a_holder_and_finishes_when_one_connects() -> Result<()> {
    let line = Line::new()?;
    let (lab, dirs) = (&line.lab, &line.dirs);
    let [mut a, mut b, mut c] = line.run()?;
    let files = TempDir::new()?;
    let video = files.path().join("trip.mp4");
    random_file(&video, 3_000_000, 7);
    let video_arg = video.to_string_lossy().to_string();
    let shared = command(lab.host(0), &dirs.0, "share", &["share", &video_arg])?;
    let ticket = shared
        .iter()
        .find_map(|v| v["ticket"].as_str())
        .context("share printed no ticket")?
        .to_string();
    // Kept: B serves the files from there.
    let _b_out = get(lab.host(1), &dirs.1, "get-b", &ticket)?;
    a.terminate(STEP)?;

    // C's get finds no one: it says so, and the running node keeps the download.
    let c_out = TempDir::new()?;
    let c_dest = c_out.path().to_string_lossy().to_string();
    let mut get = MeshdropProcess::spawn_raw(
        Some(lab.host(2)),
        dirs.2.path(),
        "get-c",
        &["--json", "get", &ticket, "--out", &c_dest, "--wait", "3"],
    )?;
    let waiting = c
        .wait_for(|v| v["event"] == "transfer_waiting", STEP)
        .context("C's node shows the download waiting for a holder")?;
    ensure!(waiting["tried"].as_array().is_some_and(|t| !t.is_empty()));
    ensure!(!get.wait_exit(STEP)?.success(), "the get ends unfinished");
    ensure!(
        get.stderr()
            .contains("keeps the download and goes on by itself when one connects"),
        "the get says what happens next: {}",
        get.stderr()
    );

    // B comes in reach: the download finishes on its own.
    line.c_meets_b(&mut b)?;
    c.wait_for(|v| v["event"] == "transfer_finished", STEP)
        .context("the waiting download finishes once B connects")?;
    ensure!(std::fs::read(c_out.path().join("trip.mp4"))? == std::fs::read(&video)?);
    b.terminate(STEP)?;
    c.terminate(STEP)?;
    Ok(())
}

/// The peer id of the data dir `dir` (`meshdrop id`, no node running).
fn id_of(dir: &TempDir, label: &str) -> Result<String> {
    let mut id = MeshdropProcess::spawn_raw(None, dir.path(), label, &["--json", "id"])?;
    let peer = id.wait_for(|v| v["event"] == "id", STEP)?["peer"]
        .as_str()
        .context("id without peer")?
        .to_string();
    id.wait_exit(STEP)?;
    Ok(peer)
}

#[test]
fn a_video_pinned_on_a_carrier_reaches_a_friend_the_sender_never_meets() -> Result<()> {
    let lab = Lab::new(3)?;
    let dirs = (TempDir::new()?, TempDir::new()?, TempDir::new()?);
    let (a_id, b_id) = (id_of(&dirs.0, "a-id")?, id_of(&dirs.1, "b-id")?);
    // C carries for A, a contact; A and B never share a link.
    command(
        lab.host(2),
        &dirs.2,
        "c-adds-a",
        &["contacts", "add", &a_id, "--name", "ana"],
    )?;
    command(
        lab.host(0),
        &dirs.0,
        "a-adds-c",
        &["contacts", "add", &id_of(&dirs.2, "c-id")?, "--name", "cai"],
    )?;
    lab.block(0, &[1])?;
    lab.block(1, &[0, 2])?;
    lab.block(2, &[1])?;
    let mut a = MeshdropProcess::spawn_in(Some(lab.host(0)), dirs.0.path(), "a", &[])?;
    let mut b = MeshdropProcess::spawn_in(Some(lab.host(1)), dirs.1.path(), "b", &[])?;
    let mut c = MeshdropProcess::spawn_in(Some(lab.host(2)), dirs.2.path(), "c", &[])?;
    a.wait_peer_event("peer_connected", &c.peer_id(STEP)?, STEP)?;

    let files = TempDir::new()?;
    let video = files.path().join("trip.mp4");
    random_file(&video, 2_000_000, 11);
    let video_arg = video.to_string_lossy().to_string();
    let sent = command(
        lab.host(0),
        &dirs.0,
        "send",
        &[
            "msg", &b_id, "the trip", "--attach", &video_arg, "--carry", "cai",
        ],
    )?;
    let msg_id = sent[0]["id"].as_str().context("no message id")?.to_string();
    let carrying = c
        .wait_for(|v| v["event"] == "carrying", STEP)
        .context("C carries the video")?;
    ensure!(carrying["for_peer"] == b_id, "for B: {carrying}");
    c.wait_for(|v| v["event"] == "transfer_finished", STEP)
        .context("C holds the video")?;
    a.terminate(STEP)?;

    // B meets C only: the message and then the video come from C.
    lab.unblock(1)?;
    lab.block(1, &[0])?;
    lab.block(2, &[])?;
    let c_addr = dial_addr(&mut c, lab.host(2))?;
    command(lab.host(1), &dirs.1, "meet-c", &["connect", &c_addr])?;
    let ticket = attachment(&mut b, &msg_id, "B gets the message through C")?;
    let out = get(lab.host(1), &dirs.1, "get-b", &ticket)?;
    ensure!(std::fs::read(out.path().join("trip.mp4"))? == std::fs::read(&video)?);
    b.terminate(STEP)?;
    c.terminate(STEP)?;
    Ok(())
}
