//! Running `meshdrop` processes in tests and reading their JSON event lines.
#![allow(clippy::unwrap_used, dead_code)] // test code shared by several test binaries

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_meshdrop");
/// How long any single step may take in a debug build.
pub const STEP: Duration = Duration::from_secs(120);

/// A `meshdrop` process with its stdout lines (JSON values, or strings when not JSON) and stderr.
pub struct Proc {
    /// The process.
    pub child: Child,
    lines: mpsc::Receiver<Value>,
    stderr: Arc<Mutex<String>>,
    stderr_done: Option<std::thread::JoinHandle<()>>,
}

impl Proc {
    /// Runs `meshdrop --data-dir DATA --bind 127.0.0.1 --no-mdns ARGS...`.
    pub fn spawn(data_dir: &Path, args: &[&str]) -> Proc {
        Self::start(data_dir, &["--bind", "127.0.0.1", "--no-mdns"], args, false)
    }

    /// Runs `meshdrop --data-dir DATA FLAGS... ARGS...`, with standard input piped when `stdin`.
    pub fn start(data_dir: &Path, flags: &[&str], args: &[&str], stdin: bool) -> Proc {
        Self::start_env(data_dir, flags, args, stdin, &[])
    }

    /// [`Proc::start`] with these environment variables set.
    pub fn start_env(
        data_dir: &Path,
        flags: &[&str],
        args: &[&str],
        stdin: bool,
        env: &[(&str, &Path)],
    ) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.envs(env.iter().copied())
            .arg("--data-dir")
            .arg(data_dir)
            .args(flags)
            .args(args)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() });
        Self::run(cmd)
    }

    /// [`Proc::spawn`] in a process that may hold at most `nofile` open files (`ulimit -n`).
    pub fn spawn_limited(data_dir: &Path, args: &[&str], nofile: u64) -> Proc {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir")
            .arg(data_dir)
            .args(["--bind", "127.0.0.1", "--no-mdns"])
            .args(args)
            .stdin(Stdio::null());
        // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                use nix::sys::resource::{Resource, setrlimit};
                setrlimit(Resource::RLIMIT_NOFILE, nofile, nofile).map_err(std::io::Error::from)
            });
        }
        Self::run(cmd)
    }

    fn run(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("meshdrop starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("stderr piped");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let stderr_done = Some(std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            sink.lock().unwrap().push_str(&s);
        }));
        Proc {
            child,
            lines,
            stderr,
            stderr_done,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// The next stdout line, failing the test after `STEP`.
    pub fn next(&self, what: &str) -> Value {
        self.lines
            .recv_timeout(STEP)
            .unwrap_or_else(|e| panic!("no {what} within {STEP:?} ({e}); stderr: {}", self.err()))
    }

    /// Every remaining stdout line until the process closes it, then its exit status and stderr.
    pub fn finish(mut self) -> (ExitStatus, Vec<Value>, String) {
        let deadline = Instant::now() + STEP;
        let mut rest = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => rest.push(v),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("the process did not end within {STEP:?}: {rest:?}")
                }
            }
        }
        let status = self.child.wait().expect("wait");
        if let Some(t) = self.stderr_done.take() {
            let _ = t.join();
        }
        (status, rest, self.err())
    }

    /// What it wrote on stderr so far.
    pub fn err(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Proc {
    /// Skips stdout lines until a JSON event named `event`, and returns it.
    pub fn wait_for(&self, event: &str) -> Value {
        loop {
            let v = self.next(event);
            if v["event"] == event {
                return v;
            }
        }
    }

    /// Writes one line to the process's standard input.
    pub fn write_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin piped");
        writeln!(stdin, "{line}").expect("write to stdin");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a one-shot `meshdrop --data-dir DATA --bind 127.0.0.1 --no-mdns --json ARGS...` to its
/// end (through the node running on DATA, if any) and returns its JSON lines; fails unless it
/// succeeds.
pub fn json_once(data_dir: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend(args);
    let (status, lines, stderr) = Proc::spawn(data_dir, &all).finish();
    assert!(status.success(), "{args:?} failed: {stderr}");
    lines
}

/// This data dir's peer id (`meshdrop id`, offline or through its running node); `name`, when
/// given, becomes its device name.
pub fn peer_id(data_dir: &Path, name: Option<&str>) -> String {
    let mut args = vec!["id"];
    if let Some(name) = name {
        args = vec!["--name", name, "id"];
    }
    json_once(data_dir, &args)[0]["peer"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Makes `peer` a contact named `name` on `data_dir` (through its running node, if any).
pub fn add_contact(data_dir: &Path, peer: &str, name: &str) -> Value {
    let lines = json_once(data_dir, &["contacts", "add", peer, "--name", name]);
    assert_eq!(lines[0]["event"], "contact_added", "{lines:?}");
    lines[0].clone()
}

/// Stops a `meshdrop run` with SIGTERM and returns what it printed after, its status and stderr.
pub fn stop(p: Proc) -> (ExitStatus, Vec<Value>, String) {
    nix::sys::signal::kill(p.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    p.finish()
}

/// Asserts a failed run whose stderr is one `error:` line containing `needle`.
pub fn assert_one_line_error(status: &ExitStatus, stderr: &str, needle: &str) {
    assert!(!status.success(), "expected failure, got {status:?}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line of error, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        lines[0].contains(needle),
        "{stderr} should mention {needle:?}"
    );
}

/// Writes `len` deterministic pseudo-random bytes (per seed) to `path`, streaming.
pub fn random_file(path: &Path, len: u64, seed: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut left = len;
    let mut block = Vec::with_capacity(64 * 1024);
    while left > 0 {
        block.clear();
        while block.len() < 64 * 1024 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            block.extend_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    f.flush().unwrap();
}

/// The BLAKE3 hash of a file, in hex.
pub fn hash_of(path: &Path) -> String {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(path).unwrap()).unwrap();
    h.finalize().to_hex().to_string()
}
