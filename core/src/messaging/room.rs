//! Rooms and their invites. An invite (`meshroom1…`) carries the room's name and key; whoever holds
//! it can read and write the room, so it is shared like a password. Since format 2 it also names
//! the device that handed it out (peer id and device name), appended after the room so that older
//! decoders, which ignore trailing bytes, still read it.

use libp2p::PeerId;
use serde::{Deserialize, Serialize};

use super::RoomId;
use super::crypto::RoomKey;
use crate::error::{Error, Result};

const INVITE_PREFIX: &str = "meshroom1";
/// The longest room name accepted.
pub const MAX_NAME: usize = 100;

/// A room this device is in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    /// Its id.
    pub id: RoomId,
    /// Its name, as its creator gave it.
    pub name: String,
    /// The invite that lets others join.
    pub invite: String,
}

/// The device that handed out an invite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inviter {
    /// Its peer id.
    pub peer: PeerId,
    /// Its device name.
    pub name: String,
}

/// What an invite holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitation {
    /// The room's name.
    pub name: String,
    /// The room's key.
    pub key: RoomKey,
    /// Who handed it out (`None` in invites made before format 2).
    pub inviter: Option<Inviter>,
}

#[derive(Serialize, Deserialize)]
struct Invite {
    name: String,
    key: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct WireInviter {
    peer: Vec<u8>,
    name: String,
}

/// Encodes an invite for a room, naming the device that hands it out.
pub fn encode_invite(name: &str, key: &RoomKey, inviter: &Inviter) -> String {
    let mut bytes = postcard::to_stdvec(&Invite {
        name: name.to_string(),
        key: key.0,
    })
    .unwrap_or_default();
    let from = WireInviter {
        peer: inviter.peer.to_bytes(),
        name: inviter.name.clone(),
    };
    bytes.extend(postcard::to_stdvec(&from).unwrap_or_default());
    format!(
        "{INVITE_PREFIX}{}",
        data_encoding::BASE32_NOPAD
            .encode(&bytes)
            .to_ascii_lowercase()
    )
}

/// Decodes an invite. A damaged inviter part is ignored: the room itself is what matters.
pub fn decode_invite(invite: &str) -> Result<Invitation> {
    let bad = |why: &str| Error::Message(format!("not a room invite ({why})"));
    let body = invite
        .trim()
        .strip_prefix(INVITE_PREFIX)
        .ok_or_else(|| bad("it should start with meshroom1"))?;
    let bytes = data_encoding::BASE32_NOPAD
        .decode(body.to_ascii_uppercase().as_bytes())
        .map_err(|_| bad("bad characters"))?;
    let (invite, rest): (Invite, _) =
        postcard::take_from_bytes(&bytes).map_err(|_| bad("it is cut short"))?;
    check_name(&invite.name)?;
    let inviter = postcard::from_bytes::<WireInviter>(rest)
        .ok()
        .and_then(|w| {
            Some(Inviter {
                peer: PeerId::from_bytes(&w.peer).ok()?,
                name: w.name,
            })
        });
    Ok(Invitation {
        name: invite.name,
        key: RoomKey(invite.key),
        inviter,
    })
}

/// Checks a room name: not empty, not too long.
pub fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > MAX_NAME {
        return Err(Error::Message(format!(
            "a room name has 1 to {MAX_NAME} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ana() -> Inviter {
        Inviter {
            peer: libp2p::identity::Keypair::generate_ed25519()
                .public()
                .to_peer_id(),
            name: "Ana's phone".into(),
        }
    }

    #[test]
    fn an_invite_round_trips_and_garbage_is_refused_with_a_reason() {
        let key = RoomKey::generate().unwrap();
        let invite = encode_invite("hikers", &key, &ana());
        assert!(invite.starts_with("meshroom1"));
        let back = decode_invite(&invite).unwrap();
        assert_eq!((back.name.as_str(), &back.key), ("hikers", &key));
        assert_eq!(back.inviter.unwrap().name, "Ana's phone");
        let err = decode_invite("hello").unwrap_err().to_string();
        assert!(err.contains("meshroom1"), "{err}");
        assert!(decode_invite(&invite[..20]).is_err());
    }

    #[test]
    fn invites_of_the_first_format_still_open_their_room() {
        let key = RoomKey::generate().unwrap();
        let old = postcard::to_stdvec(&Invite {
            name: "hikers".into(),
            key: key.0,
        })
        .unwrap();
        let old = format!(
            "{INVITE_PREFIX}{}",
            data_encoding::BASE32_NOPAD
                .encode(&old)
                .to_ascii_lowercase()
        );
        let back = decode_invite(&old).unwrap();
        assert_eq!(
            (back.name.as_str(), &back.key, back.inviter),
            ("hikers", &key, None)
        );
        // And a decoder of the first format reads the room out of a new invite.
        let new = encode_invite("hikers", &key, &ana());
        let bytes = data_encoding::BASE32_NOPAD
            .decode(new[INVITE_PREFIX.len()..].to_ascii_uppercase().as_bytes())
            .unwrap();
        let first: Invite = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(first.key, key.0);
    }
}
