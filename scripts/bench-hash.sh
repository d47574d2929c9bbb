#!/usr/bin/env bash
# Hashing speed, side by side in one run: `meshdrop share` of one large random file vs `b3sum` of
# it (all cores, memory-mapped), then the re-share of the same, unchanged file (the hash cache:
# nothing is read again). The node runs inside a network namespace that has nothing but loopback:
# nothing may leave this machine. The share is timed from its start to its ticket (the first line
# it prints: the manifest is built, stored and served). The page cache is warm for every run.
# Prints a markdown table. Needs root.
#
# Usage: scripts/bench-hash.sh [--size-gib N]    (default 2)
# Installs b3sum (apt, or `cargo install b3sum` into /tmp/b3sum-install) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_GIB=2
[ "${1:-}" = "--size-gib" ] && SIZE_GIB="$2"

B3SUM="${B3SUM:-$(command -v b3sum || echo /tmp/b3sum-install/bin/b3sum)}"
if [ ! -x "$B3SUM" ]; then
  if apt-cache show b3sum >/dev/null 2>&1; then
    apt-get install -y -qq b3sum >/dev/null
    B3SUM="$(command -v b3sum)"
  else
    cargo install b3sum --locked --root /tmp/b3sum-install
    B3SUM=/tmp/b3sum-install/bin/b3sum
  fi
fi
# The `dist` profile: what ships (fat LTO, one codegen unit).
cargo build --quiet --profile dist -p meshdrop
MD="${CARGO_TARGET_DIR:-$PWD/target}/dist/meshdrop"

NS="mdhash$$"
WORK="$(mktemp -d /tmp/mdhash.XXXXXX)"
cleanup() {
  for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  ip netns delete "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
in_ns() { ip netns exec "$NS" "$@"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

echo "generating ${SIZE_GIB} GiB of random data…" >&2
BIG="$WORK/big.bin"
head -c "$((SIZE_GIB * 1024 * 1024 * 1024))" /dev/urandom > "$BIG"
# A file changed within the last seconds is hashed but not cached (a write in the same tick of
# the file system's clock would go unseen): date it a minute back, as any file shared a while
# after it was written.
touch -d '1 minute ago' "$BIG"
cat "$BIG" > /dev/null

# b3sum: all cores.
t0="$(now)"
"$B3SUM" --no-names "$BIG" > "$WORK/b3sum.out"
b3_s="$(secs "$t0" "$(now)")"

# share_run NAME: seconds from the start of `meshdrop share` to its ticket; then stops it.
share_run() {
  local out="$WORK/share-$1.out"
  local t0 t1
  t0="$(now)"
  in_ns "$MD" --data-dir "$WORK/data" --bind 127.0.0.1 --no-mdns share "$BIG" > "$out" 2>"$WORK/share-$1.err" &
  local sharer=$!
  while [ ! -s "$out" ]; do
    kill -0 "$sharer" 2>/dev/null || { echo "meshdrop share failed:" >&2; cat "$WORK/share-$1.err" >&2; exit 1; }
    sleep 0.02
  done
  t1="$(now)"
  for p in $(ip netns pids "$NS"); do kill -TERM "$p" 2>/dev/null || true; done
  wait "$sharer" 2>/dev/null || true
  secs "$t0" "$t1"
}

share_s="$(share_run first)"
reshare_s="$(share_run again)"
[ "$(head -1 "$WORK/share-first.out")" != "" ] || { echo "no ticket" >&2; exit 1; }

echo
echo "### ${SIZE_GIB} GiB random file, $(nproc) cores, warm page cache"
echo
echo "| run | wall s |"
echo "|---|---|"
echo "| b3sum $("$B3SUM" --version | awk '{ print $2 }') (all cores) | $b3_s |"
echo "| meshdrop share (dist profile), start to ticket | $share_s |"
echo "| meshdrop re-share, unchanged file (hash cache) | $reshare_s |"
echo
echo "share / b3sum time: $(awk -v a="$share_s" -v b="$b3_s" 'BEGIN { printf "%.2f", a / b }') (goal ≤ 1.3)"
