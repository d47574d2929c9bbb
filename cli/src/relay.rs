//! `meshdrop relay`: host a circuit relay for devices on other networks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use meshdrop_core::Multiaddr;
use meshdrop_core::relay::{DeviceBudget, Relay, RelayConfig, RelayEvent, RelayLimits};
use serde_json::json;

use crate::output::Output;

/// What `meshdrop relay` is asked for.
#[derive(clap::Args, Debug)]
pub struct RelayOpts {
    /// TCP and UDP (QUIC) port; keep it fixed so the printed addresses stay valid.
    #[arg(long, default_value_t = 4001)]
    port: u16,
    /// An address others reach this relay on when it is not one of its own (a forwarded
    /// port); repeatable.
    #[arg(long, value_name = "MULTIADDR")]
    external: Vec<String>,
    /// Devices holding a slot at once; more are refused.
    #[arg(long, default_value_t = 128)]
    max_reservations: usize,
    /// Slots one device may hold.
    #[arg(long, default_value_t = 4)]
    max_reservations_per_device: usize,
    /// Circuits forwarded at once.
    #[arg(long, default_value_t = 32)]
    max_circuits: usize,
    /// Circuits one device may have at once.
    #[arg(long, default_value_t = 8)]
    max_circuits_per_device: usize,
    /// How long one circuit may last, in seconds (a transfer then redials and resumes).
    #[arg(long, default_value_t = 3600)]
    max_circuit_secs: u64,
    /// Bytes one circuit may carry, e.g. 16GiB.
    #[arg(long, default_value = "16GiB", value_parser = crate::commands::parse_rate)]
    max_circuit_bytes: u64,
    /// Bytes one device may move through the relay per window, all its circuits and both
    /// directions together, e.g. 64GiB; beyond, it is cut off until the window ends.
    #[arg(long, default_value = "64GiB", value_parser = crate::commands::parse_rate)]
    max_device_bytes: u64,
    /// The window of the per-device byte budget, in seconds.
    #[arg(long, default_value_t = 86_400)]
    device_window_secs: u64,
    /// Answer AutoNAT probes of devices at private IPs (a relay on a LAN or in a lab).
    #[arg(long)]
    allow_private: bool,
}

impl RelayOpts {
    fn limits(&self) -> RelayLimits {
        RelayLimits {
            max_reservations: self.max_reservations,
            max_reservations_per_peer: self.max_reservations_per_device,
            max_circuits: self.max_circuits,
            max_circuits_per_peer: self.max_circuits_per_device,
            max_circuit_duration: Duration::from_secs(self.max_circuit_secs),
            max_circuit_bytes: self.max_circuit_bytes,
            device: DeviceBudget {
                bytes: self.max_device_bytes,
                window: Duration::from_secs(self.device_window_secs),
            },
            ..Default::default()
        }
    }
}

/// Runs the relay on the IPs of `bind` (every interface when empty) until Ctrl-C or SIGTERM:
/// its addresses first on stdout, then what happens.
pub async fn run(data_dir: &Path, out: Output, bind: &[IpAddr], args: &RelayOpts) -> Result<()> {
    let ips: Vec<IpAddr> = if bind.is_empty() {
        vec![Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into()]
    } else {
        bind.to_vec()
    };
    let listen = ips
        .iter()
        .flat_map(|ip| {
            let base = Multiaddr::from(*ip);
            [
                format!("{base}/tcp/{}", args.port),
                format!("{base}/udp/{}/quic-v1", args.port),
            ]
        })
        .map(|a| crate::commands::parse_multiaddr(&a))
        .collect::<Result<Vec<_>>>()?;
    let external = args
        .external
        .iter()
        .map(|a| crate::commands::parse_multiaddr(a))
        .collect::<Result<Vec<_>>>()?;
    let limits = args.limits();
    let config = RelayConfig {
        listen,
        external,
        limits,
        allow_private: args.allow_private,
    };
    let (tx, mut events) = tokio::sync::mpsc::channel(256);
    // Its own identity, next to the device's: the same machine can run a node and a relay.
    let relay = Relay::start(&data_dir.join("relay"), config, tx).await?;
    if out.json {
        println!(
            "{}",
            json!({"event": "relay_listening", "peer": relay.peer_id().to_string(),
                   "addrs": relay.addrs().iter().map(ToString::to_string).collect::<Vec<_>>()})
        );
    } else {
        for addr in relay.addrs() {
            println!("{addr}");
        }
        eprintln!(
            "relay {} is up; devices pass one of the addresses above as --relay. Limits: {}",
            relay.peer_id(),
            describe(&limits)
        );
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    loop {
        tokio::select! {
            Some(ev) = events.recv() => print_event(out, &ev),
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    relay.stop().await;
    Ok(())
}

fn describe(l: &RelayLimits) -> String {
    format!(
        "{} reservations ({} per device), {} circuits ({} per device), each up to {} and {}; \
         {} per device every {}",
        l.max_reservations,
        l.max_reservations_per_peer,
        l.max_circuits,
        l.max_circuits_per_peer,
        indicatif::HumanDuration(l.max_circuit_duration),
        indicatif::HumanBytes(l.max_circuit_bytes),
        indicatif::HumanBytes(l.device.bytes),
        indicatif::HumanDuration(l.device.window)
    )
}

fn print_event(out: Output, ev: &RelayEvent) {
    if out.json {
        match serde_json::to_string(ev) {
            Ok(s) => println!("{s}"),
            Err(e) => tracing::error!(error = %e, "cannot encode a relay event"),
        }
        return;
    }
    match ev {
        RelayEvent::ReservationAccepted { peer, renewed } => {
            let what = if *renewed { "renewed" } else { "reserved" };
            println!("{what} a slot: {peer}");
        }
        RelayEvent::ReservationDenied { peer, reason } => println!("refused {peer}: {reason}"),
        RelayEvent::ReservationClosed { peer } => println!("slot ended: {peer}"),
        RelayEvent::CircuitOpened { src, dst } => println!("circuit {src} -> {dst}"),
        RelayEvent::CircuitDenied { src, dst, reason } => {
            println!("refused circuit {src} -> {dst}: {reason}")
        }
        RelayEvent::CircuitClosed { src, dst } => println!("circuit closed {src} -> {dst}"),
        RelayEvent::DeviceOverBudget { peer } => {
            println!("cut off {peer}: it spent its byte budget")
        }
    }
}
