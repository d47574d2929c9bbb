//! The AirDrop flow on the terminal: `send PEER PATH...` offers files to a nearby device, and
//! `run --accept ask|all|none` answers the offers that arrive (`all` from contacts only; the
//! terminal question is in `prompt.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, anyhow};
use meshdrop_core::Node;
use meshdrop_core::transfer::Visibility;
use meshdrop_core::transfer::offer::{ANSWER_TIMEOUT, Decision, SendOutcome};
use serde_json::json;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::Cli;
use crate::commands::{absolute, config};
use crate::control::backend::unexpected;
use crate::control::{Backend, Request, Response, Step, Update};
use crate::output::Output;
use crate::prompt::{Answer, Offer, parse_answer};
use crate::text::{clean, who};

/// What `run` does with an incoming offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Accept {
    /// Ask on the terminal: accept all (and add the sender as a contact), pick files, or decline.
    Ask,
    /// Accept every offer from a contact; decline strangers'.
    All,
    /// Decline every offer.
    None,
}

impl Accept {
    fn word(self) -> &'static str {
        match self {
            Accept::Ask => "ask",
            Accept::All => "all",
            Accept::None => "none",
        }
    }
}

/// Answers offers for `run`: by policy, or by asking on the terminal one offer at a time.
pub struct Answerer {
    policy: Accept,
    dest: PathBuf,
    lines: Option<mpsc::Receiver<String>>,
}

impl Answerer {
    /// Offers are saved under `dest` (created when missing); `ask` reads answers from standard
    /// input.
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

    /// Says how offers are answered and where they go.
    pub fn announce(&self, out: Output, visible: Visibility) {
        let visible = crate::commands::visibility_word(visible);
        if out.json {
            out.raw(
                &json!({"event": "receiving", "dir": self.dest, "accept": self.policy.word(),
                "visible": visible}),
            );
        } else {
            println!(
                "offers: {} (visible to {visible}); accepted files go into {}",
                self.policy.word(),
                self.dest.display()
            );
        }
    }

    /// Decides on one offer and answers the node: `all` takes contacts' offers only, `ask`
    /// asks on the terminal.
    pub async fn answer(&mut self, node: &Node, out: Output, offer: &Offer<'_>) -> Result<()> {
        let (decision, why) = match (self.policy, offer.contact.is_some()) {
            (Accept::None, _) => (Decision::Decline, "--accept none"),
            (Accept::All, true) => (Answer::All.into_decision(&self.dest), ""),
            (Accept::All, false) => (
                Decision::Decline,
                "--accept all takes contacts' offers only",
            ),
            (Accept::Ask, _) => (self.ask(offer).await, ""),
        };
        let decision = match decision {
            Decision::Accept { .. } => match std::fs::create_dir_all(&self.dest) {
                Ok(()) => decision,
                Err(e) => {
                    let dir = self.dest.display();
                    eprintln!("cannot create {dir} ({e}): declining");
                    Decision::Decline
                }
            },
            Decision::Decline => decision,
        };
        let (accepted, add_contact) = match &decision {
            Decision::Accept { add_contact, .. } => (true, *add_contact),
            Decision::Decline => (false, false),
        };
        node.respond_offer(offer.id, decision)?;
        if out.json {
            out.raw(
                &json!({"event": "offer_answered", "offer": offer.id, "peer": offer.peer,
                "accepted": accepted, "add_contact": add_contact,
                "from_contact": offer.contact.is_some()}),
            );
        } else if accepted {
            let contact = if add_contact {
                "; the sender is a contact now"
            } else {
                ""
            };
            println!(
                "offer {} accepted into {}{contact}",
                offer.id,
                self.dest.display()
            );
        } else {
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(" ({why})")
            };
            println!("offer {} from {} declined{why}", offer.id, offer.sender());
        }
        Ok(())
    }

    /// Asks on the terminal (a bad answer declines).
    async fn ask(&mut self, offer: &Offer<'_>) -> Decision {
        crate::prompt::show(offer, &self.dest);
        // The node declines by itself when the offer is not answered in time.
        let line = match &mut self.lines {
            Some(lines) => match tokio::time::timeout(ANSWER_TIMEOUT, lines.recv()).await {
                Ok(line) => line.unwrap_or_default(),
                Err(_) => {
                    eprintln!("not answered in time; the offer was declined");
                    return Decision::Decline;
                }
            },
            None => String::new(),
        };
        match parse_answer(&line, offer.files.len()) {
            Ok(Answer::AllAndContact) if offer.contact.is_some() => {
                Answer::All.into_decision(&self.dest)
            }
            Ok(answer) => answer.into_decision(&self.dest),
            Err(e) => {
                eprintln!("{e}; declining");
                Decision::Decline
            }
        }
    }
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
    let mut backend = Backend::node(data_dir, config(cli, data_dir)?, &cli.links).await?;
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
                contact,
                verification_code,
            }) => {
                if out.json {
                    out.raw(&json!({"event": "offering", "peer": peer, "name": name,
                        "contact": contact, "verification_code": verification_code}));
                } else {
                    let shown = who(contact.as_deref(), &name);
                    println!("offering to {shown} ({peer}), verification code {verification_code}");
                    if contact.is_none() {
                        eprintln!(
                            "note: {peer} is not a contact of this device: compare the code \
                             with its owner (devices take strangers' offers only when visible \
                             to everyone)"
                        );
                    }
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
        SendOutcome::Declined { reason } => {
            Err(anyhow!("the receiver declined ({})", clean(&reason)))
        }
        SendOutcome::Failed { error, .. } => {
            Err(anyhow!("the receiver's download failed: {error}"))
        }
    }
}
