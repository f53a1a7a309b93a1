#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer on loopback, installing (Debian packages) and starting
# them when they are missing. Safe to run any number of times; uses running services as they are.
#
# Environment:
#   RCS_PG_DB     database to create when absent (default: test)
#   RCS_SKIP_APT  set to 1 to never call apt-get (fail instead)
set -euo pipefail

PG_DB="${RCS_PG_DB:-test}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

log() { printf '[services] %s\n' "$*" >&2; }

apt_install() {
  if [ "${RCS_SKIP_APT:-0}" = "1" ]; then
    log "missing packages ($*) and RCS_SKIP_APT=1; install them and run again"; exit 1
  fi
  log "installing $* (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "$@" >/dev/null
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

# --- PostgreSQL -------------------------------------------------------------------------------
if ! command -v pg_isready >/dev/null 2>&1 || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  pg_up 2>/dev/null || apt_install postgresql postgresql-client
fi
pg_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n1; }
pg_login() { psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; }
if ! pg_up; then
  log "starting PostgreSQL"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { log "PostgreSQL did not come up; see /var/log/postgresql"; exit 1; }
fi
if ! pg_login; then
  # A fresh Debian cluster wants passwords on TCP; allow loopback without one for dev and CI
  # (never do this on a production server).
  conf="/etc/postgresql/$(pg_version)/main/pg_hba.conf"
  if [ -f "$conf" ] && ! grep -q '^# retailcrm-sync' "$conf"; then
    log "allowing passwordless loopback logins in $conf (dev/CI only)"
    $SUDO sh -c "printf '# retailcrm-sync: local trust for dev/CI\nlocal all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' | cat - '$conf' > '$conf.new' && mv '$conf.new' '$conf' && chown postgres: '$conf' 2>/dev/null || true"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main reload || true
    sleep 1
  fi
  pg_login || { log "cannot log in to PostgreSQL as postgres on 127.0.0.1; check pg_hba.conf"; exit 1; }
fi
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc "select 1 from pg_database where datname = '$PG_DB'" | grep -q 1; then
  log "creating database $PG_DB"
  psql -h 127.0.0.1 -U postgres -d postgres -qc "create database \"$PG_DB\""
fi

# --- Redis ------------------------------------------------------------------------------------
if ! redis_up; then
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  log "starting Redis (loopback, append-only file on)"
  $SUDO mkdir -p /var/lib/redis /var/log/redis
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 \
    --appendonly yes --dir /var/lib/redis --logfile /var/log/redis/retailcrm-sync.log
  for _ in $(seq 1 30); do redis_up && break; sleep 0.5; done
  redis_up || { log "Redis did not come up; see /var/log/redis/retailcrm-sync.log"; exit 1; }
fi
log "PostgreSQL and Redis are up (database $PG_DB)"
