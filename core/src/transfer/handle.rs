//! A running download as the app holds it: pause, resume, cancel, wait.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::download::{self, Control, Ctx, DownloadError, DownloadReport, DownloadSpec};
use crate::events::Event;

/// A running download: pause, resume, cancel, or wait for its end.
pub struct TransferHandle {
    /// The transfer's id, as in its events.
    pub id: u64,
    controls: TransferControls,
    task: JoinHandle<Result<DownloadReport, DownloadError>>,
}

/// Pause, resume and cancel of a running download, cheap to clone and share (for instance with a
/// UI while another task waits for the end). The download is cancelled, keeping its partial data,
/// once the handle and every clone of these are gone.
#[derive(Clone)]
pub struct TransferControls(Arc<watch::Sender<Control>>);

impl TransferControls {
    /// Stops requesting chunks until [`TransferControls::resume`].
    pub fn pause(&self) {
        let _ = self.0.send(Control::Pause);
    }

    /// Resumes after a pause.
    pub fn resume(&self) {
        let _ = self.0.send(Control::Run);
    }

    /// Cancels; partial data is kept for a later resume when `keep_partial`, removed otherwise.
    pub fn cancel(&self, keep_partial: bool) {
        let _ = self.0.send(Control::Cancel { keep: keep_partial });
    }
}

/// Starts a download task; its end is also announced as an event.
pub fn spawn(ctx: &Ctx, spec: DownloadSpec) -> TransferHandle {
    let id = ctx.next_transfer.fetch_add(1, Ordering::Relaxed);
    let (control, rx) = watch::channel(Control::Run);
    let ctx = ctx.clone();
    let content = spec.ticket.content;
    let task = tokio::spawn(async move {
        let events = ctx.events.clone();
        let result = download::run(ctx, id, spec, rx).await;
        let _ = events.send(match &result {
            Ok(r) => Event::TransferFinished {
                transfer: id,
                content,
                bytes: r.bytes,
                fetched: r.fetched,
            },
            Err(e) => Event::TransferFailed {
                transfer: id,
                content,
                error: e.to_string(),
            },
        });
        result
    });
    TransferHandle {
        id,
        controls: TransferControls(Arc::new(control)),
        task,
    }
}

impl TransferHandle {
    /// Stops requesting chunks until [`TransferHandle::resume`].
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

    /// Pause, resume and cancel, to share while [`TransferHandle::wait`] runs elsewhere.
    pub fn controls(&self) -> TransferControls {
        self.controls.clone()
    }

    /// Waits for the end of the download.
    pub async fn wait(self) -> Result<DownloadReport, DownloadError> {
        self.task.await.unwrap_or(Err(DownloadError::Cancelled))
    }
}
