//! A share as the user sees it in a list: its id, name, size, why and until when it is served.

use super::capability::ShareTag;
use super::library::Content;
use super::shares::{KeyRecord, ShareKind};
use super::{ContentId, Manifest};

/// A share this device serves, as listed to the user.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShareInfo {
    /// Its short id (what `unshare` takes).
    pub id: String,
    /// Its key's tag.
    #[serde(skip)]
    pub tag: ShareTag,
    /// The share.
    pub content: ContentId,
    /// Its top-level files and folders.
    pub name: String,
    /// Files in it.
    pub files: usize,
    /// Bytes in it.
    pub bytes: u64,
    /// Why it is served.
    pub kind: ShareKind,
    /// Since when (Unix seconds).
    pub since: u64,
    /// Until when (Unix seconds); `None`: until unshared.
    pub expires: Option<u64>,
    /// Bytes served under its key.
    pub served: u64,
    /// Whether its files can be read now: `false` for files the app opened in an earlier run
    /// (served again once the app shares the same files again).
    pub available: bool,
}

impl ShareInfo {
    pub(crate) fn of(r: &KeyRecord, content: Option<&Content>) -> Self {
        let tag = r.key.tag();
        let manifest = content.map(|c| &c.manifest);
        Self {
            id: tag.short(),
            tag,
            content: r.content,
            name: manifest
                .map(|m| top_level_names(m).join(", "))
                .unwrap_or_default(),
            files: manifest.map_or(0, |m| m.files().len()),
            bytes: manifest.map_or(0, |m| m.total_size()),
            kind: r.kind,
            since: r.since,
            expires: r.expires,
            served: r.served,
            available: content.is_some_and(Content::available),
        }
    }
}

/// The top-level files and folders of a share, sorted.
fn top_level_names(m: &Manifest) -> Vec<String> {
    let files = m.files().iter().map(|f| f.path.as_str());
    let dirs = m.dirs().iter().map(|d| d.as_str());
    let mut names: Vec<String> = files
        .chain(dirs)
        .filter_map(|p| p.split('/').next())
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}
