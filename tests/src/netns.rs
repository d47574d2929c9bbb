//! A network-namespace lab: N isolated "devices" on one virtual LAN.
//!
//! [`Lab::new`] builds, entirely outside the root network namespace:
//!
//! ```text
//!   ns <prefix>-sw          ns <prefix>-h0         ns <prefix>-h1   ...
//!   ┌──────────────────┐    ┌──────────────┐       ┌──────────────┐
//!   │ br0 ── p0 ───────┼────┼─ eth0        │       │              │
//!   │   └─── p1 ───────┼────┼──────────────┼───────┼─ eth0        │
//!   └──────────────────┘    │ 10.M.0.1/24  │       │ 10.M.0.2/24  │
//!                           └──────────────┘       └──────────────┘
//! ```
//!
//! Every veth is created directly inside its namespaces (`ip -n HOST link add eth0 type veth peer name
//! pI netns SWITCH`), so no interface ever appears in the root namespace and no packet — mDNS
//! multicast included — can reach a real interface. The bridge lives in its own "switch" namespace.
//!
//! The lab is torn down on [`Drop`] (also while a test panics): every process still running in one of
//! its namespaces is killed, then the namespaces are deleted (which deletes the veths and the bridge).
//! Namespaces left behind by earlier runs that crashed (their creating pid is dead) are removed the
//! first time a lab is created in a process.
//!
//! Impairments use what this kernel has (no `netem`): `tc ... tbf` for rate limits, nftables
//! `numgen random` drop rules on a host's input hook for loss, and `ip link set ... down` for
//! partitions.

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Prefix of every namespace a lab creates: `mdlab-<pid>-<counter>-{sw,hN}`.
pub const NS_PREFIX: &str = "mdlab-";

/// Name of the nftables table the lab installs in a host for [`Lab::drop_incoming`].
const NFT_TABLE: &str = "mdlab";
/// Name of the nftables table of [`Lab::block`].
const BLOCK_TABLE: &str = "mdline";

pub(crate) static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);
pub(crate) static STALE_CLEANUP: Once = Once::new();

/// One simulated device: a network namespace with `lo` and `eth0` (`10.M.0.(i+1)/24`) on the lab's bridge.
#[derive(Debug, Clone)]
pub struct Host {
    index: usize,
    ns: String,
    addr: Ipv4Addr,
}

impl Host {
    pub(crate) fn new(index: usize, ns: String, addr: Ipv4Addr) -> Self {
        Self { index, ns, addr }
    }

    /// Index of this host in its lab (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Name of the network namespace (usable with `ip netns exec` / `ip -n`).
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// IPv4 address of the host's `eth0`.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// A command that runs `program` inside this host's namespace (`ip netns exec NS program`).
    ///
    /// `ip netns exec` execs the program in place, so the child's pid is the program's pid and
    /// signals sent to it reach the program itself.
    pub fn exec(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.arg("netns").arg("exec").arg(&self.ns).arg(program);
        cmd
    }

    /// Runs `f` on a thread of its own inside this host's namespace (every socket it opens is
    /// the host's), for in-process peers that must live on the lab's network.
    pub fn thread<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> std::thread::JoinHandle<Result<R>> {
        let path = format!("/var/run/netns/{}", self.ns);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("entering {path}"))?;
            Ok(f())
        })
    }

    /// Runs `program args...` in the namespace to completion; fails with its stderr if it exits non-zero.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<Output> {
        let mut cmd = self.exec(program);
        cmd.args(args);
        checked(&mut cmd)
    }
}

/// A set of network namespaces joined by a bridge; see the module docs.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    subnet: u8,
    switch_ns: Option<String>,
    hosts: Vec<Host>,
}

impl Lab {
    /// Creates a lab of `n_hosts` hosts on one bridge.
    ///
    /// Fails (never skips) with a clear message when not running as root or when `ip netns` is
    /// unavailable: multi-process tests must not pass by doing nothing.
    pub fn new(n_hosts: usize) -> Result<Self> {
        Self::create(n_hosts, Self::build)
    }

