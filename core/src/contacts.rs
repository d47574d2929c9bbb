//! Contacts: the devices the user chose to trust, under the names the user gave them. A device
//! becomes a contact only by an act of the user (adding it after comparing the verification code,
//! joining a room by its invite, accepting a ticket or an offer that offers its sender as a
//! contact); meeting a device on the network does not make it one. The name a device gives itself
//! (over mDNS or identify) is only its claim: kept beside the contact, never over the given name.

use libp2p::PeerId;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store::{self, Store};

/// The longest contact name kept, in bytes (longer names are cut).
pub const MAX_NAME: usize = 100;

/// How a device became a contact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// Added by the user (after comparing the verification code).
    Code,
    /// Named by a room invite the user joined with.
    Invite,
    /// Offered by a ticket the user accepted.
    Ticket,
    /// Its offer was answered with "add as contact".
    Offer,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Code => "code",
            Via::Invite => "invite",
            Via::Ticket => "ticket",
            Via::Offer => "offer",
        }
    }
}

impl ToSql for Via {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for Via {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Ok(match value.as_str()? {
            "code" => Via::Code,
            "invite" => Via::Invite,
            "ticket" => Via::Ticket,
            "offer" => Via::Offer,
            other => {
                let why = format!("unknown contact origin {other:?}");
                return Err(FromSqlError::Other(why.into()));
            }
        })
    }
}

/// A contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Its peer id (which also carries its public key).
    pub peer: PeerId,
    /// The name the user gave it.
    pub name: String,
    /// How it became a contact.
    pub via: Via,
    /// When (Unix seconds).
    pub added: u64,
    /// The name the device gives itself, when heard (a claim, shown as such).
    pub claimed: Option<String>,
    /// When it was last met (Unix seconds); `None` when never.
    pub last_seen: Option<u64>,
}

/// A name cut to [`MAX_NAME`] bytes on a character boundary, without surrounding space.
fn clean(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::Message("a contact needs a name".into()));
    }
    let mut end = name.len().min(MAX_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    Ok(name[..end].to_string())
}

/// Makes `peer` a contact named `name` (an existing contact keeps the name the user gave it,
/// unless `via` is [`Via::Code`]: the user named it just now). `false` when it was one already.
pub fn add(store: &Store, peer: &PeerId, name: &str, via: Via) -> Result<bool> {
    let name = clean(name)?;
    store.with(|c| {
        let added = c.execute(
            "INSERT OR IGNORE INTO contacts (peer_id, name, added, via) VALUES (?1, ?2, ?3, ?4)",
            params![peer.to_base58(), name, store::now_secs() as i64, via],
        )? == 1;
        if !added && via == Via::Code {
            c.execute(
                "UPDATE contacts SET name = ?2 WHERE peer_id = ?1",
                params![peer.to_base58(), name],
            )?;
        }
        Ok(added)
    })
}

/// Gives contact `peer` another name.
pub fn rename(store: &Store, peer: &PeerId, name: &str) -> Result<()> {
    let name = clean(name)?;
    let changed = store.with(|c| {
        c.execute(
            "UPDATE contacts SET name = ?2 WHERE peer_id = ?1",
            params![peer.to_base58(), name],
        )
    })?;
    if changed == 0 {
        return Err(not_a_contact(peer));
    }
    Ok(())
}

/// Makes `peer` a stranger again.
pub fn remove(store: &Store, peer: &PeerId) -> Result<()> {
    let removed = store.with(|c| {
        c.execute(
            "DELETE FROM contacts WHERE peer_id = ?1",
            [peer.to_base58()],
        )
    })?;
    if removed == 0 {
        return Err(not_a_contact(peer));
    }
    Ok(())
}

fn not_a_contact(peer: &PeerId) -> Error {
    Error::NotFound {
        what: format!("a contact {peer}"),
    }
}

/// The name the user gave `peer`, when it is a contact.
pub fn name_of(store: &Store, peer: &PeerId) -> Result<Option<String>> {
    store.with(|c| {
        c.query_row(
            "SELECT name FROM contacts WHERE peer_id = ?1",
            [peer.to_base58()],
            |r| r.get(0),
        )
        .optional()
    })
}

/// Every contact, by name then peer id, with the name each claims and when it was last met.
pub fn list(store: &Store) -> Result<Vec<Contact>> {
    store.with(|c| {
        let mut stmt = c.prepare(
            "SELECT c.peer_id, c.name, c.via, c.added, p.name, p.last_seen
             FROM contacts c LEFT JOIN peers p ON p.peer_id = c.peer_id
             ORDER BY c.name, c.peer_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Via>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<i64>>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, name, via, added, claimed, last_seen) = row?;
            let Ok(peer) = id.parse::<PeerId>() else {
                continue;
            };
            out.push(Contact {
                peer,
                name,
                via,
                added: u64::try_from(added).unwrap_or(0),
                claimed: claimed.filter(|n| !n.is_empty()),
                last_seen: last_seen
                    .and_then(|s| u64::try_from(s).ok())
                    .filter(|s| *s > 0),
            });
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_met_is_a_stranger_until_the_user_adds_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let carol = PeerId::random();
        store.peer_seen(&carol, "carol", &[]).unwrap();
        assert!(list(&store).unwrap().is_empty(), "meeting makes no contact");
        assert_eq!(name_of(&store, &carol).unwrap(), None);

        assert!(add(&store, &carol, " Carol (work) ", Via::Code).unwrap());
        let contacts = list(&store).unwrap();
        assert_eq!(contacts.len(), 1);
        let c = &contacts[0];
        assert_eq!((c.name.as_str(), c.via), ("Carol (work)", Via::Code));
        assert_eq!(c.claimed.as_deref(), Some("carol"));
        assert!(c.last_seen.is_some() && c.added > 0);

        // What the device claims later never changes the given name.
        store.peer_seen(&carol, "your bank", &[]).unwrap();
        assert_eq!(
            name_of(&store, &carol).unwrap().as_deref(),
            Some("Carol (work)")
        );
        // An invite naming it again keeps the user's name; the user's own act renames it.
        assert!(!add(&store, &carol, "someone's label", Via::Invite).unwrap());
        assert_eq!(
            name_of(&store, &carol).unwrap().as_deref(),
            Some("Carol (work)")
        );
        rename(&store, &carol, "Carol").unwrap();
        assert_eq!(list(&store).unwrap()[0].name, "Carol");
        remove(&store, &carol).unwrap();
        assert!(list(&store).unwrap().is_empty());
    }

    #[test]
    fn bad_names_and_unknown_contacts_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ben = PeerId::random();
        let e = add(&store, &ben, "  ", Via::Code).unwrap_err();
        assert!(e.to_string().contains("needs a name"), "{e}");
        assert!(matches!(
            rename(&store, &ben, "x"),
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(remove(&store, &ben), Err(Error::NotFound { .. })));
        add(&store, &ben, &"é".repeat(MAX_NAME), Via::Ticket).unwrap();
        assert!(list(&store).unwrap()[0].name.len() <= MAX_NAME);
    }
}
