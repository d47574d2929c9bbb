//! Running `meshdrop` (and other JSON-line printing programs) as child processes, optionally inside a
//! [`Host`](crate::netns::Host) of a network-namespace lab, and waiting on the events they print.
//!
//! Every stdout line is parsed as JSON on a background thread and kept, with the instant it arrived,
//! in the process's event history. Tests synchronise only by waiting for an event with a timeout
//! ([`JsonProcess::wait_for`]); there are no fixed sleeps. stderr goes to a log file that is printed
//! when a test fails (the process is dropped while panicking) and is quoted in every wait error.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use crate::netns::Host;

/// How many trailing bytes of stderr an error message quotes.
const STDERR_TAIL: usize = 4000;

/// One line a child printed on stdout, with the instant the harness read it.
#[derive(Debug, Clone)]
pub struct Event {
    /// When the line was read (monotonic clock of the test process).
    pub at: Instant,
    /// The parsed line. A line that is not JSON is kept as `{"event":"_unparsed","line":...}`.
    pub value: Value,
}

/// A child process whose stdout is a stream of JSON lines.
#[derive(Debug)]
pub struct JsonProcess {
    label: String,
    child: Child,
    rx: Receiver<Event>,
    history: Vec<Event>,
    stdout_closed: bool,
    reader: Option<JoinHandle<()>>,
    stderr_log: PathBuf,
    exit: Option<ExitStatus>,
    /// Kept open (never written) when the child should wait on its standard input.
    _stdin: Option<ChildStdin>,
}

impl JsonProcess {
    /// Spawns `cmd` with stdout captured as JSON lines (also copied to `<log_dir>/<label>.stdout.jsonl`)
    /// and stderr written to `<log_dir>/<label>.stderr.log`.
    pub fn spawn(cmd: Command, label: &str, log_dir: &Path) -> Result<Self> {
        Self::spawn_stdin(cmd, label, log_dir, false)
    }

