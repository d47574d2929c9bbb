#!/usr/bin/env bash
# Messaging benchmark (issue 5): 20 nodes in one process on 127.0.0.1 (mDNS off), connected in a
# ring, all in one room. Times a room message until every node has it and counts the envelopes
# sent per node per message; then splits the ring in two halves that keep chatting, heals it and
# times until every node has every message. Prints markdown tables. Needs no root: every node
# binds 127.0.0.1 only.
#
# Usage: scripts/bench-messaging.sh [--nodes N] [--messages N] [--runs N] [--per-side N] [--check]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release -p meshdrop-tests --bin bench_messaging
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
exec "$target_dir/release/bench_messaging" "$@"
