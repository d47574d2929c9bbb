//! Records and enums mirroring core types, with strings for peer ids, addresses and paths.

use std::collections::HashMap;
use std::net::IpAddr;

use meshdrop_core::transfer::offer;
use meshdrop_core::{DownloadReport as CoreReport, PeerInfo as CorePeer};

use crate::error::{MeshdropError, invalid};

/// How a node starts.
#[derive(Clone, Debug, uniffi::Record)]
pub struct NodeConfig {
    /// Where the identity key and the store live (an app's private files folder).
    pub data_dir: String,
    /// The device name shown to others; `None` keeps the stored one.
    #[uniffi(default = None)]
    pub device_name: Option<String>,
    /// IPs to listen on (the interface allow-list, e.g. `127.0.0.1` in tests); empty: every interface.
    #[uniffi(default = [])]
    pub bind: Vec<String>,
    /// Listen on IP networks; off: the node only dials out and takes links (reachable over
    /// Wi-Fi Aware or Bluetooth only).
    #[uniffi(default = true)]
    pub listen: bool,
    /// Advertise and browse with the core's own mDNS (off when a platform driver does it).
    #[uniffi(default = true)]
    pub mdns: bool,
    /// The device runs on battery at start: the core seeds within its battery limits (tell it of
    /// changes with `Node::set_on_battery`).
    #[uniffi(default = false)]
    pub on_battery: bool,
    /// Relays to hold a slot on, reaching devices on other networks (`…/p2p/<relay peer id>`).
    #[uniffi(default = [])]
    pub relays: Vec<String>,
}

impl TryFrom<NodeConfig> for meshdrop_core::NodeConfig {
    type Error = MeshdropError;

    fn try_from(c: NodeConfig) -> Result<Self, MeshdropError> {
        let config = if c.bind.is_empty() {
            Self::new(&c.data_dir)
        } else {
            let ips = c
                .bind
                .iter()
                .map(|ip| ip.parse::<IpAddr>().map_err(|e| invalid("IP", ip, e)))
                .collect::<Result<Vec<_>, _>>()?;
            Self::bound_to(&c.data_dir, &ips)
        };
        let relays = c
            .relays
            .iter()
            .map(|a| a.parse().map_err(|e| invalid("relay address", a, e)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut config = config.with_mdns(c.mdns).with_relays(relays);
        if !c.listen {
            config.listen.clear();
        }
        Ok(match c.device_name {
            Some(name) => config.with_name(name),
            None => config,
        })
    }
}

/// How a connection is carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Transport {
    /// TCP with Noise and Yamux.
    Tcp,
    /// QUIC.
    Quic,
    /// Through a relay.
    Relay,
    /// A link the host handed over.
    Link,
    /// Something else.
    Other,
}

impl From<meshdrop_core::Transport> for Transport {
    fn from(t: meshdrop_core::Transport) -> Self {
        match t {
            meshdrop_core::Transport::Tcp => Self::Tcp,
            meshdrop_core::Transport::Quic => Self::Quic,
            meshdrop_core::Transport::Relay => Self::Relay,
            meshdrop_core::Transport::Link => Self::Link,
            meshdrop_core::Transport::Other => Self::Other,
        }
    }
}

/// A peer as the node knows it now.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct PeerInfo {
    /// The peer id.
    pub peer_id: String,
    /// The name it gives itself (a claim; empty when not yet heard).
    pub name: String,
    /// The name the user gave it, when a contact (`None`: a stranger, show its claim as such).
    pub contact_name: Option<String>,
    /// Addresses it can be dialled on.
    pub addrs: Vec<String>,
    /// Whether a connection is up.
    pub connected: bool,
    /// How the connection is carried, while one is up.
    pub transport: Option<Transport>,
    /// What carries the link (`wifi-aware`…), while the connection is one.
    pub medium: Option<String>,
    /// Whether local discovery currently sees it.
    pub discovered: bool,
    /// The code both people see on their screens.
    pub verification_code: String,
}

