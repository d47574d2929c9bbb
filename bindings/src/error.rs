//! The one error of the bindings, with fields a caller can act on, mapped from core errors.

use meshdrop_core::transfer::{ManifestError, TicketError};
use meshdrop_core::{DownloadError, Error, ShareError};

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
    /// Files cannot be shared as they are: `problem` says why, `path` which one (empty when the
    /// share as a whole is at fault).
    #[error("cannot share: {reason}")]
    CannotShare {
        /// What is wrong.
        problem: ShareProblem,
        /// The file or folder.
        path: String,
        /// The whole explanation.
        reason: String,
    },
    /// Another node already runs on this data dir (in this process or another).
    #[error("another meshdrop node is already running on data dir {path}")]
    AlreadyRunning {
        /// The data dir.
        path: String,
    },
    /// The link ended (its socket closed, or the node closed it).
    #[error("the link is closed")]
    LinkClosed,
    /// Anything else (the message says what); the node may have stopped.
    #[error("{reason}")]
    Internal {
        /// What happened.
        reason: String,
    },
}

impl From<meshdrop_core::net::PipeClosed> for MeshdropError {
    fn from(_: meshdrop_core::net::PipeClosed) -> Self {
        Self::LinkClosed
    }
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
            Error::AlreadyRunning { path } => Self::AlreadyRunning {
                path: path.display().to_string(),
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
            DownloadError::NoGoodCopy(_) => Self::PeerUnreachable {
                reason: e.to_string(),
            },
            DownloadError::Dest(ref d) => Self::Io {
                path: match d {
                    meshdrop_core::transfer::dest::DestError::Link { path }
                    | meshdrop_core::transfer::dest::DestError::NotAFolder { path }
                    | meshdrop_core::transfer::dest::DestError::Io { path, .. } => {
                        path.display().to_string()
                    }
                },
                reason: e.to_string(),
            },
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

/// Why files cannot be shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ShareProblem {
    /// A file or folder cannot be read.
    Unreadable,
    /// A name is not valid UTF-8.
    NonUtf8Name,
    /// A name other platforms cannot hold.
    UnportableName,
    /// A path has no name of its own (such as `/`).
    NoName,
    /// A file changed while it was read: try again.
    FileChanged,
    /// Nothing to share.
    Empty,
    /// The share is too large or has too many entries.
    TooLarge,
    /// Something else is wrong with the share as a whole.
    Other,
}

impl From<ShareError> for MeshdropError {
    fn from(e: ShareError) -> Self {
        let reason = e.to_string();
        let (problem, path) = match e {
            ShareError::Node(e) => return e.into(),
            ShareError::Files(m) => match m {
                ManifestError::Io { path, .. } => (ShareProblem::Unreadable, Some(path)),
                ManifestError::NonUtf8Name { path } => (ShareProblem::NonUtf8Name, Some(path)),
                ManifestError::UnportableName { path, .. } => {
                    (ShareProblem::UnportableName, Some(path))
                }
                ManifestError::NoName { path } => (ShareProblem::NoName, Some(path)),
                ManifestError::FileChanged { path, .. } => (ShareProblem::FileChanged, Some(path)),
                ManifestError::Empty => (ShareProblem::Empty, None),
                ManifestError::TooLarge { .. }
                | ManifestError::TooManyEntries { .. }
                | ManifestError::SizeOverflow => (ShareProblem::TooLarge, None),
                _ => (ShareProblem::Other, None),
            },
        };
        Self::CannotShare {
            problem,
            path: path.map(|p| p.display().to_string()).unwrap_or_default(),
            reason,
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