    /// Like [`JsonProcess::spawn`]; with `open_stdin`, the child's standard input is a pipe kept
    /// open and never written (a prompt that is never answered).
    pub fn spawn_stdin(
        mut cmd: Command,
        label: &str,
        log_dir: &Path,
        open_stdin: bool,
    ) -> Result<Self> {
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("creating log dir {}", log_dir.display()))?;
        let stderr_log = log_dir.join(format!("{label}.stderr.log"));
        let stdout_copy = log_dir.join(format!("{label}.stdout.jsonl"));
        let stderr_file = File::create(&stderr_log)
            .with_context(|| format!("creating {}", stderr_log.display()))?;
        let shown = format!("{cmd:?}");
        let stdin = if open_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file))
            .spawn()
            .with_context(|| format!("spawning {label}: {shown}"))?;
        let stdout = child
            .stdout
            .take()
            .context("child stdout was not captured")?;
        let kept_stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        let mut copy = File::create(&stdout_copy).ok();
        let reader = std::thread::Builder::new()
            .name(format!("{label}-stdout"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let at = Instant::now();
                    if let Some(f) = copy.as_mut() {
                        let _ = writeln!(f, "{line}");
                    }
                    if line.trim().is_empty() {
                        continue;
                    }
                    let value = serde_json::from_str(&line).unwrap_or_else(
                        |_| serde_json::json!({"event": "_unparsed", "line": line}),
                    );
                    if tx.send(Event { at, value }).is_err() {
                        break;
                    }
                }
            })
            .context("spawning stdout reader thread")?;
        Ok(Self {
            label: label.to_owned(),
            child,
            rx,
            history: Vec::new(),
            stdout_closed: false,
            reader: Some(reader),
            stderr_log,
            exit: None,
            _stdin: kept_stdin,
        })
    }

    /// The label given at spawn (used in log file names and messages).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every event received so far, oldest first (drains what the reader thread has queued).
    pub fn events(&mut self) -> &[Event] {
        self.drain();
        &self.history
    }

    /// Number of events received so far; pass it to [`JsonProcess::wait_for_after`] to wait only for
    /// events that arrive later.
    pub fn mark(&mut self) -> usize {
        self.drain();
        self.history.len()
    }

    /// Waits until an event matching `pred` has been printed — including events printed before this
    /// call — and returns the first such event's JSON. Fails after `timeout`, or as soon as the
    /// process closes stdout (exits) without printing one; the error quotes the events seen and the
    /// tail of stderr.
    pub fn wait_for(&mut self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Result<Value> {
        self.wait_for_event_after(0, pred, timeout).map(|e| e.value)
    }

    /// Like [`JsonProcess::wait_for`], but only considers events with index ≥ `mark`.
    pub fn wait_for_after(
        &mut self,
        mark: usize,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value> {
        self.wait_for_event_after(mark, pred, timeout)
            .map(|e| e.value)
    }

    /// Like [`JsonProcess::wait_for`], returning the [`Event`] with its arrival instant.
    pub fn wait_for_event(
        &mut self,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Event> {
        self.wait_for_event_after(0, pred, timeout)
    }

    /// The general form: first event with index ≥ `mark` matching `pred`, within `timeout`.
    pub fn wait_for_event_after(
        &mut self,
        mark: usize,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Event> {
        let deadline = Instant::now() + timeout;
        let mut checked = mark.min(self.history.len());
        loop {
            self.drain();
            if let Some(e) = self.history[checked..].iter().find(|e| pred(&e.value)) {
                return Ok(e.clone());
            }
            checked = self.history.len();
            if self.stdout_closed {
                let status = self.wait_exit(Duration::from_secs(5)).ok();
                let diag = self.diagnostics();
                bail!(
                    "{} closed stdout (exit status {status:?}) without the awaited event\n{diag}",
                    self.label,
                );
            }
            let now = Instant::now();
            if now >= deadline {
                let diag = self.diagnostics();
                bail!(
                    "{}: timed out after {timeout:?} waiting for an event\n{diag}",
                    self.label,
                );
            }
            match self.rx.recv_timeout(deadline - now) {
                Ok(e) => self.history.push(e),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.stdout_closed = true,
            }
        }
    }

    fn drain(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(e) => self.history.push(e),
                Err(mpsc::TryRecvError::Empty) => return,
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.stdout_closed = true;
                    return;
                }
            }
        }
    }

    /// Sends `signal` to the process (no-op if it already exited and was reaped).
    pub fn signal(&mut self, signal: Signal) -> Result<()> {
        if self.exit.is_some() {
            return Ok(());
        }
        kill(Pid::from_raw(self.child.id() as i32), signal)
            .with_context(|| format!("sending {signal} to {}", self.label))
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit; returns its exit status.
    /// All stdout lines printed before the exit are in the history afterwards.
    pub fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus> {
        self.signal(Signal::SIGTERM)?;
        self.wait_exit(timeout)
            .with_context(|| format!("{} did not exit after SIGTERM", self.label))
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill9(&mut self) -> Result<ExitStatus> {
        self.signal(Signal::SIGKILL)?;
        self.wait_exit(Duration::from_secs(10))
    }

    /// Waits up to `timeout` for the process to exit by itself; then collects the rest of its stdout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        if let Some(s) = self.exit {
            return Ok(s);
        }
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().context("waiting for child")? {
                break s;
            }
            if Instant::now() >= deadline {
                let diag = self.diagnostics();
                bail!("{} still running after {timeout:?}\n{diag}", self.label);
            }
            // Polling the exit status (no pidfd in std): a bounded wait, not synchronisation by sleep.
            std::thread::sleep(Duration::from_millis(10));
        };
        self.exit = Some(status);
        if let Some(reader) = self.reader.take() {
            // stdout is at EOF once the process is gone (unless it left children holding it).
            let _ = reader.join();
        }
        self.drain();
        Ok(status)
    }

    /// Whether the process has exited (reaps it if so).
    pub fn has_exited(&mut self) -> bool {
        if self.exit.is_some() {
            return true;
        }
        match self.child.try_wait() {
            Ok(Some(s)) => {
                self.exit = Some(s);
                true
            }
            _ => false,
        }
    }

    /// Path of the stderr log file.
    pub fn stderr_log(&self) -> &Path {
        &self.stderr_log
    }

    /// The whole stderr written so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Events seen and the tail of stderr, for error messages.
    pub fn diagnostics(&mut self) -> String {
        self.drain();
        let events: Vec<String> = self.history.iter().map(|e| e.value.to_string()).collect();
        let stderr = self.stderr();
        let mut cut = stderr.len().saturating_sub(STDERR_TAIL);
        while !stderr.is_char_boundary(cut) {
            cut += 1;
        }
        format!(
            "--- {} events ({}) ---\n{}\n--- {} stderr ({}{}) ---\n{}",
            self.label,
            events.len(),
            events.join("\n"),
            self.label,
            self.stderr_log.display(),
            if cut > 0 { ", tail" } else { "" },
            &stderr[cut..]
        )
    }
}

