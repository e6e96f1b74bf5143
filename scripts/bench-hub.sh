#!/usr/bin/env bash
# Fan-out benchmark of the hub: one publisher and SUBSCRIBERS subscribers
# in one room on loopback, the server on one core, side by side with the peers of
# benches/hub, driven by its load generator (wsd-hubload).
#
# The protocol every server implements (and `ours` must: examples/hub_bench.rs):
# - every connection connects to ws://ADDR/ws, a plain HTTP/1.1 upgrade, no
#   subprotocol, no extension (no permessage-deflate); all are in one room;
# - a text message the server receives from a connection is published, unchanged,
#   to every OTHER connection (never echoed to its sender);
# - subscribers send nothing but Pongs; the publisher is one more connection, which
#   only sends (and answers Pings);
# - the server binary takes `--bind ADDR` and runs single-threaded (one worker).
#
# The payload: text, exactly SIZE bytes (20 or 1024):
#   bytes 0..12  send time, 12 lowercase hex digits, µs since the load generator's
#                start (monotonic; in the latency run the scheduled time)
#   bytes 12..20 publication sequence number, 8 lowercase hex digits
#   bytes 20..   'x' up to SIZE
# Every subscriber checks every delivery (length, digits, padding, the time the
# publisher recorded for that number) and that the numbers go up by exactly one;
# missing, duplicate, out-of-order, corrupt and (at the end) undelivered deliveries
# are counted and any of them fails the run (the table says FAILED).
#
# Scenarios: throughput at 20 B and 1 KiB (at most IN_FLIGHT publications in flight,
# one being in flight until every subscriber got it: so a server can put at most
# IN_FLIGHT frames in one write to a subscriber, and IN_FLIGHT bounds what coalescing
# can gain), and latency at 20 B at RATE
# publications per second (open loop; p50/p99 publish-to-delivery over all
# deliveries). Every server runs in turn (A B C A B C ...), ROUNDS rounds, medians
# reported; the server is pinned to CPU 0 (taskset -c 0), the load generator to CPU 1.
# The load generator, given the server's PID, reads the server's CPU time
# (utime+stime, /proc/PID/stat) at both ends of the measured window and its RSS
# (/proc/PID/status) before the first connection and once all subscribers are
# connected and have received the warm-up publication: memory per subscribed
# connection = (RSS after - RSS before) / SUBSCRIBERS, from the 20 B throughput runs.
#
# Servers (SERVERS, space-separated subset; all by default):
#   ours                     target/release/examples/hub_bench --bind ADDR (skipped,
#                            with a message, while examples/hub_bench.rs does not exist)
#   actix-chat               actix's chat-server pattern on actix-web-actors
#   tokio-broadcast          tokio-tungstenite + tokio::sync::broadcast, ws.send per message
#   tokio-broadcast-batched  the same, feed what is ready, one flush
#   raw-fanout               the reference: frame once, append to every connection's
#                            buffer, one write per connection of what accumulated
#
# MODE=room: the chat example (examples/hub.rs) holding a big room. SUBSCRIBERS
# connect and join one room as fast as they can (at most HANDSHAKES handshakes at a
# time), then one publisher says MESSAGES (200) messages of 20 B with at most
# IN_FLIGHT (16) unconfirmed (a message is confirmed when every subscriber got it);
# every subscriber checks it got each once and in order. Servers:
#   chat              target/release/examples/hub --workers 1 (the chat's JSON
#                     protocol: wsd-hubload --chat; its message rate limit raised
#                     for the publisher: --rate 1000000 --burst 1000000), its
#                     WebSockets on the actix-web route
#   chat-ws           the same with --ws-bind: WebSockets on a listener of their
#                     own (the standalone server), the page on port 0
#   actix-chat-rooms  actix's chat-server pattern speaking the same JSON protocol
#                     (member lists to everyone for rooms up to 100, the count to
#                     the joiner past that)
#   ours              examples/hub_bench.rs (the plain room protocol above: joined
#                     when connected, confirmed by a warm-up publication)
#   actix-chat        actix's chat-server pattern, plain room protocol
# Reported per server (medians of ROUNDS): the time until every subscriber was in
# the room (from the first connection to the last join's answer), the slowest join
# answer (join sent -> joined; chat protocol only), members the server closed
# (must be 0), deliveries, and deliveries per server CPU-second over the messages
# (from the first said to the last delivered), with the ratio to actix-chat-rooms.
#
# Usage: scripts/bench-hub.sh; MODE=room scripts/bench-hub.sh
# Environment: SUBSCRIBERS (10000), SECONDS_PER_RUN (5), ROUNDS (3), SERVERS (all), BUILDS (above),
# IN_FLIGHT (4), SCENARIOS (tput20 tput1k lat20), RATE (20), WARMUP (1, seconds of unmeasured load per run),
# NO_README (1: print only; otherwise docs/benchmarks.md is rewritten between the
# `<!-- hub-bench:start -->` and `<!-- hub-bench:end -->` markers, if both exist;
# MODE=room: `<!-- hub-room-bench:start -->` / `<!-- hub-room-bench:end -->`).
# MODE=room also reads MESSAGES (200), IN_FLIGHT (16), HANDSHAKES (1024).
# Every run is bounded: the load generator gets connect (<= 120 s) + warm-up (<= 30 s)
# + WARMUP + SECONDS_PER_RUN + drain (<= 60 s, and <= 10 s without any delivery) and
# is killed past that; every server it starts is killed after its run.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
mode="${MODE:-fanout}"
subs="${SUBSCRIBERS:-10000}"
secs="${SECONDS_PER_RUN:-5}"
rounds="${ROUNDS:-3}"
if [ "$mode" = room ]; then in_flight="${IN_FLIGHT:-16}"; else in_flight="${IN_FLIGHT:-4}"; fi
messages="${MESSAGES:-200}"
handshakes="${HANDSHAKES:-1024}"
rate="${RATE:-20}"
warmup="${WARMUP:-1}"
port=9600

