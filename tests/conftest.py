from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from tests.services import services_required

if TYPE_CHECKING:
    from genledger.ledger import Ledger


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    from tests.e2e.sdk_operations import RESULTS, summary_lines

    for line in summary_lines(config.stash.get(RESULTS, {})):
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # Under GENLEDGER_REQUIRE_SERVICES=1 (CI) a skipped test is a failure: every test must run.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if services_required() and reporter is not None and reporter.stats.get("skipped"):
        reporter.write_line(
            f"FAILED: {len(reporter.stats['skipped'])} test(s) skipped under GENLEDGER_REQUIRE_SERVICES=1",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
async def ledger(database_url: str) -> AsyncIterator[Ledger]:
    """The ledger on the test module's ``database_url``, opened (migrated) and closed around a test."""
    from genledger.ledger import Ledger  # the client's tests must not load the server

    ledger = await Ledger.open(database_url)
    try:
        yield ledger
    finally:
        await ledger.close()
