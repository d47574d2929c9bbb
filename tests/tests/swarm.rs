//! Swarms of real nodes in one process on 127.0.0.1: every downloader serves what it has, finds
//! the other downloaders from a ticket that names only the seeder, and pulls from all of them.
//! The seeder's uplink is rate-limited, as a phone's or a home line's would be, so trading
//! between leechers is what finishes the swarm.

use std::path::Path;
use std::time::{Duration, Instant};

use meshdrop_core::transfer::limits::TransferLimits;
use meshdrop_core::{DownloadReport, DownloadSpec, Event, Node, NodeConfig, Ticket};
use meshdrop_tests::{EVENT_TIMEOUT, random_file, wait_for};

const MB: u64 = 1_000_000;

/// What a test node serves: its files as they are, or every chunk with a bit flipped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Serves {
    Honest,
    Corrupt,
}

async fn node(dir: &Path, name: &str, limits: TransferLimits, serves: Serves) -> Node {
    meshdrop_tests::init_test_logging();
    let mut config = NodeConfig::loopback(dir).with_name(name).with_mdns(false);
    if serves == Serves::Corrupt {
        config = config.with_corrupt_chunks();
    }
    config.limits = limits;
    Node::start(config).await.expect("node starts")
}

fn upload_limit(bytes_per_sec: u64) -> TransferLimits {
    TransferLimits {
        max_upload_rate: Some(bytes_per_sec),
        ..TransferLimits::default()
    }
}

/// Shares one random file of `len` bytes from `seeder`; the ticket names only the seeder.
async fn share(seeder: &Node, dir: &Path, len: usize) -> (Ticket, blake3::Hash) {
    let file = dir.join("trip.mp4");
    random_file(&file, len, 42);
    let hash = blake3::hash(&std::fs::read(&file).unwrap());
    let ticket = seeder.share(vec![file]).await.expect("shares");
    assert_eq!(
        ticket.providers.len(),
        1,
        "the ticket names the seeder only"
    );
    (ticket, hash)
}

/// Downloads on every leecher at once; the reports in leecher order.
async fn download_all(
    leechers: &[(Node, tempfile::TempDir)],
    ticket: &Ticket,
) -> Vec<DownloadReport> {
    let handles: Vec<_> = leechers
        .iter()
        .map(|(n, out)| {
            n.download(DownloadSpec {
                ticket: ticket.clone(),
                dest: out.path().to_path_buf(),
                files: None,
            })
        })
        .collect();
    let mut reports = Vec::new();
    for h in handles {
        let report = tokio::time::timeout(Duration::from_secs(180), h.wait())
            .await
            .expect("in time")
            .expect("download succeeds");
        reports.push(report);
    }
    reports
}

fn assert_equal(out: &Path, hash: &blake3::Hash) {
    let got = blake3::hash(&std::fs::read(out.join("trip.mp4")).expect("file in place"));
    assert_eq!(&got, hash, "bytes equal");
}

/// Bytes `report` got from peers other than `seeder`.
fn from_others(report: &DownloadReport, seeder: &Node) -> u64 {
    report
        .peers
        .iter()
        .filter(|p| p.peer != seeder.peer_id())
        .map(|p| p.bytes)
        .sum()
}

async fn leechers(n: usize) -> Vec<(Node, tempfile::TempDir, tempfile::TempDir)> {
    let mut out = Vec::new();
    for i in 0..n {
        let (data, dest) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let node = node(
            data.path(),
            &format!("friend{i}"),
            TransferLimits::default(),
            Serves::Honest,
        )
        .await;
        out.push((node, dest, data));
    }
    out
}

