//! What this device serves, and to whom: one record per key (a ticket this device made, or one it
//! downloaded with and now seeds to the ticket's other holders). A peer that proves a key is
//! served the content that key opens; removing the record ends its open sessions at once. Offer
//! keys end with their offer; attachment keys expire unless pinned.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::ContentId;
use super::capability::{ShareKey, ShareTag};

/// Why a key exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShareKind {
    /// The user shared files and got a ticket.
    Shared,
    /// Made for an offer to a nearby device; ends with the offer.
    Offer,
    /// Attached to a message; expires unless pinned.
    Attachment,
    /// A ticket this device downloaded with: it seeds to the ticket's other holders.
    Download,
}

impl ShareKind {
    fn as_str(self) -> &'static str {
        match self {
            ShareKind::Shared => "shared",
            ShareKind::Offer => "offer",
            ShareKind::Attachment => "attachment",
            ShareKind::Download => "download",
        }
    }
}

impl ToSql for ShareKind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for ShareKind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Ok(match value.as_str()? {
            "shared" => ShareKind::Shared,
            "offer" => ShareKind::Offer,
            "attachment" => ShareKind::Attachment,
            "download" => ShareKind::Download,
            other => {
                let why = format!("unknown share kind {other:?}");
                return Err(FromSqlError::Other(why.into()));
            }
        })
    }
}

/// A key as the store keeps it.
#[derive(Clone, Debug)]
pub struct KeyRecord {
    /// The key.
    pub key: ShareKey,
    /// What it opens.
    pub content: ContentId,
    /// Why it exists.
    pub kind: ShareKind,
    /// When it was made (Unix seconds).
    pub since: u64,
    /// When it stops opening anything (Unix seconds); `None`: never.
    pub expires: Option<u64>,
    /// Bytes served under it so far.
    pub served: u64,
}

/// A key that opened: what it serves, and how its session learns of its end.
pub(crate) struct Opened {
    pub(crate) key: ShareKey,
    pub(crate) content: ContentId,
    /// Turns true when the key is removed.
    pub(crate) revoked: watch::Receiver<bool>,
    /// Bytes served under the key (the session adds to it).
    pub(crate) served: Arc<AtomicU64>,
}

struct Entry {
    record: KeyRecord,
    served: Arc<AtomicU64>,
    revoked: watch::Sender<bool>,
}

/// The keys this device serves under, by tag.
#[derive(Default)]
pub(crate) struct Shares {
    by_tag: Mutex<HashMap<ShareTag, Entry>>,
}

impl Shares {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ShareTag, Entry>> {
        self.by_tag.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves `record.content` to the holders of `record.key` from now on (already known: kept).
    pub(crate) fn add(&self, record: KeyRecord) {
        let served = Arc::new(AtomicU64::new(record.served));
        let entry = Entry {
            record,
            served,
            revoked: watch::Sender::new(false),
        };
        self.lock().entry(entry.record.key.tag()).or_insert(entry);
    }

    /// The key named `tag`, unless it expired by `now` (Unix seconds).
    pub(crate) fn open(&self, tag: &ShareTag, now: u64) -> Option<Opened> {
        let by_tag = self.lock();
        let entry = by_tag.get(tag)?;
        if entry.record.expires.is_some_and(|at| at <= now) {
            return None;
        }
        Some(Opened {
            key: entry.record.key,
            content: entry.record.content,
            revoked: entry.revoked.subscribe(),
            served: entry.served.clone(),
        })
    }

    /// Stops serving under `tag`; its open sessions end. Returns what it opened.
    pub(crate) fn remove(&self, tag: &ShareTag) -> Option<KeyRecord> {
        let entry = self.lock().remove(tag)?;
        entry.revoked.send_replace(true);
        Some(entry.record)
    }

    /// Whether any key still opens `content`.
    pub(crate) fn serves(&self, content: &ContentId) -> bool {
        self.lock().values().any(|e| e.record.content == *content)
    }

    /// Every key, with the bytes served so far.
    pub(crate) fn records(&self) -> Vec<KeyRecord> {
        let by_tag = self.lock();
        by_tag
            .values()
            .map(|e| KeyRecord {
                served: e.served.load(Ordering::Relaxed),
                ..e.record.clone()
            })
            .collect()
    }

    /// The tags whose id starts with `id` (hex, at least 8 digits).
    pub(crate) fn find(&self, id: &str) -> Vec<ShareTag> {
        self.lock()
            .keys()
            .filter(|t| t.matches(id))
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: ShareKind, expires: Option<u64>) -> KeyRecord {
        KeyRecord {
            key: ShareKey::generate().unwrap(),
            content: ContentId([1; 32]),
            kind,
            since: 10,
            expires,
            served: 5,
        }
    }

    #[test]
    fn a_removed_key_opens_nothing_and_ends_its_sessions() {
        let shares = Shares::default();
        let r = record(ShareKind::Shared, None);
        let tag = r.key.tag();
        shares.add(r.clone());
        let opened = shares.open(&tag, 100).expect("opens");
        assert_eq!((opened.content, opened.key), (r.content, r.key));
        assert!(!*opened.revoked.borrow());
        assert_eq!(shares.find(&tag.short()), vec![tag]);
        assert!(shares.serves(&r.content));
        assert_eq!(shares.remove(&tag).map(|r| r.kind), Some(ShareKind::Shared));
        assert!(*opened.revoked.borrow(), "the session hears of it");
        assert!(shares.open(&tag, 100).is_none());
        assert!(!shares.serves(&r.content));
    }

    #[test]
    fn an_expired_key_opens_nothing() {
        let shares = Shares::default();
        let r = record(ShareKind::Attachment, Some(50));
        let tag = r.key.tag();
        shares.add(r);
        assert!(shares.open(&tag, 49).is_some());
        assert!(shares.open(&tag, 50).is_none());
        assert_eq!(shares.records()[0].served, 5);
    }
}
