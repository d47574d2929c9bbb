//! Tickets: what a downloader needs to fetch a share (its content id, the key that opens it, who
//! provides it, and optionally the sender offered as a contact), as a string that survives
//! copy-paste, chat apps and QR codes. The ticket is the only key to a share: pass it only to
//! those who should have the files.
//!
//! ## String form (version 2)
//! `meshdrop2` followed by RFC 4648 base32 (lowercase, no padding) of
//! `postcard(bytes(body)) || checksum`, where `body = postcard({ content: [u8; 32], key: [u8; 32],
//! providers: [{ peer: bytes, addrs: [bytes] }], contact: option<string> })` (peer ids and
//! multiaddrs in their binary forms; `contact` is the name under which the first provider offers
//! itself as a contact), the body
//! is length-prefixed so a cut ticket is reported as truncated, and `checksum` is the first 4 bytes
//! of the BLAKE3 hash of `body`. The decoder ignores whitespace and line breaks anywhere and
//! accepts upper case, so the upper-case form (which QR codes store more compactly) works too.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use data_encoding::{BASE32_NOPAD, Encoding, Specification};
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use super::capability::ShareKey;
use super::content_id::ContentId;

/// Every ticket string starts with this, then the version digit.
pub const PREFIX: &str = "meshdrop";

/// The ticket version this code writes and reads. Version 1 tickets carried no key.
pub const VERSION: u32 = 2;

/// The longest contact name a ticket may carry, in bytes.
pub const MAX_CONTACT_NAME: usize = 100;

/// The most providers a ticket may carry.
pub const MAX_PROVIDERS: usize = 16;

/// The most addresses a provider may carry.
pub const MAX_ADDRS: usize = 16;

/// The longest ticket accepted, in characters other than whitespace.
pub const MAX_TICKET_CHARS: usize = 64 * 1024;

/// Bytes of checksum after the body.
const CHECKSUM_LEN: usize = 4;

/// One peer that serves the share, and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// The peer's id.
    pub peer: PeerId,
    /// Addresses to dial it at (may be empty: found by discovery then).
    pub addrs: Vec<Multiaddr>,
}

/// A share's content id, its key and its providers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The content id of the manifest.
    pub content: ContentId,
    /// The key that opens the share: providers serve only peers that prove they hold it.
    pub key: ShareKey,
    /// Who serves it (1 ..= [`MAX_PROVIDERS`], each with at most [`MAX_ADDRS`] addresses).
    pub providers: Vec<Provider>,
    /// The name under which the first provider (the sender) offers itself as a contact.
    pub contact: Option<String>,
}

/// Why a ticket could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// The text does not start with `meshdrop`.
    #[error("not a meshdrop ticket (a ticket starts with \"{PREFIX}{VERSION}\")")]
    NotATicket,
    /// The ticket has a version this code does not read.
    #[error(
        "unsupported ticket version {version}: this meshdrop reads version {VERSION}{}",
        if *.version > VERSION {
            "; the ticket was made by a newer meshdrop, update to read it"
        } else {
            "; the ticket was made by an older meshdrop and opens nothing now: ask the sender for a new one"
        }
    )]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// A character that base32 does not use.
    #[error("invalid character {ch:?} at position {position} of the ticket")]
    InvalidChar {
        /// The character.
        ch: char,
        /// Its position in the text given, counted in characters from 1 (whitespace included).
        position: usize,
    },
    /// The ticket is longer than [`MAX_TICKET_CHARS`].
    #[error("the ticket is too long ({len} characters, at most {MAX_TICKET_CHARS})")]
    TooLong {
        /// Its length without whitespace.
        len: usize,
    },
    /// The ticket ends too early.
    #[error("the ticket is truncated: part of it is missing, copy the whole ticket")]
    Truncated,
    /// The checksum does not match.
    #[error("ticket checksum mismatch: the ticket is damaged or mistyped")]
    ChecksumMismatch,
    /// The checksum matches but the content is not a valid ticket.
    #[error("malformed ticket: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// The ticket names no provider.
    #[error("the ticket names no provider to download from")]
    NoProviders,
    /// Too many providers or addresses.
    #[error("the ticket has too many {what} ({count}, at most {max})")]
    TooMany {
        /// "providers" or "addresses".
        what: &'static str,
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The ticket holds more than a QR code can (too many providers or addresses).
    #[error("the ticket is too long for a QR code: pass it as text or as a file")]
    TooLongForQr,
    /// A ticket file could not be read or written.
    #[error("ticket file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Lowercase RFC 4648 base32 without padding. Trailing bits are not checked, so a ticket cut
/// short decodes to fewer bytes and is reported as truncated rather than as garbage.
fn base32() -> &'static Encoding {
    static ENCODING: OnceLock<Encoding> = OnceLock::new();
    ENCODING.get_or_init(|| {
        let mut spec = Specification::new();
        spec.symbols.push_str("abcdefghijklmnopqrstuvwxyz234567");
        spec.check_trailing_bits = false;
        // The specification is fixed and valid, so this cannot fail; upper case would still work.
        spec.encoding().unwrap_or_else(|_| BASE32_NOPAD.clone())
    })
}

