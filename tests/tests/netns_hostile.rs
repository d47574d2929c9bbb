//! A hostile peer on the same network as a seeder and a downloader, with real `meshdrop`
//! processes in network namespaces (the seeder's uplink capped at 100 Mbit/s) and a raw libp2p
//! peer that holds the share's ticket: it opens 4 blob streams to the seeder that ask for
//! chunks and never read (the seeder's 4 upload slots), and answers the downloader's blob stream
//! with a flood of peer exchange naming 1,000 addresses: loopback, link-local, unspecified, IPv6
//! loopback, every one of them a trap listening inside the downloader's own namespace. The honest
//! download still completes at the speed it had without the attacker, and no trap is touched.
//!
//! Needs root, iproute2, and the `meshdrop` binary (`cargo build -p meshdrop`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use futures::AsyncWriteExt;
use libp2p::{Multiaddr, PeerId, Stream};
use meshdrop_core::Ticket;
use meshdrop_core::transfer::wire::{self, PexPeer, Request, Response};
use meshdrop_tests::netns::Lab;
use meshdrop_tests::process::MeshdropProcess;
use meshdrop_tests::raw::{Handler, RawPeer, receive, send};
use tempfile::TempDir;

const STEP: Duration = Duration::from_secs(60);
const SIZE: usize = 24 << 20;
/// The port of the traps in the downloader's namespace.
const TRAP: u16 = 47_001;

/// The flood: 250 made-up peers, 4 addresses each, every one pointing at a trap.
fn flood() -> Vec<PexPeer> {
    let addrs: Vec<Multiaddr> = [
        format!("/ip4/127.0.0.1/tcp/{TRAP}"),
        format!("/ip4/169.254.9.9/tcp/{TRAP}"),
        format!("/ip6/::1/tcp/{TRAP}"),
        format!("/ip4/0.0.0.0/tcp/{TRAP}"),
    ]
    .iter()
    .map(|a| a.parse().expect("trap address"))
    .collect();
    (0..250)
        .map(|_| PexPeer::new(&PeerId::random(), &addrs))
        .collect()
}

