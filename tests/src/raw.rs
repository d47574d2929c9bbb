//! A raw libp2p peer that speaks meshdrop's wire protocols by hand, rightly or wrongly on purpose:
//! the adversary of the trust tests. It listens and dials on 127.0.0.1 only, and records every
//! stream a node opens to it (what a downloader tells a stranger).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::identity::Keypair;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol, noise, ping, tcp, yamux};
use meshdrop_core::net::framing::{read_msg, write_msg};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

/// How long a raw peer waits for anything.
pub const RAW_TIMEOUT: Duration = Duration::from_secs(10);

type Dial = (Multiaddr, oneshot::Sender<Result<PeerId, String>>);

/// What a raw peer does with a stream a node opens to it: given the raw peer's own id, the
/// node's id and the stream.
pub type Handler =
    Arc<dyn Fn(PeerId, PeerId, Stream) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// Ping (a node hangs up on a peer that does not answer its pings) and hand-driven streams.
#[derive(NetworkBehaviour)]
struct Behaviour {
    ping: ping::Behaviour,
    stream: libp2p_stream::Behaviour,
}

/// A hand-driven peer.
pub struct RawPeer {
    /// Its identity.
    pub key: Keypair,
    control: libp2p_stream::Control,
    dials: mpsc::Sender<Dial>,
    /// Where it listens.
    pub addr: Multiaddr,
    /// Every byte received on the streams nodes opened to it, per stream.
    heard: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Woken when a stream opened to it ended.
    streams_ended: Arc<Notify>,
    task: JoinHandle<()>,
}

impl RawPeer {
    /// Starts a peer listening on 127.0.0.1 that accepts (and records) streams of
    /// `listen_protocols`.
    pub async fn start(listen_protocols: &[StreamProtocol]) -> Self {
        Self::start_with(listen_protocols, Vec::new()).await
    }

    /// Like [`RawPeer::start`], and answers streams of the protocols of `serve` with their
    /// handlers (a hand-made provider, say).
    pub async fn start_with(
        listen_protocols: &[StreamProtocol],
        serve: Vec<(StreamProtocol, Handler)>,
    ) -> Self {
        let loopback = "/ip4/127.0.0.1/tcp/0".parse().expect("listen address");
        Self::start_on(loopback, listen_protocols, serve).await
    }

