//! All state that matters, in one SQLite database per data dir (WAL, versioned migrations, one writer).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use libp2p::{Multiaddr, PeerId};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};

/// File name of the database inside the data dir.
pub const DB_FILE: &str = "meshdrop.db";
const LOCK_FILE: &str = "node.lock";
/// Devices remembered besides contacts; the ones seen least recently are forgotten beyond it.
pub const MAX_REMEMBERED_PEERS: usize = 2000;
/// The longest name a device may claim for itself that is kept, in bytes (longer names are cut).
pub const MAX_CLAIMED_NAME: usize = 100;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: known peers and settings.
    "CREATE TABLE peers (
        peer_id   TEXT PRIMARY KEY,
        name      TEXT NOT NULL DEFAULT '',
        addrs     TEXT NOT NULL DEFAULT '[]',
        last_seen INTEGER NOT NULL
    );
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    // 2: shares this node serves, downloads and the chunks safely on disk.
    "CREATE TABLE manifests (
        content  BLOB PRIMARY KEY,
        manifest BLOB NOT NULL
    );
    CREATE TABLE shares (
        content BLOB NOT NULL REFERENCES manifests (content),
        file    INTEGER NOT NULL,
        path    TEXT NOT NULL,
        PRIMARY KEY (content, file)
    );
    CREATE TABLE downloads (
        id      INTEGER PRIMARY KEY,
        content BLOB NOT NULL REFERENCES manifests (content),
        dest    TEXT NOT NULL,
        state   TEXT NOT NULL,
        UNIQUE (content, dest)
    );
    CREATE TABLE chunks (
        download INTEGER NOT NULL REFERENCES downloads (id) ON DELETE CASCADE,
        idx      INTEGER NOT NULL,
        PRIMARY KEY (download, idx)
    ) WITHOUT ROWID;",
    // 3: messaging. Envelopes as received (ciphertext; `seq` numbers them in arrival order for
    // sync cursors), the messages this device can read, its rooms, and how far it synced with
    // each peer.
    "CREATE TABLE msg_envelopes (
        seq       INTEGER PRIMARY KEY AUTOINCREMENT,
        id        BLOB NOT NULL UNIQUE,
        author    TEXT NOT NULL,
        recipient TEXT NOT NULL,
        expires   INTEGER NOT NULL,
        hops      INTEGER NOT NULL,
        carried   INTEGER NOT NULL,
        source    TEXT NOT NULL,
        raw       BLOB NOT NULL
    );
    CREATE INDEX msg_envelopes_carried ON msg_envelopes (carried, author);
    CREATE INDEX msg_envelopes_expires ON msg_envelopes (expires);
    CREATE TABLE msg_messages (
        id          BLOB PRIMARY KEY,
        author      TEXT NOT NULL,
        recipient   TEXT NOT NULL,
        text        TEXT NOT NULL,
        hlc_ms      INTEGER NOT NULL,
        hlc_counter INTEGER NOT NULL,
        expires     INTEGER NOT NULL,
        state       TEXT NOT NULL,
        outgoing    INTEGER NOT NULL
    );
    CREATE INDEX msg_messages_order ON msg_messages (hlc_ms, hlc_counter, id);
    CREATE TABLE msg_rooms (
        id   BLOB PRIMARY KEY,
        name TEXT NOT NULL,
        key  BLOB NOT NULL
    );
    CREATE TABLE msg_cursors (
        peer  TEXT NOT NULL,
        scope BLOB NOT NULL,
        seq   INTEGER NOT NULL,
        PRIMARY KEY (peer, scope)
    );",
    // 4: what a download needs to restart by itself after the node restarts: its ticket and the
    // files picked (a JSON array of manifest indexes; NULL for all).
    "ALTER TABLE downloads ADD COLUMN ticket TEXT NOT NULL DEFAULT '';
    ALTER TABLE downloads ADD COLUMN files TEXT;",
    // 5: contacts (peers learned when devices meet or from an invite; `last_seen` 0 until met),
    // message attachments (a share ticket), and when a message arrived here (local clock, ms),
    // which bounds how many one author may make this device store per hour.
    "ALTER TABLE peers ADD COLUMN first_seen INTEGER NOT NULL DEFAULT 0;
    UPDATE peers SET first_seen = last_seen;
    ALTER TABLE msg_messages ADD COLUMN attachment TEXT;
    ALTER TABLE msg_messages ADD COLUMN arrived INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX msg_messages_arrivals ON msg_messages (author, arrived);",
    // 6: whether a message is for a room, as a column of its own (queries never match the
    // recipient's text form).
    "ALTER TABLE msg_messages ADD COLUMN to_room INTEGER NOT NULL DEFAULT 0;
    UPDATE msg_messages SET to_room = 1 WHERE substr(recipient, 1, 5) = 'room:';",
    // 7: trust. Contacts exist only by an act of the user (the `peers` table remembers devices met,
    // with the names they claim); shares are capabilities: the keys this device serves under
    // (a content id alone opens nothing, so shares of earlier versions are no longer served).
    "CREATE TABLE contacts (
        peer_id TEXT PRIMARY KEY,
        name    TEXT NOT NULL,
        added   INTEGER NOT NULL,
        via     TEXT NOT NULL
    );
    CREATE TABLE share_keys (
        tag     BLOB PRIMARY KEY,
        key     BLOB NOT NULL,
        content BLOB NOT NULL REFERENCES manifests (content),
        kind    TEXT NOT NULL,
        since   INTEGER NOT NULL,
        expires INTEGER,
        served  INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX share_keys_content ON share_keys (content);",
    // 8: what lands on disk. Each download's random token names its `.part` files, so no other
    // download (nor a user's file) is ever taken for one; each served file's size and change time
    // when it was shared, so a file edited since is told from one the disk damaged.
    "ALTER TABLE downloads ADD COLUMN token TEXT NOT NULL DEFAULT '';
    ALTER TABLE shares ADD COLUMN size INTEGER;
    ALTER TABLE shares ADD COLUMN mtime_ns INTEGER;",
    // 9: storage budgets. Every envelope stored counts against its author's class (0: written
    // here, 1: a contact, 2: a stranger) for `cost` bytes; a full class loses its oldest first.
    // Envelopes received before are counted by their author's class today.
    "ALTER TABLE msg_envelopes ADD COLUMN class INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE msg_envelopes ADD COLUMN cost INTEGER NOT NULL DEFAULT 0;
    UPDATE msg_envelopes SET
        class = CASE WHEN author IN (SELECT peer_id FROM contacts) THEN 1 ELSE 2 END,
        cost = length(raw) + 1536
      WHERE source != '';
    CREATE INDEX msg_envelopes_class ON msg_envelopes (class, seq, cost);",
    // 10: the hash cache. The chunk hashes of each file shared, by its absolute path (its bytes)
    // and chunk size, kept with its size, modification and status change times and inode: a file
    // re-shared with all of them unchanged is not read again; any change and it is hashed anew
    // (and replaced here).
    "CREATE TABLE hash_cache (
        path       BLOB NOT NULL,
        chunk_size INTEGER NOT NULL,
        size       INTEGER NOT NULL,
        mtime_ns   INTEGER NOT NULL,
        inode      INTEGER NOT NULL,
        ctime_ns   INTEGER NOT NULL,
        hashes     BLOB NOT NULL,
        PRIMARY KEY (path, chunk_size)
    );",
    // 11: shares of files the host opens on demand (`host` = 1): `path` holds each file's name in
    // the share, and the share is served only once the host registers its files again.
    "ALTER TABLE shares ADD COLUMN host INTEGER NOT NULL DEFAULT 0;",
    // 12: downloads still looking for a first holder (no manifest yet, so not in `downloads`):
    // the ticket, destination and files picked, so they resume after a restart too.
    "CREATE TABLE sought (
        content BLOB NOT NULL,
        dest    TEXT NOT NULL,
        ticket  TEXT NOT NULL,
        files   TEXT,
        PRIMARY KEY (content, dest)
    );",
    // 13: what files fetched by themselves took of each budget, in bytes: a room's attachments
    // (by the room, `room:<id>`) or the files carried for a contact (`carry:<peer id>`).
    "CREATE TABLE auto_fetched (
        room  TEXT PRIMARY KEY,
        bytes INTEGER NOT NULL
    );",
];

