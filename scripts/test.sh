#!/usr/bin/env bash
# Every test of the project, as CI runs them: formatting, lints, then all Rust tests (unit tests,
# multi-node scenarios in one process and in network namespaces; the latter need root).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --no-fail-fast
