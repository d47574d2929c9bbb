//! Local discovery with standard DNS-SD over mDNS (`mdns-sd`): what Bonjour, Android NSD and avahi see.
//!
//! The node advertises `_meshdrop._udp.local.` with TXT records `peer`, `name`, `proto`, `tcp`
//! and `quic`, browses for the same type, and turns announcements into [`Found`] / [`Gone`] updates.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// The DNS-SD service type of meshdrop.
pub const SERVICE_TYPE: &str = "_meshdrop._udp.local.";

/// The service type as platform browsers name it (Bonjour `NWBrowser`, Android NSD): no domain.
pub const PLATFORM_SERVICE_TYPE: &str = "_meshdrop._udp";

/// What the node advertises about itself.
#[derive(Clone, Debug)]
pub struct Advert {
    /// This node's peer id.
    pub peer: PeerId,
    /// The device name.
    pub name: String,
    /// The TCP port it listens on, if any.
    pub tcp_port: Option<u16>,
    /// The QUIC port it listens on, if any.
    pub quic_port: Option<u16>,
}

impl Advert {
    /// The DNS-SD instance name: the peer id, unique by construction.
    pub fn instance(&self) -> String {
        self.peer.to_base58()
    }

    /// The TXT record: `peer`, `name`, `proto`, and `tcp` / `quic` ports when listening on them.
    pub fn txt(&self) -> Vec<(&'static str, String)> {
        let mut props = vec![
            ("peer", self.peer.to_base58()),
            ("name", truncate(&self.name, 200)),
            ("proto", crate::PROTOCOL_VERSION.to_string()),
        ];
        if let Some(p) = self.tcp_port {
            props.push(("tcp", p.to_string()));
        }
        if let Some(p) = self.quic_port {
            props.push(("quic", p.to_string()));
        }
        props
    }

    /// The port to put in the SRV record.
    pub fn port(&self) -> u16 {
        self.tcp_port.or(self.quic_port).unwrap_or(0)
    }
}

/// A discovery update.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// A device announced itself (first time or changed).
    Found(Found),
    /// A device's records went away (goodbye or expiry).
    Gone(PeerId),
}

/// A device seen on the local network.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// The device.
    pub peer: PeerId,
    /// Its name.
    pub name: String,
    /// Dialable addresses built from its A/AAAA records and advertised ports.
    pub addrs: Vec<Multiaddr>,
}

/// A running mDNS advertiser and browser.
pub struct Discovery {
    daemon: ServiceDaemon,
    fullname: String,
    /// The browse loop; it also owns the map from instance names to peers.
    browser: JoinHandle<()>,
    verify_tx: mpsc::UnboundedSender<PeerId>,
}

impl Discovery {
    /// Starts advertising `advert` and browsing on the interfaces carrying `ips`
    /// (an unspecified IP means every interface), sending updates to `updates`.
    pub fn start(advert: &Advert, ips: &[IpAddr], updates: mpsc::Sender<Update>) -> Result<Self> {
        let err = |e: mdns_sd::Error| Error::Discovery(e.to_string());
        let daemon = ServiceDaemon::new().map_err(err)?;
        let mut kinds = Vec::new();
        // mDNS runs over IPv4 unless the user names an IPv6 address: answers over IPv6 carry only
        // link-local addresses, which a multiaddr cannot dial without a scope.
        for ip in ips {
            match ip {
                IpAddr::V4(v4) if v4.is_unspecified() => kinds.push(IfKind::IPv4),
                IpAddr::V6(v6) if v6.is_unspecified() => {}
                ip => kinds.push(IfKind::Addr(*ip)),
            }
        }
        daemon.disable_interface(IfKind::All).map_err(err)?;
        daemon.enable_interface(kinds.clone()).map_err(err)?;
        if ips.iter().any(|ip| ip.is_loopback()) {
            daemon.set_multicast_loop_v4(true).map_err(err)?;
        }

        let instance = advert.instance();
        let host = format!(
            "md-{}.local.",
            &instance[instance.len().saturating_sub(16)..]
        );
        let props = advert.txt();
        let port = advert.port();
        let mut info = ServiceInfo::new(SERVICE_TYPE, &instance, &host, "", port, &props[..])
            .map_err(err)?
            .enable_addr_auto();
        info.set_interfaces(kinds);
        // The instance and host names derive from the peer id, unique by construction: skip the
        // three 250 ms conflict probes so a device shows up in well under a second.
        info.set_requires_probe(false);
        let fullname = info.get_fullname().to_string();
        let receiver = daemon.browse(SERVICE_TYPE).map_err(err)?;
        daemon.register(info).map_err(err)?;

        let (verify_tx, mut verify_rx) = mpsc::unbounded_channel::<PeerId>();
        let local = advert.peer;
        let verifier = daemon.clone();
        let browser = tokio::spawn(async move {
            let mut instances: HashMap<String, PeerId> = HashMap::new();
            loop {
                tokio::select! {
                    event = receiver.recv_async() => {
                        let Ok(event) = event else { break };
                        let update = match event {
                            ServiceEvent::ServiceResolved(svc) => {
                                match parse(&svc) {
                                    Some(found) if found.peer != local => {
                                        instances.insert(svc.fullname.clone(), found.peer);
                                        Update::Found(found)
                                    }
                                    Some(_) => continue,
                                    None => {
                                        tracing::debug!(instance = %svc.fullname, "ignoring malformed meshdrop advert");
                                        continue;
                                    }
                                }
                            }
                            ServiceEvent::ServiceRemoved(_, fullname) => {
                                match instances.remove(&fullname) {
                                    Some(peer) => Update::Gone(peer),
                                    None => continue,
                                }
                            }
                            _ => continue,
                        };
                        if updates.send(update).await.is_err() {
                            break;
                        }
                    }
                    Some(peer) = verify_rx.recv() => {
                        // RFC 6762 §10.4: when a peer seems gone, ask; silence flushes its records.
                        let names: Vec<String> = instances
                            .iter()
                            .filter(|(_, p)| **p == peer)
                            .map(|(n, _)| n.clone())
                            .collect();
                        for name in names {
                            let _ = verifier.verify(name, Duration::from_secs(3));
                        }
                    }
                }
            }
        });
        Ok(Self {
            daemon,
            fullname,
            browser,
            verify_tx,
        })
    }

