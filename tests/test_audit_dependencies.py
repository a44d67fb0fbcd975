"""scripts/audit_dependencies.py: a vulnerability fails the build, an unreachable service says so
and does not, and a crash of pip-audit is a failure of its own."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).parents[1] / "scripts" / "audit_dependencies.py"


@pytest.fixture(scope="module")
def audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_dependencies", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(*dependencies: dict) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


def test_a_known_vulnerability_fails(audit):
    vulnerable = {
        "name": "jinja2",
        "version": "3.1.2",
        "vulns": [{"id": "GHSA-h5c8", "fix_versions": ["3.1.3"]}],
    }
    status, message = audit.verdict(
        1, report({"name": "orjson", "version": "3.10.0", "vulns": []}, vulnerable), ""
    )
    assert status == 1 and "jinja2 3.1.2: GHSA-h5c8 (fixed in 3.1.3)" in message


def test_clean_dependencies_pass(audit):
    status, message = audit.verdict(0, report({"name": "orjson", "version": "3.10.0", "vulns": []}), "")
    assert status == 0 and "no known vulnerabilities in 1 dependencies" in message


def test_nothing_audited_is_said_plainly_and_does_not_fail(audit):
    skipped = {"name": "aiohttp", "skip_reason": "Dependency not found on PyPI and could not be audited"}
    status, message = audit.verdict(0, report(skipped), "No known vulnerabilities found")
    assert status == 0 and "NOT audited" in message and "WARNING" in message


def test_an_unreachable_service_is_said_plainly_and_does_not_fail(audit):
    stderr = "Traceback ...\nrequests.exceptions.ConnectionError: Max retries exceeded (NameResolutionError)"
    status, message = audit.verdict(1, "", stderr)
    assert status == 0 and "unreachable" in message and "NOT audited" in message


def test_any_other_failure_of_pip_audit_fails(audit):
    status, message = audit.verdict(2, "", "pip-audit: error: unrecognized arguments: --bogus")
    assert status == 2 and "unrecognized arguments" in message
