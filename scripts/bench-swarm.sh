#!/usr/bin/env bash
# Swarming (issues 4, 16): one seeder, then one leecher alone, then four (and eight, with
# `--leechers 4,8`) leechers at once, all fetching the same random file. Every device is its own network namespace on a private bridge (which lives
# in a namespace of its own: nothing touches the root namespace's interfaces, and mDNS multicast
# stays on the bridge), its uplink capped at 100 Mbit/s with `tc ... tbf` as on a Wi-Fi. Each
# leecher's ticket names only the seeder; leechers run with mDNS on and `--seed`, so they can find
# and serve each other. Figure: time for all N / time for one (unicast gives N; goals: four
# ≤ 1.15, eight ≤ 1.2; the limit is about 1.0, the seeder sending each chunk once).
#
# Prints markdown tables (per leecher: wall time, rate, bytes from the seeder vs from other
# leechers, from its `transfer_finished` event) and draws docs/swarm-chart.png: each leecher's
# bytes over the largest run (tests/src/bin/swarm_chart.rs, SVG turned into PNG with
# rsvg-convert). Every output file is compared with the source (`cmp`).
#
# Needs root and iproute2; installs librsvg2-bin (apt) when rsvg-convert is missing. Everything it
# starts runs inside namespaces it creates; all of them are deleted on exit, Ctrl-C or failure.
#
# Usage: scripts/bench-swarm.sh [--size-mib N] [--rate R] [--leechers N,M…] [--chart PATH.png]
#   --size-mib N   size of the shared file (default 256; 32 or 64 for a quick try)
#   --rate R       every device's uplink cap, as tc writes it (default 100mbit)
#   --leechers L   how many leechers the swarm runs have, comma-separated (default 4)
#   --chart PATH   where the PNG goes (default docs/swarm-chart.png)
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=256
RATE=100mbit
CHART=docs/swarm-chart.png
COUNTS=4
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mib) SIZE_MIB="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --leechers) COUNTS="$2"; shift 2 ;;
    --chart) CHART="$2"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$SIZE_MIB" =~ ^[1-9][0-9]*$ ]] || { echo "--size-mib wants a positive integer" >&2; exit 2; }
