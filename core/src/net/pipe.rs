//! A link for hosts that move bytes by calls rather than through a socket the core can read (an
//! app's Wi-Fi Aware socket or L2CAP channel read on its own thread, bytes handed over through
//! the bindings): two bounded channels of chunks. The host's chunks are read by the core as they
//! are, and the core's writes become the host's chunks, so no byte is copied on the way beyond
//! the copy into (or out of) the caller's buffer. Each direction holds at most
//! [`PIPE_CHUNKS`] chunks: a host that sends faster than the core reads waits (back-pressure).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::{AsyncRead, AsyncWrite};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::PollSender;

/// Chunks buffered in each direction.
pub const PIPE_CHUNKS: usize = 16;
/// The largest chunk the core hands the host (a Noise frame is at most 64 KiB).
pub const MAX_CHUNK: usize = 64 * 1024;

/// The core's end of a pipe: give it to [`super::Net::add_link`].
pub struct PipeLink {
    from_host: mpsc::Receiver<Vec<u8>>,
    /// The chunk being read and how much of it was read.
    reading: Option<(Vec<u8>, usize)>,
    to_host: PollSender<Vec<u8>>,
}

/// The host's end of a pipe.
pub struct HostEnd {
    to_core: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    from_core: Mutex<mpsc::Receiver<Vec<u8>>>,
}

/// The pipe is closed: the link ended.
#[derive(Debug, thiserror::Error)]
#[error("the link is closed")]
pub struct PipeClosed;

/// A new pipe: the core's end and the host's.
pub fn link_pipe() -> (PipeLink, HostEnd) {
    let (to_core, from_host) = mpsc::channel(PIPE_CHUNKS);
    let (to_host, from_core) = mpsc::channel(PIPE_CHUNKS);
    let link = PipeLink {
        from_host,
        reading: None,
        to_host: PollSender::new(to_host),
    };
    let host = HostEnd {
        to_core: Mutex::new(Some(to_core)),
        from_core: Mutex::new(from_core),
    };
    (link, host)
}

impl HostEnd {
    /// Hands the core bytes the host received from the device; waits while the core is
    /// [`PIPE_CHUNKS`] chunks behind. Fails once the link is closed.
    pub async fn receive(&self, bytes: Vec<u8>) -> Result<(), PipeClosed> {
        if bytes.is_empty() {
            return Ok(());
        }
        let to_core = self.to_core.lock().await.clone().ok_or(PipeClosed)?;
        to_core.send(bytes).await.map_err(|_| PipeClosed)
    }

    /// The next bytes to send to the device (at most [`MAX_CHUNK`]), waiting until there are
    /// some; `None` once the core closed the link (the host then closes its socket).
    pub async fn next_outgoing(&self) -> Option<Vec<u8>> {
        self.from_core.lock().await.recv().await
    }

    /// The host's side ended (its socket closed): the core reads the end of the stream and the
    /// link's connection closes.
    pub async fn close(&self) {
        self.to_core.lock().await.take();
        self.from_core.lock().await.close();
    }
}

impl AsyncRead for PipeLink {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            if let Some((chunk, at)) = &mut self.reading {
                let n = buf.len().min(chunk.len() - *at);
                buf[..n].copy_from_slice(&chunk[*at..*at + n]);
                *at += n;
                if *at == chunk.len() {
                    self.reading = None;
                }
                return Poll::Ready(Ok(n));
            }
            match ready!(self.from_host.poll_recv(cx)) {
                Some(chunk) => self.reading = Some((chunk, 0)),
                None => return Poll::Ready(Ok(0)),
            }
        }
    }
}

impl AsyncWrite for PipeLink {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let closed = || io::Error::new(io::ErrorKind::BrokenPipe, PipeClosed);
        ready!(self.to_host.poll_reserve(cx)).map_err(|_| closed())?;
        let n = buf.len().min(MAX_CHUNK);
        self.to_host
            .send_item(buf[..n].to_vec())
            .map_err(|_| closed())?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.to_host.close();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use futures::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn bytes_cross_both_ways_and_a_close_ends_the_stream() {
        let (mut link, host) = link_pipe();
        host.receive(b"hello ".to_vec()).await.unwrap();
        host.receive(b"core".to_vec()).await.unwrap();
        let mut got = [0u8; 10];
        link.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello core");

        let big = vec![7u8; MAX_CHUNK + 10];
        link.write_all(&big).await.unwrap();
        let first = host.next_outgoing().await.unwrap();
        let second = host.next_outgoing().await.unwrap();
        assert_eq!((first.len(), second.len()), (MAX_CHUNK, 10), "chunked");

        host.close().await;
        assert_eq!(link.read(&mut got).await.unwrap(), 0, "end of stream");
        assert!(host.receive(b"late".to_vec()).await.is_err());
        assert!(link.write_all(b"x").await.is_err(), "the host is gone");
    }

    #[tokio::test]
    async fn a_host_faster_than_the_core_waits_and_the_core_closing_tells_the_host() {
        let (link, host) = link_pipe();
        for _ in 0..PIPE_CHUNKS {
            host.receive(vec![1]).await.unwrap();
        }
        let more = host.receive(vec![2]);
        tokio::pin!(more);
        assert!(
            futures::poll!(more.as_mut()).is_pending(),
            "waits for the core"
        );
        drop(link);
        assert!(more.await.is_err());
        assert_eq!(host.next_outgoing().await, None, "the core closed the link");
    }
}