impl From<CorePeer> for PeerInfo {
    fn from(p: CorePeer) -> Self {
        Self {
            peer_id: p.peer.to_string(),
            name: p.name,
            contact_name: p.contact,
            addrs: strings(&p.addrs),
            connected: p.connected,
            transport: p.transport.map(Into::into),
            medium: p.medium,
            discovered: p.discovered,
            verification_code: p.verification_code,
        }
    }
}

/// A file in an offer.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct OfferedFile {
    /// Relative path (`/`-separated).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

impl From<offer::OfferedFile> for OfferedFile {
    fn from(f: offer::OfferedFile) -> Self {
        Self {
            path: f.path,
            size: f.size,
        }
    }
}

/// What a finished download did.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct DownloadReport {
    /// The share's content id.
    pub content: String,
    /// Files now in place.
    pub files: u64,
    /// Bytes of the selected files.
    pub bytes: u64,
    /// Bytes received from the network in this run.
    pub fetched: u64,
    /// Bytes already on disk from an earlier run.
    pub resumed: u64,
    /// Bytes already in the destination: identical files, and the chunks of unfinished copies
    /// (completed in place).
    pub skipped: u64,
    /// Wall time in seconds.
    pub secs: f64,
    /// Files saved under another name than the share's (a name the destination cannot hold,
    /// or taken by another file).
    pub renamed: Vec<RenamedFile>,
    /// Where each selected file now is, in the share's order.
    pub paths: Vec<String>,
}

/// A file of a share saved under another name.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct RenamedFile {
    /// Its path in the share.
    pub path: String,
    /// Where it was saved, relative to the destination.
    pub saved_as: String,
    /// Why.
    pub reason: String,
}

impl From<CoreReport> for DownloadReport {
    fn from(r: CoreReport) -> Self {
        Self {
            content: r.content.to_string(),
            files: r.files as u64,
            bytes: r.bytes,
            fetched: r.fetched,
            resumed: r.resumed,
            skipped: r.skipped,
            secs: r.secs,
            renamed: r
                .renamed
                .into_iter()
                .map(|c| RenamedFile {
                    path: c.path,
                    saved_as: c.saved_as,
                    reason: c.reason,
                })
                .collect(),
            paths: paths(&r.paths),
        }
    }
}

/// Why a download, a dial or an offer failed, by what the user can do about it (the message
/// beside it says the rest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum FailureKind {
    /// No holder of the share could be reached, or none had it.
    NoProvider,
    /// Every holder failed or went away before the end.
    ProvidersFailed,
    /// Every copy within reach of some chunks is damaged.
    NoGoodCopy,
    /// The share's file list does not match its ticket, does not decode or holds an unsafe path.
    ManifestRejected,
    /// The destination lacks space.
    NoSpace,
    /// The destination cannot take the files (a link or a file where a folder goes, every name
    /// taken).
    Destination,
    /// Reading or writing a file failed.
    DiskError,
    /// The user cancelled.
    Cancelled,
    /// The node stopped (a download resumes at the next start).
    Stopped,
    /// The peer refused the connection (nothing listens there, or it denied it).
    Refused,
    /// The peer did not answer in time.
    Timeout,
    /// The peer could not be reached (no address, no route, the connection failed).
    Unreachable,
    /// Another device than the one expected answered.
    WrongPeer,
    /// Anything else.
    Other,
}

impl From<meshdrop_core::events::FailureKind> for FailureKind {
    fn from(k: meshdrop_core::events::FailureKind) -> Self {
        use meshdrop_core::events::FailureKind as K;
        match k {
            K::NoProvider => Self::NoProvider,
            K::ProvidersFailed => Self::ProvidersFailed,
            K::NoGoodCopy => Self::NoGoodCopy,
            K::ManifestRejected => Self::ManifestRejected,
            K::NoSpace => Self::NoSpace,
            K::Destination => Self::Destination,
            K::DiskError => Self::DiskError,
            K::Cancelled => Self::Cancelled,
            K::Stopped => Self::Stopped,
            K::Refused => Self::Refused,
            K::Timeout => Self::Timeout,
            K::Unreachable => Self::Unreachable,
            K::WrongPeer => Self::WrongPeer,
            K::Other => Self::Other,
        }
    }
}

