//! UniFFI bindings of the meshdrop core: thin wrappers, no logic.
//!
//! - [`node`]: start a node ([`start_node`]), peers, shares, offers, shutdown.
//! - [`transfer`]: a running download (pause, resume, cancel, its status stream, wait).
//! - [`events`]: the event listener a host implements, and the events it receives.
//! - [`discovery`]: a platform's own DNS-SD browser (Bonjour, Android NSD) feeding the node.
//! - [`host_files`]: files the host opens on demand (content URIs), shared without a copy.
//! - [`link`]: links the host hands over (Wi-Fi Aware, AWDL, Bluetooth) and its link driver.
//! - [`messaging`]: messages and rooms.
//! - [`trust`]: contacts, visibility, the shares this device serves.
//! - [`types`]: records mirroring core types; [`error`]: the one error a caller sees.
//! - [`runtime`]: the tokio runtime the core runs on.

uniffi::setup_scaffolding!();

pub mod discovery;
pub mod error;
pub mod events;
pub mod host_files;
pub mod link;
pub mod messaging;
pub mod node;
mod ops;
pub mod runtime;
pub mod transfer;
pub mod trust;
pub mod types;

pub use error::{MeshdropError, ShareProblem};
pub use events::{EventListener, NodeEvent};
pub use host_files::{HostFileError, HostFiles};
pub use link::{LinkDirection, LinkDriver, LinkStream};
pub use messaging::{Message, MessageState, Recipient, Room};
pub use node::{Node, start_node};
pub use transfer::{Transfer, TransferStatus};
pub use trust::{Contact, ContactVia, ShareInfo, Visibility};
pub use types::*;

/// The version of the meshdrop core these bindings wrap.
#[uniffi::export]
pub fn version() -> String {
    meshdrop_core::VERSION.to_string()
}
