#!/usr/bin/env bash
# Install checkov (Bicep policy checks) into its own venv, .tools/checkov: its pins clash with
# the app's, so it never shares .venv. Idempotent: does nothing when the pinned version is there.
set -euo pipefail

CHECKOV_VERSION="3.3.30"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.tools/checkov"
BIN="$VENV/bin/checkov"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"

if [[ -x "$BIN" ]] && [[ -f "$VENV/.version" ]] && [[ "$(cat "$VENV/.version")" == "$CHECKOV_VERSION" ]]; then
  exit 0
fi

echo "==> installing checkov $CHECKOV_VERSION into $VENV (its own venv)"
rm -rf "$VENV"
mkdir -p "$ROOT/.tools"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
if ! "$VENV/bin/python" -m pip install -q "checkov==$CHECKOV_VERSION"; then
  echo "install_checkov.sh: 'pip install checkov==$CHECKOV_VERSION' failed (see pip output above)." >&2
  exit 1
fi
if ! "$BIN" --version >/dev/null; then
  echo "install_checkov.sh: checkov installed but '$BIN --version' fails." >&2
  exit 1
fi
echo "$CHECKOV_VERSION" > "$VENV/.version"
echo "checkov $CHECKOV_VERSION installed in $VENV"
