//! Files the host opens on demand (an app's content URIs) are shared without a copy, with real
//! nodes in one process on 127.0.0.1: a friend downloads them verified and byte for byte, also
//! when the host reads in short pieces; a file that changed under the host after it was shared is
//! never served as it is now (the seeder checks, says so, and the friend is told no good copy
//! exists, rejecting nothing); and after a restart the share is listed as unavailable (and not
//! had, for a downloader) until the host shares the same files again, when its first ticket opens
//! it once more.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meshdrop_core::transfer::Damage;
use meshdrop_core::{DownloadError, Event, FileSource, Node, NodeConfig};
use meshdrop_tests::{get, wait_for};

const MIB: usize = 1024 * 1024;

/// The host's files, in memory: what an app reads through its content resolver. Reads return at
/// most `max_read` bytes; `read` counts the bytes read.
struct AppFiles {
    files: Vec<(String, Mutex<Vec<u8>>)>,
    max_read: usize,
    read: AtomicU64,
}

impl AppFiles {
    fn new(files: &[(&str, &[u8])], max_read: usize) -> Arc<Self> {
        Arc::new(Self {
            files: files
                .iter()
                .map(|(n, b)| (n.to_string(), Mutex::new(b.to_vec())))
                .collect(),
            max_read,
            read: AtomicU64::new(0),
        })
    }

    /// Changes file `file` under the host, as another app editing it would.
    fn edit(&self, file: usize, at: usize, with: &[u8]) {
        let mut bytes = self.files[file].1.lock().unwrap();
        bytes[at..at + with.len()].copy_from_slice(with);
    }
}

impl FileSource for AppFiles {
    fn count(&self) -> usize {
        self.files.len()
    }
    fn name(&self, file: usize) -> io::Result<String> {
        Ok(self.files[file].0.clone())
    }
    fn size(&self, file: usize) -> io::Result<u64> {
        Ok(self.files[file].1.lock().unwrap().len() as u64)
    }
    fn read(&self, file: usize, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let bytes = self.files[file].1.lock().unwrap();
        let start = usize::try_from(offset).unwrap().min(bytes.len());
        let end = start + len.min(self.max_read).min(bytes.len() - start);
        self.read.fetch_add((end - start) as u64, Ordering::Relaxed);
        Ok(bytes[start..end].to_vec())
    }
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn node(dir: &Path, name: &str) -> Node {
    meshdrop_tests::init_test_logging();
    let mut config = NodeConfig::loopback(dir).with_name(name).with_mdns(false);
    config.progress_interval = Duration::ZERO;
    // As a standalone `get`: a download no one serves gives up soon, saying who refused.
    config.holder_wait = Some(Duration::from_secs(2));
    Node::start(config).await.expect("node starts")
}

/// Bytes in the files under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| match e.file_type().unwrap().is_dir() {
            true => bytes_under(&e.path()),
            false => e.metadata().unwrap().len(),
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_an_app_opens_are_downloaded_verified_and_never_copied() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let video = random(6 * MIB + 4321, 1);
    let photo = random(300_000, 2);
    let other = random(50_000, 3);
    // The app reads 100 000 bytes at most per call: the core reads on.
    let files = [
        ("sunset.mp4", &video[..]),
        ("beach.jpg", &photo[..]),
        ("beach.jpg", &other[..]),
    ];
    let app = AppFiles::new(&files, 100_000);
    let a = node(dirs[0].path(), "a").await;
    let b = node(dirs[1].path(), "b").await;

