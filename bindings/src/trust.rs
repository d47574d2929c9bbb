//! Who may: contacts (given names, how each became one), who may offer files (visibility), and
//! the shares this device serves (each a key, until unshared).

use std::time::Duration;

use meshdrop_core::PeerId;
use meshdrop_core::contacts::Via;
use meshdrop_core::transfer::{ShareKind, Ticket};

use crate::error::MeshdropError;
use crate::node::Node;
use crate::types::parse;

/// A device the user chose to trust.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Contact {
    /// Its peer id.
    pub peer_id: String,
    /// The name the user gave it.
    pub name: String,
    /// The name it gives itself, when heard (a claim, never shown as the contact's name).
    pub claimed_name: Option<String>,
    /// How it became a contact.
    pub via: ContactVia,
    /// Unix seconds of when it became one.
    pub added: u64,
    /// Unix seconds of the last meeting; `None` when never met.
    pub last_seen: Option<u64>,
}

/// How a device became a contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ContactVia {
    /// Added by the user after comparing the verification code.
    Code,
    /// Named by a room invite the user joined with.
    Invite,
    /// Offered by a ticket the user accepted.
    Ticket,
    /// Its offer was answered with "add as contact".
    Offer,
}

impl From<meshdrop_core::contacts::Contact> for Contact {
    fn from(c: meshdrop_core::contacts::Contact) -> Self {
        Self {
            peer_id: c.peer.to_string(),
            name: c.name,
            claimed_name: c.claimed,
            via: match c.via {
                Via::Code => ContactVia::Code,
                Via::Invite => ContactVia::Invite,
                Via::Ticket => ContactVia::Ticket,
                Via::Offer => ContactVia::Offer,
            },
            added: c.added,
            last_seen: c.last_seen,
        }
    }
}

/// Who may offer this device files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Visibility {
    /// Nobody.
    Off,
    /// Contacts only (the default).
    Contacts,
    /// Everyone nearby (phones: for a while, then back to contacts).
    Everyone,
}

impl From<Visibility> for meshdrop_core::transfer::Visibility {
    fn from(v: Visibility) -> Self {
        match v {
            Visibility::Off => Self::Off,
            Visibility::Contacts => Self::Contacts,
            Visibility::Everyone => Self::Everyone,
        }
    }
}

impl From<meshdrop_core::transfer::Visibility> for Visibility {
    fn from(v: meshdrop_core::transfer::Visibility) -> Self {
        match v {
            meshdrop_core::transfer::Visibility::Off => Self::Off,
            meshdrop_core::transfer::Visibility::Contacts => Self::Contacts,
            meshdrop_core::transfer::Visibility::Everyone => Self::Everyone,
        }
    }
}

/// A share this device serves.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ShareInfo {
    /// Its short id (what `unshare` takes).
    pub id: String,
    /// The share's content id.
    pub content: String,
    /// Its top-level files and folders.
    pub name: String,
    /// Files in it.
    pub files: u64,
    /// Bytes in it.
    pub bytes: u64,
    /// Why it is served: `shared`, `offer`, `attachment` or `download`.
    pub kind: String,
    /// Since when (Unix seconds).
    pub since: u64,
    /// Until when (Unix seconds); `None`: until unshared.
    pub expires: Option<u64>,
    /// Bytes served under its key.
    pub served: u64,
    /// Whether its files can be read now: `false` for files the app opened in an earlier run,
    /// until it shares the same files again.
    pub available: bool,
}

impl From<meshdrop_core::transfer::ShareInfo> for ShareInfo {
    fn from(s: meshdrop_core::transfer::ShareInfo) -> Self {
        Self {
            id: s.id,
            content: s.content.to_string(),
            name: s.name,
            files: s.files as u64,
            bytes: s.bytes,
            kind: match s.kind {
                ShareKind::Shared => "shared",
                ShareKind::Offer => "offer",
                ShareKind::Attachment => "attachment",
                ShareKind::Download => "download",
            }
            .into(),
            since: s.since,
            expires: s.expires,
            served: s.served,
            available: s.available,
        }
    }
}

#[uniffi::export]
impl Node {
    /// The contacts, with the names the user gave them.
    pub fn contacts(&self) -> Result<Vec<Contact>, MeshdropError> {
        Ok(self.core.contacts()?.into_iter().map(Into::into).collect())
    }

    /// Makes `peer_id` a contact named `name` (after the user compared the verification code).
    pub fn add_contact(&self, peer_id: String, name: String) -> Result<(), MeshdropError> {
        let peer: PeerId = parse("peer id", &peer_id)?;
        Ok(self.core.add_contact(peer, &name)?)
    }

    /// Gives a contact another name.
    pub fn rename_contact(&self, peer_id: String, name: String) -> Result<(), MeshdropError> {
        let peer: PeerId = parse("peer id", &peer_id)?;
        Ok(self.core.rename_contact(peer, &name)?)
    }

    /// Makes a contact a stranger again.
    pub fn remove_contact(&self, peer_id: String) -> Result<(), MeshdropError> {
        let peer: PeerId = parse("peer id", &peer_id)?;
        Ok(self.core.remove_contact(peer)?)
    }

    /// Makes the sender a ticket offers as a contact a contact; `false` when it offers none.
    pub fn accept_contact_offer(&self, ticket: String) -> Result<bool, MeshdropError> {
        let ticket: Ticket = ticket.parse()?;
        Ok(self.core.accept_contact_offer(&ticket)?)
    }

    /// Who may offer files from now on; `for_secs` bounds it (then back to contacts), as a phone
    /// does for `Everyone` (600).
    #[uniffi::method(default(for_secs = None))]
    pub fn set_visibility(&self, visibility: Visibility, for_secs: Option<u64>) {
        let for_ = for_secs.map(Duration::from_secs);
        self.core.set_visibility(visibility.into(), for_);
    }

    /// Who may offer files now.
    pub fn visibility(&self) -> Visibility {
        self.core.visibility().into()
    }

    /// The shares this device serves.
    pub fn shares(&self) -> Result<Vec<ShareInfo>, MeshdropError> {
        Ok(self.core.shares()?.into_iter().map(Into::into).collect())
    }

    /// Stops serving a share at once (its ticket opens nothing here any more).
    pub fn unshare(&self, id: String) -> Result<ShareInfo, MeshdropError> {
        Ok(self.core.unshare(&id)?.into())
    }
}
