//! Transfer: what a share is, how it is named and passed around, and how it moves.
//!
//! - [`manifest`]: the files and empty folders of a share, its chunk size and a BLAKE3 hash per
//!   chunk; canonical encoding, strict decoding, chunk lookup. [`Manifest::build`] (in `build.rs`)
//!   makes one from files and folders on disk; [`source`] from files the host opens on demand
//!   (a [`FileSource`]), which are then served through it, never copied.
//! - [`content_id`]: the BLAKE3 hash of an encoded manifest, which names a share.
//! - [`ticket`]: a content id and its providers as a copy-paste- and QR-safe string.
//! - [`paths`]: the rules that keep an untrusted relative path inside the destination;
//!   [`names`]: how a receiver maps the names its destination cannot hold; [`dest`]: the
//!   destination folder, written without following links.
//! - [`download`] and `serve`: the two sides of the blob protocol ([`wire`]); every downloader
//!   serves what it verified ([`library`]), finds the other peers of a share through the
//!   `holders`, and keeps to the node's [`limits`]. [`offer`] pushes a share to a nearby device.
//! - [`service`]: [`Transfers`], the capability as the node holds it, and the services its parts
//!   share. It tells the app what happens through [`Notice`]s.
//! - [`health`]: a served file that no longer matches its share is found, reported and, where
//!   the share came from others, repaired from them.

mod bitfield;
mod build;
pub mod capability;
pub mod content_id;
pub mod dest;
pub mod download;
pub mod health;
mod holders;
pub mod library;
pub mod limits;
pub mod manifest;
pub mod names;
pub mod offer;
pub mod paths;
mod serve;
pub mod service;
mod share_info;
pub mod shares;
pub mod source;
pub mod state;
pub mod ticket;
pub mod tree;
pub mod wire;

#[cfg(test)]
mod fuzz;

use libp2p::PeerId;
use tokio::sync::watch;

pub use capability::{ShareKey, ShareTag};
pub use content_id::ContentId;
pub use download::{DownloadError, DownloadReport, DownloadSpec, Status, TransferHandle};
pub use health::{Damage, FileHealth, ShareHealth};
pub use holders::HolderHints;
pub use manifest::{ChunkRef, FileEntry, Manifest, ManifestError};
pub use names::{NameChange, NameRules};
pub use offer::{OfferedFile, PendingOffer, Visibility};
pub use paths::{PathError, RelPath, join_safe};
pub use service::{ShareError, TransferConfig, Transfers};
pub use share_info::ShareInfo;
pub use shares::ShareKind;
pub use source::FileSource;
pub use ticket::{Provider, Ticket, TicketError};

/// What the transfer capability tells the app (the node turns each into an event).
#[derive(Debug)]
pub enum Notice {
    /// A download started; its status says how it goes, to its end.
    Download {
        /// The transfer's id.
        transfer: u64,
        /// The share.
        content: ContentId,
        /// Its status.
        status: watch::Receiver<Status>,
    },
    /// Every chunk of a share this node serves was uploaded at least once.
    ShareDistributed {
        /// The share.
        content: ContentId,
    },
    /// A file this node serves no longer matches its share: these chunks are not served.
    ShareDamaged {
        /// The share.
        content: ContentId,
        /// The file's path in the share.
        file: String,
        /// Where it is on disk.
        path: std::path::PathBuf,
        /// The chunks that no longer verify.
        chunks: Vec<u64>,
        /// Why.
        damage: Damage,
        /// Whether they are being fetched again from peers.
        repairing: bool,
    },
    /// A damaged file was fetched again from peers and verifies whole.
    ShareRepaired {
        /// The share.
        content: ContentId,
        /// The file's path in the share.
        file: String,
        /// The chunks fetched again.
        chunks: Vec<u64>,
    },
    /// A damaged file could not be repaired.
    ShareRepairFailed {
        /// The share.
        content: ContentId,
        /// The file's path in the share.
        file: String,
        /// Why.
        error: String,
    },
    /// A nearby device offers files; the app answers with [`Transfers::respond_offer`].
    OfferReceived {
        /// The offer's id.
        offer: u64,
        /// The sender.
        peer: PeerId,
        /// The sender's device name, as it says.
        name: String,
        /// The name the user gave the sender, when a contact (`None`: a stranger).
        contact: Option<String>,
        /// The code both screens show.
        verification_code: String,
        /// Bytes offered.
        total: u64,
        /// The files offered.
        files: Vec<OfferedFile>,
    },
    /// An offer was declined at once: the sender may not offer files now (this device is not
    /// visible to it). Nothing was fetched or written.
    OfferRefused {
        /// The sender.
        peer: PeerId,
        /// The name it gives itself.
        name: String,
        /// What the sender was told.
        reason: String,
    },
    /// An offer received was not answered in time: it was declined.
    OfferExpired {
        /// The offer's id.
        offer: u64,
    },
    /// The receiver accepted this node's offer.
    OfferAccepted {
        /// The receiver.
        peer: PeerId,
        /// The share.
        content: ContentId,
        /// How many files it takes.
        files: u32,
    },
    /// The receiver declined this node's offer.
    OfferDeclined {
        /// The receiver.
        peer: PeerId,
        /// The share.
        content: ContentId,
        /// Why.
        reason: String,
    },
    /// How far the receiver of this node's offer is.
    SendProgress {
        /// The receiver.
        peer: PeerId,
        /// The share.
        content: ContentId,
        /// Bytes verified on the receiver.
        done: u64,
        /// Bytes accepted.
        total: u64,
    },
}
