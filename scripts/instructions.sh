#!/usr/bin/env bash
# Instructions per echoed message, counted by valgrind's callgrind: a figure that,
# unlike time, does not drift with the machine's noise. Each server runs under
# callgrind; its counters are zeroed once it listens, the load generator sends
# 100 connections x SIZE bytes (one in flight each) for SECONDS, and the server's
# instruction total is divided by the messages echoed. Startup is not counted;
# the 100 handshakes and the shutdown are (a few tenths of a percent).
#
# Usage: scripts/instructions.sh     Environment: SERVERS (subset), SIZES ("20 16384"),
# SECONDS_PER_RUN (3). Needs valgrind (apt-get install -y valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
secs="${SECONDS_PER_RUN:-3}"
sizes="${SIZES:-20 16384}"
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install -y valgrind)" >&2; exit 1; }

# shellcheck source=scripts/servers.sh
source scripts/servers.sh
servers=(${SERVERS:-ours ours-standalone actix-web-actors fastwebsockets})
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
port=9500

printf '| server |'; for s in $sizes; do printf ' 100 x %s B |' "$s"; done; echo
printf '|---|'; for _ in $sizes; do printf -- '---:|'; done; echo
for name in "${servers[@]}"; do
  printf '| %s |' "$name"
  for size in $sizes; do
    port=$((port + 1))
    out="$work/$name.$size.out"
    # shellcheck disable=SC2086
    valgrind --tool=callgrind --callgrind-out-file="$out" ${cmd[$name]} "127.0.0.1:$port" \
      >"$work/log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      sleep 0.1
    done
    callgrind_control --zero "$pid" >/dev/null 2>&1
    load=$("$load_bin" --url "ws://127.0.0.1:$port/" -c 100 -s "$size" -d "$secs" --warmup 0 2>&1)
    kill -INT "$pid"; sleep 1; kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    msgs=$(sed -E 's/.*msgs=([0-9]+).*/\1/' <<<"$load")
    # The zeroed counters go to a second dump file (`.out.2`, or the last one).
    dump=$(ls -1 "$out"* | sort | tail -1)
    ir=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
    awk -v i="$ir" -v m="$msgs" 'BEGIN { if (m > 0) printf " %.0f |", i / m; else printf " - |" }'
  done
  echo
done
