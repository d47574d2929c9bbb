//! An offer as `run --accept ask` puts it to the user on the terminal (who sends, in which state,
//! the whole list's size, the files), and the answer typed back.

use std::path::Path;

use anyhow::{Result, bail};
use indicatif::HumanBytes;
use meshdrop_core::transfer::offer::{Decision, OfferedFile};
use meshdrop_core::{Event, PeerId};

use crate::text::{clean, who};

/// File names shown before the rest is summed up.
const SHOWN: usize = 50;

/// An offer received, as the `offer_received` event tells it.
pub struct Offer<'a> {
    /// The offer's id.
    pub id: u64,
    /// The sender.
    pub peer: &'a PeerId,
    /// The name the sender claims.
    pub name: &'a str,
    /// The name the user gave the sender, when a contact.
    pub contact: Option<&'a str>,
    /// The code both screens show.
    pub code: &'a str,
    /// Bytes offered.
    pub total: u64,
    /// The files offered.
    pub files: &'a [OfferedFile],
}

impl<'a> Offer<'a> {
    /// The offer an `offer_received` event carries.
    pub fn of(event: &'a Event) -> Option<Self> {
        let Event::OfferReceived {
            offer,
            peer,
            name,
            contact,
            verification_code,
            total,
            files,
        } = event
        else {
            return None;
        };
        Some(Self {
            id: *offer,
            peer,
            name,
            contact: contact.as_deref(),
            code: verification_code,
            total: *total,
            files,
        })
    }

    /// The sender as the terminal shows it: a contact by its given name, a stranger by its claim.
    pub fn sender(&self) -> String {
        who(self.contact, self.name)
    }
}

/// Puts the offer to the user (on stderr): the sender and its state, the code, the whole list's
/// size, the first names, and the answers there are.
pub fn show(offer: &Offer<'_>, dest: &Path) {
    let count = offer.files.len();
    let files = if count == 1 { "file" } else { "files" };
    let size = HumanBytes(offer.total);
    match offer.contact {
        Some(_) => eprintln!(
            "contact {} offers {count} {files}, {size} in all:",
            offer.sender()
        ),
        None => eprintln!(
            "{} offers {count} {files}, {size} in all; verification code {} (compare it with \
             the sender's screen; peer {}):",
            offer.sender(),
            offer.code,
            offer.peer
        ),
    }
    for (i, f) in offer.files.iter().enumerate().take(SHOWN) {
        eprintln!(
            "  {:>3}. {} ({})",
            i + 1,
            clean(&f.path),
            HumanBytes(f.size)
        );
    }
    if count > SHOWN {
        let rest: u64 = offer.files[SHOWN..].iter().map(|f| f.size).sum();
        eprintln!(
            "  … and {} more files ({})",
            count - SHOWN,
            HumanBytes(rest)
        );
    }
    let contact = match offer.contact {
        Some(_) => String::new(),
        None => format!(
            ", [c] all and add {:?} as a contact",
            clean(offer.name).into_owned()
        ),
    };
    eprintln!(
        "Accept into {}? [a]ll{contact}, [n]o, or file numbers (e.g. 1,3-5):",
        dest.display()
    );
}

/// A terminal answer: all, all and add the sender as a contact, none, or some files (0-based).
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    All,
    AllAndContact,
    None,
    Some(Vec<usize>),
}

impl Answer {
    /// The decision to give the node.
    pub fn into_decision(self, dest: &Path) -> Decision {
        let accept = |files, add_contact| Decision::Accept {
            dest: dest.to_path_buf(),
            files,
            add_contact,
        };
        match self {
            Answer::All => accept(None, false),
            Answer::AllAndContact => accept(None, true),
            Answer::None => Decision::Decline,
            Answer::Some(files) => accept(Some(files), false),
        }
    }
}

/// Parses `a`/`all`/`y`, `c` (all, and add the sender as a contact), `n`/`no`/empty, or
/// 1-based numbers and ranges such as `1,3-5`, for a list of `count` files.
pub fn parse_answer(line: &str, count: usize) -> Result<Answer> {
    let line = line.trim().to_lowercase();
    match line.as_str() {
        "a" | "all" | "y" | "yes" => return Ok(Answer::All),
        "c" | "contact" => return Ok(Answer::AllAndContact),
        "" | "n" | "no" | "none" => return Ok(Answer::None),
        _ => {}
    }
    let mut picked = Vec::new();
    for part in line.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (usize, usize) = (a.trim().parse()?, b.trim().parse()?);
        if a == 0 || b < a || b > count {
            bail!("{part:?} is not between 1 and {count}");
        }
        picked.extend(a - 1..b);
    }
    picked.sort_unstable();
    picked.dedup();
    Ok(Answer::Some(picked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_answers_are_understood() {
        assert_eq!(parse_answer("a", 3).unwrap(), Answer::All);
        assert_eq!(parse_answer(" C ", 3).unwrap(), Answer::AllAndContact);
        assert_eq!(parse_answer(" N ", 3).unwrap(), Answer::None);
        assert_eq!(parse_answer("", 3).unwrap(), Answer::None);
        assert_eq!(parse_answer("1,3", 3).unwrap(), Answer::Some(vec![0, 2]));
        assert_eq!(parse_answer("2-3,2", 3).unwrap(), Answer::Some(vec![1, 2]));
        assert!(parse_answer("4", 3).is_err());
        assert!(parse_answer("0", 3).is_err());
        assert!(parse_answer("x", 3).is_err());
        let dest = Path::new("/tmp/in");
        assert_eq!(
            Answer::AllAndContact.into_decision(dest),
            Decision::Accept {
                dest: dest.into(),
                files: None,
                add_contact: true
            }
        );
    }
}
