//! `share` and `get`: pass files with a ticket. With a node running on the data dir, it shares
//! (and keeps seeding) and downloads (the download goes on there if this command ends early);
//! otherwise the command starts a node of its own for its duration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle};
use meshdrop_core::{DownloadError, DownloadSpec, Event, Node, Ticket, TransferControls};
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::Cli;
use crate::commands::{absolute, config};
use crate::control::running::Running;
use crate::control::{Backend, Call, Request, Response, Step, Update, ops};
use crate::output::Output;

/// What `share` is asked for.
#[derive(clap::Args, Debug)]
pub struct ShareOpts {
    /// The files and folders to share.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Also show the ticket as a QR code on the terminal (on stderr).
    #[arg(long)]
    qr: bool,
    /// Also write the ticket to this file.
    #[arg(long, value_name = "F")]
    ticket_file: Option<PathBuf>,
    /// Offer this device as a contact in the ticket (`get --add-contact` accepts it).
    #[arg(long)]
    offer_contact: bool,
}

/// What `get` is asked for.
#[derive(clap::Args, Debug)]
pub struct GetOpts {
    /// The ticket (`meshdrop2…`), as printed by `meshdrop share`.
    #[arg(
        required_unless_present = "ticket_file",
        conflicts_with = "ticket_file"
    )]
    ticket: Option<String>,
    /// Read the ticket from this file.
    #[arg(long, value_name = "F")]
    ticket_file: Option<PathBuf>,
    /// Where to put the files (default: the current directory).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Keep serving the share after the download until Ctrl-C (a running node seeds anyway).
    #[arg(long)]
    seed: bool,
    /// Accept the contact the ticket offers (its sender, made with `share --offer-contact`).
    #[arg(long)]
    add_contact: bool,
    /// With no one who has the share in reach, wait this long for one (the download is kept
    /// and resumes on the next `get` or `run`); a running node keeps waiting after this command
    /// stops following.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    wait: u64,
    /// Report progress after every verified chunk (tests; a running node keeps its own pace).
    #[arg(long, hide = true)]
    progress_every_chunk: bool,
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

/// `meshdrop share`: prints the ticket first; then a node of its own seeds until SIGINT or
/// SIGTERM, or the running node goes on seeding and the command ends.
pub async fn share(cli: &Cli, data_dir: &Path, out: Output, opts: &ShareOpts) -> Result<()> {
    let paths = absolute(&opts.paths)?;
    let mut stop = StopSignals::new()?;
    let mut backend = Backend::node(data_dir, config(cli, data_dir)?, &cli.links).await?;
    // Subscribed before anything happens: a node of its own prints its events after the ticket.
    let events = match &backend {
        Backend::Local(node) => Some(node.events()),
        _ => None,
    };
    let shared = tokio::select! {
        t = backend.share(paths.clone(), opts.offer_contact) => t,
        _ = stop.recv() => Err(anyhow!("interrupted while hashing the files")),
    };
    let shared = shared.and_then(|ticket| match &opts.ticket_file {
        Some(file) => ticket.write_file(file).map(|()| ticket).map_err(Into::into),
        None => Ok(ticket),
    });
    let ticket = match shared {
        Ok(t) => t,
        Err(e) => {
            backend.close().await?;
            return Err(e);
        }
    };
    let (files, bytes) = share_size(&paths);
    out.ticket(&ticket, files, bytes);
    if opts.qr {
        match qr_text(&ticket) {
            Ok(code) => eprintln!("{code}"),
            Err(e) => tracing::warn!("cannot draw the ticket as a QR code: {e}"),
        }
    }
    if let (Some(name), false) = (&ticket.contact, out.json) {
        eprintln!(
            "the ticket offers this device as a contact named {name:?}: whoever fetches it with \
             `meshdrop get --add-contact` adds it"
        );
    }
    let plural = if files == 1 { "" } else { "s" };
    let Some(mut events) = events else {
        if !out.json {
            eprintln!(
                "sharing {files} file{plural} ({}); the running node seeds them",
                HumanBytes(bytes)
            );
        }
        return backend.close().await;
    };
    if !out.json {
        eprintln!(
            "sharing {files} file{plural} ({}); seeding until Ctrl-C",
            HumanBytes(bytes)
        );
    }
    // Uploads are not reported yet: print what the node says (listening, peers) until stopped.
    print_events_until_stopped(out, &mut events, &mut stop).await;
    backend.close().await
}

