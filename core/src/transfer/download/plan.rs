//! What a download finds on disk before it fetches, and where each file goes: the share's names
//! mapped to what the destination holds (`names.rs`); a final name already taken by another file
//! or claimed by a running download moves on to `a (1).bin`; each file's bytes go to a `.part` of
//! this download alone (`.a.bin.<token>.meshdrop-part`), resumed only from the chunks this
//! download recorded; a final name that holds an unfinished copy of the file (a copy from a
//! stick that stopped half-way) is completed where it lies, fetching only the chunks it lacks;
//! everything reached through [`Dest`], which follows no link.

use std::collections::{BTreeSet, HashSet};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use super::{DownloadError, io_err};
use crate::store::Store;
use crate::transfer::dest::{Dest, Entry};
use crate::transfer::download::registry::Claims;
use crate::transfer::names::{self, NameChange, NameRules, cut, suffixed};
use crate::transfer::state::{self, DownloadRow};
use crate::transfer::{FileEntry, Manifest};

/// How far past the share's name a taken name looks for a free one (`a (1).bin` … ).
const MAX_SUFFIX: u32 = 1000;
/// What a `.part` name adds to the file's: `.` + `.` + token + `.meshdrop-part`.
const PART_OVERHEAD: usize = 2 + 16 + 14;

/// One selected file and where its bytes go (paths relative to the destination).
#[derive(Clone, Debug)]
pub(super) struct FilePlan {
    pub(super) index: usize,
    pub(super) final_rel: Vec<String>,
    /// Its `.part`; the final file itself when it is repaired in place.
    pub(super) part_rel: Vec<String>,
    pub(super) done: bool,
}

impl FilePlan {
    fn new(index: usize, final_rel: Vec<String>, part_rel: Vec<String>) -> Self {
        FilePlan {
            index,
            final_rel,
            part_rel,
            done: false,
        }
    }

    /// Whether the file is written where it lies (a repair), not renamed into place.
    pub(super) fn in_place(&self) -> bool {
        self.part_rel == self.final_rel
    }
}

/// What is on disk, what is missing, where everything goes.
pub(super) struct Plan {
    pub(super) dest: Arc<Dest>,
    pub(super) files: Vec<FilePlan>,
    dirs: Vec<Vec<String>>,
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
    /// Bytes already in the destination (identical files, chunks of unfinished copies).
    pub(super) skipped: u64,
    /// Names of the share saved under others.
    pub(super) renamed: Vec<NameChange>,
    /// What the plan found and mended (a link planted where a `.part` goes).
    pub(super) notes: Vec<String>,
    /// The longest name the destination holds.
    pub(super) name_max: usize,
}

/// What the name a selected file is saved under holds.
enum Placed {
    /// Nothing yet: the file is fetched into its `.part`.
    New(Vec<String>),
    /// This very file: nothing to fetch.
    Done(Vec<String>),
    /// An unfinished copy of it, completed in place; these of its chunks are there already.
    Partial(Vec<String>, Vec<u64>),
}

/// Where a selected file may go: what [`Plan::place`] looks at.
struct Place<'a> {
    claims: &'a Claims,
    owner: i64,
    rel: &'a [String],
    manifest: &'a Manifest,
    index: usize,
    name_max: usize,
    /// Whether an unfinished copy under its name may be completed in place.
    adopt: bool,
}

/// What a plan is made from besides the store: the share, this download, its destination.
pub(super) struct PlanInput<'a> {
    pub(super) manifest: &'a Manifest,
    pub(super) row: &'a DownloadRow,
    pub(super) dest: &'a Arc<Dest>,
    pub(super) rules: NameRules,
    pub(super) selection: Option<&'a [usize]>,
    pub(super) claims: &'a Claims,
}

