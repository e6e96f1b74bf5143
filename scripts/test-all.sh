#!/usr/bin/env bash
# Runs every test, including those that need more than the Rust toolchain, after
# installing what they need (as root: apt-get, pip). `--extras` skips the plain
# `cargo test` run (CI runs it just before).
set -euo pipefail
cd "$(dirname "$0")/.."
extras_only=false
[ "${1:-}" = "--extras" ] && extras_only=true

if ! $extras_only; then
  cargo test
fi

# Tests marked #[ignore = "needs X; scripts/test-all.sh runs it"].
cargo test -- --ignored

# Coverage-guided fuzzing, a short run of each target (FUZZ_SECONDS each).
if [ -x scripts/fuzz.sh ] || [ -f scripts/fuzz.sh ]; then
  FUZZ_SECONDS="${FUZZ_SECONDS:-20}" bash scripts/fuzz.sh
fi
