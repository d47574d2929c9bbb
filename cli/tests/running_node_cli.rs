//! Every command next to a running node, as a user meets it: with `meshdrop run` in one
//! terminal, `share`, `shares`, `unshare`, `get`, `send`, `room`, `contacts` and `inbox` in
//! another go through the node's control socket (like a torrent daemon and its remote), a `get` whose terminal goes
//! away keeps downloading in the node, and a malformed control line harms nobody. Real
//! processes on 127.0.0.1 without mDNS.

// Helpers outside `#[test]` functions panic on failure too: that is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use common::{Proc, STEP, hash_of, random_file};
use serde_json::Value;

const MIB: u64 = 1024 * 1024;

/// A `meshdrop run --json` and what its `listening` event said.
struct Running {
    proc: Proc,
    peer: String,
    /// Its TCP address, ending in `/p2p/<peer id>`.
    addr: String,
}

fn running(data_dir: &Path, extra: &[&str]) -> Running {
    let mut args = vec!["--json", "run"];
    args.extend(extra);
    let proc = Proc::spawn(data_dir, &args);
    let listening = proc.wait_for("listening");
    let peer = listening["peer"].as_str().unwrap().to_string();
    let tcp = listening["addrs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|a| a.contains("/tcp/"))
        .unwrap();
    let addr = format!("{tcp}/p2p/{peer}");
    Running { proc, peer, addr }
}

/// Runs a one-shot `meshdrop --json ARGS` to its end and returns its lines; fails unless it
/// succeeds.
fn once(data_dir: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend(args);
    let (status, lines, stderr) = Proc::spawn(data_dir, &all).finish();
    assert!(status.success(), "{args:?} failed: {stderr}");
    lines
}

/// The line of `lines` whose event is `event`.
fn event<'a>(lines: &'a [Value], event: &str) -> &'a Value {
    lines
        .iter()
        .find(|v| v["event"] == event)
        .unwrap_or_else(|| panic!("no {event} in {lines:?}"))
}

/// A standalone `meshdrop share --json` (its own node, until dropped) and its ticket.
fn standalone_share(data_dir: &Path, file: &Path, flags: &[&str]) -> (Proc, String) {
    let mut args = flags.to_vec();
    args.extend(["--json", "share", file.to_str().unwrap()]);
    let proc = Proc::spawn(data_dir, &args);
    let first = proc.next("the ticket line");
    assert_eq!(first["event"], "ticket", "the ticket comes first: {first}");
    let ticket = first["ticket"].as_str().unwrap().to_string();
    (proc, ticket)
}