    /// Asks the network whether `peer` is still there; if it does not answer it is reported [`Update::Gone`].
    pub fn verify(&self, peer: PeerId) {
        let _ = self.verify_tx.send(peer);
    }

    /// Sends goodbye packets and shuts the daemon down.
    pub async fn stop(self) {
        if let Ok(status) = self.daemon.unregister(&self.fullname) {
            let _ = tokio::time::timeout(Duration::from_secs(2), status.recv_async()).await;
        }
        self.browser.abort();
        if let Ok(status) = self.daemon.shutdown() {
            let _ = tokio::time::timeout(Duration::from_secs(2), status.recv_async()).await;
        }
    }
}

/// Turns a resolved service into a peer and dialable addresses; `None` when it is not a valid advert.
fn parse(svc: &mdns_sd::ResolvedService) -> Option<Found> {
    found_from_record(
        |key| svc.get_property_val_str(key),
        svc.get_addresses().iter().map(|a| a.to_ip_addr()),
    )
}

/// Turns a resolved advert (a TXT lookup and the host's IPs), as mDNS here or a platform browser
/// (Bonjour, Android NSD) resolved it, into a peer and dialable addresses; `None` when invalid.
pub fn found_from_record<'a>(
    txt: impl Fn(&str) -> Option<&'a str>,
    ips: impl IntoIterator<Item = IpAddr>,
) -> Option<Found> {
    let peer: PeerId = txt("peer")?.parse().ok()?;
    let name = txt("name").unwrap_or_default().to_string();
    let port = |key| txt(key).and_then(|p| p.parse::<u16>().ok());
    let (tcp, quic) = (port("tcp"), port("quic"));
    let mut addrs = Vec::new();
    for ip in ips {
        if !dialable(&ip) {
            continue;
        }
        let base = Multiaddr::from(ip);
        if let Some(p) = quic {
            addrs.push(
                base.clone()
                    .with(Protocol::Udp(p))
                    .with(Protocol::QuicV1)
                    .with(Protocol::P2p(peer)),
            );
        }
        if let Some(p) = tcp {
            addrs.push(base.with(Protocol::Tcp(p)).with(Protocol::P2p(peer)));
        }
    }
    addrs.sort();
    (!addrs.is_empty()).then_some(Found { peer, name, addrs })
}

/// Addresses worth dialling: not IPv6 link-local (a multiaddr cannot carry the scope) and not
/// the CLAT range 192.0.0.0/29 that Android phones report.
fn dialable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_unspecified() || (o[0] == 192 && o[1] == 0 && o[2] == 0 && o[3] < 8))
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80 && !v6.is_unspecified(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_and_clat_addresses_are_not_dialled() {
        assert!(!dialable(&"fe80::1".parse().unwrap()));
        assert!(!dialable(&"192.0.0.4".parse().unwrap()));
        assert!(dialable(&"192.168.1.7".parse().unwrap()));
        assert!(dialable(&"127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn an_advert_resolved_by_a_platform_browser_gives_dialable_addresses() {
        let peer = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let advert = Advert {
            peer,
            name: "alice".into(),
            tcp_port: Some(4001),
            quic_port: Some(4002),
        };
        let txt: HashMap<&str, String> = advert.txt().into_iter().collect();
        let ips = ["192.168.1.7".parse().unwrap(), "fe80::1".parse().unwrap()];
        let found = found_from_record(|k| txt.get(k).map(String::as_str), ips).unwrap();
        assert_eq!((found.peer, found.name.as_str()), (peer, "alice"));
        let addrs: Vec<String> = found.addrs.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            addrs,
            [
                format!("/ip4/192.168.1.7/tcp/4001/p2p/{peer}"),
                format!("/ip4/192.168.1.7/udp/4002/quic-v1/p2p/{peer}"),
            ]
        );
        assert_eq!(advert.instance(), peer.to_base58());
        assert!(found_from_record(|_| None, ips).is_none());
    }

    #[test]
    fn long_names_are_cut_on_a_character_boundary() {
        let name = "é".repeat(150);
        let cut = truncate(&name, 200);
        assert_eq!(cut.chars().count(), 100);
    }
}
