//! What a node does for the contact requests: list, add (the user compared the code), rename,
//! remove, and accept the contact a ticket offers.

use anyhow::{Result, anyhow, bail};
use meshdrop_core::{Node, PeerId};

use super::protocol::{ContactNow, Request, Response};

/// Runs one contact request on `node`.
pub fn execute(node: &Node, req: Request) -> Result<Response> {
    Ok(match req {
        Request::Contacts => Response::Contacts(node.contacts()?),
        Request::AddContact { peer, name } => {
            let new = !is_contact(node, &peer)?;
            node.add_contact(peer, &name)?;
            Response::Contact(now(node, peer, new)?)
        }
        Request::RenameContact { peer, name } => {
            node.rename_contact(peer, &name)?;
            Response::Contact(now(node, peer, false)?)
        }
        Request::RemoveContact { peer } => {
            node.remove_contact(peer)?;
            Response::ContactRemoved { peer }
        }
        Request::AcceptContactOffer { ticket } => {
            let Some(sender) = ticket.providers.first().map(|p| p.peer) else {
                bail!("the ticket names no sender");
            };
            if ticket.contact.is_none() {
                bail!("the ticket offers no contact (its sender shares with --offer-contact)");
            }
            if sender == node.peer_id() {
                bail!("the ticket offers this device itself as a contact");
            }
            let new = node.accept_contact_offer(&ticket)?;
            Response::Contact(now(node, sender, new)?)
        }
        other => bail!("not a contact request: {other:?}"),
    })
}

fn is_contact(node: &Node, peer: &PeerId) -> Result<bool> {
    Ok(node.contacts()?.iter().any(|c| c.peer == *peer))
}

/// Contact `peer` as the node has it now, with its code.
fn now(node: &Node, peer: PeerId, new: bool) -> Result<ContactNow> {
    let contact = node
        .contacts()?
        .into_iter()
        .find(|c| c.peer == peer)
        .ok_or_else(|| anyhow!("contact {peer} vanished"))?;
    Ok(ContactNow {
        contact,
        verification_code: node.verification_code(&peer),
        new,
    })
}
