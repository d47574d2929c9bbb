//! Per-device byte budgets of `meshdrop relay`, on top of libp2p's counts of reservations and
//! circuits: every byte a device moves through the relay (on the circuits it opens and on those
//! opened to it, both ways, on every connection it has to the relay) counts against its budget
//! for a window. Once the budget is spent, the device's streams fail, it is disconnected, and
//! its new connections are closed at once until the window ends.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncWrite};
use libp2p::PeerId;
use libp2p::core::muxing::{StreamMuxer, StreamMuxerBox, StreamMuxerEvent, SubstreamBox};
use tokio::sync::mpsc;

/// How much one device may move through the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceBudget {
    /// Bytes per window, both directions together.
    pub bytes: u64,
    /// The window.
    pub window: Duration,
}

impl Default for DeviceBudget {
    /// 64 GiB a day: a few trips' worth of videos, not a volunteer's whole data plan.
    fn default() -> Self {
        Self {
            bytes: 64 << 30,
            window: Duration::from_secs(24 * 3600),
        }
    }
}

/// A device's use of its budget in the current window.
struct Usage {
    since: Instant,
    bytes: u64,
    spent: bool,
}

/// Counts every device's bytes; tells the relay of each device that spends its budget.
#[derive(Clone)]
pub(super) struct Meter {
    budget: DeviceBudget,
    usage: Arc<Mutex<HashMap<PeerId, Usage>>>,
    spent: mpsc::UnboundedSender<PeerId>,
}

impl Meter {
    /// A meter for `budget`, and where the devices that spent it are told.
    pub(super) fn new(budget: DeviceBudget) -> (Self, mpsc::UnboundedReceiver<PeerId>) {
        let (spent, rx) = mpsc::unbounded_channel();
        let meter = Self {
            budget,
            usage: Arc::default(),
            spent,
        };
        (meter, rx)
    }

    /// Counts `n` bytes of `peer`; `false` once its budget for the window is spent.
    fn count(&self, peer: &PeerId, n: usize) -> bool {
        let now = Instant::now();
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let u = usage.entry(*peer).or_insert(Usage {
            since: now,
            bytes: 0,
            spent: false,
        });
        if now.duration_since(u.since) >= self.budget.window {
            (u.since, u.bytes, u.spent) = (now, 0, false);
        }
        u.bytes = u.bytes.saturating_add(n as u64);
        if u.bytes > self.budget.bytes && !u.spent {
            u.spent = true;
            let _ = self.spent.send(*peer);
        }
        !u.spent
    }

    /// Whether `peer` spent its budget for the current window.
    pub(super) fn is_spent(&self, peer: &PeerId) -> bool {
        !self.count(peer, 0)
    }

    /// Forgets the devices whose window ended (the table holds only recent devices).
    pub(super) fn sweep(&self) {
        let window = self.budget.window;
        self.usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, u| u.since.elapsed() < window);
    }

    /// Wraps a connection to `peer` so that its streams count.
    pub(super) fn wrap(&self, peer: PeerId, muxer: StreamMuxerBox) -> StreamMuxerBox {
        StreamMuxerBox::new(Counted {
            inner: muxer,
            peer,
            meter: self.clone(),
        })
    }
}

/// A connection whose streams count against its device's budget.
struct Counted {
    inner: StreamMuxerBox,
    peer: PeerId,
    meter: Meter,
}

impl Counted {
    fn stream(&self, inner: SubstreamBox) -> CountedStream {
        CountedStream {
            inner,
            peer: self.peer,
            meter: self.meter.clone(),
        }
    }
}

impl StreamMuxer for Counted {
    type Substream = CountedStream;
    type Error = io::Error;

    fn poll_inbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner)
            .poll_inbound(cx)
            .map_ok(|s| this.stream(s))
    }

    fn poll_outbound(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let this = self.get_mut();
        Pin::new(&mut this.inner)
            .poll_outbound(cx)
            .map_ok(|s| this.stream(s))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}

/// A stream whose bytes count; it fails once its device's budget is spent.
pub(super) struct CountedStream {
    inner: SubstreamBox,
    peer: PeerId,
    meter: Meter,
}

fn spent() -> io::Error {
    io::Error::other("the device spent its byte budget on this relay")
}

impl CountedStream {
    fn counted(&self, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(n)) if !self.meter.count(&self.peer, n) => Poll::Ready(Err(spent())),
            other => other,
        }
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.counted(polled)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.meter.is_spent(&this.peer) {
            return Poll::Ready(Err(spent()));
        }
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.counted(polled)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_that_spends_its_budget_is_cut_off_until_the_window_ends() {
        let (meter, mut spent) = Meter::new(DeviceBudget {
            bytes: 1000,
            window: Duration::from_millis(200),
        });
        let (a, b) = (PeerId::random(), PeerId::random());
        assert!(meter.count(&a, 600));
        assert!(meter.count(&b, 900), "each device has its own budget");
        assert!(!meter.count(&a, 600), "over the budget");
        assert_eq!(spent.try_recv().ok(), Some(a));
        assert!(meter.is_spent(&a) && !meter.is_spent(&b));
        assert!(spent.try_recv().is_err(), "told once");
        std::thread::sleep(Duration::from_millis(250)); // the window passes (a clock, not a sync)
        assert!(!meter.is_spent(&a), "a new window");
        meter.sweep();
        assert!(meter.count(&a, 100));
    }
}
