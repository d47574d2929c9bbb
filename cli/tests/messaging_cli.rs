//! Messaging from the command line: `msg` (to a peer id or a device's name, with `--attach`),
//! `inbox --json`, `room create|join` and `chat`, through the node running on the data dir (its
//! control socket), or with none running (stays queued).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Proc, assert_one_line_error};
use serde_json::Value;

fn meshdrop(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(common::BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("meshdrop runs")
}

/// The JSON lines a successful command printed.
fn json_lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// Waits for an event named `event` whose `pick` field is `value`.
fn wait_event(p: &Proc, event: &str, pick: impl Fn(&Value) -> bool) -> Value {
    loop {
        let v = p.wait_for(event);
        if pick(&v) {
            return v;
        }
    }
}

/// Alice adds bob by the name his device claims and reads the code to him; bob adds alice by
/// peer id and that code (a wrong code adds nothing). Both nodes run.
fn befriend((da, a_peer): (&Path, &str), (db, b_peer): (&Path, &str)) {
    let added = json_lines(&meshdrop(
        da,
        &["--json", "contacts", "add", "bob", "--name", "bob"],
    ));
    assert_eq!(added[0]["peer"], b_peer);
    let code = added[0]["verification_code"].as_str().expect("a code");
    let wrong = [
        "contacts", "add", a_peer, "--name", "alice", "--code", "000 000",
    ];
    let wrong = meshdrop(db, &wrong);
    if code != "000 000" {
        let stderr = String::from_utf8_lossy(&wrong.stderr).to_string();
        assert_one_line_error(&wrong.status, &stderr, "the codes differ");
        assert!(json_lines(&meshdrop(db, &["--json", "contacts"])).is_empty());
    }
    let right = [
        "--json", "contacts", "add", a_peer, "--name", "alice", "--code", code,
    ];
    let checked = json_lines(&meshdrop(db, &right));
    assert_eq!(checked[0]["code_checked"], true);
}

#[test]
fn a_message_and_a_room_line_go_through_the_running_nodes() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Proc::spawn(da.path(), &["--name", "alice", "--json", "run"]);
    let b = Proc::spawn(db.path(), &["--name", "bob", "--json", "run"]);
    let al = a.wait_for("listening");
    let bl = b.wait_for("listening");
    let (a_peer, b_peer) = (al["peer"].as_str().unwrap(), bl["peer"].as_str().unwrap());
    let b_addr = bl["addrs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|a| a.contains("/tcp/"))
        .unwrap()
        .to_string();
    json_lines(&meshdrop(
        da.path(),
        &["--json", "connect", &format!("{b_addr}/p2p/{b_peer}")],
    ));
    // Once alice's node hears the name bob's device claims, they become contacts.
    wait_event(&a, "peer_identified", |v| v["name"] == "bob");
    befriend((da.path(), a_peer), (db.path(), b_peer));
    let queued = json_lines(&meshdrop(da.path(), &["--json", "msg", "bob", "hello bob"]));
    assert_eq!(queued[0]["event"], "message_queued");
    let id = queued[0]["id"].as_str().unwrap().to_string();
    let got = wait_event(&b, "message_received", |v| {
        v["message"]["id"] == id.as_str()
    });
    assert_eq!(got["message"]["text"], "hello bob");
    wait_event(&a, "message_state_changed", |v| {
        v["id"] == id.as_str() && v["state"] == "delivered"
    });

    for (dir, from, to) in [(db.path(), a_peer, b_peer), (da.path(), a_peer, b_peer)] {
        let inbox = json_lines(&meshdrop(dir, &["--json", "inbox"]));
        assert_eq!(inbox.len(), 1, "{inbox:?}");
        let m = &inbox[0];
        assert_eq!(m["id"], id.as_str());
        assert_eq!(
            (m["from"].as_str(), m["to"].as_str()),
            (Some(from), Some(to))
        );
        assert_eq!(m["text"], "hello bob");
        assert_eq!(m["state"], "delivered");
        assert!(m["time"].as_u64().unwrap() > 0);
        assert!(m["attachment"].is_null());
    }
    let on_b = json_lines(&meshdrop(db.path(), &["--json", "inbox"]));
    assert_eq!(on_b[0]["from_name"], "alice", "bob sees who wrote");

    // A file attached to a message: bob's inbox shows the ticket, `get` fetches the same bytes.
    let files = tempfile::tempdir().unwrap();
    let photo = files.path().join("summit.jpg");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&photo, &bytes).unwrap();
    let queued = json_lines(&meshdrop(
        da.path(),
        &[
            "--json",
            "msg",
            "bob",
            "the summit",
            "--attach",
            photo.to_str().unwrap(),
        ],
    ));
    let id = queued[0]["id"].as_str().unwrap().to_string();
    let got = wait_event(&b, "message_received", |v| {
        v["message"]["id"] == id.as_str()
    });
    let ticket = got["message"]["attachment"].as_str().unwrap().to_string();
    assert!(ticket.starts_with("meshdrop2"), "{got}");
    let inbox = json_lines(&meshdrop(db.path(), &["--json", "inbox"]));
    let listed = inbox.iter().find(|m| m["id"] == id.as_str()).unwrap();
    assert_eq!(listed["attachment"], ticket.as_str());
    let (fetcher, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (status, _, stderr) = Proc::spawn(
        fetcher.path(),
        &[
            "--json",
            "get",
            &ticket,
            "--out",
            dest.path().to_str().unwrap(),
        ],
    )
    .finish();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        std::fs::read(dest.path().join("summit.jpg")).unwrap(),
        bytes
    );
    // Attachments are served for a while, unless pinned.
    let photo_arg = photo.to_str().unwrap();
    let pinned = [
        "--json", "msg", "bob", "keep it", "--attach", photo_arg, "--pin",
    ];
    json_lines(&meshdrop(da.path(), &pinned));
    let shares = json_lines(&meshdrop(da.path(), &["--json", "shares"]));
    let attached: Vec<&Value> = shares
        .iter()
        .filter(|s| s["kind"] == "attachment")
        .collect();
    assert_eq!(attached.len(), 2, "{shares:?}");
    let mut ends: Vec<Option<u64>> = attached
        .iter()
        .map(|s| {
            s["expires"]
                .as_u64()
                .map(|at| at - s["since"].as_u64().unwrap())
        })
        .collect();
    ends.sort();
    assert_eq!(
        ends,
        [None, Some(7 * 24 * 3600)],
        "a week, and pinned: {shares:?}"
    );

    // A room: alice creates it, bob joins by invite, a line typed in alice's chat reaches bob.
    let room = json_lines(&meshdrop(da.path(), &["--json", "room", "create", "camp"]));
    let invite = room[0]["invite"].as_str().unwrap();
    let joined = json_lines(&meshdrop(db.path(), &["--json", "room", "join", invite]));
    assert_eq!(joined[0]["id"], room[0]["id"]);
    let loopback = ["--bind", "127.0.0.1", "--no-mdns"];
    let mut chat = Proc::start(
        da.path(),
        &loopback,
        &["--json", "chat", "--room", "camp"],
        true,
    );
    chat.write_line("anyone at camp?");
    let line = wait_event(&b, "message_received", |v| {
        v["message"]["text"] == "anyone at camp?"
    });
    assert_eq!(
        line["message"]["to"],
        format!("room:{}", room[0]["id"].as_str().unwrap())
    );
}

#[test]
fn without_a_running_node_a_message_stays_queued_and_bad_input_is_a_clear_error() {
    let (da, nobody) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let to = json_lines(&meshdrop(nobody.path(), &["--json", "id"]))[0]["peer"]
        .as_str()
        .unwrap()
        .to_string();
    let out = meshdrop(
        da.path(),
        &[
            "--bind",
            "127.0.0.1",
            "--no-mdns",
            "--json",
            "msg",
            &to,
            "are you there?",
            "--wait",
            "1",
        ],
    );
    let queued = json_lines(&out);
    assert_eq!(queued[0]["state"], "queued");
    let inbox = json_lines(&meshdrop(da.path(), &["--json", "inbox"]));
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["state"], "queued");

    let out = meshdrop(
        da.path(),
        &[
            "--bind",
            "127.0.0.1",
            "--no-mdns",
            "msg",
            "not-a-peer",
            "hi",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_one_line_error(&out.status, &stderr, "is not a peer id");
    let out = meshdrop(da.path(), &["room", "join", "hello"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_one_line_error(&out.status, &stderr, "not a room invite");
}
