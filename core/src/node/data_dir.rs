//! A node's data dir: the identity, the store (and the lock that makes one node per data dir) and
//! the device name; and [`DataDir`], the same state opened without starting a node, for commands
//! that read or write it while no node runs.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use libp2p::PeerId;
use libp2p::identity::Keypair;

use crate::contacts::{self, Contact};
use crate::error::{Error, Result};
use crate::identity;
use crate::messaging::service::Messenger;
use crate::messaging::{Message, MessagingConfig, Room};
use crate::report::Report;
use crate::store::Store;

/// What a data dir holds for a node.
pub(super) struct Opened {
    pub(super) key: Keypair,
    pub(super) store: Store,
    pub(super) name: String,
}

/// Opens the data dir: identity, store (and its lock), device name (`name` is kept when given).
pub(super) fn open(data_dir: &Path, name: Option<&str>) -> Result<Opened> {
    prepare(data_dir)?;
    let key = identity::load_or_create(data_dir)?;
    let store = Store::open(data_dir)?;
    let name = match name {
        Some(name) => {
            store.set_setting("name", name)?;
            name.to_string()
        }
        None => match store.setting("name")? {
            Some(name) => name,
            None => default_name(),
        },
    };
    Ok(Opened { key, store, name })
}

/// Creates the data dir (owner-only) or explains why it cannot be used.
fn prepare(dir: &Path) -> Result<()> {
    let bad = |reason: String| Error::DataDir {
        path: dir.to_path_buf(),
        reason,
    };
    if dir.exists() && !dir.is_dir() {
        return Err(bad("exists but is not a directory".into()));
    }
    fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| bad(e.to_string()))?;
    }
    fs::read_dir(dir).map_err(|e| bad(format!("cannot read it: {e}")))?;
    Ok(())
}

fn default_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "meshdrop device".to_string())
}

/// A data dir opened without a node: this device's identity, messages, rooms and contacts.
/// It holds the data dir's lock, like a node: a running node makes opening it fail with
/// [`Error::AlreadyRunning`] (ask that node instead).
pub struct DataDir {
    peer: PeerId,
    name: String,
    store: Arc<Store>,
    messenger: Messenger,
}

impl DataDir {
    /// Opens (or creates) the data dir; `name`, when given, is kept as the device name.
    pub fn open(data_dir: &Path, name: Option<&str>) -> Result<Self> {
        let Opened { key, store, name } = open(data_dir, name)?;
        let store = Arc::new(store);
        let messenger = Messenger::new(
            key.clone(),
            &name,
            store.clone(),
            Report::discard(),
            &MessagingConfig::default(),
        )?;
        Ok(Self {
            peer: key.public().to_peer_id(),
            name,
            store,
            messenger,
        })
    }

    /// This device's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer
    }

    /// This device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every message this device can read, in causal order.
    pub fn messages(&self) -> Result<Vec<Message>> {
        self.messenger.messages()
    }

    /// The rooms this device is in, with their invites.
    pub fn rooms(&self) -> Vec<Room> {
        self.messenger.room_list()
    }

    /// Creates a room.
    pub fn create_room(&self, name: &str) -> Result<Room> {
        self.messenger.create_room(name)
    }

    /// Joins a room from its invite.
    pub fn join_room(&self, invite: &str) -> Result<Room> {
        self.messenger.join_room(invite)
    }

    /// The contacts, with the names the user gave them.
    pub fn contacts(&self) -> Result<Vec<Contact>> {
        contacts::list(&self.store)
    }

    /// Makes `peer` a contact named `name` (the user compared the verification code).
    pub fn add_contact(&self, peer: &PeerId, name: &str) -> Result<()> {
        if *peer == self.peer {
            return Err(Error::Message("that is this device's own peer id".into()));
        }
        contacts::add(&self.store, peer, name, contacts::Via::Code).map(drop)
    }

    /// Gives contact `peer` another name.
    pub fn rename_contact(&self, peer: &PeerId, name: &str) -> Result<()> {
        contacts::rename(&self.store, peer, name)
    }

    /// Makes contact `peer` a stranger again.
    pub fn remove_contact(&self, peer: &PeerId) -> Result<()> {
        contacts::remove(&self.store, peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_keeps_its_identity_name_and_rooms_between_openings() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDir::open(dir.path(), Some("ana")).unwrap();
        let room = first.create_room("camp").unwrap();
        let peer = first.peer_id();
        // One opener at a time: the lock is held.
        assert!(matches!(
            DataDir::open(dir.path(), None),
            Err(Error::AlreadyRunning { .. })
        ));
        drop(first);
        let again = DataDir::open(dir.path(), None).unwrap();
        assert_eq!((again.peer_id(), again.name()), (peer, "ana"));
        assert_eq!(again.rooms(), vec![room.clone()]);
        assert_eq!(again.join_room(&room.invite).unwrap().id, room.id);
        assert_eq!(again.rooms().len(), 1, "joining twice is harmless");
        assert!(again.messages().unwrap().is_empty());
    }

    #[test]
    fn a_data_dir_that_is_a_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"x").unwrap();
        let Err(e) = DataDir::open(&file, None) else {
            panic!("a file is not a data dir")
        };
        assert!(
            e.to_string().contains("exists but is not a directory"),
            "{e}"
        );
    }
}
