//! The relays this node keeps a reservation on (circuit relay v2), and when to ask again after
//! one is lost: 2 s at first, doubling up to 5 minutes.

use std::time::Duration;

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use tokio::time::Instant;

use super::NetEvent;

/// First wait before a lost relay reservation is asked for again; doubles up to [`RETRY_MAX`].
const RETRY: Duration = Duration::from_secs(2);
/// Longest wait between attempts to reserve on a relay.
const RETRY_MAX: Duration = Duration::from_secs(300);

/// The configured relays and the state of each reservation.
pub(super) struct Relays {
    entries: Vec<Entry>,
}

struct Entry {
    /// The relay's address, as configured (ends in `/p2p/<relay>`).
    addr: Multiaddr,
    /// The listener holding the reservation, while there is one.
    listener: Option<ListenerId>,
    /// The relayed addresses the reservation gave.
    reserved: Vec<Multiaddr>,
    /// When to ask again; `None` while a listener is up.
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl Entry {
    fn retry_later(&mut self) {
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(RETRY_MAX);
    }
}

impl Relays {
    pub(super) fn new(addrs: &[Multiaddr]) -> Self {
        let now = Instant::now();
        Self {
            entries: addrs
                .iter()
                .map(|addr| Entry {
                    addr: addr.clone(),
                    listener: None,
                    reserved: Vec::new(),
                    retry_at: Some(now),
                    backoff: RETRY,
                })
                .collect(),
        }
    }

    /// Asks the relays whose turn it is for a reservation: `listen` opens a listener on
    /// `<relay>/p2p-circuit` (and tells AutoNAT about the relay).
    pub(super) fn reserve_due(
        &mut self,
        mut listen: impl FnMut(PeerId, &Multiaddr) -> Result<ListenerId, String>,
    ) {
        let now = Instant::now();
        for e in &mut self.entries {
            if e.retry_at.is_none_or(|at| at > now) {
                continue;
            }
            let Some(Protocol::P2p(relay)) = e.addr.iter().last() else {
                continue;
            };
            match listen(relay, &e.addr) {
                Ok(id) => {
                    e.listener = Some(id);
                    e.retry_at = None;
                }
                Err(err) => {
                    tracing::warn!(relay = %e.addr, error = %err, "cannot ask the relay for a slot");
                    e.retry_later();
                }
            }
        }
    }

    fn by_listener(&mut self, id: ListenerId) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.listener == Some(id))
    }

    /// Whether listener `id` holds a relay reservation.
    pub(super) fn owns(&self, id: ListenerId) -> bool {
        self.entries.iter().any(|e| e.listener == Some(id))
    }

    /// A relay listener got an address: the relay holds a slot for this device.
    pub(super) fn reserved(&mut self, id: ListenerId, addr: Multiaddr) -> Option<NetEvent> {
        let entry = self.by_listener(id)?;
        entry.backoff = RETRY;
        entry.reserved.push(addr.clone());
        relay_of(&addr).map(|relay| NetEvent::RelayReserved { relay, addr })
    }

    /// A relayed address expired.
    pub(super) fn expired(&mut self, id: ListenerId, addr: Multiaddr) -> Option<NetEvent> {
        let entry = self.by_listener(id)?;
        entry.reserved.retain(|a| a != &addr);
        Some(NetEvent::RelayLost {
            relay: entry.addr.clone(),
            addrs: vec![addr],
            reason: None,
        })
    }

    /// A relay listener closed (`reason`: why): asked again after the backoff.
    pub(super) fn closed(&mut self, id: ListenerId, reason: String) -> Option<NetEvent> {
        let entry = self.by_listener(id)?;
        entry.listener = None;
        entry.retry_later();
        Some(NetEvent::RelayLost {
            relay: entry.addr.clone(),
            addrs: std::mem::take(&mut entry.reserved),
            reason: Some(reason),
        })
    }
}

/// The relay's peer id in a relayed address (`…/p2p/<relay>/p2p-circuit…`).
fn relay_of(addr: &Multiaddr) -> Option<PeerId> {
    let mut last_peer = None;
    for p in addr.iter() {
        match p {
            Protocol::P2p(peer) => last_peer = Some(peer),
            Protocol::P2pCircuit => return last_peer,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("test address")
    }

    #[test]
    fn the_relay_of_a_relayed_address_is_the_peer_before_the_circuit() {
        let relay = PeerId::random();
        let me = PeerId::random();
        let relayed = addr(&format!(
            "/ip4/198.18.0.10/tcp/4001/p2p/{relay}/p2p-circuit/p2p/{me}"
        ));
        assert_eq!(relay_of(&relayed), Some(relay));
        assert_eq!(
            relay_of(&addr(&format!("/ip4/1.2.3.4/tcp/1/p2p/{me}"))),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_reservation_is_asked_for_again_with_a_doubling_wait() {
        let relay = PeerId::random();
        let relay_addr = addr(&format!("/ip4/198.18.0.10/tcp/4001/p2p/{relay}"));
        let mut relays = Relays::new(std::slice::from_ref(&relay_addr));
        let listener = ListenerId::next();
        let mut asked = 0;
        relays.reserve_due(|peer, _| {
            assert_eq!(peer, relay);
            asked += 1;
            Ok(listener)
        });
        assert!(relays.owns(listener));
        let granted = relay_addr.clone().with(Protocol::P2pCircuit);
        assert!(matches!(
            relays.reserved(listener, granted.clone()),
            Some(NetEvent::RelayReserved { relay: r, .. }) if r == relay
        ));
        let lost = relays.closed(listener, "the relay went away".into());
        assert!(matches!(lost, Some(NetEvent::RelayLost { addrs, .. }) if addrs == vec![granted]));
        // Not before the backoff (2 s), then again.
        relays.reserve_due(|_, _| Ok(ListenerId::next()));
        assert_eq!(asked, 1);
        tokio::time::advance(RETRY).await;
        relays.reserve_due(|_, _| {
            asked += 1;
            Err("refused".into())
        });
        assert_eq!(asked, 2);
        // The next wait is twice as long.
        tokio::time::advance(RETRY).await;
        relays.reserve_due(|_, _| panic!("asked too early"));
        tokio::time::advance(RETRY * 2).await;
        relays.reserve_due(|_, _| Ok(ListenerId::next()));
    }
}