impl Plan {
    /// Plans the download `input.row` of `input.manifest` into `input.dest`.
    pub(super) fn make(store: &Store, input: PlanInput<'_>) -> Result<Self, DownloadError> {
        let PlanInput {
            manifest,
            row,
            dest,
            rules,
            selection,
            claims,
        } = input;
        let local = names::map_share(manifest, &rules);
        let recorded: BTreeSet<u64> = state::done_chunks(store, row.id)?.into_iter().collect();
        let mut plan = Plan {
            dest: dest.clone(),
            files: Vec::new(),
            dirs: local.dirs,
            missing: Vec::new(),
            done: Vec::new(),
            locations: Vec::new(),
            all_final: Vec::new(),
            resumed: 0,
            skipped: 0,
            renamed: local.changes,
            notes: Vec::new(),
            name_max: rules.name_max,
        };
        let selected: Option<HashSet<usize>> = selection.map(|s| s.iter().copied().collect());
        let mut stale = Vec::new();
        for (index, rel) in local.files.into_iter().enumerate() {
            let part_rel = part_of(&rel, &row.token, rules.name_max);
            if selected.as_ref().is_none_or(|s| s.contains(&index)) {
                // A `.part` of this download is resumed; only without one is an unfinished copy
                // under the final name taken over.
                let adopt = matches!(dest.entry(&part_rel)?, Entry::Absent);
                let at = Place {
                    claims,
                    owner: row.id,
                    rel: &rel,
                    manifest,
                    index,
                    name_max: rules.name_max,
                    adopt,
                };
                let (file, present) = match plan.place(at)? {
                    Placed::New(final_rel) => (FilePlan::new(index, final_rel, part_rel), None),
                    Placed::Done(final_rel) => (
                        FilePlan {
                            done: true,
                            ..FilePlan::new(index, final_rel, part_rel)
                        },
                        None,
                    ),
                    Placed::Partial(final_rel, present) => (
                        FilePlan::new(index, final_rel.clone(), final_rel),
                        Some(present),
                    ),
                };
                plan.add_selected(manifest, file, present, &recorded, &mut stale)?;
            } else {
                plan.all_final.push(dest.join(&rel));
                plan.locations.push(dest.join(&part_rel));
            }
        }
        state::unrecord_chunks(store, row.id, &stale)?;
        Ok(plan)
    }

    /// Plans one file repaired in place: `chunks` of file `index` at `rel` are fetched again and
    /// written where they lie; the file is checked whole before it counts as healed.
    pub(super) fn repair(
        dest: Arc<Dest>,
        name_max: usize,
        manifest: &Manifest,
        index: usize,
        rel: Vec<String>,
        chunks: Vec<u64>,
    ) -> Self {
        let location = dest.join(&rel);
        let mut locations: Vec<PathBuf> = vec![PathBuf::new(); manifest.files().len()];
        locations[index] = location;
        Plan {
            dest,
            files: vec![FilePlan {
                index,
                final_rel: rel.clone(),
                part_rel: rel,
                done: false,
            }],
            dirs: Vec::new(),
            done: manifest
                .chunks_of(index)
                .filter(|i| !chunks.contains(i))
                .collect(),
            missing: chunks,
            all_final: locations.clone(),
            locations,
            resumed: 0,
            skipped: 0,
            renamed: Vec::new(),
            notes: Vec::new(),
            name_max,
        }
    }

    /// The final name of a selected file: the share's (mapped) name, or, when another file
    /// holds it or another running download claimed it, the first free `name (n)`. A name that
    /// holds this very file already means it is done; one that holds an unfinished copy of it
    /// (when `at.adopt`) is completed in place.
    fn place(&mut self, at: Place<'_>) -> Result<Placed, DownloadError> {
        let Place {
            claims,
            owner,
            rel,
            manifest,
            index,
            name_max,
            adopt,
        } = at;
        let entry = &manifest.files()[index];
        let Some((name, parent)) = rel.split_last() else {
            return Err(DownloadError::Exists {
                path: self.dest.join(rel),
            });
        };
        let mut why = None;
        for n in 0..=MAX_SUFFIX {
            let mut candidate = parent.to_vec();
            candidate.push(if n == 0 {
                name.clone()
            } else {
                suffixed(name, n, name_max)
            });
            let path = self.dest.join(&candidate);
            let found = self.dest.entry(&candidate)?;
            let taken = match found {
                Entry::Absent => None,
                Entry::File { size, links: 1 } => {
                    if size == entry.size && self.same_file(&candidate, entry)? {
                        self.note_taken(rel, &candidate, why);
                        return Ok(Placed::Done(candidate));
                    }
                    if adopt
                        && size <= entry.size
                        && let Some(present) = self.present_chunks(&candidate, manifest, index)?
                        && claims.claim(&path, owner)
                    {
                        self.note_taken(rel, &candidate, why);
                        return Ok(Placed::Partial(candidate, present));
                    }
                    Some("another file holds its name")
                }
                Entry::Link => Some("a link is in its place"),
                Entry::Folder => Some("a folder holds its name"),
                _ => Some("another file holds its name"),
            };
            match taken {
                None if claims.claim(&path, owner) => {
                    self.note_taken(rel, &candidate, why);
                    return Ok(Placed::New(candidate));
                }
                None => why = why.or(Some("another download saves a file under its name")),
                Some(reason) => why = why.or(Some(reason)),
            }
        }
        Err(DownloadError::Exists {
            path: self.dest.join(rel),
        })
    }

