#!/usr/bin/env bash
# The large memory copies a server makes per echoed message, and how far each
# copy's destination lies past its source modulo 4 KiB: glibc copies large blocks
# with `rep movsb`, which some CPUs (AMD Zen 3 among them) run some 25 times slower
# when the destination is 1 to 31 bytes past the source modulo 4 KiB (a 16 KiB copy
# takes about 9 µs instead of 0.35 µs), and about twice as slow at other small
# distances that are not multiples of 32. A uprobe on glibc's memmove records every
# copy of more than 4,000 bytes for half a second of load; the script prints, per
# copy size, how many copies fell at a bad distance (1-31), a slow one (33-95, not a
# multiple of 32) or a good one.
#
# Usage: scripts/copy-offsets.sh NAME "SERVER COMMAND (the address is appended)" CONNS SIZE
#   scripts/copy-offsets.sh route "target/release/examples/echo --workers 1 --bind" 100 16384
# Needs perf with uprobes (apt-get install -y linux-perf), gawk, the load generator
# built (cd benches/loadgen && cargo build --release) and the server built.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 4 ] || { sed -n 2,15p "$0" >&2; exit 2; }
name=$1; cmd=$2; conns=$3; size=$4
load_bin=benches/loadgen/target/release/wsd-loadgen
libc=$(ldconfig -p | awk '/libc\.so\.6 .*x86-64/ {print $NF; exit}')
port=$((9300 + RANDOM % 300))
data=$(mktemp)
trap 'rm -f "$data"' EXIT
perf probe -q -x "$libc" -d 'probe_libc:wsd_copy' >/dev/null 2>&1 || true
perf probe -q -x "$libc" -a 'wsd_copy=__memmove_avx_unaligned_erms dst=%di:u64 src=%si:u64 n=%dx:u64'
# shellcheck disable=SC2086 # the command is split into its words on purpose
$cmd "127.0.0.1:$port" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
timeout 60 "$load_bin" --url "ws://127.0.0.1:$port/" -c "$conns" -s "$size" -d 3 --warmup 0 >/dev/null 2>&1 &
load=$!
sleep 1.5
perf record -q -e probe_libc:wsd_copy --filter 'n > 4000' -p "$pid" -o "$data" -- sleep 0.5 >/dev/null 2>&1
wait "$load" || true
kill -INT "$pid" 2>/dev/null; sleep 1; kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
perf probe -q -d 'probe_libc:wsd_copy' >/dev/null 2>&1 || true
echo "$name: copies of more than 4,000 bytes, by size and distance (destination - source, mod 4 KiB)"
perf script -i "$data" -F trace 2>/dev/null | gawk '
  { for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    d = (strtonum(v["dst"]) - strtonum(v["src"])) % 4096; if (d < 0) d += 4096
    cls = (d >= 1 && d <= 31) ? "bad" : ((d > 32 && d < 96 && d % 32 != 0) ? "slow" : "good")
    n = strtonum(v["n"]); c[n, cls]++; sizes[n] = 1 }
  END { for (n in sizes) printf "  %7d B: %5d bad, %5d slow, %5d good\n", n, c[n, "bad"], c[n, "slow"], c[n, "good"] }' | sort -n -k1
