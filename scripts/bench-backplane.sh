#!/usr/bin/env bash
# Benchmark of the Redis backplane: the hub benchmark's protocol
# (scripts/bench-hub.sh, benches/hub: one publisher, SUBSCRIBERS subscribers in one
# room, every delivery checked by wsd-hubload) served three ways in one run:
#   single     one examples/hub_bench server, no Redis (the reference);
#   one+redis  one server on the backplane (what Redis adds on one server);
#   two+redis  two servers on one Redis, SUBSCRIBERS/2 on each, the publisher on the
#              first: half the deliveries cross servers through Redis.
# Scenarios: throughput at 20 B and 1 KiB (at most IN_FLIGHT publications in flight)
# and latency at 20 B, RATE publications/s (open loop). Setups run in turn
# (A B C A B C ...), ROUNDS rounds, medians reported.
#
# Placement on the 2 cores: the servers and redis-server on CPU 0, the load
# generator on CPU 1. "deliveries per server CPU-s" divides every delivery by the
# CPU time of the hub servers (all threads, /proc/PID/stat, over the measured
# window); Redis's own CPU time over the window is reported apart, per second.
#
# Usage: scripts/bench-backplane.sh
# Environment: SUBSCRIBERS (10000), SECONDS_PER_RUN (5), ROUNDS (3), IN_FLIGHT (32),
# SCENARIOS (tput20 tput1k lat20), RATE (20), WARMUP (1), NO_README (1: print only; otherwise docs/benchmarks.md is rewritten
# between `<!-- backplane-bench:start -->` and `<!-- backplane-bench:end -->`).
# Every run is bounded (timeout), and every process it starts is killed after it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
subs="${SUBSCRIBERS:-10000}"
secs="${SECONDS_PER_RUN:-5}"
rounds="${ROUNDS:-3}"
in_flight="${IN_FLIGHT:-32}"
rate="${RATE:-20}"
warmup="${WARMUP:-1}"

command -v redis-server >/dev/null || { echo "needs redis-server (apt-get install redis-server)" >&2; exit 1; }
echo "building (release): benches/hub's load generator, examples/hub_bench --features redis" >&2
(cd benches/hub && nice cargo build --release --bin wsd-hubload) >&2
nice cargo build --release --example hub_bench --features redis >&2
load_bin="$root/benches/hub/target/release/wsd-hubload"
server_bin="$root/target/release/examples/hub_bench"

if command -v taskset >/dev/null; then pin0=(taskset -c 0); pin1=(taskset -c 1); else pin0=(); pin1=(); fi
ulimit -n "$(ulimit -Hn)"
budget=$(awk -v w="$warmup" -v s="$secs" 'BEGIN {printf "%d", 120 + 30 + w + s + 60 + 20}')
logdir=$(mktemp -d)
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'stop_all; rm -rf "$logdir"' EXIT

