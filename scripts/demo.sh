#!/usr/bin/env bash
# The main job end to end on an embedded default: PostgreSQL and Redis up (installed if missing),
# a mock RetailCRM account, a demo project, the daemon, a full sync with a progress bar, a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
RCS_PG_DB=retailcrm_sync_demo scripts/services.sh
cargo build --release --locked
exec "$(scripts/target-dir.sh)/release/retailcrm-sync" demo "$@"
