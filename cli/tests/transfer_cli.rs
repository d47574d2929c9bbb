//! `meshdrop share` and `meshdrop get` as separate processes on 127.0.0.1 (no mDNS): a folder
//! arrives byte for byte, bad tickets are clear errors, a receiver killed with SIGKILL resumes
//! and re-fetches at most one batch, and a small disk is refused up front or, when it fills up
//! mid-way, keeps the partial data and resumes once space is freed.
//!
//! The disk tests mount a tmpfs and need root (as in CI); they fail, not skip, without it.

// Helpers outside `#[test]` functions panic on failure too: that is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use common::{BIN, Proc, assert_one_line_error, hash_of, random_file};
use serde_json::Value;

const MIB: u64 = 1024 * 1024;
/// The most a resumed download may fetch twice (one batch of chunks, per the issue).
const REFETCH_BOUND: u64 = 4 * MIB;

/// A running `meshdrop share --json` and its ticket.
struct Sharer {
    _proc: Proc,
    ticket: String,
    first: Value,
}

fn share(data_dir: &Path, paths: &[&Path], extra: &[&str]) -> Sharer {
    let mut args: Vec<&str> = vec!["--json", "share"];
    args.extend(paths.iter().map(|p| p.to_str().unwrap()));
    args.extend(extra);
    let proc = Proc::spawn(data_dir, &args);
    let first = proc.next("ticket line");
    assert_eq!(first["event"], "ticket", "the ticket comes first: {first}");
    let ticket = first["ticket"].as_str().unwrap().to_string();
    assert!(ticket.starts_with("meshdrop2"), "{ticket}");
    Sharer {
        _proc: proc,
        ticket,
        first,
    }
}

/// Runs `get --json` to its end; returns exit status, stdout values and stderr.
fn get(
    data_dir: &Path,
    ticket: &str,
    out: &Path,
    extra: &[&str],
) -> (ExitStatus, Vec<Value>, String) {
    let mut args = vec!["--json", "get", ticket, "--out", out.to_str().unwrap()];
    args.extend(extra);
    Proc::spawn(data_dir, &args).finish()
}

/// The `transfer_finished` result of a successful `get`, with its figures printed.
fn finished(run: &(ExitStatus, Vec<Value>, String)) -> Value {
    let (status, lines, stderr) = run;
    assert!(status.success(), "get failed: {status:?}\n{stderr}");
    let done = lines
        .iter()
        .rev()
        .find(|v| v["event"] == "transfer_finished")
        .unwrap_or_else(|| panic!("no transfer_finished in {lines:?}"))
        .clone();
    println!(
        "get: {} files, {} bytes, fetched {}, resumed {}, skipped {}, {:.2} s, {:.1} MiB/s",
        done["files"],
        done["bytes"],
        done["fetched"],
        done["resumed"],
        done["skipped"],
        done["secs"].as_f64().unwrap_or_default(),
        done["mib_per_s"].as_f64().unwrap_or_default()
    );
    done
}

