//! The swarm task's record of every open connection: to whom, at which remote address, and how
//! it is carried (a relay, a link, or directly). It decides which connections a better one
//! replaces (direct over link over relay) and over which transports to reach a relay.

use std::collections::HashMap;

use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

use super::transport::{Transport, is_relayed};

/// How a connection is carried, worst first: a better one replaces the worse ones of its peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Carrier {
    /// Through a relay (a volunteer's bandwidth, and slower).
    Relay,
    /// A link the host handed over (a radio between the two devices).
    Link,
    /// A direct IP connection (the LAN, or one hole punching opened).
    Direct,
}

/// The connections to each peer: their remote addresses and how each is carried.
#[derive(Default)]
pub(super) struct Connections(HashMap<PeerId, HashMap<ConnectionId, (Multiaddr, Carrier)>>);

impl Connections {
    /// Records a connection; returns the peer's connections it replaces, carried worse (to close:
    /// streams pick any connection of a peer, so the better path must be the only one).
    pub(super) fn add(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        remote: Multiaddr,
        carrier: Carrier,
    ) -> Vec<ConnectionId> {
        let conns = self.0.entry(peer).or_default();
        let superseded = conns
            .iter()
            .filter(|(_, (_, c))| *c < carrier)
            .map(|(c, _)| *c)
            .collect();
        conns.insert(id, (remote, carrier));
        superseded
    }

    pub(super) fn remove(&mut self, peer: PeerId, id: ConnectionId) {
        if let Some(conns) = self.0.get_mut(&peer) {
            conns.remove(&id);
            if conns.is_empty() {
                self.0.remove(&peer);
            }
        }
    }

    /// Whether every connection to the peer goes through a relay (none: false).
    pub(super) fn only_relayed(&self, peer: &PeerId) -> bool {
        self.0.get(peer).is_some_and(|c| {
            !c.is_empty() && c.values().all(|(_, carrier)| *carrier == Carrier::Relay)
        })
    }

    /// How the peer's best connection is carried (`None`: not connected).
    pub(super) fn best(&self, peer: &PeerId) -> Option<Carrier> {
        self.0.get(peer)?.values().map(|(_, c)| *c).max()
    }

    /// A relay's listen addresses on the IPs this node already reaches it at, over the transports
    /// (TCP, QUIC) it has no connection on yet. Hole punching needs this node's public address as
    /// the relay observes it on the transport the other side uses: one connection per transport
    /// gives one observed address per transport.
    pub(super) fn missing_transports(
        &self,
        relay: &PeerId,
        listen: &[Multiaddr],
    ) -> Vec<Multiaddr> {
        let Some(conns) = self.0.get(relay) else {
            return Vec::new();
        };
        fn ip(a: &Multiaddr) -> Option<Protocol<'_>> {
            a.iter().next()
        }
        let mut out: Vec<Multiaddr> = Vec::new();
        for addr in listen.iter().filter(|a| !is_relayed(a)) {
            let transport = Transport::of(addr);
            let reached = conns.values().any(|(remote, _)| ip(remote) == ip(addr));
            let covered = conns
                .values()
                .any(|(remote, _)| Transport::of(remote) == transport)
                || out.iter().any(|a| Transport::of(a) == transport);
            if reached && !covered && transport != Transport::Other {
                out.push(addr.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("test address")
    }

    #[test]
    fn a_direct_connection_supersedes_the_relayed_ones_of_its_peer() {
        let mut conns = Connections::default();
        let (peer, other) = (PeerId::random(), PeerId::random());
        let circuit = addr("/ip4/198.18.0.10/tcp/4001/p2p-circuit");
        let (relayed, other_relayed) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        assert!(
            conns
                .add(peer, relayed, circuit.clone(), Carrier::Relay)
                .is_empty()
        );
        assert!(
            conns
                .add(other, other_relayed, circuit, Carrier::Relay)
                .is_empty()
        );
        assert!(conns.only_relayed(&peer));
        let direct = ConnectionId::new_unchecked(3);
        let quic = addr("/ip4/198.18.0.1/udp/5/quic-v1");
        let superseded = conns.add(peer, direct, quic, Carrier::Direct);
        assert_eq!(superseded, vec![relayed]);
        assert_eq!(conns.best(&peer), Some(Carrier::Direct));
        assert_eq!(conns.best(&other), Some(Carrier::Relay));
        conns.remove(peer, relayed);
        assert!(!conns.only_relayed(&peer));
    }

    #[test]
    fn a_link_replaces_a_relayed_path_and_gives_way_to_the_lan() {
        let mut conns = Connections::default();
        let peer = PeerId::random();
        let (relayed, link, lan) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
            ConnectionId::new_unchecked(3),
        );
        conns.add(
            peer,
            relayed,
            addr("/ip4/1.2.3.4/tcp/1/p2p-circuit"),
            Carrier::Relay,
        );
        let replaced = conns.add(peer, link, addr("/memory/7"), Carrier::Link);
        assert_eq!(replaced, vec![relayed]);
        assert_eq!(conns.best(&peer), Some(Carrier::Link));
        assert!(!conns.only_relayed(&peer));
        conns.remove(peer, relayed);
        let replaced = conns.add(
            peer,
            lan,
            addr("/ip4/192.168.1.7/tcp/4001"),
            Carrier::Direct,
        );
        assert_eq!(replaced, vec![link]);
        // A link that comes second replaces nothing (the swarm closes it: the LAN is better).
        let again = ConnectionId::new_unchecked(4);
        assert!(
            conns
                .add(peer, again, addr("/memory/8"), Carrier::Link)
                .is_empty()
        );
        assert_eq!(conns.best(&peer), Some(Carrier::Direct));
    }

    #[test]
    fn a_relay_is_reached_over_each_transport_it_offers_on_the_same_ip() {
        let mut conns = Connections::default();
        let relay = PeerId::random();
        conns.add(
            relay,
            ConnectionId::new_unchecked(1),
            addr("/ip4/198.18.0.10/tcp/4001"),
            Carrier::Direct,
        );
        let listen = [
            addr("/ip4/198.18.0.10/tcp/4001"),
            addr("/ip4/198.18.0.10/udp/4001/quic-v1"),
            addr("/ip4/10.0.0.5/udp/4001/quic-v1"),
            addr("/ip4/198.18.0.10/tcp/4001/p2p-circuit"),
        ];
        assert_eq!(
            conns.missing_transports(&relay, &listen),
            vec![addr("/ip4/198.18.0.10/udp/4001/quic-v1")]
        );
        assert!(
            conns
                .missing_transports(&PeerId::random(), &listen)
                .is_empty()
        );
    }
}
