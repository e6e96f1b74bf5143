#!/usr/bin/env bash
# Side-by-side echo benchmark: ours (examples/echo.rs through the actix-web route,
# `ours`, and `--standalone`: ws::Server::listen without actix-web, `ours-standalone`)
# against actix-web-actors, actix-ws, tokio-tungstenite, fastwebsockets,
# tokio-websockets, sockudo-ws and a raw TCP echo (benches/peers), driven by the load
# generator of benches/loadgen (every echo checked byte for byte).
#
# Scenarios (SCENARIOS, space-separated keys; all by default):
#   c100-20b c100-1k c100-16k c10-64k c1000-20b   N connections x SIZE, one message
#                    in flight per connection (closed loop)
#   pipelined        100 connections x 20 B, 16 messages in flight per connection
#   latency          100 connections x 20 B at a fixed RATE (20,000) msgs/s in total
#                    (open loop, each round trip timed from its scheduled send):
#                    p50 / p99 / p99.9 over every round trip of the window, exact
#                    (the load generator sorts all of them)
#   memory           memory per idle connection at IDLE (10,000) connections: server
#                    RSS delta / IDLE once all handshakes are done (and 1 s passed),
#                    then again after one 20 B echo on every connection (all echoes
#                    received) and 1 s of quiet; one run per server
# Rounds are interleaved (round 1: every scenario, each server in turn; round 2: ...)
# and each cell is the median of ROUNDS rounds. The server is pinned to CPU 0
# (taskset -c 0) with one worker thread, the load generator to CPU 1. The load
# generator, given the server's PID, reads the CPU time of the server's threads and
# its own (/proc/PID/task/*/schedstat) at both ends of the measured window, so the
# table gives messages per second and messages per server CPU-second over the same
# window, and how busy each side was (the load generator near 100% means the server
# was not the limit).
#
# Ratios (of msgs per server CPU-s, medians): the standalone path (`ours-standalone`)
# against the faster of fastwebsockets and tokio-websockets; the route (`ours`)
# against the better of actix-web-actors and actix-ws; both against raw TCP.
#
# The result is markdown, printed and written into docs/benchmarks.md between the
# `<!-- bench:start -->` and `<!-- bench:end -->` markers (replaced on each run),
# with the date, the machine and the CPU pressure (PSI) during the run in its header.
#
# Usage: scripts/bench.sh
# Environment: SECONDS_PER_RUN (5), ROUNDS (3), RATE (20000), IDLE (10000),
# SERVERS (subset, space-separated), SCENARIOS (subset), NO_README (1: print only),
# README_MARKER (bench: the block between <!-- NAME:start --> and <!-- NAME:end -->),
# SOURCE_IP (127.0.2.1: the load generator's local address, so that the ephemeral
# ports other work on a shared machine holds on 127.0.0.1 cannot run out; empty: none).
# Every run is bounded: 1 s warm-up + SECONDS_PER_RUN per load run (the load
# generator is killed 60 s past that); the memory run waits at most 120 s for the
# handshakes and 60 s for the echoes; every server it starts is stopped after its run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
secs="${SECONDS_PER_RUN:-5}"
rounds="${ROUNDS:-3}"
rate="${RATE:-20000}"
idle="${IDLE:-10000}"
source_ip="${SOURCE_IP-127.0.2.1}"
warmup=1
port=9301

# shellcheck source=scripts/servers.sh
source scripts/servers.sh
all_servers=(ours ours-standalone actix-web-actors actix-ws tokio-tungstenite fastwebsockets
             tokio-websockets sockudo-ws raw-tcp)
read -r -a servers <<<"${SERVERS:-${all_servers[*]}}"
# The peers each path is judged against, and every peer (for the p99).
standalone_peers=(fastwebsockets tokio-websockets)
route_peers=(actix-web-actors actix-ws)
ws_peers=(actix-web-actors actix-ws tokio-tungstenite fastwebsockets tokio-websockets sockudo-ws)
for name in "${servers[@]}"; do
  [ -n "${cmd[$name]:-}" ] || { echo "unknown server $name (scripts/servers.sh)" >&2; exit 2; }
