#!/usr/bin/env bash
# Prints cargo's target directory (honours CARGO_TARGET_DIR and .cargo/config), so scripts and
# install steps find the binary wherever it was built.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo metadata --no-deps --format-version 1 --locked \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