#[derive(Serialize, Deserialize)]
struct WireTicket<'a> {
    content: [u8; 32],
    key: [u8; 32],
    #[serde(borrow)]
    providers: Vec<WireProvider<'a>>,
    #[serde(borrow)]
    contact: Option<&'a str>,
}

#[derive(Serialize, Deserialize)]
struct WireProvider<'a> {
    #[serde(with = "serde_bytes_borrowed", borrow)]
    peer: &'a [u8],
    #[serde(borrow)]
    addrs: Vec<Bytes<'a>>,
}

#[derive(Serialize, Deserialize)]
struct Bytes<'a>(#[serde(with = "serde_bytes_borrowed", borrow)] &'a [u8]);

/// Byte strings as postcard byte arrays (a length, then the bytes), borrowed when decoding.
mod serde_bytes_borrowed {
    pub fn serialize<S: serde::Serializer>(bytes: &&[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'de [u8], D::Error> {
        <&'de [u8] as serde::Deserialize>::deserialize(d)
    }
}

impl Ticket {
    /// A ticket for `content`, opened by `key`, served by `providers`.
    pub fn new(content: ContentId, key: ShareKey, providers: Vec<Provider>) -> Self {
        Self {
            content,
            key,
            providers,
            contact: None,
        }
    }

    /// The same ticket, with its first provider offered as a contact named `name`.
    pub fn offering_contact(mut self, name: &str) -> Self {
        let mut end = name.len().min(MAX_CONTACT_NAME);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        self.contact = Some(name[..end].to_string());
        self
    }

    fn body(&self) -> Vec<u8> {
        let peers: Vec<Vec<u8>> = self.providers.iter().map(|p| p.peer.to_bytes()).collect();
        let wire = WireTicket {
            content: self.content.0,
            key: self.key.to_bytes(),
            contact: self.contact.as_deref(),
            providers: self
                .providers
                .iter()
                .zip(&peers)
                .map(|(p, peer)| WireProvider {
                    peer,
                    addrs: p.addrs.iter().map(|a| Bytes(a.as_ref())).collect(),
                })
                .collect(),
        };
        // Serializing these types into a growable vector has no failure case.
        postcard::to_allocvec(&wire).expect("a ticket always serializes")
    }

