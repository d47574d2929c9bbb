//! `meshdrop send` to a nearby `meshdrop run`, the AirDrop flow with contacts: a contact's offer
//! lands in the receive folder; a stranger's is refused at once (default visibility) or, visible
//! to everyone, declined under `--accept all` and asked under `--accept ask`; nothing is written
//! before an answer; `send NAME` reaches the contact of that name, not a stranger claiming it.
//! Real processes on 127.0.0.1, finding each other with mDNS on loopback.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use common::{Proc, add_contact, json_once, peer_id, stop};
use serde_json::Value;

const LOOPBACK: &[&str] = &["--bind", "127.0.0.1"];

/// A `meshdrop --name NAME FLAGS run --accept ACCEPT [--out OUT]` and its peer id.
fn receiver(data_dir: &Path, flags: &[&str], accept: &str, out: Option<&Path>) -> (Proc, String) {
    let (run, peer, _) = receiver_env(data_dir, flags, accept, out, &[]);
    (run, peer)
}

/// [`receiver`] with these environment variables; also what it said about receiving.
fn receiver_env(
    data_dir: &Path,
    flags: &[&str],
    accept: &str,
    out: Option<&Path>,
    env: &[(&str, &Path)],
) -> (Proc, String, Value) {
    let mut all = LOOPBACK.to_vec();
    all.extend(flags);
    let mut args = vec!["--json", "run", "--accept", accept];
    if let Some(out) = out {
        args.extend(["--out", out.to_str().unwrap()]);
    }
    let run = Proc::start_env(data_dir, &all, &args, true, env);
    // Said before the node's first event.
    let receiving = run.wait_for("receiving");
    assert_eq!(receiving["accept"], accept);
    let peer = run.wait_for("listening")["peer"]
        .as_str()
        .unwrap()
        .to_string();
    (run, peer, receiving)
}

fn holiday(root: &Path) -> PathBuf {
    let dir = root.join("Holiday");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("beach.jpg"), vec![3u8; 700_000]).unwrap();
    std::fs::write(dir.join("notes.txt"), b"sunscreen").unwrap();
    dir
}

/// `meshdrop --name tx send TO PATH` (a node of its own, with mDNS on loopback) to its end.
fn send(data_dir: &Path, to: &str, path: &Path) -> (ExitStatus, Vec<Value>, String) {
    let args = ["--name", "tx", "--json", "send", to, path.to_str().unwrap()];
    Proc::start(data_dir, LOOPBACK, &args, false).finish()
}

