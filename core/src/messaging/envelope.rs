//! The signed envelope: author, recipient, timestamp, expiry and an encrypted body, signed with the
//! author's device key. Its id is the hash of the signed bytes, so the same message reaching a node
//! by several paths is recognised as one. The hop limit travels beside the envelope (carriers
//! decrement it), outside the signature.

use libp2p::PeerId;
use libp2p::identity::Keypair;
use serde::{Deserialize, Serialize};

use super::crypto::public_key_of;
use super::hlc::Timestamp;
use super::{MessageId, Recipient, RoomId};

/// The largest (encrypted) body accepted.
pub const MAX_BODY: usize = 16 * 1024;
/// The largest encoded envelope accepted.
pub const MAX_ENCODED: usize = MAX_BODY + 1024;
/// The longest an envelope may live, counted from now (plus a day for clock skew).
pub const MAX_LIFETIME_MS: u64 = 31 * 24 * 3600 * 1000;
/// The hop limit of a new message.
pub const MAX_HOPS: u8 = 8;

const SIGN_CONTEXT: &[u8] = b"meshdrop 2026 message envelope v1\0";
const ID_CONTEXT: &str = "meshdrop 2026 message id v1";

/// Why an envelope was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Too large to accept.
    #[error("envelope of {0} bytes is over the limit")]
    Oversize(usize),
    /// It does not decode.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// The author's peer id carries no key to check the signature with.
    #[error("the author's peer id carries no Ed25519 key")]
    UnknownKey,
    /// The signature does not match.
    #[error("forged envelope: the signature does not match the author")]
    Forged,
    /// Past its expiry.
    #[error("expired")]
    Expired,
    /// Its expiry is unreasonably far away.
    #[error("expiry too far in the future")]
    TooLongLived,
    /// Signing failed (a key that cannot sign).
    #[error("cannot sign: {0}")]
    Sign(String),
}

/// The recipient as encoded inside the signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum WireRecipient {
    Peer(Vec<u8>),
    Room([u8; 32]),
}

/// The signed part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Signed {
    author: Vec<u8>,
    to: WireRecipient,
    time: Timestamp,
    expires_ms: u64,
    body: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    signed: Vec<u8>,
    signature: Vec<u8>,
}

/// A checked envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The id: hash of the signed bytes.
    pub id: MessageId,
    /// The author.
    pub author: PeerId,
    /// The recipient.
    pub to: Recipient,
    /// The author's hybrid clock when it wrote it.
    pub time: Timestamp,
    /// Milliseconds since the Unix epoch after which it is dropped.
    pub expires_ms: u64,
    /// The encrypted body.
    pub body: Vec<u8>,
    raw: Vec<u8>,
}

impl Envelope {
    /// Builds and signs an envelope.
    pub fn sign(
        key: &Keypair,
        to: Recipient,
        time: Timestamp,
        expires_ms: u64,
        body: Vec<u8>,
    ) -> Result<Self, EnvelopeError> {
        if body.len() > MAX_BODY {
            return Err(EnvelopeError::Oversize(body.len()));
        }
        let author = key.public().to_peer_id();
        let signed = Signed {
            author: author.to_bytes(),
            to: match to {
                Recipient::Peer(p) => WireRecipient::Peer(p.to_bytes()),
                Recipient::Room(r) => WireRecipient::Room(r.0),
            },
            time,
            expires_ms,
            body,
        };
        let signed_bytes =
            postcard::to_stdvec(&signed).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        let signature = key
            .sign(&[SIGN_CONTEXT, &signed_bytes].concat())
            .map_err(|e| EnvelopeError::Sign(e.to_string()))?;
        let id = id_of(&signed_bytes);
        let raw = postcard::to_stdvec(&Wire {
            signed: signed_bytes,
            signature,
        })
        .map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        Ok(Self {
            id,
            author,
            to,
            time,
            expires_ms,
            body: signed.body,
            raw,
        })
    }

    /// Decodes and checks an envelope received at `now_ms`: size, shape, signature, expiry.
    pub fn decode(raw: &[u8], now_ms: u64) -> Result<Self, EnvelopeError> {
        if raw.len() > MAX_ENCODED {
            return Err(EnvelopeError::Oversize(raw.len()));
        }
        let malformed = |e: postcard::Error| EnvelopeError::Malformed(e.to_string());
        let wire: Wire = postcard::from_bytes(raw).map_err(malformed)?;
        let signed: Signed = postcard::from_bytes(&wire.signed).map_err(malformed)?;
        if signed.body.len() > MAX_BODY {
            return Err(EnvelopeError::Oversize(signed.body.len()));
        }
        let author = PeerId::from_bytes(&signed.author)
            .map_err(|e| EnvelopeError::Malformed(format!("author: {e}")))?;
        let to = match signed.to {
            WireRecipient::Peer(p) => Recipient::Peer(
                PeerId::from_bytes(&p)
                    .map_err(|e| EnvelopeError::Malformed(format!("recipient: {e}")))?,
            ),
            WireRecipient::Room(r) => Recipient::Room(RoomId(r)),
        };
        if signed.expires_ms <= now_ms {
            return Err(EnvelopeError::Expired);
        }
        if signed.expires_ms > now_ms.saturating_add(MAX_LIFETIME_MS) {
            return Err(EnvelopeError::TooLongLived);
        }
        let key = public_key_of(&author).ok_or(EnvelopeError::UnknownKey)?;
        if !key.verify(&[SIGN_CONTEXT, &wire.signed].concat(), &wire.signature) {
            return Err(EnvelopeError::Forged);
        }
        Ok(Self {
            id: id_of(&wire.signed),
            author,
            to,
            time: signed.time,
            expires_ms: signed.expires_ms,
            body: signed.body,
            raw: raw.to_vec(),
        })
    }

