//! A running download as the host holds it: pause, resume, cancel, wait.

use std::sync::Arc;

use meshdrop_core::{Event, TransferHandle};
use tokio::sync::{broadcast, mpsc, watch};

use crate::error::MeshdropError;
use crate::ops::Ops;
use crate::types::DownloadReport;

/// A download's end, once known.
type Outcome = Option<Result<DownloadReport, MeshdropError>>;

/// What the host asks of a running download.
#[derive(Clone, Copy)]
enum Control {
    Pause,
    Resume,
    Cancel { keep_partial: bool },
}

/// A running download. Progress arrives as `TransferProgress` events with this id.
#[derive(uniffi::Object)]
pub struct Transfer {
    id: u64,
    control: mpsc::UnboundedSender<Control>,
    outcome: watch::Receiver<Outcome>,
    ops: Arc<Ops>,
}

impl Transfer {
    /// Wraps a core handle: a task on the runtime owns it, applies the host's requests and takes
    /// its result when the core announces its end. `events` must be subscribed before the
    /// download started, so that the end cannot be missed.
    pub(crate) fn spawn(
        runtime: &tokio::runtime::Runtime,
        handle: TransferHandle,
        events: broadcast::Receiver<Event>,
        ops: Arc<Ops>,
    ) -> Arc<Self> {
        let (control, control_rx) = mpsc::unbounded_channel();
        let (done, outcome) = watch::channel(None);
        let id = handle.id;
        runtime.spawn(async move {
            let result = own(handle, events, control_rx).await;
            done.send_replace(Some(result.map(Into::into).map_err(Into::into)));
        });
        Arc::new(Self {
            id,
            control,
            outcome,
            ops,
        })
    }

    /// Cancels (keeping partial data) and waits for the end; used by shutdown.
    pub(crate) async fn cancel_and_wait(&self) {
        self.cancel(true);
        let mut outcome = self.outcome.clone();
        let _ = outcome.wait_for(Option::is_some).await;
    }

    /// Whether the download has ended.
    pub(crate) fn ended(&self) -> bool {
        self.outcome.borrow().is_some()
    }
}

/// Owns the core handle until the download ends, then returns its result.
async fn own(
    handle: TransferHandle,
    mut events: broadcast::Receiver<Event>,
    mut control: mpsc::UnboundedReceiver<Control>,
) -> Result<meshdrop_core::DownloadReport, meshdrop_core::DownloadError> {
    loop {
        tokio::select! {
            Some(c) = control.recv() => match c {
                Control::Pause => handle.pause(),
                Control::Resume => handle.resume(),
                Control::Cancel { keep_partial } => handle.cancel(keep_partial),
            },
            event = events.recv() => match event {
                Ok(Event::TransferFinished { transfer, .. } | Event::TransferFailed { transfer, .. })
                    if transfer == handle.id => break,
                Ok(_) => {}
                // The end may be among the missed events: wait for it without control.
                Err(_) => break,
            },
        }
    }
    handle.wait().await
}

#[uniffi::export(async_runtime = "tokio")]
impl Transfer {
    /// The transfer's id, as in its events.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Stops requesting data until `resume`.
    pub fn pause(&self) {
        let _ = self.control.send(Control::Pause);
    }

    /// Resumes after a pause.
    pub fn resume(&self) {
        let _ = self.control.send(Control::Resume);
    }

    /// Cancels; partial data is kept for a later resume when `keep_partial`, removed otherwise.
    pub fn cancel(&self, keep_partial: bool) {
        let _ = self.control.send(Control::Cancel { keep_partial });
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
