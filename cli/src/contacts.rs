//! `contacts [list]`, `contacts add PEER --name NAME [--code CODE]`, `contacts remove PEER`,
//! `contacts rename PEER NAME`, through the running node or the data dir without one; and the
//! contact a ticket offers (`get --add-contact`).

use std::path::Path;

use anyhow::{Result, bail};
use meshdrop_core::contacts::Via;
use meshdrop_core::identity::verification_code;
use meshdrop_core::{Contact, PeerId, Ticket};
use serde_json::json;

use crate::control::protocol::ContactNow;
use crate::control::{Backend, Request};
use crate::output::Output;
use crate::resolve;
use crate::text::clean;

/// What to do with contacts.
#[derive(clap::Subcommand, Debug)]
pub enum ContactsCommand {
    /// List the contacts (the default).
    List,
    /// Make a device a contact, after comparing the 6-digit code both screens show.
    Add {
        /// The device: its peer id, or the name exactly one device nearby or known claims (that
        /// needs the running node).
        peer: String,
        /// The name to give it (what `send` and `msg` take).
        #[arg(long)]
        name: String,
        /// The code the other device shows: the contact is added only when it matches.
        #[arg(long)]
        code: Option<String>,
    },
    /// Make a contact a stranger again.
    Remove {
        /// The contact: its peer id or its name.
        peer: String,
    },
    /// Give a contact another name.
    Rename {
        /// The contact: its peer id or its name.
        peer: String,
        /// The new name.
        name: String,
    },
}

/// Runs a `contacts` command.
pub async fn run(data_dir: &Path, out: Output, cmd: Option<&ContactsCommand>) -> Result<()> {
    let mut backend = Backend::offline(data_dir, None).await?;
    let (me, _) = backend.id().await?;
    match cmd {
        None | Some(ContactsCommand::List) => list(out, &backend.contacts().await?, &me),
        Some(ContactsCommand::Add { peer, name, code }) => {
            let peer = device(&mut backend, &me, peer).await?;
            let here = verification_code(&me, &peer);
            if let Some(typed) = code {
                check_code(typed, &here, &peer)?;
            }
            let name = name.clone();
            let now = backend.contact(Request::AddContact { peer, name }).await?;
            added(out, &now, code.is_some());
        }
        Some(ContactsCommand::Remove { peer }) => {
            let contacts = backend.contacts().await?;
            let c = resolve::contact(peer, &contacts, &me)?;
            backend.remove_contact(c.peer).await?;
            if out.json {
                out.raw(&json!({"event": "contact_removed", "peer": c.peer, "name": c.name}));
            } else {
                println!("{} ({}) is a stranger again", clean(&c.name), c.peer);
            }
        }
        Some(ContactsCommand::Rename { peer, name }) => {
            let contacts = backend.contacts().await?;
            let c = resolve::contact(peer, &contacts, &me)?;
            let req = Request::RenameContact {
                peer: c.peer,
                name: name.clone(),
            };
            let now = backend.contact(req).await?;
            if out.json {
                out.raw(&contact_json(
                    &now.contact,
                    &now.verification_code,
                    "contact_renamed",
                ));
            } else {
                println!(
                    "{} ({}) is now {}",
                    clean(&c.name),
                    c.peer,
                    clean(&now.contact.name)
                );
            }
        }
    }
    Ok(())
}

/// The device `typed` names for `add`: a peer id, or (on the running node) a unique claim.
async fn device(backend: &mut Backend, me: &PeerId, typed: &str) -> Result<PeerId> {
    if let Ok(peer) = typed.trim().parse::<PeerId>() {
        return Ok(peer);
    }
    if !matches!(backend, Backend::Remote(_)) {
        bail!(
            "{:?} is not a peer id, and the names devices claim are known only to a running \
             node: start `meshdrop run`, or give the peer id",
            clean(typed)
        );
    }
    let peers = backend.peers().await?;
    let contacts = backend.contacts().await?;
    resolve::claimed(typed, &peers, &contacts, me)
}

