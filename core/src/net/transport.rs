//! How a connection is carried, read off its address.

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use serde::{Deserialize, Serialize};

/// How a connection is carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// TCP with Noise and Yamux.
    Tcp,
    /// QUIC (TLS 1.3 built in).
    Quic,
    /// A circuit through a relay (end-to-end encrypted; the relay forwards ciphertext).
    Relay,
    /// A link the host handed over (Wi-Fi Aware, AWDL, Bluetooth, a pipe), with Noise and Yamux.
    Link,
    /// Something else.
    Other,
}

impl Transport {
    /// The transport an address uses.
    pub fn of(addr: &Multiaddr) -> Self {
        let mut transport = Self::Other;
        for p in addr.iter() {
            match p {
                Protocol::QuicV1 => transport = Self::Quic,
                Protocol::Tcp(_) if transport == Self::Other => transport = Self::Tcp,
                Protocol::P2pCircuit => return Self::Relay,
                Protocol::Memory(_) => return Self::Link,
                _ => {}
            }
        }
        transport
    }
}

/// Whether an address goes through a relay (`…/p2p-circuit…`).
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("test address")
    }

    #[test]
    fn the_transport_is_read_off_the_address() {
        assert_eq!(Transport::of(&addr("/ip4/1.2.3.4/tcp/5")), Transport::Tcp);
        assert_eq!(
            Transport::of(&addr("/ip4/1.2.3.4/udp/5/quic-v1")),
            Transport::Quic
        );
        let circuit = addr("/ip4/1.2.3.4/tcp/5/p2p-circuit");
        assert_eq!(Transport::of(&circuit), Transport::Relay);
        assert!(is_relayed(&circuit) && !is_relayed(&addr("/ip4/1.2.3.4/tcp/5")));
        assert_eq!(Transport::of(&addr("/ip4/1.2.3.4")), Transport::Other);
        assert_eq!(Transport::of(&addr("/memory/3")), Transport::Link);
    }
}
