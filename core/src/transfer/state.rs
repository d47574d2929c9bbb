//! What the store remembers of transfers: manifests, the files a share is served from, downloads
//! and which of their chunks are safely on disk.

use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};

use super::ContentId;
use crate::error::Result;
use crate::store::Store;

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

/// Records where each file of a share is read from.
pub fn save_share(store: &Store, content: &ContentId, sources: &[PathBuf]) -> Result<()> {
    store.with(|c| {
        let tx = c.transaction()?;
        tx.execute("DELETE FROM shares WHERE content = ?1", [&content.0[..]])?;
        for (i, path) in sources.iter().enumerate() {
            tx.execute(
                "INSERT INTO shares (content, file, path) VALUES (?1, ?2, ?3)",
                params![&content.0[..], i as i64, path.to_string_lossy()],
            )?;
        }
        tx.commit()
    })
}

/// A share as stored.
pub struct StoredShare {
    /// Its id.
    pub content: ContentId,
    /// The encoded manifest.
    pub manifest: Vec<u8>,
    /// Where each file is read from.
    pub sources: Vec<PathBuf>,
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
            let mut stmt = c.prepare("SELECT path FROM shares WHERE content = ?1 ORDER BY file")?;
            let paths = stmt
                .query_map([&id], |r| r.get::<_, String>(0))?
                .map(|p| p.map(PathBuf::from))
                .collect::<rusqlite::Result<_>>()?;
            out.push(StoredShare {
                content: ContentId(bytes),
                manifest,
                sources: paths,
            });
        }
        Ok(out)
    })
}

/// The download of `content` into `dest`, created when new; returns its id.
pub fn download_id(store: &Store, content: &ContentId, dest: &Path) -> Result<i64> {
    store.with(|c| {
        c.execute(
            "INSERT OR IGNORE INTO downloads (content, dest, state) VALUES (?1, ?2, 'active')",
            params![&content.0[..], dest.to_string_lossy()],
        )?;
        c.query_row(
            "SELECT id FROM downloads WHERE content = ?1 AND dest = ?2",
            params![&content.0[..], dest.to_string_lossy()],
            |r| r.get(0),
        )
    })
}

/// Remembers how to restart a download: its ticket and the files picked (`None`: all).
pub fn save_download_source(
    store: &Store,
    id: i64,
    ticket: &str,
    files: Option<&[usize]>,
) -> Result<()> {
    let files = files.map(|f| serde_json::to_string(f).unwrap_or_default());
    store.with(|c| {
        c.execute(
            "UPDATE downloads SET ticket = ?2, files = ?3 WHERE id = ?1",
            params![id, ticket, files],
        )
        .map(drop)
    })
}

/// A download that was running when its node stopped or died.
pub struct Interrupted {
    /// Its ticket, as text.
    pub ticket: String,
    /// Where it goes.
    pub dest: PathBuf,
    /// The files picked (`None`: all).
    pub files: Option<Vec<usize>>,
}

/// Downloads still `active` (the node stopped or died while they ran) that can restart.
pub fn interrupted_downloads(store: &Store) -> Result<Vec<Interrupted>> {
    store.with(|c| {
        let mut stmt = c.prepare(
            "SELECT ticket, dest, files FROM downloads WHERE state = 'active' AND ticket != ''",
        )?;
        stmt.query_map([], |r| {
            let files: Option<String> = r.get(2)?;
            Ok(Interrupted {
                ticket: r.get(0)?,
                dest: PathBuf::from(r.get::<_, String>(1)?),
                files: files.and_then(|f| serde_json::from_str(&f).ok()),
            })
        })?
        .collect()
    })
}

/// Sets a download's state (`active`, `done`, `failed`, `cancelled`).
pub fn set_download_state(store: &Store, id: i64, state: &str) -> Result<()> {
    store.with(|c| {
        c.execute(
            "UPDATE downloads SET state = ?2 WHERE id = ?1",
            params![id, state],
        )
        .map(drop)
    })
}

/// Forgets a download and its chunk records.
pub fn forget_download(store: &Store, id: i64) -> Result<()> {
    store.with(|c| {
        c.execute("DELETE FROM downloads WHERE id = ?1", [id])
            .map(drop)
    })
}

/// The chunks of a download recorded as safely on disk.
pub fn done_chunks(store: &Store, id: i64) -> Result<Vec<u64>> {
    store.with(|c| {
        let mut stmt = c.prepare("SELECT idx FROM chunks WHERE download = ?1")?;
        stmt.query_map([id], |r| r.get::<_, i64>(0))?
            .map(|r| r.map(|i| u64::try_from(i).unwrap_or(u64::MAX)))
            .collect()
    })
}

/// Records chunks as safely on disk, in one transaction (call after the data is synced).
pub fn record_chunks(store: &Store, id: i64, chunks: &[u64]) -> Result<()> {
    store.with(|c| {
        let tx = c.transaction()?;
        {
            let mut stmt =
                tx.prepare("INSERT OR IGNORE INTO chunks (download, idx) VALUES (?1, ?2)")?;
            for idx in chunks {
                stmt.execute(params![id, i64::try_from(*idx).unwrap_or(i64::MAX)])?;
            }
        }
        tx.commit()
    })
}

/// Forgets chunk records (their data went missing).
pub fn unrecord_chunks(store: &Store, id: i64, chunks: &[u64]) -> Result<()> {
    store.with(|c| {
        let tx = c.transaction()?;
        for idx in chunks {
            tx.execute(
                "DELETE FROM chunks WHERE download = ?1 AND idx = ?2",
                params![id, i64::try_from(*idx).unwrap_or(i64::MAX)],
            )?;
        }
        tx.commit()
    })
}
