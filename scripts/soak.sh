#!/usr/bin/env bash
# The scale soak (tests/soak.rs): the echo example's release
# build holding 19,000 idle connections with the keep-alive ping for 60 s, on the
# route and standalone, then 100,000 over several `--reuse-port` server processes,
# with benches/loadgen's idle clients spread over loopback source addresses
# 127.0.B.2, 127.0.B.3, ..., a block B per test (Linux routes all of 127.0.0.0/8 to lo).
#
# About 10 minutes on 2 cores; not part of scripts/test-all.sh (it skips soak_*).
# SOAK_TESTS: a substring of the tests to run (default: every soak_ test), e.g.
# `SOAK_TESTS=soak_19000 bash scripts/soak.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --example echo
(cd benches/loadgen && cargo build --release)
# One at a time: each holds up to the descriptor limit and the machine's ports.
cargo test --test soak -- --ignored --nocapture --test-threads 1 "${SOAK_TESTS:-soak_}"
