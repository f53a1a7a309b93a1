#!/usr/bin/env bash
# The whole test suite: services up, formatting, lints, every test against real Postgres and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --no-fail-fast -- --test-threads "${RCS_TEST_THREADS:-4}"