#[test]
fn share_next_to_a_running_node_prints_a_ticket_and_exits_while_the_node_seeds() {
    let (node_dir, other, files, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let _node = running(node_dir.path(), &[]);
    let video = files.path().join("video.mp4");
    random_file(&video, 3 * MIB + 17, 1);
    let ticket_file = files.path().join("video.ticket");

    let lines = once(
        node_dir.path(),
        &[
            "share",
            video.to_str().unwrap(),
            "--ticket-file",
            ticket_file.to_str().unwrap(),
        ],
    );
    assert_eq!(lines[0]["event"], "ticket", "the ticket comes first");
    assert_eq!(lines.len(), 1, "then the command ends: {lines:?}");
    assert_eq!(
        (lines[0]["files"].as_u64(), lines[0]["bytes"].as_u64()),
        (Some(1), Some(3 * MIB + 17))
    );
    let ticket = lines[0]["ticket"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(&ticket_file).unwrap().trim(),
        ticket
    );

    // In text mode too the ticket is the first line, alone.
    let text = std::process::Command::new(common::BIN)
        .arg("--data-dir")
        .arg(node_dir.path())
        .args(["share", video.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let first = String::from_utf8_lossy(&text.stdout)
        .lines()
        .next()
        .map(str::to_string);
    let second = first.unwrap_or_default();
    assert!(
        second.starts_with("meshdrop2"),
        "the ticket alone: {second}"
    );
    assert_ne!(second, ticket, "every share gets a key of its own");
    let shares = once(node_dir.path(), &["shares"]);
    assert_eq!(shares.len(), 2, "{shares:?}");
    assert_eq!(shares[0]["content"], shares[1]["content"], "the same files");

    // The share command is gone; the running node serves the share.
    let fetched = once(
        other.path(),
        &["get", ticket, "--out", out.path().to_str().unwrap()],
    );
    event(&fetched, "transfer_finished");
    assert_eq!(
        hash_of(&out.path().join("video.mp4")),
        hash_of(&video),
        "bytes equal"
    );
}

#[test]
fn get_next_to_a_running_node_downloads_in_the_node_with_progress_and_a_result() {
    let (node_dir, provider, files, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let file = files.path().join("trip.mov");
    random_file(&file, 6 * MIB + 5, 2);
    let (_sharer, ticket) = standalone_share(provider.path(), &file, &[]);
    let node = running(node_dir.path(), &[]);

    let lines = once(
        node_dir.path(),
        &["get", &ticket, "--out", out.path().to_str().unwrap()],
    );
    let progress: Vec<&Value> = lines
        .iter()
        .filter(|v| v["event"] == "transfer_progress")
        .collect();
    assert!(!progress.is_empty(), "progress lines: {lines:?}");
    assert!(progress.iter().all(|v| v["total"] == 6 * MIB + 5));
    let done = lines.last().unwrap();
    assert_eq!(
        done["event"], "transfer_finished",
        "the result comes last: {lines:?}"
    );
    assert_eq!(
        (done["files"].as_u64(), done["bytes"].as_u64()),
        (Some(1), Some(6 * MIB + 5))
    );
    assert_eq!(
        done["dest"],
        out.path().canonicalize().unwrap().to_str().unwrap()
    );
    assert_eq!(
        hash_of(&out.path().join("trip.mov")),
        hash_of(&file),
        "bytes equal"
    );
    // The node itself did the download: its own event stream says so.
    let finished = node.proc.wait_for("transfer_finished");
    assert_eq!(finished["transfer"], done["transfer"]);
    assert_eq!(finished["content"], done["content"]);
}

#[test]
fn a_get_whose_client_is_killed_with_sigkill_midway_still_completes_in_the_running_node() {
    let (node_dir, provider, files, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let total = 12 * MIB;
    let file = files.path().join("long.mkv");
    random_file(&file, total, 3);
    // About six seconds at this rate: the client is killed well before the end.
    let (_sharer, ticket) =
        standalone_share(provider.path(), &file, &["--max-upload-rate", "2MiB"]);
    let node = running(node_dir.path(), &[]);

    let out_arg = out.path().to_str().unwrap();
    let client = Proc::spawn(
        node_dir.path(),
        &["--json", "get", &ticket, "--out", out_arg],
    );
    let midway = loop {
        let v = client.next("progress midway");
        assert_ne!(
            v["event"], "transfer_finished",
            "finished before it was killed: {v}"
        );
        if v["event"] == "transfer_progress" && v["done"].as_u64().unwrap() > 0 {
            break v;
        }
    };
    assert!(midway["done"].as_u64().unwrap() < total, "{midway}");
    nix::sys::signal::kill(client.pid(), nix::sys::signal::Signal::SIGKILL).unwrap();
    let (status, _, _) = client.finish();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL");
    assert!(
        !out.path().join("long.mkv").exists(),
        "not finished when the client died"
    );

    let finished = loop {
        let v = node.proc.wait_for("transfer_finished");
        if v["content"] == midway["content"] {
            break v;
        }
    };
    assert_eq!(finished["bytes"], total);
    assert_eq!(
        hash_of(&out.path().join("long.mkv")),
        hash_of(&file),
        "hash equal"
    );
}

#[test]
fn send_next_to_a_running_node_is_delivered_to_a_device_that_accepts_all() {
    let (node_dir, rx_dir, files, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let node = running(node_dir.path(), &[]);
    let receiver = running(
        rx_dir.path(),
        &["--accept", "all", "--out", out.path().to_str().unwrap()],
    );
    let connected = once(node_dir.path(), &["connect", &receiver.addr]);
    assert_eq!(connected[0]["peer"], receiver.peer.as_str());
    // The receiver takes offers from its contacts only.
    common::add_contact(rx_dir.path(), &node.peer, "the node");
    let photo = files.path().join("beach.jpg");
    random_file(&photo, 900_000, 4);

    let lines = once(
        node_dir.path(),
        &["send", &receiver.peer, photo.to_str().unwrap()],
    );
    assert!(
        lines.iter().any(|v| v["event"] == "offer_accepted"),
        "{lines:?}"
    );
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "send_finished", "{lines:?}");
    assert_eq!(
        (last["outcome"].as_str(), last["bytes"].as_u64()),
        (Some("delivered"), Some(900_000))
    );
    assert_eq!(last["peer"], receiver.peer.as_str());
    assert_eq!(
        hash_of(&out.path().join("beach.jpg")),
        hash_of(&photo),
        "bytes equal"
    );
    // The running node made the offer: its own events show the answer.
    assert_eq!(
        node.proc.wait_for("offer_accepted")["peer"],
        receiver.peer.as_str()
    );
}

#[test]
fn rooms_contacts_and_the_inbox_answer_from_the_running_node() {
    let (node_dir, bob_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let node = running(node_dir.path(), &["--name", "alice"]);
    let bob = running(bob_dir.path(), &["--name", "bob"]);
    once(node_dir.path(), &["connect", &bob.addr]);
    loop {
        if node.proc.wait_for("peer_identified")["name"] == "bob" {
            break;
        }
    }

    let created = once(node_dir.path(), &["room", "create", "camp"]);
    let room = event(&created, "room");
    assert_eq!(room["name"], "camp");
    let listed = once(node_dir.path(), &["room", "list"]);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (&listed[0]["id"], &listed[0]["invite"]),
        (&room["id"], &room["invite"])
    );

    // Meeting makes no contact; the user adds bob by the name his device claims.
    assert!(once(node_dir.path(), &["contacts"]).is_empty());
    let added = once(
        node_dir.path(),
        &["contacts", "add", "bob", "--name", "Bob"],
    );
    assert_eq!(added[0]["event"], "contact_added", "{added:?}");
    assert_eq!(added[0]["peer"], bob.peer.as_str());
    let code = added[0]["verification_code"].as_str().unwrap().to_string();
    let contacts = once(node_dir.path(), &["contacts", "list"]);
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    let met = &contacts[0];
    assert_eq!(
        (&met["event"], &met["name"], &met["claimed"], &met["via"]),
        (
            &"contact".into(),
            &"Bob".into(),
            &"bob".into(),
            &"code".into()
        )
    );
    assert_eq!(met["verification_code"], code.as_str());
    assert!(met["last_seen"].as_u64().unwrap() > 0, "{met}");
    once(
        node_dir.path(),
        &["contacts", "rename", "Bob", "Bob (camp)"],
    );

    let queued = once(node_dir.path(), &["msg", "Bob (camp)", "see you at camp"]);
    let id = event(&queued, "message_queued")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let inbox = once(node_dir.path(), &["inbox"]);
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert_eq!(
        (inbox[0]["id"].as_str(), inbox[0]["text"].as_str()),
        (Some(id.as_str()), Some("see you at camp"))
    );
    assert_eq!(inbox[0]["to"], bob.peer.as_str());
    let removed = once(node_dir.path(), &["contacts", "remove", "Bob (camp)"]);
    assert_eq!(removed[0]["peer"], bob.peer.as_str());
    assert!(once(node_dir.path(), &["contacts"]).is_empty());
    assert_eq!(
        event(&once(node_dir.path(), &["id"]), "id")["name"],
        "alice"
    );
}

#[test]
fn shares_lists_what_share_made_and_an_unshared_share_no_longer_opens_for_another_node() {
    let (node_dir, other, files, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let _node = running(node_dir.path(), &[]);
    let video = files.path().join("video.mp4");
    random_file(&video, MIB + 3, 5);
    let shared = once(node_dir.path(), &["share", video.to_str().unwrap()]);
    let ticket = shared[0]["ticket"].as_str().unwrap().to_string();
    let listed = once(node_dir.path(), &["shares"]);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let share = &listed[0];
    assert_eq!(
        (&share["event"], &share["kind"], &share["name"]),
        (&"share".into(), &"shared".into(), &"video.mp4".into())
    );
    assert_eq!(
        (share["files"].as_u64(), share["bytes"].as_u64()),
        (Some(1), Some(MIB + 3))
    );
    assert_eq!(share["content"], shared[0]["content"]);
    assert!(share["expires"].is_null() && share["since"].as_u64().unwrap() > 0);
    let id = share["id"].as_str().unwrap();

    let gone = once(node_dir.path(), &["unshare", id]);
    assert_eq!(
        (&gone[0]["event"], &gone[0]["id"]),
        (&"unshared".into(), &id.into())
    );
    assert!(once(node_dir.path(), &["shares"]).is_empty());
    let args = [
        "--json",
        "get",
        &ticket,
        "--out",
        out.path().to_str().unwrap(),
        "--wait",
        "1",
    ];
    let (status, _, stderr) = Proc::spawn(other.path(), &args).finish();
    common::assert_one_line_error(&status, &stderr, "does not serve it to this ticket");
    assert!(!out.path().join("video.mp4").exists());
    let again = Proc::spawn(node_dir.path(), &["unshare", id]).finish();
    common::assert_one_line_error(&again.0, &again.2, "`meshdrop shares` lists them");
}

#[test]
fn without_a_running_node_shares_and_unshare_start_one_of_their_own() {
    let (dir, files) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file = files.path().join("notes.txt");
    std::fs::write(&file, b"camp at the lake").unwrap();
    let (sharer, _) = standalone_share(dir.path(), &file, &[]);
    common::stop(sharer);
    let listed = once(dir.path(), &["shares"]);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (&listed[0]["name"], &listed[0]["bytes"]),
        (&"notes.txt".into(), &16.into())
    );
    once(dir.path(), &["unshare", listed[0]["id"].as_str().unwrap()]);
    assert!(once(dir.path(), &["shares"]).is_empty(), "remembered");
}

/// Writes `line` on a fresh connection to the node's control socket and reads one answer line.
fn ask_raw(data_dir: &Path, line: &str) -> Value {
    let mut socket = UnixStream::connect(data_dir.join("control.sock")).unwrap();
    socket.set_read_timeout(Some(STEP)).unwrap();
    socket.write_all(line.as_bytes()).unwrap();
    socket.write_all(b"\n").unwrap();
    let mut answer = String::new();
    BufReader::new(socket).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{answer:?} is not JSON: {e}"))
}

#[test]
fn a_malformed_control_line_gets_an_error_and_the_server_answers_the_next_client() {
    let node_dir = tempfile::tempdir().unwrap();
    let node = running(node_dir.path(), &[]);
    for bad in [
        "this is not json",
        r#"{"op":"launch_rockets"}"#,
        r#"{"op":"get","ticket":"meshdrop1zz","dest":"/"}"#,
        "[1,2",
    ] {
        let answer = ask_raw(node_dir.path(), bad);
        let error = answer["error"]
            .as_str()
            .unwrap_or_else(|| panic!("an error for {bad:?}: {answer}"));
        assert!(error.starts_with("bad request: "), "{error}");
    }
    // The same connection keeps working after a bad line.
    let mut socket = UnixStream::connect(node_dir.path().join("control.sock")).unwrap();
    socket.set_read_timeout(Some(STEP)).unwrap();
    socket.write_all(b"{oops\n{\"op\":\"id\"}\n").unwrap();
    let mut lines = BufReader::new(socket).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert!(first["error"].is_string(), "{first}");
    let second: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(second["done"]["id"]["peer"], node.peer.as_str());
    // And the next client is served as usual.
    let id = once(node_dir.path(), &["id"]);
    assert_eq!(event(&id, "id")["peer"], node.peer.as_str());
}

/// Flips `len` bytes of `path` at `at`: an edit after the download.
fn flip(path: &Path, at: u64, len: usize) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut bytes = vec![0; len];
    f.read_exact_at(&mut bytes, at).unwrap();
    bytes.iter_mut().for_each(|b| *b = !*b);
    f.write_all_at(&bytes, at).unwrap();
}

#[test]
fn verify_repairs_a_damaged_download_through_the_running_node_or_a_node_of_its_own() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let file = dirs[2].path().join("trip.mp4");
    random_file(&file, 4 * MIB, 5);
    let (sharer, ticket) = standalone_share(dirs[0].path(), &file, &[]);
    let b = dirs[1].path();
    let out = dirs[3].path();
    once(b, &["get", &ticket, "--out", out.to_str().unwrap()]);
    let copy = out.join("trip.mp4");

    // No node runs on B's data dir: `verify` starts one, finds the edit and repairs it.
    flip(&copy, 300_000, 1000);
    let (status, lines, stderr) = Proc::spawn(b, &["verify"]).finish();
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    println!("{}", text.join("\n"));
    assert!(status.success(), "{stderr}");
    let said = text.join("\n");
    assert!(
        said.contains("trip.mp4 changed since it was shared")
            && said.contains("repaired from peers"),
        "{said}"
    );
    assert_eq!(hash_of(&copy), hash_of(&file), "repaired");

    // Next to a running node: through its socket, and the node tells what it found and did.
    let node = running(b, &[]);
    flip(&copy, 2 * MIB + 5, 10);
    let lines = once(b, &["verify"]);
    let verified = event(&lines, "verified");
    assert_eq!(verified["damaged"][0]["repaired"], true, "{verified}");
    assert_eq!(verified["damaged"][0]["damage"], "changed", "{verified}");
    let damaged = node.proc.wait_for("share_damaged");
    assert_eq!(damaged["file"], "trip.mp4", "{damaged}");
    node.proc.wait_for("share_repaired");
    assert_eq!(hash_of(&copy), hash_of(&file), "repaired");
    common::stop(node.proc);

    // Its own share, edited: reported, never undone, and the command fails saying so.
    common::stop(sharer);
    flip(&file, 0, 1);
    let (status, lines, stderr) = Proc::spawn(dirs[0].path(), &["verify"]).finish();
    println!("{lines:?}\n{stderr}");
    common::assert_one_line_error(&status, &stderr, "1 file is still damaged: trip.mp4");
    let said: String = lines.iter().map(|l| l.to_string()).collect();
    assert!(said.contains("share the file again"), "{said}");
}
