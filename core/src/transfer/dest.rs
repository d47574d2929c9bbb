//! A download's destination folder, opened once; every folder and file under it is reached one
//! component at a time from there (`openat` with `O_NOFOLLOW`), so nothing a download writes
//! follows a link it did not create, and nothing lands outside the destination: a folder that is
//! a link is refused, a file that is a link (or shares its bytes with another file through a hard
//! link) is never written through. The destination itself is the user's choice and is followed.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::names::NameRules;

/// Why a path under the destination cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DestError {
    /// A link where a download would write.
    #[error(
        "{path} is a link: meshdrop never writes through links; remove it or choose another destination"
    )]
    Link {
        /// The link.
        path: PathBuf,
    },
    /// A file where the share has a folder.
    #[error(
        "{path} is a file where the share has a folder: move it away or choose another destination"
    )]
    NotAFolder {
        /// The file.
        path: PathBuf,
    },
    /// The file system said no.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// What is at a name under the destination (links are not followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Nothing.
    Absent,
    /// A regular file of this many bytes with this many names (hard links).
    File {
        /// Its size.
        size: u64,
        /// Its hard links.
        links: u64,
    },
    /// A folder.
    Folder,
    /// A symbolic link.
    Link,
    /// A socket, pipe or device.
    Other,
}

/// The destination folder of a download.
pub struct Dest {
    path: PathBuf,
    root: File,
    /// The folder opened last, for files that follow each other in one folder.
    last: Mutex<Option<(Vec<String>, Arc<File>)>>,
}

