//! meshdrop's core: a node that finds nearby devices, connects to them securely, shares files and
//! carries messages, and keeps its state in SQLite. Every device is equal; nothing here talks to
//! a server.
//!
//! The parts, from the top down (imports only go down):
//! - [`node`] assembles everything (start, stop, the API, the peer table) and turns what the
//!   capabilities report into the app's [`events`]; [`config`] says how it is set up.
//! - The capabilities: [`transfer`] (shares, verified swarming downloads, offers) and
//!   [`messaging`] (store-and-forward chat).
//! - [`net`] owns peers and paths (one libp2p swarm behind a typed client, framing included);
//!   [`discovery`] finds devices with mDNS / DNS-SD; [`relay`] is the relay server anyone can run.
//! - On the ground: [`identity`] (the device key), [`store`] (SQLite), [`report`] (how a
//!   capability tells the app without knowing it) and [`error`].
#![forbid(unsafe_code)]

pub mod config;
pub mod contacts;
pub mod discovery;
pub mod error;
pub mod events;
pub mod identity;
pub mod messaging;
pub mod net;
pub mod node;
pub mod relay;
pub mod report;
pub mod store;
pub mod transfer;

pub use config::{AutoFetch, NodeConfig};
pub use contacts::Contact;
pub use error::{Error, Result};
pub use events::{Event, PeerInfo, Transport};
pub use libp2p::{Multiaddr, PeerId};
pub use messaging::{Message, MessageId, MessageState, Recipient, Room, RoomId};
pub use net::{Link, LinkDirection, LinkIo};
pub use node::{DataDir, LinkDriver, Node};
pub use transfer::download::{
    DownloadError, DownloadReport, DownloadSpec, Progress, Status, TransferControls, TransferHandle,
};
pub use transfer::{ContentId, FileSource, ShareError, Ticket};

/// The version of this core, as published in identify and DNS-SD records.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The wire protocol version; peers with another major version are not spoken to.
pub const PROTOCOL_VERSION: &str = "1";