echo "building (release): benches/hub (load generator and peers)" >&2
(cd benches/hub && nice cargo build --release) >&2
hub="$root/benches/hub/target/release"
load_bin="$hub/wsd-hubload"
declare -A cmd=(
  [ours]="$root/target/release/examples/hub_bench --bind"
  [actix-chat]="$hub/actix_chat --bind"
  [tokio-broadcast]="$hub/tokio_broadcast --bind"
  [tokio-broadcast-batched]="$hub/tokio_broadcast_batched --bind"
  [raw-fanout]="$hub/raw_fanout --bind"
  [chat]="$root/target/release/examples/hub --workers 1 --rate 1000000 --burst 1000000 --bind"
  [chat-ws]="$root/target/release/examples/hub --workers 1 --rate 1000000 --burst 1000000 --bind 127.0.0.1:0 --ws-bind"
  [actix-chat-rooms]="$hub/actix_chat_rooms --bind"
)
# BUILDS="NAME=DIR ..." (directories holding other builds' `hub` and `hub_bench`, e.g.
# main's): the servers chat-NAME, chat-ws-NAME and ours-NAME run those binaries,
# interleaved with the others like any server (a change against its base in one run).
# The servers that speak the chat example's JSON protocol (wsd-hubload --chat).
declare -A chat_protocol=([chat]=1 [chat-ws]=1 [actix-chat-rooms]=1)
for build in ${BUILDS:-}; do
  b=${build%%=*} dir=${build#*=}
  cmd[chat-$b]="$dir/hub --workers 1 --rate 1000000 --burst 1000000 --bind"
  cmd[chat-ws-$b]="$dir/hub --workers 1 --rate 1000000 --burst 1000000 --bind 127.0.0.1:0 --ws-bind"
  cmd[ours-$b]="$dir/hub_bench --bind"
  chat_protocol[chat-$b]=1 chat_protocol[chat-ws-$b]=1
done
peers_only=(actix-chat tokio-broadcast tokio-broadcast-batched)
case "$mode" in
  fanout) default_servers="ours actix-chat tokio-broadcast tokio-broadcast-batched raw-fanout" ;;
  room) default_servers="chat chat-ws actix-chat-rooms ours actix-chat" ;;
  *) echo "MODE is fanout or room, not $mode" >&2; exit 2 ;;
esac
read -r -a requested <<<"${SERVERS:-$default_servers}"
servers=()
for name in "${requested[@]}"; do
  if [ -z "${cmd[$name]:-}" ]; then
    echo "unknown server $name (known: ${!cmd[*]})" >&2
    exit 2
  fi
  if [ "$mode" = fanout ] && [ -n "${chat_protocol[$name]:-}" ]; then
    echo "$name speaks the chat protocol: MODE=room only" >&2
    exit 2
  fi
  if { [ "$name" = chat ] || [ "$name" = chat-ws ]; } && [ -z "${built_chat:-}" ]; then
    echo "building (release): examples/hub" >&2
    nice cargo build --release --example hub >&2
    built_chat=1
  fi
  if [ "$name" = ours ]; then
    if [ -f examples/hub_bench.rs ] || [ -f examples/hub_bench/main.rs ]; then
      echo "building (release): examples/hub_bench" >&2
      nice cargo build --release --example hub_bench >&2
    else
      echo "SKIPPING ours: examples/hub_bench.rs does not exist yet (it takes --bind ADDR and serves the protocol above)" >&2
      continue
    fi
  fi
  servers+=("$name")
