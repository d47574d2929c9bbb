#!/usr/bin/env bash
# Scale (issue 16), side by side in one run, every node inside a network namespace that has
# nothing but loopback (nothing may leave this machine):
#   size      one LARGE GiB file vs one SMALL GiB file, release and dist builds, and sendme on the
#             large one: receiver wall time and peak RSS, their ratios; CPU seconds per GiB sent
#             and received (what a phone's battery pays)
#   hash      `meshdrop share` of the large file vs `b3sum` of it (all cores), and the re-share
#   rolls     10,000 files of 100 KiB vs one file of the same total size: rate ratio
#   manifest  a 50 GB share of 20,000 files (sparse, so it fits any disk): manifest size, time to
#             hash it, time from `get` to the first verified chunk, the receiver's peak RSS until
#             then
# The page cache is dropped before every timed transfer. Prints markdown tables; every output is
# compared with its source. Needs root.
#
# Usage: scripts/bench-scale.sh [--small-gib N] [--large-gib N] [--only SECTION,...]
#   defaults: 1, 8, all sections. Installs b3sum (apt) and sendme 0.37 when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
SMALL_GIB=1
LARGE_GIB=8
ONLY=size,hash,rolls,manifest
while [ $# -gt 0 ]; do
  case "$1" in
    --small-gib) SMALL_GIB="$2"; shift 2 ;;
    --large-gib) LARGE_GIB="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "bench-scale.sh needs root (network namespaces, drop_caches)" >&2; exit 1; }
want() { [[ ",$ONLY," == *",$1,"* ]]; }

command -v b3sum >/dev/null || apt-get install -y -qq b3sum >/dev/null
SENDME="${SENDME:-$(command -v sendme || echo /tmp/sendme-install/bin/sendme)}"
if want size && [ ! -x "$SENDME" ]; then
  cargo install sendme --locked --root /tmp/sendme-install
  SENDME=/tmp/sendme-install/bin/sendme
fi
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --quiet --profile dist -p meshdrop
want size && cargo build --quiet --release -p meshdrop
DIST="$TARGET/dist/meshdrop"
RELEASE="$TARGET/release/meshdrop"

