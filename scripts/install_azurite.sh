#!/usr/bin/env bash
# Install Azurite (the Azure Storage emulator, Blob service only is used) into .tools/.
# Idempotent: does nothing when the pinned version is already installed.
set -euo pipefail

AZURITE_VERSION="3.37.0"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.tools/node_modules/.bin/azurite-blob"

if [[ -x "$BIN" ]] && [[ "$("$BIN" --version 2>/dev/null || true)" == "$AZURITE_VERSION" ]]; then
  exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "install_azurite.sh: npm not found. Install Node.js 18+ (with npm) to run the Blob tests against Azurite." >&2
  exit 1
fi

mkdir -p "$ROOT/.tools"
if ! npm install --prefix "$ROOT/.tools" --no-audit --no-fund --loglevel=error --silent \
    "azurite@$AZURITE_VERSION" >/dev/null; then
  echo "install_azurite.sh: 'npm install azurite@$AZURITE_VERSION' failed (see npm output above)." >&2
  exit 1
fi

if [[ ! -x "$BIN" ]]; then
  echo "install_azurite.sh: azurite installed but $BIN is missing." >&2
  exit 1
fi
echo "Azurite $AZURITE_VERSION installed in $ROOT/.tools"
