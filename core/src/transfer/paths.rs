//! Safe relative paths: a path that comes from a manifest is never trusted.
//!
//! A path is a list of components (UTF-8 names). The rules here are what keeps a path inside the
//! destination folder on every platform, and nothing more: rejected are an empty path; more than
//! [`MAX_DEPTH`] components; an empty component (which is how an absolute path such as
//! `/etc/passwd` looks once split); `.` and `..`; a component holding `/` or NUL; a component
//! longer than [`MAX_COMPONENT_LEN`] bytes. Any other name is shared as it is ("Fotos/Día 1/café
//! ☕.jpg", "what?.txt", "a\\b"): what one platform cannot hold (a backslash or `?` on Windows and
//! Android's shared storage, a name that differs from another only in case on macOS) is mapped by
//! each receiver for its own destination (`names.rs`), never refused by the sender.

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};

/// The deepest path accepted, in components.
pub const MAX_DEPTH: usize = 64;

/// The longest component accepted, in bytes of UTF-8 (the limit of most file systems).
pub const MAX_COMPONENT_LEN: usize = 255;

/// Why a path is not safe to write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path has no component at all.
    #[error("the path is empty")]
    Empty,
    /// The path has more components than [`MAX_DEPTH`].
    #[error("the path is {depth} levels deep, at most {MAX_DEPTH} are allowed")]
    TooDeep {
        /// How many components it has.
        depth: usize,
    },
    /// The path is absolute (it starts with an empty component).
    #[error("absolute paths are not allowed ({component:?})")]
    Absolute {
        /// The offending component.
        component: String,
    },
    /// A component is empty (as in `a//b`).
    #[error("empty path component")]
    EmptyComponent,
    /// A component is `.` or `..`.
    #[error("{component:?} is not allowed as a path component")]
    DotComponent {
        /// The offending component.
        component: String,
    },
    /// A component contains the path separator `/`.
    #[error("{component:?} contains the forbidden character {ch:?}")]
    ForbiddenChar {
        /// The offending component.
        component: String,
        /// The character.
        ch: char,
    },
    /// A component contains NUL, which no file system holds.
    #[error("{component:?} contains a NUL character")]
    ControlChar {
        /// The offending component.
        component: String,
    },
    /// A component is longer than [`MAX_COMPONENT_LEN`] bytes.
    #[error("a path component is {len} bytes long, at most {MAX_COMPONENT_LEN} are allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
}

/// Checks one component (a file or folder name) against the rules of this module. `first` tells
/// whether it starts the path, where an empty component means an absolute path.
fn check_component(component: &str, first: bool) -> Result<(), PathError> {
    let owned = || component.to_owned();
    if component.is_empty() {
        return Err(if first {
            PathError::Absolute { component: owned() }
        } else {
            PathError::EmptyComponent
        });
    }
    if component.len() > MAX_COMPONENT_LEN {
        return Err(PathError::TooLong {
            len: component.len(),
        });
    }
    if component == "." || component == ".." {
        return Err(PathError::DotComponent { component: owned() });
    }
    if component.contains('\0') {
        return Err(PathError::ControlChar { component: owned() });
    }
    if component.contains('/') {
        return Err(PathError::ForbiddenChar {
            component: owned(),
            ch: '/',
        });
    }
    Ok(())
}

/// Checks a single name (a file or folder name that is not first in its path).
pub fn validate_name(name: &str) -> Result<(), PathError> {
    check_component(name, false)
}

/// Checks a whole relative path given as components.
pub fn validate<S: AsRef<str>>(components: &[S]) -> Result<(), PathError> {
    if components.is_empty() {
        return Err(PathError::Empty);
    }
    if components.len() > MAX_DEPTH {
        return Err(PathError::TooDeep {
            depth: components.len(),
        });
    }
    for (i, component) in components.iter().enumerate() {
        check_component(component.as_ref(), i == 0)?;
    }
    Ok(())
}

/// Joins untrusted `components` under `dest`, after checking them: the result is always inside
/// `dest` (lexically; a download writes through `dest.rs`, which follows no link).
pub fn join_safe(dest: &Path, components: &[String]) -> Result<PathBuf, PathError> {
    validate(components)?;
    let mut path = dest.to_path_buf();
    path.extend(components);
    Ok(path)
}

