//! Files the host opens on demand (Android content URIs, iOS security-scoped URLs): the host's
//! [`HostFiles`], which the core reads through to hash and serve them, never copying them.

use std::io;
use std::sync::Arc;

use crate::error::MeshdropError;
use crate::node::Node;
use crate::types::{SendOutcome, parse};

/// Files the host opens on demand. The core calls it from its blocking threads (never the
/// host's main thread), from several at once: each call may block while the host reads.
#[uniffi::export(foreign)]
pub trait HostFiles: Send + Sync {
    /// How many files.
    fn count(&self) -> u32;
    /// File `file`'s name in the share (its display name: a single name, no folder).
    fn name(&self, file: u32) -> Result<String, HostFileError>;
    /// File `file`'s size in bytes now.
    fn size(&self, file: u32) -> Result<u64, HostFileError>;
    /// Up to `len` bytes of file `file` from `offset`: fewer only at its end.
    fn read(&self, file: u32, offset: u64, len: u32) -> Result<Vec<u8>, HostFileError>;
}

/// Why the host cannot read one of its files.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum HostFileError {
    /// The file cannot be opened or read (gone, permission revoked…).
    #[error("{reason}")]
    Unreadable {
        /// Why.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for HostFileError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Unreadable { reason: e.reason }
    }
}

struct Source(Arc<dyn HostFiles>);

fn io_error(e: HostFileError) -> io::Error {
    io::Error::other(e.to_string())
}

impl meshdrop_core::FileSource for Source {
    fn count(&self) -> usize {
        self.0.count() as usize
    }
    fn name(&self, file: usize) -> io::Result<String> {
        self.0.name(file as u32).map_err(io_error)
    }
    fn size(&self, file: usize) -> io::Result<u64> {
        self.0.size(file as u32).map_err(io_error)
    }
    fn read(&self, file: usize, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.0.read(file as u32, offset, len).map_err(io_error)
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Node {
    /// Shares the host's files without copying them (read through `files` while this run lasts);
    /// returns the ticket to give to others. After a restart the share is listed unavailable
    /// until the host shares the same files again.
    pub async fn share_host_files(
        &self,
        files: Arc<dyn HostFiles>,
    ) -> Result<String, MeshdropError> {
        let (core, source) = (self.core.clone(), Arc::new(Source(files)));
        let ticket = self
            .ops
            .run(async move { Ok(core.share_source(source).await?) });
        Ok(ticket.await?.to_string())
    }

    /// Offers the host's files to a nearby peer without copying them, and follows the offer to
    /// its end.
    pub async fn send_host_files(
        &self,
        peer_id: String,
        files: Arc<dyn HostFiles>,
    ) -> Result<SendOutcome, MeshdropError> {
        let peer = parse("peer id", &peer_id)?;
        let (core, source) = (self.core.clone(), Arc::new(Source(files)));
        let outcome = self
            .ops
            .run(async move { Ok(core.send_source(peer, source).await?) });
        Ok(outcome.await?.into())
    }
}
