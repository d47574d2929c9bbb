//! A lab of two home networks behind NAT routers and a "public" network between them, where a
//! relay runs: the world of friends on different continents, inside network namespaces.
//!
//! ```text
//!   <p>-h1 (192.168.1.2) ── <p>-r1 (NAT) ──┐                 ┌── <p>-r2 (NAT) ── <p>-h2 (192.168.2.2)
//!                           198.18.0.1     │  <p>-wan: br0   │     198.18.0.2
//!                                          └── <p>-relay (198.18.0.10) ──┘
//! ```
//!
//! Each router forwards its home network to the public one and masquerades it (nftables). With
//! [`NatKind::PortPreserving`] the router keeps a device's source port (what most home routers
//! do, and what lets hole punching work); with [`NatKind::Symmetric`] every new flow gets a random
//! port (`masquerade fully-random`), so the port a relay observed is useless to anyone else and
//! hole punching fails. The devices cannot reach each other except through their NATs, and
//! nothing on the public side can open a connection into a home network.
//!
//! Everything lives in namespaces named `mdlab-<pid>-<n>-…`, removed on drop like a [`crate::netns::Lab`].

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};

use crate::netns::{
    Host, LAB_COUNTER, NS_PREFIX, STALE_CLEANUP, cleanup_stale, ip, nft_in, preflight, sysctl,
    teardown, tool_present,
};

/// How the routers translate addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatKind {
    /// Source ports kept where possible: the mapping a relay observes also works for peers.
    PortPreserving,
    /// A random source port per flow (address- and port-dependent mapping).
    Symmetric,
}

/// Two NATed home networks and a public one with a relay host; see the module docs.
#[derive(Debug)]
pub struct NatLab {
    namespaces: Vec<String>,
    relay: Host,
    homes: [Host; 2],
}

impl NatLab {
    /// Builds the lab with both routers of `kind`.
    pub fn new(kind: NatKind) -> Result<Self> {
        preflight()?;
        tool_present("nft", "nftables")?;
        STALE_CLEANUP.call_once(|| {
            if let Err(e) = cleanup_stale() {
                eprintln!("nat lab: cleanup of stale namespaces failed: {e:#}");
            }
        });
        let counter = LAB_COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("{NS_PREFIX}{}-{counter}", std::process::id());
        let mut lab = NatLab {
            namespaces: Vec::new(),
            relay: Host::new(0, format!("{prefix}-relay"), Ipv4Addr::new(198, 18, 0, 10)),
            homes: [
                Host::new(1, format!("{prefix}-h1"), Ipv4Addr::new(192, 168, 1, 2)),
                Host::new(2, format!("{prefix}-h2"), Ipv4Addr::new(192, 168, 2, 2)),
            ],
        };
        lab.build(&prefix, kind)
            .with_context(|| format!("creating NAT lab {prefix}"))?;
        Ok(lab)
    }

    fn add_ns(&mut self, ns: &str) -> Result<()> {
        ip(&["netns", "add", ns])?;
        self.namespaces.push(ns.to_owned());
        ip(&["-n", ns, "link", "set", "lo", "up"])
    }

    fn build(&mut self, prefix: &str, kind: NatKind) -> Result<()> {
        let wan = format!("{prefix}-wan");
        self.add_ns(&wan)?;
        ip(&["-n", &wan, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &wan, "link", "set", "br0", "up"])?;

        // The relay: one leg on the public network.
        let relay_ns = self.relay.ns().to_owned();
        self.add_ns(&relay_ns)?;
        plug(&relay_ns, "eth0", &wan, "prelay", "198.18.0.10/24")?;

        for i in 1..=2u8 {
            let router = format!("{prefix}-r{i}");
            let home = self.homes[usize::from(i - 1)].ns().to_owned();
            self.add_ns(&router)?;
            self.add_ns(&home)?;
            plug(
                &router,
                "wan0",
                &wan,
                &format!("pr{i}"),
                &format!("198.18.0.{i}/24"),
            )?;
            // The home network: a cable from the device to its router.
            ip(&[
                "-n", &home, "link", "add", "eth0", "type", "veth", "peer", "name", "lan0",
                "netns", &router,
            ])?;
            let device = format!("192.168.{i}.2/24");
            let gateway = format!("192.168.{i}.1");
            ip(&["-n", &home, "addr", "add", &device, "dev", "eth0"])?;
            ip(&["-n", &home, "link", "set", "eth0", "up"])?;
            ip(&["-n", &home, "route", "add", "default", "via", &gateway])?;
            ip(&[
                "-n",
                &router,
                "addr",
                "add",
                &format!("{gateway}/24"),
                "dev",
                "lan0",
            ])?;
            ip(&["-n", &router, "link", "set", "lan0", "up"])?;
            sysctl(&router, "net.ipv4.ip_forward", "1")?;
            let masquerade = match kind {
                NatKind::PortPreserving => "masquerade",
                NatKind::Symmetric => "masquerade fully-random",
            };
            // Only the home network goes out, translated; from outside, only replies come in, and
            // anything else is dropped without an answer (no RST, no ICMP), as home routers do.
            let script = format!(
                "table ip nat {{\n\
                 \tchain postrouting {{ type nat hook postrouting priority srcnat; policy accept;\n\
                 \t\toifname \"wan0\" {masquerade}\n\t}}\n}}\n\
                 table ip filter {{\n\
                 \tchain forward {{ type filter hook forward priority 0; policy drop;\n\
                 \t\tct state established,related accept\n\
                 \t\tiifname \"lan0\" oifname \"wan0\" accept\n\t}}\n\
                 \tchain input {{ type filter hook input priority 0; policy accept;\n\
                 \t\tiifname \"wan0\" ct state != {{ established, related }} drop\n\t}}\n}}\n"
            );
            nft_in(&router, &script)?;
        }
        Ok(())
    }

    /// The host on the public network, where the relay runs.
    pub fn relay(&self) -> &Host {
        &self.relay
    }

    /// Home device `i` (0 or 1), behind its own NAT.
    pub fn home(&self, i: usize) -> &Host {
        &self.homes[i]
    }

    /// Limits what the relay host sends, e.g. `"80mbit"` (token bucket on its interface): a relay
    /// on a small server, slower than the direct path between the homes.
    pub fn set_relay_rate(&self, rate: &str) -> Result<()> {
        tool_present("tc", "iproute2")?;
        let ns = self.relay.ns();
        let mut cmd = Command::new("tc");
        cmd.args([
            "-n", ns, "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", rate, "burst",
            "32kbit", "latency", "400ms",
        ]);
        let out = cmd.output().context("running tc")?;
        if !out.status.success() {
            bail!("tc failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// Bytes the relay host's interface received so far: what went through the relay.
    pub fn relay_rx_bytes(&self) -> Result<u64> {
        let out = self
            .relay
            .run("cat", &["/sys/class/net/eth0/statistics/rx_bytes"])?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .context("reading the relay's rx_bytes")
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        teardown(&self.namespaces);
    }
}

/// A veth from `dev` in `ns` (with `cidr`) to port `port` of the bridge in `switch`.
fn plug(ns: &str, dev: &str, switch: &str, port: &str, cidr: &str) -> Result<()> {
    ip(&[
        "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", port, "netns", switch,
    ])?;
    ip(&["-n", switch, "link", "set", port, "master", "br0"])?;
    ip(&["-n", switch, "link", "set", port, "up"])?;
    ip(&["-n", ns, "addr", "add", cidr, "dev", dev])?;
    ip(&["-n", ns, "link", "set", dev, "up"])
}
