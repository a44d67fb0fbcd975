#!/usr/bin/env bash
# Install (first run only) and start the gateway on embedded defaults: a SQLite file
# (./genledger.db), the built-in demo provider, and a demo key printed at start.
# Extra arguments go to `genledger serve` (e.g. --port 9000, --config genledger.toml).
source "$(dirname "$0")/_env.sh"
ensure_venv server
exec "$VENV/bin/genledger" serve --demo "$@"
