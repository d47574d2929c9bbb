//! Who may hold a share besides its ticket's providers, as the node knows: the people around the
//! messages that attach it (the author, the other end, the room's members), then the contacts.
//! Downloads looking for a holder dial and ask them.

use std::sync::Arc;

use libp2p::PeerId;

use crate::contacts;
use crate::messaging::state;
use crate::store::Store;
use crate::transfer::{ContentId, HolderHints};

/// The node's [`HolderHints`], read from its store.
pub(super) struct StoreHints {
    pub(super) store: Arc<Store>,
}

impl HolderHints for StoreHints {
    fn holders_of(&self, content: &ContentId) -> Vec<PeerId> {
        let mut peers = state::attachment_peers(&self.store, content).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read who posted this attachment");
            Vec::new()
        });
        match contacts::list(&self.store) {
            Ok(list) => {
                for c in list {
                    if !peers.contains(&c.peer) {
                        peers.push(c.peer);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the contacts"),
        }
        peers
    }
}
