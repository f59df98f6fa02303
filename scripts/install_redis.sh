#!/usr/bin/env bash
# Install Debian's redis-server (used by the rate-limit tests, which start it themselves on a free
# 127.0.0.1 port). Idempotent: does nothing when redis-server is already on PATH or REDIS_SERVER_BIN
# names an executable. Needs root (or sudo) and Debian's package registry; runs `apt-get update` once.
set -euo pipefail

if [[ -n "${REDIS_SERVER_BIN:-}" && -x "${REDIS_SERVER_BIN}" ]]; then
  exit 0
fi
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_redis.sh: redis-server not found and apt-get is unavailable; install redis-server (7.x) yourself or set REDIS_SERVER_BIN." >&2
  exit 1
fi
SUDO=""
if [[ "$(id -u)" != "0" ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "install_redis.sh: redis-server not found and installing it needs root (apt-get install redis-server)." >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends: the server binary only; the tests start it themselves (no service is enabled here).
$SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
if ! command -v redis-server >/dev/null 2>&1; then
  echo "install_redis.sh: apt-get installed redis-server but it is not on PATH." >&2
  exit 1
fi
echo "redis-server installed: $(redis-server --version)"
