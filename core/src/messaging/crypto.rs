//! Encryption of message bodies. Direct messages are sealed to the recipient's X25519 key, derived
//! from the Ed25519 key its peer id carries (an ephemeral X25519 key per message, BLAKE3 key
//! derivation, ChaCha20-Poly1305); room messages use the room's key with XChaCha20-Poly1305.
//! Carriers hold ciphertext only.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305, XNonce};
use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey};
use x25519_dalek::{PublicKey as XPublic, StaticSecret};

const SEAL_CONTEXT: &str = "meshdrop 2026 sealed message v1";
const ROOM_ID_CONTEXT: &str = "meshdrop 2026 room id v1";
const XNONCE_LEN: usize = 24;

/// Why a body could not be sealed or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The peer id does not carry an Ed25519 key (or the key is not a valid curve point).
    #[error("the peer id carries no usable Ed25519 key")]
    NoKey,
    /// The ciphertext is not for this key, was changed, or is cut short.
    #[error("cannot decrypt")]
    Decrypt,
    /// The system's random source failed.
    #[error("no randomness: {0}")]
    Random(String),
}

/// The public key a peer id carries inline (Ed25519 peer ids do).
pub fn public_key_of(peer: &PeerId) -> Option<PublicKey> {
    let hash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    // Code 0 is the identity "hash": the digest is the protobuf-encoded public key itself.
    if hash.code() != 0 {
        return None;
    }
    PublicKey::try_decode_protobuf(hash.digest()).ok()
}

/// The X25519 public key of a peer, from the Ed25519 key in its id.
fn x25519_public(peer: &PeerId) -> Result<XPublic, CryptoError> {
    let ed = public_key_of(peer)
        .and_then(|k| k.try_into_ed25519().ok())
        .ok_or(CryptoError::NoKey)?;
    let point = ed25519_dalek::VerifyingKey::from_bytes(&ed.to_bytes())
        .map_err(|_| CryptoError::NoKey)?
        .to_montgomery();
    Ok(XPublic::from(point.to_bytes()))
}

/// This device's X25519 secret, from its Ed25519 key (the standard conversion: the clamped
/// scalar the Ed25519 key signs with).
pub struct OpeningKey(StaticSecret);

impl OpeningKey {
    /// Derives the opening key of `key`; `None` for a key that is not Ed25519.
    pub fn of(key: &Keypair) -> Option<Self> {
        let ed = key.clone().try_into_ed25519().ok()?;
        let secret = ed.secret();
        let seed: [u8; 32] = secret.as_ref().try_into().ok()?;
        let scalar = ed25519_dalek::SigningKey::from_bytes(&seed).to_scalar_bytes();
        Some(Self(StaticSecret::from(scalar)))
    }
}

fn random<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| CryptoError::Random(e.to_string()))?;
    Ok(out)
}

fn seal_key(ephemeral: &XPublic, recipient: &XPublic, shared: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(SEAL_CONTEXT);
    h.update(ephemeral.as_bytes());
    h.update(recipient.as_bytes());
    h.update(shared);
    *h.finalize().as_bytes()
}

