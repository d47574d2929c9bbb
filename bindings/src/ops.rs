//! The async calls in flight on a node, so that shutdown can wait for every one to end.

use std::future::Future;
use std::sync::Mutex;

use tokio::sync::RwLock;
use tokio::task::AbortHandle;

use crate::error::MeshdropError;
use crate::runtime::runtime;

/// Async calls of one node: each runs as a task on the runtime while holding a read lock of
/// `gate`; shutdown aborts what still runs and takes the write lock, which it gets only once the
/// host has received the result of every call.
#[derive(Default)]
pub(crate) struct Ops {
    gate: RwLock<()>,
    running: Mutex<Vec<AbortHandle>>,
}

impl Ops {
    /// Runs `work` on the runtime and returns its result; `Cancelled` when shutdown aborted it.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, MeshdropError>
    where
        F: Future<Output = Result<T, MeshdropError>> + Send + 'static,
        T: Send + 'static,
    {
        let _open = self.gate.read().await;
        let task = runtime()?.spawn(work);
        {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            running.retain(|h| !h.is_finished());
            running.push(task.abort_handle());
        }
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Err(MeshdropError::Cancelled),
            Err(e) => Err(MeshdropError::Internal {
                reason: format!("task failed: {e}"),
            }),
        }
    }

    /// Aborts the calls still running and returns once the host has the result of each.
    pub(crate) async fn close(&self) {
        let running = std::mem::take(&mut *self.running.lock().unwrap_or_else(|p| p.into_inner()));
        for task in running {
            task.abort();
        }
        drop(self.gate.write().await);
    }
}
