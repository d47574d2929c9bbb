//! The `meshdrop` command as a user meets it: clear one-line errors with a non-zero exit for bad
//! input, and commands that reach the node running on the same data dir over its control socket.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{BIN, Proc, assert_one_line_error};

fn meshdrop(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("meshdrop runs")
}

/// Asserts a failed run whose stderr is one `error:` line containing `needle`; returns stderr.
fn assert_fails(out: &Output, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_one_line_error(&out.status, &stderr, needle);
    stderr
}

/// A `meshdrop run` on loopback without mDNS, with its JSON event lines.
fn running(data_dir: &Path, name: &str) -> Proc {
    Proc::spawn(data_dir, &["--name", name, "--json", "run"])
}

#[test]
fn id_prints_the_same_peer_id_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = meshdrop(dir.path(), &["--name", "trip laptop", "--json", "id"]);
    assert!(first.status.success());
    let v: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(v["event"], "id");
    assert_eq!(v["name"], "trip laptop");
    let again = meshdrop(dir.path(), &["--json", "id"]);
    let w: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["peer"], w["peer"]);
    assert_eq!(w["name"], "trip laptop", "the name is kept");
}

#[test]
fn a_data_dir_that_is_a_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let out = meshdrop(&file, &["id"]);
    assert_fails(&out, "not a directory");
}

#[test]
fn an_unreadable_data_dir_is_a_clear_error() {
    // Root reads everything: run the check as the unprivileged user `nobody`.
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = tempfile::tempdir().unwrap();
    let bin = bin_dir.path().join("meshdrop");
    std::fs::copy(BIN, &bin).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    let is_root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let mut cmd = if is_root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin);
        c
    } else {
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        Command::new(&bin)
    };
    let out = cmd
        .env("HOME", "/nonexistent")
        .arg("--data-dir")
        .arg(locked.join("meshdrop"))
        .arg("id")
        .output()
        .unwrap();
    let err = assert_fails(&out, "Permission denied");
    assert!(err.contains(&locked.display().to_string()), "{err}");
}

#[test]
fn a_corrupt_identity_is_named_and_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    assert!(meshdrop(dir.path(), &["id"]).status.success());
    let key = dir.path().join("identity.key");
    std::fs::write(&key, b"not a key").unwrap();
    let out = meshdrop(dir.path(), &["id"]);
    assert_fails(&out, &key.display().to_string());
    assert_eq!(std::fs::read(&key).unwrap(), b"not a key", "left untouched");
}

#[test]
fn an_invalid_multiaddr_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = meshdrop(dir.path(), &["connect", "192.168.1.7:4001"]);
    assert_fails(&out, "invalid multiaddr \"192.168.1.7:4001\"");
}

#[test]
fn a_second_run_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = running(dir.path(), "one");
    first.wait_for("listening");
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--bind", "127.0.0.1", "--no-mdns", "run"])
        .output()
        .unwrap();
    assert_fails(&out, "already running");
}

#[test]
fn commands_reach_the_running_node_over_its_control_socket() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = running(da.path(), "alice");
    let b = running(db.path(), "bob");
    a.wait_for("listening");
    let bl = b.wait_for("listening");
    let b_peer = bl["peer"].as_str().unwrap().to_string();
    let b_addr = bl["addrs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .find(|a| a.contains("/tcp/"))
        .unwrap()
        .to_string();

    let out = meshdrop(
        da.path(),
        &["--json", "connect", &format!("{b_addr}/p2p/{b_peer}")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["event"], "connected");
    assert_eq!(v["peer"], b_peer.as_str());
    let connected = a.wait_for("peer_connected");
    assert_eq!(connected["peer"], b_peer.as_str());
    assert_eq!(connected["verification_code"], v["verification_code"]);

    let out = meshdrop(da.path(), &["--json", "peers"]);
    assert!(out.status.success());
    let peers: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let bob = peers
        .iter()
        .find(|p| p["peer"] == b_peer.as_str())
        .expect("bob listed");
    assert_eq!(bob["event"], "peer");
    assert_eq!(bob["connected"], true);
}

#[test]
fn a_relay_prints_its_addresses_first_and_nodes_reserve_a_slot_on_it() {
    let dir = tempfile::tempdir().unwrap();
    // Loopback only, port chosen by the system: what a user runs with --bind PUBLIC_IP.
    let relay = Proc::start(
        dir.path(),
        &["--bind", "127.0.0.1"],
        &["relay", "--port", "0"],
        false,
    );
    let first = relay.next("the relay's first line");
    let addr = first.as_str().expect("a plain line, not JSON").to_string();
    assert!(
        addr.parse::<meshdrop_core::Multiaddr>().is_ok()
            && addr.starts_with("/ip4/127.0.0.1/")
            && addr.contains("/p2p/12D3Koo"),
        "first line is not a relay address: {addr}"
    );

    // A node given that address holds a slot and says where it is reachable through it.
    let node_dir = tempfile::tempdir().unwrap();
    let node = Proc::spawn(node_dir.path(), &["--json", "--relay", &addr, "run"]);
    let reserved = node.wait_for("relay_reserved");
    let relayed = reserved["addr"].as_str().unwrap();
    let relay_id = addr.rsplit("/p2p/").next().unwrap();
    assert!(
        relayed.starts_with("/ip4/127.0.0.1/")
            && relayed.contains(&format!("/p2p/{relay_id}/p2p-circuit/p2p/")),
        "{reserved}"
    );
}

#[test]
fn a_relay_address_without_its_peer_id_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = meshdrop(
        dir.path(),
        &[
            "--bind",
            "127.0.0.1",
            "--no-mdns",
            "--relay",
            "/ip4/127.0.0.1/tcp/4001",
            "peers",
            "--timeout",
            "0",
        ],
    );
    assert_fails(&out, "a relay address ends in /p2p/<relay peer id>");
}

