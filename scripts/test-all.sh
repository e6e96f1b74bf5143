#!/usr/bin/env bash
# Runs every test, including those that need more than the Rust toolchain, after
# installing what they need (as root: apt-get, pip), and the Autobahn|Testsuite
# (scripts/autobahn.sh). `--extras` skips the plain
# `cargo test` run (CI runs it just before).
set -euo pipefail
cd "$(dirname "$0")/.."
extras_only=false
[ "${1:-}" = "--extras" ] && extras_only=true

if ! $extras_only; then
  cargo test
fi

# What the ignored tests need, installed when missing (as root).
apt_install() {
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
  else
    echo "not root: cannot apt-get install $*" >&2
  fi
}
# tests/browser.rs and tests/hub_browser.rs: headless Chromium, and chromedriver
# (WebDriver) for the hub example's two-page test.
[ -x /usr/bin/chromium ] || apt_install chromium
[ -x /usr/bin/chromedriver ] || apt_install chromium-driver

# tests/backplane.rs: redis-server (and redis-cli, for the cluster it makes).
command -v redis-server >/dev/null || apt_install redis-server
command -v redis-cli >/dev/null || apt_install redis-tools

# tests/deflate_interop.rs: python `websockets` (a foreign permessage-deflate peer).
if ! python3 -c 'import websockets' 2>/dev/null; then
  python3 -m pip install -q websockets || echo "cannot pip install websockets" >&2
fi

# Tests marked #[ignore = "needs X; scripts/test-all.sh runs it"]. tests/hostile.rs
# runs the examples' debug builds (cargo test builds them).
cargo build --examples
# The scale soak (soak_*, about 10 minutes) runs with scripts/soak.sh instead.
cargo test -- --ignored --skip soak_
# The Redis backplane's (feature `redis`): its parts' own tests (the subscription
# state machine's property tests among them), then those with a redis-server of
# their own (one kills the chat example, built so), then the churn-and-fault run
# (WSD_CHURN_SEED=N replays one). About 3 minutes in all on 2 shared cores
# (measured 2026-12-07): 2.5 to build with `redis`, 30 s to run.
cargo build --example hub --features redis
cargo test --features redis --lib hub::redis
cargo test --features redis --lib hub::redis -- --ignored
cargo test --features redis --test backplane -- --ignored
cargo test --features redis --test backplane_cache -- --ignored
cargo test --features redis --test backplane_sse -- --ignored
cargo test --features redis --test backplane_churn -- --ignored

# The Autobahn|Testsuite, both roles at once (about 12 minutes on 2 cores, measured
# 2026-12-02); without Python 2.7 it skips, except under CI=true.
bash scripts/autobahn.sh

# Coverage-guided fuzzing, a short run of each target (FUZZ_SECONDS each).
if [ -x scripts/fuzz.sh ] || [ -f scripts/fuzz.sh ]; then
  FUZZ_SECONDS="${FUZZ_SECONDS:-60}" bash scripts/fuzz.sh
fi