/// Encrypts `plaintext` so that only `recipient` can read it; `aad` is authenticated, not hidden.
pub fn seal(recipient: &PeerId, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let their = x25519_public(recipient)?;
    let ephemeral = StaticSecret::from(random::<32>()?);
    let ephemeral_pub = XPublic::from(&ephemeral);
    let shared = ephemeral.diffie_hellman(&their);
    if !shared.was_contributory() {
        return Err(CryptoError::NoKey);
    }
    let key = seal_key(&ephemeral_pub, &their, shared.as_bytes());
    // Every message has its own key, so a fixed nonce is never reused under one key.
    let ct = ChaCha20Poly1305::new(&key.into())
        .encrypt(
            &Default::default(),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Decrypt)?;
    let mut out = Vec::with_capacity(32 + ct.len());
    out.extend_from_slice(ephemeral_pub.as_bytes());
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Decrypts what [`seal`] produced for this device.
pub fn open(own: &OpeningKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let (eph, ct) = sealed.split_at_checked(32).ok_or(CryptoError::Decrypt)?;
    let eph: [u8; 32] = eph.try_into().map_err(|_| CryptoError::Decrypt)?;
    let eph = XPublic::from(eph);
    let shared = own.0.diffie_hellman(&eph);
    if !shared.was_contributory() {
        return Err(CryptoError::Decrypt);
    }
    let key = seal_key(&eph, &XPublic::from(&own.0), shared.as_bytes());
    ChaCha20Poly1305::new(&key.into())
        .decrypt(&Default::default(), Payload { msg: ct, aad })
        .map_err(|_| CryptoError::Decrypt)
}

/// A room's symmetric key; whoever holds it (through an invite) reads and writes the room.
#[derive(Clone, PartialEq, Eq)]
pub struct RoomKey(pub [u8; 32]);

impl std::fmt::Debug for RoomKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoomKey(..)")
    }
}

impl RoomKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, CryptoError> {
        random::<32>().map(Self)
    }

    /// The room's public id, derived from the key (it names the room without revealing the key).
    pub fn room_id(&self) -> [u8; 32] {
        blake3::derive_key(ROOM_ID_CONTEXT, &self.0)
    }

    /// Encrypts a room message body.
    pub fn encrypt(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce = random::<XNONCE_LEN>()?;
        let ct = XChaCha20Poly1305::new(&self.0.into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Decrypt)?;
        let mut out = Vec::with_capacity(XNONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts a room message body.
    pub fn decrypt(&self, aad: &[u8], data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (nonce, ct) = data
            .split_at_checked(XNONCE_LEN)
            .ok_or(CryptoError::Decrypt)?;
        XChaCha20Poly1305::new(&self.0.into())
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| CryptoError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recipient_opens_what_was_sealed_to_its_peer_id() {
        let bob = Keypair::generate_ed25519();
        let sealed = seal(&bob.public().to_peer_id(), b"aad", b"hello bob").unwrap();
        let key = OpeningKey::of(&bob).unwrap();
        assert_eq!(open(&key, b"aad", &sealed).unwrap(), b"hello bob");
        assert!(!sealed.windows(9).any(|w| w == b"hello bob"));
    }

    #[test]
    fn a_carrier_or_a_changed_message_cannot_be_opened() {
        let bob = Keypair::generate_ed25519();
        let carrier = Keypair::generate_ed25519();
        let sealed = seal(&bob.public().to_peer_id(), b"aad", b"secret").unwrap();
        let carrier_key = OpeningKey::of(&carrier).unwrap();
        assert_eq!(
            open(&carrier_key, b"aad", &sealed),
            Err(CryptoError::Decrypt)
        );
        let bob_key = OpeningKey::of(&bob).unwrap();
        assert_eq!(open(&bob_key, b"other", &sealed), Err(CryptoError::Decrypt));
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(open(&bob_key, b"aad", &flipped), Err(CryptoError::Decrypt));
        assert_eq!(
            open(&bob_key, b"aad", &sealed[..10]),
            Err(CryptoError::Decrypt)
        );
    }

    #[test]
    fn a_peer_id_without_an_inline_key_cannot_be_written_to() {
        assert_eq!(
            seal(&PeerId::random(), b"", b"x").unwrap_err(),
            CryptoError::NoKey
        );
    }

    #[test]
    fn room_members_share_the_key_and_others_do_not() {
        let key = RoomKey::generate().unwrap();
        let ct = key.encrypt(b"aad", b"hello room").unwrap();
        assert_eq!(key.decrypt(b"aad", &ct).unwrap(), b"hello room");
        let other = RoomKey::generate().unwrap();
        assert_eq!(other.decrypt(b"aad", &ct), Err(CryptoError::Decrypt));
        assert_ne!(key.room_id(), other.room_id());
    }
}
