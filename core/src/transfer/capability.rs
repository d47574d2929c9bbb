//! A share is a capability: its ticket carries a secret key, and a provider serves the share only
//! to a peer that proves it holds the key. The proof is bound to the connection's two peer ids
//! (authenticated by Noise or TLS), so whoever sees it cannot replay it from another device. The
//! share is named on the wire by a tag derived from the key: a peer that has not proved the key
//! learns nothing it could fetch with, not even the content id.

use std::fmt;

use libp2p::PeerId;

/// Key derivation contexts (BLAKE3 `derive_key`): one per use of the share key.
const TAG_CONTEXT: &str = "meshdrop 2026-11 share tag v1";
const PROOF_CONTEXT: &str = "meshdrop 2026-11 share proof v1";

/// The secret a ticket carries.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShareKey([u8; 32]);

/// How a share is named on the wire and in `shares` listings; derived from its key.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShareTag(pub [u8; 32]);

impl ShareKey {
    /// A new random key; `None` when the system has no randomness to give.
    pub fn generate() -> Option<Self> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).ok()?;
        Some(Self(key))
    }

    /// The key with these bytes (from a ticket or the store).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's bytes, for the ticket and the store.
    pub fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// The share's name on the wire.
    pub fn tag(&self) -> ShareTag {
        ShareTag(blake3::derive_key(TAG_CONTEXT, &self.0))
    }

    /// The proof that `from` holds this key, for `to` alone.
    pub fn proof(&self, from: &PeerId, to: &PeerId) -> [u8; 32] {
        let mac = blake3::derive_key(PROOF_CONTEXT, &self.0);
        let mut hasher = blake3::Hasher::new_keyed(&mac);
        for peer in [from, to] {
            let bytes = peer.to_bytes();
            hasher.update(&(bytes.len() as u32).to_le_bytes());
            hasher.update(&bytes);
        }
        *hasher.finalize().as_bytes()
    }

    /// Whether `proof` shows that `from` holds this key, for `to` (compared in constant time).
    pub fn verify(&self, proof: &[u8; 32], from: &PeerId, to: &PeerId) -> bool {
        blake3::Hash::from_bytes(self.proof(from, to)) == blake3::Hash::from_bytes(*proof)
    }
}

impl fmt::Debug for ShareKey {
    /// Never the key itself: it opens the share.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShareKey(tag {})", self.tag())
    }
}

impl ShareTag {
    /// The short form users type to name a share (`unshare ID`): the first 8 bytes in hex.
    pub fn short(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0[..8])
    }

    /// Whether `id` (hex, any case, at least 8 digits) is how this tag starts.
    pub fn matches(&self, id: &str) -> bool {
        let id = id.trim().to_ascii_lowercase();
        id.len() >= 8 && data_encoding::HEXLOWER.encode(&self.0).starts_with(&id)
    }
}

impl fmt::Display for ShareTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

impl fmt::Debug for ShareTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShareTag({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_holds_for_its_two_peers_only() {
        let key = ShareKey::generate().unwrap();
        let (alice, bob, eve) = (PeerId::random(), PeerId::random(), PeerId::random());
        let proof = key.proof(&alice, &bob);
        assert!(key.verify(&proof, &alice, &bob));
        // Replayed by someone else, sent to someone else, or turned around: refused.
        assert!(!key.verify(&proof, &eve, &bob));
        assert!(!key.verify(&proof, &alice, &eve));
        assert!(!key.verify(&proof, &bob, &alice));
        // Another key's proof for the same peers: refused.
        let other = ShareKey::generate().unwrap();
        assert!(!key.verify(&other.proof(&alice, &bob), &alice, &bob));
    }

    #[test]
    fn the_tag_names_the_share_without_revealing_the_key() {
        let key = ShareKey::from_bytes([7; 32]);
        let tag = key.tag();
        assert_eq!(tag, ShareKey::from_bytes([7; 32]).tag());
        assert_ne!(tag.0, key.to_bytes());
        assert_ne!(tag, ShareKey::from_bytes([8; 32]).tag());
        assert!(tag.matches(&tag.short()) && tag.matches(&tag.short().to_uppercase()));
        assert!(!tag.matches(&tag.short()[..7]), "too short to be sure");
        assert!(!format!("{key:?}").contains("0707"), "{key:?}");
    }
}
