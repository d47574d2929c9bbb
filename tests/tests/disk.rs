//! What lands on disk is always right, with real nodes in one process on 127.0.0.1: links planted
//! in the destination are never written through (a folder link is refused, a final name that is
//! a link is left alone, a `.part` that became a link is replaced), two downloads of two shares
//! with the same file name into one folder never mix bytes, names a destination cannot hold are
//! mapped and reported, and a seeder whose copy was damaged serves only what still verifies,
//! says so, and heals from others; with no good copy anywhere the download fails clearly; files
//! partly copied into the destination beforehand are completed in place (only the chunks they
//! lack travel), and a file the user changed is never written over.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use meshdrop_core::transfer::{Damage, NameRules, Provider};
use meshdrop_core::{DownloadError, DownloadReport, DownloadSpec, Event, Node, NodeConfig, Ticket};
use meshdrop_tests::{damage, get, part_files, random_file, wait_for};

const MIB: usize = 1024 * 1024;

async fn node(dir: &Path, name: &str) -> Node {
    node_with(NodeConfig::loopback(dir), name).await
}

async fn node_with(config: NodeConfig, name: &str) -> Node {
    meshdrop_tests::init_test_logging();
    let mut config = config.with_name(name).with_mdns(false);
    config.progress_interval = Duration::ZERO;
    Node::start(config).await.expect("node starts")
}

