//! Property tests of the decoders: they never panic on arbitrary or damaged input, and valid
//! manifests and tickets round-trip.
//!
//! The `*_never_panic(s)` tests (manifests, tickets, wire messages) run [`fuzz_cases`] inputs each: `MESHDROP_FUZZ_CASES`
//! if set, else [`DEFAULT_FUZZ_CASES`]. `MESHDROP_FUZZ_CASES=1000000 cargo test -p meshdrop-core
//! fuzz` runs the full million per decoder that the issue asks for.

use std::path::Path;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use proptest::prelude::*;
use proptest::sample::Index;

use super::capability::ShareKey;
use super::content_id::ContentId;
use super::manifest::{FileEntry, Hash, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, Manifest};
use super::paths::{RelPath, join_safe, validate_name};
use super::ticket::{MAX_ADDRS, MAX_PROVIDERS, Provider, Ticket};

/// Cases per decoder fuzz test when `MESHDROP_FUZZ_CASES` is not set.
const DEFAULT_FUZZ_CASES: u32 = 50_000;

/// Cases of the round-trip properties.
const ROUND_TRIP_CASES: u32 = 2_000;

fn fuzz_cases() -> u32 {
    std::env::var("MESHDROP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_FUZZ_CASES)
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Failures are reported with their minimal input; no files are written beside the source.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---- strategies ----

/// Valid names, including Unicode, dots and spaces inside, and names sharing prefixes; cheap to
/// generate, for the fuzz tests.
fn simple_name() -> impl Strategy<Value = String> + Clone {
    prop::sample::select(vec![
        "a",
        "b",
        "a-b",
        "Día 1",
        "café ☕.jpg",
        "日本語",
        ".hidden",
        "x.tar.gz",
        "CONSOLE",
        "IMG_0001.MOV",
        "a b",
        "ü",
    ])
    .prop_map(str::to_owned)
}

/// Valid names, also random ones.
fn name() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        2 => simple_name(),
        1 => "[a-zA-Z0-9_é☕ -]{1,8}[a-z0-9]".prop_filter("valid name", |n| validate_name(n).is_ok()),
    ]
}

fn rel_path(name: impl Strategy<Value = String>) -> impl Strategy<Value = RelPath> {
    prop::collection::vec(name, 1..5).prop_map(|c| RelPath::new(&c).expect("valid names"))
}

fn chunk_size() -> impl Strategy<Value = u32> {
    (0..=(MAX_CHUNK_SIZE / MIN_CHUNK_SIZE).trailing_zeros())
        .prop_map(|shift| MIN_CHUNK_SIZE << shift)
}

/// Any valid manifest: entries are generated freely, then sorted, deduplicated, and entries under a
/// file dropped, as a real folder would be.
fn manifest(
    name: impl Strategy<Value = String>,
    max_entries: usize,
) -> impl Strategy<Value = Manifest> {
    (
        chunk_size(),
        prop::collection::vec(
            (rel_path(name), prop::option::of(0u64..200_000)),
            1..max_entries,
        ),
        any::<u8>(),
    )
        .prop_map(|(chunk_size, mut entries, seed)| {
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries.dedup_by(|a, b| a.0 == b.0);
            let mut files = Vec::new();
            let mut dirs = Vec::new();
            let mut last_file: Option<RelPath> = None;
            for (path, size) in entries {
                if last_file.as_ref().is_some_and(|f| f.is_ancestor_of(&path)) {
                    continue;
                }
                match size {
                    Some(size) => {
                        last_file = Some(path.clone());
                        files.push(FileEntry {
                            path,
                            size,
                            hash: [seed; 32],
                        });
                    }
                    None => dirs.push(path),
                }
            }
            let chunks: u64 = files
                .iter()
                .map(|f| f.size.div_ceil(chunk_size.into()))
                .sum();
            let chunks: Vec<Hash> = (0..chunks)
                .map(|i| {
                    let mut h = [seed; 32];
                    h[..8].copy_from_slice(&i.to_le_bytes());
                    h
                })
                .collect();
            crate::transfer::tree::fill_file_hashes(chunk_size, &mut files, &chunks);
            Manifest::new(chunk_size, files, dirs, chunks).expect("generated manifest is valid")
        })
}

fn peer_id() -> impl Strategy<Value = PeerId> {
    prop_oneof![
        any::<[u8; 32]>().prop_map(|digest| {
            let mut bytes = vec![0x12, 32];
            bytes.extend(digest);
            PeerId::from_bytes(&bytes).expect("sha2-256 peer id")
        }),
        Just(PeerId::from_public_key(
            &libp2p::identity::Keypair::ed25519_from_bytes([7; 32])
                .expect("key")
                .public()
        )),
    ]
}

