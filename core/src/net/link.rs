//! Links: byte streams to nearby devices that the host hands the core (Wi-Fi Aware, AWDL,
//! Bluetooth L2CAP, a Unix socket, any pipe), made a libp2p transport. A link gets the same
//! Noise + Yamux upgrade as TCP, so the peer id is authenticated exactly as on the LAN and every
//! protocol works unchanged.
//!
//! Each link is numbered and addressed `/memory/<n>` inside this node only (it is never
//! advertised: the link listener reports no address). An outbound link is dialled at its
//! address; an inbound one arrives on the link listener. The bytes through each link are
//! counted, so an idle link can be closed (links cost battery).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures::future::{Ready, ready};
use futures::{AsyncRead, AsyncWrite};
use libp2p::core::transport::{DialOpts, ListenerId, Transport, TransportError, TransportEvent};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// How long a link may take to become a connection (the Noise and Yamux handshakes).
pub const LINK_TIMEOUT: Duration = Duration::from_secs(25);
/// Links open (or opening) at once; a host handing more gets an error until one closes.
pub const MAX_LINKS: usize = 32;

/// A byte stream a link carries (the host's socket, pipe or channel).
pub trait LinkIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> LinkIo for T {}

/// Which side of a link starts the handshake: the host that opened the link dials
/// (`Outbound`), the one that accepted it listens (`Inbound`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkDirection {
    /// This device opened the link.
    Outbound,
    /// The other device opened it.
    Inbound,
}

/// A link that became a connection.
#[derive(Debug)]
pub struct Link {
    /// The peer at the other end, authenticated by the handshake.
    pub peer: PeerId,
    pub(super) closed: oneshot::Receiver<()>,
}

impl Link {
    /// Waits until the link's connection is closed (the stream broke, the peer left, the link
    /// idled, or a better path replaced it).
    pub async fn closed(self) {
        let _ = self.closed.await;
    }
}

/// The address of the link listener (never reported, never advertised).
pub(super) const LISTEN_ID: u64 = 0;

/// The address of link `n`.
pub(super) fn link_addr(n: u64) -> Multiaddr {
    Multiaddr::empty().with(Protocol::Memory(n))
}

/// The link number of an address, when it is a link's.
pub fn link_of(addr: &Multiaddr) -> Option<u64> {
    match addr.iter().next() {
        Some(Protocol::Memory(n)) if n != LISTEN_ID => Some(n),
        _ => None,
    }
}

/// A link's stream, counting the bytes through it.
pub(super) struct Counted {
    io: Box<dyn LinkIo>,
    bytes: Arc<AtomicU64>,
    /// Dropped with the connection: tells [`Link::closed`].
    _closed: oneshot::Sender<()>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let read = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = read {
            self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        read
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_close(cx)
    }
}

/// A link known to the node.
pub(super) struct LinkInfo {
    /// What carries it (`wifi-aware`, `awdl`, `bluetooth`, `unix`…), as the host says.
    pub(super) medium: String,
    /// Bytes through it so far.
    pub(super) bytes: Arc<AtomicU64>,
}

#[derive(Default)]
struct State {
    /// Links waiting: to be dialled (outbound) or accepted (inbound, once its waiter is set).
    waiting: HashMap<u64, Counted>,
    /// Inbound links accepted, for the listener to hand out.
    inbound: VecDeque<(u64, Counted)>,
    /// Every link still known, by number.
    info: HashMap<u64, LinkInfo>,
    listener: Option<ListenerId>,
    waker: Option<Waker>,
}

/// The links handed over by the host, shared by the node (which adds them) and the transport.
#[derive(Default)]
pub(super) struct Links {
    state: Mutex<State>,
    next: AtomicU64,
}

