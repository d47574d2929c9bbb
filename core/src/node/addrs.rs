//! The node's pure helpers about addresses and names: which addresses a node can be reached on,
//! which ports it advertises, a relay address's peer id, a device name in an agent string.

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use crate::error::{Error, Result};
use crate::net::Transport;

/// The relay's peer id at the end of a relay address, or why the address will not do.
pub(super) fn relay_peer(addr: &Multiaddr) -> Result<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Ok(peer),
        _ => Err(Error::InvalidAddress {
            input: addr.to_string(),
            reason: "a relay address ends in /p2p/<relay peer id>, as `meshdrop relay` prints it"
                .into(),
        }),
    }
}

/// Whether an address listens on every interface (`0.0.0.0`, `::`).
pub(super) fn is_wildcard(addr: &Multiaddr) -> bool {
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => ip.is_unspecified(),
        Some(Protocol::Ip6(ip)) => ip.is_unspecified(),
        _ => false,
    }
}

/// Every address the node can be reached on. A wildcard listener reports its per-interface
/// addresses one by one (QUIC's come later than TCP's), so each interface IP seen on any listener
/// is combined with every wildcard listener's port of the same IP family.
pub(super) fn complete_listen_addrs(
    config: &[Multiaddr],
    reported: Vec<Multiaddr>,
) -> Vec<Multiaddr> {
    let mut out = reported.clone();
    for listener in reported.iter() {
        let Some(first) = listener.iter().next() else {
            continue;
        };
        let v6 = matches!(first, Protocol::Ip6(_));
        let from_wildcard = config.iter().any(|c| {
            is_wildcard(c)
                && matches!(c.iter().next(), Some(Protocol::Ip6(_))) == v6
                && Transport::of(c) == Transport::of(listener)
        });
        if !from_wildcard {
            continue;
        }
        for other in &reported {
            let Some(ip) = other.iter().next() else {
                continue;
            };
            if matches!(ip, Protocol::Ip6(_)) != v6 {
                continue;
            }
            let candidate: Multiaddr = std::iter::once(ip).chain(listener.iter().skip(1)).collect();
            if !out.contains(&candidate) {
                out.push(candidate);
            }
        }
    }
    out.sort();
    out
}

/// How many distinct listeners (transport + port) the addresses cover.
pub(super) fn distinct_listeners(addrs: &[Multiaddr]) -> usize {
    let mut keys: Vec<(bool, bool, u16)> = addrs
        .iter()
        .filter_map(|a| {
            let v6 = matches!(a.iter().next(), Some(Protocol::Ip6(_)));
            let quic = Transport::of(a) == Transport::Quic;
            port(a).map(|p| (v6, quic, p))
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys.len()
}

fn port(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| match p {
        Protocol::Tcp(p) | Protocol::Udp(p) => Some(p),
        _ => None,
    })
}

/// The TCP (or QUIC) port among the listen addresses, preferring IPv4.
pub(super) fn port_of(addrs: &[Multiaddr], quic: bool) -> Option<u16> {
    addrs
        .iter()
        .filter(|a| (Transport::of(a) == Transport::Quic) == quic)
        .min_by_key(|a| !matches!(a.iter().next(), Some(Protocol::Ip4(_))))
        .and_then(port)
}

/// Splits an agent string `meshdrop/0.1.0 (Device name)` into agent and name.
pub(super) fn split_agent(agent: &str) -> (String, String) {
    match agent.split_once(" (") {
        Some((a, rest)) => (a.to_string(), rest.trim_end_matches(')').to_string()),
        None => (agent.to_string(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("test address")
    }

    fn addrs(list: &[&str]) -> Vec<Multiaddr> {
        list.iter().map(|s| addr(s)).collect()
    }

    #[test]
    fn a_wildcard_listener_is_reachable_on_every_interface_ip_seen() {
        let config = addrs(&["/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"]);
        // TCP reported two interfaces, QUIC only one so far.
        let reported = addrs(&[
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/192.168.1.7/tcp/4001",
            "/ip4/127.0.0.1/udp/4002/quic-v1",
        ]);
        assert_eq!(
            complete_listen_addrs(&config, reported),
            addrs(&[
                "/ip4/127.0.0.1/tcp/4001",
                "/ip4/127.0.0.1/udp/4002/quic-v1",
                "/ip4/192.168.1.7/tcp/4001",
                "/ip4/192.168.1.7/udp/4002/quic-v1",
            ])
        );
        // Listeners on one address each are taken as reported.
        let bound = addrs(&["/ip4/127.0.0.1/tcp/0"]);
        let one = addrs(&["/ip4/127.0.0.1/tcp/5"]);
        assert_eq!(complete_listen_addrs(&bound, one.clone()), one);
    }

    #[test]
    fn listeners_are_counted_by_family_transport_and_port() {
        let reported = addrs(&[
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/192.168.1.7/tcp/4001",
            "/ip4/127.0.0.1/udp/4001/quic-v1",
            "/ip6/::1/tcp/4001",
        ]);
        assert_eq!(distinct_listeners(&reported), 3);
        assert_eq!(port_of(&reported, false), Some(4001));
        assert_eq!(port_of(&reported, true), Some(4001));
        assert_eq!(port_of(&addrs(&["/ip4/127.0.0.1/tcp/1"]), true), None);
        assert_eq!(
            port_of(&addrs(&["/ip6/::1/tcp/9", "/ip4/127.0.0.1/tcp/8"]), false),
            Some(8),
            "IPv4 first"
        );
    }

    #[test]
    fn a_relay_address_must_end_with_its_peer_id() {
        let relay = PeerId::random();
        let good = addr(&format!("/ip4/198.18.0.10/tcp/4001/p2p/{relay}"));
        assert_eq!(relay_peer(&good).unwrap(), relay);
        let err = relay_peer(&addr("/ip4/198.18.0.10/tcp/4001")).unwrap_err();
        assert!(err.to_string().contains("ends in /p2p/"), "{err}");
    }

    #[test]
    fn the_device_name_is_read_from_the_agent_string() {
        assert_eq!(
            split_agent("meshdrop/0.1.0 (Ana's laptop)"),
            ("meshdrop/0.1.0".to_string(), "Ana's laptop".to_string())
        );
        assert_eq!(
            split_agent("rust-libp2p/0.57"),
            ("rust-libp2p/0.57".to_string(), String::new())
        );
        assert!(is_wildcard(&addr("/ip6/::/tcp/0")) && !is_wildcard(&addr("/ip4/1.2.3.4/tcp/0")));
    }
}
