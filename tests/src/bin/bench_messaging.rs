//! Messaging over a ring of nodes in one process on 127.0.0.1 (issue 5, "Benchmark").
//!
//! Twenty nodes (mDNS off) are each connected to their two neighbours and all join one room.
//!
//! - Ring: one node writes a room message; we time until every other node reported it
//!   (`message_received`), and count the envelopes all nodes handed to peers for it
//!   ([`meshdrop_core::messaging::MessageStats::sent`], read once the counters stopped moving),
//!   divided by the number of nodes. The writer changes from message to message.
//! - Partition healed: the two links between the halves of the ring are cut (the two nodes at
//!   the edge of one half are restarted and reconnected inside their half only), nodes on both
//!   sides write, each half catches up within itself, then both links are dialled again; we time
//!   from the dials until every node has every message.
//!
//! At the end every node must hold every message exactly once, in the same order.
//! Prints markdown tables (min, median, max) and whether the goals are met (every sample within).
//!
//! Usage: `bench_messaging [--nodes N] [--messages N] [--runs N] [--per-side N] [--check]`
//! (see `scripts/bench-messaging.sh`). `--check` exits 1 when a goal is missed.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use libp2p::multiaddr::Protocol;
use meshdrop_core::{Event, MessageId, Multiaddr, Node, NodeConfig, RoomId, Transport};
use tempfile::TempDir;
use tokio::sync::broadcast;
use tokio::task::JoinSet;

/// How long one message (or one heal) may take before the benchmark gives up.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The transmission counters are read once they did not move for this long.
const QUIET: Duration = Duration::from_millis(500);
/// Goal: a message reaches every node of the ring within this time.
const GOAL_RING: Duration = Duration::from_secs(3);
/// Goal: at most this many envelopes sent per node per message.
const GOAL_TRANSMISSIONS: f64 = 2.0;
/// Goal: after a heal, every node has every message within this time.
const GOAL_HEAL: Duration = Duration::from_secs(2);

struct Options {
    nodes: usize,
    messages: usize,
    runs: usize,
    per_side: usize,
    check: bool,
}