    /// Like [`RawPeer::start_with`], listening on `listen` (inside a lab's namespace, its
    /// address there).
    pub async fn start_on(
        listen: Multiaddr,
        listen_protocols: &[StreamProtocol],
        serve: Vec<(StreamProtocol, Handler)>,
    ) -> Self {
        let key = Keypair::generate_ed25519();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.clone())
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("tcp transport")
            .with_behaviour(|_| Behaviour {
                ping: ping::Behaviour::default(),
                stream: libp2p_stream::Behaviour::new(),
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        let mut control = swarm.behaviour().stream.new_control();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let streams_ended = Arc::new(Notify::new());
        for protocol in listen_protocols {
            let mut incoming = control.accept(protocol.clone()).expect("accept");
            let (heard, ended) = (heard.clone(), streams_ended.clone());
            tokio::spawn(async move {
                while let Some((_, mut stream)) = incoming.next().await {
                    let (heard, ended) = (heard.clone(), ended.clone());
                    tokio::spawn(async move {
                        // What the node says until it gives up on this silent stranger.
                        let mut bytes = Vec::new();
                        let mut buf = [0u8; 4096];
                        while let Ok(Ok(n)) =
                            tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf))
                                .await
                        {
                            if n == 0 {
                                break;
                            }
                            bytes.extend_from_slice(&buf[..n]);
                        }
                        heard.lock().expect("record").push(bytes);
                        ended.notify_waiters();
                    });
                }
            });
        }
        let local = key.public().to_peer_id();
        for (protocol, handler) in serve {
            let mut incoming = control.accept(protocol).expect("accept");
            tokio::spawn(async move {
                while let Some((peer, stream)) = incoming.next().await {
                    tokio::spawn(handler(local, peer, stream));
                }
            });
        }
        swarm.listen_on(listen).expect("listen");
        let addr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                break address;
            }
        };
        let (dials, mut dial_rx) = mpsc::channel::<Dial>(8);
        let task = tokio::spawn(async move {
            let mut waiting: Vec<(libp2p::swarm::ConnectionId, oneshot::Sender<_>)> = Vec::new();
            loop {
                tokio::select! {
                    Some((addr, reply)) = dial_rx.recv() => {
                        let opts = libp2p::swarm::dial_opts::DialOpts::unknown_peer_id()
                            .address(addr)
                            .build();
                        let id = opts.connection_id();
                        match swarm.dial(opts) {
                            Ok(()) => waiting.push((id, reply)),
                            Err(e) => { let _ = reply.send(Err(e.to_string())); }
                        }
                    }
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::ConnectionEstablished { peer_id, connection_id, .. } => {
                            if let Some(i) = waiting.iter().position(|(c, _)| *c == connection_id) {
                                let _ = waiting.swap_remove(i).1.send(Ok(peer_id));
                            }
                        }
                        SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                            if let Some(i) = waiting.iter().position(|(c, _)| *c == connection_id) {
                                let _ = waiting.swap_remove(i).1.send(Err(error.to_string()));
                            }
                        }
                        _ => {}
                    },
                }
            }
        });
        Self {
            key,
            control,
            dials,
            addr,
            heard,
            streams_ended,
            task,
        }
    }

    /// Waits until `n` streams opened to this peer have ended, then returns what each carried.
    pub async fn heard(&self, n: usize) -> Vec<Vec<u8>> {
        let wait = async {
            loop {
                let ended = self.streams_ended.notified();
                tokio::pin!(ended);
                ended.as_mut().enable();
                let heard = self.heard.lock().expect("record").clone();
                if heard.len() >= n {
                    return heard;
                }
                ended.await;
            }
        };
        tokio::time::timeout(RAW_TIMEOUT * 3, wait)
            .await
            .expect("a node opened the streams")
    }

    /// A handle to open streams with, for floods that handle their own errors.
    pub fn control(&self) -> libp2p_stream::Control {
        self.control.clone()
    }

    /// This peer's id.
    pub fn peer_id(&self) -> PeerId {
        self.key.public().to_peer_id()
    }

    /// Connects to a node's address; returns its peer id.
    pub async fn connect(&self, addr: &Multiaddr) -> PeerId {
        let (reply, rx) = oneshot::channel();
        self.dials
            .send((addr.clone(), reply))
            .await
            .expect("swarm task");
        tokio::time::timeout(RAW_TIMEOUT, rx)
            .await
            .expect("dial in time")
            .expect("dial answered")
            .expect("connected")
    }

    /// Opens a stream of `protocol` to `peer`.
    pub async fn open(&self, peer: PeerId, protocol: StreamProtocol) -> Stream {
        let mut control = self.control.clone();
        tokio::time::timeout(RAW_TIMEOUT, control.open_stream(peer, protocol))
            .await
            .expect("stream in time")
            .expect("stream opened")
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends one frame.
pub async fn send<T: Serialize>(stream: &mut Stream, msg: &T) {
    let sent = write_msg(stream, msg);
    tokio::time::timeout(RAW_TIMEOUT, sent)
        .await
        .expect("sent in time")
        .expect("sent");
    let _ = stream.flush().await;
}

/// The next frame, or `None` when the node closed the stream (or broke it) instead.
pub async fn receive<T: DeserializeOwned>(stream: &mut Stream) -> Option<T> {
    let mut buf = Vec::new();
    match tokio::time::timeout(RAW_TIMEOUT, read_msg(stream, &mut buf)).await {
        Ok(Ok(frame)) => frame,
        Ok(Err(_)) => None,
        Err(_) => panic!("the node neither answered nor closed within {RAW_TIMEOUT:?}"),
    }
}
