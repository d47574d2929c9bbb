//! How a command reaches a node. While `meshdrop run` owns a data dir, other `meshdrop` commands
//! on the same data dir ask it over `<data dir>/control.sock` (mode 0600; only the data dir's
//! owner may connect): [`protocol`] says what travels, [`server`] answers, [`client`] asks. When
//! no node runs, [`backend`] starts one for the command (or opens the data dir alone), and
//! [`ops`] (with [`contact_ops`]) is what a node does for each request either way; [`running`]
//! follows a request.

pub mod backend;
pub mod client;
pub mod contact_ops;
pub mod ops;
pub mod protocol;
pub mod running;
pub mod server;

use std::path::{Path, PathBuf};

pub use backend::{Backend, Call};
pub use protocol::{Request, Response, Step, Update};

/// The control socket of the node running on `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}
