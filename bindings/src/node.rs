//! A running node as the host holds it: thin methods over the core's `Node`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use meshdrop_core::transfer::offer::Decision;
use meshdrop_core::{DownloadSpec, Multiaddr, PeerId, Ticket};
use tokio::task::JoinHandle;

use crate::error::MeshdropError;
use crate::events::{EventListener, deliver};
use crate::ops::Ops;
use crate::runtime::runtime;
use crate::transfer::Transfer;
use crate::types::{
    AutoFetchSettings, NodeConfig, PeerInfo, PendingOffer, SendOutcome, ShareCheck,
    UnfinishedDownload, UploadLimits, parse, parse_all, strings,
};

/// A running node. Call [`Node::shutdown`] before the host exits.
#[derive(uniffi::Object)]
pub struct Node {
    pub(crate) core: meshdrop_core::Node,
    pub(crate) ops: Arc<Ops>,
    delivery: Mutex<Option<JoinHandle<()>>>,
    transfers: Mutex<Vec<Arc<Transfer>>>,
}

/// Starts a node; every event from its start on goes to `listener`.
#[uniffi::export(async_runtime = "tokio")]
pub async fn start_node(
    config: NodeConfig,
    listener: Arc<dyn EventListener>,
) -> Result<Arc<Node>, MeshdropError> {
    let on_battery = config.on_battery;
    let config = meshdrop_core::NodeConfig::try_from(config)?;
    let rt = runtime()?;
    let core = rt
        .spawn(meshdrop_core::Node::start(config))
        .await
        .map_err(|e| MeshdropError::Internal {
            reason: e.to_string(),
        })??;
    core.set_on_battery(on_battery);
    let offers = core.clone();
    let pending = move || {
        offers
            .pending_offers()
            .into_iter()
            .map(Into::into)
            .collect()
    };
    let delivery = deliver(rt, core.events(), pending, listener);
    Ok(Arc::new(Node {
        core,
        ops: Arc::default(),
        delivery: Mutex::new(Some(delivery)),
        transfers: Mutex::default(),
    }))
}

#[uniffi::export(async_runtime = "tokio")]
impl Node {
    /// This device's peer id.
    pub fn peer_id(&self) -> String {
        self.core.peer_id().to_string()
    }

    /// This device's name.
    pub fn name(&self) -> String {
        self.core.name().to_string()
    }

    /// The addresses the node listens on.
    pub fn listen_addrs(&self) -> Vec<String> {
        strings(&self.core.listen_addrs())
    }

    /// The code both people see for the connection between this device and `peer_id`.
    pub fn verification_code(&self, peer_id: String) -> Result<String, MeshdropError> {
        Ok(self.core.verification_code(&parse("peer id", &peer_id)?))
    }