/// A checked relative path: one or more safe components, kept compactly as one string joined with
/// `/` (no component can contain `/`). Ordered component by component, so that a folder sorts right
/// before everything inside it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RelPath(String);

impl RelPath {
    /// Checks `components` and makes a path of them.
    pub fn new<S: AsRef<str>>(components: &[S]) -> Result<Self, PathError> {
        validate(components)?;
        let mut joined = String::new();
        for (i, component) in components.iter().enumerate() {
            if i > 0 {
                joined.push('/');
            }
            joined.push_str(component.as_ref());
        }
        Ok(Self(joined))
    }

    /// Extends a checked path by one name, checking it.
    pub fn join(&self, name: &str) -> Result<Self, PathError> {
        if self.depth() >= MAX_DEPTH {
            return Err(PathError::TooDeep {
                depth: self.depth() + 1,
            });
        }
        validate_name(name)?;
        Ok(Self(format!("{}/{name}", self.0)))
    }

    /// Starts a path builder for a decoder that reads components one by one.
    pub(crate) fn builder() -> RelPathBuilder {
        RelPathBuilder {
            joined: String::new(),
            depth: 0,
        }
    }

    /// The components, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.split('/')
    }

    /// How many components the path has.
    pub fn depth(&self) -> usize {
        self.components().count()
    }

    /// The components, copied.
    pub fn to_vec(&self) -> Vec<String> {
        self.components().map(str::to_owned).collect()
    }

    /// The path as one string joined with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path under `dest`; always inside it, since every component was checked.
    pub fn under(&self, dest: &Path) -> PathBuf {
        let mut path = dest.to_path_buf();
        path.extend(self.components());
        path
    }

    /// Whether `self` is a strict ancestor of `other` (a folder that contains it).
    pub fn is_ancestor_of(&self, other: &RelPath) -> bool {
        other.0.len() > self.0.len()
            && other.0.starts_with(&self.0)
            && other.0.as_bytes()[self.0.len()] == b'/'
    }
}

impl Ord for RelPath {
    fn cmp(&self, other: &Self) -> Ordering {
        self.components().cmp(other.components())
    }
}

impl PartialOrd for RelPath {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl serde::Serialize for RelPath {
    /// Serialized as a sequence of components.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        // The length must be given up front (postcard writes it first).
        let mut seq = serializer.serialize_seq(Some(self.depth()))?;
        for component in self.components() {
            seq.serialize_element(component)?;
        }
        seq.end()
    }
}

/// Builds a [`RelPath`] one checked component at a time, without keeping a `Vec` of strings (a
/// decoder uses it to bound memory by the size of its input).
pub(crate) struct RelPathBuilder {
    joined: String,
    depth: usize,
}

impl RelPathBuilder {
    /// Checks and appends a component. On error, returns the path so far (for the message).
    pub(crate) fn push(&mut self, component: &str) -> Result<(), PathError> {
        if self.depth >= MAX_DEPTH {
            return Err(PathError::TooDeep {
                depth: self.depth + 1,
            });
        }
        check_component(component, self.depth == 0)?;
        if self.depth > 0 {
            self.joined.push('/');
        }
        self.joined.push_str(component);
        self.depth += 1;
        Ok(())
    }

    /// The path so far, for error messages.
    pub(crate) fn so_far(&self) -> &str {
        &self.joined
    }