/// Flags of every open here: no link followed, no descriptor leaked into children.
fn base() -> OFlag {
    OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

impl Dest {
    /// Opens (creating it when missing) the destination folder the user chose.
    pub fn open(path: &Path) -> Result<Dest, DestError> {
        let io = |source| DestError::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(path).map_err(io)?;
        let path = path.canonicalize().map_err(io)?;
        let root = File::open(&path).map_err(io)?;
        Ok(Dest {
            path,
            root,
            last: Mutex::new(None),
        })
    }

    /// The destination's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `rel` under the destination, for messages and the library.
    pub fn join(&self, rel: &[String]) -> PathBuf {
        let mut p = self.path.clone();
        p.extend(rel);
        p
    }

    fn io_err(&self, rel: &[String]) -> impl FnOnce(Errno) -> DestError + '_ {
        let path = self.join(rel);
        move |e| DestError::Io {
            path,
            source: io::Error::from(e),
        }
    }

    /// Opens folder `rel`, creating the missing ones when `create`; `None` when absent and not
    /// created. A link or a file on the way is refused.
    fn folder(&self, rel: &[String], create: bool) -> Result<Option<Arc<File>>, DestError> {
        if rel.is_empty() {
            return Ok(Some(Arc::new(self.root.try_clone().map_err(|source| {
                DestError::Io {
                    path: self.path.clone(),
                    source,
                }
            })?)));
        }
        if let Some((at, dir)) = &*self.last.lock().unwrap_or_else(|p| p.into_inner())
            && at.as_slice() == rel
        {
            return Ok(Some(dir.clone()));
        }
        let mut dir: Option<File> = None;
        for (i, name) in rel.iter().enumerate() {
            let parent = dir.as_ref().unwrap_or(&self.root);
            let flags = base() | OFlag::O_RDONLY | OFlag::O_DIRECTORY;
            let opened = match openat(parent.as_fd(), name.as_str(), flags, Mode::empty()) {
                Err(Errno::ENOENT) if create => {
                    match mkdirat(
                        parent.as_fd(),
                        name.as_str(),
                        Mode::from_bits_truncate(0o777),
                    ) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(self.io_err(&rel[..=i])(e)),
                    }
                    openat(parent.as_fd(), name.as_str(), flags, Mode::empty())
                }
                other => other,
            };
            match opened {
                Ok(fd) => dir = Some(File::from(fd)),
                Err(Errno::ENOENT) => return Ok(None),
                Err(Errno::ELOOP | Errno::ENOTDIR) => {
                    return Err(match self.entry_in(parent, name) {
                        Entry::Link => DestError::Link {
                            path: self.join(&rel[..=i]),
                        },
                        _ => DestError::NotAFolder {
                            path: self.join(&rel[..=i]),
                        },
                    });
                }
                Err(e) => return Err(self.io_err(&rel[..=i])(e)),
            }
        }
        let dir = Arc::new(dir.ok_or_else(|| self.io_err(rel)(Errno::ENOENT))?);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((rel.to_vec(), dir.clone()));
        Ok(Some(dir))
    }

    /// Creates folder `rel` and those above it.
    pub fn make_folders(&self, rel: &[String]) -> Result<(), DestError> {
        self.folder(rel, true).map(drop)
    }

    fn entry_in(&self, dir: &File, name: &str) -> Entry {
        match fstatat(dir.as_fd(), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => kind(&st),
            Err(_) => Entry::Absent,
        }
    }

    /// What is at `rel` (a link is reported as one, never followed).
    pub fn entry(&self, rel: &[String]) -> Result<Entry, DestError> {
        let Some((name, parent)) = rel.split_last() else {
            return Ok(Entry::Folder);
        };
        let Some(dir) = self.folder(parent, false)? else {
            return Ok(Entry::Absent);
        };
        match fstatat(
            dir.as_fd(),
            name.as_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => Ok(kind(&st)),
            Err(Errno::ENOENT) => Ok(Entry::Absent),
            Err(e) => Err(self.io_err(rel)(e)),
        }
    }

    /// Opens file `rel` with `flags` (plus no-follow), its folder created first when `create`.
    fn file(&self, rel: &[String], flags: OFlag, create: bool) -> Result<File, DestError> {
        let (name, parent) = rel
            .split_last()
            .ok_or_else(|| self.io_err(rel)(Errno::EISDIR))?;
        let dir = self
            .folder(parent, create)?
            .ok_or_else(|| self.io_err(rel)(Errno::ENOENT))?;
        let mode = Mode::from_bits_truncate(0o666);
        match openat(dir.as_fd(), name.as_str(), base() | flags, mode) {
            Ok(fd) => Ok(File::from(fd)),
            Err(Errno::ELOOP) => Err(DestError::Link {
                path: self.join(rel),
            }),
            Err(e) => Err(self.io_err(rel)(e)),
        }
    }

    /// Opens file `rel` for reading.
    pub fn read(&self, rel: &[String]) -> Result<File, DestError> {
        self.file(rel, OFlag::O_RDONLY, false)
    }

    /// Creates file `rel`, which must not exist yet (`EEXIST` otherwise).
    pub fn create_new(&self, rel: &[String]) -> Result<File, DestError> {
        self.file(rel, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL, true)
    }

    /// Opens the existing file `rel` for writing, refusing anything but a regular file with no
    /// other name (a hard link would write into another file).
    pub fn write_existing(&self, rel: &[String]) -> Result<File, DestError> {
        let file = self.file(rel, OFlag::O_WRONLY, false)?;
        let meta = file.metadata().map_err(|source| DestError::Io {
            path: self.join(rel),
            source,
        })?;
        if !meta.is_file() || meta.nlink() != 1 {
            return Err(DestError::Link {
                path: self.join(rel),
            });
        }
        Ok(file)
    }

    /// Removes the file (or link: never what it points to) at `rel`; absent is fine.
    pub fn remove(&self, rel: &[String]) -> Result<(), DestError> {
        let Some((name, parent)) = rel.split_last() else {
            return Ok(());
        };
        let Some(dir) = self.folder(parent, false)? else {
            return Ok(());
        };
        match unlinkat(dir.as_fd(), name.as_str(), UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(self.io_err(rel)(e)),
        }
    }

    /// Renames `from` to `to` (in one folder or two) unless `to` exists: then `EEXIST`, and
    /// nothing changed.
    pub fn rename_new(&self, from: &[String], to: &[String]) -> Result<(), DestError> {
        let (Some((old, old_parent)), Some((new, new_parent))) =
            (from.split_last(), to.split_last())
        else {
            return Err(self.io_err(to)(Errno::EINVAL));
        };
        let old_dir = self
            .folder(old_parent, false)?
            .ok_or_else(|| self.io_err(from)(Errno::ENOENT))?;
        let new_dir = self
            .folder(new_parent, true)?
            .ok_or_else(|| self.io_err(to)(Errno::ENOENT))?;
        rename_no_replace(&old_dir, old, &new_dir, new).map_err(self.io_err(to))
    }

    /// Flushes folder `rel` (the names renamed in it).
    pub fn sync_folder(&self, rel: &[String]) {
        if let Ok(Some(dir)) = self.folder(rel, false) {
            let _ = dir.sync_all();
        }
    }

    /// A descriptor on the destination's file system (for `syncfs`).
    pub fn root(&self) -> &File {
        &self.root
    }

    /// What names this destination holds: probed on it (a file name with `?` and one in two
    /// cases) where the platform does not say.
    pub fn name_rules(&self) -> NameRules {
        let name_max =
            nix::unistd::fpathconf(self.root.as_fd(), nix::unistd::PathconfVar::NAME_MAX)
                .ok()
                .flatten()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(255);
        let apple = cfg!(any(target_os = "macos", target_os = "ios"));
        NameRules {
            windows: cfg!(target_os = "android") || !self.probe_holds("?"),
            case_insensitive: self.probe_case_insensitive(),
            normalization_insensitive: apple,
            name_max,
        }
    }

    /// Whether a file whose name holds `chars` can be created here.
    fn probe_holds(&self, chars: &str) -> bool {
        let name = format!(".meshdrop-probe-{}{chars}", probe_id());
        let made = openat(
            self.root.as_fd(),
            name.as_str(),
            base() | OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
            Mode::from_bits_truncate(0o600),
        );
        let ok = made.is_ok();
        if ok {
            let _ = unlinkat(self.root.as_fd(), name.as_str(), UnlinkatFlags::NoRemoveDir);
        }
        // A destination we cannot write to fails later with a clear error; assume it strict.
        ok || !matches!(made, Err(Errno::EINVAL | Errno::EILSEQ))
    }

    /// Whether a name created in lower case is found in upper case.
    fn probe_case_insensitive(&self) -> bool {
        let name = format!(".meshdrop-probe-{}-case", probe_id());
        let made = openat(
            self.root.as_fd(),
            name.as_str(),
            base() | OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
            Mode::from_bits_truncate(0o600),
        );
        if made.is_err() {
            return cfg!(any(
                target_os = "macos",
                target_os = "ios",
                target_os = "android"
            ));
        }
        let upper = name.to_uppercase();
        let found = fstatat(
            self.root.as_fd(),
            upper.as_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .is_ok();
        let _ = unlinkat(self.root.as_fd(), name.as_str(), UnlinkatFlags::NoRemoveDir);
        found
    }
}

