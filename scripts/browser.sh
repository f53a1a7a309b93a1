#!/usr/bin/env bash
# Makes sure headless Chromium and its WebDriver answer for the browser test of the monitoring
# page (tests/it/http_ui.rs), installing Debian's `chromium` and `chromium-driver` when missing.
# Safe to run any number of times. Never lets a tool download a browser of its own.
#
# Environment:
#   RCS_SKIP_APT  set to 1 to never call apt-get (fail instead)
#   RCS_CHROMIUM, RCS_CHROMEDRIVER  other binaries to check (default /usr/bin/chromium,
#                 /usr/bin/chromedriver); the test reads the same variables
set -euo pipefail

CHROMIUM="${RCS_CHROMIUM:-/usr/bin/chromium}"
CHROMEDRIVER="${RCS_CHROMEDRIVER:-/usr/bin/chromedriver}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

log() { printf '[browser] %s\n' "$*" >&2; }
fail() { log "ERROR: $*"; exit 1; }

if [ ! -x "$CHROMIUM" ] || [ ! -x "$CHROMEDRIVER" ]; then
  if [ "${RCS_SKIP_APT:-0}" = "1" ]; then
    fail "$CHROMIUM or $CHROMEDRIVER is missing and RCS_SKIP_APT=1; install the Debian packages chromium and chromium-driver"
  fi
  command -v apt-get >/dev/null 2>&1 ||
    fail "no apt-get: install Chromium and its chromedriver (same version) and set RCS_CHROMIUM / RCS_CHROMEDRIVER"
  log "installing chromium chromium-driver fonts-dejavu-core (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || fail "apt-get update failed"
  $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null ||
    fail "apt-get install chromium chromium-driver failed"
fi
[ -x "$CHROMIUM" ] || fail "$CHROMIUM is still missing after the install"
[ -x "$CHROMEDRIVER" ] || fail "$CHROMEDRIVER is still missing after the install"

# The driver drives only its own major version.
browser_version="$("$CHROMIUM" --version 2>/dev/null | grep -oE '[0-9]+(\.[0-9]+)+' | head -n1 || true)"
driver_version="$("$CHROMEDRIVER" --version 2>/dev/null | grep -oE '[0-9]+(\.[0-9]+)+' | head -n1 || true)"
[ -n "$browser_version" ] || fail "$CHROMIUM --version printed no version; is it a working Chromium?"
[ -n "$driver_version" ] || fail "$CHROMEDRIVER --version printed no version"
if [ "${browser_version%%.*}" != "${driver_version%%.*}" ]; then
  fail "Chromium $browser_version and chromedriver $driver_version differ in major version; upgrade both packages together"
fi
log "Chromium $browser_version and chromedriver $driver_version are ready"
