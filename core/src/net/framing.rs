//! Framing for every application protocol (transfers, offers, messages): a `u32` little-endian
//! length, then the postcard encoding of one message. Bulk payloads that follow a header frame
//! (chunks, manifests) travel as raw bytes, so they are never copied through the encoder.
//!
//! Every stream a peer opens must send its first frame within [`FIRST_FRAME`], and every read
//! and write of a frame is bounded ([`read_within`], [`write_within`]): a peer that stalls a
//! stream holds nothing for long.

use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::{Deserialize, Serialize};

/// The largest frame accepted: headers and messages are small; payloads are not framed.
pub const MAX_FRAME: usize = 64 * 1024;

/// How long a peer that opened a stream has to send its first frame.
pub const FIRST_FRAME: Duration = Duration::from_secs(5);

/// How long one frame may take to read once due, or to write.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A malformed or oversize frame, or the stream failed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The stream failed or closed.
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    /// A frame longer than [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the limit")]
    TooLong(usize),
    /// A frame that does not decode.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The peer does not speak the protocol (a relay, another app).
    #[error("the peer does not speak {0}")]
    Unsupported(String),
    /// A read or write took longer than allowed.
    #[error("{0} timed out")]
    Timeout(&'static str),
}

impl From<libp2p_stream::OpenStreamError> for WireError {
    fn from(e: libp2p_stream::OpenStreamError) -> Self {
        match e {
            libp2p_stream::OpenStreamError::UnsupportedProtocol(p) => {
                Self::Unsupported(p.to_string())
            }
            other => Self::Io(std::io::Error::other(other.to_string())),
        }
    }
}

/// Writes one message frame.
pub async fn write_msg<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<(), WireError> {
    let body = postcard::to_stdvec(msg).map_err(|e| WireError::Malformed(e.to_string()))?;
    let len = u32::try_from(body.len()).map_err(|_| WireError::TooLong(body.len()))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame).await?;
    Ok(())
}

/// Reads one message frame into `buf`; `None` when the stream ended cleanly before it.
pub async fn read_msg<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Option<T>, WireError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLong(len));
    }
    buf.resize(len, 0);
    r.read_exact(buf).await?;
    decode(buf).map(Some)
}

/// Reads one frame within `within` (see [`read_msg`]).
pub async fn read_within<R: AsyncRead + Unpin, T: for<'de> Deserialize<'de>>(
    r: &mut R,
    buf: &mut Vec<u8>,
    within: Duration,
) -> Result<Option<T>, WireError> {
    tokio::time::timeout(within, read_msg(r, buf))
        .await
        .map_err(|_| WireError::Timeout("reading a frame"))?
}

/// Writes one frame within `within` (see [`write_msg`]).
pub async fn write_within<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
    within: Duration,
) -> Result<(), WireError> {
    tokio::time::timeout(within, write_msg(w, msg))
        .await
        .map_err(|_| WireError::Timeout("writing a frame"))?
}

/// Decodes one frame body.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, WireError> {
    postcard::from_bytes(body).map_err(|e| WireError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Msg {
        Hello(u32),
        Text(String),
    }

    #[tokio::test]
    async fn messages_round_trip_through_frames() {
        let msgs = vec![Msg::Hello(7), Msg::Text("hé".into()), Msg::Hello(0)];
        let mut out = Vec::new();
        for m in &msgs {
            write_msg(&mut out, m).await.unwrap();
        }
        let mut r = futures::io::Cursor::new(out);
        let mut buf = Vec::new();
        for m in &msgs {
            let got: Msg = read_msg(&mut r, &mut buf).await.unwrap().unwrap();
            assert_eq!(&got, m);
        }
        assert!(
            read_msg::<_, Msg>(&mut r, &mut buf)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn oversize_frames_are_refused_before_allocation() {
        let mut r = futures::io::Cursor::new(u32::MAX.to_le_bytes().to_vec());
        let err = read_msg::<_, Msg>(&mut r, &mut Vec::new())
            .await
            .unwrap_err();
        assert!(matches!(err, WireError::TooLong(_)));
    }

    #[tokio::test]
    async fn a_truncated_frame_is_an_error_not_a_clean_end() {
        let mut bytes = 10u32.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"abc");
        let mut r = futures::io::Cursor::new(bytes);
        let err = read_msg::<_, Msg>(&mut r, &mut Vec::new())
            .await
            .unwrap_err();
        assert!(matches!(err, WireError::Io(_)), "{err}");
    }
}
