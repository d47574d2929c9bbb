//! The one error of the bindings, with fields a caller can act on, mapped from core errors.

use meshdrop_core::transfer::TicketError;
use meshdrop_core::{DownloadError, Error};

/// What went wrong, by what a caller can do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum MeshdropError {
    /// The ticket cannot be read, or the share it names does not match it.
    #[error("invalid ticket: {reason}")]
    InvalidTicket {
        /// Why.
        reason: String,
    },
    /// An argument (peer id, address, IP, DNS-SD record) is not valid.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// Why.
        reason: String,
    },
    /// Something named by the caller (an offer, a file) does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The destination lacks space.
    #[error("not enough free space in {path}: {needed} bytes needed, {available} available")]
    NoSpace {
        /// The destination.
        path: String,
        /// Bytes still to write.
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// No peer could be reached (or none had the share).
    #[error("peer unreachable: {reason}")]
    PeerUnreachable {
        /// Why.
        reason: String,
    },
    /// The operation was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// Reading or writing a file or folder failed.
    #[error("{path}: {reason}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        reason: String,
    },
    /// Anything else (the message says what); the node may have stopped.
    #[error("{reason}")]
    Internal {
        /// What happened.
        reason: String,
    },
}

impl From<Error> for MeshdropError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidAddress { .. } | Error::Message(_) => Self::InvalidInput {
                reason: e.to_string(),
            },
            Error::Unreachable { reason } => Self::PeerUnreachable { reason },
            Error::Timeout { .. } => Self::PeerUnreachable {
                reason: e.to_string(),
            },
            Error::NotFound { what } => Self::NotFound { what },
            Error::DataDir { path, reason } => Self::Io {
                path: path.display().to_string(),
                reason,
            },
            Error::Io { path, source } => Self::Io {
                path: path.display().to_string(),
                reason: source.to_string(),
            },
            Error::Share(reason) => Self::Io {
                path: String::new(),
                reason,
            },
            other => Self::Internal {
                reason: other.to_string(),
            },
        }
    }
}

impl From<DownloadError> for MeshdropError {
    fn from(e: DownloadError) -> Self {
        match e {
            DownloadError::NoSpace {
                path,
                needed,
                available,
            } => Self::NoSpace {
                path: path.display().to_string(),
                needed,
                available,
            },
            DownloadError::NoProvider(reason) | DownloadError::ProvidersFailed(reason) => {
                Self::PeerUnreachable { reason }
            }
            DownloadError::Manifest(_) => Self::InvalidTicket {
                reason: e.to_string(),
            },
            DownloadError::Io { path, source } => Self::Io {
                path: path.display().to_string(),
                reason: source.to_string(),
            },
            DownloadError::Exists { ref path } => Self::Io {
                path: path.display().to_string(),
                reason: e.to_string(),
            },
            DownloadError::Cancelled => Self::Cancelled,
            DownloadError::Node(e) => e.into(),
            other => Self::Internal {
                reason: other.to_string(),
            },
        }
    }
}

impl From<TicketError> for MeshdropError {
    fn from(e: TicketError) -> Self {
        Self::InvalidTicket {
            reason: e.to_string(),
        }
    }
}

/// An invalid argument, with what was given.
pub(crate) fn invalid(what: &str, input: &str, e: impl std::fmt::Display) -> MeshdropError {
    MeshdropError::InvalidInput {
        reason: format!("{what} {input:?}: {e}"),
    }
}