done
if [ "${#servers[@]}" -eq 0 ]; then
  echo "no server to run" >&2
  exit 1
fi

if command -v taskset >/dev/null; then pin0=(taskset -c 0); pin1=(taskset -c 1); else pin0=(); pin1=(); fi
ulimit -n "$(ulimit -Hn)" # the server needs SUBSCRIBERS + 1 descriptors too
budget=$(awk -v w="$warmup" -v s="$secs" 'BEGIN {printf "%d", 120 + 30 + w + s + 60 + 20}')
server=""
stop_server() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    # A server that drains its connections on SIGTERM gets 10 s, then SIGKILL.
    for _ in $(seq 100); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  server=""
}
trap 'stop_server' EXIT

start_server() { # name
  port=$(( port + 1 ))
  # shellcheck disable=SC2086
  "${pin0[@]}" ${cmd[$1]} "127.0.0.1:$port" >/dev/null 2>"$logdir/$1.$port.err" &
  server=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$server" 2>/dev/null || break
    sleep 0.05
  done
  echo "$1 did not start (see $logdir/$1.$port.err)" >&2
  stop_server
  return 1
}
field() { sed -nE "s/.*(^| )$1=([^ ]+).*/\2/p" <<<"$2"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print ""; else print a[int((NR + 1) / 2)]}'; }
med() { tr ' ' '\n' <<<"$1" | { grep . || true; } | median; } # "a b c " -> median

logdir=$(mktemp -d)
declare -A rate_s percpu p50 p99 p999 mem gencpu failed reasons joinall joinmax closedm deliv joincpu
run_load() { # scenario name size mode-args...
  local scen=$1 name=$2 size=$3 out key
  shift 3
  key="$scen/$name"
  if [ -n "${chat_protocol[$name]:-}" ]; then set -- "$@" --chat bench; fi
  if ! start_server "$name"; then
    failed[$key]=$(( ${failed[$key]:-0} + 1 )); reasons[$key]="did not start"; return 0
  fi
  out=$(timeout "$budget" "${pin1[@]}" "$load_bin" --url "ws://127.0.0.1:$port/ws" -n "$subs" \
    -s "$size" -d "$secs" --warmup "$warmup" --server-pid "$server" "$@" 2>"$logdir/load.err" || true)
  if ! kill -0 "$server" 2>/dev/null; then
    out="$out status=FAILED"
    echo "  $name: the server died during the run" >>"$logdir/load.err"
  fi
  stop_server
  if [ "$(field status "$out")" != ok ]; then
    failed[$key]=$(( ${failed[$key]:-0} + 1 ))
    reasons[$key]=$(grep -E 'FAILED|ERRORS|first|stalled|within|died' "$logdir/load.err" | head -2 | tr '\n' ' ' | cut -c1-160)
    [ -n "${reasons[$key]}" ] || reasons[$key]="no result line (timed out after ${budget} s?)"
    echo "  $name $scen: FAILED: ${reasons[$key]}" >&2
    [ -n "$out" ] && echo "  $out" >&2
    return 0
  fi
  rate_s[$key]+="$(field deliveries_per_sec "$out") "
  percpu[$key]+="$(field deliveries_per_server_cpu_s "$out") "
  p50[$key]+="$(field p50_us "$out") "
  p99[$key]+="$(field p99_us "$out") "
  p999[$key]+="$(field p999_us "$out") "
  mem[$key]+="$(field mem_per_sub_kib "$out") "
  gencpu[$key]+="$(field loadgen_cpu_pct "$out") "
  joinall[$key]+="$(field join_all_s "$out") "
  joinmax[$key]+="$(field join_max_s "$out") "
  closedm[$key]+="$(field closed "$out") "
  deliv[$key]+="$(field deliveries "$out") "
  joincpu[$key]+="$(field join_server_cpu_s "$out") "
  if [ "$(field loadgen_saturated "$out")" = yes ]; then
    echo "  $name $scen: the load generator used $(field loadgen_cpu_pct "$out")% of its core" >&2
  fi
  echo "  $out" >&2
}

