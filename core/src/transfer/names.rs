//! Names a destination can hold. A share keeps its names as the sender had them; each receiver
//! maps, deterministically, what its own destination cannot hold: characters the platform forbids
//! (Windows, and the FAT/exFAT/FUSE storage of Android and memory cards: `<>:"/\|?*`, control
//! characters, device names such as `CON`, a trailing dot or space), names longer than the file
//! system takes, and names that only differ in case or Unicode form where the file system does not
//! tell them apart (macOS, Windows, Android's shared storage). Every change is reported.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::Manifest;
use super::paths::RelPath;

/// What a destination's file system holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameRules {
    /// Windows' rules: no `<>:"\|?*` nor control characters, no device names, no trailing dot
    /// or space.
    pub windows: bool,
    /// Names that differ only in case are one file.
    pub case_insensitive: bool,
    /// Names that differ only in Unicode normalisation (NFC or NFD `é`) are one file.
    pub normalization_insensitive: bool,
    /// The longest name, in bytes.
    pub name_max: usize,
}

impl NameRules {
    /// Linux's rules on ext4, btrfs, f2fs, tmpfs: any name of up to 255 bytes.
    pub const POSIX: NameRules = NameRules {
        windows: false,
        case_insensitive: false,
        normalization_insensitive: false,
        name_max: 255,
    };

    /// What every platform holds: Windows' rules, case and form insensitive.
    pub const PORTABLE: NameRules = NameRules {
        windows: true,
        case_insensitive: true,
        normalization_insensitive: true,
        name_max: 255,
    };
}

/// A name of the share saved under another name, as reported in a download's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameChange {
    /// The path in the share (`/`-separated).
    pub path: String,
    /// Where it was saved, relative to the destination (`/`-separated).
    pub saved_as: String,
    /// Why.
    pub reason: String,
}

/// Every path of a share as this destination holds it.
pub(crate) struct LocalNames {
    /// Per manifest file, its components on disk.
    pub(crate) files: Vec<Vec<String>>,
    /// Per empty folder of the manifest, its components on disk.
    pub(crate) dirs: Vec<Vec<String>>,
    /// What was saved under another name.
    pub(crate) changes: Vec<NameChange>,
}

/// Maps every path of `manifest` for a destination with `rules`.
pub(crate) fn map_share(manifest: &Manifest, rules: &NameRules) -> LocalNames {
    let mut mapper = Mapper {
        rules,
        taken: HashMap::new(),
        memo: HashMap::new(),
        changes: Vec::new(),
    };
    // One order for files and folders alike, so the mapping depends on the manifest alone.
    let mut all: Vec<(&RelPath, bool, usize)> = (manifest.files().iter().enumerate())
        .map(|(i, f)| (&f.path, true, i))
        .chain(
            manifest
                .dirs()
                .iter()
                .enumerate()
                .map(|(i, d)| (d, false, i)),
        )
        .collect();
    all.sort_by(|a, b| a.0.cmp(b.0));
    let mut files = vec![Vec::new(); manifest.files().len()];
    let mut dirs = vec![Vec::new(); manifest.dirs().len()];
    for (path, is_file, i) in all {
        let local = mapper.map_path(path);
        if is_file {
            files[i] = local;
        } else {
            dirs[i] = local;
        }
    }
    LocalNames {
        files,
        dirs,
        changes: mapper.changes,
    }
}

struct Mapper<'a> {
    rules: &'a NameRules,
    /// Names taken in each folder (on disk), by their folded form: the share's name that took it.
    taken: HashMap<(Vec<String>, String), String>,
    /// What each name of the share became in its folder.
    memo: HashMap<(Vec<String>, String), String>,
    changes: Vec<NameChange>,
}

impl Mapper<'_> {
    fn map_path(&mut self, path: &RelPath) -> Vec<String> {
        let mut local: Vec<String> = Vec::with_capacity(path.depth());
        let mut original: Vec<&str> = Vec::with_capacity(path.depth());
        for component in path.components() {
            original.push(component);
            let name = self.map_component(&local, component, &original);
            local.push(name);
        }
        local
    }

    fn map_component(&mut self, parent: &[String], name: &str, original: &[&str]) -> String {
        let memo_key = (parent.to_vec(), name.to_string());
        if let Some(done) = self.memo.get(&memo_key) {
            return done.clone();
        }
        let (fitted, mut why) = fit(name, self.rules);
        let mut candidate = fitted.clone();
        let mut n = 0;
        loop {
            let key = (parent.to_vec(), fold(&candidate, self.rules));
            match self.taken.get(&key) {
                None => {
                    self.taken.insert(key, name.to_string());
                    break;
                }
                Some(other) => {
                    if n == 0 {
                        why.push(format!("this destination cannot tell it from {other:?}"));
                    }
                    n += 1;
                    candidate = suffixed(&fitted, n, self.rules.name_max);
                }
            }
        }
        if candidate != name {
            let mut saved: Vec<&str> = parent.iter().map(String::as_str).collect();
            saved.push(&candidate);
            self.changes.push(NameChange {
                path: original.join("/"),
                saved_as: saved.join("/"),
                reason: why.join("; "),
            });
        }
        self.memo.insert(memo_key, candidate.clone());
        candidate
    }
}

