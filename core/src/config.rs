//! What a node is started with.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use serde::{Deserialize, Serialize};

use crate::messaging::{CarryQuota, InboxQuota, MessagingConfig, StorageBudget};
use crate::transfer::limits::TransferLimits;
use crate::transfer::names::NameRules;
use crate::transfer::{TransferConfig, Visibility};

/// Configuration of a [`crate::Node`].
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Where the identity key and the SQLite store live.
    pub data_dir: PathBuf,
    /// The device name shown to others; `None` keeps the stored name (or the host name on first start).
    pub name: Option<String>,
    /// The addresses to listen on. TCP and QUIC, ephemeral ports by default.
    pub listen: Vec<Multiaddr>,
    /// Advertise and browse with mDNS on the interfaces of the listen addresses.
    pub mdns: bool,
    /// Re-dial peers seen within this window at start (a fallback when multicast is blocked).
    pub redial_recent: Duration,
    /// Minimum time between progress events of a transfer (zero: one per chunk).
    pub progress_interval: Duration,
    /// Restart, at start, the downloads that were running when the node last stopped or died.
    pub resume_downloads: bool,
    /// Added to the system clock when stamping messages (tests simulate skewed device clocks).
    pub clock_offset_ms: i64,
    /// How long a message this node writes may travel before it expires undelivered.
    pub message_ttl: Duration,
    /// How much this node carries for others.
    pub carry: CarryQuota,
    /// Upload and download rates and upload slots.
    pub limits: TransferLimits,
    /// How many messages one author may make this node store for itself and its rooms.
    pub inbox: InboxQuota,
    /// How much contacts and strangers may make this node store (messages for it, room
    /// messages, carried envelopes and receipts): strangers 16 MiB and 5,000 envelopes together,
    /// contacts 64 MiB and 20,000; a full class loses its oldest items first.
    pub storage: StorageBudget,
    /// How often the node pulls from every connected peer without being poked: a backstop (failed
    /// pulls and pokes are tried again at once with backoff; peers in sync exchange three small
    /// frames). Zero: never.
    pub message_resync: Duration,
    /// Relays to hold a slot on, so devices on other networks reach this one through them (each
    /// address ends in `/p2p/<relay peer id>`, as `meshdrop relay` prints it). Empty: LAN only.
    pub relays: Vec<Multiaddr>,
    /// Who may offer this device files at start (default: contacts).
    pub visibility: Visibility,
    /// How long a message's attached files are served unless pinned (default: 7 days).
    pub attachment_ttl: Duration,
    /// Refuse new connections while this process's resident memory is above this many bytes:
    /// for a process that is only the node (`meshdrop run`: [`crate::net::MAX_MEMORY`]). `None`
    /// (the default) inside an app, whose memory is mostly the app's own.
    pub max_process_memory: Option<usize>,
    /// What names download destinations hold; `None` (the default): probed on each destination
    /// (a shared-storage app may know better, and tests play other platforms with it).
    pub name_rules: Option<NameRules>,
    /// The largest manifest an offer may have (default 1 MiB, about 20,000 files): what a
    /// stranger can make this device fetch and decode before anyone said yes.
    pub max_offer_manifest: usize,
    /// How long a download waits with no holder of its share in reach before it gives up (it is
    /// kept, and resumes when started again or at the next start); `None` (the default): until
    /// it is cancelled or the node stops, as an app or a running node wants.
    pub holder_wait: Option<Duration>,
    /// What room attachments the node fetches by itself (see [`AutoFetch`]).
    pub auto_fetch: AutoFetch,
    /// Where room attachments fetched by themselves go (`<dir>/<room id>/`); `None`: the data
    /// dir's `attachments`.
    pub attachments_dir: Option<PathBuf>,
    /// Serve corrupt chunks (a test's malicious provider; see [`NodeConfig::with_corrupt_chunks`]).
    corrupt_chunks: bool,
    /// Ignore pokes (a test's lost pokes; see [`NodeConfig::with_dropped_pokes`]).
    drop_pokes: bool,
}

