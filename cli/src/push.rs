//! The AirDrop flow on the terminal: `send PEER PATH...` offers files to a nearby device, and
//! `run --accept ask|all|none` answers the offers that arrive.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use meshdrop_core::transfer::offer::{Decision, OfferedFile, SendOutcome};
use meshdrop_core::{Event, Node, PeerId};
use serde_json::json;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::output::Output;

/// What `run` does with an incoming offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Accept {
    /// Ask on the terminal: accept all, pick files, or decline.
    Ask,
    /// Accept every offer.
    All,
    /// Decline every offer.
    None,
}

/// Answers offers for `run`: by policy, or by asking on the terminal one offer at a time.
pub struct Answerer {
    policy: Accept,
    dest: PathBuf,
    lines: Option<mpsc::Receiver<String>>,
}

impl Answerer {
    /// Offers are saved under `dest`; `ask` reads answers from standard input.
    pub fn new(policy: Accept, dest: PathBuf) -> Self {
        let lines = (policy == Accept::Ask).then(|| {
            let (tx, rx) = mpsc::channel(8);
            tokio::spawn(async move {
                let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
                while let Ok(Some(line)) = stdin.next_line().await {
                    if tx.send(line).await.is_err() {
                        break;
                    }
                }
            });
            rx
        });
        Self {
            policy,
            dest,
            lines,
        }
    }

    /// Decides on one `offer_received` event and answers the node.
    pub async fn answer(
        &mut self,
        node: &Node,
        out: Output,
        offer: u64,
        name: &str,
        files: &[OfferedFile],
    ) -> Result<()> {
        let decision = match self.policy {
            Accept::All => Decision::Accept {
                dest: self.dest.clone(),
                files: None,
            },
            Accept::None => Decision::Decline,
            Accept::Ask => {
                eprintln!("{name} offers {} files:", files.len());
                for (i, f) in files.iter().enumerate().take(50) {
                    eprintln!("  {:>3}. {} ({} bytes)", i + 1, f.path, f.size);
                }
                if files.len() > 50 {
                    eprintln!("  … and {} more", files.len() - 50);
                }
                eprintln!(
                    "Accept into {}? [a]ll, [n]o, or file numbers (e.g. 1,3-5):",
                    self.dest.display()
                );
                let line = match &mut self.lines {
                    Some(lines) => lines.recv().await.unwrap_or_default(),
                    None => String::new(),
                };
                match parse_answer(&line, files.len()) {
                    Ok(d) => d.into_decision(&self.dest),
                    Err(e) => {
                        eprintln!("{e}; declining");
                        Decision::Decline
                    }
                }
            }
        };
        let accepted = matches!(decision, Decision::Accept { .. });
        node.respond_offer(offer, decision)?;
        if out.json {
            out.raw(&json!({"event": "offer_answered", "offer": offer, "accepted": accepted}));
        } else {
            println!(
                "offer {offer} {}",
                if accepted { "accepted" } else { "declined" }
            );
        }
        Ok(())
    }
}

/// A terminal answer: all, none, or some files (0-based).
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    All,
    None,
    Some(Vec<usize>),
}

impl Answer {
    fn into_decision(self, dest: &Path) -> Decision {
        match self {
            Answer::All => Decision::Accept {
                dest: dest.to_path_buf(),
                files: None,
            },
            Answer::None => Decision::Decline,
            Answer::Some(files) => Decision::Accept {
                dest: dest.to_path_buf(),
                files: Some(files),
            },
        }
    }
}

/// Parses `a`/`all`/`y`, `n`/`no`/empty, or 1-based numbers and ranges such as `1,3-5`.
fn parse_answer(line: &str, count: usize) -> Result<Answer> {
    let line = line.trim().to_lowercase();
    match line.as_str() {
        "a" | "all" | "y" | "yes" => return Ok(Answer::All),
        "" | "n" | "no" | "none" => return Ok(Answer::None),
        _ => {}
    }
    let mut picked = Vec::new();
    for part in line.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.trim().parse()?, b.trim().parse()?);
        if a == 0 || b < a || b > count {
            bail!("{part:?} is not between 1 and {count}");
        }
        picked.extend(a - 1..b);
    }
    picked.sort_unstable();
    picked.dedup();
    Ok(Answer::Some(picked))
}

