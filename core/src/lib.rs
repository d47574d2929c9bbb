//! meshdrop's core: a node that finds nearby devices, connects to them securely and keeps its state
//! in SQLite. Every device is equal; nothing here talks to a server.
//!
//! The parts, from the top down: [`node`] (start, stop, API, event stream) drives [`net`] (one libp2p
//! swarm), [`discovery`] (mDNS / DNS-SD), [`identity`] (the device key) and [`store`] (SQLite).
#![forbid(unsafe_code)]

pub mod config;
pub mod discovery;
pub mod error;
pub mod events;
pub mod identity;
pub mod messaging;
pub mod net;
pub mod node;
pub mod relay;
pub mod store;
pub mod transfer;

pub use config::NodeConfig;
pub use error::{Error, Result};
pub use events::{Event, PeerInfo, Transport};
pub use libp2p::{Multiaddr, PeerId};
pub use messaging::{Message, MessageId, MessageState, Recipient, Room, RoomId};
pub use node::Node;
pub use transfer::download::{DownloadError, DownloadReport, DownloadSpec};
pub use transfer::handle::{TransferControls, TransferHandle};
pub use transfer::{ContentId, Ticket};

/// The version of this core, as published in identify and DNS-SD records.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The wire protocol version; peers with another major version are not spoken to.
pub const PROTOCOL_VERSION: &str = "1";
