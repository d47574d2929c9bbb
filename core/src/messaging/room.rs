//! Rooms and their invites. An invite (`meshroom1…`) carries the room's name and key; whoever holds
//! it can read and write the room, so it is shared like a password.

use serde::{Deserialize, Serialize};

use super::RoomId;
use super::crypto::RoomKey;
use crate::error::{Error, Result};

const INVITE_PREFIX: &str = "meshroom1";
/// The longest room name accepted.
pub const MAX_NAME: usize = 100;

/// A room this device is in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Room {
    /// Its id.
    pub id: RoomId,
    /// Its name, as its creator gave it.
    pub name: String,
    /// The invite that lets others join.
    pub invite: String,
}

#[derive(Serialize, Deserialize)]
struct Invite {
    name: String,
    key: [u8; 32],
}

/// Encodes an invite for a room.
pub fn encode_invite(name: &str, key: &RoomKey) -> String {
    let bytes = postcard::to_stdvec(&Invite {
        name: name.to_string(),
        key: key.0,
    })
    .unwrap_or_default();
    format!(
        "{INVITE_PREFIX}{}",
        data_encoding::BASE32_NOPAD
            .encode(&bytes)
            .to_ascii_lowercase()
    )
}

/// Decodes an invite into the room's name and key.
pub fn decode_invite(invite: &str) -> Result<(String, RoomKey)> {
    let bad = |why: &str| Error::Message(format!("not a room invite ({why})"));
    let body = invite
        .trim()
        .strip_prefix(INVITE_PREFIX)
        .ok_or_else(|| bad("it should start with meshroom1"))?;
    let bytes = data_encoding::BASE32_NOPAD
        .decode(body.to_ascii_uppercase().as_bytes())
        .map_err(|_| bad("bad characters"))?;
    let invite: Invite = postcard::from_bytes(&bytes).map_err(|_| bad("it is cut short"))?;
    check_name(&invite.name)?;
    Ok((invite.name, RoomKey(invite.key)))
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

    #[test]
    fn an_invite_round_trips_and_garbage_is_refused_with_a_reason() {
        let key = RoomKey::generate().unwrap();
        let invite = encode_invite("hikers", &key);
        assert!(invite.starts_with("meshroom1"));
        let (name, back) = decode_invite(&invite).unwrap();
        assert_eq!((name.as_str(), back), ("hikers", key));
        let err = decode_invite("hello").unwrap_err().to_string();
        assert!(err.contains("meshroom1"), "{err}");
        assert!(decode_invite(&invite[..20]).is_err());
    }
}
