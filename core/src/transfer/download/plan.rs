//! What a download finds on disk before it fetches: which selected files are already in place
//! (identical), which `.part` files hold chunks recorded by an earlier run, and which chunks are
//! missing; every path checked to stay inside the destination before anything is written.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::{DownloadError, io_err};
use crate::store::Store;
use crate::transfer::{Manifest, join_safe, state};

/// One selected file and where its bytes go.
#[derive(Clone, Debug)]
pub(super) struct FilePlan {
    pub(super) index: usize,
    pub(super) final_path: PathBuf,
    pub(super) part_path: PathBuf,
    pub(super) done: bool,
}

/// What is on disk, what is missing, where everything goes.
pub(super) struct Plan {
    pub(super) files: Vec<FilePlan>,
    dirs: Vec<PathBuf>,
    /// Chunks still to fetch.
    pub(super) missing: Vec<u64>,
    /// Chunks already safely on disk (servable).
    pub(super) done: Vec<u64>,
    /// Where each manifest file is read from when served.
    pub(super) locations: Vec<PathBuf>,
    /// Where each manifest file goes once in place.
    all_final: Vec<PathBuf>,
    /// Bytes already on disk from an earlier run.
    pub(super) resumed: u64,
    /// Bytes of files already present and identical.
    pub(super) skipped: u64,
}

impl Plan {
    /// Plans the download `dl` of `manifest` (the `selection`, or every file) into `dest`.
    pub(super) fn make(
        store: &Store,
        dl: i64,
        manifest: &Manifest,
        dest: &Path,
        selection: Option<&[usize]>,
    ) -> Result<Self, DownloadError> {
        // Every path is checked before anything is written.
        let mut locations = Vec::with_capacity(manifest.files().len());
        for f in manifest.files() {
            locations.push(join_safe(dest, &f.path.to_vec())?);
        }
        let dirs = manifest
            .dirs()
            .iter()
            .map(|d| join_safe(dest, &d.to_vec()))
            .collect::<Result<Vec<_>, _>>()?;
        let recorded: BTreeSet<u64> = state::done_chunks(store, dl)?.into_iter().collect();
        let mut plan = Plan {
            files: Vec::new(),
            dirs,
            missing: Vec::new(),
            done: Vec::new(),
            locations: Vec::new(),
            all_final: locations.clone(),
            resumed: 0,
            skipped: 0,
        };
        let mut stale = Vec::new();
        for (index, final_path) in locations.into_iter().enumerate() {
            let part_path = part_path_of(&final_path);
            if selection.is_none_or(|s| s.contains(&index)) {
                let file = FilePlan {
                    index,
                    final_path,
                    part_path,
                    done: false,
                };
                plan.add_selected(manifest, file, &recorded, &mut stale)?;
            } else {
                plan.locations.push(part_path);
            }
        }
        state::unrecord_chunks(store, dl, &stale)?;
        Ok(plan)
    }

    /// Plans a selected file: in place already (identical), resumed from its `.part` (the
    /// recorded chunks), or fetched whole. Recorded chunks whose `.part` is gone go to `stale`.
    fn add_selected(
        &mut self,
        manifest: &Manifest,
        mut file: FilePlan,
        recorded: &BTreeSet<u64>,
        stale: &mut Vec<u64>,
    ) -> Result<(), DownloadError> {
        let f = &manifest.files()[file.index];
        let chunks = manifest.chunks_of(file.index);
        if file.final_path.exists() {
            if !same_file(&file.final_path, f.size, &f.hash).map_err(io_err(&file.final_path))? {
                return Err(DownloadError::Exists {
                    path: file.final_path,
                });
            }
            file.done = true;
            self.skipped += f.size;
            self.done.extend(chunks);
        } else if file.part_path.exists() {
            for i in chunks {
                if recorded.contains(&i) {
                    self.done.push(i);
                    self.resumed += manifest.chunk(i).map_or(0, |c| u64::from(c.len));
                } else {
                    self.missing.push(i);
                }
            }
        } else {
            // Records without their data (the .part was removed): fetch again.
            stale.extend(chunks.clone().filter(|i| recorded.contains(i)));
            self.missing.extend(chunks);
        }
        self.locations.push(if file.done {
            file.final_path.clone()
        } else {
            file.part_path.clone()
        });
        self.files.push(file);
        Ok(())
    }

    /// Where every file of the share is once in place.
    pub(super) fn final_paths(&self) -> Vec<PathBuf> {
        self.all_final.clone()
    }

    /// Bytes of the selected files.
    pub(super) fn selected_bytes(&self, manifest: &Manifest) -> u64 {
        self.files
            .iter()
            .map(|f| manifest.files()[f.index].size)
            .sum()
    }

    /// Fails when the destination lacks the space the missing chunks need.
    pub(super) fn check_space(
        &self,
        manifest: &Manifest,
        dest: &Path,
    ) -> Result<(), DownloadError> {
        let needed: u64 = self
            .missing
            .iter()
            .filter_map(|i| manifest.chunk(*i))
            .map(|c| u64::from(c.len))
            .sum();
        let available = fs4::available_space(dest).map_err(io_err(dest))?;
        if needed > available {
            return Err(DownloadError::NoSpace {
                path: dest.to_path_buf(),
                needed,
                available,
            });
        }
        Ok(())
    }

    /// Creates folders and empty files; `.part` files are created by the writer on first use.
    pub(super) fn prepare(&self, manifest: &Manifest) -> Result<(), DownloadError> {
        let mut made: BTreeSet<&Path> = BTreeSet::new();
        let parents = self
            .files
            .iter()
            .filter(|f| !f.done)
            .filter_map(|f| f.final_path.parent());
        for d in self.dirs.iter().map(PathBuf::as_path).chain(parents) {
            if made.insert(d) {
                fs::create_dir_all(d).map_err(io_err(d))?;
            }
        }
        for f in self.files.iter().filter(|f| !f.done) {
            if manifest.files()[f.index].size == 0 {
                File::create(&f.final_path).map_err(io_err(&f.final_path))?;
            }
        }
        Ok(())
    }

    pub(super) fn remove_parts(&self) {
        for f in &self.files {
            let _ = fs::remove_file(&f.part_path);
        }
    }
}

/// Where the bytes of `final_path` are written until the file verifies: `<name>.part` beside it.
fn part_path_of(final_path: &Path) -> PathBuf {
    let mut name = final_path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".part");
    final_path.with_file_name(name)
}

/// Whether the file at `path` has this size and BLAKE3 hash.
pub(super) fn same_file(path: &Path, size: u64, hash: &[u8; 32]) -> io::Result<bool> {
    if fs::metadata(path)?.len() != size {
        return Ok(false);
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(File::open(path)?)?;
    Ok(hasher.finalize().as_bytes() == hash)
}
