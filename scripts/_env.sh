# Shared by scripts/serve.sh and scripts/test.sh: a project venv with genledger installed.
# Usage: ensure_venv EXTRA   (server or dev)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GENLEDGER_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

ensure_venv() {
  local extra="$1"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV" >&2
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  fi
  # Reinstall only when pyproject.toml changed since the last install of this extra.
  local stamp="$VENV/.genledger-$extra"
  local want
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "installing genledger[$extra] into $VENV" >&2
    "$VENV/bin/python" -m pip install -q -e "$ROOT[$extra]" >&2
    echo "$want" > "$stamp"
  fi
}
