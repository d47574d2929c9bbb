//! A platform's own DNS-SD (Bonjour `NWBrowser`/`NWListener`, Android NSD) drives discovery:
//! the node says what to advertise, the platform reports what it resolved or lost.

use std::collections::HashMap;
use std::net::IpAddr;

use meshdrop_core::PeerId;
use meshdrop_core::discovery::{PLATFORM_SERVICE_TYPE, Update, found_from_record};

use crate::error::{MeshdropError, invalid};
use crate::node::Node;
use crate::types::{Advertisement, parse, parse_all};

#[uniffi::export(async_runtime = "tokio")]
impl Node {
    /// What to advertise: service type, instance name, port and TXT record.
    pub fn advertisement(&self) -> Advertisement {
        let advert = self.core.advertisement();
        Advertisement {
            service_type: PLATFORM_SERVICE_TYPE.to_string(),
            instance_name: advert.instance(),
            port: advert.port(),
            txt: advert
                .txt()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }

    /// A platform browser resolved a `_meshdrop._udp` service: its TXT record and host IPs.
    /// The node treats it like its own mDNS (a `PeerDiscovered` event, a connection).
    pub async fn peer_resolved(
        &self,
        txt: HashMap<String, String>,
        ips: Vec<String>,
    ) -> Result<(), MeshdropError> {
        let ips: Vec<IpAddr> = parse_all("IP", &ips)?;
        let found =
            found_from_record(|k| txt.get(k).map(String::as_str), ips).ok_or_else(|| {
                invalid(
                    "DNS-SD record",
                    &format!("{txt:?}"),
                    "not a meshdrop advert",
                )
            })?;
        let core = self.core.clone();
        self.ops
            .run(async move { Ok(core.platform_discovery(Update::Found(found)).await?) })
            .await
    }

    /// A platform browser lost the service instance `instance_name` (a `PeerLost` event).
    pub async fn peer_gone(&self, instance_name: String) -> Result<(), MeshdropError> {
        let peer: PeerId = parse("instance name", &instance_name)?;
        let core = self.core.clone();
        self.ops
            .run(async move { Ok(core.platform_discovery(Update::Gone(peer)).await?) })
            .await
    }
}
