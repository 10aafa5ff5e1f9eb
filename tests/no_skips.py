"""pytest plugin (loaded by `addopts`): with CI=true a skipped test fails the run.

A green CI then means every test ran; a test that cannot run in CI is either given what
it needs in .ci/run or removed.
"""

from __future__ import annotations

import pytest

from tests.services import IN_CI


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter is not None else 0
    if IN_CI and skipped and exitstatus == pytest.ExitCode.OK:
        reporter.write_line(
            f"CI=true and {skipped} test(s) skipped: every test must run in CI "
            "(install what it needs in .ci/run, or remove the test)",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
