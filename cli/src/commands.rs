//! One function per subcommand. Commands other than `run`, `relay` and `demo` ask the node
//! running on the data dir, or start one for their own duration when none runs (`id`, `inbox`,
//! `contacts` and `room` open the data dir without a node instead; `visibility` needs the
//! running node).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use meshdrop_core::transfer::Visibility;
use meshdrop_core::transfer::limits::TransferLimits;
use meshdrop_core::{Multiaddr, Node, NodeConfig};

use crate::control::{Backend, server};
use crate::output::Output;
use crate::{Cli, Command};

/// Runs the chosen subcommand.
pub async fn dispatch(cli: Cli) -> Result<()> {
    let out = Output { json: cli.json };
    let data_dir = match &cli.data_dir {
        Some(d) => d.clone(),
        None => default_data_dir()?,
    };
    let data_dir = data_dir.as_path();
    match &cli.command {
        Command::Id => id(&cli, data_dir, out).await,
        Command::Run {
            accept, out: dest, ..
        } => {
            let dest = match dest {
                Some(d) => {
                    std::path::absolute(d).with_context(|| format!("cannot use {}", d.display()))?
                }
                None => receive_dir(data_dir),
            };
            let answerer = crate::push::Answerer::new(*accept, dest);
            run(&cli, data_dir, out, answerer).await
        }
        Command::Send { peer, paths, wait } => {
            let wait = Duration::from_secs(*wait);
            crate::push::send(&cli, data_dir, out, peer, paths, wait).await
        }
        Command::Peers { timeout } => peers(&cli, data_dir, out, *timeout).await,
        Command::Connect { address } => connect(&cli, data_dir, out, address).await,
        Command::Contacts { command } => {
            crate::contacts::run(data_dir, out, command.as_ref()).await
        }
        Command::Shares => crate::shares::list(&cli, data_dir, out).await,
        Command::Unshare { id } => crate::shares::unshare(&cli, data_dir, out, id).await,
        Command::Verify { share } => {
            crate::shares::verify(&cli, data_dir, out, share.as_deref()).await
        }
        Command::Visibility { set } => visibility(data_dir, out, set.map(Into::into)).await,
        Command::Demo { nodes } => crate::demo::run(*nodes, out).await,
        Command::Relay(opts) => crate::relay::run(data_dir, out, &cli.bind, opts).await,
        Command::Msg {
            peer,
            text,
            attach,
            pin,
            carry,
            wait,
        } => {
            let send = crate::messaging::Send {
                to: peer,
                text,
                attach,
                pin: *pin,
                carry,
                wait: Duration::from_secs(*wait),
            };
            crate::messaging::msg(&cli, data_dir, out, send).await
        }
        Command::Inbox => crate::messaging::inbox(data_dir, out).await,
        Command::Chat { room, peer } => {
            crate::messaging::chat(&cli, data_dir, out, room.as_deref(), peer.as_deref()).await
        }
        Command::Room { command } => crate::messaging::room(data_dir, out, command).await,
        Command::Share(opts) => crate::transfer::share(&cli, data_dir, out, opts).await,
        Command::Get(opts) => crate::transfer::get(&cli, data_dir, out, opts).await,
    }
}

/// Paths a user typed, made absolute (a running node has another working directory).
pub fn absolute(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    paths
        .iter()
        .map(|p| std::path::absolute(p).with_context(|| format!("cannot use {}", p.display())))
        .collect()
}

fn default_data_dir() -> Result<PathBuf> {
    directories::ProjectDirs::from("", "", "meshdrop")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| anyhow!("no home directory: pass --data-dir"))
}

/// Where `run` puts accepted offers by default: a folder of their own, `meshdrop` in the
/// platform's Downloads folder, else `<data dir>/received`; never the current directory or home.
pub fn receive_dir(data_dir: &Path) -> PathBuf {
    directories::UserDirs::new()
        .and_then(|u| u.download_dir().map(|d| d.join("meshdrop")))
        .unwrap_or_else(|| data_dir.join("received"))
}

