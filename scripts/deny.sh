#!/usr/bin/env bash
# Licence, duplicate and source policy (deny.toml) with cargo-deny, installed when missing.
# Separate from scripts/test.sh: building cargo-deny takes minutes, and its advisory check needs
# the RustSec database from GitHub (run `cargo deny check advisories` where GitHub is reachable).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deny --version >/dev/null 2>&1; then
  echo "deny.sh: installing cargo-deny (a few minutes, once)" >&2
  cargo install --locked cargo-deny
fi
cargo deny --offline check licenses bans sources