fn hash(path: &Path) -> blake3::Hash {
    blake3::hash(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// A ticket with the providers of both.
fn both(a: &Ticket, b: &Ticket) -> Ticket {
    let mut t = a.clone();
    let extra: Vec<Provider> = b.providers.clone();
    t.providers.extend(extra);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_planted_in_the_destination_are_never_written_through() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let trip = dirs[2].path().join("Trip");
    random_file(&trip.join("x.bin"), 3 * MIB, 1);
    random_file(&trip.join("sub/inner.bin"), 200_000, 2);
    let outside = dirs[3].path();
    std::fs::write(outside.join("notes.txt"), b"my notes").unwrap();
    std::fs::create_dir(outside.join("elsewhere")).unwrap();
    let sender = node(dirs[0].path(), "sender").await;
    let receiver = node(dirs[1].path(), "receiver").await;
    let ticket = sender.share(vec![trip.clone()]).await.unwrap();

    let out = dirs[1].path().join("out");
    std::fs::create_dir_all(out.join("Trip")).unwrap();
    let link = |target: &Path, at: &str| std::os::unix::fs::symlink(target, out.join(at)).unwrap();
    link(&outside.join("notes.txt"), "Trip/x.bin.part");
    link(&outside.join("notes.txt"), "Trip/x.bin");
    link(&outside.join("elsewhere"), "Trip/sub");

    // A folder of the share that is a link: refused, by name, before anything is written there.
    let err = get(&receiver, &ticket, &out).await.expect_err("refused");
    println!("{err}");
    assert!(matches!(err, DownloadError::Dest(_)), "{err:?}");
    assert!(
        err.to_string().contains("Trip/sub is a link"),
        "the error names the link: {err}"
    );
    assert_eq!(
        std::fs::read_dir(outside.join("elsewhere"))
            .unwrap()
            .count(),
        0
    );

    // Without it the download goes through; the link at the final name is left as it is and
    // the file is saved beside it, reported.
    std::fs::remove_file(out.join("Trip/sub")).unwrap();
    let report = get(&receiver, &ticket, &out).await.expect("downloads");
    println!("{:?}", report.renamed);
    assert_eq!(
        std::fs::read(outside.join("notes.txt")).unwrap(),
        b"my notes"
    );
    assert_eq!(
        std::fs::read_dir(outside).unwrap().count(),
        2,
        "nothing new outside"
    );
    assert!(
        out.join("Trip/x.bin").is_symlink(),
        "the user's link is untouched"
    );
    assert_eq!(hash(&out.join("Trip/x (1).bin")), hash(&trip.join("x.bin")));
    assert_eq!(
        hash(&out.join("Trip/sub/inner.bin")),
        hash(&trip.join("sub/inner.bin"))
    );
    let renamed = &report.renamed;
    assert!(
        renamed.len() == 1
            && renamed[0].path == "Trip/x.bin"
            && renamed[0].saved_as == "Trip/x (1).bin"
            && renamed[0].reason.contains("link"),
        "{renamed:?}"
    );
    sender.stop().await.unwrap();
    receiver.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_replaced_by_a_link_between_runs_is_not_written_through() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let video = dirs[2].path().join("x.bin");
    random_file(&video, 64 * MIB, 3);
    let outside = dirs[3].path().join("notes.txt");
    std::fs::write(&outside, b"my notes").unwrap();
    let sender = node(dirs[0].path(), "sender").await;
    let receiver = node(dirs[1].path(), "receiver").await;
    let ticket = sender.share(vec![video.clone()]).await.unwrap();
    let out = dirs[1].path().join("out");

    for planted in ["symbolic", "hard"] {
        // Midway, the download is cancelled (its data kept); its .part becomes a link outside.
        let mut events = receiver.events();
        let handle = receiver.download(DownloadSpec {
            ticket: ticket.clone(),
            dest: out.clone(),
            files: None,
        });
        let id = handle.id;
        wait_for(&mut events, "progress", |ev| match ev {
            Event::TransferProgress { transfer, done, .. } if *transfer == id && *done > 0 => {
                Some(())
            }
            _ => None,
        })
        .await;
        handle.cancel(true);
        let _ = handle.wait().await;
        let parts = part_files(&out, "x.bin");
        assert_eq!(parts.len(), 1, "one .part, this download's: {parts:?}");
        std::fs::remove_file(&parts[0]).unwrap();
        match planted {
            "symbolic" => std::os::unix::fs::symlink(&outside, &parts[0]).unwrap(),
            _ => std::fs::hard_link(&outside, &parts[0]).unwrap(),
        }
        let report = get(&receiver, &ticket, &out).await.expect("downloads");
        println!("{planted} link: {:?}", report.notes);
        assert_eq!(std::fs::read(&outside).unwrap(), b"my notes", "{planted}");
        assert_eq!(hash(&out.join("x.bin")), hash(&video));
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.contains("not this download's file")),
            "{:?}",
            report.notes
        );
        assert!(part_files(&out, "x.bin").is_empty());
        std::fs::remove_file(out.join("x.bin")).unwrap();
    }
    sender.stop().await.unwrap();
    receiver.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_downloads_of_two_shares_with_the_same_file_name_into_one_folder_never_mix() {
    let dirs: Vec<_> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let (x, y) = (dirs[3].path().join("a.bin"), dirs[4].path().join("a.bin"));
    random_file(&x, 16 * MIB, 10);
    random_file(&y, 16 * MIB + 5, 11);
    let sender = node(dirs[0].path(), "sender").await;
    let receiver = node(dirs[1].path(), "receiver").await;
    let other = node(dirs[2].path(), "other receiver").await;
    let tx = sender.share(vec![x.clone()]).await.unwrap();
    let ty = sender.share(vec![y.clone()]).await.unwrap();

    // One node, two downloads at once into one folder; then two nodes (two data dirs, as two
    // programs would) at once into another.
    let one = dirs[1].path().join("one");
    let two = dirs[1].path().join("two");
    let (rx, ry, ox, oy) = tokio::join!(
        get(&receiver, &tx, &one),
        get(&receiver, &ty, &one),
        get(&receiver, &tx, &two),
        get(&other, &ty, &two),
    );
    for (dir, reports) in [(&one, [rx, ry]), (&two, [ox, oy])] {
        let reports: Vec<DownloadReport> = reports.into_iter().map(|r| r.expect("ok")).collect();
        let names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, ["a (1).bin", "a.bin"], "{}", dir.display());
        let got = [hash(&dir.join("a.bin")), hash(&dir.join("a (1).bin"))];
        let want = [hash(&x), hash(&y)];
        assert!(
            got == want || got == [want[1], want[0]],
            "each file is one share's bytes, whole"
        );
        let renamed: Vec<_> = reports.iter().flat_map(|r| &r.renamed).collect();
        assert_eq!(renamed.len(), 1, "{renamed:?}");
        assert_eq!(renamed[0].saved_as, "a (1).bin");
        println!("{}: {:?}", dir.display(), renamed[0]);
    }
    for n in [&sender, &receiver, &other] {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_a_destination_cannot_hold_are_mapped_and_reported() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let root = dirs[2].path().join("Fotos");
    let long = format!("{}.jpg", "é".repeat(120));
    let names = ["what?.txt", "a\\b", "IMG.JPG", "img.jpg", long.as_str()];
    for (i, n) in names.iter().enumerate() {
        random_file(&root.join(n), 1000 + i, i as u64);
    }
    let sender = node(dirs[0].path(), "sender").await;
    // The sender shares every name as it is.
    let ticket = sender.share(vec![root.clone()]).await.expect("shared");

    // On this Linux destination every name fits (the long one too: its .part is shortened).
    let linux = node(dirs[1].path(), "linux").await;
    let out = dirs[1].path().join("out");
    let report = get(&linux, &ticket, &out).await.expect("downloads");
    assert!(report.renamed.is_empty(), "{:?}", report.renamed);
    for n in names {
        assert_eq!(hash(&out.join("Fotos").join(n)), hash(&root.join(n)), "{n}");
    }
    linux.stop().await.unwrap();

    // A destination with Windows' rules, case-insensitive, 143-byte names (eCryptfs).
    let mut config = NodeConfig::loopback(dirs[3].path());
    config.name_rules = Some(NameRules {
        name_max: 143,
        ..NameRules::PORTABLE
    });
    let strict = node_with(config, "strict").await;
    let out = dirs[3].path().join("out");
    let report = get(&strict, &ticket, &out).await.expect("downloads");
    for r in &report.renamed {
        println!("{} -> {} ({})", r.path, r.saved_as, r.reason);
    }
    let saved = |share: &str| -> PathBuf {
        let r = report
            .renamed
            .iter()
            .find(|r| r.path == format!("Fotos/{share}"))
            .unwrap_or_else(|| panic!("{share} reported: {:?}", report.renamed));
        out.join(&r.saved_as)
    };
    assert_eq!(saved("what?.txt"), out.join("Fotos/what？.txt"));
    assert_eq!(saved("a\\b"), out.join("Fotos/a＼b"));
    assert_eq!(saved("img.jpg"), out.join("Fotos/img (1).jpg"));
    assert!(saved(&long).file_name().unwrap().len() <= 143);
    assert_eq!(report.renamed.len(), 4, "IMG.JPG keeps its name");
    for n in names {
        let at = if n == "IMG.JPG" {
            out.join("Fotos/IMG.JPG")
        } else {
            saved(n)
        };
        assert_eq!(hash(&at), hash(&root.join(n)), "{n}");
    }
    sender.stop().await.unwrap();
    strict.stop().await.unwrap();
}

/// A share of one file from `a`, downloaded whole by `b`: where `b` keeps it, and the tickets
/// naming each as provider.
async fn seeded_twice(a: &Node, b: &Node, file: &Path, b_out: &Path) -> (PathBuf, Ticket, Ticket) {
    let ticket = a.share(vec![file.to_path_buf()]).await.unwrap();
    get(b, &ticket, b_out).await.expect("b downloads");
    let name = file.file_name().unwrap();
    let b_ticket = b.ticket_for(ticket.content, ticket.key);
    (b_out.join(name), ticket, b_ticket)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_seeder_serves_only_good_chunks_says_so_and_heals_from_others() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let file = dirs[3].path().join("trip.mp4");
    random_file(&file, 16 * MIB, 21);
    let a = node(dirs[0].path(), "a").await;
    let b = node(dirs[1].path(), "b").await;
    let c = node(dirs[2].path(), "c").await;
    let (b_copy, a_ticket, b_ticket) =
        seeded_twice(&a, &b, &file, &dirs[1].path().join("out")).await;
    let mut b_events = b.events();
    damage(&b_copy, 5 * MIB as u64, 2 * MIB).unwrap();

    // C asks both; B answers only with chunks that verify.
    let out = dirs[2].path().join("out");
    let report = get(&c, &both(&b_ticket, &a_ticket), &out)
        .await
        .expect("c downloads");
    assert_eq!(hash(&out.join("trip.mp4")), hash(&file), "right bytes");
    assert_eq!(report.rejected, 0, "no peer sent a bad chunk");
    let from_b = report
        .peers
        .iter()
        .find(|p| p.peer == b.peer_id())
        .map_or(0, |p| p.bytes);
    println!(
        "from b: {from_b} of {} bytes; {:?}",
        report.bytes, report.peers
    );
    assert!(
        from_b > 0,
        "the damaged seeder kept serving its good chunks"
    );

    let (chunks, damage_kind) = wait_for(&mut b_events, "share_damaged", |ev| match ev {
        Event::ShareDamaged {
            file,
            chunks,
            damage,
            repairing,
            ..
        } => {
            assert_eq!(file, "trip.mp4");
            assert!(repairing, "a downloaded share is repaired");
            Some((chunks.len(), *damage))
        }
        _ => None,
    })
    .await;
    println!("b: {chunks} chunks damaged ({damage_kind:?})");
    assert_eq!(damage_kind, Damage::Changed, "written after it was shared");
    assert_eq!(chunks, 8, "2 MiB of 256 KiB chunks");
    wait_for(&mut b_events, "share_repaired", |ev| match ev {
        Event::ShareRepaired { chunks, .. } => Some(chunks.len()),
        Event::ShareRepairFailed { error, .. } => panic!("repair failed: {error}"),
        _ => None,
    })
    .await;
    assert_eq!(hash(&b_copy), hash(&file), "b's copy healed");
    let verified = b.verify(None).await.unwrap();
    assert!(
        verified.iter().all(|s| s.damaged.is_empty()),
        "{verified:?}"
    );
    for n in [&a, &b, &c] {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_repairs_a_downloaded_share_and_says_what_changed_in_ones_own() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let file = dirs[2].path().join("photo.raw");
    random_file(&file, 3 * MIB, 31);
    let a = node(dirs[0].path(), "a").await;
    let b = node(dirs[1].path(), "b").await;
    let (b_copy, _, _) = seeded_twice(&a, &b, &file, &dirs[1].path().join("out")).await;
    damage(&b_copy, 1000, 10).unwrap();

    let shares = b.verify(None).await.unwrap();
    assert_eq!(shares.len(), 1);
    let d = &shares[0].damaged;
    assert!(d.len() == 1 && d[0].repaired && d[0].chunks == [0], "{d:?}");
    assert_eq!(hash(&b_copy), hash(&file));

    // Its own share: the edit is reported, never undone.
    damage(&file, 0, 1).unwrap();
    let edited = std::fs::read(&file).unwrap();
    let shares = a.verify(None).await.unwrap();
    let d = &shares[0].damaged;
    assert!(d.len() == 1 && !d[0].repaired, "{d:?}");
    assert_eq!(d[0].damage, Damage::Changed);
    assert!(
        d[0].error
            .as_deref()
            .unwrap_or("")
            .contains("share the file again")
    );
    assert_eq!(std::fs::read(&file).unwrap(), edited);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_good_copy_anywhere_the_download_fails_clearly_within_a_minute() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let file = dirs[3].path().join("trip.mp4");
    random_file(&file, 8 * MIB, 41);
    let a = node(dirs[0].path(), "a").await;
    let b = node(dirs[1].path(), "b").await;
    let c = node(dirs[2].path(), "c").await;
    let (b_copy, a_ticket, b_ticket) =
        seeded_twice(&a, &b, &file, &dirs[1].path().join("out")).await;
    damage(&file, 3 * MIB as u64, 300_000).unwrap();
    damage(&b_copy, 3 * MIB as u64, 300_000).unwrap();

    let started = Instant::now();
    let err = get(&c, &both(&a_ticket, &b_ticket), &dirs[2].path().join("out"))
        .await
        .expect_err("no good copy");
    let took = started.elapsed();
    println!("failed after {:.1} s: {err}", took.as_secs_f64());
    assert!(matches!(err, DownloadError::NoGoodCopy(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("no peer has a good copy of"), "{text}");
    assert!(
        text.contains("trip.mp4") && text.contains("damaged"),
        "{text}"
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
    for n in [&a, &b, &c] {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_share_fetched_into_one_folder_by_two_nodes_at_once_lands_once() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let file = dirs[3].path().join("a.bin");
    random_file(&file, 16 * MIB, 12);
    let sender = node(dirs[0].path(), "sender").await;
    let (r1, r2) = (
        node(dirs[1].path(), "r1").await,
        node(dirs[2].path(), "r2").await,
    );
    let ticket = sender.share(vec![file.clone()]).await.unwrap();
    let out = dirs[3].path().join("out");
    let (a, b) = tokio::join!(get(&r1, &ticket, &out), get(&r2, &ticket, &out));
    let (a, b) = (a.expect("r1"), b.expect("r2"));
    let names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["a.bin"], "one copy, no leftover .part");
    assert_eq!(hash(&out.join("a.bin")), hash(&file));
    assert!(a.renamed.is_empty() && b.renamed.is_empty());
    for n in [&sender, &r1, &r2] {
        n.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trip_partly_copied_from_a_stick_is_completed_in_place_fetching_only_what_it_lacks() {
    use std::os::unix::fs::MetadataExt;
    const KIB: u64 = 1024;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let trip = dirs[2].path().join("Trip");
    random_file(&trip.join("a.mp4"), 6 * MIB, 21);
    random_file(&trip.join("b.mp4"), 6 * MIB, 22);
    random_file(&trip.join("c.jpg"), 300_000, 23);
    random_file(&trip.join("e.mp4"), 4 * MIB, 24);
    random_file(&trip.join("f.mov"), 2 * MIB, 25);
    let sender = node(dirs[0].path(), "sender").await;
    let receiver = node(dirs[1].path(), "receiver").await;
    let ticket = sender.share(vec![trip.clone()]).await.unwrap();

    // What the friend copied from a stick before it was pulled: a.mp4 whole, b.mp4 up to a
    // little past 2.5 MiB, e.mp4 by a copier that sized the file first (1 MiB, then zeros), and
    // their own edit of f.mov (a changed region in its middle), which must survive.
    let out = dirs[1].path().join("out");
    let mine = out.join("Trip");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::copy(trip.join("a.mp4"), mine.join("a.mp4")).unwrap();
    let b = std::fs::read(trip.join("b.mp4")).unwrap();
    std::fs::write(mine.join("b.mp4"), &b[..5 * MIB / 2 + 1000]).unwrap();
    let mut e = std::fs::read(trip.join("e.mp4")).unwrap();
    e[MIB..].fill(0);
    std::fs::write(mine.join("e.mp4"), &e).unwrap();
    std::fs::copy(trip.join("f.mov"), mine.join("f.mov")).unwrap();
    damage(&mine.join("f.mov"), 3 * MIB as u64 / 2, 4096).unwrap();
    let edited = hash(&mine.join("f.mov"));
    let inode = |name: &str| std::fs::metadata(mine.join(name)).unwrap().ino();
    let (b_inode, e_inode) = (inode("b.mp4"), inode("e.mp4"));

    let report = get(&receiver, &ticket, &out).await.expect("downloads");
    println!("{report:?}");
    for name in ["a.mp4", "b.mp4", "c.jpg", "e.mp4"] {
        assert_eq!(hash(&mine.join(name)), hash(&trip.join(name)), "{name}");
    }
    assert_eq!(hash(&mine.join("f (1).mov")), hash(&trip.join("f.mov")));
    assert_eq!(hash(&mine.join("f.mov")), edited, "the user's edit is kept");
    assert_eq!(
        (inode("b.mp4"), inode("e.mp4")),
        (b_inode, e_inode),
        "completed where they lay, not copied"
    );
    // 256 KiB chunks: b.mp4 kept its first 10 whole chunks, e.mp4 its first 4; the torn chunk
    // of b.mp4 and the zeros of e.mp4 were fetched, as were c.jpg and the share's f.mov.
    let kept = 6 * MIB as u64 + 2560 * KIB + 1024 * KIB;
    assert_eq!(report.skipped, kept, "already there");
    assert_eq!(
        report.fetched,
        (6 * MIB + 4 * MIB + 2 * MIB) as u64 + 300_000 - 2560 * KIB - 1024 * KIB,
        "only what was missing travelled"
    );
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("b.mp4 was partly there already")),
        "{:?}",
        report.notes
    );
    assert!(part_files(&mine, "b.mp4").is_empty());
    for n in [&sender, &receiver] {
        n.stop().await.unwrap();
    }
}