wait_port() { # port pid
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
port=9700
next_port() { port=$(( port + 1 )); }
start_redis() { # -> redis_port, appended to pids
  next_port
  redis_port=$port
  "${pin0[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    >"$logdir/redis.$redis_port.log" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
  wait_port "$redis_port" "$redis_pid" || { echo "redis-server did not start" >&2; return 1; }
}
start_server() { # redis-url-or-empty -> server_port, server_pid
  next_port
  server_port=$port
  local extra=()
  [ -n "$1" ] && extra=(--redis "$1")
  "${pin0[@]}" "$server_bin" --bind "127.0.0.1:$server_port" "${extra[@]}" \
    >/dev/null 2>"$logdir/server.$server_port.err" &
  server_pid=$!
  pids+=("$server_pid")
  wait_port "$server_port" "$server_pid" || { echo "hub_bench did not start (see $logdir)" >&2; return 1; }
}

field() { sed -nE "s/.*(^| )$1=([^ ]+).*/\2/p" <<<"$2"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print ""; else print a[int((NR + 1) / 2)]}'; }
med() { tr ' ' '\n' <<<"$1" | { grep . || true; } | median; }
proc_cpu() { # pid -> seconds of CPU (utime + stime)
  awk -v hz="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); split($0, f, " "); printf "%.3f", (f[12] + f[13]) / hz}' "/proc/$1/stat"
}

declare -A rate_s remote_s percpu redis_cpu p50 p99 rp50 rp99 failed reasons
run_one() { # setup scenario size mode-args...
  local setup=$1 scen=$2 size=$3 out key urls=() spids=() url
  shift 3
  key="$scen/$setup"
  redis_pid=""
  case $setup in
    single)
      start_server "" || return 0
      urls=(--url "ws://127.0.0.1:$server_port/ws"); spids=(--server-pid "$server_pid") ;;
    one+redis)
      start_redis || return 0
      start_server "redis://127.0.0.1:$redis_port" || return 0
      urls=(--url "ws://127.0.0.1:$server_port/ws"); spids=(--server-pid "$server_pid") ;;
    two+redis)
      start_redis || return 0
      url="redis://127.0.0.1:$redis_port"
      start_server "$url" || return 0
      urls=(--url "ws://127.0.0.1:$server_port/ws"); spids=(--server-pid "$server_pid")
      start_server "$url" || return 0
      urls+=(--url "ws://127.0.0.1:$server_port/ws"); spids+=(--server-pid "$server_pid") ;;
  esac
  local r0="" r1=""
  [ -n "$redis_pid" ] && r0=$(proc_cpu "$redis_pid")
  out=$(timeout "$budget" "${pin1[@]}" "$load_bin" "${urls[@]}" -n "$subs" -s "$size" \
    -d "$secs" --warmup "$warmup" "${spids[@]}" "$@" 2>"$logdir/load.err" || true)
  [ -n "$redis_pid" ] && r1=$(proc_cpu "$redis_pid")
  for p in "${pids[@]}"; do
    kill -0 "$p" 2>/dev/null || { out="$out status=FAILED"; echo "a server died" >>"$logdir/load.err"; }
  done
  stop_all
  if [ "$(field status "$out")" != ok ]; then
    failed[$key]=$(( ${failed[$key]:-0} + 1 ))
    reasons[$key]=$(grep -E 'FAILED|ERRORS|first|stalled|within|died' "$logdir/load.err" | head -2 | tr '\n' ' ' | cut -c1-160)
    echo "  $setup $scen: FAILED: ${reasons[$key]} $out" >&2
    return 0
  fi
  rate_s[$key]+="$(field deliveries_per_sec "$out") "
  remote_s[$key]+="$(field remote_deliveries_per_sec "$out") "
  percpu[$key]+="$(field deliveries_per_server_cpu_s "$out") "
  p50[$key]+="$(field p50_us "$out") "
  p99[$key]+="$(field p99_us "$out") "
  rp50[$key]+="$(field remote_p50_us "$out") "
  rp99[$key]+="$(field remote_p99_us "$out") "
  if [ -n "$r0" ]; then
    # Redis CPU per second of the whole load run (connect, warm-up and drain included).
    redis_cpu[$key]+="$(awk -v a="$r0" -v b="$r1" -v s="$(field secs "$out")" 'BEGIN {printf "%.3f", (b - a)}') "
  fi
  echo "  $setup $scen: $out" >&2
}

setups=(single one+redis two+redis)
all_scenarios=("tput20|throughput, 20 B|20|-k $in_flight" "tput1k|throughput, 1 KiB|1024|-k $in_flight"
               "lat20|latency, 20 B|20|--rate $rate")
scenarios=()
for s in "${all_scenarios[@]}"; do
  case " ${SCENARIOS:-tput20 tput1k lat20} " in *" ${s%%|*} "*) scenarios+=("$s") ;; esac
done
started=$(date -u '+%Y-%m-%d %H:%M UTC')
psi_total() { sed -nE 's/^some .*total=([0-9]+)/\1/p' /proc/pressure/cpu 2>/dev/null || true; }
psi_start=$(psi_total)
t_start=$(date +%s.%N)
for r in $(seq "$rounds"); do
  for s in "${scenarios[@]}"; do
    IFS='|' read -r scen label size margs <<<"$s"
    for setup in "${setups[@]}"; do
      echo "round $r/$rounds: $label, $setup" >&2
      # shellcheck disable=SC2086
      run_one "$setup" "$scen" "$size" $margs
    done
  done
done
psi_end=$(psi_total)
t_end=$(date +%s.%N)
contention=unknown
if [ -n "$psi_start" ] && [ -n "$psi_end" ]; then
  contention=$(awk -v a="$psi_start" -v b="$psi_end" -v s="$t_start" -v e="$t_end" \
    'BEGIN {printf "%.0f%%", 100 * (b - a) / 1e6 / (e - s)}')
