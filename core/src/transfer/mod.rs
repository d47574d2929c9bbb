//! Transfer: what a share is and how it is named and passed around.
//!
//! - [`manifest`]: the files and empty folders of a share, its chunk size and a BLAKE3 hash per
//!   chunk; canonical encoding, strict decoding, chunk lookup. [`Manifest::build`] (in `build.rs`)
//!   makes one from files and folders on disk.
//! - [`content_id`]: the BLAKE3 hash of an encoded manifest, which names a share.
//! - [`ticket`]: a content id and its providers as a copy-paste- and QR-safe string.
//! - [`paths`]: the rules that keep an untrusted relative path inside the destination.
//! - [`download`] and [`serve`]: the two sides of the blob protocol ([`wire`]); every downloader
//!   serves what it verified, finds the other peers of a share through the [`directory`], and
//!   keeps to the node's [`limits`].

mod build;
pub mod content_id;
pub mod directory;
pub mod download;
pub mod handle;
pub mod library;
pub mod limits;
pub mod manifest;
pub mod offer;
pub mod paths;
mod schedule;
pub mod serve;
mod sink;
pub mod state;
pub mod ticket;
pub mod tree;
pub mod wire;
mod worker;

#[cfg(test)]
mod fuzz;

pub use content_id::ContentId;
pub use manifest::{ChunkRef, FileEntry, Manifest, ManifestError};
pub use paths::{PathError, RelPath, join_safe};
pub use ticket::{Provider, Ticket, TicketError};
