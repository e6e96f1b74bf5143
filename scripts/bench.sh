#!/usr/bin/env bash
# Side-by-side echo benchmark: ours (examples/echo.rs through the actix-web route,
# and `--standalone`: ws::Server::listen without actix-web)
# against actix-web-actors, actix-ws, tokio-tungstenite, fastwebsockets and a raw TCP
# echo (benches/peers), with the load generator of benches/loadgen.
#
# Each scenario runs every server in turn (A B C ... A B C ...), ROUNDS rounds, and
# reports the median; the server is pinned to CPU 0 (taskset -c 0) with one worker
# thread, the load generator to CPU 1. Server CPU time comes from /proc/PID/stat, so
# the table gives messages per second and messages per server CPU-second, each with
# its ratio to the best peer and to raw TCP. Then the memory per idle connection
# (server RSS delta / IDLE connections) and the p99 round trip at a fixed rate of
# 20,000 msgs/s over 100 connections.
#
# The result is a markdown table, printed and written into README.md between the
# `<!-- bench:start -->` and `<!-- bench:end -->` markers (replaced on each run).
#
# Usage: scripts/bench.sh        Environment: SECONDS_PER_RUN (5), ROUNDS (3),
# IDLE (10000; 0 skips), SERVERS (subset, space-separated), NO_README (1: print only).
# Every run is bounded: SECONDS_PER_RUN + 1 s warm-up per load run, 5 s idle hold.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
secs="${SECONDS_PER_RUN:-5}"
rounds="${ROUNDS:-3}"
idle="${IDLE:-10000}"
port=9301

# shellcheck source=scripts/servers.sh
source scripts/servers.sh
servers=(${SERVERS:-ours ours-standalone actix-web-actors actix-ws tokio-tungstenite fastwebsockets raw-tcp})
peers_only=(actix-web-actors actix-ws tokio-tungstenite fastwebsockets)

if command -v taskset >/dev/null; then pin0=(taskset -c 0); pin1=(taskset -c 1); else pin0=(); pin1=(); fi
ulimit -n "$(( idle * 2 + 1024 ))" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
ticks=$(getconf CLK_TCK)
server=""
stop_server() { if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi; server=""; }
trap 'stop_server' EXIT

start_server() { # name
  port=$(( port + 1 ))
  # shellcheck disable=SC2086
  "${pin0[@]}" ${cmd[$1]} "127.0.0.1:$port" >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "$1 did not start" >&2
  return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$server/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$server/status"; }
field() { sed -E "s/.*$1=([0-9.]+).*/\1/" <<<"$2"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print 0; else print a[int((NR + 1) / 2)]}'; }
med() { tr ' ' '\n' <<<"$1" | { grep . || true; } | median; } # "a b c " -> median

declare -A rate percpu
run_load() { # name connections size -> sets rate/percpu samples
  local name=$1 c=$2 size=$3 raw=() out before after msgs
  [ "$name" = raw-tcp ] && raw=(--raw)
  start_server "$name"
  before=$(cpu_ticks)
  if ! out=$("${pin1[@]}" "$load_bin" --url "ws://127.0.0.1:$port/" -c "$c" -s "$size" \
      -d "$secs" --warmup 1 "${raw[@]}" 2>&1); then
    echo "  $name $c x $size: load run failed: $out" >&2
    stop_server
    return 0
  fi
  after=$(cpu_ticks)
  stop_server
  msgs=$(field msgs "$out")
  rate[$name]+="$(field msgs_per_sec "$out") "
  # CPU time covers the warm-up second too: count the messages of the same span.
  percpu[$name]+="$(awk -v m="$msgs" -v s="$secs" -v a="$before" -v b="$after" -v t="$ticks" \
    'BEGIN { c = (b - a) / t; if (c > 0) printf "%.0f", m * (s + 1) / s / c; else print 0 }') "
}

table_row() { # label -> prints one row per scenario
  local label=$1 best=0 raw name v
  for name in "${peers_only[@]}"; do
    v=$(med "${percpu[$name]:-}")
    awk -v v="$v" -v b="$best" 'BEGIN {exit !(v > b)}' && best=$v
  done
  raw=$(med "${percpu[raw-tcp]:-}")
  for name in "${servers[@]}"; do
    local r p
    r=$(med "${rate[$name]:-}")
    p=$(med "${percpu[$name]:-}")
    awk -v l="$label" -v n="$name" -v r="$r" -v p="$p" -v b="$best" -v raw="$raw" 'BEGIN {
      printf "| %s | %s | %.0f | %.0f | %s | %s |\n", l, n, r, p,
        (b > 0 ? sprintf("%.2fx", p / b) : "-"), (raw > 0 ? sprintf("%.2fx", p / raw) : "-") }'
  done
}

