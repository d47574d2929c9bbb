//! `meshdrop send` to a nearby `meshdrop run`, the AirDrop flow: the receiver's policy or its
//! user decides, nothing is written before, and the sender learns the outcome. Real processes on
//! 127.0.0.1, finding each other with mDNS on loopback.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;

use common::Proc;

const LOOPBACK: &[&str] = &["--bind", "127.0.0.1"];

fn receiver(data_dir: &Path, out: &Path, accept: &str) -> (Proc, String) {
    let out = out.to_str().unwrap();
    let run = Proc::start(
        data_dir,
        LOOPBACK,
        &[
            "--name", "rx", "--json", "run", "--accept", accept, "--out", out,
        ],
        true,
    );
    let peer = run.wait_for("listening")["peer"]
        .as_str()
        .unwrap()
        .to_string();
    (run, peer)
}

fn holiday(root: &Path) -> std::path::PathBuf {
    let dir = root.join("Holiday");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("beach.jpg"), vec![3u8; 700_000]).unwrap();
    std::fs::write(dir.join("notes.txt"), b"sunscreen").unwrap();
    dir
}

fn send(
    data_dir: &Path,
    to: &str,
    path: &Path,
) -> (std::process::ExitStatus, Vec<serde_json::Value>, String) {
    Proc::start(
        data_dir,
        LOOPBACK,
        &["--name", "tx", "--json", "send", to, path.to_str().unwrap()],
        false,
    )
    .finish()
}

#[test]
fn a_device_running_with_accept_all_receives_what_is_sent() {
    let (rd, sd, files, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (_run, peer) = receiver(rd.path(), out.path(), "all");
    let (status, lines, stderr) = send(sd.path(), &peer, &holiday(files.path()));
    assert!(status.success(), "{stderr}");
    let last = lines
        .iter()
        .rev()
        .find(|v| v["event"] == "send_finished")
        .expect("a final result");
    assert_eq!(last["outcome"], "delivered");
    assert_eq!(last["bytes"], 700_009);
    assert!(lines.iter().any(|v| v["event"] == "offer_accepted"));
    assert_eq!(
        std::fs::read(out.path().join("Holiday/beach.jpg")).unwrap(),
        vec![3u8; 700_000]
    );
    assert_eq!(
        std::fs::read(out.path().join("Holiday/notes.txt")).unwrap(),
        b"sunscreen"
    );
}

#[test]
fn a_declined_offer_tells_the_sender_and_writes_nothing() {
    let (rd, sd, files, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (_run, peer) = receiver(rd.path(), out.path(), "none");
    let (status, _, stderr) = send(sd.path(), &peer, &holiday(files.path()));
    assert!(!status.success());
    assert!(stderr.contains("the receiver declined"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn asked_on_the_terminal_the_user_picks_one_file() {
    let (rd, sd, files, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (mut run, peer) = receiver(rd.path(), out.path(), "ask");
    let source = holiday(files.path());
    let sender = std::thread::spawn({
        let sd = sd.path().to_path_buf();
        move || send(&sd, &peer, &source)
    });
    let offer = run.wait_for("offer_received");
    assert_eq!(offer["name"], "tx");
    let paths: Vec<&str> = offer["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["Holiday/beach.jpg", "Holiday/notes.txt"]);
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "nothing written before the answer"
    );
    run.write_line("2");
    let (status, lines, stderr) = sender.join().unwrap();
    assert!(status.success(), "{stderr}");
    let last = lines
        .iter()
        .rev()
        .find(|v| v["event"] == "send_finished")
        .unwrap();
    assert_eq!(last["bytes"], 9, "only the picked file");
    assert_eq!(
        std::fs::read(out.path().join("Holiday/notes.txt")).unwrap(),
        b"sunscreen"
    );
    assert!(!out.path().join("Holiday/beach.jpg").exists());
}