/// Checks the code the user read on the other device against this one's.
fn check_code(typed: &str, here: &str, peer: &PeerId) -> Result<()> {
    let digits = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect()
    };
    let (typed_digits, here_digits) = (digits(typed), digits(here));
    if typed_digits.len() != 6 || !typed_digits.chars().all(|c| c.is_ascii_digit()) {
        bail!("{:?} is not a verification code (6 digits)", clean(typed));
    }
    if typed_digits != here_digits {
        let digits = typed_digits;
        bail!(
            "the codes differ: this device shows {here} for {peer}, not {digits}; it is not the \
             device you compared with, so nothing was added"
        );
    }
    Ok(())
}

/// Prints a contact just added (`checked`: its code was compared here).
fn added(out: Output, now: &ContactNow, checked: bool) {
    if out.json {
        let mut v = contact_json(&now.contact, &now.verification_code, "contact_added");
        v["new"] = json!(now.new);
        v["code_checked"] = json!(checked);
        out.raw(&v);
        return;
    }
    let c = &now.contact;
    let was = if now.new { "" } else { " (a contact already)" };
    println!("added {} ({}) as a contact{was}", clean(&c.name), c.peer);
    match checked {
        true => println!("verification code {}: it matches", now.verification_code),
        false => println!(
            "verification code {}: the other device must show the same code for this one",
            now.verification_code
        ),
    }
}

/// A contact as one JSON line.
fn contact_json(c: &Contact, code: &str, event: &str) -> serde_json::Value {
    let mut v = json!(c);
    v["event"] = json!(event);
    v["verification_code"] = json!(code);
    v
}

/// Prints the contacts.
fn list(out: Output, contacts: &[Contact], me: &PeerId) {
    for c in contacts {
        let code = verification_code(me, &c.peer);
        if out.json {
            out.raw(&contact_json(c, &code, "contact"));
            continue;
        }
        let claims = match &c.claimed {
            Some(claim) if *claim != c.name => format!("  claims {:?}", clean(claim)),
            _ => String::new(),
        };
        let added = crate::messaging::utc(c.added.saturating_mul(1000));
        let seen = match c.last_seen {
            Some(secs) => format!(
                "last met {} UTC",
                crate::messaging::utc(secs.saturating_mul(1000))
            ),
            None => "not met yet".into(),
        };
        println!(
            "{}  {}  code {code}{claims}  added {added} UTC {}  {seen}",
            clean(&c.name),
            c.peer,
            via(c.via)
        );
    }
    if contacts.is_empty() && !out.json {
        println!("no contacts yet: `meshdrop contacts add PEER --name NAME` adds one");
    }
}

fn via(via: Via) -> &'static str {
    match via {
        Via::Code => "by code",
        Via::Invite => "from a room invite",
        Via::Ticket => "from a ticket",
        Via::Offer => "answering its offer",
    }
}

/// For `get`: accepts the contact `ticket` offers when `accept`, or says how to.
pub async fn ticket_offer(
    backend: &mut Backend,
    out: Output,
    ticket: &Ticket,
    accept: bool,
) -> Result<()> {
    let (Some(name), Some(sender)) = (&ticket.contact, ticket.providers.first()) else {
        if accept && !out.json {
            println!("the ticket offers no contact; downloading anyway");
        }
        return Ok(());
    };
    if accept {
        let req = Request::AcceptContactOffer {
            ticket: ticket.clone(),
        };
        let now = backend.contact(req).await?;
        added(out, &now, false);
        return Ok(());
    }
    let (me, _) = backend.id().await?;
    let code = verification_code(&me, &sender.peer);
    if out.json {
        out.raw(
            &json!({"event": "contact_offered", "peer": sender.peer, "name": name,
            "verification_code": code}),
        );
    } else {
        println!(
            "the ticket offers its sender {} ({}) as a contact (verification code {code}): \
             `meshdrop get --add-contact TICKET` accepts it",
            clean(name),
            sender.peer
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_compared_as_six_digits_however_it_was_typed() {
        let peer = PeerId::random();
        for typed in ["717 702", "717702", " 717-702 "] {
            assert!(check_code(typed, "717 702", &peer).is_ok(), "{typed:?}");
        }
        let e = check_code("717 703", "717 702", &peer)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the codes differ") && e.contains("nothing was added"),
            "{e}"
        );
        let e = check_code("71770", "717 702", &peer)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a verification code"), "{e}");
    }
}