    /// Reports that file `rel` goes to `placed` because its name was taken (`why`).
    fn note_taken(&mut self, rel: &[String], placed: &[String], why: Option<&str>) {
        let Some(why) = why.filter(|_| rel != placed) else {
            return;
        };
        let saved_as = placed.join("/");
        // A name the mapping changed already keeps its first reason and gets the final name.
        let local = rel.join("/");
        if let Some(change) = self.renamed.iter_mut().find(|c| c.saved_as == local) {
            change.saved_as = saved_as;
            change.reason = format!("{}; {why}", change.reason);
            return;
        }
        self.renamed.push(NameChange {
            path: local,
            saved_as,
            reason: why.to_string(),
        });
    }

    /// Plans a selected file: in place already (identical), completed in place (an unfinished
    /// copy holding the chunks `present`), resumed from its `.part` (the recorded chunks), or
    /// fetched whole. Recorded chunks no longer on disk go to `stale`.
    fn add_selected(
        &mut self,
        manifest: &Manifest,
        file: FilePlan,
        present: Option<Vec<u64>>,
        recorded: &BTreeSet<u64>,
        stale: &mut Vec<u64>,
    ) -> Result<(), DownloadError> {
        let f = &manifest.files()[file.index];
        let chunks = manifest.chunks_of(file.index);
        if file.done {
            self.skipped += f.size;
            self.done.extend(chunks);
        } else if let Some(present) = present {
            let present: HashSet<u64> = present.into_iter().collect();
            let mut kept = 0;
            for i in chunks {
                let len = manifest.chunk(i).map_or(0, |c| u64::from(c.len));
                if !present.contains(&i) {
                    if recorded.contains(&i) {
                        stale.push(i);
                    }
                    self.missing.push(i);
                } else if recorded.contains(&i) {
                    self.done.push(i);
                    self.resumed += len;
                } else {
                    self.done.push(i);
                    kept += len;
                }
            }
            self.skipped += kept;
            if kept > 0 {
                self.notes.push(format!(
                    "{} was partly there already: {kept} of its {} bytes kept, only the rest fetched",
                    self.dest.join(&file.final_rel).display(),
                    f.size
                ));
            }
        } else {
            match self.dest.entry(&file.part_rel)? {
                Entry::File { links: 1, .. } => {
                    for i in chunks {
                        if recorded.contains(&i) {
                            self.done.push(i);
                            self.resumed += manifest.chunk(i).map_or(0, |c| u64::from(c.len));
                        } else {
                            self.missing.push(i);
                        }
                    }
                }
                Entry::Absent => {
                    // Records without their data (the .part was removed): fetch again.
                    stale.extend(chunks.clone().filter(|i| recorded.contains(i)));
                    self.missing.extend(chunks);
                }
                _ => {
                    // Not this download's file: a link (or another file's hard link) planted
                    // where its `.part` goes. It is removed, never written through.
                    let path = self.dest.join(&file.part_rel);
                    tracing::warn!(path = %path.display(), "removing a link planted as a .part");
                    self.dest.remove(&file.part_rel)?;
                    self.notes.push(format!(
                        "{} was not this download's file (a link): removed, its bytes fetched anew",
                        path.display()
                    ));
                    stale.extend(chunks.clone().filter(|i| recorded.contains(i)));
                    self.missing.extend(chunks);
                }
            }
        }
        self.all_final.push(self.dest.join(&file.final_rel));
        self.locations.push(self.dest.join(if file.done {
            &file.final_rel
        } else {
            &file.part_rel
        }));
        self.files.push(file);
        Ok(())
    }

    /// Whether the file at `rel` is this one (size and BLAKE3 hash), read without following links.
    fn same_file(&self, rel: &[String], entry: &FileEntry) -> Result<bool, DownloadError> {
        same_file(&self.dest, rel, entry.size, &entry.hash)
    }