fn finished(lines: &[Value]) -> &Value {
    lines
        .iter()
        .rev()
        .find(|v| v["event"] == "send_finished")
        .unwrap_or_else(|| panic!("a final result in {lines:?}"))
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

#[test]
fn a_contacts_offer_under_accept_all_lands_in_the_default_receive_folder_created_for_it() {
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let (rd, sd, files, home) = (
        dirs[0].path(),
        dirs[1].path(),
        dirs[2].path(),
        dirs[3].path(),
    );
    // The platform's Downloads folder, as XDG names it; its `meshdrop` folder does not exist yet.
    std::fs::create_dir_all(home.join("config")).unwrap();
    let dirs_file = "XDG_DOWNLOAD_DIR=\"$HOME/Downloads\"\n";
    std::fs::write(home.join("config/user-dirs.dirs"), dirs_file).unwrap();
    let env = [("HOME", home), ("XDG_CONFIG_HOME", &home.join("config"))];
    let (run, peer, receiving) = receiver_env(rd, &["--name", "rx"], "all", None, &env);
    let folder = home.join("Downloads/meshdrop");
    assert_eq!(receiving["dir"], folder.to_str().unwrap(), "{receiving}");
    assert_eq!(
        (&receiving["accept"], &receiving["visible"]),
        (&"all".into(), &"contacts".into())
    );
    let tx = peer_id(sd, Some("tx"));
    add_contact(rd, &tx, "Sam");

    let (status, lines, stderr) = send(sd, &peer, &holiday(files));
    assert!(status.success(), "{stderr}");
    let offering = lines.iter().find(|v| v["event"] == "offering").unwrap();
    assert_eq!(offering["peer"], peer.as_str());
    let last = finished(&lines);
    assert_eq!(
        (&last["outcome"], &last["bytes"]),
        (&"delivered".into(), &700_009.into())
    );
    let offer = run.wait_for("offer_received");
    assert_eq!(
        (&offer["contact"], &offer["name"]),
        (&"Sam".into(), &"tx".into())
    );
    let answered = run.wait_for("offer_answered");
    assert_eq!(
        (&answered["accepted"], &answered["from_contact"]),
        (&true.into(), &true.into())
    );
    assert_eq!(
        std::fs::read(folder.join("Holiday/beach.jpg")).unwrap(),
        vec![3u8; 700_000]
    );
    assert_eq!(
        std::fs::read(folder.join("Holiday/notes.txt")).unwrap(),
        b"sunscreen"
    );

    // Without a Downloads folder, offers go to the data dir's `received`, never here or home.
    drop(run);
    let bare = tempfile::tempdir().unwrap();
    let (_run, _, receiving) = receiver_env(rd, &[], "all", None, &[("HOME", bare.path())]);
    assert_eq!(receiving["dir"], rd.join("received").to_str().unwrap());
}

#[test]
fn a_strangers_offer_is_refused_at_once_with_the_reason_shown_and_nothing_written() {
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let (rd, sd, files, out) = (
        dirs[0].path(),
        dirs[1].path(),
        dirs[2].path(),
        dirs[3].path(),
    );
    let (run, peer) = receiver(rd, &["--name", "rx"], "all", Some(out));
    let tx = peer_id(sd, Some("tx"));
    let (status, _, stderr) = send(sd, &peer, &holiday(files));
    assert!(!status.success());
    assert!(
        stderr.contains("the receiver declined (this device receives files from its contacts only"),
        "{stderr}"
    );
    let refused = run.wait_for("offer_refused");
    assert_eq!(
        (&refused["peer"], &refused["name"]),
        (&tx.as_str().into(), &"tx".into())
    );
    let (_, after, _) = stop(run);
    assert!(
        after.iter().all(|v| v["event"] != "offer_received"),
        "{after:?}"
    );
    assert_eq!(entries(out), 0, "nothing written");
}

#[test]
fn visible_to_everyone_a_strangers_offer_under_accept_all_is_declined_and_writes_nothing() {
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let (rd, sd, files, out) = (
        dirs[0].path(),
        dirs[1].path(),
        dirs[2].path(),
        dirs[3].path(),
    );
    let flags = ["--name", "rx", "--visible", "everyone"];
    let (run, peer, receiving) = receiver_env(rd, &flags, "all", Some(out), &[]);
    assert_eq!(receiving["visible"], "everyone");
    let (status, _, stderr) = send(sd, &peer, &holiday(files));
    assert!(!status.success());
    assert!(
        stderr.contains("the receiver declined (declined)"),
        "{stderr}"
    );
    let offer = run.wait_for("offer_received");
    assert!(offer["contact"].is_null(), "shown as a stranger: {offer}");
    let answered = run.wait_for("offer_answered");
    assert_eq!(
        (&answered["accepted"], &answered["from_contact"]),
        (&false.into(), &false.into())
    );
    assert_eq!(entries(out), 0, "nothing written");
}

#[test]
fn a_declined_offer_tells_the_sender_and_writes_nothing() {
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let (rd, sd, files, out) = (
        dirs[0].path(),
        dirs[1].path(),
        dirs[2].path(),
        dirs[3].path(),
    );
    let (_run, peer) = receiver(rd, &["--name", "rx"], "none", Some(out));
    add_contact(rd, &peer_id(sd, Some("tx")), "Sam");
    let (status, _, stderr) = send(sd, &peer, &holiday(files));
    assert!(!status.success());
    assert!(stderr.contains("the receiver declined"), "{stderr}");
    assert_eq!(entries(out), 0, "nothing written");
}

#[test]
fn asked_on_the_terminal_a_stranger_is_shown_as_such_added_as_a_contact_then_picked_from() {
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let (rd, sd, files, out) = (
        dirs[0].path(),
        dirs[1].path(),
        dirs[2].path(),
        dirs[3].path(),
    );
    let flags = ["--name", "rx", "--visible", "everyone"];
    let (mut run, peer) = receiver(rd, &flags, "ask", Some(out));
    let source = holiday(files);
    let offer_from = |source: PathBuf| {
        let (sd, peer) = (sd.to_path_buf(), peer.clone());
        std::thread::spawn(move || send(&sd, &peer, &source))
    };
    let sender = offer_from(source);
    let offer = run.wait_for("offer_received");
    assert_eq!(offer["name"], "tx");
    assert!(offer["contact"].is_null());
    let paths: Vec<&str> = offer["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["Holiday/beach.jpg", "Holiday/notes.txt"]);
    assert_eq!(entries(out), 0, "nothing written before the answer");
    run.write_line("c");
    let (status, lines, stderr) = sender.join().unwrap();
    assert!(status.success(), "{stderr}");
    assert_eq!(finished(&lines)["bytes"], 700_009);
    let contacts = json_once(rd, &["contacts"]);
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(
        (&contacts[0]["name"], &contacts[0]["via"]),
        (&"tx".into(), &"offer".into())
    );

    // Now a contact: shown by its name; the user picks one file of the next offer.
    let trip = files.join("Trip");
    std::fs::create_dir_all(&trip).unwrap();
    std::fs::write(trip.join("map.png"), vec![5u8; 1000]).unwrap();
    std::fs::write(trip.join("route.txt"), b"north").unwrap();
    let sender = offer_from(trip);
    assert_eq!(run.wait_for("offer_received")["contact"], "tx");
    run.write_line("2");
    let (status, lines, stderr) = sender.join().unwrap();
    assert!(status.success(), "{stderr}");
    assert_eq!(finished(&lines)["bytes"], 5, "only the picked file");
    assert_eq!(std::fs::read(out.join("Trip/route.txt")).unwrap(), b"north");
    assert!(!out.join("Trip/map.png").exists());

    let (_, _, prompt) = stop(run);
    for needle in [
        "tx? (not a contact) offers 2 files, 683.60 KiB in all; verification code ",
        "[c] all and add \"tx\" as a contact",
        "    2. Holiday/notes.txt (9 B)",
        "contact tx offers 2 files, 1005 B in all:",
    ] {
        assert!(
            prompt.contains(needle),
            "{needle:?} in the prompt: {prompt}"
        );
    }
    assert!(
        prompt.contains(offer["verification_code"].as_str().unwrap()),
        "{prompt}"
    );
}

#[test]
fn send_carol_reaches_the_contact_named_carol_not_a_stranger_advertising_carol() {
    let dirs: Vec<tempfile::TempDir> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let (friend, stranger, me) = (dirs[0].path(), dirs[1].path(), dirs[2].path());
    let (friend_out, stranger_out) = (dirs[3].path(), dirs[4].path());
    // The friend's device calls itself something else; a stranger's claims "carol" and would
    // take whatever this device sends it.
    let (_friend, friend_peer) =
        receiver(friend, &["--name", "dave-laptop"], "all", Some(friend_out));
    let (_stranger, stranger_peer) =
        receiver(stranger, &["--name", "carol"], "all", Some(stranger_out));
    let me_peer = peer_id(me, Some("tx"));
    add_contact(friend, &me_peer, "tx");
    add_contact(stranger, &me_peer, "tx");
    // This device runs, knows the friend as "carol", and hears both claims over mDNS.
    let (mine, _) = receiver(me, &["--name", "tx"], "none", Some(me));
    add_contact(me, &friend_peer, "carol");
    let mut heard = std::collections::HashSet::new();
    while heard.len() < 2 {
        let found = mine.wait_for("peer_discovered");
        for (peer, name) in [(&friend_peer, "dave-laptop"), (&stranger_peer, "carol")] {
            if found["peer"] == peer.as_str() && found["name"] == name {
                heard.insert(name);
            }
        }
    }
    let file = dirs[2].path().join("plan.txt");
    std::fs::write(&file, b"meet at the bridge").unwrap();
    let lines = json_once(me, &["send", "carol", file.to_str().unwrap()]);
    let offering = lines.iter().find(|v| v["event"] == "offering").unwrap();
    assert_eq!(
        (&offering["peer"], &offering["contact"]),
        (&friend_peer.as_str().into(), &"carol".into())
    );
    let last = finished(&lines);
    assert_eq!(
        (&last["peer"], &last["outcome"]),
        (&friend_peer.as_str().into(), &"delivered".into())
    );
    assert_eq!(
        std::fs::read(friend_out.join("plan.txt")).unwrap(),
        b"meet at the bridge"
    );
    assert_eq!(entries(stranger_out), 0, "the stranger got nothing");
}
