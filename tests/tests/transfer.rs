//! Shares downloaded between real nodes in one process on 127.0.0.1: bytes equal, hashes verified,
//! corrupt providers dropped, interrupted downloads resumed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use meshdrop_core::{DownloadSpec, Event, Node, NodeConfig, Ticket, TransferHandle};
use meshdrop_tests::random_file;

/// What a test node serves: its files as they are, or every chunk with a bit flipped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Serves {
    Honest,
    Corrupt,
}

async fn node(dir: &Path, name: &str, serves: Serves) -> Node {
    meshdrop_tests::init_test_logging();
    let mut config = NodeConfig::loopback(dir).with_name(name).with_mdns(false);
    if serves == Serves::Corrupt {
        config = config.with_corrupt_chunks();
    }
    Node::start(config).await.expect("node starts")
}

/// Every regular file under `root`, relative path -> BLAKE3 hash.
fn tree(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    blake3::hash(&bytes).to_hex().to_string(),
                ));
            }
        }
    }
    out.sort();
    out
}

fn trip_folder(root: &Path, big: usize) -> PathBuf {
    let trip = root.join("Trip");
    random_file(&trip.join("videos/day 1/GOPR0001.MP4"), big, 1);
    random_file(&trip.join("Fotos/Día 1/café ☕.jpg"), 300_000, 2);
    random_file(&trip.join("Fotos/Día 2/日本.jpg"), 70_000, 3);
    for i in 0..40 {
        random_file(
            &trip.join(format!("roll/IMG_{i:04}.jpg")),
            10_000 + i * 997,
            100 + i as u64,
        );
    }
    std::fs::write(trip.join("empty.txt"), b"").unwrap();
    std::fs::create_dir_all(trip.join("an empty folder")).unwrap();
    trip
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trip_folder_arrives_byte_for_byte_with_nested_unicode_and_empty_files() {
    let (sa, sb, files, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let trip = trip_folder(files.path(), 20 * 1024 * 1024 + 12345);
    let sender = node(sa.path(), "sender", Serves::Honest).await;
    let receiver = node(sb.path(), "receiver", Serves::Honest).await;
    let ticket = sender.share(vec![trip.clone()]).await.expect("shares");
    let ticket: Ticket = ticket
        .to_string()
        .parse()
        .expect("ticket round-trips as text");

    let mut events = receiver.events();
    let handle = receiver.download(DownloadSpec {
        ticket: ticket.clone(),
        dest: out.path().to_path_buf(),
        files: None,
    });
    let report = tokio::time::timeout(Duration::from_secs(120), handle.wait())
        .await
        .expect("in time")
        .expect("download succeeds");
    assert_eq!(
        tree(&trip),
        tree(&out.path().join("Trip")),
        "every file equal"
    );
    assert!(out.path().join("Trip/an empty folder").is_dir());
    assert_eq!(report.fetched, report.bytes);
    assert_eq!(report.rejected, 0);
    let mut saw_progress = false;
    while let Ok(ev) = events.try_recv() {
        if let Event::TransferProgress { total, .. } = ev {
            assert_eq!(total, report.bytes);
            saw_progress = true;
        }
    }
    assert!(saw_progress, "progress events were sent");
    assert!(
        !std::fs::read_dir(out.path().join("Trip/videos/day 1"))
            .unwrap()
            .any(|e| e.unwrap().path().to_string_lossy().ends_with("part")),
        "no .part left"
    );

    // The same download again: everything is already there and identical.
    let again = receiver.download(DownloadSpec {
        ticket,
        dest: out.path().to_path_buf(),
        files: None,
    });
    let report = again.wait().await.expect("second run succeeds");
    assert_eq!(report.fetched, 0);
    assert_eq!(report.skipped, report.bytes);
    sender.stop().await.unwrap();
    receiver.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_sending_corrupt_chunks_is_dropped_and_the_download_finishes_from_an_honest_one()
{
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let trip = trip_folder(dirs[3].path(), 6 * 1024 * 1024);
    let honest = node(dirs[0].path(), "honest", Serves::Honest).await;
    let liar = node(dirs[1].path(), "liar", Serves::Corrupt).await;
    let receiver = node(dirs[2].path(), "receiver", Serves::Honest).await;
    let t1 = honest.share(vec![trip.clone()]).await.unwrap();
    // The liar got the ticket and the files (its own download verifies), then serves them
    // corrupt. The honest sender goes away meanwhile.
    let liar_copy = tempfile::tempdir().unwrap();
    liar.download(DownloadSpec {
        ticket: t1.clone(),
        dest: liar_copy.path().to_path_buf(),
        files: None,
    })
    .wait()
    .await
    .expect("the liar's copy verifies");
    honest.stop().await.unwrap();
    let mut events = receiver.events();

    // Only the liar: every chunk it sends is rejected, it is dropped, and the download says why.
    let from_liar = Ticket::new(
        t1.content,
        t1.key,
        vec![liar.ticket_for(t1.content, t1.key).providers[0].clone()],
    );
    let dest = dirs[4].path().to_path_buf();
    let err = receiver
        .download(DownloadSpec {
            ticket: from_liar.clone(),
            dest: dest.clone(),
            files: None,
        })
        .wait()
        .await
        .expect_err("nothing verifies");
    assert!(err.to_string().contains("corrupt chunk"), "{err}");
    let dropped = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Event::PeerDisconnected { peer }) = events.recv().await
                && peer == liar.peer_id()
            {
                return;
            }
        }
    })
    .await;
    assert!(dropped.is_ok(), "the liar was disconnected");
    assert!(
        !dest.join("Trip/videos/day 1/GOPR0001.MP4").exists(),
        "nothing unverified reached a final file"
    );

    // The honest sender is back (it serves its shares again after a restart).
    let honest = node(dirs[0].path(), "honest", Serves::Honest).await;
    let t1 = honest.ticket_for(t1.content, t1.key);
    let t2 = from_liar;
    // With an honest provider in the ticket too, the download completes, bytes equal.
    let ticket = Ticket::new(
        t1.content,
        t1.key,
        vec![t2.providers[0].clone(), t1.providers[0].clone()],
    );
    let report = receiver
        .download(DownloadSpec {
            ticket,
            dest: dest.clone(),
            files: None,
        })
        .wait()
        .await
        .expect("finishes from the honest provider");
    assert_eq!(tree(&trip), tree(&dest.join("Trip")));
    assert!(
        report.peers.iter().all(|p| p.peer != liar.peer_id()),
        "nothing from the liar was kept: {:?}",
        report.peers
    );
    for n in [honest, liar, receiver] {
        n.stop().await.unwrap();
    }
}

