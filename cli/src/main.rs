//! `meshdrop`: run a node, find nearby devices, connect to them. See `meshdrop --help`.

mod commands;
mod contacts;
mod control;
mod demo;
mod demo_message;
mod demo_offer;
mod demo_relay;
mod links;
mod messaging;
mod output;
mod prompt;
mod push;
mod relay;
mod resolve;
mod shares;
mod text;
mod transfer;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Share files and chat with nearby devices, with no server in between.
#[derive(Parser, Debug)]
#[command(name = "meshdrop", version, about)]
pub struct Cli {
    /// Where this device keeps its identity and state (default: the platform's data dir).
    #[arg(long, global = true, env = "MESHDROP_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The device name others see (kept for later runs).
    #[arg(long, global = true)]
    name: Option<String>,
    /// Print every event and result as one JSON object per line.
    #[arg(long, global = true)]
    json: bool,
    /// Listen and discover only on the interfaces carrying these IPs (repeatable; default: all).
    #[arg(long = "bind", global = true, value_name = "IP")]
    bind: Vec<IpAddr>,
    /// Do not advertise or browse with mDNS (peers can still be added by address).
    #[arg(long, global = true)]
    no_mdns: bool,
    /// Most bytes per second served to all peers together, e.g. 2MB, 500KiB, 20mbit (default: no limit).
    #[arg(long, global = true, value_name = "RATE", value_parser = commands::parse_rate)]
    max_upload_rate: Option<u64>,
    /// Most bytes per second received by all downloads together (default: no limit).
    #[arg(long, global = true, value_name = "RATE", value_parser = commands::parse_rate)]
    max_download_rate: Option<u64>,
    /// Requests served at once, across peers; the others wait their turn.
    #[arg(long, global = true, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..))]
    upload_slots: u16,
    /// Hold a slot on this relay so devices on other networks reach this one (repeatable; the
    /// address `meshdrop relay` prints, ending in /p2p/<relay peer id>).
    #[arg(long = "relay", global = true, value_name = "MULTIADDR")]
    relays: Vec<String>,
    /// Who may offer files to the node this command starts: nobody, contacts only, or everyone
    /// nearby (kept until the node stops; `meshdrop visibility` changes a running node's).
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "WHO",
        default_value = "contacts"
    )]
    visible: commands::Visible,
    #[command(flatten)]
    links: links::LinkFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print this device's peer id and name.
    Id,
    /// Run the node in the foreground until Ctrl-C, printing events and answering offers.
    Run {
        /// What to do with files nearby devices offer: ask, all (from contacts; strangers'
        /// offers are declined), none.
        #[arg(long, value_enum, default_value = "ask")]
        accept: push::Accept,
        /// The folder accepted files go into, created when missing (default: the Downloads
        /// folder's `meshdrop`, else `<data dir>/received`).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Fetch room attachments up to this size by themselves (into `<data dir>/attachments`),
        /// e.g. 50MB; 0: none.
        #[arg(long, value_name = "SIZE", default_value = "50MB", value_parser = crate::commands::parse_rate)]
        auto_fetch_max: u64,
        /// What attachments fetched by themselves may take per room, e.g. 1GB.
        #[arg(long, value_name = "SIZE", default_value = "1GB", value_parser = crate::commands::parse_rate)]
        auto_fetch_budget: u64,
    },
    /// Offer files to a nearby device (a contact's name, a peer id, or a name a device claims);
    /// it accepts or declines.
    Send {
        /// The receiving device: a contact's name, a peer id, or the name it claims.
        peer: String,
        /// The files and folders to send.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// How long to look for the device (seconds).
        #[arg(long, default_value_t = 15)]
        wait: u64,
    },
    /// List peers discovered or connected.
    Peers {
        /// When no node runs, how long to look around (seconds).
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
    /// Connect to a peer by multiaddr, e.g. /ip4/192.168.1.7/tcp/4001/p2p/12D3Koo…
    Connect {
        /// The peer's address.
        address: String,
    },
    /// Share files and folders: print a ticket (the first line of output), then seed until Ctrl-C
    /// (a running node keeps seeding them instead).
    Share(transfer::ShareOpts),
    /// Download a share from its ticket; every file is verified, an interrupted download resumes.
    Get(transfer::GetOpts),
    /// Send a message to a peer (or a room): stored first, delivered directly or carried by others.
    Msg {
        /// The recipient: a contact's name, a peer id, `room:ID`, or the name a device claims.
        peer: String,
        /// The text.
        text: String,
        /// Attach files and folders: shared from this device, the message carries the ticket
        /// (the recipient downloads it with `meshdrop get`); served for 7 days.
        #[arg(long, value_name = "PATH", num_args = 1..)]
        attach: Vec<PathBuf>,
        /// Serve the attachment until `meshdrop unshare`, not only for 7 days.
        #[arg(long, requires = "attach")]
        pin: bool,
        /// Ask this contact (a name or a peer id; repeatable) to fetch and hold the attachment
        /// for the recipient, so it arrives through them with this device gone.
        #[arg(long, value_name = "CONTACT", requires = "attach")]
        carry: Vec<String>,
        /// When no node runs here, how long to try handing it over (seconds).
        #[arg(long, default_value_t = 30)]
        wait: u64,
    },
    /// List stored messages (with --json: one object per message).
    Inbox,
    /// The contacts: devices the user chose to trust, by the names the user gave them
    /// (list, add after comparing the code, rename, remove).
    Contacts {
        #[command(subcommand)]
        command: Option<contacts::ContactsCommand>,
    },
    /// List what this device serves: id, kind, name, size, since, bytes served, expiry.
    Shares,
    /// Stop serving a share at once (`meshdrop shares` lists the ids); its ticket opens nothing
    /// here any more.
    Unshare {
        /// The share's id.
        id: String,
    },
    /// Check what this device serves against each share's manifest (every byte read); a file
    /// that no longer verifies is no longer served and, when the share came from others, is
    /// fetched again from peers. Fails when a file stays damaged.
    Verify {
        /// The share's id (`meshdrop shares` lists them); every share when omitted.
        share: Option<String>,
    },
    /// Show, or change, who may offer files to the running node (until changed again).
    Visibility {
        /// The new visibility.
        #[arg(value_enum)]
        set: Option<commands::Visible>,
    },
    /// Chat on the terminal in a room or with a peer: incoming messages shown, typed lines sent.
    Chat {
        /// The room (name or id).
        #[arg(long)]
        room: Option<String>,
        /// The peer (a contact's name, a peer id, or the name a device claims).
        #[arg(long, conflicts_with = "room")]
        peer: Option<String>,
    },
    /// Create, join or list rooms.
    Room {
        #[command(subcommand)]
        command: messaging::RoomCommand,
    },
    /// Host a relay (libp2p circuit relay v2, with AutoNAT): devices behind NATs on different
    /// networks reach each other through it, then try to go direct. Prints its addresses first.
    Relay(relay::RelayOpts),
    /// Run several real nodes on this machine (loopback only) and report what happened.
    Demo {
        /// How many nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
    },
}

fn main() -> ExitCode {
    one_malloc_arena();
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(commands::dispatch(cli));
    // A thread blocked reading the terminal (`run --accept ask`, `chat`) never ends by itself.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors may quote what peers said (reasons, names).
            eprintln!("error: {}", text::clean(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (`target=level` pairs, as in `meshdrop_core=debug`);
/// warnings only by default.
fn init_logging() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::WARN));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();
}

/// glibc gives each thread that allocates an arena of its own; the node's few threads (the
/// runtime's workers, a download's writer and syncer) then each keep freed chunk buffers, which
/// only adds to resident memory. One arena is enough for this allocation rate.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called first thing in main, before any other thread exists or allocates.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
