//! Everything the CLI prints on stdout: JSON lines with `--json`, friendly text otherwise.

use meshdrop_core::{Event, PeerInfo};
use serde::Serialize;
use serde_json::json;

/// Where results and events go.
#[derive(Clone, Copy)]
pub struct Output {
    /// One JSON object per line instead of text.
    pub json: bool,
}

impl Output {
    /// Prints one JSON value as a line.
    fn line(&self, value: &impl Serialize) {
        match serde_json::to_string(value) {
            Ok(s) => println!("{s}"),
            Err(e) => tracing::error!(error = %e, "cannot encode output"),
        }
    }

    /// Prints a node event.
    pub fn event(&self, event: &Event) {
        if self.json {
            return self.line(event);
        }
        match event {
            Event::Listening { peer, name, addrs } => {
                println!("{name} ({peer}) is up, listening on:");
                for a in addrs {
                    println!("  {a}");
                }
            }
            Event::PeerDiscovered { peer, name, .. } => println!("found     {name}  {peer}"),
            Event::PeerLost { peer, name } => println!("lost      {name}  {peer}"),
            Event::PeerConnected {
                peer,
                transport,
                verification_code,
                ..
            } => println!(
                "connected {peer} over {transport:?}, verification code {verification_code}"
            ),
            Event::PeerIdentified {
                peer, name, agent, ..
            } => println!("identified {name} ({agent}) {peer}"),
            Event::PeerDisconnected { peer } => println!("disconnected {peer}"),
            Event::DialFailed { peer, error } => match peer {
                Some(p) => println!("could not reach {p}: {error}"),
                None => println!("could not reach peer: {error}"),
            },
            Event::TransferProgress {
                transfer,
                done,
                total,
                rate,
                ..
            } => println!(
                "transfer {transfer}: {done}/{total} bytes, {} KiB/s",
                rate / 1024
            ),
            Event::TransferFinished {
                transfer, bytes, ..
            } => println!("transfer {transfer}: finished, {bytes} bytes verified"),
            Event::TransferFailed {
                transfer, error, ..
            } => println!("transfer {transfer}: failed: {error}"),
            Event::Stopped => println!("stopped"),
        }
    }

    /// Prints this device's identity.
    pub fn id(&self, peer: &str, name: &str) {
        if self.json {
            self.line(&json!({"event": "id", "peer": peer, "name": name}));
        } else {
            println!("peer id: {peer}\nname:    {name}");
        }
    }

    /// Prints the peer list.
    pub fn peers(&self, peers: &[PeerInfo]) {
        if self.json {
            for p in peers {
                let mut v = json!(p);
                v["event"] = json!("peer");
                self.line(&v);
            }
            return;
        }
        if peers.is_empty() {
            println!("no peers found");
        }
        for p in peers {
            let state = match (p.connected, p.discovered) {
                (true, _) => "connected",
                (false, true) => "nearby",
                (false, false) => "known",
            };
            let name = if p.name.is_empty() { "?" } else { &p.name };
            println!(
                "{name}  {}  [{state}]  code {}",
                p.peer, p.verification_code
            );
            for a in &p.addrs {
                println!("    {a}");
            }
        }
    }

    /// Prints the result of a connect.
    pub fn connected(&self, peer: &str, code: &str) {
        if self.json {
            self.line(&json!({"event": "connected", "peer": peer, "verification_code": code}));
        } else {
            println!("connected to {peer}, verification code {code}");
        }
    }

    /// Prints an arbitrary JSON result (already shaped with an `event` field).
    pub fn raw(&self, value: &serde_json::Value) {
        self.line(value);
    }
}