/// The form two names share when the destination holds them as one file.
fn fold(name: &str, rules: &NameRules) -> String {
    let name = if rules.normalization_insensitive {
        icu_normalizer::ComposingNormalizerBorrowed::new_nfc()
            .normalize(name)
            .into_owned()
    } else {
        name.to_string()
    };
    if rules.case_insensitive {
        name.to_lowercase()
    } else {
        name
    }
}

/// Characters Windows forbids in names, and the look-alike each is saved as.
const WINDOWS_FORBIDDEN: &[(char, char)] = &[
    ('<', '＜'),
    ('>', '＞'),
    (':', '：'),
    ('"', '＂'),
    ('\\', '＼'),
    ('|', '｜'),
    ('?', '？'),
    ('*', '＊'),
];

/// Names Windows reserves for devices, with or without an extension.
const WINDOWS_RESERVED: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "COM0", "COM1", "COM2", "COM3", "COM4",
    "COM5", "COM6", "COM7", "COM8", "COM9", "COM¹", "COM²", "COM³", "LPT0", "LPT1", "LPT2", "LPT3",
    "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9", "LPT¹", "LPT²", "LPT³",
];

/// `name` as the destination holds it, and why it changed (empty: it did not).
fn fit(name: &str, rules: &NameRules) -> (String, Vec<String>) {
    let mut why = Vec::new();
    let mut out = name.to_string();
    if rules.windows {
        let mut mapped = String::with_capacity(out.len());
        for ch in out.chars() {
            match WINDOWS_FORBIDDEN.iter().find(|(c, _)| *c == ch) {
                Some((_, alike)) => mapped.push(*alike),
                // Control characters become their pictures (U+2400…).
                None if (ch as u32) < 0x20 => {
                    mapped.push(char::from_u32(0x2400 + ch as u32).unwrap_or('_'))
                }
                None => mapped.push(ch),
            }
        }
        if mapped != out {
            why.push("holds characters this destination forbids".to_string());
            out = mapped;
        }
        // Windows reads the device name before the first dot (`nul.tar.gz` is `NUL`).
        let (stem, rest) = out.split_at(out.find('.').unwrap_or(out.len()));
        if WINDOWS_RESERVED.contains(&stem.trim_end_matches(' ').to_uppercase().as_str()) {
            out = format!("{stem}_{rest}");
            why.push("is a device name on this platform".to_string());
        }
        if let Some(last) = out.chars().last().filter(|c| *c == '.' || *c == ' ') {
            out.pop();
            out.push(if last == '.' { '．' } else { '␠' });
            why.push("ends with a dot or a space".to_string());
        }
    }
    if out.len() > rules.name_max {
        why.push(format!(
            "is {} bytes long, this file system holds {}",
            out.len(),
            rules.name_max
        ));
        let tag = format!("~{}", &blake3::hash(name.as_bytes()).to_hex()[..8]);
        out = shorten(&out, &tag, rules.name_max);
    }
    (out, why)
}

/// `name` with ` (n)` before its extension (`a (1).bin`), within `name_max` bytes.
pub(crate) fn suffixed(name: &str, n: u32, name_max: usize) -> String {
    shorten(name, &format!(" ({n})"), name_max)
}

/// `name` with `tag` before its extension, its stem cut so that the whole fits `max` bytes.
fn shorten(name: &str, tag: &str, max: usize) -> String {
    let (stem, ext) = split_ext(name);
    let room = max.saturating_sub(tag.len() + ext.len());
    format!("{}{tag}{ext}", cut(stem, room))
}

