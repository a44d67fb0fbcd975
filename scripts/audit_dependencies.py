"""Audit the installed dependencies with pip-audit: fail on a known vulnerability, never on an
unreachable vulnerability service, and say plainly which of the two happened.

pip-audit reports "No known vulnerabilities found" and exits 0 even when it could audit
nothing (every package "not found on PyPI": the JSON API it asks is unreachable or proxied),
and crashes with a traceback when it cannot resolve its service. So its JSON is read here:

- a dependency with vulnerabilities: they are listed, exit 1;
- the service unreachable, or not one dependency audited: "NOT audited" and why, exit 0;
- anything else pip-audit could not do: its output, exit 2.

Usage: python scripts/audit_dependencies.py [pip-audit arguments]  (run by scripts/test.sh)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

TIMEOUT_S = 300
UNREACHABLE = (
    "ConnectionError",
    "NameResolutionError",
    "Max retries exceeded",
    "Failed to resolve",
    "Temporary failure in name resolution",
    "timed out",
    "ReadTimeout",
    "ConnectTimeout",
)


def verdict(returncode: int, stdout: str, stderr: str) -> tuple[int, str]:
    """The exit status and the message for one pip-audit run's output (``--format json``)."""
    try:
        report: Any = json.loads(stdout)
        dependencies: list[dict[str, Any]] = report["dependencies"]
    except (ValueError, KeyError, TypeError):
        if any(sign in stderr for sign in UNREACHABLE):
            last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
            warning = "pip-audit: WARNING: the vulnerability service is unreachable; dependencies NOT audited"
            return 0, f"{warning}\n  {last}"
        return 2, f"pip-audit failed (exit {returncode}):\n{stderr.strip() or stdout.strip()}"
    vulnerable = [d for d in dependencies if d.get("vulns")]
    if vulnerable:
        lines = [
            f"  {d['name']} {d.get('version', '?')}: {v.get('id')} (fixed in {_fixes(v)})"
            for d in vulnerable
            for v in d["vulns"]
        ]
        return 1, "pip-audit: known vulnerabilities:\n" + "\n".join(lines)
    skipped = [d for d in dependencies if d.get("skip_reason")]
    audited = len(dependencies) - len(skipped)
    if audited == 0:
        reason = skipped[0]["skip_reason"] if skipped else "no dependencies listed"
        return 0, (
            f"pip-audit: WARNING: not one of {len(dependencies)} dependencies could be audited "
            f"(the vulnerability service is unreachable?); dependencies NOT audited.\n  e.g. {reason}"
        )
    note = f" ({len(skipped)} skipped: not on PyPI)" if skipped else ""
    return 0, f"pip-audit: no known vulnerabilities in {audited} dependencies{note}"


def _fixes(vulnerability: dict[str, Any]) -> str:
    return ", ".join(vulnerability.get("fix_versions") or []) or "no release"


def main(arguments: list[str]) -> int:
    pip_audit = Path(sys.executable).with_name("pip-audit")
    command = [str(pip_audit), "--progress-spinner", "off", "--skip-editable", "--format", "json", *arguments]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        print(f"pip-audit: WARNING: no answer within {TIMEOUT_S}s; dependencies NOT audited", file=sys.stderr)
        return 0
    except FileNotFoundError:
        print(f"pip-audit is not installed at {pip_audit} (it comes with the dev extra)", file=sys.stderr)
        return 2
    status, message = verdict(done.returncode, done.stdout, done.stderr)
    print(message, file=sys.stderr if status else sys.stdout)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