/// Every regular file under `root`: relative path -> BLAKE3 hash.
fn tree(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mut h = blake3::Hasher::new();
                h.update_reader(std::fs::File::open(&p).unwrap()).unwrap();
                out.push((
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    h.finalize().to_hex().to_string(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_shared_folder_with_nested_unicode_and_empty_files_arrives_byte_for_byte() {
    let (files, sender, receiver, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let trip = files.path().join("Trip");
    random_file(&trip.join("videos/day 1/GOPR0001.MP4"), 9 * MIB + 12345, 1);
    random_file(&trip.join("Fotos/Día 1/café ☕.jpg"), 300_000, 2);
    random_file(&trip.join("Fotos/Día 2/日本/夕日.jpg"), 70_000, 3);
    for i in 0..30u64 {
        random_file(
            &trip.join(format!("roll/IMG_{i:04}.jpg")),
            5_000 + i * 997,
            10 + i,
        );
    }
    std::fs::write(trip.join("empty.txt"), b"").unwrap();
    std::fs::write(trip.join("Fotos/Día 2/leer.txt"), b"").unwrap();
    let ticket_file = files.path().join("trip.ticket");

    let s = share(
        sender.path(),
        &[&trip],
        &["--qr", "--ticket-file", ticket_file.to_str().unwrap()],
    );
    let expected = tree(&trip);
    assert_eq!(s.first["files"], expected.len() as u64, "{}", s.first);
    let bytes: u64 = std::fs::metadata(trip.join("videos/day 1/GOPR0001.MP4"))
        .unwrap()
        .len()
        + 300_000
        + 70_000
        + (0..30u64).map(|i| 5_000 + i * 997).sum::<u64>();
    assert_eq!(s.first["bytes"], bytes);
    assert_eq!(s.first["content"].as_str().map(str::len), Some(64));
    let in_file = std::fs::read_to_string(&ticket_file).unwrap();
    assert_eq!(
        in_file.trim(),
        s.ticket,
        "--ticket-file holds the same ticket"
    );

    let run = get(receiver.path(), &s.ticket, out.path(), &[]);
    let done = finished(&run);
    assert_eq!(tree(&out.path().join("Trip")), expected, "every file equal");
    assert_eq!(done["files"], expected.len() as u64);
    assert_eq!(done["bytes"], bytes);
    assert_eq!(done["fetched"], bytes);
    assert!(
        run.1.iter().any(|v| v["event"] == "transfer_progress"),
        "progress events are printed with --json"
    );

    // Again from the ticket file, in text mode, into a second folder: a one-line summary.
    let out2 = tempfile::tempdir().unwrap();
    let text = Command::new(BIN)
        .arg("--data-dir")
        .arg(receiver.path())
        .args(["--bind", "127.0.0.1", "--no-mdns", "get", "--ticket-file"])
        .arg(&ticket_file)
        .arg("--out")
        .arg(out2.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    assert!(stdout.contains("every file verified"), "{stdout}");
    assert_eq!(tree(&out2.path().join("Trip")), expected);

    // `get --seed` keeps serving: with the first sharer gone, a third device fetches from it.
    let (seeder_dir, out3, third, out4) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let seeder = Proc::spawn(
        seeder_dir.path(),
        &[
            "--json",
            "get",
            &s.ticket,
            "--out",
            out3.path().to_str().unwrap(),
            "--seed",
        ],
    );
    let seeding = loop {
        let v = seeder.next("seeding");
        if v["event"] == "seeding" {
            break v;
        }
    };
    drop(s);
    let run = get(
        third.path(),
        seeding["ticket"].as_str().unwrap(),
        out4.path(),
        &[],
    );
    finished(&run);
    assert_eq!(
        tree(&out4.path().join("Trip")),
        expected,
        "fetched from the seeder"
    );
}

#[test]
fn a_ticket_offering_its_sender_as_a_contact_adds_it_only_with_add_contact() {
    let (files, sender, receiver, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let file = files.path().join("route.gpx");
    std::fs::write(&file, b"<gpx/>").unwrap();
    let s = share(
        sender.path(),
        &[&file],
        &["--name", "Sam", "--offer-contact"],
    );

    let plain = get(receiver.path(), &s.ticket, &out.path().join("a"), &[]);
    finished(&plain);
    let offered = plain.1.iter().find(|v| v["event"] == "contact_offered");
    let offered = offered.unwrap_or_else(|| panic!("the offer is told: {:?}", plain.1));
    assert_eq!(offered["name"], "Sam");
    let code = offered["verification_code"].as_str().unwrap().to_string();
    let contacts = common::json_once(receiver.path(), &["contacts"]);
    assert!(
        contacts.is_empty(),
        "not without --add-contact: {contacts:?}"
    );

    let accepted = get(
        receiver.path(),
        &s.ticket,
        &out.path().join("b"),
        &["--add-contact"],
    );
    finished(&accepted);
    let added = accepted
        .1
        .iter()
        .find(|v| v["event"] == "contact_added")
        .unwrap();
    assert_eq!(
        (&added["name"], &added["verification_code"], &added["new"]),
        (&"Sam".into(), &code.as_str().into(), &true.into())
    );
    let contacts = common::json_once(receiver.path(), &["contacts"]);
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(
        (&contacts[0]["name"], &contacts[0]["via"]),
        (&"Sam".into(), &"ticket".into())
    );
    assert_eq!(contacts[0]["peer"], added["peer"]);
}

#[test]
fn malformed_truncated_and_wrong_checksum_tickets_are_one_clear_error_each() {
    let (files, sender, receiver, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let file = files.path().join("note.txt");
    std::fs::write(&file, b"hello").unwrap();
    let good = share(sender.path(), &[&file], &[]).ticket;

    let truncated = good[..good.len() - 12].to_string();
    // Change one character of the body to another base32 character: the checksum no longer matches.
    let mut chars: Vec<char> = good.chars().collect();
    let k = chars.len() / 2;
    chars[k] = if chars[k] == 'a' { 'b' } else { 'a' };
    let wrong_checksum: String = chars.into_iter().collect();
    let dest = out.path().join("dest");
    for (ticket, needle) in [
        ("hello", "not a meshdrop ticket"),
        ("meshdrop2abc!def", "invalid character '!'"),
        ("meshdrop1aaaa", "made by an older meshdrop"),
        ("meshdrop9aaaa", "unsupported ticket version 9"),
        (truncated.as_str(), "truncated"),
        (wrong_checksum.as_str(), "checksum mismatch"),
    ] {
        let (status, _, stderr) = get(receiver.path(), ticket, &dest, &[]);
        println!("{ticket:.20}… -> {}", stderr.trim());
        assert_one_line_error(&status, &stderr, needle);
    }
    let missing = files.path().join("nope.ticket");
    let (status, _, stderr) = Proc::spawn(
        receiver.path(),
        &["get", "--ticket-file", missing.to_str().unwrap()],
    )
    .finish();
    assert_one_line_error(&status, &stderr, "nope.ticket");
    assert!(!dest.exists(), "nothing was written for a bad ticket");
}

#[test]
fn a_get_with_no_one_in_reach_who_has_the_share_says_so_after_its_wait() {
    let (files, sender, receiver, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let file = files.path().join("trip.mp4");
    random_file(&file, MIB, 5);
    let ticket = share(sender.path(), &[&file], &[]).ticket;
    // The sharer is gone (its process ended with the `Sharer`): no one has the share.
    let (status, _, stderr) = get(receiver.path(), &ticket, out.path(), &["--wait", "1"]);
    println!("{}", stderr.trim());
    assert_one_line_error(
        &status,
        &stderr,
        "no one who has this share was in reach for ",
    );
    assert!(
        stderr
            .contains("the download is kept and resumes on the next `meshdrop get` of this ticket"),
        "{stderr}"
    );
    assert!(!out.path().join("trip.mp4").exists());
}

#[test]
fn many_small_files_never_run_out_of_file_descriptors() {
    // A roll of 3000 photos of 1 KiB, sent and received by processes that may hold at most 256
    // open files each (`ulimit -n 256`): one batch of the writer holds them all.
    let (files, sender, receiver, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let roll = files.path().join("roll");
    for i in 0..3000u64 {
        random_file(&roll.join(format!("IMG_{i:04}.jpg")), 1024, i);
    }
    let roll_arg = roll.to_str().unwrap();
    let sharer = Proc::spawn_limited(sender.path(), &["--json", "share", roll_arg], 256);
    let first = sharer.next("ticket line");
    let ticket = first["ticket"].as_str().unwrap().to_string();
    let out_arg = out.path().to_str().unwrap();
    let args = ["--json", "get", &ticket, "--out", out_arg];
    let run = Proc::spawn_limited(receiver.path(), &args, 256).finish();
    let done = finished(&run);
    assert_eq!(done["files"], 3000);
    assert_eq!(
        tree(&roll),
        tree(&out.path().join("roll")),
        "every photo equal"
    );
    drop(sharer);
}

#[test]
fn receiver_killed_with_sigkill_at_40_percent_resumes_and_refetches_at_most_one_batch() {
    let (files, sender, receiver, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let big = files.path().join("trip.mp4");
    let total = 64 * MIB;
    random_file(&big, total, 42);
    let s = share(sender.path(), &[&big], &[]);

    let out_arg = out.path().to_str().unwrap();
    let args = [
        "--json",
        "get",
        &s.ticket,
        "--out",
        out_arg,
        "--progress-every-chunk",
    ];
    let first = Proc::spawn(receiver.path(), &args);
    let mut last = loop {
        let v = first.next("progress at 40 %");
        assert_ne!(v["event"], "transfer_finished", "finished before 40 %: {v}");
        if v["event"] == "transfer_progress" {
            assert_eq!(v["total"], total);
            if v["done"].as_u64().unwrap() * 10 >= total * 4 {
                break v;
            }
        }
    };
    nix::sys::signal::kill(first.pid(), nix::sys::signal::Signal::SIGKILL).unwrap();
    // Progress is printed after every verified chunk: whatever the receiver printed before it
    // died is still in the pipe, and its last line is what it had received.
    let (status, rest, _) = first.finish();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL");
    if let Some(v) = rest
        .iter()
        .rev()
        .find(|v| v["event"] == "transfer_progress")
    {
        last = v.clone();
    }
    assert!(
        rest.iter().all(|v| v["event"] != "transfer_finished"),
        "killed before the end"
    );
    let r1 = last["received"].as_u64().unwrap();
    println!(
        "killed at {} of {total} bytes done ({:.0} %), received {r1}",
        last["done"],
        last["done"].as_u64().unwrap() as f64 * 100.0 / total as f64
    );
    assert!(!out.path().join("trip.mp4").exists(), "no final file yet");

    let run = Proc::spawn(receiver.path(), &args).finish();
    let done = finished(&run);
    assert_eq!(
        hash_of(&out.path().join("trip.mp4")),
        hash_of(&big),
        "bytes equal"
    );
    let resumed = done["resumed"].as_u64().unwrap();
    let fetched = done["fetched"].as_u64().unwrap();
    assert!(resumed > 0, "the second run resumed: {done}");
    let twice = (r1 + fetched).saturating_sub(total);
    println!(
        "bytes fetched twice: {twice} ({:.2} MiB; run 1 received {r1}, run 2 fetched {fetched}, \
         resumed {resumed}); bound {REFETCH_BOUND}",
        twice as f64 / MIB as f64
    );
    assert!(
        twice <= REFETCH_BOUND,
        "{twice} bytes fetched twice, more than one batch ({REFETCH_BOUND})"
    );
}

/// A tmpfs of `size` mounted on a fresh temporary folder, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .expect("id runs")
            .stdout;
        assert_eq!(
            String::from_utf8_lossy(&uid).trim(),
            "0",
            "this test mounts a tmpfs and must run as root (as CI does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "mount -t tmpfs failed: {status:?}");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Fills the file system of `path` with junk until it is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0x5au8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    written
}

#[test]
fn a_destination_without_enough_space_is_refused_before_anything_is_written() {
    let disk = Tmpfs::mount("16m");
    let (files, sender, receiver) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let video = files.path().join("video.mp4");
    random_file(&video, 12 * MIB, 7);
    let junk = disk.path().join("junk");
    random_file(&junk, 6 * MIB, 8);
    let s = share(sender.path(), &[&video], &[]);
    let dest = disk.path().join("dest");

    let (status, _, stderr) = get(receiver.path(), &s.ticket, &dest, &[]);
    println!("{}", stderr.trim());
    assert_one_line_error(&status, &stderr, "not enough free space");
    assert_eq!(
        std::fs::read_dir(&dest).map(|d| d.count()).unwrap_or(0),
        0,
        "nothing written"
    );

    std::fs::remove_file(&junk).unwrap();
    let done = finished(&get(receiver.path(), &s.ticket, &dest, &[]));
    assert_eq!(done["fetched"], 12 * MIB);
    assert_eq!(hash_of(&dest.join("video.mp4")), hash_of(&video));
}

#[test]
fn a_disk_that_fills_up_mid_transfer_keeps_the_partial_data_and_resumes_after_space_is_freed() {
    let disk = Tmpfs::mount("40m");
    let (files, sender, receiver) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let total = 32 * MIB;
    let video = files.path().join("video.mp4");
    random_file(&video, total, 9);
    let s = share(sender.path(), &[&video], &[]);
    let dest = disk.path().join("dest");
    let junk = disk.path().join("junk");

    // The free-space check passes; once some chunks are on disk the receiver is frozen, the disk
    // filled to the last byte, and the receiver let go: its next write finds no space.
    let args = [
        "--json",
        "get",
        &s.ticket,
        "--out",
        dest.to_str().unwrap(),
        "--progress-every-chunk",
    ];
    let first = Proc::spawn(receiver.path(), &args);
    let at = loop {
        let v = first.next("progress");
        assert_ne!(v["event"], "transfer_finished", "finished too early: {v}");
        if v["event"] == "transfer_progress" && v["done"].as_u64().unwrap() * 10 >= total {
            break v["done"].as_u64().unwrap();
        }
    };
    use nix::sys::signal::{Signal, kill};
    kill(first.pid(), Signal::SIGSTOP).unwrap();
    let filled = fill(&junk);
    kill(first.pid(), Signal::SIGCONT).unwrap();
    println!("stopped the receiver at {at} bytes, filled the disk with {filled} bytes");
    let (status, lines, stderr) = first.finish();
    println!("{}", stderr.trim());
    assert!(
        lines.iter().all(|v| v["event"] != "transfer_finished"),
        "the download cannot finish on a full disk"
    );
    assert_one_line_error(&status, &stderr, "disk is full");
    let kept: Vec<_> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        kept.iter()
            .any(|n| n.starts_with(".video.mp4.") && n.ends_with(".meshdrop-part")),
        "partial data kept: {kept:?}"
    );

    std::fs::remove_file(&junk).unwrap();
    let done = finished(&Proc::spawn(receiver.path(), &args).finish());
    assert_eq!(hash_of(&dest.join("video.mp4")), hash_of(&video));
    let resumed = done["resumed"].as_u64().unwrap();
    assert!(resumed > 0, "the partial data was used: {done}");
    assert!(
        resumed + done["fetched"].as_u64().unwrap() >= total,
        "{done}"
    );
}
