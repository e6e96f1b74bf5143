#!/usr/bin/env bash
# Load the echo example (one worker thread, pinned to CPU 0) with the load generator
# (benches/loadgen, pinned to CPU 1) and report, for each scenario, messages per
# second, messages per server CPU-second (utime + stime from /proc/PID/stat) and the
# round-trip p50/p99; then the server's memory per idle connection: RSS delta with
# IDLE connections open (default 10,000) divided by IDLE.
#
# Usage: scripts/echo-load.sh [SECONDS per scenario, default 5]
# Environment: IDLE (idle connections, 0 skips), PORT (default 9201).
# Every loop is bounded: each load run lasts SECONDS (+1 s warm-up), the idle run
# holds for 5 s, and the server is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-5}"
idle="${IDLE:-10000}"
port="${PORT:-9201}"

cargo build --release --example echo >&2
(cd benches/loadgen && cargo build --release) >&2
echo_bin=target/release/examples/echo
load_bin=benches/loadgen/target/release/wsd-loadgen

# `taskset -c N` when there is one; `exec` keeps the PID of the program itself.
if command -v taskset >/dev/null; then pin0=(taskset -c 0); pin1=(taskset -c 1); else pin0=(); pin1=(); fi
ulimit -n "$(( idle * 2 + 1024 ))" 2>/dev/null || ulimit -n "$(ulimit -Hn)"

"${pin0[@]}" "$echo_bin" --bind "127.0.0.1:$port" --workers 1 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$server/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$server/status"; }

echo "| scenario | msgs/s | msgs per server CPU-s | p50 | p99 |"
echo "|---|---:|---:|---:|---:|"
run() { # connections size label
  local before after out rate cpus
  before=$(cpu)
  out=$("${pin1[@]}" "$load_bin" --url "ws://127.0.0.1:$port/" -c "$1" -s "$2" -d "$secs" --warmup 1)
  after=$(cpu)
  rate=$(sed -E 's/.*msgs_per_sec=([0-9]+).*/\1/' <<<"$out")
  local msgs; msgs=$(sed -E 's/.*msgs=([0-9]+).*/\1/' <<<"$out")
  cpus=$(awk -v a="$before" -v b="$after" -v t="$ticks" 'BEGIN {print (b - a) / t}')
  # The CPU time covers the warm-up second too: scale the messages by the same span.
  local per_cpu
  per_cpu=$(awk -v m="$msgs" -v s="$secs" -v c="$cpus" 'BEGIN { if (c > 0) printf "%.0f", m * (s + 1) / s / c; else print "n/a" }')
  local p50 p99
  p50=$(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"$out")
  p99=$(sed -E 's/.*p99_us=([0-9]+).*/\1/' <<<"$out")
  echo "| $3 | $rate | $per_cpu | ${p50} µs | ${p99} µs |"
}
run 100 20 "100 x 20 B"
run 100 1024 "100 x 1 KiB"

if [ "$idle" -gt 0 ]; then
  base=$(rss_kib)
  log=$(mktemp)
  "${pin1[@]}" "$load_bin" --url "ws://127.0.0.1:$port/" --idle "$idle" --hold 5 >"$log" &
  load=$!
  # Wait (at most 120 s) for "open N (T s)": every handshake done.
  for _ in $(seq 1200); do
    grep -q '^open' "$log" && break
    kill -0 "$load" 2>/dev/null || break
    sleep 0.1
  done
  line=$(grep '^open' "$log" || echo "not all open")
  sleep 1
  held=$(rss_kib)
  wait "$load" || { cat "$log" >&2; exit 1; }
  rm -f "$log"
  awk -v b="$base" -v h="$held" -v n="$idle" -v l="$line" 'BEGIN {
    printf "\nidle: %s; server RSS %d KiB -> %d KiB: %.2f KiB per connection\n", l, b, h, (h - b) / n }'
fi
