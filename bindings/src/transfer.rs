//! A running download as the host holds it: pause, resume, cancel, follow its status, wait.

use std::sync::Arc;

use meshdrop_core::transfer::Status;
use meshdrop_core::{TransferControls, TransferHandle};
use tokio::sync::{Mutex, watch};

use crate::error::MeshdropError;
use crate::ops::Ops;
use crate::types::{DownloadReport, FailureKind, paths};

/// A download's end, once known.
type Outcome = Option<Result<DownloadReport, MeshdropError>>;

/// A running download. Progress arrives as `TransferProgress` events with this id, and from
/// [`Transfer::next_status`].
#[derive(uniffi::Object)]
pub struct Transfer {
    id: u64,
    controls: TransferControls,
    outcome: watch::Receiver<Outcome>,
    statuses: Mutex<Statuses>,
    ops: Arc<Ops>,
}

/// The core's status watch, read by `next_status`: the status now first, then each change,
/// then nothing once the end was told.
struct Statuses {
    watch: watch::Receiver<Status>,
    started: bool,
    ended: bool,
}

/// Where a download is.
#[derive(Clone, Debug, PartialEq, uniffi::Enum)]
pub enum TransferStatus {
    /// Reaching providers, fetching the file list, checking what is on disk.
    Starting,
    /// Fetching.
    Running {
        /// Bytes verified and on disk, including those from earlier runs.
        done: u64,
        /// Bytes of the selected files.
        total: u64,
        /// Receive rate, bytes per second.
        rate: u64,
        /// Estimated seconds left.
        eta_secs: Option<u64>,
    },
    /// No one who has the share is in reach: waiting for someone who has it (it goes on by
    /// itself when one connects).
    WaitingForHolder {
        /// Bytes verified and on disk.
        done: u64,
        /// Bytes of the selected files (0 before anyone answered).
        total: u64,
        /// Who was asked, and what each said.
        tried: Vec<String>,
    },
    /// Every selected file verified and in place.
    Finished {
        /// Bytes of the selected files.
        bytes: u64,
        /// Bytes received in this run.
        fetched: u64,
        /// Where each selected file now is.
        paths: Vec<String>,
    },
    /// Ended with an error.
    Failed {
        /// Why.
        error: String,
        /// What kind of failure.
        kind: FailureKind,
    },
}

impl From<Status> for TransferStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Starting => Self::Starting,
            Status::Running(p) => Self::Running {
                done: p.done,
                total: p.total,
                rate: p.rate,
                eta_secs: p.eta_secs,
            },
            Status::WaitingForHolder { last, tried } => Self::WaitingForHolder {
                done: last.done,
                total: last.total,
                tried,
            },
            Status::Finished {
                bytes,
                fetched,
                paths: files,
                ..
            } => Self::Finished {
                bytes,
                fetched,
                paths: paths(&files),
            },
            Status::Failed { error, kind } => Self::Failed {
                error,
                kind: kind.into(),
            },
        }
    }
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
        let statuses = Mutex::new(Statuses {
            watch: handle.status(),
            started: false,
            ended: false,
        });
        runtime.spawn(async move {
            let result = handle.wait().await;
            done.send_replace(Some(result.map(Into::into).map_err(Into::into)));
        });
        Arc::new(Self {
            id,
            controls,
            outcome,
            statuses,
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

    /// The download's status: the first call returns it now, each later one waits for it to
    /// change (at most a few times a second; a host too slow sees the latest), and after the end
    /// (`Finished` or `Failed`) was returned, `None`.
    pub async fn next_status(&self) -> Option<TransferStatus> {
        let mut s = self.statuses.lock().await;
        if s.ended {
            return None;
        }
        if s.started && s.watch.changed().await.is_err() {
            // The download's task ended without telling its end (it always tells it first).
            s.ended = true;
            return None;
        }
        s.started = true;
        let now = s.watch.borrow_and_update().clone();
        s.ended = matches!(now, Status::Finished { .. } | Status::Failed { .. });
        Some(now.into())
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
