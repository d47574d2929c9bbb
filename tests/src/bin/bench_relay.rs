//! Relay figures: one share fetched between two homes behind NAT routers (`meshdrop_tests::nat`),
//! three ways, each in a fresh lab: through the relay (routers that defeat hole punching), over
//! the direct connection hole punching opened (routers that keep ports), and, for reference,
//! straight from a seeder on the public network. For each: the receiver's wall time, its rate,
//! the time from starting `meshdrop get` to the first byte of the share, and the rate from then on
//! (a stream to a peer reached only through a relay first waits up to 2 s for hole punching).
//!
//! Prints a markdown table. Usage: `bench_relay [--size-mib N]` (as root; see
//! `scripts/bench-relay.sh`, which builds the binaries).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use meshdrop_tests::nat::{NatKind, NatLab};
use meshdrop_tests::process::MeshdropProcess;
use serde_json::Value;
use tempfile::TempDir;

const STEP: Duration = Duration::from_secs(30);

/// Where the seeder sits.
#[derive(Clone, Copy, PartialEq)]
enum Seeder {
    /// Behind the other home's NAT, reachable through the relay.
    Home,
    /// On the public network, next to the relay.
    Public,
}

struct Row {
    path: &'static str,
    secs: f64,
    mib_per_s: f64,
    first_byte_ms: f64,
    via: String,
}

fn main() -> Result<()> {
    let mut size_mib: usize = 256;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--size-mib" => size_mib = args.next().context("--size-mib N")?.parse()?,
            other => bail!("unknown argument {other}; usage: bench_relay [--size-mib N]"),
        }
    }
    let runs = [
        ("through the relay", NatKind::Symmetric, Seeder::Home),
        (
            "hole-punched, direct",
            NatKind::PortPreserving,
            Seeder::Home,
        ),
        (
            "public seeder, direct",
            NatKind::PortPreserving,
            Seeder::Public,
        ),
    ];
    let mut rows = Vec::new();
    for (path, kind, seeder) in runs {
        eprintln!("{path}…");
        rows.push(run(path, kind, seeder, size_mib)?);
    }
    println!(
        "| {size_mib} MiB | wall s | MiB/s | first byte after | MiB/s from the first byte | connection at the end |"
    );
    println!("|---|---|---|---|---|---|");
    for r in rows {
        let streaming = r.secs - r.first_byte_ms / 1000.0;
        println!(
            "| {} | {:.2} | {:.0} | {:.0} ms | {:.0} | {} |",
            r.path,
            r.secs,
            r.mib_per_s,
            r.first_byte_ms,
            size_mib as f64 / streaming,
            r.via
        );
    }
    Ok(())
}

fn run(path: &'static str, kind: NatKind, seeder: Seeder, size_mib: usize) -> Result<Row> {
    let lab = NatLab::new(kind)?;
    let dirs = [TempDir::new()?, TempDir::new()?, TempDir::new()?];
    let relay_bind = lab.relay().addr().to_string();
    let mut relay = MeshdropProcess::spawn_raw(
        Some(lab.relay()),
        dirs[2].path(),
        "relay",
        &["--json", "--bind", &relay_bind, "relay", "--allow-private"],
    )?;
    let ready = relay.wait_for(|v| v["event"] == "relay_listening", STEP)?;
    let relay_addr = ready["addrs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find(|a| a.contains("/tcp/"))
        .context("no TCP relay address")?
        .to_string();

    let file = dirs[0].path().join("share.bin");
    meshdrop_tests::random_file(&file, size_mib << 20, 3);
    let file_arg = file.to_string_lossy().into_owned();
    let host = match seeder {
        Seeder::Home => lab.home(0),
        Seeder::Public => lab.relay(),
    };
    let bind = host.addr().to_string();
    let mut share = MeshdropProcess::spawn_raw(
        Some(host),
        dirs[0].path(),
        "share",
        &[
            "--json",
            "--no-mdns",
            "--bind",
            &bind,
            "--relay",
            &relay_addr,
            "share",
            &file_arg,
        ],
    )?;
    let ticket = share.wait_for(|v| v["event"] == "ticket", STEP)?["ticket"]
        .as_str()
        .context("no ticket")?
        .to_string();

    let out = dirs[1].path().join("out");
    let start = Instant::now();
    let mut get = MeshdropProcess::spawn_get(
        lab.home(1),
        dirs[1].path(),
        "get",
        &ticket,
        &out,
        &["--progress-every-chunk"],
    )?;
    get.wait_for(
        |v| v["event"] == "transfer_progress" && v["received"].as_u64().unwrap_or(0) > 0,
        Duration::from_secs(120),
    )?;
    let first_at = get
        .events()
        .iter()
        .find(|e| {
            e.value["event"] == "transfer_progress" && e.value["received"].as_u64().unwrap_or(0) > 0
        })
        .map(|e| e.at)
        .context("no progress")?;
    get.wait_for(
        |v| v["event"] == "transfer_finished",
        Duration::from_secs(600),
    )?;
    let secs = start.elapsed().as_secs_f64();
    ensure!(
        get.wait_exit(STEP)?.success(),
        "get failed: {}",
        get.stderr()
    );
    ensure!(
        std::fs::read(out.join("share.bin"))? == std::fs::read(&file)?,
        "bytes differ"
    );
    let events: Vec<Value> = get.events().iter().map(|e| e.value.clone()).collect();
    let via = if events.iter().any(|v| v["event"] == "connection_upgraded") {
        "direct (upgraded from relayed)"
    } else if events
        .iter()
        .any(|v| v["event"] == "peer_connected" && v["transport"] == "relay")
    {
        "relayed"
    } else {
        "direct"
    };
    share.terminate(STEP)?;
    relay.terminate(STEP)?;
    Ok(Row {
        path,
        secs,
        mib_per_s: size_mib as f64 / secs,
        first_byte_ms: (first_at - start).as_secs_f64() * 1000.0,
        via: via.to_string(),
    })
}