/// Prints the node's events until SIGINT or SIGTERM.
async fn print_events_until_stopped(
    out: Output,
    events: &mut broadcast::Receiver<Event>,
    stop: &mut StopSignals,
) {
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
pub async fn get(cli: &Cli, data_dir: &Path, out: Output, opts: &GetOpts) -> Result<()> {
    let ticket = match (&opts.ticket, &opts.ticket_file) {
        (Some(text), _) => text.parse::<Ticket>()?,
        (None, Some(file)) => Ticket::read_file(file)?,
        (None, None) => return Err(anyhow!("give a ticket, or --ticket-file F")),
    };
    let dest = match &opts.out {
        Some(d) => std::path::absolute(d)
            .with_context(|| format!("cannot use the destination {}", d.display()))?,
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    let mut stop = StopSignals::new()?;
    let mut config = config(cli, data_dir)?;
    if opts.progress_every_chunk {
        config.progress_interval = Duration::ZERO;
    }
    let wait = Duration::from_secs(opts.wait);
    config.holder_wait = Some(wait);
    let mut backend = Backend::node(data_dir, config, &cli.links).await?;
    let result =
        match crate::contacts::ticket_offer(&mut backend, out, &ticket, opts.add_contact).await {
            Ok(()) => {
                let how = How {
                    seed: opts.seed,
                    wait,
                };
                fetch(&mut backend, out, ticket, &dest, how, &mut stop).await
            }
            Err(e) => Err(e),
        };
    backend.close().await?;
    result
}

/// A download under way: on this command's node (which it can cancel, and whose events it
/// prints with `--json`) or on the running node.
struct Fetch<'a> {
    call: Call<'a>,
    controls: Option<TransferControls>,
    events: Option<broadcast::Receiver<Event>>,
}

impl<'a> Fetch<'a> {
    async fn start(backend: &'a mut Backend, ticket: Ticket, dest: &Path) -> Result<Fetch<'a>> {
        let local: Option<Node> = match &*backend {
            Backend::Local(node) => Some(node.clone()),
            _ => None,
        };
        let Some(node) = local else {
            let dest = dest.to_path_buf();
            let call = backend.call(Request::Get { ticket, dest }).await?;
            return Ok(Fetch {
                call,
                controls: None,
                events: None,
            });
        };
        let events = node.events();
        let (content, key) = (ticket.content, ticket.key);
        let spec = DownloadSpec {
            ticket,
            dest: dest.to_path_buf(),
            files: None,
        };
        let handle = node.download(spec);
        let controls = Some(handle.controls());
        let call = Call::Local(Running::attached(move |updates| async move {
            let done = ops::download(&node, handle, content, key, &updates).await;
            done.map_err(anyhow::Error::from)
        }));
        Ok(Fetch {
            call,
            controls,
            events: Some(events),
        })
    }
}

/// The next event of this command's own node (never, when it runs on the running node).
async fn next_event(events: &mut Option<broadcast::Receiver<Event>>) -> Event {
    loop {
        let Some(rx) = events else {
            return std::future::pending().await;
        };
        match rx.recv().await {
            Ok(ev) => return ev,
            Err(RecvError::Lagged(n)) => tracing::warn!("{n} events were not printed"),
            Err(RecvError::Closed) => *events = None,
        }
    }
}

/// How `get` goes on: seed afterwards, and how long to wait for a holder.
struct How {
    seed: bool,
    wait: Duration,
}

/// Follows the download to its end, printing progress; a signal cancels it on this command's
/// node (keeping partial data), or leaves it to the running node, as does a wait for a holder
/// longer than `how.wait` there (this command's own node gives up by itself).
async fn fetch(
    backend: &mut Backend,
    out: Output,
    ticket: Ticket,
    dest: &Path,
    how: How,
    stop: &mut StopSignals,
) -> Result<()> {
    let mut dl = Fetch::start(backend, ticket, dest).await?;
    let bar = Bar::new(out.json);
    let mut interrupted = false;
    let mut waiting_since: Option<tokio::time::Instant> = None;
    let detach_at = |since: Option<tokio::time::Instant>| async move {
        match since {
            Some(at) => tokio::time::sleep_until(at + how.wait).await,
            None => std::future::pending().await,
        }
    };
    let end = loop {
        tokio::select! {
            step = dl.call.next() => match step {
                Ok(Step::Update(Update::Event(ev))) => {
                    bar.show(&ev);
                    match *ev {
                        Event::TransferWaiting { .. } => {
                            waiting_since.get_or_insert_with(tokio::time::Instant::now);
                        }
                        _ => waiting_since = None,
                    }
                    if out.json {
                        out.event(&ev);
                    }
                }
                Ok(Step::Update(_)) => {}
                Ok(Step::Done(response)) => break Ok(response),
                Err(e) => break Err(e),
            },
            ev = next_event(&mut dl.events) => if out.json && !is_transfer_event(&ev) {
                out.event(&ev);
            },
            () = detach_at(waiting_since), if dl.controls.is_none() => {
                bar.clear();
                return Err(anyhow!(
                    "no one who has this share was in reach for {} s: the node running on this \
                     data dir keeps the download and goes on by itself when one connects",
                    how.wait.as_secs()
                ));
            }
            _ = stop.recv(), if !interrupted => {
                interrupted = true;
                let Some(controls) = &dl.controls else {
                    bar.clear();
                    return Err(anyhow!(
                        "detached: the download goes on in the node running on this data dir"
                    ));
                };
                bar.say("stopping: partial data is kept");
                controls.cancel(true);
            }
        }
    };
    bar.clear();
    let (transfer, report, ticket) = match end {
        Ok(Response::Downloaded {
            transfer,
            report,
            ticket,
        }) => (transfer, report, ticket),
        Ok(other) => return Err(crate::control::backend::unexpected(&other)),
        Err(e) => match e.downcast::<DownloadError>() {
            Ok(e) => return Err(ops::explain(e, interrupted)),
            Err(e) => return Err(e),
        },
    };
    let dest = dest.canonicalize().unwrap_or_else(|_| dest.to_path_buf());
    out.download_finished(transfer, &dest, &report);
    match (how.seed, dl.events.as_mut()) {
        (true, Some(events)) => {
            out.seeding(&ticket, false);
            print_events_until_stopped(out, events, stop).await;
        }
        (true, None) => out.seeding(&ticket, true),
        (false, _) => {}
    }
    Ok(())
}

/// Events the download itself reports (from its status): not printed twice.
fn is_transfer_event(ev: &Event) -> bool {
    matches!(
        ev,
        Event::TransferProgress { .. }
            | Event::TransferWaiting { .. }
            | Event::TransferFinished { .. }
            | Event::TransferFailed { .. }
    )
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

    /// Moves the bar on a progress event of the download; says when it waits for a holder.
    fn show(&self, event: &Event) {
        if let (Some(bar), Event::TransferWaiting { .. }) = (&self.0, event) {
            bar.set_message("waiting for someone who has it…");
            return;
        }
        let (
            Some(bar),
            Event::TransferProgress {
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
