//! A running download as the host holds it: pause, resume, cancel, wait.

use std::sync::Arc;

use meshdrop_core::{TransferControls, TransferHandle};
use tokio::sync::watch;

use crate::error::MeshdropError;
use crate::ops::Ops;
use crate::types::DownloadReport;

/// A download's end, once known.
type Outcome = Option<Result<DownloadReport, MeshdropError>>;

/// A running download. Progress arrives as `TransferProgress` events with this id.
#[derive(uniffi::Object)]
pub struct Transfer {
    id: u64,
    controls: TransferControls,
    outcome: watch::Receiver<Outcome>,
    ops: Arc<Ops>,
}

impl Transfer {
    /// Wraps a core handle: a task on the runtime waits for its end, so that the host may wait
    /// any number of times.
    pub(crate) fn spawn(
        runtime: &tokio::runtime::Runtime,
        handle: TransferHandle,
        ops: Arc<Ops>,
    ) -> Arc<Self> {
        let (done, outcome) = watch::channel(None);
        let (id, controls) = (handle.id, handle.controls());
        runtime.spawn(async move {
            let result = handle.wait().await;
            done.send_replace(Some(result.map(Into::into).map_err(Into::into)));
        });
        Arc::new(Self {
            id,
            controls,
            outcome,
            ops,
        })
    }

    /// Cancels (keeping partial data) and waits for the end; used by shutdown.
    pub(crate) async fn cancel_and_wait(&self) {
        self.controls.cancel(true);
        let mut outcome = self.outcome.clone();
        let _ = outcome.wait_for(Option::is_some).await;
    }

    /// Whether the download has ended.
    pub(crate) fn ended(&self) -> bool {
        self.outcome.borrow().is_some()
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Transfer {
    /// The transfer's id, as in its events.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Stops requesting data until `resume`.
    pub fn pause(&self) {
        self.controls.pause();
    }

    /// Resumes after a pause.
    pub fn resume(&self) {
        self.controls.resume();
    }

    /// Cancels; partial data is kept for a later resume when `keep_partial`, removed otherwise.
    pub fn cancel(&self, keep_partial: bool) {
        self.controls.cancel(keep_partial);
    }

    /// Waits for the end: the report, or why it failed (`Cancelled` after `cancel`).
    pub async fn wait(&self) -> Result<DownloadReport, MeshdropError> {
        let mut outcome = self.outcome.clone();
        self.ops
            .run(async move {
                let ended = outcome.wait_for(Option::is_some).await.map_err(|_| {
                    MeshdropError::Internal {
                        reason: "the transfer task ended without a result".into(),
                    }
                })?;
                ended.clone().unwrap_or(Err(MeshdropError::Cancelled))
            })
            .await
    }
}