impl NodeConfig {
    /// Listen on every interface (IPv4 and IPv6, TCP and QUIC, ephemeral ports), with mDNS.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self::bound_to(
            data_dir,
            &[
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ],
        )
    }

    /// Listen only on the given addresses (the interface allow-list), TCP and QUIC, ephemeral ports,
    /// with mDNS limited to the interfaces that carry them.
    pub fn bound_to(data_dir: impl Into<PathBuf>, ips: &[IpAddr]) -> Self {
        Self {
            data_dir: data_dir.into(),
            name: None,
            listen: ips.iter().flat_map(|ip| listen_addrs(*ip)).collect(),
            mdns: true,
            redial_recent: Duration::from_secs(7 * 24 * 3600),
            progress_interval: Duration::from_millis(250),
            resume_downloads: true,
            clock_offset_ms: 0,
            message_ttl: Duration::from_secs(7 * 24 * 3600),
            carry: Default::default(),
            limits: Default::default(),
            inbox: Default::default(),
            storage: Default::default(),
            message_resync: Duration::from_secs(30),
            relays: Vec::new(),
            visibility: Visibility::Contacts,
            attachment_ttl: Duration::from_secs(7 * 24 * 3600),
            max_process_memory: None,
            name_rules: None,
            max_offer_manifest: crate::transfer::offer::MAX_OFFER_MANIFEST,
            holder_wait: None,
            auto_fetch: AutoFetch::default(),
            attachments_dir: None,
            corrupt_chunks: false,
            drop_pokes: false,
        }
    }

    /// Loopback only: what tests, benchmarks and the demo use.
    pub fn loopback(data_dir: impl Into<PathBuf>) -> Self {
        Self::bound_to(data_dir, &[IpAddr::V4(Ipv4Addr::LOCALHOST)])
    }

    /// Sets the device name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Turns mDNS discovery on or off.
    pub fn with_mdns(mut self, on: bool) -> Self {
        self.mdns = on;
        self
    }

    /// Adds relays to hold a slot on.
    pub fn with_relays(mut self, relays: impl IntoIterator<Item = Multiaddr>) -> Self {
        self.relays.extend(relays);
        self
    }

    /// Flips a bit in every chunk this node serves: a corrupt or malicious provider (tests).
    #[cfg(any(test, feature = "faults"))]
    pub fn with_corrupt_chunks(mut self) -> Self {
        self.corrupt_chunks = true;
        self
    }

    /// Ignores every poke received, as when the inbound stream slot was full (tests).
    #[cfg(any(test, feature = "faults"))]
    pub fn with_dropped_pokes(mut self) -> Self {
        self.drop_pokes = true;
        self
    }

    /// How the transfer capability is set up.
    pub(crate) fn transfers(&self) -> TransferConfig {
        TransferConfig {
            limits: self.limits,
            progress_interval: self.progress_interval,
            visibility: self.visibility,
            name_rules: self.name_rules,
            max_offer_manifest: self.max_offer_manifest,
            holder_wait: self.holder_wait,
            corrupt_chunks: self.corrupt_chunks,
        }
    }

    /// How messaging is set up.
    pub(crate) fn messaging(&self) -> MessagingConfig {
        MessagingConfig {
            clock_offset_ms: self.clock_offset_ms,
            ttl: self.message_ttl,
            carry: self.carry,
            inbox: self.inbox,
            storage: self.storage,
            resync: self.message_resync,
            drop_pokes: self.drop_pokes,
        }
    }

    /// The IPs the node listens on, which also select the mDNS interfaces.
    pub(crate) fn listen_ips(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = self
            .listen
            .iter()
            .filter_map(|a| match a.iter().next() {
                Some(Protocol::Ip4(ip)) => Some(IpAddr::V4(ip)),
                Some(Protocol::Ip6(ip)) => Some(IpAddr::V6(ip)),
                _ => None,
            })
            .collect();
        ips.sort();
        ips.dedup();
        ips
    }
}

/// TCP and QUIC listen addresses with ephemeral ports on `ip`.
fn listen_addrs(ip: IpAddr) -> [Multiaddr; 2] {
    let base = Multiaddr::from(ip);
    [
        base.clone().with(Protocol::Tcp(0)),
        base.with(Protocol::Udp(0)).with(Protocol::QuicV1),
    ]
}

/// What a node fetches by itself of what rooms attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoFetch {
    /// The largest attachment fetched by itself, in bytes (0: none).
    pub max_message_bytes: u64,
    /// Bytes fetched by itself per room, all its attachments together.
    pub room_budget_bytes: u64,
    /// Bytes fetched to carry files for each contact who asks (see `Node::send_carried`).
    pub carry_budget_bytes: u64,
    /// Fetch on battery too.
    pub on_battery: bool,
    /// Fetch on a metered network too.
    pub on_metered: bool,
}

impl Default for AutoFetch {
    /// 50 MB per message, 1 GB per room, 2 GB carried per contact, on mains power and
    /// unmetered networks only.
    fn default() -> Self {
        Self {
            max_message_bytes: 50_000_000,
            room_budget_bytes: 1_000_000_000,
            carry_budget_bytes: 2_000_000_000,
            on_battery: false,
            on_metered: false,
        }
    }
}