NS="mdscale$$"
WORK="$(mktemp -d /tmp/mdscale.XXXXXX)"
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
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
wall() { awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$1"; }
rss_mb() { awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$1"; }
cpu_s() { awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$1"; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# random FILE BYTES SEED: fast pseudo-random bytes (AES-CTR keystream), incompressible.
# (openssl ends on the pipe head closes: its status is not the result; the size is.)
random() {
  { openssl enc -aes-128-ctr -pass "pass:$3" -nosalt -pbkdf2 < /dev/zero 2>/dev/null || true; } | head -c "$2" > "$1"
  [ "$(stat -c %s "$1")" = "$2" ] || { echo "could not write $2 bytes to $1" >&2; exit 1; }
}
# stop_ns PID: SIGTERM to every process in the namespace but /usr/bin/time, then waits for PID.
stop_ns() {
  for p in $(ip netns pids "$NS"); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = time ] || kill -TERM "$p" 2>/dev/null || true
  done
  wait "$1" 2>/dev/null || true
}

# share_bg BIN DIR PATH...: starts `share` in the background (pid in SHARER), waits for its ticket
# (in TICKET).
share_bg() {
  local bin="$1" d="$2"; shift 2
  mkdir -p "$d"
  rm -f "$d/share.out"
  in_ns /usr/bin/time -v -o "$d/send.time" "$bin" --data-dir "$d/a" --bind 127.0.0.1 --no-mdns share "$@" > "$d/share.out" 2>/dev/null &
  SHARER=$!
  while [ ! -s "$d/share.out" ]; do sleep 0.1; done
  TICKET="$(head -1 "$d/share.out")"
}

# md_get BIN DIR SRC PATH...: share PATH, get it, compare with SRC (a file or a folder); prints
# "wall receiver_rss_mb sender_cpu_s receiver_cpu_s".
md_get() {
  local bin="$1" d="$2" src="$3"; shift 3
  share_bg "$bin" "$d" "$@"
  drop_caches
  in_ns /usr/bin/time -v -o "$d/get.time" "$bin" --data-dir "$d/b" --bind 127.0.0.1 --no-mdns get "$TICKET" --out "$d/out" > /dev/null 2>&1
  stop_ns "$SHARER"
  diff -rq "$src" "$d/out/$(basename "$src")" > /dev/null || { echo "meshdrop: bytes differ ($d)" >&2; exit 1; }
  echo "$(wall "$d/get.time") $(rss_mb "$d/get.time") $(cpu_s "$d/send.time") $(cpu_s "$d/get.time")"
  rm -rf "$d"
}

sendme_get() { # sendme_get FILE: prints "wall receiver_rss_mb"
  local d="$WORK/sendme" dir name; dir="$(dirname "$1")"; name="$(basename "$1")"
  mkdir -p "$d/out"
  ( cd "$dir" && in_ns /usr/bin/time -v -o "$d/send.time" "$SENDME" send --relay disabled --ticket-type addresses "$name" > "$d/send.out" 2>&1 ) &
  local sender=$! ticket=""
  while [ -z "$ticket" ]; do sleep 0.2; ticket="$(grep -o 'blob[a-z0-9]\{20,\}' "$d/send.out" | head -1 || true)"; done
  drop_caches
  ( cd "$d/out" && in_ns /usr/bin/time -v -o "$d/recv.time" "$SENDME" receive --relay disabled "$ticket" > /dev/null 2>&1 )
  stop_ns "$sender"
  cmp -s "$1" "$d/out/$name" || { echo "sendme: bytes differ" >&2; exit 1; }
  echo "$(wall "$d/recv.time") $(rss_mb "$d/recv.time")"
  rm -rf "$d"
}

GIB=$((1024 * 1024 * 1024))
if want size || want hash; then
  echo "generating ${SMALL_GIB} GiB and ${LARGE_GIB} GiB files…" >&2
  mkdir -p "$WORK/small" "$WORK/large"
  random "$WORK/small/video.mp4" "$((SMALL_GIB * GIB))" small
  random "$WORK/large/video.mp4" "$((LARGE_GIB * GIB))" large
  touch -d '1 minute ago' "$WORK/small/video.mp4" "$WORK/large/video.mp4"
fi

if want size; then
  echo "size: release…" >&2
  read -r rs_s rs_rss _ _ < <(md_get "$RELEASE" "$WORK/r1" "$WORK/small/video.mp4" "$WORK/small/video.mp4")
  read -r rl_s rl_rss _ _ < <(md_get "$RELEASE" "$WORK/r8" "$WORK/large/video.mp4" "$WORK/large/video.mp4")
  echo "size: dist…" >&2
  read -r ds_s ds_rss _ _ < <(md_get "$DIST" "$WORK/d1" "$WORK/small/video.mp4" "$WORK/small/video.mp4")
  read -r dl_s dl_rss dl_tx_cpu dl_rx_cpu < <(md_get "$DIST" "$WORK/d8" "$WORK/large/video.mp4" "$WORK/large/video.mp4")
  echo "size: sendme…" >&2
  read -r sm_s sm_rss < <(sendme_get "$WORK/large/video.mp4")
  echo
  echo "### One ${LARGE_GIB} GiB file vs one ${SMALL_GIB} GiB file (receiver; loopback namespace)"
  echo
  echo "| build | ${SMALL_GIB} GiB s | ${LARGE_GIB} GiB s | time ratio (goal ≤ $(awk -v l="$LARGE_GIB" -v s="$SMALL_GIB" 'BEGIN { print 1.1 * l / s }')) | ${SMALL_GIB} GiB peak RSS MB | ${LARGE_GIB} GiB peak RSS MB | RSS ratio (goal ≤ 1.15) |"
  echo "|---|---|---|---|---|---|---|"
  echo "| meshdrop release | $rs_s | $rl_s | $(ratio "$rl_s" "$rs_s") | $rs_rss | $rl_rss | $(ratio "$rl_rss" "$rs_rss") |"
  echo "| meshdrop dist | $ds_s | $dl_s | $(ratio "$dl_s" "$ds_s") | $ds_rss | $dl_rss | $(ratio "$dl_rss" "$ds_rss") |"
  echo "| sendme 0.37 | | $sm_s | | | $sm_rss | |"
  echo
  echo "dist receiver peak RSS / sendme's on ${LARGE_GIB} GiB: $(ratio "$dl_rss" "$sm_rss") (goal ≤ 1.0)"
  echo
  echo "What a phone pays (dist, ${LARGE_GIB} GiB): CPU $(ratio "$dl_tx_cpu" "$LARGE_GIB") s per GiB sent," \
    "$(ratio "$dl_rx_cpu" "$LARGE_GIB") s per GiB received (user + system, this machine's cores)," \
    "receiver peak RSS $dl_rss MB"
fi

if want hash; then
  echo "hash…" >&2
  BIG="$WORK/large/video.mp4"
  cat "$BIG" > /dev/null
  t0="$(now)"; b3sum --no-names "$BIG" > /dev/null; b3_s="$(secs "$t0" "$(now)")"
  t0="$(now)"; share_bg "$DIST" "$WORK/h" "$BIG"; first_s="$(secs "$t0" "$(now)")"; stop_ns "$SHARER"
  t0="$(now)"; share_bg "$DIST" "$WORK/h" "$BIG"; again_s="$(secs "$t0" "$(now)")"; stop_ns "$SHARER"
  rm -rf "$WORK/h"
  echo
  echo "### Hashing the ${LARGE_GIB} GiB file (page cache warm)"
  echo
  echo "| what | s | vs b3sum (goal ≤ 1.3) |"
  echo "|---|---|---|"
  echo "| b3sum (all cores) | $b3_s | 1.00 |"
  echo "| meshdrop share (dist), first time | $first_s | $(ratio "$first_s" "$b3_s") |"
  echo "| meshdrop share (dist), unchanged again | $again_s | $(ratio "$again_s" "$b3_s") |"
fi
rm -rf "$WORK/small" "$WORK/large"

if want rolls; then
  echo "rolls: 10,000 × 100 KiB…" >&2
  mkdir -p "$WORK/roll/Camera" "$WORK/one"
  random "$WORK/roll.bin" $((10000 * 102400)) roll
  split -a 5 -d -b 102400 "$WORK/roll.bin" "$WORK/roll/Camera/IMG_"
  mv "$WORK/roll.bin" "$WORK/one/clip.mp4"
  touch -d '1 minute ago' "$WORK/one/clip.mp4" "$WORK/roll/Camera"/*
  read -r roll_s _ _ _ < <(md_get "$DIST" "$WORK/mr" "$WORK/roll/Camera" "$WORK/roll/Camera")
  read -r one_s _ _ _ < <(md_get "$DIST" "$WORK/mo" "$WORK/one/clip.mp4" "$WORK/one/clip.mp4")
  mib=$(awk 'BEGIN { printf "%.1f", 10000 * 102400 / 1048576 }')
  echo
  echo "### A photo roll vs one video of the same size (dist)"
  echo
  echo "| content | wall s | MiB/s |"
  echo "|---|---|---|"
  echo "| 10,000 × 100 KiB | $roll_s | $(ratio "$mib" "$roll_s") |"
  echo "| 1 × $mib MiB | $one_s | $(ratio "$mib" "$one_s") |"
  echo
  echo "roll / video rate: $(ratio "$one_s" "$roll_s") (goal ≥ 0.8)"
  rm -rf "$WORK/roll" "$WORK/one"
fi

if want manifest; then
  echo "manifest: 20,000 sparse files, 50 GB…" >&2
  mkdir -p "$WORK/trip"
  # 20,000 files of 2.5 MB each (50 GB), holes on disk; a few bytes each so every file differs.
  python3 - "$WORK/trip" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(20):
    os.makedirs(f"{root}/day{d:02}", exist_ok=True)
    for i in range(1000):
        with open(f"{root}/day{d:02}/clip{i:04}.mp4", "wb") as f:
            f.write(f"{d}/{i}".encode())
            f.truncate(2_500_000)
        os.utime(f"{root}/day{d:02}/clip{i:04}.mp4", (0, 1_700_000_000))
PY
  d="$WORK/m"
  t0="$(now)"; share_bg "$DIST" "$d" "$WORK/trip"; hash_s="$(secs "$t0" "$(now)")"
  manifest_b="$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT max(length(manifest)) FROM manifests").fetchone()[0])' "$d/a/meshdrop.db")"
  # get --json with progress after every chunk: the first `transfer_progress` is the first
  # verified chunk on disk; the receiver is killed there (its peak RSS covers the planning).
  first_s="$(python3 - "$NS" "$DIST" "$d" "$TICKET" <<'PY'
import json, os, signal, subprocess, sys, time
ns, md, d, ticket = sys.argv[1:5]
t0 = time.monotonic()
p = subprocess.Popen(["ip", "netns", "exec", ns, "/usr/bin/time", "-v", "-o", f"{d}/get.time", md,
                      "--data-dir", f"{d}/b", "--bind", "127.0.0.1", "--no-mdns", "--json", "get",
                      ticket, "--out", f"{d}/out", "--progress-every-chunk"],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
for line in p.stdout:
    if json.loads(line).get("event") == "transfer_progress":
        print(f"{time.monotonic() - t0:.2f}")
        break
for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split():
    try:
        args = open(f"/proc/{pid}/cmdline").read().split("\0")
    except OSError:
        continue
    if args[0] == md and f"{d}/b" in args:
        os.kill(int(pid), signal.SIGKILL)
p.wait()
PY
)"
  plan_rss="$(rss_mb "$d/get.time")"
  stop_ns "$SHARER"
  echo
  echo "### A 50 GB share of 20,000 files (dist)"
  echo
  echo "| manifest | share (hash 50 GB) s | get → first chunk s | receiver peak RSS until then MB |"
  echo "|---|---|---|---|"
  echo "| $(ratio "$manifest_b" 1024) KiB | $hash_s | $first_s | $plan_rss |"
fi