impl Drop for JsonProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
        if self.exit.is_none() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// Path of the `meshdrop` binary: `$MESHDROP_BIN`, else `meshdrop` in the cargo profile directory of
/// the running executable (`target/debug/` for both `target/debug/deps/<test>` and
/// `target/debug/<bin>`). It is not built by `cargo test -p meshdrop-tests`: run
/// `cargo build -p meshdrop` first.
pub fn meshdrop_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("MESHDROP_BIN") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!("MESHDROP_BIN={} is not a file", p.display());
        }
        return Ok(p);
    }
    let exe = std::env::current_exe().context("locating the current executable")?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent", exe.display()))?;
    if dir.file_name() == Some(OsStr::new("deps")) {
        dir = dir
            .parent()
            .ok_or_else(|| anyhow!("{} has no parent", dir.display()))?;
    }
    let bin = dir.join("meshdrop");
    if !bin.is_file() {
        bail!(
            "meshdrop binary not found at {}: run `cargo build -p meshdrop` first (or set MESHDROP_BIN)",
            bin.display()
        );
    }
    Ok(bin)
}

/// A running `meshdrop` node (or other `meshdrop` command) whose `--json` events are read.
/// Dereferences to [`JsonProcess`] for waiting, signalling and diagnostics.
#[derive(Debug)]
pub struct MeshdropProcess {
    proc: JsonProcess,
    name: String,
    data_dir: PathBuf,
    peer_id: Option<String>,
}

impl MeshdropProcess {
    /// Starts `meshdrop --data-dir DATA_DIR --name NAME --json run RUN_ARGS...` inside `host`'s
    /// namespace. Logs go to the data dir.
    ///
    /// With `host == None` the node runs in the root namespace, which is allowed only on loopback:
    /// `run_args` must then contain `--bind 127.0.0.1` (or `::1`) and `--no-mdns`, so that nothing —
    /// mDNS multicast included — reaches a real interface.
    pub fn spawn_in(
        host: Option<&Host>,
        data_dir: &Path,
        name: &str,
        run_args: &[&str],
    ) -> Result<Self> {
        if host.is_none() {
            let loopback_bind = run_args
                .windows(2)
                .any(|w| w[0] == "--bind" && (w[1] == "127.0.0.1" || w[1] == "::1"));
            let other_bind = run_args
                .windows(2)
                .any(|w| w[0] == "--bind" && w[1] != "127.0.0.1" && w[1] != "::1");
            if !loopback_bind || other_bind || !run_args.contains(&"--no-mdns") {
                bail!(
                    "refusing to run a node in the root namespace without `--bind 127.0.0.1 --no-mdns` \
                     (nothing may leave the machine); run it in a netns Lab host instead"
                );
            }
        }
        let mut args: Vec<&str> = vec!["--name", name, "--json", "run"];
        args.extend_from_slice(run_args);
        Self::spawn_raw(host, data_dir, name, &args)
    }

    /// Starts `meshdrop --data-dir DATA_DIR ARGS...` (any subcommand) inside `host`'s namespace, or in
    /// the root namespace when `host` is `None` (the caller keeps it on loopback). `label` names the
    /// log files in the data dir. Unless `RUST_LOG` is set, the node logs meshdrop's debug lines.
    pub fn spawn_raw(
        host: Option<&Host>,
        data_dir: &Path,
        label: &str,
        args: &[&str],
    ) -> Result<Self> {
        Self::spawn_raw_stdin(host, data_dir, label, args, false)
    }

