//! What the store remembers of shares: manifests, the files a share is served from, the hash
//! cache, the keys a share is served under. Downloads and their chunks are in [`downloads`].

use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};

use super::ContentId;
use super::capability::{ShareKey, ShareTag};
use super::shares::{KeyRecord, ShareKind};
use crate::error::Result;
use crate::store::Store;

mod downloads;

pub use downloads::*;

/// Saves an encoded manifest (idempotent).
pub fn save_manifest(store: &Store, content: &ContentId, encoded: &[u8]) -> Result<()> {
    store.with(|c| {
        c.execute(
            "INSERT OR IGNORE INTO manifests (content, manifest) VALUES (?1, ?2)",
            params![&content.0[..], encoded],
        )
        .map(drop)
    })
}

/// The encoded manifest of `content`, if stored.
pub fn manifest(store: &Store, content: &ContentId) -> Result<Option<Vec<u8>>> {
    store.with(|c| {
        c.query_row(
            "SELECT manifest FROM manifests WHERE content = ?1",
            [&content.0[..]],
            |r| r.get(0),
        )
        .optional()
    })
}

/// Records where each file of a share is read from, with each file's size and change time now
/// (to tell later whether it was edited). Returns those stamps.
pub fn save_share(
    store: &Store,
    content: &ContentId,
    sources: &[PathBuf],
) -> Result<Vec<Option<Stamp>>> {
    let stamps: Vec<Option<Stamp>> = sources.iter().map(|p| Stamp::of(p)).collect();
    store.with(|c| {
        let tx = c.transaction()?;
        tx.execute("DELETE FROM shares WHERE content = ?1", [&content.0[..]])?;
        for (i, (path, stamp)) in sources.iter().zip(&stamps).enumerate() {
            tx.execute(
                "INSERT INTO shares (content, file, path, size, mtime_ns) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    &content.0[..],
                    i as i64,
                    path.to_string_lossy(),
                    stamp.map(|s| secs(s.size)),
                    stamp.map(|s| s.mtime_ns),
                ],
            )?;
        }
        tx.commit()
    })?;
    Ok(stamps)
}

/// Records a share of files the host opens on demand: each file's name in the share and size
/// (nothing to read again after a restart, until the host registers the files again).
pub fn save_host_share(store: &Store, content: &ContentId, files: &[(String, u64)]) -> Result<()> {
    store.with(|c| {
        let tx = c.transaction()?;
        tx.execute("DELETE FROM shares WHERE content = ?1", [&content.0[..]])?;
        for (i, (name, size)) in files.iter().enumerate() {
            tx.execute(
                "INSERT INTO shares (content, file, path, size, host) VALUES (?1, ?2, ?3, ?4, 1)",
                params![&content.0[..], i as i64, name, secs(*size)],
            )?;
        }
        tx.commit()
    })
}

/// The most files the hash cache remembers; the ones hashed longest ago are forgotten beyond it.
pub const MAX_CACHED_FILES: i64 = 100_000;

fn path_key(path: &Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes()
}

/// The chunk hashes the cache holds for the file at the absolute `path`, if it was hashed with
/// `chunk_size` while it had exactly this size, change times and inode.
pub(crate) fn cached_hashes(
    store: &Store,
    path: &Path,
    stamp: &super::build::FileStamp,
    chunk_size: u32,
) -> Result<Option<Vec<super::manifest::Hash>>> {
    let row: Option<(i64, i64, i64, i64, Vec<u8>)> = store.with(|c| {
        c.query_row(
            "SELECT size, mtime_ns, inode, ctime_ns, hashes FROM hash_cache
             WHERE path = ?1 AND chunk_size = ?2",
            params![path_key(path), i64::from(chunk_size)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()
    })?;
    let Some((size, mtime_ns, inode, ctime_ns, hashes)) = row else {
        return Ok(None);
    };
    // The inode is stored as its bit pattern.
    if size != secs(stamp.size)
        || mtime_ns != stamp.mtime_ns
        || inode != stamp.inode as i64
        || ctime_ns != stamp.ctime_ns
    {
        return Ok(None);
    }
    let parts = hashes.chunks_exact(32);
    if !parts.remainder().is_empty() {
        return Ok(None);
    }
    Ok(Some(
        parts
            .map(|h| {
                let mut out = [0u8; 32];
                out.copy_from_slice(h);
                out
            })
            .collect(),
    ))
}

/// Remembers the chunk hashes of files just hashed, replacing what the cache held for them.
pub(crate) fn save_hashes(store: &Store, hashed: &[super::build::Hashed]) -> Result<()> {
    if hashed.is_empty() {
        return Ok(());
    }
    store.with(|c| {
        let tx = c.transaction()?;
        {
            let mut insert = tx.prepare(
                "INSERT OR REPLACE INTO hash_cache
                 (path, chunk_size, size, mtime_ns, inode, ctime_ns, hashes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for h in hashed {
                insert.execute(params![
                    path_key(&h.path),
                    i64::from(h.chunk_size),
                    secs(h.stamp.size),
                    h.stamp.mtime_ns,
                    h.stamp.inode as i64,
                    h.stamp.ctime_ns,
                    h.chunks.concat(),
                ])?;
            }
        }
        tx.execute(
            "DELETE FROM hash_cache WHERE rowid IN (
                SELECT rowid FROM hash_cache ORDER BY rowid DESC LIMIT -1 OFFSET ?1)",
            [MAX_CACHED_FILES],
        )?;
        tx.commit()
    })
}

/// A file's size and last change time (nanoseconds since the epoch), to tell whether it was
/// edited since it was shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Its size.
    pub size: u64,
    /// When it was last written.
    pub mtime_ns: i64,
}

impl Stamp {
    /// The stamp of the file at `path` now (links not followed).
    pub fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path).ok()?;
        let mtime_ns = meta
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.mtime_nsec());
        Some(Stamp {
            size: meta.len(),
            mtime_ns,
        })
    }
}