all_scenarios=("tput20|throughput, 20 B|20|-k $in_flight" "tput1k|throughput, 1 KiB|1024|-k $in_flight"
               "lat20|latency, 20 B|20|--rate $rate")
scenarios=()
if [ "$mode" = room ]; then
  scenarios=("room|one room|20|--count $messages -k $in_flight --handshakes $handshakes --drain 60")
else
  for s in "${all_scenarios[@]}"; do
    case " ${SCENARIOS:-tput20 tput1k lat20} " in *" ${s%%|*} "*) scenarios+=("$s") ;; esac
  done
fi
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
# CPU pressure (PSI): the share of the time some runnable task waited for a CPU,
# i.e. how much other work competed with the benchmark.
psi_total() { sed -nE 's/^some .*total=([0-9]+)/\1/p' /proc/pressure/cpu 2>/dev/null || true; }
psi_start=$(psi_total)
t_start=$(date +%s.%N)
for r in $(seq "$rounds"); do
  for s in "${scenarios[@]}"; do
    IFS='|' read -r scen label size margs <<<"$s"
    for name in "${servers[@]}"; do
      echo "round $r/$rounds: $label, $name" >&2
      # shellcheck disable=SC2086
      run_load "$scen" "$name" "$size" $margs
    done
  done
done
load_at_end=$(cut -d' ' -f1-3 /proc/loadavg)
psi_end=$(psi_total)
t_end=$(date +%s.%N)
contention="unknown (no /proc/pressure/cpu)"
if [ -n "$psi_start" ] && [ -n "$psi_end" ]; then
  contention=$(awk -v a="$psi_start" -v b="$psi_end" -v s="$t_start" -v e="$t_end" \
    'BEGIN {printf "%.0f%%", 100 * (b - a) / 1e6 / (e - s)}')
fi

status() { # key -> "ok" or "FAILED k/R: reason"
  local f=${failed[$1]:-0}
  if [ "$f" -eq 0 ]; then echo ok; else echo "FAILED $f/$rounds: ${reasons[$1]}"; fi
}
or_dash() { if [ -n "$1" ]; then echo "$1"; else echo "-"; fi; }

out=$(mktemp)
cpu_model=$(sed -nE 's/^model name\s*:\s*//p' /proc/cpuinfo | head -1)
if [ "$mode" = room ]; then
  marker=hub-room-bench
  ref=actix-chat-rooms
  {
    echo "Measured $started on $(nproc) cores ($cpu_model, $(uname -sr)); server pinned to CPU 0, load"
    echo "generator to CPU 1. $subs subscribers join one room as fast as they can (at most $handshakes"
    echo "handshakes at a time), then one publisher says $messages messages of 20 B, at most $in_flight unconfirmed;"
    echo "each subscriber checks it got every one once and in order. Median of $rounds interleaved rounds."
    echo "Load average at start / end: $load_at_start / $load_at_end; CPU pressure during the run (PSI): $contention."
    echo "Command: \`MODE=room SUBSCRIBERS=$subs MESSAGES=$messages IN_FLIGHT=$in_flight HANDSHAKES=$handshakes ROUNDS=$rounds SERVERS=\"${servers[*]}\" scripts/bench-hub.sh\`"
    echo
    echo "| server | protocol | all joined | slowest join answer | members closed | deliveries | deliveries per server CPU-s | vs $ref | server CPU for the joins | checks |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
  } >"$out"
  refv=$(med "${percpu[room/$ref]:-}")
  for name in "${servers[@]}"; do
    k="room/$name"
    if [ -n "${chat_protocol[$name]:-}" ]; then proto=chat; else proto=plain; fi
    awk -v n="$name" -v pr="$proto" -v ja="$(med "${joinall[$k]:-}")" -v jm="$(med "${joinmax[$k]:-}")" \
        -v c="$(med "${closedm[$k]:-}")" -v d="$(med "${deliv[$k]:-}")" -v p="$(med "${percpu[$k]:-}")" \
        -v b="$refv" -v jc="$(med "${joincpu[$k]:-}")" -v st="$(status "$k")" 'BEGIN {
      if (p == "") { printf "| %s | %s | - | - | - | - | - | - | - | %s |\n", n, pr, st; exit }
      printf "| %s | %s | %.2f s | %s | %s | %.0f | %.0f | %s | %s s | %s |\n", n, pr, ja,
        (jm == "na" ? "-" : sprintf("%.2f s", jm)), c, d, p,
        (b > 0 ? sprintf("%.2fx", p / b) : "-"), jc, st }' >>"$out"
  done
