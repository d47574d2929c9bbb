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

/// Whether an address that another peer named (peer exchange) may be dialled: never a
/// loopback, link-local, unspecified, broadcast or multicast address (a hostile peer would make
/// this device knock on its own services or the LAN's), nor a name; loopback only when this
/// node itself listens on loopback alone (tests, the demo: loopback is all there is).
pub fn learned_dialable(addr: &Multiaddr, loopback_only: bool) -> bool {
    use std::net::{IpAddr, Ipv4Addr};
    let ip = match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => IpAddr::V4(ip),
        Some(Protocol::Ip6(ip)) => match ip.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(ip),
        },
        _ => return false,
    };
    let v4 = |ip: Ipv4Addr| {
        ip.is_link_local() || ip.is_broadcast() || ip.is_multicast() || ip.is_unspecified()
    };
    let bad = match ip {
        IpAddr::V4(ip) => v4(ip),
        IpAddr::V6(ip) => {
            ip.is_unspecified() || ip.is_multicast() || (ip.segments()[0] & 0xffc0) == 0xfe80
        }
    };
    !bad && (!ip.is_loopback() || loopback_only)
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

    #[test]
    fn addresses_learned_from_peers_never_reach_loopback_or_link_local() {
        for a in [
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/169.254.1.2/tcp/4001",
            "/ip4/0.0.0.0/tcp/4001",
            "/ip4/224.0.0.251/udp/5353/quic-v1",
            "/ip4/255.255.255.255/tcp/1",
            "/ip6/::1/tcp/4001",
            "/ip6/fe80::1/tcp/4001",
            "/ip6/::ffff:127.0.0.1/tcp/4001",
            "/dns4/example.org/tcp/4001",
            "/ip4/169.254.1.2/tcp/4001/p2p-circuit",
        ] {
            assert!(!learned_dialable(&addr(a), false), "{a}");
        }
        assert!(learned_dialable(&addr("/ip4/192.168.1.7/tcp/4001"), false));
        assert!(learned_dialable(
            &addr("/ip6/2001:db8::7/udp/1/quic-v1"),
            false
        ));
        // A node on loopback alone (tests, the demo) reaches its peers there.
        assert!(learned_dialable(&addr("/ip4/127.0.0.1/tcp/4001"), true));
        assert!(!learned_dialable(&addr("/ip4/169.254.1.2/tcp/4001"), true));
    }
}
