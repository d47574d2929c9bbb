#!/usr/bin/env bash
# Discovery latency across network namespaces: node A in one namespace, a fresh node B started
# 10 times in another; time from spawning B to `peer_connected` on both sides, with
# python-zeroconf's time to resolve A's service as a reference. Prints a markdown table.
#
# Needs root, iproute2, and python3 with `zeroconf` (for the reference row; pass --no-zeroconf
# to skip it). Everything runs inside network namespaces the benchmark creates and deletes.
#
# Usage: scripts/bench-discovery.sh [--runs N] [--goal-ms MS] [--no-zeroconf] [--check]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p meshdrop
cargo build --quiet -p meshdrop-tests --bin bench_discovery
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
MESHDROP_BIN="${MESHDROP_BIN:-$target_dir/debug/meshdrop}" exec "$target_dir/debug/bench_discovery" "$@"