done

# key|label|connections|size|load generator arguments
all_scenarios=("c100-20b|100 x 20 B|100|20|" "c100-1k|100 x 1 KiB|100|1024|"
               "c100-16k|100 x 16 KiB|100|16384|" "c10-64k|10 x 64 KiB|10|65536|"
               "c1000-20b|1000 x 20 B|1000|20|" "pipelined|pipelined: 100 x 20 B, 16 in flight|100|20|-k 16"
               "latency|latency: 100 x 20 B at $rate msgs/s|100|20|--rate $rate")
wanted=" ${SCENARIOS:-c100-20b c100-1k c100-16k c10-64k c1000-20b pipelined latency memory} "
scenarios=()
for s in "${all_scenarios[@]}"; do
  case "$wanted" in *" ${s%%|*} "*) scenarios+=("$s") ;; esac
done
with_memory=0
case "$wanted" in *" memory "*) [ "$idle" -gt 0 ] && with_memory=1 ;; esac

if command -v taskset >/dev/null; then pin0=(taskset -c 0); pin1=(taskset -c 1); else pin0=(); pin1=(); fi
ulimit -n "$(( idle * 2 + 1024 ))" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
server=""
stop_server() { if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi; server=""; }
trap 'stop_server; rm -rf "$work"' EXIT