/// A sender (data in `dirs[0]`) sharing a random video of `mib` MiB written in `dirs[2]`, and a
/// receiver (`dirs[1]`) reporting progress after every chunk.
async fn video_share(
    dirs: &[tempfile::TempDir],
    name: &str,
    mib: usize,
    seed: u64,
) -> (Node, Node, PathBuf, Ticket) {
    let video = dirs[2].path().join(name);
    random_file(&video, mib * 1024 * 1024, seed);
    let sender = node(dirs[0].path(), "sender", Serves::Honest).await;
    let mut config = NodeConfig::loopback(dirs[1].path())
        .with_name("receiver")
        .with_mdns(false);
    config.progress_interval = Duration::ZERO;
    let receiver = Node::start(config).await.unwrap();
    let ticket = sender.share(vec![video.clone()]).await.unwrap();
    (sender, receiver, video, ticket)
}

/// Starts a download of `ticket` into `dest` and waits for its first progress event; returns the
/// handle and the bytes done then (less than the total: the download is midway).
async fn start_until_progress(
    receiver: &Node,
    ticket: Ticket,
    dest: &Path,
) -> (TransferHandle, u64) {
    let mut events = receiver.events();
    let handle = receiver.download(DownloadSpec {
        ticket,
        dest: dest.to_path_buf(),
        files: None,
    });
    let id = handle.id;
    let done = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(Event::TransferProgress {
                transfer,
                done,
                total,
                ..
            }) = events.recv().await
                && transfer == id
            {
                assert!(done < total, "still midway");
                return done;
            }
        }
    })
    .await
    .expect("progress arrives");
    (handle, done)
}