/// What `verify` found in one share.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ShareCheck {
    /// The share's short id.
    pub id: String,
    /// The share's content id.
    pub content: String,
    /// Its top-level names.
    pub name: String,
    /// Files checked.
    pub files: u64,
    /// Bytes read and verified.
    pub bytes: u64,
    /// The files that did not verify.
    pub damaged: Vec<DamagedFile>,
}

/// A served file that did not verify, and what became of it.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct DamagedFile {
    /// Its path in the share.
    pub file: String,
    /// Where it is on disk.
    pub path: String,
    /// How many chunks did not verify.
    pub chunks: u64,
    /// `changed` (edited since it was shared), `corrupt` (damaged on disk) or `missing`.
    pub damage: String,
    /// Whether it was fetched again from peers.
    pub repaired: bool,
    /// Why it was not.
    pub error: Option<String>,
}

/// The name of a kind of damage, as events and results say it.
pub(crate) fn damage_name(d: meshdrop_core::transfer::Damage) -> String {
    use meshdrop_core::transfer::Damage;
    match d {
        Damage::Changed => "changed",
        Damage::Corrupt => "corrupt",
        Damage::Missing => "missing",
    }
    .to_string()
}

impl From<meshdrop_core::transfer::ShareHealth> for ShareCheck {
    fn from(s: meshdrop_core::transfer::ShareHealth) -> Self {
        Self {
            id: s.id,
            content: s.content.to_string(),
            name: s.name,
            files: s.files as u64,
            bytes: s.bytes,
            damaged: s
                .damaged
                .into_iter()
                .map(|f| DamagedFile {
                    file: f.file,
                    path: f.path.display().to_string(),
                    chunks: f.chunks.len() as u64,
                    damage: damage_name(f.damage),
                    repaired: f.repaired,
                    error: f.error,
                })
                .collect(),
        }
    }
}

/// How an offer ended for the sender.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum SendOutcome {
    /// The receiver has every accepted file, verified.
    Delivered {
        /// Bytes delivered.
        bytes: u64,
    },
    /// The receiver said no.
    Declined {
        /// Why.
        reason: String,
    },
    /// The receiver accepted but its download failed.
    Failed {
        /// The receiver's error.
        error: String,
        /// What kind of failure (`Other` from a receiver too old to say).
        kind: FailureKind,
    },
}

impl From<offer::SendOutcome> for SendOutcome {
    fn from(o: offer::SendOutcome) -> Self {
        match o {
            offer::SendOutcome::Delivered { bytes } => Self::Delivered { bytes },
            offer::SendOutcome::Declined { reason } => Self::Declined { reason },
            offer::SendOutcome::Failed { error, kind } => Self::Failed {
                error,
                kind: kind.into(),
            },
        }
    }
}

/// What room attachments a node fetches by itself (as chat apps auto-download media).
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Record)]
pub struct AutoFetchSettings {
    /// The largest attachment fetched by itself, in bytes (0: none).
    pub max_message_bytes: u64,
    /// Bytes fetched by themselves per room, all its attachments together.
    pub room_budget_bytes: u64,
    /// Bytes fetched to carry files for each contact who asks.
    pub carry_budget_bytes: u64,
    /// Fetch on battery too.
    pub on_battery: bool,
    /// Fetch on a metered network too.
    pub on_metered: bool,
}

impl From<meshdrop_core::AutoFetch> for AutoFetchSettings {
    fn from(a: meshdrop_core::AutoFetch) -> Self {
        Self {
            max_message_bytes: a.max_message_bytes,
            room_budget_bytes: a.room_budget_bytes,
            carry_budget_bytes: a.carry_budget_bytes,
            on_battery: a.on_battery,
            on_metered: a.on_metered,
        }
    }
}

