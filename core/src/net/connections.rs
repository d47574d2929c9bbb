//! The swarm task's record of every open connection: to whom, at which remote address, and
//! whether it goes through a relay. It decides which relayed connections a direct one replaces
//! and over which transports to reach a relay.

use std::collections::HashMap;

use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

use super::transport::{Transport, is_relayed};

/// The connections to each peer: their remote addresses and whether each is relayed.
#[derive(Default)]
pub(super) struct Connections(HashMap<PeerId, HashMap<ConnectionId, (Multiaddr, bool)>>);

impl Connections {
    /// Records a connection; for a direct one, returns the peer's relayed connections (to close:
    /// a swarm prefers direct peers, and streams pick any connection of a peer).
    pub(super) fn add(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        remote: Multiaddr,
        relayed: bool,
    ) -> Vec<ConnectionId> {
        let conns = self.0.entry(peer).or_default();
        let superseded = if relayed {
            Vec::new()
        } else {
            conns
                .iter()
                .filter(|(_, (_, r))| *r)
                .map(|(c, _)| *c)
                .collect()
        };
        conns.insert(id, (remote, relayed));
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
        self.0
            .get(peer)
            .is_some_and(|c| !c.is_empty() && c.values().all(|(_, r)| *r))
    }

    pub(super) fn has_direct(&self, peer: &PeerId) -> bool {
        self.0
            .get(peer)
            .is_some_and(|c| c.values().any(|(_, r)| !r))
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
        assert!(conns.add(peer, relayed, circuit.clone(), true).is_empty());
        assert!(conns.add(other, other_relayed, circuit, true).is_empty());
        assert!(conns.only_relayed(&peer));
        let direct = ConnectionId::new_unchecked(3);
        let superseded = conns.add(peer, direct, addr("/ip4/198.18.0.1/udp/5/quic-v1"), false);
        assert_eq!(superseded, vec![relayed]);
        assert!(conns.has_direct(&peer) && !conns.has_direct(&other));
        conns.remove(peer, relayed);
        assert!(!conns.only_relayed(&peer));
    }

    #[test]
    fn a_relay_is_reached_over_each_transport_it_offers_on_the_same_ip() {
        let mut conns = Connections::default();
        let relay = PeerId::random();
        conns.add(
            relay,
            ConnectionId::new_unchecked(1),
            addr("/ip4/198.18.0.10/tcp/4001"),
            false,
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