out=$(mktemp)
{
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(uname -m)), server on CPU 0, load on CPU 1;"
  echo "median of $rounds interleaved rounds of ${secs} s; one message in flight per connection."
  echo
  echo "| scenario | server | msgs/s | msgs per server CPU-s | vs best peer | vs raw TCP |"
  echo "|---|---|---:|---:|---:|---:|"
} >"$out"
for scenario in "100 20 100 x 20 B" "100 1024 100 x 1 KiB" "100 16384 100 x 16 KiB" \
                "10 65536 10 x 64 KiB" "1000 20 1000 x 20 B"; do
  read -r c size label <<<"$scenario"
  declare -A rate=() percpu=()
  for r in $(seq "$rounds"); do
    for name in "${servers[@]}"; do
      echo "  round $r/$rounds: $label, $name" >&2
      run_load "$name" "$c" "$size"
    done
  done
  table_row "$label" >>"$out"
done

{
  echo
  echo "| server | idle memory per connection ($idle connections) | p50 / p99 at 20,000 msgs/s, 100 x 20 B |"
  echo "|---|---:|---:|"
} >>"$out"
for name in "${servers[@]}"; do
  mem="-"
  if [ "$idle" -gt 0 ]; then
    start_server "$name"
    base=$(rss_kib)
    log=$(mktemp)
    "${pin1[@]}" "$load_bin" --url "ws://127.0.0.1:$port/" --idle "$idle" --hold 5 >"$log" 2>&1 &
    load=$!
    for _ in $(seq 1200); do
      grep -q '^open' "$log" && break
      kill -0 "$load" 2>/dev/null || break
      sleep 0.1
    done
    sleep 1
    held=$(rss_kib)
    if wait "$load"; then
      mem=$(awk -v b="$base" -v h="$held" -v n="$idle" 'BEGIN {printf "%.1f KiB", (h - b) / n}')
    else
      mem="failed: $(tail -1 "$log")"
    fi
    rm -f "$log"
    stop_server
  fi
  raw=(); [ "$name" = raw-tcp ] && raw=(--raw)
  start_server "$name"
  lat=$("${pin1[@]}" "$load_bin" --url "ws://127.0.0.1:$port/" -c 100 -s 20 --rate 20000 \
    -d "$secs" --warmup 1 "${raw[@]}" 2>&1 || true)
  stop_server
  if grep -q p99_us <<<"$lat"; then
    lat="$(field p50_us "$lat") µs / $(field p99_us "$lat") µs"
  else
    lat="failed"
  fi
  echo "| $name | $mem | $lat |" >>"$out"
done

cat "$out"
if [ "${NO_README:-0}" != 1 ] && grep -q '<!-- bench:start -->' README.md; then
  awk -v f="$out" '
    /<!-- bench:start -->/ { print; while ((getline line < f) > 0) print line; skip = 1; next }
    /<!-- bench:end -->/ { skip = 0 }
    !skip { print }' README.md >README.md.new && mv README.md.new README.md
  echo "README.md updated" >&2
fi
rm -f "$out"