impl From<AutoFetchSettings> for meshdrop_core::AutoFetch {
    fn from(a: AutoFetchSettings) -> Self {
        Self {
            max_message_bytes: a.max_message_bytes,
            room_budget_bytes: a.room_budget_bytes,
            carry_budget_bytes: a.carry_budget_bytes,
            on_battery: a.on_battery,
            on_metered: a.on_metered,
        }
    }
}

/// How much a node uploads now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Record)]
pub struct UploadLimits {
    /// Bytes per second served to all peers together; `None`: no limit.
    pub max_upload_rate: Option<u64>,
    /// Requests served at once.
    pub upload_slots: u32,
}

/// An offer received that waits for an answer.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct PendingOffer {
    /// The offer's id.
    pub offer_id: u64,
    /// The sender.
    pub peer_id: String,
    /// The name the sender gives itself (a claim).
    pub name: String,
    /// The name the user gave the sender, when a contact (`None`: a stranger).
    pub contact_name: Option<String>,
    /// The code both screens show.
    pub verification_code: String,
    /// Bytes offered.
    pub total: u64,
    /// The files offered.
    pub files: Vec<OfferedFile>,
    /// Seconds left before it is declined unanswered.
    pub expires_in_secs: u64,
}

impl From<offer::PendingOffer> for PendingOffer {
    fn from(o: offer::PendingOffer) -> Self {
        Self {
            offer_id: o.offer,
            peer_id: o.peer.to_string(),
            name: o.name,
            contact_name: o.contact,
            verification_code: o.verification_code,
            total: o.total,
            files: o.files.into_iter().map(Into::into).collect(),
            expires_in_secs: o.expires_in_secs,
        }
    }
}

/// A download that has not finished: running, waiting for someone who has the share, or
/// interrupted (the next start resumes it).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct UnfinishedDownload {
    /// The share's content id.
    pub content: String,
    /// Where it goes.
    pub dest: String,
}

impl From<meshdrop_core::transfer::state::UnfinishedDownload> for UnfinishedDownload {
    fn from(d: meshdrop_core::transfer::state::UnfinishedDownload) -> Self {
        Self {
            content: d.content.to_string(),
            dest: d.dest.display().to_string(),
        }
    }
}

/// A ticket drawn as a QR code: `size` × `size` modules, row after row, `true` for dark.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct QrCode {
    /// Modules per side.
    pub size: u32,
    /// Every module, row-major.
    pub modules: Vec<bool>,
}

/// A ticket as a QR code for the app to draw.
#[uniffi::export]
pub fn ticket_qr(ticket: String) -> Result<QrCode, MeshdropError> {
    let qr = ticket.parse::<meshdrop_core::Ticket>()?.qr()?;
    Ok(QrCode {
        size: qr.size as u32,
        modules: qr.dark,
    })
}

/// What a platform's DNS-SD driver advertises for this node (Bonjour `NWListener`, Android NSD).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Advertisement {
    /// The service type, without domain: `_meshdrop._udp`.
    pub service_type: String,
    /// The instance name.
    pub instance_name: String,
    /// The port for the SRV record.
    pub port: u16,
    /// The TXT record.
    pub txt: HashMap<String, String>,
}

/// Addresses (or anything displayable) as strings.
pub(crate) fn strings<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

/// Paths as strings.
pub(crate) fn paths(items: &[std::path::PathBuf]) -> Vec<String> {
    items.iter().map(|p| p.display().to_string()).collect()
}

/// Parses every string, naming the first bad one.
pub(crate) fn parse_all<T>(what: &str, items: &[String]) -> Result<Vec<T>, MeshdropError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    items.iter().map(|s| parse(what, s)).collect()
}

/// Parses one string, naming it when bad.
pub(crate) fn parse<T>(what: &str, s: &str) -> Result<T, MeshdropError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| invalid(what, s, e))
}
