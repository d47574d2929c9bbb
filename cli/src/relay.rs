//! `meshdrop relay`: host a circuit relay for devices on other networks.

use std::path::Path;

use anyhow::{Context, Result};
use meshdrop_core::Multiaddr;
use meshdrop_core::relay::{Relay, RelayConfig, RelayEvent, RelayLimits};
use serde_json::json;

use crate::output::Output;

/// What `meshdrop relay` was asked for.
pub struct RelayArgs<'a> {
    /// IPs to listen on (empty: every interface).
    pub bind: &'a [std::net::IpAddr],
    /// TCP and UDP (QUIC) port.
    pub port: u16,
    /// Addresses others reach the relay on, when not its own.
    pub external: &'a [String],
    /// What the relay forwards.
    pub limits: RelayLimits,
    /// Answer AutoNAT probes from private IPs.
    pub allow_private: bool,
}

/// Runs the relay until Ctrl-C or SIGTERM: its addresses first on stdout, then what happens.
pub async fn run(data_dir: &Path, out: Output, args: RelayArgs<'_>) -> Result<()> {
    let ips: Vec<std::net::IpAddr> = if args.bind.is_empty() {
        vec![
            std::net::Ipv4Addr::UNSPECIFIED.into(),
            std::net::Ipv6Addr::UNSPECIFIED.into(),
        ]
    } else {
        args.bind.to_vec()
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
    let config = RelayConfig {
        listen,
        external,
        limits: args.limits,
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
            describe(&args.limits)
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
        "{} reservations ({} per device), {} circuits ({} per device), each up to {} and {}",
        l.max_reservations,
        l.max_reservations_per_peer,
        l.max_circuits,
        l.max_circuits_per_peer,
        indicatif::HumanDuration(l.max_circuit_duration),
        indicatif::HumanBytes(l.max_circuit_bytes)
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
    }
}