    /// Writes the ticket to `path`, as its string and a newline.
    pub fn write_file(&self, path: &Path) -> Result<(), TicketError> {
        std::fs::write(path, format!("{self}\n")).map_err(|source| TicketError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a ticket written by [`Ticket::write_file`] (or pasted into a file by hand).
    pub fn read_file(path: &Path) -> Result<Self, TicketError> {
        use std::io::Read;
        let io = |source| TicketError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // Whitespace aside a ticket is short: never read more than a generous bound.
        let mut text = String::new();
        let limit = (MAX_TICKET_CHARS * 4) as u64;
        file.take(limit + 1).read_to_string(&mut text).map_err(io)?;
        if text.len() as u64 > limit {
            return Err(TicketError::TooLong { len: text.len() });
        }
        text.parse()
    }
}

/// A ticket drawn as a QR code: `size` × `size` modules, row after row, `true` for dark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QrMatrix {
    /// Modules per side.
    pub size: usize,
    /// Every module, row-major.
    pub dark: Vec<bool>,
}

impl Ticket {
    /// The ticket as a QR code, for an app or a terminal to draw. Upper case lets the code use
    /// its compact alphanumeric mode; tickets read either case.
    pub fn qr(&self) -> Result<QrMatrix, TicketError> {
        let code = qrcode::QrCode::new(self.to_string().to_ascii_uppercase())
            .map_err(|_| TicketError::TooLongForQr)?;
        Ok(QrMatrix {
            size: code.width(),
            dark: code
                .to_colors()
                .into_iter()
                .map(|c| c == qrcode::Color::Dark)
                .collect(),
        })
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = self.body();
        let mut data = postcard::to_allocvec(&Bytes(&body)).map_err(|_| fmt::Error)?;
        data.extend_from_slice(&blake3::hash(&body).as_bytes()[..CHECKSUM_LEN]);
        write!(f, "{PREFIX}{VERSION}{}", base32().encode(&data))
    }
}

impl FromStr for Ticket {
    type Err = TicketError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // Characters other than whitespace, lowercased, with their 1-based position in `text`.
        let chars: Vec<(usize, char)> = text
            .chars()
            .enumerate()
            .filter(|(_, c)| !c.is_whitespace())
            .map(|(i, c)| (i + 1, c.to_ascii_lowercase()))
            .take(MAX_TICKET_CHARS + 1)
            .collect();
        if chars.len() > MAX_TICKET_CHARS {
            let len = text.chars().filter(|c| !c.is_whitespace()).count();
            return Err(TicketError::TooLong { len });
        }
        let prefix_len = PREFIX.chars().count();
        let starts_with_prefix = chars.len() >= prefix_len
            && chars.iter().zip(PREFIX.chars()).all(|((_, c), p)| *c == p);
        if !starts_with_prefix {
            return Err(TicketError::NotATicket);
        }
        let rest = &chars[prefix_len..];
        let Some(&(_, version)) = rest.first() else {
            return Err(TicketError::Truncated);
        };
        let Some(version) = version.to_digit(10) else {
            return Err(TicketError::NotATicket);
        };
        if version != VERSION {
            return Err(TicketError::UnsupportedVersion { version });
        }
        let mut encoded = Vec::with_capacity(rest.len());
        for &(position, ch) in &rest[1..] {
            if !matches!(ch, 'a'..='z' | '2'..='7') {
                return Err(TicketError::InvalidChar { ch, position });
            }
            encoded.push(ch as u8);
        }
        let data = base32().decode(&encoded).map_err(|e| match e.kind {
            data_encoding::DecodeKind::Length => TicketError::Truncated,
            _ => TicketError::ChecksumMismatch,
        })?;
        decode_data(&data)
    }
}

/// Decodes the bytes behind the base32: the length-prefixed body, the checksum, then the body.
fn decode_data(data: &[u8]) -> Result<Ticket, TicketError> {
    let (body, rest) = match postcard::take_from_bytes::<Bytes<'_>>(data) {
        Ok((Bytes(body), rest)) => (body, rest),
        Err(postcard::Error::DeserializeUnexpectedEnd) => return Err(TicketError::Truncated),
        Err(_) => return Err(TicketError::ChecksumMismatch),
    };
    if rest.len() < CHECKSUM_LEN {
        return Err(TicketError::Truncated);
    }
    if rest.len() > CHECKSUM_LEN {
        return Err(TicketError::Malformed {
            reason: format!(
                "{} unexpected bytes after the end",
                rest.len() - CHECKSUM_LEN
            ),
        });
    }
    if rest != &blake3::hash(body).as_bytes()[..CHECKSUM_LEN] {
        return Err(TicketError::ChecksumMismatch);
    }
    let malformed = |reason: String| TicketError::Malformed { reason };
    let (wire, extra) = postcard::take_from_bytes::<WireTicket<'_>>(body)
        .map_err(|e| malformed(format!("the body does not decode: {e}")))?;
    if !extra.is_empty() {
        return Err(malformed(format!(
            "{} unexpected bytes in the body",
            extra.len()
        )));
    }
    if wire.providers.is_empty() {
        return Err(TicketError::NoProviders);
    }
    if wire.providers.len() > MAX_PROVIDERS {
        return Err(TicketError::TooMany {
            what: "providers",
            count: wire.providers.len(),
            max: MAX_PROVIDERS,
        });
    }
    let mut providers = Vec::with_capacity(wire.providers.len());
    for (i, p) in wire.providers.into_iter().enumerate() {
        if p.addrs.len() > MAX_ADDRS {
            return Err(TicketError::TooMany {
                what: "addresses",
                count: p.addrs.len(),
                max: MAX_ADDRS,
            });
        }
        let peer = PeerId::from_bytes(p.peer)
            .map_err(|e| malformed(format!("provider {}: invalid peer id: {e}", i + 1)))?;
        let addrs = p
            .addrs
            .into_iter()
            .map(|Bytes(a)| {
                Multiaddr::try_from(a.to_vec())
                    .map_err(|e| malformed(format!("provider {}: invalid address: {e}", i + 1)))
            })
            .collect::<Result<_, _>>()?;
        providers.push(Provider { peer, addrs });
    }
    if wire
        .contact
        .is_some_and(|name| name.len() > MAX_CONTACT_NAME)
    {
        return Err(malformed(format!(
            "the contact name is longer than {MAX_CONTACT_NAME} bytes"
        )));
    }
    Ok(Ticket {
        content: ContentId(wire.content),
        key: ShareKey::from_bytes(wire.key),
        providers,
        contact: wire.contact.map(str::to_string),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use libp2p::multiaddr::Protocol;

    pub(crate) fn peer(seed: u8) -> PeerId {
        // A sha2-256 multihash: code 0x12, 32 bytes.
        let mut bytes = vec![0x12, 32];
        bytes.extend([seed; 32]);
        PeerId::from_bytes(&bytes).expect("valid peer id")
    }

    pub(crate) fn sample() -> Ticket {
        let lan: Multiaddr = "/ip4/192.168.1.20/udp/4242/quic-v1".parse().expect("addr");
        let tcp = Multiaddr::empty()
            .with(Protocol::Ip6("fe80::1".parse().expect("ip6")))
            .with(Protocol::Tcp(4242));
        Ticket::new(
            ContentId::of(b"manifest"),
            ShareKey::from_bytes([9; 32]),
            vec![
                Provider {
                    peer: peer(1),
                    addrs: vec![lan, tcp],
                },
                Provider {
                    peer: peer(2),
                    addrs: vec![],
                },
            ],
        )
    }

    fn err(text: &str) -> TicketError {
        match text.parse::<Ticket>() {
            Ok(t) => panic!("accepted {text:?} as {t:?}"),
            Err(e) => e,
        }
    }

    /// A ticket string made of arbitrary data bytes, with a valid prefix and base32.
    fn from_data(data: &[u8]) -> String {
        format!("{PREFIX}{VERSION}{}", base32().encode(data))
    }

    /// The body of a ticket, before framing.
    pub(crate) fn body_of(ticket: &Ticket) -> Vec<u8> {
        ticket.body()
    }

    /// A well-framed ticket whose body is `body`.
    pub(crate) fn from_body(body: &[u8]) -> String {
        let mut data = postcard::to_allocvec(&Bytes(body)).expect("ser");
        data.extend_from_slice(&blake3::hash(body).as_bytes()[..CHECKSUM_LEN]);
        from_data(&data)
    }

    #[test]
    fn round_trip() {
        let ticket = sample();
        let text = ticket.to_string();
        assert!(text.starts_with("meshdrop2"), "{text}");
        assert!(
            text[9..]
                .chars()
                .all(|c| matches!(c, 'a'..='z' | '2'..='7')),
            "{text}"
        );
        assert_eq!(text.parse::<Ticket>().expect("parses"), ticket);
        // Copy-paste damage that must not matter: case, spaces, line breaks, indentation.
        assert_eq!(
            text.to_uppercase().parse::<Ticket>().expect("upper"),
            ticket
        );
        let wrapped: String = text
            .as_bytes()
            .chunks(20)
            .map(|c| format!("  {}\r\n", std::str::from_utf8(c).expect("ascii")))
            .collect();
        assert_eq!(wrapped.parse::<Ticket>().expect("wrapped"), ticket);
        assert_eq!(
            format!("\t{text} \n").parse::<Ticket>().expect("trim"),
            ticket
        );
    }

    #[test]
    fn the_key_and_a_contact_offer_travel_in_the_ticket() {
        let ticket = sample().offering_contact("Ana's phone");
        let back: Ticket = ticket.to_string().parse().expect("parses");
        assert_eq!(back.contact.as_deref(), Some("Ana's phone"));
        assert_eq!(back.key, ShareKey::from_bytes([9; 32]));
        let long = "é".repeat(MAX_CONTACT_NAME);
        let cut = sample().offering_contact(&long);
        assert!(
            cut.contact
                .as_ref()
                .is_some_and(|n| n.len() <= MAX_CONTACT_NAME)
        );
        assert_eq!(cut.to_string().parse::<Ticket>().expect("parses"), cut);
    }

    #[test]
    fn a_ticket_draws_as_a_square_qr_code() {
        let qr = sample().qr().expect("fits");
        assert_eq!(qr.dark.len(), qr.size * qr.size);
        assert!(qr.size >= 21, "a real code");
        // The finder pattern's corner module is dark.
        assert!(qr.dark[0]);
    }

    #[test]
    fn file_round_trip() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("share.ticket");
        let ticket = sample();
        ticket.write_file(&path).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, format!("{ticket}\n"));
        assert_eq!(Ticket::read_file(&path).expect("read"), ticket);
        let err = Ticket::read_file(&tmp.path().join("missing")).expect_err("missing");
        assert!(err.to_string().starts_with("ticket file "), "{err}");
        std::fs::write(&path, "x".repeat(MAX_TICKET_CHARS * 5)).expect("write");
        assert!(matches!(
            Ticket::read_file(&path),
            Err(TicketError::TooLong { .. })
        ));
    }

