//! `share` and `get`: pass files with a ticket. Each command starts its own node on the data dir
//! (a `meshdrop run` holding the same data dir makes it fail with a clear message).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};
use meshdrop_core::{DownloadError, DownloadSpec, Event, Node, NodeConfig, Ticket};
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::broadcast::error::RecvError;

use crate::Cli;
use crate::commands::config;
use crate::output::Output;

/// What `get` was asked for.
pub struct GetArgs<'a> {
    /// The ticket as typed.
    pub ticket: Option<&'a str>,
    /// A file holding the ticket.
    pub ticket_file: Option<&'a Path>,
    /// The destination folder (default: the current directory).
    pub dest: Option<&'a Path>,
    /// Keep serving after the download.
    pub seed: bool,
    /// One progress event per verified chunk.
    pub progress_every_chunk: bool,
}

/// SIGINT or SIGTERM: the ways a user or a service manager asks a command to stop.
struct StopSignals {
    term: Signal,
}

impl StopSignals {
    fn new() -> Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// Starts a node for this command, explaining the one error users hit most.
pub(crate) async fn start(config: NodeConfig) -> Result<Node> {
    Node::start(config).await.map_err(|e| match e {
        meshdrop_core::Error::AlreadyRunning { path } => anyhow!(
            "another meshdrop node is already running on data dir {} (e.g. `meshdrop run`): \
             stop it, or pass another --data-dir to this command",
            path.display()
        ),
        e => e.into(),
    })
}

/// `meshdrop share`: prints the ticket first, then seeds until SIGINT or SIGTERM.
pub async fn share(
    cli: &Cli,
    data_dir: &Path,
    out: Output,
    paths: &[PathBuf],
    qr: bool,
    ticket_file: Option<&Path>,
) -> Result<()> {
    let mut stop = StopSignals::new()?;
    let node = start(config(cli, data_dir)?).await?;
    let mut events = node.events();
    let shared = tokio::select! {
        t = node.share(paths.to_vec()) => t.map_err(anyhow::Error::from),
        _ = stop.recv() => Err(anyhow!("interrupted while hashing the files")),
    };
    let ticket = match shared {
        Ok(t) => t,
        Err(e) => {
            node.stop().await?;
            return Err(e);
        }
    };
    if let Some(file) = ticket_file
        && let Err(e) = ticket.write_file(file)
    {
        node.stop().await?;
        return Err(e.into());
    }
    let (files, bytes) = share_size(paths);
    out.ticket(&ticket, files, bytes);
    if qr {
        match qr_text(&ticket) {
            Ok(code) => eprintln!("{code}"),
            Err(e) => tracing::warn!("cannot draw the ticket as a QR code: {e}"),
        }
    }
    if !out.json {
        let plural = if files == 1 { "" } else { "s" };
        eprintln!(
            "sharing {files} file{plural} ({}); seeding until Ctrl-C",
            HumanBytes(bytes)
        );
    }
    // Uploads are not reported yet: print what the node says (listening, peers) until stopped.
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => out.event(&ev),
                Err(RecvError::Lagged(n)) => tracing::warn!("{n} events were not printed"),
                Err(RecvError::Closed) => break,
            },
            _ = stop.recv() => break,
        }
    }
    node.stop().await?;
    Ok(())
}

/// The files and bytes a share of `paths` holds, counted the way the manifest is built: regular
/// files inside the given files and folders, symlinks and special files left out.
fn share_size(paths: &[PathBuf]) -> (usize, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_file() {
            files += 1;
            bytes += meta.len();
        } else if meta.is_dir()
            && let Ok(dir) = std::fs::read_dir(&path)
        {
            stack.extend(dir.filter_map(|e| e.ok().map(|e| e.path())));
        }
    }
    (files, bytes)
}

/// The ticket as a QR code drawn with Unicode half blocks (light on dark, as terminals show it).
/// Upper case lets the QR code use its compact alphanumeric mode; tickets read either case.
fn qr_text(ticket: &Ticket) -> Result<String> {
    let code = QrCode::new(ticket.to_string().to_ascii_uppercase())?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .build())
}

