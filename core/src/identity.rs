//! The device identity: one Ed25519 key per data dir, and the short code two people compare.

use std::fs;
use std::io::Write;
use std::path::Path;

use libp2p::PeerId;
use libp2p::identity::Keypair;

use crate::error::{Error, Result};

/// File name of the identity key inside the data dir.
pub const IDENTITY_FILE: &str = "identity.key";

/// Loads the device key from `data_dir`, creating it on first start.
///
/// A file that exists but does not decode is an error naming the file; it is never replaced.
pub fn load_or_create(data_dir: &Path) -> Result<Keypair> {
    let path = data_dir.join(IDENTITY_FILE);
    match fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| Error::CorruptIdentity {
            path: path.clone(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|e| Error::CorruptIdentity {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            write_private(&path, &bytes)?;
            Ok(key)
        }
        Err(source) => Err(Error::Io { path, source }),
    }
}

/// Reads the peer id of an existing identity without creating one.
pub fn peer_id_of(data_dir: &Path) -> Result<Option<PeerId>> {
    let path = data_dir.join(IDENTITY_FILE);
    if !path.exists() {
        return Ok(None);
    }
    load_or_create(data_dir).map(|k| Some(k.public().to_peer_id()))
}

/// Writes `bytes` to `path` readable by the owner only, atomically (temp file, fsync, rename).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = opts.open(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

/// A six-digit code derived from both peer ids, the same on both devices whichever side computes it.
///
/// Two people read it aloud to check that they are connected to each other and not to an impostor.
pub fn verification_code(a: &PeerId, b: &PeerId) -> String {
    let (a, b) = (a.to_bytes(), b.to_bytes());
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut hasher = blake3::Hasher::new_derive_key("meshdrop 2026 verification code v1");
    hasher.update(&(lo.len() as u64).to_le_bytes());
    hasher.update(&lo);
    hasher.update(&hi);
    let hash = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    let n = u64::from_le_bytes(first) % 1_000_000;
    format!("{:03} {:03}", n / 1000, n % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_comes_back_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
    }

    #[test]
    fn a_corrupt_identity_is_named_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(IDENTITY_FILE);
        fs::write(&path, b"garbage").unwrap();
        let err = load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"garbage");
    }

    #[test]
    fn both_sides_compute_the_same_six_digit_code() {
        let a = PeerId::random();
        let b = PeerId::random();
        let code = verification_code(&a, &b);
        assert_eq!(code, verification_code(&b, &a));
        assert_eq!(code.len(), 7);
        assert!(
            code.chars()
                .filter(|c| *c != ' ')
                .all(|c| c.is_ascii_digit())
        );
        assert_ne!(code, verification_code(&a, &PeerId::random()));
    }
}
