#!/usr/bin/env bash
# Coverage-guided fuzzing of the protocol core: each cargo-fuzz target (fuzz/) runs for
# FUZZ_SECONDS (default 30) seconds under libFuzzer with AddressSanitizer. Exits
# non-zero if any target crashes (a panic is a crash: the targets assert the core's
# invariants, see fuzz/driver.rs); the crashing input is left in fuzz/artifacts/.
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer, -Cpasses=sancov-module);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them, so no nightly is needed.
# cargo-fuzz itself is installed from crates.io when missing.
#
# Environment: FUZZ_SECONDS (per target), FUZZ_TARGETS (space-separated subset),
# FUZZ_MAX_LEN (largest input, default 16384), FUZZ_JOBS (libFuzzer -fork workers,
# default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds="${FUZZ_SECONDS:-30}"
max_len="${FUZZ_MAX_LEN:-16384}"
targets="${FUZZ_TARGETS:-connection_server connection_client decode_header deflate_server hub_wire}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "=== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
failed=()
for target in $targets; do
  echo "=== fuzzing $target for ${seconds}s"
  corpus="$root/fuzz/corpus/$target"
  mkdir -p "$corpus"
  # The first corpus directory collects new inputs; the seeds (fuzz/seeds/) are read.
  args=("$corpus")
  [ -d "$root/fuzz/seeds/$target" ] && args+=("$root/fuzz/seeds/$target")
  if ! cargo fuzz run "$target" "${args[@]}" -- \
      -max_total_time="$seconds" -max_len="$max_len" -timeout=10 \
      ${FUZZ_JOBS:+-fork="$FUZZ_JOBS"} -print_final_stats=1; then
    echo "=== $target FAILED: see fuzz/artifacts/$target/ (reproduce with" \
      "RUSTC_BOOTSTRAP=1 cargo fuzz run $target fuzz/artifacts/$target/<file>)" >&2
    failed+=("$target")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found crashes in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzzing: no crash in $targets (${seconds}s each)"