/// `meshdrop get`: downloads with a progress bar (or JSON events), prints the result, and seeds
/// afterwards when asked. Succeeds only when every file verified.
pub async fn get(cli: &Cli, data_dir: &Path, out: Output, args: GetArgs<'_>) -> Result<()> {
    let ticket = match (args.ticket, args.ticket_file) {
        (Some(text), _) => text.parse::<Ticket>()?,
        (None, Some(file)) => Ticket::read_file(file)?,
        (None, None) => return Err(anyhow!("give a ticket, or --ticket-file F")),
    };
    let dest = match args.dest {
        Some(d) => d.to_path_buf(),
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    let mut stop = StopSignals::new()?;
    let mut config = config(cli, data_dir)?;
    if args.progress_every_chunk {
        config.progress_interval = Duration::ZERO;
    }
    let node = start(config).await?;
    let mut events = node.events();
    let bar = Bar::new(out.json);
    let handle = node.download(DownloadSpec {
        ticket: ticket.clone(),
        dest: dest.clone(),
        files: None,
    });
    let id = handle.id;

    // Follow the events until this transfer's last one; a signal cancels it, keeping partial
    // data. Only when events were lost is the handle awaited directly (it cannot be cancelled then).
    let mut interrupted = false;
    let mut lost_events = false;
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(Event::TransferFinished { transfer, .. }) if transfer == id => break,
                Ok(ev) => {
                    let last = matches!(ev, Event::TransferFailed { transfer, .. } if transfer == id);
                    bar.show(&ev, id);
                    if out.json {
                        out.event(&ev);
                    }
                    if last {
                        break;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!("{n} events were not printed (output too slow)");
                    lost_events = true;
                    break;
                }
                Err(RecvError::Closed) => break,
            },
            _ = stop.recv(), if !interrupted => {
                interrupted = true;
                bar.say("stopping: partial data is kept");
                handle.cancel(true);
            }
        }
    }
    let result = if lost_events {
        tokio::select! {
            r = handle.wait() => r,
            _ = stop.recv() => Err(DownloadError::Cancelled),
        }
    } else {
        handle.wait().await
    };
    bar.clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            node.stop().await?;
            return Err(explain(e, interrupted));
        }
    };
    let dest = dest.canonicalize().unwrap_or(dest);
    out.download_finished(id, &dest, &report);
    if args.seed {
        out.seeding(&node.ticket_for(report.content));
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) => out.event(&ev),
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                },
                _ = stop.recv() => break,
            }
        }
    }
    node.stop().await?;
    Ok(())
}

/// A download error as one line a user can act on.
fn explain(e: DownloadError, interrupted: bool) -> anyhow::Error {
    match e {
        DownloadError::Cancelled if interrupted => {
            anyhow!("interrupted: the partial data is kept; run the same command again to resume")
        }
        DownloadError::NoSpace {
            path,
            needed,
            available,
        } => anyhow!(
            "not enough free space in {}: {} still to download, {} available; nothing was written",
            path.display(),
            HumanBytes(needed),
            HumanBytes(available)
        ),
        DownloadError::Io { path, source } if source.kind() == ErrorKind::StorageFull => anyhow!(
            "the disk is full (writing {}): the verified part is kept; free some space and run \
             the same command again to resume",
            path.display()
        ),
        e => anyhow!("download failed: {e}"),
    }
}

/// The progress bar on stderr; nothing in JSON mode (progress events are printed instead).
struct Bar(Option<ProgressBar>);

impl Bar {
    fn new(json: bool) -> Self {
        if json {
            return Self(None);
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} {wide_bar} {binary_bytes}/{binary_total_bytes} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message("connecting to the providers…");
        bar.enable_steady_tick(Duration::from_millis(200));
        Self(Some(bar))
    }

    /// Moves the bar on a progress event of `transfer`.
    fn show(&self, event: &Event, transfer: u64) {
        let (
            Some(bar),
            Event::TransferProgress {
                transfer: t,
                done,
                total,
                rate,
                eta_secs,
                peers,
                ..
            },
        ) = (&self.0, event)
        else {
            return;
        };
        if *t != transfer {
            return;
        }
        bar.set_length(*total);
        bar.set_position(*done);
        let eta = eta_secs.map_or_else(
            || "-".to_string(),
            |s| HumanDuration(Duration::from_secs(s)).to_string(),
        );
        let from = match peers.len() {
            1 => "1 peer".to_string(),
            n => format!("{n} peers"),
        };
        bar.set_message(format!("{}/s, {eta} left, {from}", HumanBytes(*rate)));
    }

    /// Prints a line above the bar (text mode only).
    fn say(&self, text: &str) {
        // In JSON mode the final error line says it: stderr stays one line.
        if let Some(bar) = &self.0 {
            bar.suspend(|| eprintln!("{text}"));
        }
    }

    fn clear(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