fn parse_args() -> Result<Options> {
    let mut o = Options {
        nodes: 20,
        messages: 10,
        runs: 5,
        per_side: 5,
        check: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut number = |flag: &str| -> Result<usize> {
            args.next()
                .with_context(|| format!("{flag} N"))?
                .parse()
                .with_context(|| format!("{flag} N"))
        };
        match a.as_str() {
            "--nodes" => o.nodes = number("--nodes")?,
            "--messages" => o.messages = number("--messages")?,
            "--runs" => o.runs = number("--runs")?,
            "--per-side" => o.per_side = number("--per-side")?,
            "--check" => o.check = true,
            "-h" | "--help" => {
                println!(
                    "usage: bench_messaging [--nodes N] [--messages N] [--runs N] [--per-side N] [--check]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    ensure!(
        o.nodes >= 4 && o.nodes.is_multiple_of(2),
        "--nodes must be even and at least 4"
    );
    ensure!(
        o.messages >= 1 && o.runs >= 1 && o.per_side >= 1,
        "--messages, --runs and --per-side must be at least 1"
    );
    Ok(o)
}

/// How a series is shown.
#[derive(Clone, Copy)]
enum Unit {
    Millis,
    Ratio,
}

/// One row of a result table.
struct Series {
    label: String,
    unit: Unit,
    samples: Vec<f64>,
    goal: Option<f64>,
}

impl Series {
    fn new(label: &str, unit: Unit, goal: Option<f64>) -> Self {
        Self {
            label: label.to_owned(),
            unit,
            samples: Vec::new(),
            goal,
        }
    }

    fn push_duration(&mut self, d: Duration) {
        self.samples.push(d.as_secs_f64() * 1000.0);
    }

    fn sorted(&self) -> Vec<f64> {
        let mut s = self.samples.clone();
        s.sort_by(f64::total_cmp);
        s
    }

    fn median(&self) -> Option<f64> {
        let s = self.sorted();
        let n = s.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(s[n / 2]),
            _ => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
        }
    }

    fn max(&self) -> Option<f64> {
        self.sorted().last().copied()
    }

    fn show(&self, v: Option<f64>) -> String {
        match (v, self.unit) {
            (None, _) => "–".into(),
            (Some(v), Unit::Millis) => format!("{v:.0} ms"),
            (Some(v), Unit::Ratio) => format!("{v:.2}"),
        }
    }

    /// Whether every sample is within the goal (`None` without a goal).
    fn met(&self) -> Option<bool> {
        let goal = self.goal?;
        Some(self.max().is_some_and(|m| m <= goal))
    }

    fn row(&self) -> String {
        let goal = match (self.goal, self.met()) {
            (Some(g), Some(met)) => format!(
                "≤ {}: {}",
                self.show(Some(g)),
                if met { "met" } else { "**missed**" }
            ),
            _ => String::new(),
        };
        format!(
            "| {} | {} | {} | {} | {} | {} |",
            self.label,
            self.samples.len(),
            self.show(self.sorted().first().copied()),
            self.show(self.median()),
            self.show(self.max()),
            goal
        )
    }
}

fn print_table(title: &str, rows: &[&Series]) {
    println!("\n### {title}\n");
    println!("| measurement | samples | min | median | max | goal (every sample) |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!("{}", r.row());
    }
}

fn config(dir: &Path, name: &str) -> NodeConfig {
    let mut c = NodeConfig::loopback(dir).with_name(name).with_mdns(false);
    // A restarted node must not redial the peers of its previous life (that would heal the split).
    c.redial_recent = Duration::ZERO;
    c
}

/// Starts node `i` and drains the receiver that holds its start-up events.
async fn start(dir: &Path, i: usize) -> Result<Node> {
    let node = Node::start(config(dir, &format!("node-{i:02}")))
        .await
        .with_context(|| format!("starting node {i}"))?;
    drop(node.events());
    Ok(node)
}

fn addr_of(node: &Node) -> Result<Multiaddr> {
    Ok(node
        .listen_addrs()
        .into_iter()
        .find(|a| Transport::of(a) == Transport::Tcp)
        .context("a node listens on TCP")?
        .with(Protocol::P2p(node.peer_id())))
}

async fn link(from: &Node, to: &Node) -> Result<()> {
    from.connect(addr_of(to)?)
        .await
        .with_context(|| format!("{} connects to {}", from.name(), to.name()))?;
    Ok(())
}

/// Waits until `events` brought every text in `want`; returns when the last one came.
async fn receive_all(
    mut events: broadcast::Receiver<Event>,
    mut want: HashSet<String>,
    who: String,
) -> Result<Instant> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut last = Instant::now();
    while !want.is_empty() {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(Event::MessageReceived { message })) => {
                if want.remove(&message.text) {
                    last = Instant::now();
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                bail!("{who} missed {n} events (event channel lagged)")
            }
            Ok(Err(broadcast::error::RecvError::Closed)) => bail!("{who} stopped"),
            Err(_) => bail!(
                "{who} still lacks {} message(s) after {TIMEOUT:?}: {want:?}",
                want.len()
            ),
        }
    }
    Ok(last)
}

/// Watches nodes `who` (subscribed now, before anything is written) for the texts `want`.
fn watch(
    set: &mut JoinSet<Result<Instant>>,
    nodes: &[Node],
    who: &[usize],
    want: &HashSet<String>,
) {
    for &i in who {
        set.spawn(receive_all(
            nodes[i].events(),
            want.clone(),
            nodes[i].name().to_owned(),
        ));
    }
}

