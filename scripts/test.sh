#!/usr/bin/env bash
# Install (first run only) and run every check: ruff, mypy, and the whole pytest suite.
# PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) tests skip when those servers are
# absent, unless GENLEDGER_REQUIRE_SERVICES=1 (as in CI), which makes a skip a failure.
# Extra arguments go to pytest (e.g. -k stream, tests/core).
source "$(dirname "$0")/_env.sh"
ensure_venv dev
cd "$ROOT"
"$VENV/bin/ruff" check src tests bench
"$VENV/bin/ruff" format --check src tests bench
"$VENV/bin/mypy"
"$VENV/bin/mypy" --strict src/genledger/client
exec "$VENV/bin/pytest" -q -rs "$@"