    let ticket = a.share_source(app.clone()).await.expect("shared");
    let hashed = app.read.load(Ordering::Relaxed);
    let total = (video.len() + photo.len() + other.len()) as u64;
    assert_eq!(hashed, total, "every byte read once to hash it");
    let out = dirs[1].path().join("in");
    let report = get(&b, &ticket, &out).await.expect("b downloads");
    assert_eq!(report.bytes, total);
    assert_eq!(report.rejected, 0);
    assert_eq!(std::fs::read(out.join("sunset.mp4")).unwrap(), video);
    assert_eq!(std::fs::read(out.join("beach.jpg")).unwrap(), photo);
    assert_eq!(std::fs::read(out.join("beach (2).jpg")).unwrap(), other);
    assert_eq!(
        app.read.load(Ordering::Relaxed),
        2 * total,
        "served by reading again"
    );
    assert!(
        bytes_under(dirs[0].path()) < total,
        "no copy in a's data dir"
    );
    let shares = a.shares().unwrap();
    assert_eq!(shares.len(), 1);
    assert_eq!(shares[0].name, "beach (2).jpg, beach.jpg, sunset.mp4");
    assert!(shares[0].available);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_under_the_app_is_not_served_and_the_seeder_says_so() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let video = random(4 * MIB, 4);
    let app = AppFiles::new(&[("trip.mp4", &video[..])], usize::MAX);
    let a = node(dirs[0].path(), "a").await;
    let b = node(dirs[1].path(), "b").await;
    let ticket = a.share_source(app.clone()).await.expect("shared");
    let mut a_events = a.events();
    // Another app edits the video in place: 256 KiB chunks 4 and 5 change.
    app.edit(0, MIB + 1000, &[0xAA; 300_000]);

    let err = get(&b, &ticket, &dirs[1].path().join("in"))
        .await
        .expect_err("no good copy");
    assert!(matches!(err, DownloadError::NoGoodCopy(_)), "{err:?}");
    assert!(err.to_string().contains("trip.mp4"), "{err}");
    assert!(
        !dirs[1].path().join("in/trip.mp4").exists(),
        "nothing wrong in place"
    );
    let (chunks, damage, repairing) = wait_for(&mut a_events, "share_damaged", |ev| match ev {
        Event::ShareDamaged {
            file,
            chunks,
            damage,
            repairing,
            ..
        } if file == "trip.mp4" => Some((chunks.clone(), *damage, *repairing)),
        _ => None,
    })
    .await;
    assert_eq!(chunks, [4, 5]);
    assert_eq!(damage, Damage::Changed);
    assert!(!repairing, "this device shared it: nothing to fetch");

    // Shorter now: every chunk of it is no longer served.
    app.files[0].1.lock().unwrap().truncate(MIB);
    let checked = a.verify(None).await.unwrap();
    let damaged = &checked[0].damaged;
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert_eq!(damaged[0].damage, Damage::Changed);
    assert_eq!(damaged[0].chunks, (0..16).collect::<Vec<u64>>());
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_share_is_unavailable_until_the_app_shares_the_files_again() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let video = random(2 * MIB, 5);
    let app = AppFiles::new(&[("clip.mp4", &video[..])], usize::MAX);
    let a = node(dirs[0].path(), "a").await;
    let first = a.share_source(app.clone()).await.expect("shared");
    a.stop().await.unwrap();
    drop(a);

    let a = node(dirs[0].path(), "a").await;
    let listed = a.shares().unwrap();
    assert_eq!(listed.len(), 1, "still listed");
    assert_eq!(listed[0].name, "clip.mp4");
    assert!(!listed[0].available, "its files are not open in this run");
    assert!(a.verify(None).await.unwrap()[0].damaged.is_empty());
    // A friend with the first ticket hears at once that this device does not have it now.
    let b = node(dirs[1].path(), "b").await;
    let first = a.ticket_for(first.content, first.key);
    let out = dirs[1].path().join("in");
    let err = get(&b, &first, &out).await.expect_err("not served");
    assert!(
        matches!(&err, DownloadError::NoHolder { tried, .. }
            if tried.iter().any(|t| t.contains("does not have this share"))),
        "{err:?}"
    );

    // The app shares the same files again: the share is served again, under its first ticket too.
    let app = AppFiles::new(&[("clip.mp4", &video[..])], usize::MAX);
    let again = a.share_source(app).await.expect("shared again");
    assert_eq!(again.content, first.content);
    assert!(a.shares().unwrap().iter().all(|s| s.available));
    get(&b, &first, &out)
        .await
        .expect("the first ticket opens it");
    assert_eq!(std::fs::read(out.join("clip.mp4")).unwrap(), video);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
