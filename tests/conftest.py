"""Shared fixtures (a fixture web on loopback, a Redis key prefix) and the switch that turns skips into failures in
CI. Helpers that tests import live in tests/support/."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from crawler.fixtureweb import FixtureWeb
from tests.support.browser import browser  # noqa: F401  (a fixture: one headless Chromium per test module)
from tests.support.fleet import redis_prefix  # noqa: F401  (a fixture)

# .ci/run sets this: there, a test that would skip because PostgreSQL, Redis, redis-server, Chromium, node or an
# extra is missing fails instead, so a green CI run means every test ran. On a laptop, skips stay skips (each
# prints its reason).
REQUIRE_SERVICES = os.environ.get("OPTOUT_REQUIRE_SERVICES") == "1"


def _as_failure(report: pytest.TestReport | pytest.CollectReport) -> None:
    if REQUIRE_SERVICES and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but OPTOUT_REQUIRE_SERVICES=1 requires it to run: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    _as_failure(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    outcome = yield
    _as_failure(outcome.get_result())


@pytest.fixture
def web() -> Iterator[FixtureWeb]:
    with FixtureWeb() as fixture:
        yield fixture