    /// Finishes the path; an empty one is an error.
    pub(crate) fn finish(self) -> Result<RelPath, PathError> {
        if self.depth == 0 {
            return Err(PathError::Empty);
        }
        Ok(RelPath(self.joined))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(components: &[&str]) -> Vec<String> {
        components.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn accepts_ordinary_and_unicode_names() {
        for ok in [
            &["Fotos", "Día 1", "café ☕.jpg"][..],
            &["a"],
            &["trip.2024", "IMG_0001.MOV"],
            &[".hidden", "..dots.inside"],
            &["日本語", "файл", "🎉"],
            &["CONSOLE", "aux1", "com10.txt", "nul-ish"],
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok:?}");
        }
    }

    #[test]
    fn rejects_escapes_and_absolute_paths() {
        assert_eq!(validate::<&str>(&[]), Err(PathError::Empty));
        assert!(matches!(
            validate(&["..", "etc", "passwd"]),
            Err(PathError::DotComponent { .. })
        ));
        assert!(matches!(
            validate(&["a", ".", "b"]),
            Err(PathError::DotComponent { .. })
        ));
        assert!(matches!(
            validate(&["", "etc", "passwd"]),
            Err(PathError::Absolute { .. })
        ));
        assert!(matches!(
            validate(&["/etc/passwd"]),
            Err(PathError::ForbiddenChar { ch: '/', .. })
        ));
        assert_eq!(validate(&["a", "", "b"]), Err(PathError::EmptyComponent));
        assert!(matches!(
            validate(&["a", "b/../../c"]),
            Err(PathError::ForbiddenChar { ch: '/', .. })
        ));
        assert!(matches!(
            validate(&["dir", "a\0b"]),
            Err(PathError::ControlChar { .. })
        ));
        let long = "é".repeat(128);
        assert_eq!(
            validate(&["dir", long.as_str()]),
            Err(PathError::TooLong { len: 256 })
        );
        let fits = "a".repeat(MAX_COMPONENT_LEN);
        assert_eq!(validate(&["dir", fits.as_str()]), Ok(()));
    }

    #[test]
    fn names_another_platform_forbids_are_shared_as_they_are() {
        // Each receiver maps what its destination cannot hold (names.rs); none is refused here.
        for name in [
            "what?.txt",
            "a\\b",
            "..\\..\\c",
            "C:",
            "c:evil",
            "CON",
            "nul.tar.gz",
            "trailing.",
            "trailing ",
            "tab\there",
            "a<b>c|d*e\"f",
        ] {
            assert_eq!(validate(&["dir", name]), Ok(()), "{name:?}");
        }
        assert_eq!(validate(&["C:", "Windows"]), Ok(()));
    }

    #[test]
    fn depth_is_limited() {
        let deep = vec!["d"; MAX_DEPTH];
        assert_eq!(validate(&deep), Ok(()));
        let deeper = vec!["d"; MAX_DEPTH + 1];
        assert_eq!(
            validate(&deeper),
            Err(PathError::TooDeep {
                depth: MAX_DEPTH + 1
            })
        );
        let path = RelPath::new(&deep).expect("valid");
        assert!(matches!(path.join("x"), Err(PathError::TooDeep { .. })));
    }

    #[test]
    fn join_safe_stays_inside_dest() {
        let dest = Path::new("/tmp/dest");
        let joined = join_safe(dest, &v(&["Fotos", "Día 1", "café ☕.jpg"])).expect("safe");
        assert_eq!(joined, Path::new("/tmp/dest/Fotos/Día 1/café ☕.jpg"));
        assert!(joined.starts_with(dest));
        for bad in [
            v(&["..", "x"]),
            v(&["/etc", "passwd"]),
            v(&["", "etc"]),
            v(&["a", "..", "..", "x"]),
            v(&[]),
        ] {
            assert!(join_safe(dest, &bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn relpath_order_is_by_component() {
        let a = RelPath::new(&["a", "b"]).expect("valid");
        let a_dash = RelPath::new(&["a-b"]).expect("valid");
        let a_only = RelPath::new(&["a"]).expect("valid");
        // '-' sorts before '/' as bytes, but the folder "a" sorts before "a-b" by component.
        assert!(a < a_dash);
        assert!(a_only < a);
        assert!(a_only.is_ancestor_of(&a));
        assert!(!a_only.is_ancestor_of(&a_dash));
        assert!(!a.is_ancestor_of(&a));
        assert_eq!(a.to_vec(), v(&["a", "b"]));
        assert_eq!(a.depth(), 2);
        assert_eq!(a.under(Path::new("/d")), Path::new("/d/a/b"));
        assert_eq!(a.join("c").expect("valid").as_str(), "a/b/c");
    }

    #[test]
    fn builder_matches_new() {
        let mut builder = RelPath::builder();
        for c in ["Fotos", "Día 1"] {
            builder.push(c).expect("valid");
        }
        assert_eq!(builder.so_far(), "Fotos/Día 1");
        assert_eq!(
            builder.finish().expect("valid"),
            RelPath::new(&["Fotos", "Día 1"]).expect("valid")
        );
        assert_eq!(RelPath::builder().finish(), Err(PathError::Empty));
        let mut builder = RelPath::builder();
        assert!(matches!(
            builder.push(".."),
            Err(PathError::DotComponent { .. })
        ));
    }
}
