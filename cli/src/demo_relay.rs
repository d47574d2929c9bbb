//! The demo's relay step: a friend on another network, holding nothing but a ticket whose only
//! address goes through a relay, fetches a file; hole punching then turns the path direct. The
//! relay and both devices run on 127.0.0.1 like the rest of the demo.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use meshdrop_core::relay::{Relay, RelayConfig};
use meshdrop_core::transfer::Provider;
use meshdrop_core::{DownloadSpec, Event, Multiaddr, Node, NodeConfig, Ticket, Transport};
use serde_json::json;

use crate::output::Output;

const STEP: Duration = Duration::from_secs(30);

/// Runs the step in `dir` (data dirs and the file live there).
pub async fn relay_step(dir: &Path, out: Output) -> Result<()> {
    let loopback =
        |proto: &str| -> Result<Multiaddr> { Ok(format!("/ip4/127.0.0.1/{proto}").parse()?) };
    let config = RelayConfig {
        listen: vec![loopback("tcp/0")?, loopback("udp/0/quic-v1")?],
        external: Vec::new(),
        limits: Default::default(),
        allow_private: true,
    };
    let (tx, _relay_events) = tokio::sync::mpsc::channel(64);
    let relay = Relay::start(&dir.join("relay"), config, tx).await?;
    let relay_addr = relay
        .addrs()
        .first()
        .cloned()
        .context("the relay has no address")?;

    let far = Node::start(
        NodeConfig::loopback(dir.join("erin"))
            .with_name("erin")
            .with_mdns(false)
            .with_relays([relay_addr]),
    )
    .await?;
    let file = dir.join("sunset.mov");
    std::fs::write(&file, crate::demo::pseudo_random(8 << 20, 7))?;
    let shared = far.share(vec![file.clone()]).await?;
    // What a friend on another network can use: the relayed addresses only.
    let relayed = far.relayed_addrs();
    if relayed.is_empty() {
        return Err(anyhow!("the relay gave erin no slot"));
    }
    let ticket = Ticket::new(
        shared.content,
        shared.key,
        vec![Provider {
            peer: far.peer_id(),
            addrs: relayed,
        }],
    );

    let near = Node::start(
        NodeConfig::loopback(dir.join("frank"))
            .with_name("frank")
            .with_mdns(false),
    )
    .await?;
    let mut events = near.events();
    let started = Instant::now();
    let dest = dir.join("frank-downloads");
    let report = tokio::time::timeout(
        STEP,
        near.download(DownloadSpec {
            ticket,
            dest: dest.clone(),
            files: None,
        })
        .wait(),
    )
    .await
    .context("the download through the relay took too long")??;
    let mut via_relay = false;
    let mut upgraded = None;
    while let Ok(ev) = events.try_recv() {
        match ev {
            Event::PeerConnected {
                peer,
                transport: Transport::Relay,
                ..
            } if peer == far.peer_id() => via_relay = true,
            Event::ConnectionUpgraded {
                peer, transport, ..
            } if peer == far.peer_id() => upgraded = Some(transport),
            _ => {}
        }
    }
    let same = std::fs::read(dest.join("sunset.mov"))? == std::fs::read(&file)?;
    near.stop().await?;
    far.stop().await?;
    relay.stop().await;
    if !via_relay || !same {
        return Err(anyhow!(
            "the transfer through the relay did not happen as it should"
        ));
    }
    let path = match upgraded {
        Some(t) => format!("hole punching made it direct ({t:?})"),
        None => "it stayed on the relay".to_string(),
    };
    crate::demo::say(
        out,
        "demo_relay",
        json!({"via_relay": via_relay, "upgraded": upgraded.is_some(), "bytes": report.bytes,
               "secs": started.elapsed().as_secs_f64(), "verified": same}),
        &format!(
            "frank, on another network with only a ticket through a relay, got erin's {:.1} MiB in {:.2} s: connected through the relay, {path}; file matches: yes",
            report.bytes as f64 / (1024.0 * 1024.0),
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(())
}