/// The longest start of `s` of at most `max` bytes, on a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `(stem, extension)`: the extension is the last `.` and what follows, when short and not the
/// whole name (`.bashrc` has none).
fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(at) if at > 0 && name.len() - at <= 16 => name.split_at(at),
        _ => (name, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::manifest::{FileEntry, MIN_CHUNK_SIZE};
    use crate::transfer::tree;

    fn manifest(paths: &[&[&str]]) -> Manifest {
        let mut files: Vec<FileEntry> = paths
            .iter()
            .map(|p| FileEntry {
                path: RelPath::new(p).unwrap(),
                size: 1,
                hash: [0; 32],
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let hashes = vec![[1; 32]; files.len()];
        tree::fill_file_hashes(MIN_CHUNK_SIZE, &mut files, &hashes);
        Manifest::new(MIN_CHUNK_SIZE, files, Vec::new(), hashes).unwrap()
    }

    fn joined(names: &LocalNames) -> Vec<String> {
        names.files.iter().map(|c| c.join("/")).collect()
    }

    #[test]
    fn on_linux_every_name_is_kept() {
        let m = manifest(&[&["a\\b"], &["what?.txt"], &["CON"], &["A.txt"], &["a.txt"]]);
        let names = map_share(&m, &NameRules::POSIX);
        let mut paths: Vec<String> = m.files().iter().map(|f| f.path.to_string()).collect();
        paths.sort();
        let mut got = joined(&names);
        got.sort();
        assert_eq!(got, paths);
        assert!(names.changes.is_empty());
    }

    #[test]
    fn windows_names_are_mapped_deterministically_and_reported() {
        let m = manifest(&[
            &["Trip", "what?.txt"],
            &["Trip", "a\\b"],
            &["Trip", "nul.tar.gz"],
            &["Trip", "dots."],
            &["Trip", "tab\there"],
            &["Trip", "what？.txt"],
        ]);
        let rules = NameRules {
            case_insensitive: false,
            normalization_insensitive: false,
            ..NameRules::PORTABLE
        };
        let names = map_share(&m, &rules);
        let again = map_share(&m, &rules);
        assert_eq!(joined(&names), joined(&again), "deterministic");
        let by_path = |p: &str| {
            let i = m.files().iter().position(|f| f.path.as_str() == p).unwrap();
            names.files[i].join("/")
        };
        assert_eq!(by_path("Trip/a\\b"), "Trip/a＼b");
        assert_eq!(by_path("Trip/nul.tar.gz"), "Trip/nul_.tar.gz");
        assert_eq!(by_path("Trip/dots."), "Trip/dots．");
        assert_eq!(by_path("Trip/tab\there"), "Trip/tab␉here");
        // `what?.txt` sorts first and takes `what？.txt`; the share's own `what？.txt` moves on.
        assert_eq!(by_path("Trip/what?.txt"), "Trip/what？.txt");
        assert_eq!(by_path("Trip/what？.txt"), "Trip/what？ (1).txt");
        assert_eq!(names.changes.len(), 6, "{:?}", names.changes);
        let change = names
            .changes
            .iter()
            .find(|c| c.path == "Trip/a\\b")
            .unwrap();
        assert_eq!(change.saved_as, "Trip/a＼b");
        assert!(change.reason.contains("forbids"), "{}", change.reason);
    }

    #[test]
    fn names_differing_in_case_or_form_get_a_suffix_where_they_would_be_one_file() {
        let nfc = "caf\u{e9}.jpg";
        let nfd = "cafe\u{301}.jpg";
        let m = manifest(&[
            &["Photos", "a.jpg"],
            &["photos", "b.jpg"],
            &["IMG.JPG"],
            &["img.jpg"],
            &[nfc],
            &[nfd],
        ]);
        let names = map_share(&m, &NameRules::PORTABLE);
        let mut got = joined(&names);
        got.sort();
        let mut want = vec![
            "IMG.JPG".to_string(),
            "img (1).jpg".to_string(),
            "Photos/a.jpg".to_string(),
            "photos (1)/b.jpg".to_string(),
        ];
        // Whichever form sorts first keeps the name.
        let (first, second) = if nfc < nfd { (nfc, nfd) } else { (nfd, nfc) };
        want.push(first.to_string());
        want.push(suffixed(second, 1, 255));
        want.sort();
        assert_eq!(got, want);
        let case = names.changes.iter().find(|c| c.path == "img.jpg").unwrap();
        assert!(case.reason.contains("cannot tell it from \"IMG.JPG\""));
        // The folder changed once for all its files.
        assert_eq!(
            names.changes.iter().filter(|c| c.path == "photos").count(),
            1
        );
    }

    #[test]
    fn names_too_long_are_shortened_keeping_their_extension() {
        let long = format!("{}.jpg", "é".repeat(120));
        let m = manifest(&[&[long.as_str()], &["short.jpg"]]);
        let rules = NameRules {
            name_max: 143,
            ..NameRules::POSIX
        };
        let names = map_share(&m, &rules);
        let i = m
            .files()
            .iter()
            .position(|f| f.path.as_str() == long)
            .unwrap();
        let name = &names.files[i][0];
        assert!(name.len() <= 143, "{} bytes", name.len());
        assert!(name.ends_with(".jpg") && name.contains('~'), "{name}");
        assert_eq!(map_share(&m, &rules).files[i][0], *name, "deterministic");
        assert_eq!(names.changes.len(), 1);
        assert!(names.changes[0].reason.contains("bytes long"));
    }

    #[test]
    fn suffixes_go_before_the_extension_and_fit() {
        assert_eq!(suffixed("a.bin", 1, 255), "a (1).bin");
        assert_eq!(suffixed(".bashrc", 2, 255), ".bashrc (2)");
        assert_eq!(suffixed("archive.tar.gz", 3, 255), "archive.tar (3).gz");
        let long = "x".repeat(255);
        assert_eq!(suffixed(&long, 1, 255).len(), 255);
    }
}
