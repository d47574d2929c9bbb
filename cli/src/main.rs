//! `meshdrop`: run a node, find nearby devices, connect to them. See `meshdrop --help`.

mod commands;
mod control;
mod demo;
mod output;

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print this device's peer id and name.
    Id,
    /// Run the node in the foreground until Ctrl-C, printing events.
    Run,
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
    /// Run several real nodes on this machine (loopback only) and report what happened.
    Demo {
        /// How many nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