[[ "$COUNTS" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || { echo "--leechers wants counts like 4,8" >&2; exit 2; }
IFS=, read -r -a RUNS <<< "$COUNTS"
LEECHERS=0
for n in "${RUNS[@]}"; do [ "$n" -gt "$LEECHERS" ] && LEECHERS="$n"; done
[ "$(id -u)" = 0 ] || { echo "bench-swarm.sh needs root (network namespaces, tc)" >&2; exit 1; }
for tool in ip tc python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install -y iproute2 python3)" >&2; exit 1; }
done
command -v rsvg-convert >/dev/null || {
  echo "installing librsvg2-bin (rsvg-convert)…" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq librsvg2-bin >/dev/null
}

# One optimised build of the CLI (the `dist` profile when the workspace has one), and the chart.
PROFILE=release
grep -q '^\[profile\.dist\]' Cargo.toml && PROFILE=dist
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --quiet --profile "$PROFILE" -p meshdrop
cargo build --quiet --release -p meshdrop-tests --bin swarm_chart
MD="$TARGET/$PROFILE/meshdrop"
CHART_BIN="$TARGET/release/swarm_chart"

# Namespaces: mdswarm-<pid>-{sw,seed,l1..lN}; device i gets 10.77.0.(i+1)/24 on eth0.
P="mdswarm-$$"
SUBNET=10.77.0
RATE_TEXT="$(echo "$RATE" | sed 's/^\([0-9.]*\)mbit$/\1 Mbit\/s/')"
DEVICES=(seed)
for i in $(seq 1 "$LEECHERS"); do DEVICES+=("l$i"); done
WORK="$(mktemp -d /tmp/mdswarm.XXXXXX)"
CREATED=()

# SIGKILLs everything in namespace $1 and waits (at most 5 s) until it is empty.
kill_ns() {
  local tries=0 pids
  while pids="$(ip netns pids "$1" 2>/dev/null)" && [ -n "$pids" ]; do
    # shellcheck disable=SC2086 # one pid per word
    kill -9 $pids 2>/dev/null || true
    tries=$((tries + 1))
    [ "$tries" -lt 250 ] || { echo "processes $pids in $1 survive SIGKILL" >&2; return 0; }
    sleep 0.02
  done
}
cleanup() {
  local status=$? ns
  trap - EXIT INT TERM
  for ns in "${CREATED[@]}"; do kill_ns "$ns"; done
  wait 2>/dev/null || true # the timestamping readers end when their node is gone
  for ns in "${CREATED[@]}"; do ip netns delete "$ns" 2>/dev/null || echo "cannot delete namespace $ns" >&2; done
  # A failure (not Ctrl-C or SIGTERM): show what the nodes said last.
  if [ "$status" -ne 0 ] && [ "$status" -lt 128 ] && [ -d "$WORK" ]; then
    echo "failed (exit $status); last lines of the nodes' logs:" >&2
    for f in "$WORK"/run*/*.err "$WORK"/run*/*.log; do
      [ -s "$f" ] && { echo "--- $f" >&2; tail -n 3 "$f" | cut -c 1-300 >&2; }
    done
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Namespaces left by earlier runs that were killed with SIGKILL (their creating pid is gone).
for ns in $(ip netns list | awk '{ print $1 }' | grep '^mdswarm-[0-9]*-' || true); do
  pid="${ns#mdswarm-}"; pid="${pid%%-*}"
  [ -d "/proc/$pid" ] || { echo "removing stale namespace $ns" >&2; kill_ns "$ns"; ip netns delete "$ns" || true; }
done

# The lab, as tests/src/netns.rs builds it: the veths are created inside their namespaces, the
# bridge floods multicast (no snooping) like an access point, and every device's eth0 gets the
# same token bucket as `Lab::set_rate`.
ip netns add "$P-sw"; CREATED+=("$P-sw")
ip -n "$P-sw" link set lo up
ip -n "$P-sw" link add br0 type bridge mcast_snooping 0
ip -n "$P-sw" link set br0 up
for i in "${!DEVICES[@]}"; do
  ns="$P-${DEVICES[$i]}"
  ip netns add "$ns"; CREATED+=("$ns")
  ip netns exec "$ns" sh -c 'echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad; echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad'
  ip -n "$ns" link add eth0 type veth peer name "p$i" netns "$P-sw"
  ip -n "$P-sw" link set "p$i" master br0
  ip -n "$P-sw" link set "p$i" up
  ip -n "$ns" link set lo up
  ip -n "$ns" link set dev eth0 multicast on
  ip -n "$ns" addr add "$SUBNET.$((i + 1))/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add 224.0.0.0/4 dev eth0
  tc -n "$ns" qdisc add dev eth0 root tbf rate "$RATE" burst 32kbit latency 400ms
done
addr_of() { # addr_of DEVICE
  local i
  for i in "${!DEVICES[@]}"; do [ "${DEVICES[$i]}" = "$1" ] && { echo "$SUBNET.$((i + 1))"; return; }; done
  return 1
}

echo "generating ${SIZE_MIB} MiB of random data…" >&2
mkdir -p "$WORK/src"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > "$WORK/src/big.bin"
SRC="$WORK/src/big.bin"

# Centiseconds since boot (CLOCK_BOOTTIME via /proc/uptime: monotonic, no fork).
now_cs() { local up _; read -r up _ < /proc/uptime; echo "${up/./}"; }
# stamp T0_CS: prefixes every line of stdin with the seconds since T0_CS and a tab.
stamp() {
  local t0="$1" line up _ cs
  while IFS= read -r line; do
    read -r up _ < /proc/uptime
    cs=$((10#${up/./} - t0))
    printf '%d.%02d\t%s\n' $((cs / 100)) $((cs % 100)) "$line"
  done
}
# on DEVICE CMD...: runs CMD in the device's namespace.
on() { local dev="$1"; shift; ip netns exec "$P-$dev" "$@"; }

SEEDER_PEER=""
# start_seeder DIR: shares the file from the seeder; sets TICKET and SEEDER_PEER.
start_seeder() {
  local d="$1"
  # Asked first: the identity is created here, and `id` cannot open a data dir a node holds.
  SEEDER_PEER="$(on seed "$MD" --data-dir "$d/seed" --json id | python3 -c 'import json, sys; print(json.load(sys.stdin)["peer"])')"
  on seed "$MD" --data-dir "$d/seed" --bind "$(addr_of seed)" share "$SRC" > "$d/seed.out" 2> "$d/seed.err" &
  local waited=0
  until [ -s "$d/seed.out" ]; do
    sleep 0.1; waited=$((waited + 1))
    [ "$waited" -lt 600 ] || { echo "the seeder printed no ticket in 60 s" >&2; exit 1; }
  done
  TICKET="$(head -1 "$d/seed.out")"
}

# run N: a fresh seeder and N fresh leechers started at once; waits until all N finished, checks
# their files, stops every node. Logs in $WORK/runN/lI.log (SECONDS<TAB>JSON), start at 0.
run() {
  local n="$1" d="$WORK/run$1" i t0 deadline
  mkdir -p "$d"
  start_seeder "$d"
  t0="$(now_cs)"
  for i in $(seq 1 "$n"); do
    mkdir -p "$d/l$i.out"
    on "l$i" "$MD" --data-dir "$d/l$i" --bind "$(addr_of "l$i")" --json get "$TICKET" --out "$d/l$i.out" --seed \
      2> "$d/l$i.err" | stamp "$t0" > "$d/l$i.log" &
  done
  # At 100 Mbit/s a unicast copy to N leechers takes N * size / 12 MiB/s: allow three times that.
  deadline=$(($(now_cs) + 100 * (60 + 3 * n * SIZE_MIB / 12)))
  for i in $(seq 1 "$n"); do
    until grep -q '"event":"transfer_finished"' "$d/l$i.log"; do
      if grep -q '"event":"transfer_failed"' "$d/l$i.log" || [ -z "$(ip netns pids "$P-l$i")" ]; then
        echo "leecher l$i stopped without finishing" >&2; exit 1
      fi
      [ "$(now_cs)" -lt "$deadline" ] || { echo "leecher l$i did not finish in time" >&2; exit 1; }
      sleep 0.1
    done
  done
  for ns in "${CREATED[@]}"; do kill_ns "$ns"; done
  wait
  for i in $(seq 1 "$n"); do
    cmp "$SRC" "$d/l$i.out/big.bin" || { echo "leecher l$i: the file differs from the source" >&2; exit 1; }
  done
  echo "$SEEDER_PEER" > "$d/seeder.peer"
}

# summary LOG SEEDER_PEER: "wall_s from_seeder_bytes from_others_bytes" from a leecher's log
# (wall = the time of its transfer_finished line; bytes from that event's per-provider counts).
summary() {
  python3 - "$1" "$2" <<'PY'
import json, sys
log, seeder = sys.argv[1:3]
for line in open(log):
    t, _, text = line.rstrip("\n").partition("\t")
    try:
        v = json.loads(text)
    except ValueError:
        continue
    if v.get("event") == "transfer_finished":
        own = sum(p["bytes"] for p in v["peers"] if p["peer"] == seeder)
        others = sum(p["bytes"] for p in v["peers"] if p["peer"] != seeder)
        print(f"{float(t):.2f} {own} {others}")
        break
PY
}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
row() { # row LABEL LOG SEEDER: one table row
  local wall own others
  read -r wall own others < <(summary "$2" "$3")
  echo "| $1 | $wall | $(awk -v m="$SIZE_MIB" -v s="$wall" 'BEGIN { printf "%.1f", m / s }') | $(mib "$own") | $(mib "$others") |"
}

echo "run 1: one leecher alone…" >&2
run 1
for n in "${RUNS[@]}"; do
  echo "run: $n leechers at once…" >&2
  run "$n"
done

one_s="$(summary "$WORK/run1/l1.log" "$(cat "$WORK/run1/seeder.peer")" | cut -d' ' -f1)"
# slowest N: the wall time of the last of the N leechers to finish.
slowest() {
  local all=0 i s
  for i in $(seq 1 "$1"); do
    s="$(summary "$WORK/run$1/l$i.log" "$(cat "$WORK/run$1/seeder.peer")" | cut -d' ' -f1)"
    all="$(awk -v a="$all" -v b="$s" 'BEGIN { print (b > a) ? b : a }')"
  done
  echo "$all"
}

echo
echo "### ${SIZE_MIB} MiB random file, one seeder, every uplink capped at $RATE_TEXT (tbf), leechers' tickets name only the seeder"
echo
echo "Wall time from starting the leechers to each one's \`transfer_finished\`; bytes as that event counts them."
echo
echo "| leecher | wall s | MiB/s | MiB from the seeder | MiB from other leechers |"
echo "|---|---|---|---|---|"
row "alone" "$WORK/run1/l1.log" "$(cat "$WORK/run1/seeder.peer")"
for n in "${RUNS[@]}"; do
  for i in $(seq 1 "$n"); do
    row "$i of $n" "$WORK/run$n/l$i.log" "$(cat "$WORK/run$n/seeder.peer")"
  done
done
echo
for n in "${RUNS[@]}"; do
  all_s="$(slowest "$n")"
  ratio="$(awk -v a="$all_s" -v o="$one_s" 'BEGIN { printf "%.2f", a / o }')"
  goal=1.2
  [ "$n" -le 4 ] && goal=1.15
  met="$(awk -v r="$ratio" -v g="$goal" 'BEGIN { print (r <= g) ? "met" : "not met" }')"
  echo "all $n / one: $all_s s / $one_s s = **$ratio** (unicast would give $n.0; goal ≤ $goal: $met)"
done

# The chart of the largest run.
mkdir -p "$(dirname "$CHART")"
logs=()
for i in $(seq 1 "$LEECHERS"); do logs+=("leecher $i=$WORK/run$LEECHERS/l$i.log"); done
rate_mbit="$(echo "$RATE" | sed -n 's/^\([0-9.]*\)mbit$/\1/p')"
"$CHART_BIN" --seeder "$(cat "$WORK/run$LEECHERS/seeder.peer")" --out "$WORK/chart.svg" \
  --title "meshdrop: $LEECHERS leechers, ${SIZE_MIB} MiB, every uplink capped at $RATE_TEXT" \
  ${rate_mbit:+--cap-mbit "$rate_mbit"} "${logs[@]}"
rsvg-convert --background-color white -o "$CHART" "$WORK/chart.svg"
echo
echo "chart: $CHART" >&2
