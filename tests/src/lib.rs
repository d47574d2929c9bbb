//! Multi-node scenario tests for meshdrop and the harness they run on.
//!
//! - [`netns`]: a lab of network namespaces on a private bridge (one namespace per device), with rate
//!   limits, packet loss and partitions; nothing reaches the machine's real interfaces.
//! - [`nat`]: two home networks behind NAT routers and a public network with a relay host.
//! - [`process`]: `meshdrop` (and other JSON-line programs) as child processes, optionally inside a
//!   lab host, with their stdout events waited on with timeouts.
//! - [`raw`]: a hand-driven libp2p peer that speaks the wire protocols wrongly on purpose.

pub mod nat;
pub mod netns;
pub mod process;
pub mod raw;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// The log filter from `RUST_LOG` (`target=level` pairs, as in `meshdrop_core=debug`); nothing
/// when it is unset or unreadable.
pub fn log_filter() -> Targets {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|spec| spec.parse().ok())
        .unwrap_or_default()
}

/// Routes logs to the test harness's captured output, once per test binary.
pub fn init_test_logging() {
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_test_writer())
        .with(log_filter())
        .try_init();
}

/// Writes `len` pseudo-random bytes (deterministic per seed) to `path`, creating its folder.
pub fn random_file(path: &std::path::Path, len: usize, seed: u64) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("test folder");
    }
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, data).expect("test file written");
}

/// Flips every bit of `len` bytes of `path` at `at` and syncs: an edit, or bit rot.
pub fn damage(path: &std::path::Path, at: u64, len: usize) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let mut bytes = vec![0; len];
    f.read_exact_at(&mut bytes, at)?;
    bytes.iter_mut().for_each(|b| *b = !*b);
    f.write_all_at(&bytes, at)?;
    f.sync_all()
}

/// The `.part` files a download left in `dir` for files named `name`
/// (`.<name>.<token>.meshdrop-part`); none when `dir` does not exist.
pub fn part_files(dir: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let prefix = format!(".{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".meshdrop-part"))
        })
        .collect()
}

/// Downloads `ticket` into `dest` on `node` (all files); fails the test when the download does
/// not end within 120 s.
pub async fn get(
    node: &meshdrop_core::Node,
    ticket: &meshdrop_core::Ticket,
    dest: &std::path::Path,
) -> Result<meshdrop_core::DownloadReport, meshdrop_core::DownloadError> {
    let handle = node.download(meshdrop_core::DownloadSpec {
        ticket: ticket.clone(),
        dest: dest.to_path_buf(),
        files: None,
    });
    tokio::time::timeout(std::time::Duration::from_secs(120), handle.wait())
        .await
        .expect("the download ends in time")
}

/// How long [`wait_for`] waits for an event.
pub const EVENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Waits for the first event matching `pred`, failing the test after [`EVENT_TIMEOUT`].
pub async fn wait_for<T>(
    events: &mut tokio::sync::broadcast::Receiver<meshdrop_core::Event>,
    what: &str,
    mut pred: impl FnMut(&meshdrop_core::Event) -> Option<T>,
) -> T {
    use tokio::sync::broadcast::error::RecvError;
    let deadline = tokio::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(ev)) => {
                if let Some(v) = pred(&ev) {
                    return v;
                }
            }
            Ok(Err(RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("event stream ended while waiting for {what}: {e}"),
            Err(_) => panic!("timed out after {EVENT_TIMEOUT:?} waiting for {what}"),
        }
    }
}
