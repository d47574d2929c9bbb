//! Everything the CLI prints on stdout: JSON lines with `--json` (exact), friendly text otherwise
//! (with what peers chose neutralised by [`clean`]).

use std::path::Path;

use indicatif::HumanBytes;
use meshdrop_core::transfer::{Damage, ShareHealth};
use meshdrop_core::{DownloadReport, Event, PeerInfo, Ticket, Transport};
use serde::Serialize;
use serde_json::json;

use crate::text::{clean, who};

const MIB: f64 = 1024.0 * 1024.0;

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
                println!("{} ({peer}) is up, listening on:", clean(name));
                for a in addrs {
                    println!("  {a}");
                }
            }
            Event::PeerDiscovered { peer, name, .. } => {
                println!("found     {}?  {peer}", clean(name))
            }
            Event::PeerLost { peer, name } => println!("lost      {}?  {peer}", clean(name)),
            Event::PeerConnected {
                peer,
                transport,
                medium,
                verification_code,
                ..
            } => println!(
                "connected {peer} over {}, verification code {verification_code}",
                carrier(*transport, medium.as_deref())
            ),
            Event::PeerIdentified {
                peer, name, agent, ..
            } => println!("identified {}? ({}) {peer}", clean(name), clean(agent)),
            Event::PeerDisconnected { peer } => println!("disconnected {peer}"),
            Event::ConnectionUpgraded {
                peer,
                transport,
                medium,
                ..
            } => println!(
                "better    {peer} over {} (the other connections close)",
                carrier(*transport, medium.as_deref())
            ),
            Event::HolePunchFailed { peer, error } => {
                println!("relayed   {peer}: hole punching failed ({})", clean(error))
            }
            Event::RelayReserved { addr, .. } => println!("reachable through a relay at {addr}"),
            Event::RelayFailed { relay, reason } => println!("relay {relay}: {}", clean(reason)),
            Event::Reachability { status, addr } => match addr {
                Some(a) => println!("reachability: {status:?} at {a}"),
                None => println!("reachability: {status:?}"),
            },
            Event::DialFailed { peer, error, .. } => match peer {
                Some(p) => println!("could not reach {p}: {}", clean(error)),
                None => println!("could not reach peer: {}", clean(error)),
            },
            Event::Stopped => println!("stopped"),
            // Listed one by one: a new kind of event is a compile error here, not silence.
            ev @ (Event::TransferProgress { .. }
            | Event::ShareDistributed { .. }
            | Event::ShareDamaged { .. }
            | Event::ShareRepaired { .. }
            | Event::ShareRepairFailed { .. }
            | Event::TransferFinished { .. }
            | Event::TransferWaiting { .. }
            | Event::TransferFailed { .. }
            | Event::OfferReceived { .. }
            | Event::OfferRefused { .. }
            | Event::OfferExpired { .. }
            | Event::OfferAccepted { .. }
            | Event::OfferDeclined { .. }
            | Event::SendProgress { .. }
            | Event::MessageReceived { .. }
            | Event::MessageStateChanged { .. }
            | Event::AttachmentNotFetched { .. }
            | Event::CarryAsked { .. }
            | Event::Carrying { .. }
            | Event::CarryRefused { .. }) => self.transfer_event(ev),
        }
    }

    /// Prints an event of a transfer, an offer or a message (text mode; [`Output::event`] sends
    /// only those here).
    fn transfer_event(&self, event: &Event) {
        match event {
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
            Event::ShareDistributed { content } => println!(
                "share {content}: every chunk uploaded at least once; the others can finish without this device"
            ),
            Event::ShareDamaged {
                content,
                file,
                chunks,
                damage,
                repairing,
                ..
            } => println!(
                "share {content}: {}; not served{}",
                damaged_line(file, chunks.len(), *damage),
                if *repairing {
                    " until fetched again from peers (repairing)"
                } else {
                    ""
                }
            ),
            Event::ShareRepaired {
                content,
                file,
                chunks,
            } => println!(
                "share {content}: {} repaired from peers ({} chunks fetched again); it verifies whole",
                clean(file),
                chunks.len()
            ),
            Event::ShareRepairFailed {
                content,
                file,
                error,
            } => println!(
                "share {content}: {} could not be repaired: {}",
                clean(file),
                clean(error)
            ),
            Event::TransferFinished {
                transfer, bytes, ..
            } => println!("transfer {transfer}: finished, {bytes} bytes verified"),
            Event::CarryAsked {
                from,
                for_peer,
                content,
            } => println!("{from} asks this device to carry share {content} for {for_peer}"),
            Event::Carrying {
                for_peer, content, ..
            } => println!("carrying share {content} for {for_peer}: fetching it"),
            Event::CarryRefused {
                from,
                for_peer,
                reason,
            } => println!(
                "not carrying {from}'s files for {for_peer}: {}",
                clean(reason)
            ),
            Event::AttachmentNotFetched { message, reason } => println!(
                "message {message}: its attachment was not fetched by itself ({}); `meshdrop get` \
                 its ticket to fetch it",
                clean(reason)
            ),
            Event::TransferWaiting {
                transfer, tried, ..
            } => println!(
                "transfer {transfer}: waiting for someone who has it (tried: {})",
                clean(&tried.join("; "))
            ),
            Event::TransferFailed {
                transfer, error, ..
            } => println!("transfer {transfer}: failed: {}", clean(error)),
            Event::OfferReceived {
                offer,
                name,
                contact,
                verification_code,
                files,
                total,
                ..
            } => println!(
                "offer {offer}: {} wants to send {} file{} ({}), verification code {verification_code}",
                who(contact.as_deref(), name),
                files.len(),
                if files.len() == 1 { "" } else { "s" },
                HumanBytes(*total)
            ),
            Event::OfferRefused { peer, name, reason } => println!(
                "refused an offer from {}? ({peer}): {}",
                clean(name),
                clean(reason)
            ),
            Event::OfferExpired { offer } => {
                println!("offer {offer}: not answered in time, declined")
            }
            Event::OfferAccepted { peer, files, .. } => {
                println!("{peer} accepted {files} files")
            }
            Event::OfferDeclined { peer, reason, .. } => {
                println!("{peer} declined: {}", clean(reason))
            }
            Event::SendProgress {
                peer, done, total, ..
            } => println!("{peer} has {done}/{total} bytes"),
            Event::MessageReceived { message } => crate::messaging::print_message(*self, message),
            Event::MessageStateChanged { id, state } => {
                println!("message {id}: {}", state.as_str())
            }
            _ => {}
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
            let name = match (&p.contact, p.name.is_empty()) {
                (Some(given), true) => clean(given).into_owned(),
                (Some(given), false) => format!("{} (claims {:?})", clean(given), clean(&p.name)),
                (None, _) => who(None, &p.name),
            };
            let over = match p.transport {
                Some(t) => format!(" over {}", carrier(t, p.medium.as_deref())),
                None => String::new(),
            };
            println!(
                "{name}  {}  [{state}{over}]  code {}",
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

    /// Prints a share's ticket: alone on the first line in text mode, as a `ticket` event in JSON.
    pub fn ticket(&self, ticket: &Ticket, files: usize, bytes: u64) {
        if self.json {
            self.line(&json!({
                "event": "ticket",
                "ticket": ticket.to_string(),
                "content": ticket.content,
                "files": files,
                "bytes": bytes,
            }));
        } else {
            println!("{ticket}");
        }
    }

    /// Prints the result of a finished download (replacing the core's shorter `transfer_finished`).
    pub fn download_finished(&self, transfer: u64, dest: &Path, report: &DownloadReport) {
        let secs = report.secs.max(1e-6);
        let mib_per_s = report.fetched as f64 / MIB / secs;
        if self.json {
            let mut v = json!(report);
            v["event"] = json!("transfer_finished");
            v["transfer"] = json!(transfer);
            v["dest"] = json!(dest);
            v["mib_per_s"] = json!(mib_per_s);
            self.line(&v);
            return;
        }
        println!(
            "received {} file{} ({}) into {} in {secs:.2} s ({mib_per_s:.1} MiB/s): fetched {}, \
             resumed {}, already there {}; every file verified",
            report.files,
            if report.files == 1 { "" } else { "s" },
            HumanBytes(report.bytes),
            dest.display(),
            HumanBytes(report.fetched),
            HumanBytes(report.resumed),
            HumanBytes(report.skipped),
        );
        if report.rejected > 0 {
            println!(
                "{} failed verification and were fetched again from another provider",
                HumanBytes(report.rejected)
            );
        }
        for r in &report.renamed {
            println!(
                "saved {} as {} ({})",
                clean(&r.path),
                clean(&r.saved_as),
                clean(&r.reason)
            );
        }
        for note in &report.notes {
            println!("{}", clean(note));
        }
    }

    /// Prints what `verify` found in each share.
    pub fn verified(&self, shares: &[ShareHealth]) {
        for share in shares {
            if self.json {
                let mut v = json!(share);
                v["event"] = json!("verified");
                self.line(&v);
                continue;
            }
            let plural = |n: usize| if n == 1 { "" } else { "s" };
            let state = match share.damaged.len() {
                0 => "every file verifies".to_string(),
                n => format!("{n} file{} damaged", plural(n)),
            };
            println!(
                "{}  {}  {} file{}, {}: {state}",
                share.id,
                clean(&share.name),
                share.files,
                plural(share.files),
                HumanBytes(share.bytes)
            );
            for f in &share.damaged {
                let outcome = match (&f.error, f.repaired) {
                    (_, true) => "repaired from peers".to_string(),
                    (Some(e), false) => format!("not repaired: {}", clean(e)),
                    (None, false) => "not repaired".to_string(),
                };
                println!(
                    "  {}: {outcome}",
                    damaged_line(&f.file, f.chunks.len(), f.damage)
                );
            }
        }
    }

    /// Says that this device serves a share, with a ticket naming it: until Ctrl-C, or on in the
    /// running node (`by_running_node`).
    pub fn seeding(&self, ticket: &Ticket, by_running_node: bool) {
        if self.json {
            self.line(&json!({"event": "seeding", "content": ticket.content, "ticket": ticket.to_string()}));
        } else if by_running_node {
            println!(
                "the running node seeds it; others can fetch from this device with:\n{ticket}"
            );
        } else {
            println!("seeding until Ctrl-C; others can fetch from this device with:\n{ticket}");
        }
    }

    /// Prints an arbitrary JSON result (already shaped with an `event` field).
    pub fn raw(&self, value: &serde_json::Value) {
        self.line(value);
    }
}

/// "Trip/a.bin changed since it was shared: 32 chunks do not verify".
pub fn damaged_line(file: &str, chunks: usize, damage: Damage) -> String {
    let what = match damage {
        Damage::Changed => "changed since it was shared",
        Damage::Corrupt => "no longer holds what was shared (damaged on disk)",
        Damage::Missing => "is gone or unreadable",
    };
    let verb = if chunks == 1 {
        "chunk does"
    } else {
        "chunks do"
    };
    format!("{} {what}: {chunks} {verb} not verify", clean(file))
}

/// How a connection is carried, as shown: `Tcp`, `Quic`, `Relay`, `link:wifi-aware`.
fn carrier(transport: Transport, medium: Option<&str>) -> String {
    match (transport, medium) {
        (Transport::Link, Some(medium)) => format!("link:{}", clean(medium)),
        (transport, _) => format!("{transport:?}"),
    }
}