fi
status() {
  local f=${failed[$1]:-0}
  if [ "$f" -eq 0 ]; then echo ok; else echo "FAILED $f/$rounds: ${reasons[$1]}"; fi
}
ms() { awk -v v="$1" 'BEGIN { if (v == "" || v == "na") print "-"; else printf "%.2f", v / 1000 }'; }

out=$(mktemp)
{
  echo "Measured $started on $(nproc) cores ($(sed -nE 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1));"
  echo "hub servers and redis-server $(redis-server --version | sed -nE 's/.*v=([^ ]+).*/\1/p') on CPU 0, the load generator on CPU 1; $subs subscribers"
  echo "(two+redis: $(( subs / 2 )) on each server, the publisher on the first) + 1 publisher, one room;"
  echo "median of $rounds interleaved rounds of ${secs} s. Throughput: at most $in_flight publications in flight;"
  echo "latency: $rate publications/s. CPU pressure during the run (PSI): $contention. Redis CPU: its"
  echo "CPU-s over each whole load run (connect, warm-up, drain included)."
  echo "Command: \`${SCENARIOS:+SCENARIOS=\"$SCENARIOS\" }SUBSCRIBERS=$subs SECONDS_PER_RUN=$secs ROUNDS=$rounds IN_FLIGHT=$in_flight RATE=$rate scripts/bench-backplane.sh\`"
  echo
  echo "| scenario | setup | deliveries/s | of which cross-server | deliveries per hub-server CPU-s | vs single | Redis CPU-s per run | checks |"
  echo "|---|---|---:|---:|---:|---:|---:|---|"
} >"$out"
for s in "${scenarios[@]}"; do
  IFS='|' read -r scen label size margs <<<"$s"
  [ "$scen" = lat20 ] && continue
  base=$(med "${percpu[$scen/single]:-}")
  for setup in "${setups[@]}"; do
    k="$scen/$setup"
    awk -v l="$label" -v n="$setup" -v r="$(med "${rate_s[$k]:-}")" -v x="$(med "${remote_s[$k]:-}")" \
      -v p="$(med "${percpu[$k]:-}")" -v b="$base" -v c="$(med "${redis_cpu[$k]:-}")" -v st="$(status "$k")" 'BEGIN {
      if (r == "") { printf "| %s | %s | - | - | - | - | - | %s |\n", l, n, st; exit }
      printf "| %s | %s | %.0f | %.0f | %.0f | %s | %s | %s |\n", l, n, r, x, p,
        (b > 0 ? sprintf("%.2fx", p / b) : "-"), (c == "" ? "-" : c), st }' >>"$out"
  done
done
{
  echo
  echo "| setup | latency at $rate publications/s, 20 B: p50 / p99, all deliveries | p50 / p99, cross-server deliveries | checks |"
  echo "|---|---:|---:|---|"
} >>"$out"
for setup in "${setups[@]}"; do
  k="lat20/$setup"
  all="-"; cross="-"
  [ -n "$(med "${p50[$k]:-}")" ] && all="$(ms "$(med "${p50[$k]}")") / $(ms "$(med "${p99[$k]}")") ms"
  [ -n "$(med "${rp50[$k]:-}" | grep -v na || true)" ] && cross="$(ms "$(med "${rp50[$k]}")") / $(ms "$(med "${rp99[$k]}")") ms"
  echo "| $setup | $all | $cross | $(status "$k") |" >>"$out"
done

cat "$out"
if [ "${NO_README:-0}" != 1 ]; then
  if grep -q '<!-- backplane-bench:start -->' docs/benchmarks.md && grep -q '<!-- backplane-bench:end -->' docs/benchmarks.md; then
    awk -v f="$out" '
      /<!-- backplane-bench:start -->/ { print; while ((getline line < f) > 0) print line; skip = 1; next }
      /<!-- backplane-bench:end -->/ { skip = 0 }
      !skip { print }' docs/benchmarks.md >docs/benchmarks.md.new && mv docs/benchmarks.md.new docs/benchmarks.md
    echo "docs/benchmarks.md updated" >&2
  fi
fi
rm -f "$out"
