//! Discovery latency across network namespaces.
//!
//! Node A runs in one namespace of a two-host lab. Each run starts node B (fresh data dir, so a new
//! identity) in the other namespace and measures, from spawning B, until `peer_connected` is
//! reported on both sides; then B is stopped with SIGTERM and the run ends when A reports B lost or
//! disconnected. For reference, in the same run (after the meshdrop runs, so that its queries cannot
//! perturb them), python-zeroconf browses from B's namespace and we time how long it takes to resolve
//! A's service (discovery only, no connection).
//!
//! Prints a markdown table (min, median, max) and whether the goal (median ≤ 1 s) is met.
//!
//! Usage: `bench_discovery [--runs N] [--goal-ms MS] [--no-zeroconf] [--check]` (as root; see
//! `scripts/bench-discovery.sh`). `--check` exits 1 when the goal is missed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use meshdrop_tests::netns::Lab;
use meshdrop_tests::process::{JsonProcess, MeshdropProcess};
use tempfile::TempDir;

const STEP: Duration = Duration::from_secs(30);

struct Options {
    runs: usize,
    goal: Duration,
    zeroconf: bool,
    check: bool,
}

fn parse_args() -> Result<Options> {
    let mut o = Options {
        runs: 10,
        goal: Duration::from_millis(1000),
        zeroconf: true,
        check: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => o.runs = args.next().context("--runs N")?.parse()?,
            "--goal-ms" => {
                o.goal = Duration::from_millis(args.next().context("--goal-ms MS")?.parse()?)
            }
            "--no-zeroconf" => o.zeroconf = false,
            "--check" => o.check = true,
            "-h" | "--help" => {
                println!(
                    "usage: bench_discovery [--runs N] [--goal-ms MS] [--no-zeroconf] [--check]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    if o.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(o)
}

/// One row of the result table.
struct Series {
    label: String,
    samples: Vec<Duration>,
    goal: Option<Duration>,
}

impl Series {
    fn new(label: &str, goal: Option<Duration>) -> Self {
        Self {
            label: label.to_owned(),
            samples: Vec::new(),
            goal,
        }
    }

    fn median(&self) -> Option<Duration> {
        let mut s = self.samples.clone();
        s.sort();
        let n = s.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(s[n / 2]),
            _ => Some((s[n / 2 - 1] + s[n / 2]) / 2),
        }
    }

    fn row(&self) -> String {
        let ms = |d: Option<Duration>| {
            d.map(|d| format!("{:.0} ms", d.as_secs_f64() * 1000.0))
                .unwrap_or_else(|| "–".into())
        };
        let goal = match (self.goal, self.median()) {
            (Some(g), Some(m)) => format!(
                "median ≤ {} ms: {}",
                g.as_millis(),
                if m <= g { "met" } else { "**missed**" }
            ),
            _ => String::new(),
        };
        format!(
            "| {} | {} | {} | {} | {} | {} |",
            self.label,
            self.samples.len(),
            ms(self.samples.iter().min().copied()),
            ms(self.median()),
            ms(self.samples.iter().max().copied()),
            goal
        )
    }
}

fn main() -> Result<()> {
    let o = parse_args()?;
    let lab = Lab::new(2)?;
    let dir_a = TempDir::new()?;
    let mut a = MeshdropProcess::spawn_in(Some(lab.host(0)), dir_a.path(), "bench-a", &[])?;
    let a_id = a.peer_id(STEP)?;
    eprintln!(
        "lab {}: A {a_id} at {}, B at {}",
        lab.prefix(),
        lab.host(0).addr(),
        lab.host(1).addr()
    );

    let mut listening = Series::new("meshdrop: spawn B → B listening", None);
    let mut discovered = Series::new("meshdrop: spawn B → B reports A discovered (mDNS)", None);
    let mut connected = Series::new(
        "meshdrop: spawn B → `peer_connected` on both sides",
        Some(o.goal),
    );
    let zc_version = zeroconf_version();
    let mut zeroconf = Series::new(
        &format!("python-zeroconf {zc_version}: spawn browser in B's ns → A's service resolved"),
        None,
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py/browse_meshdrop.py");

    for run in 1..=o.runs {
        let dir_b = TempDir::new()?;
        let mark = a.mark();
        let t0 = Instant::now();
        let mut b = MeshdropProcess::spawn_in(Some(lab.host(1)), dir_b.path(), "bench-b", &[])?;
        let l = b.wait_for_event(|v| v["event"] == "listening", STEP)?;
        let b_id = l.value["peer"]
            .as_str()
            .context("listening without peer")?
            .to_owned();
        let cb = b.wait_for_event(
            |v| v["event"] == "peer_connected" && v["peer"] == a_id.as_str(),
            STEP,
        )?;
        let ca = a.wait_for_event_after(
            mark,
            |v| v["event"] == "peer_connected" && v["peer"] == b_id.as_str(),
            STEP,
        )?;
        let both = ca.at.max(cb.at) - t0;
        listening.samples.push(l.at - t0);
        connected.samples.push(both);
        // Discovery may come after the connection when A dialled first; record it if it arrives.
        let d = b
            .wait_for_event(
                |v| v["event"] == "peer_discovered" && v["peer"] == a_id.as_str(),
                Duration::from_secs(5),
            )
            .ok();
        if let Some(d) = &d {
            discovered.samples.push(d.at - t0);
        }
        eprintln!(
            "run {run}: listening {:?}, discovered {:?}, connected both {:?}",
            l.at - t0,
            d.map(|d| d.at - t0),
            both
        );

        let status = b.terminate(Duration::from_secs(10))?;
        if !status.success() {
            bail!("B exited with {status} on SIGTERM\n{}", b.diagnostics());
        }
        a.wait_for_after(
            mark,
            |v| {
                (v["event"] == "peer_lost" || v["event"] == "peer_disconnected")
                    && v["peer"] == b_id.as_str()
            },
            STEP,
        )?;
        drop(b);
    }

    // The reference after all meshdrop runs, so its queries cannot perturb them.
    if o.zeroconf {
        for _ in 0..o.runs {
            let logs = TempDir::new()?;
            let mut cmd = lab.host(1).exec("python3");
            cmd.arg(&script)
                .args(["--timeout", "20", "--expect-peer", &a_id]);
            let t0 = Instant::now();
            let mut browser = JsonProcess::spawn(cmd, "zeroconf-browser", logs.path())?;
            let s = browser.wait_for_event(
                |v| v["event"] == "service" && v["properties"]["peer"] == a_id.as_str(),
                Duration::from_secs(25),
            )?;
            zeroconf.samples.push(s.at - t0);
            browser.wait_exit(Duration::from_secs(10))?;
        }
    }
    a.terminate(Duration::from_secs(10))?;

    println!(
        "\n### Discovery latency across network namespaces ({} runs, fresh B each run)\n",
        o.runs
    );
    println!("| measurement | runs | min | median | max | goal |");
    println!("|---|---|---|---|---|---|");
    for s in [&listening, &discovered, &connected] {
        println!("{}", s.row());
    }
    if o.zeroconf {
        println!("{}", zeroconf.row());
    }
    let met = connected.median().is_some_and(|m| m <= o.goal);
    println!(
        "\nGoal (median spawn → connected on both sides ≤ {} ms): {}",
        o.goal.as_millis(),
        if met { "MET" } else { "MISSED" }
    );
    if o.check && !met {
        std::process::exit(1);
    }
    Ok(())
}

fn zeroconf_version() -> String {
    std::process::Command::new("python3")
        .args(["-c", "import zeroconf; print(zeroconf.__version__)"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "(not installed)".into())
}