    /// The chunks of file `index` that the file at `rel` holds already, when it is an unfinished
    /// copy of it: every whole chunk within its length is either the share's or never written
    /// (zeros), and at least one is the share's. `None` for any other file: a file the user
    /// wrote is never written over.
    fn present_chunks(
        &self,
        rel: &[String],
        manifest: &Manifest,
        index: usize,
    ) -> Result<Option<Vec<u64>>, DownloadError> {
        let path = self.dest.join(rel);
        let file = self.dest.read(rel)?;
        let len = file.metadata().map_err(io_err(&path))?.len();
        let mut buf = vec![0; manifest.chunk_size() as usize];
        let mut present = Vec::new();
        for c in manifest.chunks_of(index).filter_map(|i| manifest.chunk(i)) {
            if c.offset + u64::from(c.len) > len {
                break;
            }
            let data = &mut buf[..c.len as usize];
            file.read_exact_at(data, c.offset).map_err(io_err(&path))?;
            if c.verify(data) {
                present.push(c.index);
            } else if data.iter().any(|&b| b != 0) {
                return Ok(None);
            }
        }
        Ok((!present.is_empty()).then_some(present))
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
    pub(super) fn check_space(&self, manifest: &Manifest) -> Result<(), DownloadError> {
        let needed: u64 = self
            .missing
            .iter()
            .filter_map(|i| manifest.chunk(*i))
            .map(|c| u64::from(c.len))
            .sum();
        let dest = self.dest.path();
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
        let mut made: BTreeSet<&[String]> = BTreeSet::new();
        let parents = self
            .files
            .iter()
            .filter(|f| !f.done)
            .filter_map(|f| f.final_rel.split_last().map(|(_, p)| p));
        for d in self.dirs.iter().map(Vec::as_slice).chain(parents) {
            if made.insert(d) {
                self.dest.make_folders(d)?;
            }
        }
        for f in self.files.iter().filter(|f| !f.done) {
            if manifest.files()[f.index].size == 0 {
                self.dest.create_new(&f.final_rel)?;
            }
        }
        Ok(())
    }

    pub(super) fn remove_parts(&self) {
        for f in self.files.iter().filter(|f| !f.in_place()) {
            let _ = self.dest.remove(&f.part_rel);
        }
    }
}

/// Where the bytes of `rel` are written until the file verifies: `.<name>.<token>.meshdrop-part`
/// beside it, the name cut (with a hash of it) when the whole would not fit `name_max`.
fn part_of(rel: &[String], token: &str, name_max: usize) -> Vec<String> {
    let mut part = rel.to_vec();
    if let Some(name) = part.last_mut() {
        let fits = name.len() + PART_OVERHEAD <= name_max;
        let short = if fits {
            name.clone()
        } else {
            let hash = blake3::hash(name.as_bytes()).to_hex();
            let room = name_max.saturating_sub(PART_OVERHEAD + 9);
            format!("{}~{}", cut(name, room), &hash[..8])
        };
        *name = format!(".{short}.{token}.meshdrop-part");
    }
    part
}

/// Whether the file at `rel` under `dest` has this size and BLAKE3 hash.
pub(super) fn same_file(
    dest: &Dest,
    rel: &[String],
    size: u64,
    hash: &[u8; 32],
) -> Result<bool, DownloadError> {
    let path = dest.join(rel);
    let file = dest.read(rel)?;
    let read = |file: std::fs::File| -> io::Result<bool> {
        if file.metadata()?.len() != size {
            return Ok(false);
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(file)?;
        Ok(hasher.finalize().as_bytes() == hash)
    };
    read(file).map_err(io_err(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_belong_to_one_download_and_fit_the_file_system() {
        let rel = vec!["Trip".to_string(), "a.bin".to_string()];
        let token = "0123456789abcdef";
        assert_eq!(
            part_of(&rel, token, 255),
            ["Trip", ".a.bin.0123456789abcdef.meshdrop-part"]
        );
        let long = vec!["é".repeat(120)];
        let part = part_of(&long, token, 255);
        assert!(part[0].len() <= 255, "{}", part[0].len());
        assert!(part[0].ends_with(".0123456789abcdef.meshdrop-part"));
        let other = vec![format!("{}x", "é".repeat(119))];
        assert_ne!(part_of(&other, token, 255), part, "cut names stay apart");
    }
}
