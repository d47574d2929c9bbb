//! The AirDrop flow on the terminal: `send PEER PATH...` offers files to a nearby device, and
//! `run --accept ask|all|none` answers the offers that arrive.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use meshdrop_core::Node;
use meshdrop_core::transfer::offer::{Decision, OfferedFile, SendOutcome};
use serde_json::json;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::Cli;
use crate::commands::{absolute, config};
use crate::control::backend::unexpected;
use crate::control::{Backend, Request, Response, Step, Update};
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

/// `send PEER PATH...`: the node (the running one, or one started here) waits until the peer (a
/// peer id or a device name) is connected, offers the files, and follows the offer until it is
/// declined or delivered; this command prints how it goes.
pub async fn send(
    cli: &Cli,
    data_dir: &Path,
    out: Output,
    peer: &str,
    paths: &[PathBuf],
    wait: Duration,
) -> Result<()> {
    let req = Request::Send {
        peer: peer.to_string(),
        paths: absolute(paths)?,
        wait_secs: wait.as_secs(),
    };
    let mut backend = Backend::node(data_dir, config(cli, data_dir)?).await?;
    let result = follow_offer(&mut backend, out, req).await;
    backend.close().await?;
    result
}

async fn follow_offer(backend: &mut Backend, out: Output, req: Request) -> Result<()> {
    let mut call = backend.call(req).await?;
    let (peer, outcome) = loop {
        match call.next().await? {
            Step::Update(Update::Offering {
                peer,
                name,
                verification_code,
            }) => {
                if !out.json {
                    let name = if name.is_empty() { "?" } else { &name };
                    println!("offering to {name} ({peer}), verification code {verification_code}");
                }
            }
            Step::Update(Update::Event(ev)) => out.event(&ev),
            Step::Done(Response::Sent { peer, outcome }) => break (peer, outcome),
            Step::Done(other) => return Err(unexpected(&other)),
        }
    };
    if out.json {
        let mut v = json!(outcome);
        v["event"] = json!("send_finished");
        v["peer"] = json!(peer);
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