else
marker=hub-bench
{
  echo "Measured $started on $(nproc) cores ($cpu_model, $(uname -sr)); server pinned to CPU 0, load"
  echo "generator to CPU 1; $subs subscribers + 1 publisher, one room; median of $rounds interleaved"
  echo "rounds of ${secs} s (after ${warmup} s of unmeasured load). Throughput: at most $in_flight publications"
  echo "in flight. Latency: $rate publications/s. Load average at start / end: $load_at_start / $load_at_end;"
  echo "CPU pressure during the run (PSI, share of time some task waited for a CPU): $contention."
  echo "Command: \`${SCENARIOS:+SCENARIOS=\"$SCENARIOS\" }SUBSCRIBERS=$subs SECONDS_PER_RUN=$secs ROUNDS=$rounds IN_FLIGHT=$in_flight RATE=$rate WARMUP=$warmup SERVERS=\"${servers[*]}\" scripts/bench-hub.sh\`"
  echo
  echo "| scenario | server | deliveries/s | deliveries per server CPU-s | vs best peer | load generator CPU | checks |"
  echo "|---|---|---:|---:|---:|---:|---|"
} >"$out"
for s in "${scenarios[@]}"; do
  IFS='|' read -r scen label size margs <<<"$s"
  [ "$scen" = lat20 ] && continue
  best=0
  for name in "${peers_only[@]}"; do
    v=$(med "${percpu[$scen/$name]:-}")
    [ -n "$v" ] && awk -v v="$v" -v b="$best" 'BEGIN {exit !(v > b)}' && best=$v
  done
  for name in "${servers[@]}"; do
    k="$scen/$name"
    awk -v l="$label" -v n="$name" -v r="$(med "${rate_s[$k]:-}")" -v p="$(med "${percpu[$k]:-}")" \
        -v b="$best" -v g="$(med "${gencpu[$k]:-}")" -v st="$(status "$k")" 'BEGIN {
      if (r == "") { printf "| %s | %s | - | - | - | - | %s |\n", l, n, st; exit }
      printf "| %s | %s | %.0f | %.0f | %s | %s%% | %s |\n", l, n, r, p,
        (b > 0 ? sprintf("%.2fx", p / b) : "-"), g, st }' >>"$out"
  done
done
{
  echo
  echo "| server | latency at $rate publications/s, 20 B: p50 / p99 / p99.9 | deliveries/s | deliveries per server CPU-s | memory per subscribed connection | checks |"
  echo "|---|---:|---:|---:|---:|---|"
} >>"$out"
for name in "${servers[@]}"; do
  k="lat20/$name"
  lat="-"
  if [ -n "$(med "${p50[$k]:-}")" ]; then
    lat=$(awk -v a="$(med "${p50[$k]}")" -v b="$(med "${p99[$k]}")" -v c="$(med "${p999[$k]}")" \
      'BEGIN {printf "%.2f / %.2f / %.2f ms", a / 1000, b / 1000, c / 1000}')
  fi
  m=$(med "${mem[tput20/$name]:-}")
  [ -n "$m" ] && m="$m KiB"
  st=$(status "$k")
  [ "$(status "tput20/$name")" = ok ] || st="$st; memory from failed runs: $(status "tput20/$name")"
  echo "| $name | $lat | $(or_dash "$(med "${rate_s[$k]:-}")") | $(or_dash "$(med "${percpu[$k]:-}")") | $(or_dash "$m") | $st |" >>"$out"
done

fi

cat "$out"
if [ "${NO_README:-0}" != 1 ]; then
  if grep -q "<!-- $marker:start -->" docs/benchmarks.md && grep -q "<!-- $marker:end -->" docs/benchmarks.md; then
    awk -v f="$out" -v m="$marker" '
      $0 ~ "<!-- " m ":start -->" { print; while ((getline line < f) > 0) print line; skip = 1; next }
      $0 ~ "<!-- " m ":end -->" { skip = 0 }
      !skip { print }' docs/benchmarks.md >docs/benchmarks.md.new && mv docs/benchmarks.md.new docs/benchmarks.md
    echo "docs/benchmarks.md updated" >&2
  else
    echo "docs/benchmarks.md has no <!-- $marker:start --> / <!-- $marker:end --> markers: not updated" >&2
  fi
fi
rm -f "$out"
rm -rf "$logdir"
