//! What the store remembers of downloads: their rows and states, the downloads still looking
//! for a holder, and which of their chunks are safely on disk.

use std::path::{Path, PathBuf};

use rusqlite::params;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::error::Result;
use crate::store::Store;
use crate::transfer::{ContentId, Ticket};

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
    use crate::transfer::capability::ShareKey;
    use crate::transfer::state::save_manifest;

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
}