/// Who may offer files to a node this command starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Visible {
    /// Nobody: every offer is declined at once.
    Off,
    /// Contacts only: strangers' offers are declined at once.
    Contacts,
    /// Everyone nearby may offer (`run --accept` decides).
    Everyone,
}

impl From<Visible> for Visibility {
    fn from(v: Visible) -> Self {
        match v {
            Visible::Off => Visibility::Off,
            Visible::Contacts => Visibility::Contacts,
            Visible::Everyone => Visibility::Everyone,
        }
    }
}

/// The word for a visibility, as `--visible` takes it.
pub fn visibility_word(v: Visibility) -> &'static str {
    match v {
        Visibility::Off => "off",
        Visibility::Contacts => "contacts",
        Visibility::Everyone => "everyone",
    }
}

/// Parses a multiaddr typed by a user, with an error that says what a valid one looks like.
pub fn parse_multiaddr(s: &str) -> Result<Multiaddr> {
    s.trim().parse::<Multiaddr>().map_err(|e| {
        anyhow!(
            "invalid multiaddr {s:?} ({e}); expected e.g. /ip4/192.168.1.7/tcp/4001/p2p/12D3Koo…"
        )
    })
}

/// Parses a rate in bytes per second: a number with an optional unit, B, KB, MB, GB (powers of
/// 1000), KiB, MiB, GiB (powers of 1024) or kbit, mbit, gbit (bits).
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a rate; try 2MB, 500KiB or 20mbit"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "kbit" => 1e3 / 8.0,
        "mbit" => 1e6 / 8.0,
        "gbit" => 1e9 / 8.0,
        other => {
            return Err(format!(
                "unknown rate unit {other:?}; use B, KB, MB, GB, KiB, MiB, GiB, kbit, mbit or gbit"
            ));
        }
    };
    let rate = (number * scale).round();
    if rate < 1.0 {
        return Err(format!("{s:?} is below one byte per second"));
    }
    Ok(rate as u64)
}

/// The node configuration the global flags ask for.
pub(crate) fn config(cli: &Cli, data_dir: &Path) -> Result<NodeConfig> {
    let mut config = if cli.bind.is_empty() {
        NodeConfig::new(data_dir)
    } else {
        NodeConfig::bound_to(data_dir, &cli.bind)
    };
    config.name = cli.name.clone();
    config.mdns = !cli.no_mdns;
    // No time bound on the desktop: as given, until the node stops or is told otherwise.
    config.visibility = cli.visible.into();
    config.limits = TransferLimits {
        max_upload_rate: cli.max_upload_rate,
        max_download_rate: cli.max_download_rate,
        upload_slots: cli.upload_slots.into(),
    };
    // Only a long-running node picks up interrupted downloads; `get` resumes its own.
    config.resume_downloads = matches!(cli.command, crate::Command::Run { .. });
    if let crate::Command::Run {
        auto_fetch_max,
        auto_fetch_budget,
        ..
    } = cli.command
    {
        config.auto_fetch.max_message_bytes = auto_fetch_max;
        config.auto_fetch.room_budget_bytes = auto_fetch_budget;
    } else {
        // Only a long-running node fetches room attachments by itself.
        config.auto_fetch.max_message_bytes = 0;
    }
    // The process is the node: past this much memory, new connections wait.
    config.max_process_memory = Some(meshdrop_core::net::MAX_MEMORY);
    for relay in &cli.relays {
        config.relays.push(parse_multiaddr(relay)?);
    }
    Ok(config)
}

/// `id`: this device's peer id and name (`--name` renames it when no node runs).
async fn id(cli: &Cli, data_dir: &Path, out: Output) -> Result<()> {
    let mut backend = Backend::offline(data_dir, cli.name.as_deref()).await?;
    let (peer, name) = backend.id().await?;
    out.id(&peer.to_string(), &name);
    Ok(())
}

