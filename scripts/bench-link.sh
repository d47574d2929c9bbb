#!/usr/bin/env bash
# Link throughput vs TCP, side by side in one run: one seeding node shares a file; a receiver in
# the seeder's namespace fetches it over TCP on loopback, a receiver in a second namespace that
# has no network path to the seeder at all fetches it over a link made of a Unix socket
# (`--link-listen` / `--link-dial`), alternately, ROUNDS times. Both namespaces have nothing but
# loopback: nothing leaves this machine. Prints a markdown table. Needs root.
#
# Usage: scripts/bench-link.sh [--size-mib N] [--rounds N]    (defaults 512, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=512
ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mib) SIZE_MIB="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    *) echo "usage: $0 [--size-mib N] [--rounds N]" >&2; exit 2 ;;
  esac
done
# The `dist` profile: what ships (fat LTO, one codegen unit).
cargo build --quiet --profile dist -p meshdrop
MD="${CARGO_TARGET_DIR:-$PWD/target}/dist/meshdrop"

NS_A="mdlinkA$$"
NS_B="mdlinkB$$"
WORK="$(mktemp -d /tmp/mdlink.XXXXXX)"
cleanup() {
  for ns in "$NS_A" "$NS_B"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns delete "$ns" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
for ns in "$NS_A" "$NS_B"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
wall() { awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$1"; }
rate() { awk -v mib="$1" -v s="$2" 'BEGIN { printf "%.0f", mib / s }'; }

echo "generating ${SIZE_MIB} MiB of random data…" >&2
mkdir -p "$WORK/src"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > "$WORK/src/big.bin"
SOCK="$WORK/link.sock"

ip netns exec "$NS_A" "$MD" --data-dir "$WORK/seeder" --bind 127.0.0.1 --no-mdns \
  --link-listen "unix:$SOCK" share "$WORK/src/big.bin" > "$WORK/share.out" 2>"$WORK/share.err" &
SEEDER=$!
while [ ! -s "$WORK/share.out" ]; do
  kill -0 "$SEEDER" 2>/dev/null || { cat "$WORK/share.err" >&2; exit 1; }
  sleep 0.1
done
TICKET="$(head -1 "$WORK/share.out")"

# fetch NAME NS EXTRA...: one download into a fresh data dir; prints its wall seconds.
fetch() {
  local name="$1" ns="$2"; shift 2
  local d="$WORK/$name"; rm -rf "$d"; mkdir -p "$d/out"
  ip netns exec "$ns" /usr/bin/time -v -o "$d/get.time" "$MD" --data-dir "$d/data" \
    --bind 127.0.0.1 --no-mdns "$@" get "$TICKET" --out "$d/out" > /dev/null 2>"$d/get.err" \
    || { cat "$d/get.err" >&2; exit 1; }
  cmp -s "$WORK/src/big.bin" "$d/out/big.bin" || { echo "$name: bytes differ" >&2; exit 1; }
  wall "$d/get.time"
}

echo "| round | TCP loopback (MiB/s) | link over a Unix socket (MiB/s) | link / TCP |"
echo "|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
  tcp=$(fetch "tcp$round" "$NS_A")
  link=$(fetch "link$round" "$NS_B" --link-dial "unix:$SOCK")
  tcp_rate=$(rate "$SIZE_MIB" "$tcp")
  link_rate=$(rate "$SIZE_MIB" "$link")
  ratio=$(awk -v l="$link_rate" -v t="$tcp_rate" 'BEGIN { printf "%.0f %%", 100 * l / t }')
  echo "| $round | $tcp_rate | $link_rate | $ratio |"
done
kill -TERM "$SEEDER" 2>/dev/null || true
wait "$SEEDER" 2>/dev/null || true
echo
echo "${SIZE_MIB} MiB file, one seeder, a fresh receiver each time; both verified byte for byte."