start_server() { # name
  port=$(( port + 1 ))
  # shellcheck disable=SC2086 # the command line is split on purpose
  "${pin0[@]}" ${cmd[$1]} "127.0.0.1:$port" >"$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$server" 2>/dev/null || break
    sleep 0.05
  done
  echo "$1 did not start: $(tail -n 3 "$work/server.log")" >&2
  stop_server
  return 1
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$server/status"; }
field() { sed -nE "s/.*(^| )$1=([^ ]+).*/\2/p" <<<"$2"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print ""; else print a[int((NR + 1) / 2)]}'; }
med() { tr ' ' '\n' <<<"$1" | { grep . || true; } | median; } # "a b c " -> median or ""
raw_flag() { if [ "$1" = raw-tcp ]; then echo --raw; fi; }
source_flag() { if [ -n "$source_ip" ]; then echo "--source $source_ip"; fi; }
# The memory runs: 10,000 connections each, whose ports stay in TIME_WAIT a minute
# after: each run binds a local address of its own (127.0.4.N) when SOURCE_IP is set.
mem_runs=0
mem_source() { if [ -n "$source_ip" ]; then echo "--source 127.0.4.$(( mem_runs % 250 + 1 ))"; fi; }

# Samples, keyed "scenario|server", space-separated, one per successful round.
declare -A rate_s percpu_s srvcpu_s loadcpu_s p50_s p99_s p999_s failed reasons
run_load() { # key name connections size [loadgen args...]
  local key=$1 name=$2 c=$3 size=$4 out msgs scpu lcpu
  shift 4
  if ! start_server "$name"; then
    failed[$key|$name]=$(( ${failed[$key|$name]:-0} + 1 )); reasons[$key|$name]="did not start"
    return 0
  fi
  # shellcheck disable=SC2046 # raw_flag, source_flag: nothing or whole words
  if ! out=$(timeout $(( secs + warmup + 60 )) "${pin1[@]}" "$load_bin" \
      --url "ws://127.0.0.1:$port/" -c "$c" -s "$size" -d "$secs" --warmup "$warmup" \
      --server-pid "$server" $(raw_flag "$name") $(source_flag) "$@" 2>&1); then
    echo "  $name $key: load run failed: $out" >&2
    failed[$key|$name]=$(( ${failed[$key|$name]:-0} + 1 ))
    reasons[$key|$name]=$(tail -n 1 <<<"$out" | cut -c1-80)
    stop_server
    return 0
  fi
  stop_server
  msgs=$(field msgs "$out"); scpu=$(field server_cpu_s "$out"); lcpu=$(field load_cpu_s "$out")
  rate_s[$key|$name]+="$(field msgs_per_sec "$out") "
  percpu_s[$key|$name]+="$(awk -v m="$msgs" -v c="$scpu" 'BEGIN {if (c > 0) printf "%.0f", m / c; else print 0}') "
  srvcpu_s[$key|$name]+="$(awk -v c="$scpu" -v s="$secs" 'BEGIN {printf "%.0f", 100 * c / s}') "
  loadcpu_s[$key|$name]+="$(awk -v c="$lcpu" -v s="$secs" 'BEGIN {printf "%.0f", 100 * c / s}') "
  p50_s[$key|$name]+="$(field p50_us "$out") "
  p99_s[$key|$name]+="$(field p99_us "$out") "
  p999_s[$key|$name]+="$(field p999_us "$out") "
  echo "  $out" >&2
}

# Memory per idle connection: after the handshakes, and after one echo each + 1 s.
declare -A mem_hs mem_echo
run_memory() { # name
  local name=$1 base held echoed log fifo load reason ok=1
  mem_hs[$name]="failed"; mem_echo[$name]="failed"
  mem_runs=$(( mem_runs + 1 ))
  start_server "$name" || return 0
  base=$(rss_kib)
  log="$work/idle.log"; fifo="$work/idle.fifo"
  rm -f "$fifo"; mkfifo "$fifo"
  # shellcheck disable=SC2046 # raw_flag, source_flag: nothing or whole words
  timeout 300 "${pin1[@]}" "$load_bin" --url "ws://127.0.0.1:$port/" --idle "$idle" --echo -s 20 \
    --hold 3 $(raw_flag "$name") $(mem_source) <"$fifo" >"$log" 2>&1 &
  load=$!
  exec 4>"$fifo" # the load generator's standard input: one line starts the echoes
  for _ in $(seq 1200); do
    grep -q '^open' "$log" && break
    kill -0 "$load" 2>/dev/null || break
    sleep 0.1
  done
  if grep -q '^open' "$log"; then
    sleep 1
    held=$(rss_kib)
    mem_hs[$name]=$(awk -v b="$base" -v h="$held" -v n="$idle" 'BEGIN {printf "%.2f KiB", (h - b) / n}')
    (echo go >&4) 2>/dev/null || ok=0
    for _ in $(seq 600); do
      grep -q '^echoed' "$log" && break
      kill -0 "$load" 2>/dev/null || break
      sleep 0.1
    done
    if [ "$ok" = 1 ] && grep -q '^echoed' "$log"; then
      sleep 1
      echoed=$(rss_kib)
      mem_echo[$name]=$(awk -v b="$base" -v h="$echoed" -v n="$idle" 'BEGIN {printf "%.2f KiB", (h - b) / n}')
    fi
  fi
  exec 4>&-
  if ! wait "$load"; then
    # Measured figures stay, marked: the connections did not all last their hold.
    reason="failed: $(tail -n 1 "$log" | cut -c1-60)"
    if [ "${mem_echo[$name]}" = failed ]; then mem_echo[$name]=$reason; else mem_echo[$name]+=" ($reason)"; fi
  fi
  echo "  $name memory: $(tr '\n' ' ' <"$log")" >&2
  rm -f "$fifo"
  stop_server
}

started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
# CPU pressure (PSI): the share of the time some runnable task waited for a CPU,
# i.e. how much other work competed with the benchmark.
psi_total() { sed -nE 's/^some .*total=([0-9]+)/\1/p' /proc/pressure/cpu 2>/dev/null || true; }
psi_start=$(psi_total)
t_start=$(date +%s.%N)
for r in $(seq "$rounds"); do
  for s in "${scenarios[@]}"; do
    IFS='|' read -r key label c size margs <<<"$s"
    for name in "${servers[@]}"; do
      echo "round $r/$rounds: $label, $name" >&2
      # shellcheck disable=SC2086 # margs: zero or more words
      run_load "$key" "$name" "$c" "$size" $margs
    done
  done
done
if [ "$with_memory" = 1 ]; then
  for name in "${servers[@]}"; do
    echo "memory: $idle idle connections, $name" >&2
    run_memory "$name"
  done
fi
load_at_end=$(cut -d' ' -f1-3 /proc/loadavg)
psi_end=$(psi_total)
t_end=$(date +%s.%N)
contention="unknown (no /proc/pressure/cpu)"
if [ -n "$psi_start" ] && [ -n "$psi_end" ]; then
  contention=$(awk -v a="$psi_start" -v b="$psi_end" -v s="$t_start" -v e="$t_end" \
    'BEGIN {printf "%.0f%%", 100 * (b - a) / 1e6 / (e - s)}')
fi

status() { # key|name -> "ok" or "FAILED k/R: reason"
  local f=${failed[$1]:-0}
  if [ "$f" -eq 0 ]; then echo ok; else echo "FAILED $f/$rounds: ${reasons[$1]}"; fi
}
or_dash() { if [ -n "$1" ]; then echo "$1"; else echo "-"; fi; }
pct() { if [ -n "$1" ]; then echo "$1%"; else echo "-"; fi; }
best_of() { # key name... -> "value name" of the highest median msgs per server CPU-s
  local key=$1 name v best="" who=""
  shift
  for name in "$@"; do
    v=$(med "${percpu_s[$key|$name]:-}")
    [ -n "$v" ] || continue
    if [ -z "$best" ] || awk -v v="$v" -v b="$best" 'BEGIN {exit !(v > b)}'; then best=$v; who=$name; fi
  done
  [ -n "$best" ] && echo "$best $who"
  return 0
}
ratio() { # a b -> "0.93x" or "-"
  awk -v a="$1" -v b="$2" 'BEGIN {if (a != "" && b != "" && b > 0) printf "%.2fx", a / b; else print "-"}'
}

out=$(mktemp)
cpu_model=$(sed -nE 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1)
cmdline="SECONDS_PER_RUN=$secs ROUNDS=$rounds RATE=$rate IDLE=$idle SOURCE_IP=$source_ip"
[ -n "${SERVERS:-}" ] && cmdline+=" SERVERS=\"$SERVERS\""
[ -n "${SCENARIOS:-}" ] && cmdline+=" SCENARIOS=\"$SCENARIOS\""
{
  echo "Measured $started on $(nproc) cores ($cpu_model, $(uname -sr)), shared with other work;"
  echo "server pinned to CPU 0 with one worker thread, load generator to CPU 1; median of $rounds"
  echo "interleaved rounds of $secs s (after $warmup s of unmeasured load); server and load generator CPU"
  echo "over the measured window. Load average at start / end: $load_at_start / $load_at_end;"
  echo "CPU pressure during the run (PSI, share of time some task waited for a CPU): $contention."
  echo "Command: \`$cmdline bash scripts/bench.sh\`"
  if [ "${#scenarios[@]}" -gt 0 ]; then
  echo
  echo "| scenario | server | msgs/s | msgs per server CPU-s | server CPU | load generator CPU | checks |"
  echo "|---|---|---:|---:|---:|---:|---|"
  for s in "${scenarios[@]}"; do
    IFS='|' read -r key label _ <<<"$s"
    for name in "${servers[@]}"; do
      k="$key|$name"
      printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$name" \
        "$(or_dash "$(med "${rate_s[$k]:-}")")" "$(or_dash "$(med "${percpu_s[$k]:-}")")" \
        "$(pct "$(med "${srvcpu_s[$k]:-}")")" "$(pct "$(med "${loadcpu_s[$k]:-}")")" "$(status "$k")"
    done
  done
  echo
  echo "Ratios of msgs per server CPU-s (medians; in brackets, of msgs/s). Targets:"
  echo "standalone >= 1.0x the faster of fastwebsockets and tokio-websockets, route >= 1.05x the"
  echo "better of actix-web-actors and actix-ws, both >= 0.9x raw TCP at 20 B and 1 KiB."
  echo
  echo "| scenario | standalone | fastest of fastwebsockets, tokio-websockets | ratio | route | best of actix-web-actors, actix-ws | ratio | standalone / raw TCP | route / raw TCP |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for s in "${scenarios[@]}"; do
    IFS='|' read -r key label _ <<<"$s"
    sa=$(med "${percpu_s[$key|ours-standalone]:-}"); ro=$(med "${percpu_s[$key|ours]:-}")
    raw=$(med "${percpu_s[$key|raw-tcp]:-}")
    sar=$(med "${rate_s[$key|ours-standalone]:-}"); ror=$(med "${rate_s[$key|ours]:-}")
    rawr=$(med "${rate_s[$key|raw-tcp]:-}")
    read -r sp spn <<<"$(best_of "$key" "${standalone_peers[@]}")" || true
    read -r rp rpn <<<"$(best_of "$key" "${route_peers[@]}")" || true
    spr=""; [ -n "${spn:-}" ] && spr=$(med "${rate_s[$key|$spn]:-}")
    rpr=""; [ -n "${rpn:-}" ] && rpr=$(med "${rate_s[$key|$rpn]:-}")
    printf '| %s | %s | %s | %s (%s) | %s | %s | %s (%s) | %s (%s) | %s (%s) |\n' "$label" \
      "$(or_dash "$sa")" "$(or_dash "${sp:+$sp (${spn})}")" "$(ratio "$sa" "${sp:-}")" "$(ratio "$sar" "$spr")" \
      "$(or_dash "$ro")" "$(or_dash "${rp:+$rp (${rpn})}")" "$(ratio "$ro" "${rp:-}")" "$(ratio "$ror" "$rpr")" \
      "$(ratio "$sa" "$raw")" "$(ratio "$sar" "$rawr")" "$(ratio "$ro" "$raw")" "$(ratio "$ror" "$rawr")"
    sp=""; spn=""; rp=""; rpn=""
  done
  fi
  has_latency=0
  for s in "${scenarios[@]}"; do [ "${s%%|*}" = latency ] && has_latency=1; done
  if [ "$has_latency" = 1 ] || [ "$with_memory" = 1 ]; then
    best_p99=""
    for name in "${ws_peers[@]}"; do
      v=$(med "${p99_s[latency|$name]:-}")
      [ -n "$v" ] || continue
      if [ -z "$best_p99" ] || [ "$v" -lt "$best_p99" ]; then best_p99=$v; fi
    done
    echo
    echo "Latency: round trips at $rate msgs/s in total over 100 connections x 20 B, timed from each"
    echo "message's scheduled send, every one of the window sorted (medians of the rounds' percentiles);"
    echo "p99 against the lowest p99 of the WebSocket peers (target: at most 1.00x). Memory: server RSS"
    echo "delta / $idle idle connections, one run per server."
    echo
    echo "| server | p50 / p99 / p99.9 | p99 vs best peer | memory per idle connection, after the handshake | after one 20 B echo and 1 s of quiet |"
    echo "|---|---:|---:|---:|---:|"
    for name in "${servers[@]}"; do
      lat="-"
      p50=$(med "${p50_s[latency|$name]:-}"); p99=$(med "${p99_s[latency|$name]:-}")
      p999=$(med "${p999_s[latency|$name]:-}")
      [ -n "$p99" ] && lat="$p50 / $p99 / $p999 µs"
      [ "${failed[latency|$name]:-0}" -gt 0 ] && lat+=" ($(status "latency|$name"))"
      printf '| %s | %s | %s | %s | %s |\n' "$name" "$lat" "$(ratio "$p99" "$best_p99")" \
        "${mem_hs[$name]:--}" "${mem_echo[$name]:--}"
    done
  fi
} >"$out"

cat "$out"
marker="${README_MARKER:-bench}" # another block, e.g. bench-memory for SCENARIOS=memory
doc=docs/benchmarks.md
if [ "${NO_README:-0}" != 1 ] && grep -q "<!-- $marker:start -->" "$doc" && grep -q "<!-- $marker:end -->" "$doc"; then
  awk -v f="$out" -v s="<!-- $marker:start -->" -v e="<!-- $marker:end -->" '
    index($0, s) { print; while ((getline line < f) > 0) print line; skip = 1; next }
    index($0, e) { skip = 0 }
    !skip { print }' "$doc" >"$doc.new" && mv "$doc.new" "$doc"
  echo "$doc updated" >&2
fi
rm -f "$out"
