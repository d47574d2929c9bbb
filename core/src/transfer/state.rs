//! What the store remembers of transfers: manifests, the files a share is served from, the keys it
//! is served under, downloads and which of their chunks are safely on disk.

use std::path::{Path, PathBuf};

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, params};

use super::capability::{ShareKey, ShareTag};
use super::shares::{KeyRecord, ShareKind};
use super::{ContentId, Ticket};
use crate::error::Result;
use crate::store::Store;

/// Where a download is, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownloadState {
    /// Running, or interrupted by a stop or a crash: it resumes at the next start.
    Active,
    /// Every selected file verified and in place.
    Done,
    /// Ended with an error.
    Failed,
    /// Cancelled by the user, partial data kept.
    Cancelled,
}

impl DownloadState {
    fn as_str(self) -> &'static str {
        match self {
            DownloadState::Active => "active",
            DownloadState::Done => "done",
            DownloadState::Failed => "failed",
            DownloadState::Cancelled => "cancelled",
        }
    }
}

impl ToSql for DownloadState {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for DownloadState {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value.as_str()? {
            "active" => Ok(DownloadState::Active),
            "done" => Ok(DownloadState::Done),
            "failed" => Ok(DownloadState::Failed),
            "cancelled" => Ok(DownloadState::Cancelled),
            other => Err(FromSqlError::Other(
                format!("unknown download state {other:?}").into(),
            )),
        }
    }
}

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

/// A download's row: its id, and the random token that names its `.part` files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadRow {
    /// Its id.
    pub id: i64,
    /// Its token (16 hex digits), made when the download was first recorded.
    pub token: String,
}

/// Records that the download of `ticket` into `dest` runs (created when new, `active` again
/// otherwise) and how to restart it: the ticket and the files picked (`None`: all).
pub fn start_download(
    store: &Store,
    ticket: &Ticket,
    dest: &Path,
    files: Option<&[usize]>,
) -> Result<DownloadRow> {
    let files = files.map(|f| serde_json::to_string(f).unwrap_or_default());
    let (content, dest) = (&ticket.content.0[..], dest.to_string_lossy());
    let fresh = new_token();
    store.with(|c| {
        let tx = c.transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO downloads (content, dest, state) VALUES (?1, ?2, ?3)",
            params![content, dest, DownloadState::Active],
        )?;
        let (id, token): (i64, String) = tx.query_row(
            "SELECT id, token FROM downloads WHERE content = ?1 AND dest = ?2",
            params![content, dest],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let token = if token.is_empty() { fresh } else { token };
        tx.execute(
            "UPDATE downloads SET state = ?2, ticket = ?3, files = ?4, token = ?5 WHERE id = ?1",
            params![id, DownloadState::Active, ticket.to_string(), files, token],
        )?;
        tx.commit()?;
        Ok(DownloadRow { id, token })
    })
}