    #[test]
    fn error_messages() {
        let good = sample().to_string();

        let e = err("bittorrent:abc");
        assert!(matches!(e, TicketError::NotATicket));
        assert_eq!(
            e.to_string(),
            "not a meshdrop ticket (a ticket starts with \"meshdrop2\")"
        );
        assert!(matches!(err(""), TicketError::NotATicket));
        assert!(matches!(err("meshdropx"), TicketError::NotATicket));
        assert!(matches!(err("meshdrop"), TicketError::Truncated));

        let e = err(&good.replacen("meshdrop2", "meshdrop3", 1));
        assert_eq!(
            e.to_string(),
            "unsupported ticket version 3: this meshdrop reads version 2; the ticket was made by a newer meshdrop, update to read it"
        );
        let e = err(&good.replacen("meshdrop2", "meshdrop1", 1));
        assert_eq!(
            e.to_string(),
            "unsupported ticket version 1: this meshdrop reads version 2; the ticket was made by an older meshdrop and opens nothing now: ask the sender for a new one"
        );

        let mut bad = good.clone();
        bad.replace_range(12..13, "8");
        let e = err(&bad);
        assert!(matches!(
            e,
            TicketError::InvalidChar {
                ch: '8',
                position: 13
            }
        ));
        assert_eq!(
            e.to_string(),
            "invalid character '8' at position 13 of the ticket"
        );
        // Positions count in the text as given, whitespace included.
        let e = err(&format!("  {}é{}", &good[..15], &good[15..]));
        assert!(
            matches!(
                e,
                TicketError::InvalidChar {
                    ch: 'é',
                    position: 18
                }
            ),
            "{e:?}"
        );

        // Any single changed character is caught.
        for at in 9..good.len() {
            let mut chars: Vec<char> = good.chars().collect();
            // Flip the top bit of the character's five: the last character may carry unused
            // low bits, never an unused top bit.
            let high = matches!(chars[at], 'q'..='z' | '2'..='7');
            chars[at] = if high { 'a' } else { 'q' };
            let text: String = chars.into_iter().collect();
            let e = err(&text);
            assert!(
                matches!(
                    e,
                    TicketError::ChecksumMismatch
                        | TicketError::Truncated
                        | TicketError::Malformed { .. }
                ),
                "at {at}: {e:?}"
            );
        }
        let mut chars: Vec<char> = good.chars().collect();
        chars[30] = if chars[30] == 'a' { 'b' } else { 'a' };
        let e = err(&chars.into_iter().collect::<String>());
        assert!(matches!(e, TicketError::ChecksumMismatch), "{e:?}");
        assert_eq!(
            e.to_string(),
            "ticket checksum mismatch: the ticket is damaged or mistyped"
        );

        // Cut anywhere: truncated.
        for cut in 10..good.len() {
            let e = err(&good[..cut]);
            assert!(matches!(e, TicketError::Truncated), "cut at {cut}: {e:?}");
        }
        assert_eq!(
            TicketError::Truncated.to_string(),
            "the ticket is truncated: part of it is missing, copy the whole ticket"
        );

        let long = format!("meshdrop2{}", "a".repeat(MAX_TICKET_CHARS));
        assert!(matches!(err(&long), TicketError::TooLong { .. }));
    }