/// A peer the store remembers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownPeer {
    /// Its id.
    pub peer: PeerId,
    /// Its device name, empty when never learned.
    pub name: String,
    /// The addresses it was last reached or announced on.
    pub addrs: Vec<Multiaddr>,
    /// Unix seconds of the last time it was seen.
    pub last_seen: u64,
}

/// The node's database. Holding it holds the data dir's lock: one node per data dir.
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// The data dir's lock, held until [`Store::release`] (or drop).
    lock: Mutex<Option<File>>,
}

impl Store {
    /// Opens (creating and migrating) the store of `data_dir` and takes the data dir's lock.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let lock_path = data_dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| Error::Io {
                path: lock_path.clone(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::AlreadyRunning {
                    path: data_dir.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(Error::Io {
                    path: lock_path,
                    source,
                });
            }
        }
        let path = data_dir.join(DB_FILE);
        let err = |source| Error::Store {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        // The write-ahead log is folded back every 1 MiB and cut back to 1 MiB: what the data
        // dir holds stays close to what the tables hold (the storage budgets bound those).
        conn.pragma_update(None, "wal_autocheckpoint", 256)
            .map_err(err)?;
        conn.pragma_update(None, "journal_size_limit", 1 << 20)
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        migrate(&mut conn).map_err(err)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
            lock: Mutex::new(Some(lock)),
        })
    }

    /// Runs `f` on the connection (the one writer); capability modules keep their SQL next to them.
    pub fn with<R>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>) -> Result<R> {
        let mut conn = self.conn();
        f(&mut conn).map_err(|e| self.err(e))
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent: keep going.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, source: rusqlite::Error) -> Error {
        Error::Store {
            path: self.path.clone(),
            source,
        }
    }

    /// Reads a setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        self.conn()
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Writes a setting.
    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn()
            .execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Records that `peer` was seen now; a non-empty name and non-empty addresses replace the old ones.
    pub fn peer_seen(&self, peer: &PeerId, name: &str, addrs: &[Multiaddr]) -> Result<()> {
        let addrs_json = if addrs.is_empty() {
            None
        } else {
            serde_json::to_string(addrs).ok()
        };
        let conn = self.conn();
        conn.execute(
            "INSERT INTO peers (peer_id, name, addrs, last_seen, first_seen)
             VALUES (?1, ?2, COALESCE(?3, '[]'), ?4, ?4)
             ON CONFLICT (peer_id) DO UPDATE SET
                name = CASE WHEN excluded.name = '' THEN peers.name ELSE excluded.name END,
                addrs = COALESCE(?3, peers.addrs),
                last_seen = excluded.last_seen",
            params![
                peer.to_base58(),
                cut(name, MAX_CLAIMED_NAME),
                addrs_json,
                now_secs() as i64
            ],
        )
        .map_err(|e| self.err(e))?;
        // The oldest non-contacts beyond the bound are forgotten: a stranger minting identities
        // cannot grow the table without end.
        conn.execute(
            "DELETE FROM peers WHERE peer_id IN (
                SELECT peer_id FROM peers
                WHERE peer_id NOT IN (SELECT peer_id FROM contacts)
                ORDER BY last_seen DESC LIMIT -1 OFFSET ?1)",
            [MAX_REMEMBERED_PEERS as i64],
        )
        .map(drop)
        .map_err(|e| self.err(e))
    }

    /// Peers seen at or after `since` (unix seconds), most recent first.
    pub fn peers_since(&self, since: u64) -> Result<Vec<KnownPeer>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT peer_id, name, addrs, last_seen FROM peers
                 WHERE last_seen >= ?1 ORDER BY last_seen DESC",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([since as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut peers = Vec::new();
        for row in rows {
            let (id, name, addrs, last_seen) = row.map_err(|e| self.err(e))?;
            // A row we cannot parse is skipped, not fatal: the store outlives format changes.
            let Ok(peer) = id.parse::<PeerId>() else {
                continue;
            };
            let addrs = serde_json::from_str(&addrs).unwrap_or_default();
            peers.push(KnownPeer {
                peer,
                name,
                addrs,
                last_seen: u64::try_from(last_seen).unwrap_or(0),
            });
        }
        Ok(peers)
    }

    /// Lets another node open this data dir (called at stop, after [`Store::flush`]), even while
    /// handles to this store still exist.
    pub fn release(&self) {
        self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Writes everything to the main database file (a WAL checkpoint); called at stop.
    pub fn flush(&self) -> Result<()> {
        self.conn()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .map_err(|e| self.err(e))
    }
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let done: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let done = usize::try_from(done).unwrap_or(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_survive_a_reopen_and_keep_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let peer = PeerId::random();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .peer_seen(&peer, "alice", std::slice::from_ref(&addr))
                .unwrap();
            store.peer_seen(&peer, "", &[]).unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let peers = store.peers_since(0).unwrap();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].name, "alice");
        assert_eq!(peers[0].addrs, vec![addr]);
    }

    #[test]
    fn a_second_store_on_the_same_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).err().unwrap();
        assert!(matches!(err, Error::AlreadyRunning { .. }), "{err}");
    }
}