/// `n` leechers as (node, destination) pairs for [`download_all`], and their data dirs.
async fn leecher_pairs(n: usize) -> (Vec<(Node, tempfile::TempDir)>, Vec<tempfile::TempDir>) {
    leechers(n)
        .await
        .into_iter()
        .map(|(node, dest, data)| ((node, dest), data))
        .unzip()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_friends_with_the_seeders_ticket_trade_chunks_and_all_finish() {
    let (sd, files) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let seeder = node(sd.path(), "seeder", upload_limit(MB), Serves::Honest).await;
    let len = 8 * 1024 * 1024;
    let (ticket, hash) = share(&seeder, files.path(), len).await;
    let (pairs, _data) = leecher_pairs(3).await;

    let reports = download_all(&pairs, &ticket).await;
    for ((_, out), report) in pairs.iter().zip(&reports) {
        assert_equal(out.path(), &hash);
        assert_eq!(report.rejected, 0);
        // Counted by the receiving side, per provider: a real share came from the other friends.
        let others = from_others(report, &seeder);
        assert!(
            others >= report.bytes / 4,
            "only {others} of {} bytes came from other friends: {:?}",
            report.bytes,
            report.peers
        );
    }
    // Of the three copies, the seeder's uplink carried well under two.
    let from_seeder: u64 = reports
        .iter()
        .map(|r| r.bytes - from_others(r, &seeder))
        .sum();
    assert!(
        from_seeder < 2 * len as u64,
        "the seeder's chunks were {from_seeder} bytes of three copies of {len}: {reports:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_friends_finish_after_the_seeder_leaves_once_every_chunk_is_out() {
    let (sd, files) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let seeder = node(sd.path(), "seeder", upload_limit(3 * MB), Serves::Honest).await;
    let (ticket, hash) = share(&seeder, files.path(), 8 * 1024 * 1024).await;
    let mut seeder_events = seeder.events();
    let friends = leechers(3).await;
    // Told when a friend has every chunk: from then on each chunk exists in the swarm.
    let (whole_tx, mut whole) = tokio::sync::mpsc::unbounded_channel();
    for (n, _, _) in &friends {
        let (mut events, tx) = (n.events(), whole_tx.clone());
        tokio::spawn(async move {
            while let Ok(ev) = events.recv().await {
                if let Event::TransferProgress { done, total, .. } = ev
                    && done == total
                {
                    let _ = tx.send(());
                }
            }
        });
    }
    let handles: Vec<_> = friends
        .iter()
        .map(|(n, out, _)| {
            n.download(DownloadSpec {
                ticket: ticket.clone(),
                dest: out.path().to_path_buf(),
                files: None,
            })
        })
        .collect();
    // Wait for the seeder to have sent every chunk once and for one friend to hold them all;
    // then stop it: the other friends finish from the swarm alone.
    wait_for(&mut seeder_events, "every chunk to leave the seeder", |e| {
        matches!(e, Event::ShareDistributed { content } if *content == ticket.content).then_some(())
    })
    .await;
    tokio::time::timeout(EVENT_TIMEOUT, whole.recv())
        .await
        .expect("a friend holds every chunk in time");
    seeder.stop().await.expect("seeder stops");

    for (h, (_, out, _)) in handles.into_iter().zip(&friends) {
        let report = tokio::time::timeout(Duration::from_secs(120), h.wait())
            .await
            .expect("in time")
            .expect("finishes without the seeder");
        assert_equal(out.path(), &hash);
        assert_eq!(report.rejected, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_friend_serving_corrupt_chunks_is_dropped_and_everyone_finishes() {
    let (sd, files) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let seeder = node(sd.path(), "seeder", upload_limit(2 * MB), Serves::Honest).await;
    let (ticket, hash) = share(&seeder, files.path(), 6 * 1024 * 1024).await;
    // The liar got the share first (honestly) and now flips a bit in every chunk it serves.
    let (ld, lout) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let liar = node(
        ld.path(),
        "liar",
        TransferLimits::default(),
        Serves::Corrupt,
    )
    .await;
    // (The liar's copy must outlive this statement: it serves from it.)
    let liar_copy = [(liar.clone(), lout)];
    download_all(&liar_copy, &ticket).await;

    let (pairs, _data) = leecher_pairs(2).await;
    let reports = download_all(&pairs, &ticket).await;
    for ((_, out), report) in pairs.iter().zip(&reports) {
        assert_equal(out.path(), &hash);
        assert!(
            report.rejected > 0,
            "the liar (found through the seeder) was asked and caught: {report:?}"
        );
        let from_liar = report
            .peers
            .iter()
            .find(|p| p.peer == liar.peer_id())
            .map_or(0, |p| p.bytes);
        // Bytes per peer count kept chunks only.
        assert_eq!(from_liar, 0, "nothing the liar sent was kept");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_and_download_rate_limits_hold_within_ten_percent() {
    let len: u64 = 6 * MB;
    for (up, down) in [(Some(2 * MB), None), (None, Some(2 * MB))] {
        let (sd, rd, files, out) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let seeder = node(
            sd.path(),
            "seeder",
            TransferLimits {
                max_upload_rate: up,
                ..TransferLimits::default()
            },
            Serves::Honest,
        )
        .await;
        let receiver = node(
            rd.path(),
            "receiver",
            TransferLimits {
                max_download_rate: down,
                ..TransferLimits::default()
            },
            Serves::Honest,
        )
        .await;
        let (ticket, hash) = share(&seeder, files.path(), len as usize).await;
        let started = Instant::now();
        let pair = [(receiver, out)];
        let report = download_all(&pair, &ticket).await.remove(0);
        let rate = report.bytes as f64 / started.elapsed().as_secs_f64();
        assert_equal(pair[0].1.path(), &hash);
        let limit = (2 * MB) as f64;
        assert!(
            (0.9 * limit..=1.1 * limit).contains(&rate),
            "upload limit {up:?}, download limit {down:?}: {rate:.0} B/s"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_connects_mid_download_and_holds_the_share_is_asked_too() {
    let (sd, hd, rd, files, copy, out) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let seeder = node(sd.path(), "seeder", upload_limit(MB), Serves::Honest).await;
    let (ticket, hash) = share(&seeder, files.path(), 8 * 1024 * 1024).await;
    // Another device holds the same file (copied by hand) and got the ticket, unknown to the
    // seeder and the ticket: its `get` finds every file in place and seeds at once.
    let holder = node(
        hd.path(),
        "holder",
        TransferLimits::default(),
        Serves::Honest,
    )
    .await;
    let (same, _) = share(&holder, copy.path(), 8 * 1024 * 1024).await;
    assert_eq!(same.content, ticket.content);
    let adopted = holder
        .download(DownloadSpec {
            ticket: ticket.clone(),
            dest: copy.path().to_path_buf(),
            files: None,
        })
        .wait()
        .await
        .expect("the copy is the share");
    assert_eq!((adopted.skipped, adopted.fetched), (8 * 1024 * 1024, 0));

    let receiver = node(
        rd.path(),
        "receiver",
        TransferLimits::default(),
        Serves::Honest,
    )
    .await;
    let mut events = receiver.events();
    let handle = receiver.download(DownloadSpec {
        ticket: ticket.clone(),
        dest: out.path().to_path_buf(),
        files: None,
    });
    wait_for(&mut events, "the first progress", |e| {
        matches!(e, Event::TransferProgress { .. }).then_some(())
    })
    .await;
    // Met mid-download (as discovery would): connected, then asked.
    receiver
        .add_peer(holder.peer_id(), holder.listen_addrs())
        .await
        .expect("connects to the holder");
    let report = tokio::time::timeout(Duration::from_secs(120), handle.wait())
        .await
        .expect("in time")
        .expect("download succeeds");
    assert_equal(out.path(), &hash);
    let from_holder = report
        .peers
        .iter()
        .find(|p| p.peer == holder.peer_id())
        .map_or(0, |p| p.bytes);
    assert!(from_holder > 0, "the holder was asked: {:?}", report.peers);
}
