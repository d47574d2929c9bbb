//! The blob protocol on the wire: one long-lived stream per (downloader, provider, share), on which
//! the downloader pipelines requests and the provider answers them in order. Between answers, a
//! provider that is itself still downloading announces the chunks it gained ([`Response::Have`]).
//!
//! Every message is one frame of [`crate::net::framing`]: a [`Request`] or a [`Response`]. Chunk
//! and manifest payloads follow their header frame as raw bytes, so bulk data is never copied
//! through the encoder.

use serde::{Deserialize, Serialize};

/// The libp2p protocol name.
pub const PROTOCOL: libp2p::StreamProtocol = libp2p::StreamProtocol::new("/meshdrop/blob/3");

/// The most chunks one request may ask for.
pub const MAX_RUN: u32 = 1024;

/// The most chunk indexes in one [`Response::Have`].
pub const MAX_HAVE: usize = 4096;

/// The most other peers named in one [`Response::Hello`].
pub const MAX_PEX: usize = 16;

/// What a downloader asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// First message: which share this stream is about, and the proof that the asker holds its
    /// key ([`super::capability`]).
    Hello {
        /// The share's tag.
        tag: [u8; 32],
        /// The asker's proof, for this provider.
        proof: [u8; 32],
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
    /// Answer to `Hello`: this provider holds the share's key too, and which chunks it has.
    Hello {
        /// The provider's proof, for the asker.
        proof: [u8; 32],
        /// Whether it has every chunk.
        complete: bool,
        /// When not complete: a bitfield of the chunks it has (bit `i % 8` of byte `i / 8`).
        have: Vec<u8>,
        /// Other peers that hold or fetch this share (peer exchange), at most [`MAX_PEX`].
        peers: Vec<PexPeer>,
    },
    /// The provider does not know the share, or the proof did not hold (the same answer: it
    /// tells a stranger nothing).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::framing::{read_msg, write_msg};

    #[tokio::test]
    async fn requests_and_answers_round_trip_through_frames() {
        let msgs = vec![
            Request::Hello {
                tag: [7; 32],
                proof: [8; 32],
            },
            Request::Manifest,
            Request::Chunks { first: 5, count: 9 },
        ];
        let mut out = Vec::new();
        for m in &msgs {
            write_msg(&mut out, m).await.unwrap();
        }
        let answer = Response::Hello {
            proof: [9; 32],
            complete: false,
            have: vec![0b101],
            peers: vec![PexPeer::new(&libp2p::PeerId::random(), &[])],
        };
        write_msg(&mut out, &answer).await.unwrap();
        let mut r = futures::io::Cursor::new(out);
        let mut buf = Vec::new();
        for m in &msgs {
            let got: Request = read_msg(&mut r, &mut buf).await.unwrap().unwrap();
            assert_eq!(&got, m);
        }
        let got: Response = read_msg(&mut r, &mut buf).await.unwrap().unwrap();
        assert_eq!(got, answer);
    }
}