/// A share as stored.
pub struct StoredShare {
    /// Its id.
    pub content: ContentId,
    /// The encoded manifest.
    pub manifest: Vec<u8>,
    /// Where each file is read from.
    pub sources: Vec<PathBuf>,
    /// Each file's size and change time when it was shared.
    pub stamps: Vec<Option<Stamp>>,
    /// Whether the host opened its files (then `sources` are their names in the share).
    pub host: bool,
}

/// Every share this node serves.
pub fn shares(store: &Store) -> Result<Vec<StoredShare>> {
    store.with(|c| {
        let mut stmt = c.prepare(
            "SELECT m.content, m.manifest FROM manifests m
             WHERE EXISTS (SELECT 1 FROM shares s WHERE s.content = m.content)",
        )?;
        let contents: Vec<(Vec<u8>, Vec<u8>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::new();
        for (id, manifest) in contents {
            let Ok(bytes) = <[u8; 32]>::try_from(id.as_slice()) else {
                continue;
            };
            let mut stmt = c.prepare(
                "SELECT path, size, mtime_ns, host FROM shares WHERE content = ?1 ORDER BY file",
            )?;
            let rows: Vec<(String, Option<i64>, Option<i64>, bool)> = stmt
                .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let host = rows.iter().any(|row| row.3);
            let stamps = rows
                .iter()
                .map(|(_, size, mtime, _)| match (size, mtime) {
                    (Some(size), Some(mtime_ns)) => Some(Stamp {
                        size: unsigned(*size),
                        mtime_ns: *mtime_ns,
                    }),
                    _ => None,
                })
                .collect();
            out.push(StoredShare {
                content: ContentId(bytes),
                manifest,
                sources: rows.into_iter().map(|row| PathBuf::from(row.0)).collect(),
                stamps,
                host,
            });
        }
        Ok(out)
    })
}

/// Remembers a key this device serves under (kept when already known).
pub fn save_key(store: &Store, r: &KeyRecord) -> Result<()> {
    store.with(|c| {
        c.execute(
            "INSERT OR IGNORE INTO share_keys (tag, key, content, kind, since, expires, served)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                &r.key.tag().0[..],
                &r.key.to_bytes()[..],
                &r.content.0[..],
                r.kind,
                secs(r.since),
                r.expires.map(secs),
                secs(r.served),
            ],
        )
        .map(drop)
    })
}

/// Every key this device serves under.
pub fn keys(store: &Store) -> Result<Vec<KeyRecord>> {
    store.with(|c| {
        let mut stmt =
            c.prepare("SELECT key, content, kind, since, expires, served FROM share_keys")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, ShareKind>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (key, content, kind, since, expires, served) = row?;
            let (Ok(key), Ok(content)) = (<[u8; 32]>::try_from(key), <[u8; 32]>::try_from(content))
            else {
                continue;
            };
            out.push(KeyRecord {
                key: ShareKey::from_bytes(key),
                content: ContentId(content),
                kind,
                since: unsigned(since),
                expires: expires.map(unsigned),
                served: unsigned(served),
            });
        }
        Ok(out)
    })
}

/// Forgets a key.
pub fn forget_key(store: &Store, tag: &ShareTag) -> Result<()> {
    store.with(|c| {
        c.execute("DELETE FROM share_keys WHERE tag = ?1", [&tag.0[..]])
            .map(drop)
    })
}

/// Adds `bytes` to what was served under `tag`.
pub fn add_served(store: &Store, tag: &ShareTag, bytes: u64) -> Result<()> {
    store.with(|c| {
        c.execute(
            "UPDATE share_keys SET served = served + ?2 WHERE tag = ?1",
            params![&tag.0[..], secs(bytes)],
        )
        .map(drop)
    })
}

/// Forgets where the files of `content` are read from.
pub fn forget_share(store: &Store, content: &ContentId) -> Result<()> {
    store.with(|c| {
        c.execute("DELETE FROM shares WHERE content = ?1", [&content.0[..]])
            .map(drop)
    })
}

fn secs(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_kept_with_what_they_served() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let content = ContentId::of(b"manifest");
        save_manifest(&store, &content, b"manifest").unwrap();
        let record = KeyRecord {
            key: ShareKey::from_bytes([4; 32]),
            content,
            kind: ShareKind::Attachment,
            since: 100,
            expires: Some(200),
            served: 0,
        };
        save_key(&store, &record).unwrap();
        save_key(&store, &record).unwrap();
        add_served(&store, &record.key.tag(), 4096).unwrap();
        let kept = keys(&store).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(
            (kept[0].key, kept[0].kind, kept[0].expires, kept[0].served),
            (record.key, ShareKind::Attachment, Some(200), 4096)
        );
        forget_key(&store, &record.key.tag()).unwrap();
        assert!(keys(&store).unwrap().is_empty());
    }
}
