#!/usr/bin/env bash
# Read and write system calls per echoed message, and the bytes each moves, counted
# from the kernel's syscall-exit tracepoints with `perf record` (the server runs at
# speed, unlike under strace). The server runs on 127.0.0.1, the load generator sends
# CONNS connections x SIZE bytes, one message in flight each, for SECS seconds.
#
# Usage: scripts/syscalls.sh NAME "SERVER COMMAND (the address is appended)" CONNS SIZE SECS
#   scripts/syscalls.sh ours "target/release/examples/echo --workers 1 --standalone --bind" 10 65536 3
#   scripts/syscalls.sh fastwebsockets "benches/peers/target/release/fastwebsockets --bind" 10 65536 3
# Needs perf (apt-get install -y linux-perf) and gawk, the load generator built
# (cd benches/loadgen && cargo build --release) and the server built.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 5 ] || { sed -n 2,12p "$0" >&2; exit 2; }
name=$1; cmd=$2; conns=$3; size=$4; secs=$5
load_bin=benches/loadgen/target/release/wsd-loadgen
port=$((9300 + RANDOM % 300))
data=$(mktemp)
trap 'rm -f "$data"' EXIT
# shellcheck disable=SC2086 # the command is split into its words on purpose
$cmd "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
events=""
for sc in read write readv writev recvfrom sendto recvmsg sendmsg epoll_wait; do
  events="$events,syscalls:sys_exit_$sc"
done
perf record -q -o "$data" -e "${events#,}" -p "$pid" >/dev/null 2>&1 &
rec=$!
sleep 0.5
out=$("$load_bin" --url "ws://127.0.0.1:$port/" -c "$conns" -s "$size" -d "$secs" --warmup 0 2>&1)
kill -INT "$rec"; wait "$rec" 2>/dev/null || true
kill -INT "$pid" 2>/dev/null; sleep 1; kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
msgs=$(sed -E 's/.*msgs=([0-9]+).*/\1/' <<<"$out" | tail -1)
perf script -i "$data" -F event,trace 2>/dev/null | gawk -v m="$msgs" -v name="$name" '
  { if (!match($0, /sys_exit_([a-z_]+)/, a)) next
    v = $NF; r = (v ~ /^0x/) ? strtonum(v) : v + 0; if (v ~ /^0xffffffff/) r = -1
    if (r > 0) { n[a[1]]++; b[a[1]] += r } else z[a[1]]++ }
  END { printf "%s: %d messages\n", name, m
        for (k in n) printf "  %-10s %6.3f calls/msg, %8.0f B/call; %6.3f calls/msg returning nothing\n", k, n[k] / m, b[k] / n[k], z[k] / m }'
