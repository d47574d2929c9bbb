//! Multi-node scenario tests for meshdrop and the harness they run on.
//!
//! - [`netns`]: a lab of network namespaces on a private bridge (one namespace per device), with rate
//!   limits, packet loss and partitions; nothing reaches the machine's real interfaces.
//! - [`process`]: `meshdrop` (and other JSON-line programs) as child processes, optionally inside a
//!   lab host, with their stdout events waited on with timeouts.

pub mod netns;
pub mod process;