/// Starts a download of `ticket` into `dest` and cancels it at its first progress event.
async fn cancel_midway(receiver: &Node, ticket: Ticket, dest: &Path, keep: bool) {
    let (handle, _) = start_until_progress(receiver, ticket, dest).await;
    handle.cancel(keep);
    let err = handle.wait().await.expect_err("cancelled");
    assert_eq!(err.to_string(), "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_download_keeps_its_partial_data_for_a_resume_or_removes_it() {
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let (sender, receiver, video, ticket) = video_share(&dirs, "GOPR0002.MP4", 96, 9).await;

    // Kept: the .part stays, and the same download resumes from it.
    let keep = dirs[3].path();
    cancel_midway(&receiver, ticket.clone(), keep, true).await;
    assert_eq!(
        meshdrop_tests::part_files(keep, "GOPR0002.MP4").len(),
        1,
        "partial data kept, in this download's own .part"
    );
    assert!(!keep.join("GOPR0002.MP4").exists());
    let report = receiver
        .download(DownloadSpec {
            ticket: ticket.clone(),
            dest: keep.to_path_buf(),
            files: None,
        })
        .wait()
        .await
        .expect("resumes");
    assert!(report.resumed > 0, "resumed from the kept data: {report:?}");
    assert_eq!(
        report.resumed + report.fetched,
        report.bytes,
        "nothing fetched twice after a clean cancel"
    );
    assert_eq!(
        std::fs::read(keep.join("GOPR0002.MP4")).unwrap(),
        std::fs::read(&video).unwrap()
    );

    // Removed: nothing is left behind.
    let gone = dirs[4].path();
    cancel_midway(&receiver, ticket, gone, false).await;
    assert_eq!(
        std::fs::read_dir(gone).unwrap().count(),
        0,
        "partial data removed"
    );
    sender.stop().await.unwrap();
    receiver.stop().await.unwrap();
}

/// A lost signal: the only provider vanishes mid-transfer (its node stops) and comes back at the
/// same address a moment later. The download waits, reconnects by itself and finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_waits_for_a_vanished_provider_and_finishes_when_it_comes_back() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let (sender, receiver, video, ticket) = video_share(&dirs, "GOPR0003.MP4", 48, 11).await;
    let sender_addrs = sender.listen_addrs();

    // At the first progress event: hold the download, and the provider goes away.
    let (handle, done_before) = start_until_progress(&receiver, ticket, dirs[3].path()).await;
    handle.pause();
    sender.stop().await.unwrap();
    // The download runs on with its provider gone: its stream fails and it starts redialling.
    handle.resume();

    // The provider's device comes back with the same identity, share and address.
    let mut config = NodeConfig::loopback(dirs[0].path())
        .with_name("sender")
        .with_mdns(false);
    config.listen = sender_addrs;
    let sender = Node::start(config).await.expect("the provider restarts");

    let report = tokio::time::timeout(Duration::from_secs(60), handle.wait())
        .await
        .expect("finishes within a minute")
        .expect("the download finishes after the provider is back");
    assert_eq!(
        std::fs::read(dirs[3].path().join("GOPR0003.MP4")).unwrap(),
        std::fs::read(&video).unwrap(),
        "bytes equal"
    );
    assert!(done_before < report.bytes, "the provider left mid-transfer");
    // Only chunks on their way to the writer when the stream broke may come twice.
    assert!(
        report.fetched - report.bytes <= 1024 * 1024,
        "at most a few chunks fetched twice: {report:?}"
    );
    sender.stop().await.unwrap();
    receiver.stop().await.unwrap();
}

/// A phone suspends the app (the node stops) in the middle of a download: when the node starts
/// again it resumes the download by itself, fetches only what is missing and finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_mid_download_resumes_it_by_itself() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let (sender, receiver, video, ticket) = video_share(&dirs, "GOPR0004.MP4", 48, 12).await;
    let (handle, _) = start_until_progress(&receiver, ticket, dirs[3].path()).await;
    receiver.stop().await.unwrap();
    let err = handle.wait().await.expect_err("stopped with its node");
    assert_eq!(err.to_string(), "the node has stopped");
    assert!(
        !dirs[3].path().join("GOPR0004.MP4").exists(),
        "stopped midway"
    );

    let receiver = node(dirs[1].path(), "receiver", Serves::Honest).await;
    let mut events = receiver.events();
    let (bytes, fetched) = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match events.recv().await {
                Ok(Event::TransferFinished { bytes, fetched, .. }) => return (bytes, fetched),
                Ok(Event::TransferFailed { error, .. }) => {
                    panic!("resumed download failed: {error}")
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the restarted node finishes the download");
    assert_eq!(
        std::fs::read(dirs[3].path().join("GOPR0004.MP4")).unwrap(),
        std::fs::read(&video).unwrap(),
        "bytes equal"
    );
    assert!(
        fetched < bytes,
        "only the missing part was fetched: {fetched} of {bytes}"
    );
    sender.stop().await.unwrap();
    receiver.stop().await.unwrap();
}
