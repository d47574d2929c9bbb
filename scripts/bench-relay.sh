#!/usr/bin/env bash
# Relay figures: a share fetched between two homes behind NAT routers, through the relay, over a
# hole-punched direct connection, and from a seeder on the public network; wall time, rate and
# time to the first byte. Prints a markdown table. Needs root, iproute2 and nftables; everything
# runs in network namespaces the benchmark creates and deletes.
#
# Usage: scripts/bench-relay.sh [--size-mib N]    (default 256)
set -euo pipefail
cd "$(dirname "$0")/.."
# The `dist` profile: what ships (fat LTO, one codegen unit), as in the transfer benchmark.
cargo build --quiet --profile dist -p meshdrop
# The harness only starts processes and reads their events: a debug build will do.
cargo build --quiet -p meshdrop-tests --bin bench_relay
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
MESHDROP_BIN="$target_dir/dist/meshdrop" exec "$target_dir/debug/bench_relay" "$@"
