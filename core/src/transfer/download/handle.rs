//! A running download as the app holds it: pause, resume, cancel, a watch of its status
//! (progress, then its end), and the wait for its report.

use std::path::PathBuf;
use std::sync::Arc;

use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{DownloadError, DownloadReport, DownloadSpec};
use crate::error::FailureKind;
use crate::transfer::service::Shared;

/// Running, paused or cancelled (keeping or removing partial data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Fetching.
    Run,
    /// Not requesting anything until resumed.
    Pause,
    /// Stop; keep the partial data for a later resume when `keep`.
    Cancel {
        /// Keep partial data.
        keep: bool,
    },
}

/// Bytes received from one peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerBytes {
    /// The peer.
    pub peer: PeerId,
    /// Bytes.
    pub bytes: u64,
}

/// How far a download is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Bytes verified and on disk, including those from earlier runs.
    pub done: u64,
    /// Bytes of the selected files.
    pub total: u64,
    /// Bytes received from the network in this run.
    pub received: u64,
    /// Average receive rate of this run, bytes per second.
    pub rate: u64,
    /// Estimated seconds left.
    pub eta_secs: Option<u64>,
    /// Bytes received from each provider in this run, largest first.
    pub peers: Vec<PeerBytes>,
}

/// Where a download is: starting, moving (at most a few updates a second), or ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Reaching providers, fetching the manifest, checking what is on disk.
    Starting,
    /// Fetching.
    Running(Progress),
    /// No peer that holds the share is in reach: waiting for one to appear (a provider coming
    /// back, a friend who fetched it connecting), asking every peer that connects.
    WaitingForHolder {
        /// How far the download is.
        last: Progress,
        /// Who was asked, and what each said (at most a few).
        tried: Vec<String>,
    },
    /// Every selected file verified and in place.
    Finished {
        /// The last progress.
        last: Progress,
        /// Bytes of the selected files.
        bytes: u64,
        /// Bytes received in this run.
        fetched: u64,
        /// Where each selected file now is.
        paths: Vec<PathBuf>,
    },
    /// Ended with an error (partial data kept unless cancelled with removal).
    Failed {
        /// Why.
        error: String,
        /// What kind of failure.
        kind: FailureKind,
    },
}

/// A running download: pause, resume, cancel, follow its status or wait for its end.
pub struct TransferHandle {
    /// The transfer's id, as in its events.
    pub id: u64,
    controls: TransferControls,
    status: watch::Receiver<Status>,
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

/// Starts a download task with id `id`; its status ends as `Finished` or `Failed`.
pub(crate) fn spawn(s: &Shared, id: u64, spec: DownloadSpec) -> TransferHandle {
    let (control, control_rx) = watch::channel(Control::Run);
    let (status_tx, status) = watch::channel(Status::Starting);
    let status_tx = Arc::new(status_tx);
    let s = s.clone();
    let task = tokio::spawn(async move {
        let result = super::run(s, spec, control_rx, status_tx.clone()).await;
        status_tx.send_modify(|status| *status = ended(status, &result));
        result
    });
    TransferHandle {
        id,
        controls: TransferControls(Arc::new(control)),
        status,
        task,
    }
}

/// The status a download ends in, from the last one and its result.
fn ended(last: &Status, result: &Result<DownloadReport, DownloadError>) -> Status {
    match result {
        Ok(report) => Status::Finished {
            last: match last {
                Status::Running(p) | Status::WaitingForHolder { last: p, .. } => p.clone(),
                _ => Progress {
                    done: report.bytes,
                    total: report.bytes,
                    ..Progress::default()
                },
            },
            bytes: report.bytes,
            fetched: report.fetched,
            paths: report.paths.clone(),
        },
        Err(e) => Status::Failed {
            error: e.to_string(),
            kind: e.kind(),
        },
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

    /// The download's status, now and as it changes (never misses the end).
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Waits for the end of the download.
    pub async fn wait(self) -> Result<DownloadReport, DownloadError> {
        self.task.await.unwrap_or(Err(DownloadError::Cancelled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::ContentId;

    #[test]
    fn a_finished_download_keeps_its_last_progress_and_a_failure_says_why() {
        let running = Progress {
            done: 10,
            total: 10,
            received: 4,
            ..Progress::default()
        };
        let report = DownloadReport {
            content: ContentId([0; 32]),
            files: 1,
            bytes: 10,
            fetched: 4,
            resumed: 6,
            skipped: 0,
            rejected: 0,
            peers: Vec::new(),
            secs: 0.1,
            renamed: Vec::new(),
            notes: Vec::new(),
            paths: vec![PathBuf::from("/d/a.bin")],
        };
        assert_eq!(
            ended(&Status::Running(running.clone()), &Ok(report.clone())),
            Status::Finished {
                last: running,
                bytes: 10,
                fetched: 4,
                paths: vec![PathBuf::from("/d/a.bin")],
            }
        );
        // Nothing was fetched (every file in place): the last progress says all is done.
        let Status::Finished { last, .. } = ended(&Status::Starting, &Ok(report)) else {
            panic!("finished")
        };
        assert_eq!((last.done, last.total), (10, 10));
        assert_eq!(
            ended(&Status::Starting, &Err(DownloadError::Cancelled)),
            Status::Failed {
                error: "cancelled".into(),
                kind: FailureKind::Cancelled,
            }
        );
    }
}
