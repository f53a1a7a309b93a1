#!/usr/bin/env bash
# The whole test suite: services up, formatting, lints, every test against real Postgres and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh

# A full disk makes the linker die with SIGBUS ("ld terminated with signal 7"), which reads like a
# toolchain bug: say what it is before building. A cold build needs about 3 GiB.
mkdir -p target
free_kib=$(df -Pk target | awk 'NR==2 {print $4}')
if [ "${free_kib:-0}" -lt $((3 * 1024 * 1024)) ]; then
  echo "test.sh: only $((free_kib / 1024)) MiB free where target/ lives; the build needs ~3 GiB." >&2
  echo "test.sh: free disk space (cargo clean in other checkouts, drop old rcs_bench_* databases) and rerun." >&2
  exit 1
fi
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --no-fail-fast -- --test-threads "${RCS_TEST_THREADS:-4}"