/// The JSON lines of a successful run.
fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn contacts_are_added_by_code_renamed_and_removed_without_a_running_node() {
    let (mine, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let id = json_lines(&meshdrop(theirs.path(), &["--json", "id"]));
    let ana = id[0]["peer"].as_str().unwrap();
    assert!(json_lines(&meshdrop(mine.path(), &["--json", "contacts"])).is_empty());

    // A name a device claims needs a node to have heard it.
    let out = meshdrop(mine.path(), &["contacts", "add", "ana", "--name", "Ana"]);
    assert_fails(&out, "known only to a running node");
    // Added without a code: the code to compare is printed.
    let added = json_lines(&meshdrop(
        mine.path(),
        &["--json", "contacts", "add", ana, "--name", "Ana"],
    ));
    assert_eq!(
        (&added[0]["peer"], &added[0]["new"]),
        (&ana.into(), &true.into())
    );
    let code = added[0]["verification_code"].as_str().unwrap().to_string();
    let text = meshdrop(mine.path(), &["contacts", "remove", "Ana"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("is a stranger again"));

    // With the code read on the other screen: a wrong one adds nothing, the right one does.
    let wrong = if code == "111 111" {
        "222 222"
    } else {
        "111 111"
    };
    let out = meshdrop(
        mine.path(),
        &["contacts", "add", ana, "--name", "Ana", "--code", wrong],
    );
    assert_fails(&out, "the codes differ");
    assert!(json_lines(&meshdrop(mine.path(), &["--json", "contacts"])).is_empty());
    let text = meshdrop(
        mine.path(),
        &["contacts", "add", ana, "--name", "Ana", "--code", &code],
    );
    let said = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        said.contains(&format!("verification code {code}: it matches")),
        "{said}"
    );

    json_lines(&meshdrop(
        mine.path(),
        &["--json", "contacts", "rename", ana, "Ana B"],
    ));
    let listed = json_lines(&meshdrop(mine.path(), &["--json", "contacts", "list"]));
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (&listed[0]["event"], &listed[0]["name"], &listed[0]["via"]),
        (&"contact".into(), &"Ana B".into(), &"code".into())
    );
    assert_eq!(listed[0]["verification_code"], code.as_str());
    assert_fails(
        &meshdrop(mine.path(), &["contacts", "remove", "Ana"]),
        "is not a contact",
    );
    json_lines(&meshdrop(
        mine.path(),
        &["--json", "contacts", "remove", "Ana B"],
    ));
    assert!(json_lines(&meshdrop(mine.path(), &["--json", "contacts"])).is_empty());
}

#[test]
fn the_running_nodes_visibility_is_shown_and_changed_until_changed_again() {
    let dir = tempfile::tempdir().unwrap();
    assert_fails(&meshdrop(dir.path(), &["visibility"]), "no node runs");
    let node = Proc::spawn(dir.path(), &["--visible", "off", "--json", "run"]);
    assert_eq!(node.wait_for("receiving")["visible"], "off");
    node.wait_for("listening");
    let now = |args: &[&str]| json_lines(&meshdrop(dir.path(), args))[0]["visible"].clone();
    assert_eq!(now(&["--json", "visibility"]), "off");
    assert_eq!(now(&["--json", "visibility", "everyone"]), "everyone");
    assert_eq!(now(&["--json", "visibility"]), "everyone");
}

#[test]
fn the_demo_adds_a_contact_by_code_before_its_offer_lands() {
    let dir = tempfile::tempdir().unwrap();
    let lines = json_lines(&meshdrop(dir.path(), &["--json", "demo", "--nodes", "2"]));
    let at = |event: &str| {
        lines
            .iter()
            .position(|v| v["event"] == event)
            .unwrap_or_else(|| panic!("{event} in {lines:?}"))
    };
    let (refused, added, delivered) = (
        at("demo_offer_refused"),
        at("demo_contact_added"),
        at("demo_offer_delivered"),
    );
    assert!(refused < added && added < delivered, "{lines:?}");
    let contact = &lines[added];
    assert_eq!(contact["codes_match"], true);
    assert_eq!(contact["code_on_receiver"], contact["code_on_sender"]);
    assert_eq!(
        (&lines[delivered]["verified"], &lines[delivered]["shown_as"]),
        (&true.into(), &contact["name"])
    );
    assert_eq!(lines.last().unwrap()["event"], "demo_finished");
}
