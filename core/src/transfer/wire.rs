//! The blob protocol on the wire: one long-lived stream per (downloader, provider, share), on which
//! the downloader pipelines requests and the provider answers them in order. Between answers, a
//! provider that is itself still downloading announces the chunks it gained ([`Response::Have`]).
//!
//! Every message is a frame: a `u32` little-endian length, then the postcard encoding of a
//! [`Request`] or [`Response`]. Chunk and manifest payloads follow their header frame as raw bytes,
//! so bulk data is never copied through the encoder.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use serde::{Deserialize, Serialize};

use super::ContentId;

/// The libp2p protocol name.
pub const PROTOCOL: libp2p::StreamProtocol = libp2p::StreamProtocol::new("/meshdrop/blob/2");

/// The largest header frame accepted (headers are small; payloads are not framed).
pub const MAX_FRAME: usize = 64 * 1024;

/// The most chunks one request may ask for.
pub const MAX_RUN: u32 = 1024;

/// The most chunk indexes in one [`Response::Have`].
pub const MAX_HAVE: usize = 4096;

/// The most other peers named in one [`Response::Hello`].
pub const MAX_PEX: usize = 16;

/// What a downloader asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// First message: which share this stream is about.
    Hello {
        /// The share.
        content: ContentId,
    },
    /// Send the encoded manifest.
    Manifest,
    /// Send chunks `first .. first + count` (each answered by [`Response::Chunk`] or [`Response::Missing`]).
    Chunks {
        /// The first chunk.
        first: u64,
        /// How many, at most [`MAX_RUN`].
        count: u32,
    },
}

/// What a provider answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to `Hello`: whether this provider holds the share and which chunks.
    Hello {
        /// Whether it has every chunk.
        complete: bool,
        /// When not complete: a bitfield of the chunks it has (bit `i % 8` of byte `i / 8`).
        have: Vec<u8>,
        /// Other peers that hold or fetch this share (peer exchange), at most [`MAX_PEX`].
        peers: Vec<PexPeer>,
    },
    /// The provider does not know the share.
    Unknown,
    /// The encoded manifest follows, `len` bytes.
    Manifest {
        /// Length of the manifest.
        len: u32,
    },
    /// A chunk follows, `len` bytes.
    Chunk {
        /// The chunk's index.
        index: u64,
        /// Its length.
        len: u32,
    },
    /// The provider does not have this chunk (yet).
    Missing {
        /// The chunk's index.
        index: u64,
    },
    /// The request was not understood; the stream closes.
    Error {
        /// Why.
        message: String,
    },
    /// Unasked, between answers: the provider has these chunks now (at most [`MAX_HAVE`]).
    Have {
        /// Chunk indexes.
        chunks: Vec<u64>,
    },
    /// Unasked, between answers: more peers of this share (at most [`MAX_PEX`]).
    Peers {
        /// The peers.
        peers: Vec<PexPeer>,
    },
}

/// Another peer of the same share, as peer exchange names it: its id and listen addresses, in
/// their binary forms (checked by the receiver, which ignores what does not parse).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PexPeer {
    /// The peer id's bytes.
    pub peer: Vec<u8>,
    /// Multiaddr bytes.
    pub addrs: Vec<Vec<u8>>,
}

impl PexPeer {
    /// Encodes a peer and its addresses.
    pub fn new(peer: &libp2p::PeerId, addrs: &[libp2p::Multiaddr]) -> Self {
        Self {
            peer: peer.to_bytes(),
            addrs: addrs.iter().map(|a| a.to_vec()).collect(),
        }
    }

    /// The peer and the addresses that parse; `None` when the id does not.
    pub fn parse(&self) -> Option<(libp2p::PeerId, Vec<libp2p::Multiaddr>)> {
        let peer = libp2p::PeerId::from_bytes(&self.peer).ok()?;
        let addrs = self
            .addrs
            .iter()
            .filter_map(|a| libp2p::Multiaddr::try_from(a.clone()).ok())
            .collect();
        Some((peer, addrs))
    }
}

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

/// Reads one message frame; `None` when the stream ended cleanly before it.
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

/// Decodes one frame body.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, WireError> {
    postcard::from_bytes(body).map_err(|e| WireError::Malformed(e.to_string()))
}

/// Whether bit `i` is set in a bitfield.
pub fn has_bit(bits: &[u8], i: u64) -> bool {
    usize::try_from(i / 8)
        .ok()
        .and_then(|byte| bits.get(byte))
        .is_some_and(|b| b & (1 << (i % 8)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_round_trip_through_frames() {
        let msgs = vec![
            Request::Hello {
                content: ContentId([7; 32]),
            },
            Request::Manifest,
            Request::Chunks { first: 5, count: 9 },
        ];
        let mut out = Vec::new();
        for m in &msgs {
            write_msg(&mut out, m).await.unwrap();
        }
        let mut r = futures::io::Cursor::new(out);
        let mut buf = Vec::new();
        for m in &msgs {
            let got: Request = read_msg(&mut r, &mut buf).await.unwrap().unwrap();
            assert_eq!(&got, m);
        }
        assert!(
            read_msg::<_, Request>(&mut r, &mut buf)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn oversize_frames_are_refused_before_allocation() {
        let mut r = futures::io::Cursor::new(u32::MAX.to_le_bytes().to_vec());
        let err = read_msg::<_, Request>(&mut r, &mut Vec::new())
            .await
            .unwrap_err();
        assert!(matches!(err, WireError::TooLong(_)));
    }

    #[test]
    fn bitfields_answer_out_of_range_as_missing() {
        let bits = [0b0000_0101u8];
        assert!(has_bit(&bits, 0));
        assert!(!has_bit(&bits, 1));
        assert!(has_bit(&bits, 2));
        assert!(!has_bit(&bits, 800));
    }
}