    /// Peers discovered, connected, added or remembered.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, MeshdropError> {
        let core = self.core.clone();
        let peers = self.ops.run(async move { Ok(core.peers().await?) }).await?;
        Ok(peers.into_iter().map(Into::into).collect())
    }

    /// Adds a peer by id and addresses, connects, and keeps redialling it when it drops.
    pub async fn add_peer(&self, peer_id: String, addrs: Vec<String>) -> Result<(), MeshdropError> {
        let peer: PeerId = parse("peer id", &peer_id)?;
        let addrs: Vec<Multiaddr> = parse_all("address", &addrs)?;
        let core = self.core.clone();
        self.ops
            .run(async move { Ok(core.add_peer(peer, addrs).await?) })
            .await
    }

    /// The device's network changed (Wi-Fi joined or left, back from a suspension): the node
    /// dials every remembered peer that is not connected, now.
    pub async fn network_changed(&self) -> Result<(), MeshdropError> {
        let core = self.core.clone();
        self.ops
            .run(async move { Ok(core.network_changed().await?) })
            .await
    }

    /// Connects to an address and returns the peer id that answered.
    pub async fn connect(&self, addr: String) -> Result<String, MeshdropError> {
        let addr: Multiaddr = parse("address", &addr)?;
        let core = self.core.clone();
        let peer = self.ops.run(async move { Ok(core.connect(addr).await?) });
        Ok(peer.await?.to_string())
    }

    /// Shares files and folders; returns the ticket to give to others.
    pub async fn share(&self, paths: Vec<String>) -> Result<String, MeshdropError> {
        let paths = paths.into_iter().map(PathBuf::from).collect();
        let core = self.core.clone();
        let ticket = self.ops.run(async move { Ok(core.share(paths).await?) });
        Ok(ticket.await?.to_string())
    }

    /// Checks the files of the share `id` (every share when `None`) against its manifest,
    /// reading every byte; what no longer verifies is no longer served, and a share that came
    /// from others is repaired from peers. Returns what each share held.
    #[uniffi::method(default(id = None))]
    pub async fn verify(&self, id: Option<String>) -> Result<Vec<ShareCheck>, MeshdropError> {
        let core = self.core.clone();
        let checked = self
            .ops
            .run(async move { Ok(core.verify(id.as_deref()).await?) });
        Ok(checked.await?.into_iter().map(Into::into).collect())
    }

    /// Starts downloading a ticket's share into `dest` (all files, or the indexes in `files`).
    /// Running the same download again resumes it.
    pub fn download(
        &self,
        ticket: String,
        dest: String,
        files: Option<Vec<u32>>,
    ) -> Result<Arc<Transfer>, MeshdropError> {
        let ticket: Ticket = ticket.parse()?;
        let spec = DownloadSpec {
            ticket,
            dest: dest.into(),
            files: files.map(|f| f.into_iter().map(|i| i as usize).collect()),
        };
        let rt = runtime()?;
        let handle = {
            let _in_runtime = rt.enter();
            self.core.download(spec)
        };
        let transfer = Transfer::spawn(rt, handle, self.ops.clone());
        let mut transfers = self.transfers.lock().unwrap_or_else(|p| p.into_inner());
        transfers.retain(|t| !t.ended());
        transfers.push(transfer.clone());
        Ok(transfer)
    }

    /// Offers files to a nearby peer and follows the offer to its end.
    pub async fn send_files(
        &self,
        peer_id: String,
        paths: Vec<String>,
    ) -> Result<SendOutcome, MeshdropError> {
        let peer: PeerId = parse("peer id", &peer_id)?;
        let paths = paths.into_iter().map(PathBuf::from).collect();
        let core = self.core.clone();
        let outcome = self
            .ops
            .run(async move { Ok(core.send_files(peer, paths).await?) });
        Ok(outcome.await?.into())
    }

    /// Accepts an offer into the folder `dest`: all files, or the indexes in `files`;
    /// `add_contact` also makes the sender a contact (under the name it gives itself).
    #[uniffi::method(default(add_contact = false))]
    pub fn accept_offer(
        &self,
        offer_id: u64,
        dest: String,
        files: Option<Vec<u32>>,
        add_contact: bool,
    ) -> Result<(), MeshdropError> {
        let decision = Decision::Accept {
            dest: dest.into(),
            files: files.map(|f| f.into_iter().map(|i| i as usize).collect()),
            add_contact,
        };
        Ok(self.core.respond_offer(offer_id, decision)?)
    }

    /// The offers received that wait for an answer (shown again when the app comes back).
    pub fn pending_offers(&self) -> Vec<PendingOffer> {
        self.core
            .pending_offers()
            .into_iter()
            .map(Into::into)
            .collect()
    }

    /// The downloads that have not finished: running, waiting for someone who has the share, or
    /// interrupted (a start resumes them). A background task asks it to know if work is left.
    pub fn unfinished_downloads(&self) -> Result<Vec<UnfinishedDownload>, MeshdropError> {
        let unfinished = self.core.unfinished_downloads()?;
        Ok(unfinished.into_iter().map(Into::into).collect())
    }

    /// Tells the node whether the device runs on battery now (it seeds less on battery, and
    /// fetches no room attachment by itself unless allowed).
    pub fn set_on_battery(&self, on_battery: bool) -> Result<(), MeshdropError> {
        let _in_runtime = runtime()?.enter();
        self.core.set_on_battery(on_battery);
        Ok(())
    }

    /// Tells the node whether the network is metered (no room attachment fetched by itself).
    pub fn set_metered(&self, metered: bool) {
        self.core.set_metered(metered);
    }

    /// Whether the node was told the network is metered.
    pub fn is_metered(&self) -> bool {
        self.core.is_metered()
    }

    /// What room attachments the node fetches by itself.
    pub fn auto_fetch(&self) -> AutoFetchSettings {
        self.core.auto_fetch().into()
    }

    /// Changes what room attachments the node fetches by itself.
    pub fn set_auto_fetch(&self, settings: AutoFetchSettings) {
        self.core.set_auto_fetch(settings.into());
    }

    /// How much the node uploads now: bytes per second (`None`: no limit) and upload slots.
    pub fn upload_limits(&self) -> UploadLimits {
        let l = self.core.limits();
        UploadLimits {
            max_upload_rate: l.max_upload_rate,
            upload_slots: l.upload_slots as u32,
        }
    }

    /// Declines an offer; nothing is written.
    pub fn decline_offer(&self, offer_id: u64) -> Result<(), MeshdropError> {
        Ok(self.core.respond_offer(offer_id, Decision::Decline)?)
    }

    /// Stops the node and returns once everything it ran has ended: downloads are cancelled
    /// (partial data kept), calls in flight answered, the node stopped, and the last event
    /// (`Stopped`) delivered. No callback reaches the host after this returns.
    pub async fn shutdown(&self) -> Result<(), MeshdropError> {
        let rt = runtime()?;
        let transfers =
            std::mem::take(&mut *self.transfers.lock().unwrap_or_else(|p| p.into_inner()));
        let delivery = self
            .delivery
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let core = self.core.clone();
        let stopped = rt.spawn(async move {
            for transfer in transfers {
                transfer.cancel_and_wait().await;
            }
            core.stop().await
        });
        let stopped = stopped.await.map_err(|e| MeshdropError::Internal {
            reason: e.to_string(),
        });
        self.ops.close().await;
        if let Some(delivery) = delivery {
            let _ = delivery.await;
        }
        Ok(stopped??)
    }
}