impl Links {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a link; returns its number (dial `/memory/<n>` when outbound, [`Self::accept`]
    /// it when inbound) and what tells when its connection closes.
    pub(super) fn add(
        &self,
        io: Box<dyn LinkIo>,
        medium: &str,
    ) -> Result<(u64, oneshot::Receiver<()>)> {
        let mut state = self.lock();
        if state.info.len() >= MAX_LINKS {
            return Err(Error::Network {
                reason: format!("{MAX_LINKS} links are open already; close one first"),
            });
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let bytes = Arc::new(AtomicU64::new(0));
        let (tx, closed) = oneshot::channel();
        let counted = Counted {
            io,
            bytes: bytes.clone(),
            _closed: tx,
        };
        let medium = medium.to_string();
        state.info.insert(n, LinkInfo { medium, bytes });
        state.waiting.insert(n, counted);
        Ok((n, closed))
    }

    /// Hands inbound link `n` to the listener.
    pub(super) fn accept(&self, n: u64) {
        let mut state = self.lock();
        if let Some(counted) = state.waiting.remove(&n) {
            state.inbound.push_back((n, counted));
            if let Some(waker) = state.waker.take() {
                waker.wake();
            }
        }
    }

    /// The medium of link `n` and the bytes through it so far.
    pub(super) fn info(&self, n: u64) -> Option<(String, u64)> {
        let state = self.lock();
        let info = state.info.get(&n)?;
        Some((info.medium.clone(), info.bytes.load(Ordering::Relaxed)))
    }

    /// Forgets link `n` (its connection closed or never came up).
    pub(super) fn forget(&self, n: u64) {
        let mut state = self.lock();
        state.info.remove(&n);
        state.waiting.remove(&n);
        state.inbound.retain(|(m, _)| *m != n);
    }
}

/// A link that carried less than this over [`LINK_IDLE`] is idle (pings alone carry far less).
const LINK_IDLE_BYTES: u64 = 64 * 1024;
/// How long a link may stay idle before it is closed: links cost battery.
const LINK_IDLE: Duration = Duration::from_secs(300);

/// How much a link's connection is used, looked at now and then.
pub(super) struct LinkUse {
    /// The link's number.
    pub(super) link: u64,
    /// The peer at its other end.
    pub(super) peer: PeerId,
    /// Whether the smaller of the two peer ids dialled it.
    pub(super) by_smaller: bool,
    bytes: u64,
    idle_since: Option<tokio::time::Instant>,
}

impl LinkUse {
    /// Link `link` to `peer`, with `bytes` through it so far.
    pub(super) fn new(link: u64, bytes: u64, peer: PeerId, by_smaller: bool) -> Self {
        Self {
            link,
            peer,
            by_smaller,
            bytes,
            idle_since: None,
        }
    }

    /// Whether the link, with `bytes` through it by `now`, has been idle for [`LINK_IDLE`].
    pub(super) fn idle(&mut self, bytes: u64, now: tokio::time::Instant) -> bool {
        if bytes.saturating_sub(self.bytes) >= LINK_IDLE_BYTES {
            self.bytes = bytes;
            self.idle_since = Some(now);
            return false;
        }
        now.duration_since(*self.idle_since.get_or_insert(now)) >= LINK_IDLE
    }
}

/// The raw link transport: hands out the host's streams as connections to upgrade.
pub(super) struct LinkTransport {
    pub(super) links: Arc<Links>,
}

impl Transport for LinkTransport {
    type Output = Counted;
    type Error = io::Error;
    type ListenerUpgrade = Ready<Result<Counted, io::Error>>;
    type Dial = Ready<Result<Counted, io::Error>>;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<io::Error>> {
        match addr.iter().next() {
            Some(Protocol::Memory(LISTEN_ID)) => {
                self.links.lock().listener = Some(id);
                Ok(())
            }
            _ => Err(TransportError::MultiaddrNotSupported(addr)),
        }
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        let mut state = self.links.lock();
        let ours = state.listener == Some(id);
        if ours {
            state.listener = None;
        }
        ours
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<io::Error>> {
        let Some(n) = link_of(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        match self.links.lock().waiting.remove(&n) {
            Some(io) => Ok(ready(Ok(io))),
            None => Err(TransportError::Other(io::Error::new(
                io::ErrorKind::NotConnected,
                format!("no link {n} waits to be dialled"),
            ))),
        }
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        let mut state = self.links.lock();
        let Some(listener_id) = state.listener else {
            state.waker = Some(cx.waker().clone());
            return Poll::Pending;
        };
        match state.inbound.pop_front() {
            Some((n, io)) => Poll::Ready(TransportEvent::Incoming {
                listener_id,
                upgrade: ready(Ok(io)),
                local_addr: link_addr(LISTEN_ID),
                send_back_addr: link_addr(n),
            }),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_addressed_inside_the_node_only() {
        assert_eq!(link_of(&link_addr(7)), Some(7));
        assert_eq!(
            link_of(&link_addr(LISTEN_ID)),
            None,
            "the listener is no link"
        );
        let tcp: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        assert_eq!(link_of(&tcp), None);
    }

    #[test]
    fn a_link_that_carries_next_to_nothing_for_five_minutes_is_idle() {
        let t0 = tokio::time::Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        let mut using = LinkUse::new(1, 1000, PeerId::random(), true);
        assert!(!using.idle(1000, at(0)));
        assert!(!using.idle(1500, at(299)), "pings alone");
        assert!(using.idle(2000, at(300)), "idle for five minutes");
        // A transfer wakes it up: the idle clock starts again.
        assert!(!using.idle(2000 + LINK_IDLE_BYTES, at(301)));
        assert!(!using.idle(2000 + LINK_IDLE_BYTES, at(600)));
        assert!(using.idle(2000 + LINK_IDLE_BYTES, at(601)));
    }

    #[tokio::test]
    async fn outbound_links_are_dialled_once_and_inbound_ones_arrive_on_the_listener() {
        use futures::StreamExt;
        let links = Arc::new(Links::default());
        let mut transport = LinkTransport {
            links: links.clone(),
        };
        let (a, _b) = tokio::io::duplex(64);
        let io = Box::new(tokio_util::compat::TokioAsyncReadCompatExt::compat(a));
        let (n, _closed) = links.add(io, "pipe").unwrap();
        let opts = DialOpts {
            role: libp2p::core::Endpoint::Dialer,
            port_use: Default::default(),
        };
        assert!(transport.dial(link_addr(n), opts).is_ok());
        assert!(transport.dial(link_addr(n), opts).is_err(), "dialled once");
        assert_eq!(links.info(n).map(|(m, _)| m), Some("pipe".to_string()));

        let listener = ListenerId::next();
        transport.listen_on(listener, link_addr(LISTEN_ID)).unwrap();
        let (c, _d) = tokio::io::duplex(64);
        let io = Box::new(tokio_util::compat::TokioAsyncReadCompatExt::compat(c));
        let (m, closed) = links.add(io, "bluetooth").unwrap();
        links.accept(m);
        let mut transport = Box::pin(transport);
        let event = futures::stream::poll_fn(|cx| transport.as_mut().poll(cx).map(Some))
            .next()
            .await;
        match event {
            Some(TransportEvent::Incoming {
                listener_id,
                send_back_addr,
                upgrade,
                ..
            }) => {
                assert_eq!((listener_id, link_of(&send_back_addr)), (listener, Some(m)));
                drop(upgrade);
            }
            _ => panic!("an incoming link"),
        }
        assert!(
            closed.await.is_err(),
            "dropping the stream tells the link's owner"
        );
        links.forget(m);
        assert!(links.info(m).is_none());
    }
}