    /// Like [`MeshdropProcess::spawn_raw`]; with `open_stdin`, standard input stays open and
    /// unanswered (`run --accept ask` then keeps every offer pending).
    pub fn spawn_raw_stdin(
        host: Option<&Host>,
        data_dir: &Path,
        label: &str,
        args: &[&str],
        open_stdin: bool,
    ) -> Result<Self> {
        let bin = meshdrop_bin()?;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
        let mut cmd = match host {
            Some(h) => h.exec(&bin),
            None => Command::new(&bin),
        };
        cmd.arg("--data-dir").arg(data_dir).args(args);
        if std::env::var_os("RUST_LOG").is_none() {
            // Enough in the stderr log to diagnose a failed scenario; override with RUST_LOG.
            cmd.env("RUST_LOG", "meshdrop=debug,meshdrop_core=debug");
        }
        let proc = JsonProcess::spawn_stdin(cmd, label, data_dir, open_stdin)?;
        Ok(Self {
            proc,
            name: label.to_owned(),
            data_dir: data_dir.to_owned(),
            peer_id: None,
        })
    }

    /// Runs a one-shot `meshdrop --json ARGS` on `data_dir` in `host` (through the running node's
    /// control socket when one runs there) to its end; fails unless it exits 0 within `timeout`.
    /// Returns its JSON lines.
    pub fn run_once(
        host: &Host,
        data_dir: &Path,
        label: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<Vec<Value>> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let mut p = Self::spawn_raw(Some(host), data_dir, label, &all)?;
        let status = p.wait_exit(timeout)?;
        if !status.success() {
            bail!("{label} failed: {}", p.stderr());
        }
        Ok(p.events().iter().map(|e| e.value.clone()).collect())
    }

    /// Starts `meshdrop --json --no-mdns --bind <host's address> get TICKET --out OUT EXTRA...` in
    /// `host`: a download on a device of a lab.
    pub fn spawn_get(
        host: &Host,
        data_dir: &Path,
        label: &str,
        ticket: &str,
        out: &Path,
        extra: &[&str],
    ) -> Result<Self> {
        let bind = host.addr().to_string();
        let out = out.to_string_lossy();
        let mut args = vec![
            "--json",
            "--no-mdns",
            "--bind",
            &bind,
            "get",
            ticket,
            "--out",
            &out,
        ];
        args.extend_from_slice(extra);
        Self::spawn_raw(Some(host), data_dir, label, &args)
    }

    /// The device name (or label) given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Waits for the `listening` event and returns the node's peer id (cached after the first call).
    pub fn peer_id(&mut self, timeout: Duration) -> Result<String> {
        if let Some(id) = &self.peer_id {
            return Ok(id.clone());
        }
        let ev = self.wait_for(|v| v["event"] == "listening", timeout)?;
        let id = ev["peer"]
            .as_str()
            .ok_or_else(|| anyhow!("listening event without a string `peer`: {ev}"))?
            .to_owned();
        self.peer_id = Some(id.clone());
        Ok(id)
    }

    /// Waits for an event named `event` (e.g. `"peer_connected"`) whose `peer` is `peer`.
    pub fn wait_peer_event(&mut self, event: &str, peer: &str, timeout: Duration) -> Result<Value> {
        self.wait_for(|v| v["event"] == event && v["peer"] == peer, timeout)
            .with_context(|| format!("{} waiting for {event} of {peer}", self.name))
    }
}

impl Deref for MeshdropProcess {
    type Target = JsonProcess;
    fn deref(&self) -> &JsonProcess {
        &self.proc
    }
}

impl DerefMut for MeshdropProcess {
    fn deref_mut(&mut self) -> &mut JsonProcess {
        &mut self.proc
    }
}

/// Returns `predicate` for "event named `name`", for [`JsonProcess::wait_for`].
pub fn event_named(name: &str) -> impl Fn(&Value) -> bool + '_ {
    move |v| v["event"] == name
}
