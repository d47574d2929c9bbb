#!/usr/bin/env bash
# Transfer throughput, side by side in one run: meshdrop vs sendme vs the machine's limits (a raw
# TCP copy with socat, a plain copy to disk with fsync), inside a network namespace that has
# nothing but loopback (sendme contacts public DNS and pkarr servers even with --relay disabled:
# nothing may leave this machine). Also: many small files vs one large file, and the bytes
# fetched twice after a SIGKILL at 50 %. Prints markdown tables. Needs root.
#
# Usage: scripts/bench-transfer.sh [--size-mib N]    (default 1024)
# Installs socat (apt) and sendme 0.37 (`cargo install sendme --locked`) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=1024
[ "${1:-}" = "--size-mib" ] && SIZE_MIB="$2"

command -v socat >/dev/null || { apt-get update -qq && apt-get install -y -qq socat >/dev/null; }
SENDME="${SENDME:-$(command -v sendme || echo /tmp/sendme-install/bin/sendme)}"
[ -x "$SENDME" ] || { cargo install sendme --locked --root /tmp/sendme-install; SENDME=/tmp/sendme-install/bin/sendme; }
# The `dist` profile: what ships (fat LTO, one codegen unit).
cargo build --quiet --profile dist -p meshdrop
MD="${CARGO_TARGET_DIR:-$PWD/target}/dist/meshdrop"

