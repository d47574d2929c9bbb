//! Whom a user means by what they typed: a peer id, a contact's given name, or the name a device
//! claims (over mDNS or identify). A contact's given name always wins over what strangers claim;
//! a name that several devices answer to is an error listing them with their codes. `send`,
//! `msg`, `chat` and `contacts` all resolve through here.

use anyhow::{Result, anyhow, bail};
use meshdrop_core::identity::verification_code;
use meshdrop_core::{Contact, PeerId, PeerInfo};

use crate::text::{clean, who};

/// A device the user named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The device.
    pub peer: PeerId,
    /// The name the user gave it, when a contact.
    pub contact: Option<String>,
    /// The name it claims, when heard.
    pub claim: Option<String>,
    /// Found by the name it claims (not by its id nor a contact's name).
    pub by_claim: bool,
}

impl Target {
    fn new(peer: PeerId, contacts: &[Contact], peers: &[PeerInfo], by_claim: bool) -> Self {
        let contact = contacts.iter().find(|c| c.peer == peer);
        let claim = peers
            .iter()
            .find(|p| p.peer == peer && !p.name.is_empty())
            .map(|p| p.name.clone())
            .or_else(|| contact.and_then(|c| c.claimed.clone()));
        Self {
            peer,
            contact: contact.map(|c| c.name.clone()),
            claim,
            by_claim,
        }
    }

    /// How the terminal shows it.
    pub fn shown(&self) -> String {
        who(self.contact.as_deref(), self.claim.as_deref().unwrap_or(""))
    }

    /// For a stranger found by the name it claims: a warning that it is not a contact.
    pub fn warning(&self, me: &PeerId) -> Option<String> {
        if !self.by_claim || self.contact.is_some() {
            return None;
        }
        Some(format!(
            "warning: {} is not a contact; a device nearby claims that name (peer {}, \
             verification code {}); compare the code with its owner, then `meshdrop contacts add \
             {} --name NAME`",
            self.shown(),
            self.peer,
            verification_code(me, &self.peer),
            self.peer
        ))
    }
}

/// The device `typed` names: a peer id; else the contact given that name; else the one device
/// (contact or not) that claims it. `None` when nobody answers to it.
pub fn peer(
    typed: &str,
    contacts: &[Contact],
    peers: &[PeerInfo],
    me: &PeerId,
) -> Result<Option<Target>> {
    let typed = typed.trim();
    if let Ok(peer) = typed.parse::<PeerId>() {
        return Ok(Some(Target::new(peer, contacts, peers, false)));
    }
    let given: Vec<PeerId> = contacts
        .iter()
        .filter(|c| c.name == typed)
        .map(|c| c.peer)
        .collect();
    if !given.is_empty() {
        return one(typed, &given, contacts, me)
            .map(|p| Some(Target::new(p, contacts, peers, false)));
    }
    let mut claiming: Vec<PeerId> = peers
        .iter()
        .filter(|p| p.name == typed)
        .map(|p| p.peer)
        .chain(
            contacts
                .iter()
                .filter(|c| c.claimed.as_deref() == Some(typed))
                .map(|c| c.peer),
        )
        .filter(|p| p != me)
        .collect();
    claiming.sort();
    claiming.dedup();
    if claiming.is_empty() {
        return Ok(None);
    }
    one(typed, &claiming, contacts, me).map(|p| Some(Target::new(p, contacts, peers, true)))
}

/// The contact `typed` names: its peer id or the name the user gave it.
pub fn contact<'a>(typed: &str, contacts: &'a [Contact], me: &PeerId) -> Result<&'a Contact> {
    let typed = typed.trim();
    let found: Vec<&Contact> = match typed.parse::<PeerId>() {
        Ok(peer) => contacts.iter().filter(|c| c.peer == peer).collect(),
        Err(_) => contacts.iter().filter(|c| c.name == typed).collect(),
    };
    match found.as_slice() {
        [one] => Ok(one),
        [] => bail!(
            "{:?} is not a contact (neither a contact's peer id nor its name; see `meshdrop \
             contacts`)",
            clean(typed)
        ),
        many => {
            let peers: Vec<PeerId> = many.iter().map(|c| c.peer).collect();
            Err(ambiguous(typed, &peers, contacts, me))
        }
    }
}

/// The device `typed` names for `contacts add`: a peer id, or the name exactly one device
/// nearby or known claims.
pub fn claimed(
    typed: &str,
    peers: &[PeerInfo],
    contacts: &[Contact],
    me: &PeerId,
) -> Result<PeerId> {
    let typed = typed.trim();
    if let Ok(peer) = typed.parse::<PeerId>() {
        return Ok(peer);
    }
    let mut claiming: Vec<PeerId> = peers
        .iter()
        .filter(|p| p.name == typed && p.peer != *me)
        .map(|p| p.peer)
        .collect();
    claiming.sort();
    claiming.dedup();
    if claiming.is_empty() {
        bail!(
            "no device nearby or known claims the name {:?} (see `meshdrop peers`); give its peer id",
            clean(typed)
        );
    }
    one(typed, &claiming, contacts, me)
}

