#!/usr/bin/env bash
# Install (first run only) and run every check: ruff, mypy, and the whole pytest suite.
# PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) tests skip when those servers are
# absent, unless GENLEDGER_REQUIRE_SERVICES=1 (as in CI), which makes a skip a failure.
# Extra arguments go to pytest (e.g. -k stream, tests/core).
# pytest measures line and branch coverage (config: [tool.coverage.*] in pyproject.toml) and
# prints what each module misses. The whole run also audits the dependencies (pip-audit): a known
# vulnerability fails it; an unreachable vulnerability service is reported, not failed. Without arguments (the whole suite) lines and branches must
# each reach their floor; a subset covers less by design, so it is reported but not checked.
LINES_FLOOR=95
BRANCHES_FLOOR=90
source "$(dirname "$0")/_env.sh"
ensure_venv dev
cd "$ROOT"
"$VENV/bin/ruff" check src tests bench
"$VENV/bin/ruff" format --check src tests bench
"$VENV/bin/mypy"
"$VENV/bin/mypy" --strict src/genledger/client
"$VENV/bin/pytest" -q -rs --cov --cov-report=term-missing:skip-covered "$@"
if [ "$#" -eq 0 ]; then
  "$VENV/bin/python" scripts/audit_dependencies.py
  "$VENV/bin/python" scripts/coverage_floors.py --lines "$LINES_FLOOR" --branches "$BRANCHES_FLOOR"
fi