    /// Creates `n_hosts` namespaces that share no link at all: each has only its loopback, and a
    /// host's address is 127.0.0.1. What joins them is what the test passes between them (a Unix
    /// socket on the shared filesystem, say).
    pub fn isolated(n_hosts: usize) -> Result<Self> {
        Self::create(n_hosts, |lab, n| {
            for i in 0..n {
                let ns = format!("{}-h{i}", lab.prefix);
                ip(&["netns", "add", &ns])?;
                lab.hosts
                    .push(Host::new(i, ns.clone(), Ipv4Addr::LOCALHOST));
                ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            }
            Ok(())
        })
    }

    fn create(n_hosts: usize, build: impl FnOnce(&mut Self, usize) -> Result<()>) -> Result<Self> {
        if n_hosts == 0 || n_hosts > 250 {
            bail!("a lab has 1..=250 hosts, not {n_hosts}");
        }
        preflight()?;
        STALE_CLEANUP.call_once(|| {
            if let Err(e) = cleanup_stale() {
                eprintln!("netns lab: cleanup of stale namespaces failed: {e:#}");
            }
        });

        let pid = std::process::id();
        let counter = LAB_COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("{NS_PREFIX}{pid}-{counter}");
        // Labs are separate L2 domains, so equal subnets could not collide anyway; varying M keeps
        // addresses in logs from different concurrent labs telling apart.
        let subnet = ((pid.wrapping_mul(7).wrapping_add(counter.wrapping_mul(13))) % 250 + 1) as u8;
        let mut lab = Lab {
            prefix,
            subnet,
            switch_ns: None,
            hosts: Vec::with_capacity(n_hosts),
        };
        // Any error below drops `lab`, which deletes whatever was created so far.
        build(&mut lab, n_hosts)
            .with_context(|| format!("creating network-namespace lab {}", lab.prefix))?;
        Ok(lab)
    }

    fn build(&mut self, n_hosts: usize) -> Result<()> {
        let sw = format!("{}-sw", self.prefix);
        ip(&["netns", "add", &sw])?;
        self.switch_ns = Some(sw.clone());
        ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        // No multicast snooping: the bridge floods mDNS like a plain Wi-Fi access point.
        ip(&[
            "-n",
            &sw,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;

        for i in 0..n_hosts {
            let ns = format!("{}-h{i}", self.prefix);
            ip(&["netns", "add", &ns])?;
            let host = Host {
                index: i,
                ns: ns.clone(),
                addr: Ipv4Addr::new(10, self.subnet, 0, (i + 1) as u8),
            };
            self.hosts.push(host);
            let port = format!("p{i}");
            // IPv6 link-local addresses usable at once (no duplicate address detection delay).
            sysctl(&ns, "net.ipv6.conf.all.accept_dad", "0")?;
            sysctl(&ns, "net.ipv6.conf.default.accept_dad", "0")?;
            ip(&[
                "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
                &sw,
            ])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &sw, "link", "set", &port, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "link", "set", "dev", "eth0", "multicast", "on"])?;
            let cidr = format!("{}/24", self.hosts[i].addr);
            ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            // Multicast (mDNS to 224.0.0.251) leaves through eth0 even for clients that do not pick
            // an interface themselves. The namespace has no other route: nothing can go further.
            ip(&["-n", &ns, "route", "add", "224.0.0.0/4", "dev", "eth0"])?;
        }
        Ok(())
    }

    /// The lab's name prefix (`mdlab-<pid>-<counter>`), for logs.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Number of hosts.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Always false: a lab has at least one host.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Host `i`. Panics when out of range (a bug in the test).
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    /// All hosts.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Name of the namespace holding the bridge.
    pub fn switch_ns(&self) -> &str {
        self.switch_ns.as_deref().unwrap_or_default()
    }

