//! Errors of the core, each with a message a user can act on.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What can go wrong in the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data directory cannot be created, read or written.
    #[error("data dir {path}: {reason}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why it is unusable.
        reason: String,
    },
    /// The identity file exists but does not hold a valid key. It is never replaced silently:
    /// that would change the device's identity.
    #[error(
        "identity file {path} is corrupt ({reason}); it was left untouched: restore it from a backup, or move it away to create a new identity"
    )]
    CorruptIdentity {
        /// The identity file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Another node already runs on this data directory.
    #[error("another meshdrop node is already running on data dir {path}")]
    AlreadyRunning {
        /// The data directory.
        path: PathBuf,
    },
    /// The SQLite store failed.
    #[error("store {path}: {source}")]
    Store {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// A multiaddr or peer id given by a user or a peer is not valid.
    #[error("invalid address {input:?}: {reason}")]
    InvalidAddress {
        /// What was given.
        input: String,
        /// Why it is not valid.
        reason: String,
    },
    /// The node could not listen on any address.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The network stack could not be set up (a transport, a protocol).
    #[error("network: {reason}")]
    Network {
        /// Why.
        reason: String,
    },
    /// A peer could not be reached.
    #[error("peer unreachable: {reason}")]
    Unreachable {
        /// Why the dial failed.
        reason: String,
    },
    /// Local discovery (mDNS) failed to start.
    #[error("discovery: {0}")]
    Discovery(String),
    /// The operation did not finish in time.
    #[error("timed out after {secs} s: {what}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        secs: u64,
    },
    /// Something named by the caller does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The node has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// A message or room request that cannot be honoured (bad recipient, text too long, bad invite).
    #[error("message: {0}")]
    Message(String),
    /// An I/O error on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Why a download, a dial or an offer failed, by what the user can do about it (the message
/// beside it says the rest).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// No holder of the share could be reached, or none had it.
    NoProvider,
    /// Every holder failed or went away before the end.
    ProvidersFailed,
    /// Every copy within reach of some chunks is damaged.
    NoGoodCopy,
    /// The share's file list does not match its ticket, does not decode or holds an unsafe path.
    ManifestRejected,
    /// The destination lacks space.
    NoSpace,
    /// The destination cannot take the files (a link or a file where a folder goes, every name
    /// taken).
    Destination,
    /// Reading or writing a file failed.
    DiskError,
    /// The user cancelled.
    Cancelled,
    /// The node stopped (a download resumes at the next start).
    Stopped,
    /// The peer refused the connection (nothing listens there, or it denied it).
    Refused,
    /// The peer did not answer in time.
    Timeout,
    /// The peer could not be reached (no address, no route, the connection failed).
    Unreachable,
    /// Another device than the one expected answered.
    WrongPeer,
    /// Anything else.
    #[default]
    Other,
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> FailureKind {
        match self {
            Error::Unreachable { .. } => FailureKind::Unreachable,
            Error::Timeout { .. } => FailureKind::Timeout,
            Error::Stopped => FailureKind::Stopped,
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
                FailureKind::NoSpace
            }
            Error::Io { .. } => FailureKind::DiskError,
            _ => FailureKind::Other,
        }
    }
}

/// Shorthand for results of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
