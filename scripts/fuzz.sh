#!/usr/bin/env bash
# Bounded fuzzing of every cargo-fuzz target (CI runs this from scripts/test.sh).
#   scripts/fuzz.sh [SECONDS-PER-TARGET]     default 30
# Works on the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags (AddressSanitizer).
# Each target starts from fuzz/seeds/<target> and the committed regressions; a crash leaves its input
# in fuzz/artifacts/<target>/ — copy it to fuzz/regressions/<target>/ once fixed, where
# tests/fuzz_regressions.rs replays it on every test run.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-${FUZZ_SECONDS:-30}}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1
targets=(manifests base_registries_conf base_policy_json resolve)
cargo fuzz build -O
for t in "${targets[@]}"; do
  corpus="fuzz/corpus/$t"
  mkdir -p "$corpus"
  echo "fuzzing $t for ${secs}s"
  cargo fuzz run -O "$t" "$corpus" "fuzz/seeds/$t" "fuzz/regressions/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>&1 | tail -n 40
done