/// `run`: the node in the foreground, with its control server, until SIGINT or SIGTERM.
async fn run(
    cli: &Cli,
    data_dir: &Path,
    out: Output,
    mut answerer: crate::push::Answerer,
) -> Result<()> {
    let node = Node::start(config(cli, data_dir)?)
        .await
        .map_err(|e| match e {
            meshdrop_core::Error::AlreadyRunning { path } => anyhow!(
                "another meshdrop node is already running on data dir {}: stop it, or pass another \
             --data-dir",
                path.display()
            ),
            e => e.into(),
        })?;
    let mut events = node.events();
    crate::links::start(&node, &cli.links).await?;
    let server = server::serve(node.clone(), data_dir)?;
    answerer.announce(out, node.visibility());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => {
                    out.event(&ev);
                    if let Some(offer) = crate::prompt::Offer::of(&ev) {
                        // A prompt nobody answers never keeps the node from stopping.
                        tokio::select! {
                            answered = answerer.answer(&node, out, &offer) => {
                                if let Err(e) = answered {
                                    tracing::warn!(error = %e, "cannot answer the offer");
                                }
                            }
                            _ = tokio::signal::ctrl_c() => break,
                            _ = term.recv() => break,
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("{n} events were not printed (output too slow)");
                }
                Err(_) => break,
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    server.abort();
    let _ = std::fs::remove_file(crate::control::socket_path(data_dir));
    node.stop().await?;
    // Print what happened during the stop (peers told, the final `stopped`).
    while let Ok(ev) = events.try_recv() {
        out.event(&ev);
    }
    Ok(())
}

/// `visibility [LEVEL]`: who may offer files to the running node, changed first when given.
async fn visibility(data_dir: &Path, out: Output, set: Option<Visibility>) -> Result<()> {
    let mut backend = Backend::offline(data_dir, None).await?;
    if !matches!(backend, Backend::Remote(_)) {
        bail!(
            "no node runs on this data dir: start one with `meshdrop --visible WHO run` (WHO: \
             off, contacts or everyone)"
        );
    }
    let now = visibility_word(backend.visibility(set).await?);
    if out.json {
        out.raw(&serde_json::json!({"event": "visibility", "visible": now}));
    } else {
        println!("visible to: {now}");
    }
    Ok(())
}

/// `peers`: the running node's list, or what a node started here finds within `timeout` seconds.
async fn peers(cli: &Cli, data_dir: &Path, out: Output, timeout: u64) -> Result<()> {
    let mut backend = Backend::node(data_dir, config(cli, data_dir)?, &cli.links).await?;
    if let Backend::Local(_) = backend {
        // Nobody was listening before: give discovery the time the user allowed.
        tokio::time::sleep(Duration::from_secs(timeout)).await;
    }
    let list = backend.peers().await;
    backend.close().await?;
    out.peers(&list?);
    Ok(())
}

/// `connect ADDRESS`: dials a peer by multiaddr and prints its verification code.
async fn connect(cli: &Cli, data_dir: &Path, out: Output, address: &str) -> Result<()> {
    parse_multiaddr(address)?;
    let mut backend = Backend::node(data_dir, config(cli, data_dir)?, &cli.links).await?;
    let connected = backend.connect(address).await;
    backend.close().await?;
    let (peer, code) = connected?;
    out.connected(&peer.to_string(), &code);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_rate;

    #[test]
    fn rates_read_as_people_write_them() {
        assert_eq!(parse_rate("2MB"), Ok(2_000_000));
        assert_eq!(parse_rate("500KiB"), Ok(512_000));
        assert_eq!(parse_rate("20mbit"), Ok(2_500_000));
        assert_eq!(parse_rate("1.5 GiB"), Ok(1_610_612_736));
        assert_eq!(parse_rate("4096"), Ok(4096));
        assert!(parse_rate("fast").unwrap_err().contains("not a rate"));
        assert!(
            parse_rate("3 parsecs")
                .unwrap_err()
                .contains("unknown rate unit")
        );
        assert!(parse_rate("0").unwrap_err().contains("below one byte"));
    }
}