    #[test]
    fn body_errors() {
        let content = [9u8; 32];
        let no_providers = postcard::to_allocvec(&WireTicket {
            content,
            key: [1; 32],
            providers: vec![],
            contact: None,
        })
        .expect("ser");
        let e = err(&from_body(&no_providers));
        assert_eq!(
            e.to_string(),
            "the ticket names no provider to download from"
        );

        let peer_bytes = peer(1).to_bytes();
        let many = postcard::to_allocvec(&WireTicket {
            content,
            key: [1; 32],
            providers: (0..MAX_PROVIDERS + 1)
                .map(|_| WireProvider {
                    peer: &peer_bytes,
                    addrs: vec![],
                })
                .collect(),
            contact: None,
        })
        .expect("ser");
        let e = err(&from_body(&many));
        assert_eq!(
            e.to_string(),
            "the ticket has too many providers (17, at most 16)"
        );

        let addr = Multiaddr::from(Protocol::Tcp(1)).to_vec();
        let many_addrs = postcard::to_allocvec(&WireTicket {
            content,
            key: [1; 32],
            providers: vec![WireProvider {
                peer: &peer_bytes,
                addrs: (0..MAX_ADDRS + 1).map(|_| Bytes(&addr)).collect(),
            }],
            contact: None,
        })
        .expect("ser");
        assert!(matches!(
            err(&from_body(&many_addrs)),
            TicketError::TooMany {
                what: "addresses",
                ..
            }
        ));

        let bad_peer = postcard::to_allocvec(&WireTicket {
            content,
            key: [1; 32],
            providers: vec![WireProvider {
                peer: b"not a peer id",
                addrs: vec![],
            }],
            contact: None,
        })
        .expect("ser");
        let e = err(&from_body(&bad_peer));
        assert!(
            e.to_string()
                .starts_with("malformed ticket: provider 1: invalid peer id"),
            "{e}"
        );

        let bad_addr = postcard::to_allocvec(&WireTicket {
            content,
            key: [1; 32],
            providers: vec![WireProvider {
                peer: &peer_bytes,
                addrs: vec![Bytes(&[0xff, 0xff, 0xff])],
            }],
            contact: None,
        })
        .expect("ser");
        let e = err(&from_body(&bad_addr));
        assert!(
            e.to_string()
                .starts_with("malformed ticket: provider 1: invalid address"),
            "{e}"
        );

        let e = err(&from_body(&[1, 2, 3]));
        assert!(
            e.to_string()
                .starts_with("malformed ticket: the body does not decode"),
            "{e}"
        );
        let mut trailing = no_providers.clone();
        trailing.push(0);
        assert!(matches!(
            err(&from_body(&trailing)),
            TicketError::Malformed { .. }
        ));

        let mut data = postcard::to_allocvec(&Bytes(&no_providers)).expect("ser");
        data.extend_from_slice(&blake3::hash(&no_providers).as_bytes()[..CHECKSUM_LEN]);
        data.push(7);
        assert!(matches!(
            err(&from_data(&data)),
            TicketError::Malformed { .. }
        ));
        assert!(matches!(err(&from_data(&[])), TicketError::Truncated));
    }
}