/// The only peer of `found`, or an error listing them all.
fn one(typed: &str, found: &[PeerId], contacts: &[Contact], me: &PeerId) -> Result<PeerId> {
    match found {
        [peer] => Ok(*peer),
        many => Err(ambiguous(typed, many, contacts, me)),
    }
}

/// `"carol" names 2 devices: …` with each one's peer id, code and whether it is a contact.
fn ambiguous(typed: &str, peers: &[PeerId], contacts: &[Contact], me: &PeerId) -> anyhow::Error {
    let listed: Vec<String> = peers
        .iter()
        .map(|p| {
            let state = match contacts.iter().find(|c| c.peer == *p) {
                Some(c) => format!("contact {:?}", clean(&c.name)),
                None => "not a contact".into(),
            };
            format!("{p} (code {}, {state})", verification_code(me, p))
        })
        .collect();
    anyhow!(
        "{:?} names {} devices: {}; say which by peer id",
        clean(typed),
        peers.len(),
        listed.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshdrop_core::contacts::Via;

    fn named(name: &str, claimed: Option<&str>) -> Contact {
        Contact {
            peer: PeerId::random(),
            name: name.into(),
            via: Via::Code,
            added: 1,
            claimed: claimed.map(Into::into),
            last_seen: Some(2),
        }
    }

    fn nearby(peer: PeerId, name: &str) -> PeerInfo {
        PeerInfo {
            peer,
            name: name.into(),
            contact: None,
            addrs: Vec::new(),
            connected: true,
            transport: Some(meshdrop_core::Transport::Tcp),
            medium: None,
            discovered: true,
            verification_code: "000000".into(),
        }
    }

    #[test]
    fn a_contacts_given_name_wins_over_a_strangers_claim() {
        let me = PeerId::random();
        let carol = named("carol", Some("dave-laptop"));
        let impostor = nearby(PeerId::random(), "carol");
        let peers = [nearby(carol.peer, "dave-laptop"), impostor.clone()];
        let contacts = [carol.clone()];
        let t = peer("carol", &contacts, &peers, &me).unwrap().unwrap();
        assert_eq!((t.peer, t.by_claim), (carol.peer, false));
        assert_eq!(t.shown(), "carol");
        assert_eq!(t.warning(&me), None);
        // Without the contact, the stranger's claim is used, with a warning.
        let t = peer("carol", &[], &peers, &me).unwrap().unwrap();
        assert_eq!((t.peer, t.by_claim), (impostor.peer, true));
        assert_eq!(t.shown(), "carol? (not a contact)");
        let warning = t.warning(&me).unwrap();
        assert!(warning.contains("is not a contact"), "{warning}");
        assert!(
            warning.contains(&verification_code(&me, &impostor.peer)),
            "{warning}"
        );
        // A peer id is taken as it is; nobody answers to an unknown name.
        let by_id = peer(&impostor.peer.to_string(), &contacts, &peers, &me).unwrap();
        assert_eq!(by_id.map(|t| t.peer), Some(impostor.peer));
        assert_eq!(peer("erin", &contacts, &peers, &me).unwrap(), None);
    }

    #[test]
    fn a_name_several_devices_answer_to_is_an_error_listing_them() {
        let me = PeerId::random();
        let (ben, twin) = (named("ben", None), named("ben", None));
        let err = peer("ben", &[ben.clone(), twin.clone()], &[], &me).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"ben\" names 2 devices"), "{text}");
        for c in [&ben, &twin] {
            assert!(text.contains(&c.peer.to_string()), "{text}");
            assert!(text.contains(&verification_code(&me, &c.peer)), "{text}");
        }
        let (a, b) = (PeerId::random(), PeerId::random());
        let claims = [nearby(a, "cai"), nearby(b, "cai")];
        let text = peer("cai", &[], &claims, &me).unwrap_err().to_string();
        assert!(
            text.contains("not a contact") && text.contains(&b.to_string()),
            "{text}"
        );
        let text = claimed("cai", &claims, &[], &me).unwrap_err().to_string();
        assert!(text.contains("names 2 devices"), "{text}");
    }

    #[test]
    fn contacts_are_named_by_id_or_given_name_and_adds_by_claim() {
        let me = PeerId::random();
        let ana = named("ana", Some("ana-phone"));
        let contacts = [ana.clone()];
        assert_eq!(contact(" ana ", &contacts, &me).unwrap().peer, ana.peer);
        assert_eq!(
            contact(&ana.peer.to_string(), &contacts, &me).unwrap().peer,
            ana.peer
        );
        let err = contact("ana-phone", &contacts, &me)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a contact"), "{err}");
        let phone = nearby(PeerId::random(), "ana-phone");
        let mine = nearby(me, "me");
        assert_eq!(
            claimed("ana-phone", &[phone.clone(), mine], &[], &me).unwrap(),
            phone.peer
        );
        let err = claimed("me", &[nearby(me, "me")], &[], &me)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no device nearby or known claims"), "{err}");
    }
}