NS="mdbench$$"
WORK="$(mktemp -d /tmp/mdbench.XXXXXX)"
cleanup() {
  for pid in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
  ip netns delete "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
in_ns() { ip netns exec "$NS" "$@"; }
# time_v LOG CMD...: runs CMD under /usr/bin/time -v, wall seconds and peak RSS land in LOG.
time_v() { local log="$1"; shift; /usr/bin/time -v -o "$log" "$@"; }
wall() { awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$1"; }
rss_mb() { awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$1"; }
rate() { awk -v mib="$1" -v s="$2" 'BEGIN { printf "%.0f", mib / s }'; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
# stop_ns PID: SIGTERM to every process in the namespace (the seeder; /usr/bin/time ignores SIGINT),
# then wait for the background job PID.
stop_ns() {
  for p in $(ip netns pids "$NS"); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = time ] || kill -TERM "$p" 2>/dev/null || true
  done
  wait "$1" 2>/dev/null || true
}

echo "generating ${SIZE_MIB} MiB of random data…" >&2
mkdir -p "$WORK/src"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > "$WORK/src/big.bin"
BIG="$WORK/src/big.bin"

# meshdrop: share, then get (receiver wall time, both peak RSS).
meshdrop_run() { # meshdrop_run NAME PATH... ; prints "wall sender_rss receiver_rss"
  local name="$1"; shift
  local d="$WORK/md-$name"; mkdir -p "$d/out"
  in_ns /usr/bin/time -v -o "$d/send.time" "$MD" --data-dir "$d/a" --bind 127.0.0.1 --no-mdns share "$@" > "$d/share.out" 2>/dev/null &
  local sharer=$!
  while [ ! -s "$d/share.out" ]; do sleep 0.1; done
  local ticket; ticket="$(head -1 "$d/share.out")"
  drop_caches
  in_ns /usr/bin/time -v -o "$d/get.time" "$MD" --data-dir "$d/b" --bind 127.0.0.1 --no-mdns get "$ticket" --out "$d/out" > /dev/null 2>&1
  stop_ns "$sharer"
  cmp -s "$BIG" "$d/out/big.bin" 2>/dev/null || [ "$name" != big ] || { echo "meshdrop: bytes differ" >&2; exit 1; }
  echo "$(wall "$d/get.time") $(rss_mb "$d/send.time") $(rss_mb "$d/get.time")"
}

# sendme: send prints a ticket; receive in an empty folder.
sendme_run() {
  local d="$WORK/sendme"; mkdir -p "$d/out"
  ( cd "$WORK/src" && in_ns /usr/bin/time -v -o "$d/send.time" "$SENDME" send --relay disabled --ticket-type addresses big.bin > "$d/send.out" 2>&1 ) &
  local sender=$!
  local ticket=""
  while [ -z "$ticket" ]; do sleep 0.2; ticket="$(grep -o 'blob[a-z0-9]\{20,\}' "$d/send.out" | head -1 || true)"; done
  drop_caches
  ( cd "$d/out" && in_ns /usr/bin/time -v -o "$d/recv.time" "$SENDME" receive --relay disabled "$ticket" > /dev/null 2>&1 )
  stop_ns "$sender"
  cmp -s "$BIG" "$d/out/big.bin" || { echo "sendme: bytes differ" >&2; exit 1; }
  echo "$(wall "$d/recv.time") $(rss_mb "$d/send.time") $(rss_mb "$d/recv.time")"
}

tcp_run() {
  local d="$WORK/tcp"; mkdir -p "$d"
  in_ns socat -u TCP-LISTEN:40404,reuseaddr OPEN:"$d/big.bin",creat,trunc &
  local listener=$!
  sleep 0.3
  drop_caches
  in_ns /usr/bin/time -v -o "$d/send.time" socat -u FILE:"$BIG" TCP:127.0.0.1:40404
  wait "$listener"
  wall "$d/send.time"
}

dd_run() {
  drop_caches
  /usr/bin/time -v -o "$WORK/dd.time" dd if="$BIG" of="$WORK/dd.bin" bs=4M conv=fsync status=none
  wall "$WORK/dd.time"
}

read -r md_s md_tx md_rx < <(meshdrop_run big "$BIG")
read -r sm_s sm_tx sm_rx < <(sendme_run)
tcp_s="$(tcp_run)"
dd_s="$(dd_run)"

echo
echo "### ${SIZE_MIB} MiB random file over loopback (namespace with loopback only), receiver side"
echo
echo "| tool | wall s | MiB/s | sender peak RSS MB | receiver peak RSS MB |"
echo "|---|---|---|---|---|"
echo "| meshdrop (dist profile) | $md_s | $(rate "$SIZE_MIB" "$md_s") | $md_tx | $md_rx |"
echo "| sendme 0.37 | $sm_s | $(rate "$SIZE_MIB" "$sm_s") | $sm_tx | $sm_rx |"
echo "| raw TCP (socat) | $tcp_s | $(rate "$SIZE_MIB" "$tcp_s") | | |"
echo "| dd conv=fsync | $dd_s | $(rate "$SIZE_MIB" "$dd_s") | | |"
echo
echo "meshdrop / sendme time: $(awk -v a="$md_s" -v b="$sm_s" 'BEGIN { printf "%.2f", a / b }') (goal ≤ 0.6)"

# Many small files vs one large one.
mkdir -p "$WORK/small/photos" "$WORK/large"
for i in $(seq 1 2000); do head -c 65536 /dev/urandom > "$WORK/small/photos/IMG_$i.jpg"; done
head -c $((128 * 1024 * 1024)) /dev/urandom > "$WORK/large/clip.bin"
read -r small_s _ _ < <(meshdrop_run small "$WORK/small/photos")
read -r large_s _ _ < <(meshdrop_run large "$WORK/large/clip.bin")
echo
echo "### 2,000 files of 64 KiB vs one 128 MiB file (meshdrop)"
echo
echo "| content | wall s | MiB/s |"
echo "|---|---|---|"
echo "| 2,000 × 64 KiB | $small_s | $(rate 125 "$small_s") |"
echo "| 1 × 128 MiB | $large_s | $(rate 128 "$large_s") |"
echo
echo "small / large rate: $(awk -v s="$small_s" -v l="$large_s" 'BEGIN { printf "%.2f", (125 / s) / (128 / l) }') (goal ≥ 0.5)"

# SIGKILL at 50 %, restart: bytes fetched twice. Progress after every chunk (`--progress-every-chunk`),
# so the last line the killed receiver printed is what it had received.
kill_run() {
  local d="$WORK/kill"; mkdir -p "$d/out"
  in_ns "$MD" --data-dir "$d/a" --bind 127.0.0.1 --no-mdns share "$BIG" > "$d/share.out" 2>/dev/null &
  local sharer=$!
  while [ ! -s "$d/share.out" ]; do sleep 0.1; done
  python3 - "$NS" "$MD" "$d" "$(head -1 "$d/share.out")" <<'PY'
import json, os, signal, subprocess, sys
ns, md, d, ticket = sys.argv[1:5]
args = ["ip", "netns", "exec", ns, md, "--data-dir", f"{d}/b", "--bind", "127.0.0.1", "--no-mdns",
        "--json", "get", ticket, "--out", f"{d}/out", "--progress-every-chunk"]
def run(kill_at_half):
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    last = finished = None
    for line in p.stdout:
        v = json.loads(line)
        if v.get("event") == "transfer_progress":
            last = v
            if kill_at_half and v["done"] * 2 >= v["total"] and p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
        elif v.get("event") == "transfer_finished":
            finished = v
    p.wait()
    return last, finished
last, _ = run(True)
total, r1 = last["total"], last["received"]
_, done = run(False)
twice = max(0, r1 + done["fetched"] - total)
print(f"{last['done'] * 100 / total:.0f} {r1} {done['resumed']} {done['fetched']} {twice}")
PY
  stop_ns "$sharer"
  cmp -s "$BIG" "$d/out/big.bin" || echo "meshdrop: the resumed file differs" >&2
}
kill_run > "$WORK/kill.txt"
read -r kill_pct kill_r1 kill_resumed kill_fetched kill_twice < "$WORK/kill.txt"
echo
echo "### Receiver killed with SIGKILL at 50 % of the ${SIZE_MIB} MiB file, then restarted"
echo
echo "| killed at | received before the kill | resumed from disk | fetched after restart | fetched twice |"
echo "|---|---|---|---|---|"
echo "| ${kill_pct} % | $kill_r1 B | $kill_resumed B | $kill_fetched B | $kill_twice B ($(awk -v b="$kill_twice" 'BEGIN { printf "%.2f", b / 1048576 }') MiB; goal ≤ 4 MiB) |"