fn multiaddr() -> impl Strategy<Value = Multiaddr> {
    let base = prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| Multiaddr::empty()
            .with(Protocol::Ip4(ip.into()))
            .with(Protocol::Tcp(port))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| Multiaddr::empty()
            .with(Protocol::Ip6(ip.into()))
            .with(Protocol::Udp(port))
            .with(Protocol::QuicV1)),
        ("[a-z]{1,10}\\.local", any::<u16>()).prop_map(|(host, port)| Multiaddr::empty()
            .with(Protocol::Dns4(host.into()))
            .with(Protocol::Tcp(port))),
    ];
    (base, prop::option::of(peer_id())).prop_map(|(addr, peer)| match peer {
        Some(peer) => addr.with(Protocol::P2p(peer)),
        None => addr,
    })
}

fn ticket(max_providers: usize, max_addrs: usize) -> impl Strategy<Value = Ticket> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        prop::collection::vec(
            (peer_id(), prop::collection::vec(multiaddr(), 0..=max_addrs))
                .prop_map(|(peer, addrs)| Provider { peer, addrs }),
            1..=max_providers,
        ),
        prop::option::of(".{0,30}"),
    )
        .prop_map(|(content, key, providers, contact)| {
            let ticket = Ticket::new(ContentId(content), ShareKey::from_bytes(key), providers);
            match contact {
                Some(name) => ticket.offering_contact(&name),
                None => ticket,
            }
        })
}

/// One edit of an encoding.
#[derive(Debug, Clone)]
enum Mutation {
    Xor(Index, u8),
    Set(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    Truncate(Index),
    Repeat(Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(vec![0u8, 1, 0x7f, 0x80, 0xff, b'.', b'/', b'a']);
    prop_oneof![
        (any::<Index>(), 1..=255u8).prop_map(|(i, b)| Mutation::Xor(i, b)),
        (any::<Index>(), interesting.clone()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), interesting).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Remove),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Repeat(a, b)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        let len = bytes.len();
        match m {
            Mutation::Xor(i, b) => bytes[i.index(len)] ^= b,
            Mutation::Set(i, b) => bytes[i.index(len)] = *b,
            Mutation::Insert(i, b) => bytes.insert(i.index(len + 1), *b),
            Mutation::Remove(i) => {
                bytes.remove(i.index(len));
            }
            Mutation::Truncate(i) => bytes.truncate(i.index(len)),
            Mutation::Repeat(a, b) => {
                let (a, b) = (a.index(len), b.index(len));
                let (start, end) = (a.min(b), a.max(b) + 1);
                let copy = bytes[start..end.min(start + 64)].to_vec();
                bytes.splice(end..end, copy);
            }
        }
    }
    bytes
}

/// Inputs for the manifest decoder: random bytes, random bytes behind the right version byte,
/// and valid encodings with a few edits.
fn manifest_input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(|mut b| {
            b.insert(0, super::manifest::VERSION);
            b
        }),
        4 => (manifest(simple_name(), 6), prop::collection::vec(mutation(), 1..4))
            .prop_map(|(m, muts)| mutate(m.encode(), &muts)),
    ]
}

/// Inputs for the ticket decoder: random text, text with the right prefix, valid tickets with a
/// few edits to their text, and tickets whose bytes were edited then re-checksummed (to reach the
/// body parser, peer ids and multiaddrs).
fn ticket_input() -> impl Strategy<Value = String> {
    let base32 = prop::sample::select(
        "abcdefghijklmnopqrstuvwxyz234567ABCXYZ \n1890=é"
            .chars()
            .collect::<Vec<_>>(),
    );
    prop_oneof![
        1 => prop::collection::vec(any::<char>(), 0..80).prop_map(String::from_iter),
        1 => prop::collection::vec(base32.clone(), 0..120)
            .prop_map(|c| format!("meshdrop1{}", String::from_iter(c))),
        2 => (ticket(3, 3), prop::collection::vec((any::<Index>(), base32), 1..4)).prop_map(
            |(t, edits)| {
                let mut chars: Vec<char> = t.to_string().chars().collect();
                for (i, c) in edits {
                    if chars.is_empty() {
                        break;
                    }
                    let at = i.index(chars.len());
                    match c {
                        ' ' => chars.truncate(at),
                        '\n' => {
                            chars.remove(at);
                        }
                        '=' => chars.insert(at, 'a'),
                        _ => chars[at] = c,
                    }
                }
                String::from_iter(chars)
            }
        ),
        2 => (ticket(3, 3), prop::collection::vec(mutation(), 1..4)).prop_map(|(t, muts)| {
            let body = mutate(super::ticket::tests::body_of(&t), &muts);
            super::ticket::tests::from_body(&body)
        }),
    ]
}

/// Wire frames: valid requests and responses with edits, and arbitrary bytes.
/// Peer-exchange entries made of arbitrary bytes (ids and addresses that mostly do not parse).
fn pex_peers(ids: Vec<Vec<u8>>) -> Vec<super::wire::PexPeer> {
    ids.into_iter()
        .map(|peer| super::wire::PexPeer {
            addrs: vec![peer.clone()],
            peer,
        })
        .collect()
}