    /// Limits host `i`'s outgoing rate, e.g. `"100mbit"` or `"2mbit"` (token bucket filter on `eth0`).
    pub fn set_rate(&self, i: usize, rate: &str) -> Result<()> {
        let ns = self.host(i).ns();
        tool_present("tc", "iproute2")?;
        let mut cmd = Command::new("tc");
        cmd.args([
            "-n", ns, "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", rate, "burst",
            "32kbit", "latency", "400ms",
        ]);
        checked(&mut cmd).map(drop)
    }

    /// Removes a rate limit set by [`Lab::set_rate`] (no-op when none is set).
    pub fn clear_rate(&self, i: usize) -> Result<()> {
        let ns = self.host(i).ns();
        // Deleting a non-existing root qdisc fails; that is the no-op case.
        let _ = Command::new("tc")
            .args(["-n", ns, "qdisc", "del", "dev", "eth0", "root"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        Ok(())
    }

    /// Drops `percent` % of the packets arriving at host `i` (nftables rule on its input hook).
    /// Replaces any earlier drop rule of this lab in that host; `0` keeps the table but drops nothing.
    pub fn drop_incoming(&self, i: usize, percent: u8) -> Result<()> {
        if percent > 100 {
            bail!("drop percentage must be 0..=100, not {percent}");
        }
        tool_present("nft", "nftables")?;
        // `numgen random mod 100` yields 0..=99, so "< 100" is out of range: 100 % is a plain drop.
        let rule = match percent {
            0 => String::new(),
            100 => "drop".to_owned(),
            p => format!("numgen random mod 100 < {p} drop"),
        };
        // Declare-then-delete makes the script idempotent; then define the table afresh.
        let script = format!(
            "table inet {NFT_TABLE} {{}}\n\
             delete table inet {NFT_TABLE}\n\
             table inet {NFT_TABLE} {{\n\
             \tchain input {{\n\
             \t\ttype filter hook input priority 0; policy accept;\n\
             \t\t{rule}\n\
             \t}}\n\
             }}\n"
        );
        self.nft_script(i, &script)
    }

    /// Removes the drop rule installed by [`Lab::drop_incoming`] (no-op when none is set).
    pub fn clear_drop(&self, i: usize) -> Result<()> {
        tool_present("nft", "nftables")?;
        let script = format!("table inet {NFT_TABLE} {{}}\ndelete table inet {NFT_TABLE}\n");
        self.nft_script(i, &script)
    }

    fn nft_script(&self, i: usize, script: &str) -> Result<()> {
        nft_in(self.host(i).ns(), script)
    }

    /// Drops every packet between host `i` and each of `others` (both directions, on host `i`;
    /// block both ends for a clean cut). Replaces an earlier block of host `i`.
    pub fn block(&self, i: usize, others: &[usize]) -> Result<()> {
        tool_present("nft", "nftables")?;
        let mut rules = String::new();
        for o in others {
            rules.push_str(&format!("ip saddr {} drop; ", self.host(*o).addr()));
        }
        let mut out_rules = String::new();
        for o in others {
            out_rules.push_str(&format!("ip daddr {} drop; ", self.host(*o).addr()));
        }
        let script = format!(
            "table inet {BLOCK_TABLE} {{}}\ndelete table inet {BLOCK_TABLE}\n\
             table inet {BLOCK_TABLE} {{\n chain input {{ type filter hook input priority 0; policy accept; {rules}}}\n \
             chain output {{ type filter hook output priority 0; policy accept; {out_rules}}}\n}}\n"
        );
        self.nft_script(i, &script)
    }

    /// Removes what [`Lab::block`] installed on host `i` (no-op when nothing is blocked).
    pub fn unblock(&self, i: usize) -> Result<()> {
        tool_present("nft", "nftables")?;
        let script = format!("table inet {BLOCK_TABLE} {{}}\ndelete table inet {BLOCK_TABLE}\n");
        self.nft_script(i, &script)
    }

    /// Takes host `i`'s `eth0` down: the device leaves the network (partition).
    pub fn link_down(&self, i: usize) -> Result<()> {
        ip(&["-n", self.host(i).ns(), "link", "set", "eth0", "down"])
    }

    /// Brings host `i`'s `eth0` back up (and restores the multicast route the kernel dropped with it).
    pub fn link_up(&self, i: usize) -> Result<()> {
        let ns = self.host(i).ns();
        ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", ns, "route", "replace", "224.0.0.0/4", "dev", "eth0"])
    }

    /// Pids of all processes currently running in host `i`'s namespace.
    pub fn pids(&self, i: usize) -> Vec<u32> {
        ns_pids(self.host(i).ns())
    }

    fn all_namespaces(&self) -> Vec<String> {
        let mut names: Vec<String> = self.hosts.iter().map(|h| h.ns.clone()).collect();
        names.extend(self.switch_ns.clone());
        names
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        teardown(&self.all_namespaces());
    }
}

/// Runs an nftables script (`nft -f -`) inside namespace `ns`.
pub(crate) fn nft_in(ns: &str, script: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning nft")?;
    child
        .stdin
        .take()
        .context("nft stdin")?
        .write_all(script.as_bytes())
        .context("writing nft script")?;
    let out = child.wait_with_output().context("waiting for nft")?;
    if !out.status.success() {
        bail!(
            "nft failed in {ns} ({}): {}\nscript:\n{script}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Kills every process in `namespaces`, then deletes them. Best effort, never panics.
pub(crate) fn teardown(namespaces: &[String]) {
    for ns in namespaces {
        kill_all_in(ns);
    }
    for ns in namespaces {
        let out = Command::new("ip").args(["netns", "del", ns]).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "netns lab: `ip netns del {ns}` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => eprintln!("netns lab: `ip netns del {ns}` failed: {e}"),
        }
    }
}

/// SIGKILLs every process in namespace `ns` and waits (bounded) until none is left.
fn kill_all_in(ns: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = ns_pids(ns);
        if pids.is_empty() {
            return;
        }
        for pid in &pids {
            // Never ourselves, whatever `ip netns pids` says.
            if *pid != std::process::id() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if Instant::now() > deadline {
            eprintln!("netns lab: processes {pids:?} in {ns} survived SIGKILL for 5 s");
            return;
        }
        // Bounded wait for the kernel to finish killing them (teardown, not test synchronisation).
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ns_pids(ns: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", ns])
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Deletes namespaces named `mdlab-<pid>-...` whose creating process `<pid>` no longer exists.
pub fn cleanup_stale() -> Result<()> {
    let dead: Vec<String> = list_namespaces()?
        .into_iter()
        .filter(|ns| {
            let Some(rest) = ns.strip_prefix(NS_PREFIX) else {
                return false;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                return false;
            };
            !Path::new(&format!("/proc/{pid}")).exists()
        })
        .collect();
    if !dead.is_empty() {
        eprintln!("netns lab: removing stale namespaces from crashed runs: {dead:?}");
        teardown(&dead);
    }
    Ok(())
}

fn list_namespaces() -> Result<Vec<String>> {
    let out = checked(Command::new("ip").args(["netns", "list"]))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect())
}

/// Fails loudly unless we are root and `ip netns` works.
pub(crate) fn preflight() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!(
            "network-namespace tests need root (running as uid {}); they do not skip themselves — \
             run them as root (CI does)",
            nix::unistd::geteuid()
        );
    }
    tool_present("ip", "iproute2")?;
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .context("running `ip netns list`")?;
    if !out.status.success() {
        bail!(
            "`ip netns` is unavailable: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub(crate) fn tool_present(tool: &str, apt_package: &str) -> Result<()> {
    match Command::new(tool)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(e) => bail!("`{tool}` not found ({e}); install it: apt-get install -y {apt_package}"),
    }
}

pub(crate) fn sysctl(ns: &str, key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "sh", "-c"])
        .arg(format!("echo {value} > {path}"));
    checked(&mut cmd).map(drop)
}

pub(crate) fn ip(args: &[&str]) -> Result<()> {
    checked(Command::new("ip").args(args)).map(drop)
}

/// Runs `cmd` to completion and fails with its stderr when it exits non-zero.
fn checked(cmd: &mut Command) -> Result<Output> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawning {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}
