#!/usr/bin/env bash
# The whole test suite: services up, formatting, lints, every test against real Postgres and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
# Headless Chromium and chromedriver for the monitoring page's browser test (tests/it/http_ui.rs),
# installed when missing; the test fails rather than skips without them.
scripts/browser.sh

# A full disk makes the linker die with SIGBUS ("ld terminated with signal 7"), which reads like a
# toolchain bug: warn before building. A cold build with the tests takes about 2.2 GiB.
mkdir -p target
free_kib=$(df -Pk target | awk 'NR==2 {print $4}')
if [ "${free_kib:-0}" -lt $((3 * 1024 * 1024)) ]; then
  echo "test.sh: warning: only $((free_kib / 1024)) MiB free where target/ lives; a cold build takes ~2.2 GiB." >&2
  echo "test.sh: if linking fails with 'signal 7 [Bus error]', free disk space (cargo clean elsewhere) and rerun." >&2
fi
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# Every intra-doc link resolves and no doc comment is malformed.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --quiet
cargo test --locked --no-fail-fast -- --test-threads "${RCS_TEST_THREADS:-4}"