fn wire_input() -> impl Strategy<Value = Vec<u8>> {
    use super::wire::{Request, Response};
    let valid = prop_oneof![
        (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(tag, proof)| postcard::to_stdvec(
            &Request::Hello { tag, proof }
        )
        .unwrap_or_default()),
        (any::<u64>(), any::<u32>()).prop_map(|(first, count)| postcard::to_stdvec(
            &Request::Chunks { first, count }
        )
        .unwrap_or_default()),
        (
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 0..64),
            prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..3)
        )
            .prop_map(|(complete, have, ids)| {
                postcard::to_stdvec(&Response::Hello {
                    proof: [0; 32],
                    complete,
                    have,
                    peers: pex_peers(ids),
                })
                .unwrap_or_default()
            }),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..3).prop_map(|ids| {
            postcard::to_stdvec(&Response::Peers {
                peers: pex_peers(ids),
            })
            .unwrap_or_default()
        }),
        prop::collection::vec(any::<u64>(), 0..16)
            .prop_map(|chunks| postcard::to_stdvec(&Response::Have { chunks }).unwrap_or_default()),
        (any::<u64>(), any::<u32>()).prop_map(|(index, len)| postcard::to_stdvec(
            &Response::Chunk { index, len }
        )
        .unwrap_or_default()),
        ".{0,40}".prop_map(
            |message| postcard::to_stdvec(&Response::Error { message }).unwrap_or_default()
        ),
    ];
    prop_oneof![
        (valid, prop::collection::vec(mutation(), 0..3)).prop_map(|(bytes, m)| mutate(bytes, &m)),
        prop::collection::vec(any::<u8>(), 0..96),
    ]
}

// ---- properties ----

proptest! {
    #![proptest_config(config(fuzz_cases()))]

    #[test]
    fn manifest_decoder_never_panics(bytes in manifest_input()) {
        if let Ok(m) = Manifest::decode(&bytes) {
            // Whatever is accepted is canonical and safe.
            prop_assert_eq!(m.encode(), bytes);
            for file in m.files() {
                prop_assert!(file.path.under(Path::new("/dest")).starts_with("/dest"));
            }
        }
    }

    #[test]
    fn wire_decoders_never_panic(bytes in wire_input()) {
        use super::wire::{Request, Response};
        use crate::net::framing::decode;
        if let Ok(req) = decode::<Request>(&bytes) {
            prop_assert_eq!(decode::<Request>(&postcard::to_stdvec(&req).unwrap_or_default()).ok(), Some(req));
        }
        if let Ok(Response::Hello { peers, .. }) = decode::<Response>(&bytes) {
            for peer in peers {
                let _ = peer.parse();
            }
        }
    }

    #[test]
    fn ticket_decoder_never_panics(text in ticket_input()) {
        if let Ok(t) = text.parse::<Ticket>() {
            prop_assert!(!t.providers.is_empty());
            prop_assert_eq!(t.to_string().parse::<Ticket>().ok(), Some(t));
        }
    }
}

proptest! {
    #![proptest_config(config(ROUND_TRIP_CASES))]

    #[test]
    fn manifest_round_trip(m in manifest(name(), 16)) {
        let bytes = m.encode();
        let back = Manifest::decode(&bytes).expect("valid manifest decodes");
        prop_assert_eq!(back.content_id(), ContentId::of(&bytes));
        prop_assert_eq!(&back, &m);
        // Chunks tile every file exactly.
        for (k, file) in m.files().iter().enumerate() {
            let mut end = 0;
            for i in m.chunks_of(k) {
                let c = m.chunk(i).expect("chunk in range");
                prop_assert_eq!((c.file, c.offset), (k, end));
                prop_assert!(c.len > 0 && c.len <= m.chunk_size());
                end += u64::from(c.len);
            }
            prop_assert_eq!(end, file.size);
        }
        prop_assert!(m.chunk(m.chunk_count()).is_none());
    }

    #[test]
    fn ticket_round_trip(t in ticket(MAX_PROVIDERS, MAX_ADDRS), upper in any::<bool>(), breaks in prop::collection::vec(any::<Index>(), 0..4)) {
        let mut text = t.to_string();
        if upper {
            text = text.to_uppercase();
        }
        for at in breaks {
            let at = at.index(text.len() + 1);
            text.insert_str(at, "\n  ");
        }
        prop_assert_eq!(text.parse::<Ticket>().expect("valid ticket parses"), t);
    }

    #[test]
    fn join_safe_stays_inside(components in prop::collection::vec(
        prop_oneof![
            3 => name(),
            1 => prop::sample::select(vec!["..", ".", "", "/", "C:", "\\", "a/../..", "nul", "x\0"]).prop_map(str::to_owned),
            1 => prop::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter),
        ],
        0..6,
    )) {
        let dest = Path::new("/dest/here");
        if let Ok(path) = join_safe(dest, &components) {
            prop_assert!(path.starts_with(dest));
            prop_assert_eq!(path.components().count(), dest.components().count() + components.len());
            prop_assert!(path.components().all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::RootDir)));
        }
    }
}