    /// The id of an encoded envelope, without checking it (`None` when it does not decode).
    pub fn id_in(raw: &[u8]) -> Option<MessageId> {
        let wire: Wire = postcard::from_bytes(raw).ok()?;
        Some(id_of(&wire.signed))
    }

    /// The encoded envelope, as stored and sent.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// What the body's encryption authenticates besides the body: author and recipient, so a
    /// body cannot be re-signed by someone else or redirected.
    pub fn aad(author: &PeerId, to: &Recipient) -> Vec<u8> {
        let mut aad = author.to_bytes();
        match to {
            Recipient::Peer(p) => aad.extend_from_slice(&p.to_bytes()),
            Recipient::Room(r) => aad.extend_from_slice(&r.0),
        }
        aad
    }
}

fn id_of(signed: &[u8]) -> MessageId {
    MessageId(blake3::derive_key(ID_CONTEXT, signed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn sample(key: &Keypair, body: Vec<u8>) -> Envelope {
        let to = Recipient::Peer(PeerId::random());
        Envelope::sign(
            key,
            to,
            Timestamp {
                ms: NOW,
                counter: 0,
            },
            NOW + 60_000,
            body,
        )
        .unwrap()
    }

    #[test]
    fn a_signed_envelope_decodes_to_itself_with_the_same_id() {
        let key = Keypair::generate_ed25519();
        let env = sample(&key, b"ciphertext".to_vec());
        let back = Envelope::decode(env.raw(), NOW).unwrap();
        assert_eq!(back, env);
        assert_eq!(back.author, key.public().to_peer_id());
        let other = sample(&key, b"ciphertext".to_vec());
        assert_ne!(other.id, env.id, "another recipient, another id");
    }

    #[test]
    fn a_forged_envelope_is_rejected() {
        let alice = Keypair::generate_ed25519();
        let mallory = Keypair::generate_ed25519();
        let env = sample(&alice, b"hello".to_vec());
        let mut wire: Wire = postcard::from_bytes(env.raw()).unwrap();
        // Mallory signs Alice's content with her own key.
        wire.signature = mallory
            .sign(&[SIGN_CONTEXT, &wire.signed].concat())
            .unwrap();
        let forged = postcard::to_stdvec(&wire).unwrap();
        assert_eq!(Envelope::decode(&forged, NOW), Err(EnvelopeError::Forged));
        // Or changes the body under Alice's signature.
        let mut signed: Signed = postcard::from_bytes(&wire.signed).unwrap();
        signed.body = b"goodbye".to_vec();
        let wire = Wire {
            signed: postcard::to_stdvec(&signed).unwrap(),
            signature: postcard::from_bytes::<Wire>(env.raw()).unwrap().signature,
        };
        let changed = postcard::to_stdvec(&wire).unwrap();
        assert_eq!(Envelope::decode(&changed, NOW), Err(EnvelopeError::Forged));
    }

    #[test]
    fn malformed_oversize_and_expired_envelopes_are_rejected() {
        let key = Keypair::generate_ed25519();
        let env = sample(&key, b"x".to_vec());
        assert!(matches!(
            Envelope::decode(b"\x05garbage", NOW),
            Err(EnvelopeError::Malformed(_))
        ));
        assert!(matches!(
            Envelope::decode(&env.raw()[..env.raw().len() - 3], NOW),
            Err(EnvelopeError::Malformed(_))
        ));
        assert!(matches!(
            Envelope::decode(&vec![0u8; MAX_ENCODED + 1], NOW),
            Err(EnvelopeError::Oversize(_))
        ));
        let to = Recipient::Peer(PeerId::random());
        let time = Timestamp {
            ms: NOW,
            counter: 0,
        };
        assert!(matches!(
            Envelope::sign(&key, to, time, NOW + 1, vec![0; MAX_BODY + 1]),
            Err(EnvelopeError::Oversize(_))
        ));
        assert_eq!(
            Envelope::decode(env.raw(), NOW + 60_000),
            Err(EnvelopeError::Expired)
        );
        let forever = Envelope::sign(&key, to, time, u64::MAX, vec![1]).unwrap();
        assert_eq!(
            Envelope::decode(forever.raw(), NOW),
            Err(EnvelopeError::TooLongLived)
        );
    }

    #[test]
    fn an_author_without_an_inline_key_is_rejected() {
        let key = Keypair::generate_ed25519();
        let env = sample(&key, b"x".to_vec());
        let wire: Wire = postcard::from_bytes(env.raw()).unwrap();
        let mut signed: Signed = postcard::from_bytes(&wire.signed).unwrap();
        signed.author = PeerId::random().to_bytes();
        let wire = Wire {
            signed: postcard::to_stdvec(&signed).unwrap(),
            signature: wire.signature,
        };
        let raw = postcard::to_stdvec(&wire).unwrap();
        assert_eq!(Envelope::decode(&raw, NOW), Err(EnvelopeError::UnknownKey));
    }
}
