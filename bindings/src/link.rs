//! Links the host hands over (a Wi-Fi Aware socket, an L2CAP channel, an `NWConnection`): the
//! host's [`LinkDriver`], which the node asks for links, and a [`LinkStream`] per link, which
//! carries its bytes between the host's socket and the core.

use std::sync::Arc;

use meshdrop_core::net::{HostEnd, PipeLink, link_pipe};

use crate::error::MeshdropError;
use crate::node::Node;
use crate::types::parse;

/// The host's link driver: the platform radios. Calls come from the node's task and must return
/// at once (start the work, then return).
#[uniffi::export(foreign)]
pub trait LinkDriver: Send + Sync {
    /// Advertise this device and look for meshdrop devices on `medium`; report each with
    /// `device_nearby`.
    fn start_discovery(&self, medium: String);
    /// Stop advertising and looking on `medium`.
    fn stop_discovery(&self, medium: String);
    /// Open a link to `device` on `medium` and hand it over with `add_link` (outbound).
    fn open_link(&self, medium: String, device: String);
}

struct Driver(Arc<dyn LinkDriver>);

impl meshdrop_core::LinkDriver for Driver {
    fn start_discovery(&self, medium: String) {
        self.0.start_discovery(medium)
    }
    fn stop_discovery(&self, medium: String) {
        self.0.stop_discovery(medium)
    }
    fn open_link(&self, medium: String, device: String) {
        self.0.open_link(medium, device)
    }
}

/// Which device opened the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum LinkDirection {
    /// This device opened it (it dials).
    Outbound,
    /// The other device opened it.
    Inbound,
}

/// One link's bytes. The host's reader calls `receive` with what the socket read; its writer
/// loops on `next_outgoing` and writes what it returns; `end` when the socket closes
/// (not `close`: Kotlin objects have a `close()` that frees them).
#[derive(uniffi::Object)]
pub struct LinkStream {
    host: HostEnd,
    core: std::sync::Mutex<Option<PipeLink>>,
}

#[uniffi::export(async_runtime = "tokio")]
impl LinkStream {
    /// A stream for a new link; hand it to `add_link`.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        let (core, host) = link_pipe();
        let core = std::sync::Mutex::new(Some(core));
        Arc::new(Self { host, core })
    }

    /// Bytes the host read from the device; waits while the core is behind. `LinkClosed` once the
    /// link ended.
    pub async fn receive(&self, bytes: Vec<u8>) -> Result<(), MeshdropError> {
        Ok(self.host.receive(bytes).await?)
    }

    /// The next bytes to write to the device (at most 64 KiB); `None` once the core closed the
    /// link (close the socket then).
    pub async fn next_outgoing(&self) -> Option<Vec<u8>> {
        self.host.next_outgoing().await
    }

    /// The socket closed or broke: the core hears the end of the link.
    pub async fn end(&self) {
        self.host.close().await
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Node {
    /// Makes `stream` a connection (Noise and Yamux over it, as over TCP); returns the peer id
    /// once the handshake authenticated it. `medium` names what carries it (`wifi-aware`,
    /// `awdl`, `bluetooth`…); `device` is the driver's name for the device, when it found it.
    pub async fn add_link(
        &self,
        stream: Arc<LinkStream>,
        direction: LinkDirection,
        medium: String,
        device: Option<String>,
    ) -> Result<String, MeshdropError> {
        let io = stream.core.lock().unwrap_or_else(|p| p.into_inner()).take();
        let io = io.ok_or(MeshdropError::LinkClosed)?;
        let direction = match direction {
            LinkDirection::Outbound => meshdrop_core::LinkDirection::Outbound,
            LinkDirection::Inbound => meshdrop_core::LinkDirection::Inbound,
        };
        let core = self.core.clone();
        let link = async move {
            Ok(core
                .add_link(Box::new(io), direction, &medium, device)
                .await?)
        };
        Ok(self.ops.run(link).await?.peer.to_string())
    }

    /// Uses the host's link driver on `media`: discovery starts on each at once, and the node
    /// asks the driver for links to the devices worth one.
    pub async fn set_link_driver(
        &self,
        driver: Arc<dyn LinkDriver>,
        media: Vec<String>,
    ) -> Result<(), MeshdropError> {
        let (core, driver) = (self.core.clone(), Arc::new(Driver(driver)));
        let set = async move { Ok(core.set_link_driver(driver, media).await?) };
        self.ops.run(set).await
    }

    /// The driver sees `device` on `medium`, with its peer id when the medium carried it.
    pub async fn device_nearby(
        &self,
        medium: String,
        device: String,
        peer_id: Option<String>,
    ) -> Result<(), MeshdropError> {
        let peer = peer_id.map(|p| parse("peer id", &p)).transpose()?;
        let core = self.core.clone();
        let seen = async move { Ok(core.device_nearby(&medium, &device, peer).await?) };
        self.ops.run(seen).await
    }

    /// The driver no longer sees `device` on `medium`.
    pub async fn device_lost(&self, medium: String, device: String) -> Result<(), MeshdropError> {
        let core = self.core.clone();
        let lost = async move { Ok(core.device_lost(&medium, &device).await?) };
        self.ops.run(lost).await
    }

    /// Discovery on `medium` failed (radio off, idle timeout, suspended): the node calls
    /// `start_discovery` again after a wait that grows with each failure.
    pub async fn link_discovery_failed(&self, medium: String) -> Result<(), MeshdropError> {
        let core = self.core.clone();
        let failed = async move { Ok(core.link_discovery_failed(&medium).await?) };
        self.ops.run(failed).await
    }
}
