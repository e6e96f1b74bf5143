# shellcheck shell=bash
# Sourced by scripts/bench.sh and scripts/instructions.sh (from the repository's
# root, with $root set): builds the echo servers and the load generator, and sets
# `load_bin` and `cmd` (server name -> command line, to be followed by ADDR).
echo "building (release): the echo examples, the peers, the load generator" >&2
cargo build --release --example echo --example echo_async >&2
(cd benches/peers && cargo build --release) >&2
(cd benches/loadgen && cargo build --release) >&2
# shellcheck disable=SC2034,SC2154 # load_bin is used, and root set, by the scripts that source this one
load_bin="$root/benches/loadgen/target/release/wsd-loadgen"
peers="$root/benches/peers/target/release"
# shellcheck disable=SC2034 # used by the scripts that source this one
declare -A cmd=(
  [ours]="$root/target/release/examples/echo --workers 1 --bind"
  [ours-standalone]="$root/target/release/examples/echo --workers 1 --standalone --bind"
  [ours-async]="$root/target/release/examples/echo_async --workers 1 --bind"
  [ours-async-standalone]="$root/target/release/examples/echo_async --workers 1 --standalone --bind"
  [actix-web-actors]="$peers/actix_web_actors --bind"
  [actix-ws]="$peers/actix_ws --bind"
  [tokio-tungstenite]="$peers/tokio_tungstenite --bind"
  [fastwebsockets]="$peers/fastwebsockets --bind"
  [tokio-websockets]="$peers/tokio_websockets --bind"
  [sockudo-ws]="$peers/sockudo_ws --bind"
  [raw-tcp]="$peers/raw_tcp --bind"
)
