//! The app's event bus, and how the capabilities' notices become events on it: each notice is
//! mapped to its event, and each download's status watch is followed to its end by a task of
//! its own (so a lagging app can never make a download miss its end: the download does not
//! read the bus).

use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};

use super::auto_fetch::Fetcher;
use crate::events::{Event, FailureKind};
use crate::messaging;
use crate::report::Report;
use crate::transfer::{self, ContentId, Status, download::Progress};

/// Events the bus holds for a subscriber that falls behind; beyond, it misses some (and is told).
const CAPACITY: usize = 4096;

/// The app's event bus. The first subscriber sees every event since the node's start.
#[derive(Clone)]
pub(crate) struct Bus {
    tx: broadcast::Sender<Event>,
    first: Arc<Mutex<Option<broadcast::Receiver<Event>>>>,
}

impl Bus {
    pub(crate) fn new() -> Self {
        let (tx, first) = broadcast::channel(CAPACITY);
        Self {
            tx,
            first: Arc::new(Mutex::new(Some(first))),
        }
    }

    /// Publishes an event (nobody listening is fine).
    pub(crate) fn emit(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// The events: from the start for the first subscriber, from now on for later ones.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        let first = self.first.lock().unwrap_or_else(|p| p.into_inner()).take();
        first.unwrap_or_else(|| self.tx.subscribe())
    }

    /// Where the transfer capability reports.
    pub(crate) fn transfers(&self) -> Report<transfer::Notice> {
        let bus = self.clone();
        Report::new(move |notice| bus.transfer_notice(notice))
    }

    /// Where messaging reports; `fetcher` considers each room attachment that arrives.
    pub(crate) fn messaging(&self, fetcher: Arc<Fetcher>) -> Report<messaging::Notice> {
        let bus = self.clone();
        Report::new(move |notice| {
            bus.emit(match notice {
                messaging::Notice::Received(message) => {
                    fetcher.arrived(&message, &bus);
                    Event::MessageReceived { message: *message }
                }
                messaging::Notice::StateChanged { id, state } => {
                    Event::MessageStateChanged { id, state }
                }
                messaging::Notice::CarryAsked {
                    from,
                    ticket,
                    for_peer,
                } => {
                    let content = ticket.content;
                    fetcher.carry(from, *ticket, for_peer, &bus);
                    Event::CarryAsked {
                        from,
                        for_peer,
                        content,
                    }
                }
            })
        })
    }

    fn transfer_notice(&self, notice: transfer::Notice) {
        use transfer::Notice as N;
        let event = match notice {
            N::Download {
                transfer,
                content,
                status,
            } => {
                tokio::spawn(self.clone().follow(transfer, content, status));
                return;
            }
            N::ShareDistributed { content } => Event::ShareDistributed { content },
            N::ShareDamaged {
                content,
                file,
                path,
                chunks,
                damage,
                repairing,
            } => Event::ShareDamaged {
                content,
                file,
                path,
                chunks,
                damage,
                repairing,
            },
            N::ShareRepaired {
                content,
                file,
                chunks,
            } => Event::ShareRepaired {
                content,
                file,
                chunks,
            },
            N::ShareRepairFailed {
                content,
                file,
                error,
            } => Event::ShareRepairFailed {
                content,
                file,
                error,
            },
            N::OfferReceived {
                offer,
                peer,
                name,
                contact,
                verification_code,
                total,
                files,
            } => Event::OfferReceived {
                offer,
                peer,
                name,
                contact,
                verification_code,
                total,
                files,
            },
            N::OfferRefused { peer, name, reason } => Event::OfferRefused { peer, name, reason },
            N::OfferExpired { offer } => Event::OfferExpired { offer },
            N::OfferAccepted {
                peer,
                content,
                files,
            } => Event::OfferAccepted {
                peer,
                content,
                files,
            },
            N::OfferDeclined {
                peer,
                content,
                reason,
            } => Event::OfferDeclined {
                peer,
                content,
                reason,
            },
            N::SendProgress {
                peer,
                content,
                done,
                total,
            } => Event::SendProgress {
                peer,
                content,
                done,
                total,
            },
        };
        self.emit(event);
    }

    /// Publishes a download's progress as it changes, then its end.
    async fn follow(self, transfer: u64, content: ContentId, mut status: watch::Receiver<Status>) {
        let mut shown: Option<Progress> = None;
        loop {
            let now = status.borrow_and_update().clone();
            match now {
                Status::Starting => {}
                Status::Running(p) => self.progress(transfer, content, p, &mut shown),
                Status::WaitingForHolder { last, tried } => {
                    shown = None;
                    self.emit(Event::TransferWaiting {
                        transfer,
                        content,
                        done: last.done,
                        total: last.total,
                        tried,
                    });
                }
                Status::Finished {
                    last,
                    bytes,
                    fetched,
                    paths,
                } => {
                    self.progress(transfer, content, last, &mut shown);
                    let end = Event::TransferFinished {
                        transfer,
                        content,
                        bytes,
                        fetched,
                        paths,
                    };
                    return self.emit(end);
                }
                Status::Failed { error, kind } => {
                    let end = Event::TransferFailed {
                        transfer,
                        content,
                        error,
                        kind,
                    };
                    return self.emit(end);
                }
            }
            if status.changed().await.is_err() {
                let error = "the download task ended without a result".into();
                let end = Event::TransferFailed {
                    transfer,
                    content,
                    error,
                    kind: FailureKind::Other,
                };
                return self.emit(end);
            }
        }
    }

    /// Publishes `p` unless it was the last progress published.
    fn progress(
        &self,
        transfer: u64,
        content: ContentId,
        p: Progress,
        shown: &mut Option<Progress>,
    ) {
        if shown.as_ref() == Some(&p) {
            return;
        }
        *shown = Some(p.clone());
        self.emit(Event::TransferProgress {
            transfer,
            content,
            done: p.done,
            total: p.total,
            received: p.received,
            rate: p.rate,
            eta_secs: p.eta_secs,
            peers: p.peers,
        });
    }
}