/// A new random token for a download's `.part` names.
fn new_token() -> String {
    let mut bytes = [0u8; 8];
    // Without randomness the token still differs per download and time.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        bytes = nanos.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A finished download of a share: where it went and its ticket (what a repair needs).
pub struct FinishedDownload {
    /// Its row.
    pub row: DownloadRow,
    /// Its destination.
    pub dest: PathBuf,
    /// Its ticket, as text.
    pub ticket: String,
}

/// The finished downloads of `content`.
pub fn finished_downloads(store: &Store, content: &ContentId) -> Result<Vec<FinishedDownload>> {
    store.with(|c| {
        let mut stmt = c.prepare(
            "SELECT id, token, dest, ticket FROM downloads
             WHERE content = ?1 AND state = ?2 AND ticket != ''",
        )?;
        stmt.query_map(params![&content.0[..], DownloadState::Done], |r| {
            Ok(FinishedDownload {
                row: DownloadRow {
                    id: r.get(0)?,
                    token: r.get(1)?,
                },
                dest: PathBuf::from(r.get::<_, String>(2)?),
                ticket: r.get(3)?,
            })
        })?
        .collect()
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

/// Downloads still `active` (the node stopped or died while they ran) or still looking for a
/// first holder, that can restart.
pub fn interrupted_downloads(store: &Store) -> Result<Vec<Interrupted>> {
    store.with(|c| {
        let mut stmt = c.prepare(
            "SELECT ticket, dest, files FROM downloads WHERE state = ?1 AND ticket != ''
             UNION SELECT ticket, dest, files FROM sought",
        )?;
        stmt.query_map([DownloadState::Active], |r| {
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

/// A download that has not finished: running, waiting for a first holder, or interrupted by a
/// stop or a crash (it resumes at the next start).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnfinishedDownload {
    /// The share it downloads.
    pub content: ContentId,
    /// Where it goes.
    pub dest: PathBuf,
}

/// The downloads that have not finished and can resume (those [`interrupted_downloads`] restarts
/// at a start), one per share and destination.
pub fn unfinished_downloads(store: &Store) -> Result<Vec<UnfinishedDownload>> {
    store.with(|c| {
        let mut stmt = c.prepare(
            "SELECT content, dest FROM downloads WHERE state = ?1 AND ticket != ''
             UNION SELECT content, dest FROM sought ORDER BY dest",
        )?;
        let rows: Vec<(Vec<u8>, String)> = stmt
            .query_map([DownloadState::Active], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, dest)| {
                let bytes = <[u8; 32]>::try_from(id.as_slice()).ok()?;
                Some(UnfinishedDownload {
                    content: ContentId(bytes),
                    dest: PathBuf::from(dest),
                })
            })
            .collect())
    })
}

/// Remembers a download that looks for a first holder of its share, until [`found_download`].
pub fn seek_download(
    store: &Store,
    ticket: &Ticket,
    dest: &Path,
    files: Option<&[usize]>,
) -> Result<()> {
    let files = files.map(|f| serde_json::to_string(f).unwrap_or_default());
    store.with(|c| {
        c.execute(
            "INSERT OR REPLACE INTO sought (content, dest, ticket, files) VALUES (?1, ?2, ?3, ?4)",
            params![
                &ticket.content.0[..],
                dest.to_string_lossy(),
                ticket.to_string(),
                files
            ],
        )
        .map(drop)
    })
}

/// Forgets that a download looks for a holder: one answered, or the download ended.
pub fn found_download(store: &Store, content: &ContentId, dest: &Path) -> Result<()> {
    store.with(|c| {
        c.execute(
            "DELETE FROM sought WHERE content = ?1 AND dest = ?2",
            params![&content.0[..], dest.to_string_lossy()],
        )
        .map(drop)
    })
}

/// Sets a download's state.
pub fn set_download_state(store: &Store, id: i64, state: DownloadState) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::Provider;

    #[test]
    fn a_running_download_is_found_again_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let content = ContentId::of(b"manifest");
        save_manifest(&store, &content, b"manifest").unwrap();
        let ticket = Ticket::new(
            content,
            ShareKey::from_bytes([3; 32]),
            vec![Provider {
                peer: libp2p::PeerId::random(),
                addrs: Vec::new(),
            }],
        );
        let dest = dir.path().join("out");
        let row = start_download(&store, &ticket, &dest, Some(&[1, 3])).unwrap();
        assert_eq!(row.token.len(), 16);
        assert_eq!(start_download(&store, &ticket, &dest, None).unwrap(), row);
        let id = row.id;
        let found = interrupted_downloads(&store).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].ticket.as_str(), &found[0].dest),
            (ticket.to_string().as_str(), &dest)
        );
        assert_eq!(found[0].files, None, "the latest pick counts");
        set_download_state(&store, id, DownloadState::Done).unwrap();
        assert!(interrupted_downloads(&store).unwrap().is_empty());
        let done = finished_downloads(&store, &content).unwrap();
        assert_eq!((done.len(), &done[0].row, &done[0].dest), (1, &row, &dest));
        let stored: DownloadState = store
            .with(|c| {
                c.query_row("SELECT state FROM downloads WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
            })
            .unwrap();
        assert_eq!(stored, DownloadState::Done);
    }

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
