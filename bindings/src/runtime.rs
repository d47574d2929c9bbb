//! The tokio runtime the core runs on: one per process, multi-threaded, created on first use.
//! Exported async functions hand their work to it and await the result; nothing blocks on it.

use std::sync::LazyLock;

use tokio::runtime::Runtime;

use crate::error::MeshdropError;

static RUNTIME: LazyLock<std::io::Result<Runtime>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("meshdrop")
        .enable_all()
        .build()
});

/// The runtime, or why it could not be created.
pub fn runtime() -> Result<&'static Runtime, MeshdropError> {
    RUNTIME.as_ref().map_err(|e| MeshdropError::Internal {
        reason: format!("cannot start the tokio runtime: {e}"),
    })
}
