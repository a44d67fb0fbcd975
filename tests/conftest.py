from __future__ import annotations

import pytest

from tests.services import services_required


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Under GENLEDGER_REQUIRE_SERVICES=1 (CI) a skipped test is a failure: every test must run.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if services_required() and reporter is not None and reporter.stats.get("skipped"):
        reporter.write_line(
            f"FAILED: {len(reporter.stats['skipped'])} test(s) skipped under GENLEDGER_REQUIRE_SERVICES=1",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