/// A random name part for probes.
fn probe_id() -> String {
    let mut b = [0u8; 6];
    let _ = getrandom::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn kind(st: &FileStat) -> Entry {
    let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if fmt == SFlag::S_IFREG {
        Entry::File {
            size: u64::try_from(st.st_size).unwrap_or(0),
            // `nlink_t` is 16 bits on some platforms, 64 on Linux.
            #[allow(clippy::unnecessary_cast)]
            links: st.st_nlink as u64,
        }
    } else if fmt == SFlag::S_IFDIR {
        Entry::Folder
    } else if fmt == SFlag::S_IFLNK {
        Entry::Link
    } else {
        Entry::Other
    }
}

/// Renames without replacing: `renameat2(RENAME_NOREPLACE)` where there is one, else a hard
/// link and an unlink; on a file system with neither (FAT), a check then a rename.
fn rename_no_replace(old_dir: &File, old: &str, new_dir: &File, new: &str) -> Result<(), Errno> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    match nix::fcntl::renameat2(
        old_dir.as_fd(),
        old,
        new_dir.as_fd(),
        new,
        nix::fcntl::RenameFlags::RENAME_NOREPLACE,
    ) {
        Err(Errno::EINVAL | Errno::ENOSYS) => {}
        done => return done,
    }
    match nix::unistd::linkat(
        old_dir.as_fd(),
        old,
        new_dir.as_fd(),
        new,
        nix::fcntl::AtFlags::empty(),
    ) {
        Ok(()) => {
            return unlinkat(old_dir.as_fd(), old, UnlinkatFlags::NoRemoveDir);
        }
        Err(Errno::EPERM | Errno::EOPNOTSUPP | Errno::EMLINK | Errno::EXDEV | Errno::ENOSYS) => {}
        Err(e) => return Err(e),
    }
    match fstatat(
        new_dir.as_fd(),
        new,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(_) => Err(Errno::EEXIST),
        Err(Errno::ENOENT) => nix::fcntl::renameat(old_dir.as_fd(), old, new_dir.as_fd(), new),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn v(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|p| (*p).to_string()).collect()
    }

    #[test]
    fn folders_and_files_are_made_inside_and_links_are_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("notes.txt"), b"mine").unwrap();
        let dest = Dest::open(&tmp.path().join("out")).unwrap();
        std::os::unix::fs::symlink(&outside, dest.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.join("notes.txt"), dest.path().join("x.part")).unwrap();

        // A folder that is a link is refused, by name.
        let err = dest.make_folders(&v(&["sub", "deeper"])).unwrap_err();
        assert!(matches!(err, DestError::Link { .. }), "{err:?}");
        assert!(err.to_string().contains("sub is a link"), "{err}");
        assert!(dest.create_new(&v(&["sub", "a.bin"])).is_err());
        // A file that is a link is neither created over nor opened for writing.
        assert!(dest.create_new(&v(&["x.part"])).is_err());
        assert!(matches!(
            dest.write_existing(&v(&["x.part"])),
            Err(DestError::Link { .. })
        ));
        assert_eq!(dest.entry(&v(&["x.part"])).unwrap(), Entry::Link);
        // A hard link to a file outside is not written through either.
        std::fs::hard_link(outside.join("notes.txt"), dest.path().join("hard")).unwrap();
        assert!(matches!(
            dest.write_existing(&v(&["hard"])),
            Err(DestError::Link { .. })
        ));
        // Removing a link removes the link.
        dest.remove(&v(&["x.part"])).unwrap();
        assert_eq!(std::fs::read(outside.join("notes.txt")).unwrap(), b"mine");
        assert!(std::fs::read_dir(&outside).unwrap().count() == 1);

        dest.make_folders(&v(&["a", "b"])).unwrap();
        let mut f = dest.create_new(&v(&["a", "b", "f"])).unwrap();
        f.write_all(b"hello").unwrap();
        assert_eq!(
            dest.entry(&v(&["a", "b", "f"])).unwrap(),
            Entry::File { size: 5, links: 1 }
        );
        std::fs::write(dest.path().join("a/taken"), b"user's").unwrap();
        let err = dest
            .rename_new(&v(&["a", "b", "f"]), &v(&["a", "taken"]))
            .unwrap_err();
        assert!(
            matches!(&err, DestError::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists),
            "{err:?}"
        );
        assert_eq!(
            std::fs::read(dest.path().join("a/taken")).unwrap(),
            b"user's"
        );
        dest.rename_new(&v(&["a", "b", "f"]), &v(&["a", "g"]))
            .unwrap();
        assert_eq!(std::fs::read(dest.path().join("a/g")).unwrap(), b"hello");
        let err = dest.make_folders(&v(&["a", "g", "h"])).unwrap_err();
        assert!(matches!(err, DestError::NotAFolder { .. }), "{err:?}");
    }

    #[test]
    fn a_linux_destination_holds_any_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = Dest::open(tmp.path()).unwrap();
        let rules = dest.name_rules();
        assert_eq!(rules.name_max, 255);
        #[cfg(target_os = "linux")]
        assert_eq!(rules, NameRules::POSIX);
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "probes removed"
        );
    }
}