/// When the last watched node got the last text; every node that fails is named.
async fn last_arrival(mut set: JoinSet<Result<Instant>>, t0: Instant) -> Result<Instant> {
    let mut last = t0;
    let mut failures = Vec::new();
    while let Some(r) = set.join_next().await {
        match r? {
            Ok(at) => last = last.max(at),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if !failures.is_empty() {
        failures.sort();
        bail!(
            "{} node(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    Ok(last)
}

fn total_sent(nodes: &[Node]) -> Result<u64> {
    let mut sum = 0;
    for n in nodes {
        sum += n.message_stats()?.sent;
    }
    Ok(sum)
}

/// The envelopes sent by all nodes, once the counters stopped moving (late repeats included).
async fn settled_sent(nodes: &[Node]) -> Result<u64> {
    let step = Duration::from_millis(50);
    let started = Instant::now();
    let mut last = total_sent(nodes)?;
    let mut quiet = Duration::ZERO;
    while quiet < QUIET {
        ensure!(started.elapsed() < TIMEOUT, "envelopes still flowing");
        tokio::time::sleep(step).await;
        let now = total_sent(nodes)?;
        if now == last {
            quiet += step;
        } else {
            (last, quiet) = (now, Duration::ZERO);
        }
    }
    Ok(last)
}

/// Node `writer` writes a room message with `text`; waits until all others have it.
/// Returns the time until the last one had it and the envelopes sent for it.
async fn one_message(
    nodes: &[Node],
    room: RoomId,
    writer: usize,
    text: &str,
) -> Result<(Duration, u64)> {
    let others: Vec<usize> = (0..nodes.len()).filter(|&i| i != writer).collect();
    let want = HashSet::from([text.to_owned()]);
    let before = settled_sent(nodes).await?;
    let mut set = JoinSet::new();
    watch(&mut set, nodes, &others, &want);
    let t0 = Instant::now();
    nodes[writer].send_room_message(room, text)?;
    let last = last_arrival(set, t0).await?;
    let sent = settled_sent(nodes).await? - before;
    Ok((last - t0, sent))
}

struct Ring {
    dirs: Vec<TempDir>,
    nodes: Vec<Node>,
    room: RoomId,
}

async fn build_ring(n: usize) -> Result<Ring> {
    let started = Instant::now();
    let dirs = (0..n)
        .map(|_| TempDir::new())
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut nodes = Vec::new();
    for (i, dir) in dirs.iter().enumerate() {
        nodes.push(start(dir.path(), i).await?);
    }
    for i in 0..n {
        link(&nodes[i], &nodes[(i + 1) % n]).await?;
    }
    let room = nodes[0].create_room("bench")?;
    for node in &nodes[1..] {
        node.join_room(&room.invite)?;
    }
    eprintln!(
        "{n} nodes up, ring connected, room joined in {:?}",
        started.elapsed()
    );
    Ok(Ring {
        dirs,
        nodes,
        room: room.id,
    })
}

fn texts_of(node: &Node) -> Result<HashSet<String>> {
    Ok(node.messages()?.into_iter().map(|m| m.text).collect())
}

/// Cuts the links `a_edge`–`a_edge + 1` and `b_edge`–`0`: restarts both edge nodes (same data
/// dir, same identity) and reconnects each to its neighbour inside its half only.
async fn split(ring: &mut Ring, edges: [usize; 2]) -> Result<()> {
    // The nodes run with `redial_recent` zero, so a restarted edge node redials no one.
    for e in edges {
        ring.nodes[e].stop().await?;
        ring.nodes[e] = start(ring.dirs[e].path(), e).await?;
        link(&ring.nodes[e], &ring.nodes[e - 1]).await?;
    }
    Ok(())
}

/// Writes `per_side` messages from nodes spread over `side`, waits until the whole side has them.
async fn chat_in_half(
    ring: &Ring,
    side: &[usize],
    label: &str,
    per_side: usize,
) -> Result<HashSet<String>> {
    let lines: Vec<(usize, String)> = (0..per_side)
        .map(|k| {
            (
                side[(k * 3 + 1) % side.len()],
                format!("{label} message {k}"),
            )
        })
        .collect();
    // Subscribe everyone before anything is written; a writer waits for the others' lines only.
    let mut set = JoinSet::new();
    for &i in side {
        let want: HashSet<String> = lines
            .iter()
            .filter(|(writer, _)| *writer != i)
            .map(|(_, text)| text.clone())
            .collect();
        set.spawn(receive_all(
            ring.nodes[i].events(),
            want,
            ring.nodes[i].name().to_owned(),
        ));
    }
    for (writer, text) in &lines {
        ring.nodes[*writer].send_room_message(ring.room, text)?;
    }
    last_arrival(set, Instant::now()).await?;
    Ok(lines.into_iter().map(|(_, text)| text).collect())
}

fn main() -> Result<()> {
    let o = parse_args()?;
    // Logs go to stderr, filtered by RUST_LOG (nothing by default).
    {
        use tracing_subscriber::prelude::*;
        tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .with(meshdrop_tests::log_filter())
            .init();
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(o))
}

async fn run(o: Options) -> Result<()> {
    let n = o.nodes;
    let mut ring = build_ring(n).await?;

    // Warm-up (not measured): the first message also waits for the joins' pulls to finish.
    one_message(&ring.nodes, ring.room, 0, "warm-up").await?;

    let mut reach = Series::new(
        &format!("one room message → all {} others have it", n - 1),
        Unit::Millis,
        Some(GOAL_RING.as_secs_f64() * 1000.0),
    );
    let mut per_node = Series::new(
        "envelopes sent per node per message",
        Unit::Ratio,
        Some(GOAL_TRANSMISSIONS),
    );
    for m in 0..o.messages {
        let writer = (m * 7) % n;
        let (took, sent) = one_message(
            &ring.nodes,
            ring.room,
            writer,
            &format!("ring message {m} from node {writer}"),
        )
        .await?;
        eprintln!(
            "message {m} from node {writer}: all have it after {took:?}, {sent} envelopes sent"
        );
        reach.push_duration(took);
        per_node.samples.push(sent as f64 / n as f64);
    }

    // Partition: halves 0..h and h..n; the links between them are h-1 – h and n-1 – 0.
    let h = n / 2;
    let side_a: Vec<usize> = (0..h).collect();
    let side_b: Vec<usize> = (h..n).collect();
    let mut connect = Series::new("heal: both links dialled and connected", Unit::Millis, None);
    let mut heal = Series::new(
        &format!(
            "heal → every node has every message ({} per side)",
            o.per_side
        ),
        Unit::Millis,
        Some(GOAL_HEAL.as_secs_f64() * 1000.0),
    );
    let mut heal_sent = Series::new(
        "heal: envelopes sent per node per missing message",
        Unit::Ratio,
        None,
    );
    for run in 0..o.runs {
        split(&mut ring, [h - 1, n - 1]).await?;
        let texts_a =
            chat_in_half(&ring, &side_a, &format!("run {run} side A"), o.per_side).await?;
        let texts_b =
            chat_in_half(&ring, &side_b, &format!("run {run} side B"), o.per_side).await?;
        // The split held: no message crossed.
        for (side, other) in [(&side_a, &texts_b), (&side_b, &texts_a)] {
            for &i in side.iter() {
                if !texts_of(&ring.nodes[i])?.is_disjoint(other) {
                    let mut links = Vec::new();
                    for node in &ring.nodes {
                        let peers = node.peers().await?;
                        let names: Vec<&str> = peers
                            .iter()
                            .filter(|p| p.connected)
                            .map(|p| p.name.as_str())
                            .collect();
                        links.push(format!("{}: {names:?}", node.name()));
                    }
                    bail!(
                        "run {run}: a message crossed the split to node {i}; connections:\n{}",
                        links.join("\n")
                    );
                }
            }
        }
        let before = settled_sent(&ring.nodes).await?;
        let mut set = JoinSet::new();
        watch(&mut set, &ring.nodes, &side_a, &texts_b);
        watch(&mut set, &ring.nodes, &side_b, &texts_a);
        let t0 = Instant::now();
        tokio::try_join!(
            link(&ring.nodes[h - 1], &ring.nodes[h]),
            link(&ring.nodes[n - 1], &ring.nodes[0])
        )?;
        let connected = t0.elapsed();
        let last = last_arrival(set, t0).await?;
        let sent = settled_sent(&ring.nodes).await? - before;
        eprintln!(
            "partition run {run}: links up after {connected:?}, every node has every message after {:?}, {sent} envelopes sent",
            last - t0
        );
        connect.push_duration(connected);
        heal.push_duration(last - t0);
        heal_sent
            .samples
            .push(sent as f64 / (n * o.per_side) as f64);
    }

    // Exactly once, and the same order everywhere.
    let orders: Vec<Vec<MessageId>> = ring
        .nodes
        .iter()
        .map(|node| Ok(node.messages()?.iter().map(|m| m.id).collect()))
        .collect::<Result<_>>()?;
    let expected = 1 + o.messages + 2 * o.runs * o.per_side;
    for (i, order) in orders.iter().enumerate() {
        let unique: HashSet<&MessageId> = order.iter().collect();
        ensure!(
            order.len() == expected && unique.len() == expected,
            "node {i} holds {} messages ({} distinct), expected {expected}",
            order.len(),
            unique.len()
        );
        ensure!(order == &orders[0], "node {i} orders messages differently");
    }
    for node in &ring.nodes {
        node.stop().await?;
    }

    print_table(
        &format!(
            "Messaging: ring of {n} nodes in one process on 127.0.0.1, {} messages",
            o.messages
        ),
        &[&reach, &per_node],
    );
    print_table(
        &format!(
            "Messaging: ring split in two halves of {h}, {} runs, {} messages per side, healed",
            o.runs, o.per_side
        ),
        &[&connect, &heal, &heal_sent],
    );
    println!(
        "\nEnvelopes sent: every envelope any node wrote to a peer on `/meshdrop/msg/1`, counted until \
         the counters stood still for {} ms; per node = total / {n} nodes. Every node ended with all \
         {expected} messages exactly once, in the same order.",
        QUIET.as_millis()
    );
    let all_met = [&reach, &per_node, &heal]
        .iter()
        .all(|s| s.met() == Some(true));
    println!(
        "\nGoals (≤ {} s to reach all, ≤ {GOAL_TRANSMISSIONS} envelopes per node per message, ≤ {} s after a heal): {}",
        GOAL_RING.as_secs(),
        GOAL_HEAL.as_secs(),
        if all_met { "MET" } else { "MISSED" }
    );
    if o.check && !all_met {
        std::process::exit(1);
    }
    Ok(())
}