/// A provider that proves the key, has nothing, and names the flood: in its hello, then in
/// `Peers` frames of 50.
fn flooding_provider(ticket: &Ticket) -> Handler {
    let key = ticket.key;
    Arc::new(move |local, peer, mut stream: Stream| {
        Box::pin(async move {
            let Some(Request::Hello { .. }) = receive::<Request>(&mut stream).await else {
                return;
            };
            let mut peers = flood();
            let rest = peers.split_off(16);
            let hello = Response::Hello {
                proof: key.proof(&local, &peer),
                complete: false,
                have: Vec::new(),
                peers,
            };
            send(&mut stream, &hello).await;
            for batch in rest.chunks(50) {
                let frame = Response::Peers {
                    peers: batch.to_vec(),
                };
                if meshdrop_core::net::framing::write_msg(&mut stream, &frame)
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let _ = stream.flush().await;
            // Then silence, as long as the downloader keeps the stream.
            let mut buf = Vec::new();
            while let Ok(Some(_)) =
                meshdrop_core::net::framing::read_msg::<_, Request>(&mut stream, &mut buf).await
            {
            }
        })
    })
}

/// Counts every TCP connection and UDP datagram reaching port [`TRAP`] (IPv4 and IPv6, every
/// address of the namespace it runs in) until `stop` is set.
fn traps(
    hits: Arc<AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    bound: std::sync::mpsc::Sender<()>,
) -> Result<()> {
    let tcp = std::net::TcpListener::bind(("::", TRAP)).context("trap (tcp)")?;
    let udp = std::net::UdpSocket::bind(("::", TRAP)).context("trap (udp)")?;
    let _ = bound.send(());
    tcp.set_nonblocking(true)?;
    udp.set_read_timeout(Some(Duration::from_millis(20)))?;
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        if tcp.accept().is_ok() {
            hits.fetch_add(1, Ordering::Relaxed);
        }
        if udp.recv_from(&mut buf).is_ok() {
            hits.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}

/// Downloads the ticket in `lab.host(1)` with a fresh data dir; how long it took.
fn download(
    lab: &Lab,
    ticket: &str,
    label: &str,
    attacker: Option<&dyn Fn(&str)>,
) -> Result<Duration> {
    let dir = TempDir::new()?;
    let out = dir.path().join("out");
    let started = Instant::now();
    let mut get = MeshdropProcess::spawn_get(lab.host(1), dir.path(), label, ticket, &out, &[])?;
    if let Some(connect) = attacker {
        let listening = get.wait_for(|v| v["event"] == "listening", STEP)?;
        let peer = listening["peer"].as_str().context("no peer")?.to_string();
        let addr = listening["addrs"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .filter_map(|a| a.as_str())
                    .find(|a| a.contains("/tcp/"))
            })
            .context("no TCP address")?
            .to_string();
        connect(&format!("{addr}/p2p/{peer}"));
    }
    let status = get.wait_exit(STEP)?;
    let took = started.elapsed();
    ensure!(status.success(), "get failed: {}", get.diagnostics());
    ensure!(
        std::fs::metadata(out.join("trip.bin"))?.len() == SIZE as u64,
        "incomplete download"
    );
    Ok(took)
}

#[test]
fn stalled_readers_and_a_peer_exchange_flood_neither_slow_an_honest_download_nor_make_it_dial()
-> Result<()> {
    let lab = Lab::new(3)?;
    lab.set_rate(0, "100mbit")?;
    // A link-local address of the downloader's own: a dial to it would reach the trap.
    lab.host(1)
        .run("ip", &["addr", "add", "169.254.9.9/32", "dev", "lo"])?;
    let seed_dir = TempDir::new()?;
    let file = seed_dir.path().join("trip.bin");
    meshdrop_tests::random_file(&file, SIZE, 11);
    let bind = lab.host(0).addr().to_string();
    let file_arg = file.to_string_lossy().into_owned();
    let mut seeder = MeshdropProcess::spawn_raw(
        Some(lab.host(0)),
        seed_dir.path(),
        "seeder",
        &["--json", "--no-mdns", "--bind", &bind, "share", &file_arg],
    )?;
    let ticket_text = seeder.wait_for(|v| v["event"] == "ticket", STEP)?["ticket"]
        .as_str()
        .context("no ticket")?
        .to_string();
    let ticket: Ticket = ticket_text.parse()?;

    let alone = download(&lab, &ticket_text, "alone", None)?;

    // The trap, inside the downloader's namespace.
    let hits = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (bound_tx, bound) = std::sync::mpsc::channel();
    let trap = lab.host(1).thread({
        let (hits, stop) = (hits.clone(), stop.clone());
        move || traps(hits, stop, bound_tx)
    });
    if bound.recv_timeout(STEP).is_err() {
        trap.join()
            .map_err(|_| anyhow::anyhow!("trap panicked"))???;
        anyhow::bail!("the traps did not bind");
    }

    // The traps catch what a dial would bring: one knock on each kind of address.
    let knocks = lab.host(1).thread(|| {
        for addr in [
            format!("127.0.0.1:{TRAP}"),
            format!("169.254.9.9:{TRAP}"),
            format!("[::1]:{TRAP}"),
        ] {
            let _ = std::net::TcpStream::connect_timeout(
                &addr.parse().expect("socket address"),
                Duration::from_secs(2),
            );
        }
    });
    knocks
        .join()
        .map_err(|_| anyhow::anyhow!("knocks panicked"))??;
    let deadline = Instant::now() + Duration::from_secs(5);
    while hits.load(Ordering::Relaxed) < 3 {
        ensure!(
            Instant::now() < deadline,
            "the traps caught {} knocks of 3",
            hits.load(Ordering::Relaxed)
        );
        std::thread::yield_now();
    }
    hits.store(0, Ordering::Relaxed);

    // The attacker, in its own namespace, with a runtime of its own there.
    let (to_attacker, orders) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (ready_tx, ready) = std::sync::mpsc::channel::<Result<(), String>>();
    let attacker_addr: Multiaddr = format!("/ip4/{}/tcp/0", lab.host(2).addr()).parse()?;
    let attacker = lab.host(2).thread({
        let ticket = ticket.clone();
        move || attack(attacker_addr, ticket, orders, ready_tx)
    });
    ready
        .recv_timeout(STEP)
        .context("the attacker did not start")?
        .map_err(anyhow::Error::msg)?;
    let connect = |addr: &str| {
        let _ = to_attacker.send(addr.to_string());
    };
    let attacked = download(&lab, &ticket_text, "attacked", Some(&connect))?;
    drop(to_attacker);
    stop.store(true, Ordering::Relaxed);
    trap.join()
        .map_err(|_| anyhow::anyhow!("trap panicked"))???;
    let named = attacker
        .join()
        .map_err(|_| anyhow::anyhow!("attacker panicked"))??
        .map_err(anyhow::Error::msg)?;
    let mbit = |t: Duration| SIZE as f64 * 8.0 / 1e6 / t.as_secs_f64();
    println!(
        "24 MiB at 100 Mbit/s: alone {alone:?} ({:.0} Mbit/s), with 4 stalled readers and {named} \
         addresses of peer exchange {attacked:?} ({:.0} Mbit/s); trap hits {}",
        mbit(alone),
        mbit(attacked),
        hits.load(Ordering::Relaxed)
    );
    assert!(named >= 1000, "the flood named {named} addresses");
    assert_eq!(
        hits.load(Ordering::Relaxed),
        0,
        "an address from peer exchange was dialled"
    );
    assert!(
        attacked.as_secs_f64() <= alone.as_secs_f64() * 1.5,
        "the attacked download took {attacked:?} against {alone:?}"
    );
    seeder.terminate(STEP)?;
    Ok(())
}

/// The attacker: 4 stalled blob streams to the seeder, then a flooding provider for whichever
/// downloader address it is sent. Returns how many addresses its peer exchange named.
fn attack(
    listen: Multiaddr,
    ticket: Ticket,
    mut orders: tokio::sync::mpsc::UnboundedReceiver<String>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) -> Result<usize, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let served = Arc::new(AtomicUsize::new(0));
        let provider = flooding_provider(&ticket);
        let counted: Handler = {
            let served = served.clone();
            Arc::new(move |local, peer, stream| {
                served.fetch_add(1, Ordering::Relaxed);
                provider(local, peer, stream)
            })
        };
        let eve = RawPeer::start_on(listen, &[], vec![(wire::PROTOCOL, counted)]).await;
        let seeder = &ticket.providers[0];
        let seeder_addr = seeder
            .addrs
            .iter()
            .find(|a| a.to_string().contains("/tcp/"));
        let seeder_addr = seeder_addr.ok_or("no TCP address in the ticket")?;
        let s = eve.connect(seeder_addr).await;
        let mut stalled = Vec::new();
        for _ in 0..4 {
            let mut stream = eve.open(s, wire::PROTOCOL).await;
            let hello = Request::Hello {
                tag: ticket.key.tag().0,
                proof: ticket.key.proof(&eve.peer_id(), &s),
            };
            send(&mut stream, &hello).await;
            match receive::<Response>(&mut stream).await {
                Some(Response::Hello { .. }) => {}
                other => return Err(format!("the seeder answered {other:?}")),
            }
            send(
                &mut stream,
                &Request::Chunks {
                    first: 0,
                    count: 1024,
                },
            )
            .await;
            stalled.push(stream); // never read
        }
        let _ = ready.send(Ok(()));
        while let Some(addr) = orders.recv().await {
            let addr: Multiaddr = addr.parse().map_err(|e| format!("{e}"))?;
            eve.connect(&addr).await;
        }
        drop(stalled);
        // Each blob stream a downloader opened heard the whole flood.
        Ok(served.load(Ordering::Relaxed) * flood().iter().map(|p| p.addrs.len()).sum::<usize>())
    })
}