/// `send PEER PATH...`: waits until the peer (a peer id or a device name) is connected, offers
/// the files, and follows the offer until it is declined or delivered.
pub async fn send(
    node: &Node,
    out: Output,
    peer: &str,
    paths: Vec<PathBuf>,
    wait: Duration,
) -> Result<()> {
    let mut events = node.events();
    let target = find_peer(node, &mut events, peer, wait).await?;
    let name = node
        .peers()
        .await?
        .into_iter()
        .find(|p| p.peer == target)
        .map(|p| p.name)
        .unwrap_or_default();
    if !out.json {
        println!(
            "offering to {} ({target}), verification code {}",
            if name.is_empty() { "?" } else { &name },
            node.verification_code(&target)
        );
    }
    let printer = tokio::spawn(async move {
        while let Ok(ev) = events.recv().await {
            if matches!(
                ev,
                Event::OfferAccepted { .. }
                    | Event::OfferDeclined { .. }
                    | Event::SendProgress { .. }
            ) {
                out.event(&ev);
            }
        }
    });
    let outcome = node.send_files(target, paths).await;
    printer.abort();
    let outcome = outcome?;
    if out.json {
        let mut v = json!(outcome);
        v["event"] = json!("send_finished");
        v["peer"] = json!(target);
        out.raw(&v);
    }
    match outcome {
        SendOutcome::Delivered { bytes } => {
            if !out.json {
                println!("delivered: {bytes} bytes verified on the receiver");
            }
            Ok(())
        }
        SendOutcome::Declined { reason } => Err(anyhow!("the receiver declined ({reason})")),
        SendOutcome::Failed { error } => Err(anyhow!("the receiver's download failed: {error}")),
    }
}

/// The peer named `who` (peer id or device name), once connected, within `wait`.
async fn find_peer(
    node: &Node,
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    who: &str,
    wait: Duration,
) -> Result<PeerId> {
    let by_id: Option<PeerId> = who.parse().ok();
    let matches = |peer: &PeerId, name: &str| by_id.as_ref() == Some(peer) || name == who;
    if let Some(p) = node
        .peers()
        .await?
        .into_iter()
        .find(|p| p.connected && matches(&p.peer, &p.name))
    {
        return Ok(p.peer);
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut named: Option<PeerId> = None;
    loop {
        let ev = match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(ev)) => ev,
            Ok(Err(_)) => continue,
            Err(_) => bail!(
                "no nearby device {who:?} found within {} s (see `meshdrop peers`)",
                wait.as_secs()
            ),
        };
        match ev {
            Event::PeerDiscovered { peer, name, .. } | Event::PeerIdentified { peer, name, .. }
                if matches(&peer, &name) =>
            {
                named = Some(peer);
                if node
                    .peers()
                    .await?
                    .iter()
                    .any(|p| p.peer == peer && p.connected)
                {
                    return Ok(peer);
                }
            }
            Event::PeerConnected { peer, .. } if by_id == Some(peer) || named == Some(peer) => {
                return Ok(peer);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_answers_are_understood() {
        assert_eq!(parse_answer("a", 3).unwrap(), Answer::All);
        assert_eq!(parse_answer(" N ", 3).unwrap(), Answer::None);
        assert_eq!(parse_answer("", 3).unwrap(), Answer::None);
        assert_eq!(parse_answer("1,3", 3).unwrap(), Answer::Some(vec![0, 2]));
        assert_eq!(parse_answer("2-3,2", 3).unwrap(), Answer::Some(vec![1, 2]));
        assert!(parse_answer("4", 3).is_err());
        assert!(parse_answer("0", 3).is_err());
        assert!(parse_answer("x", 3).is_err());
    }
}
