"""Shared fixtures: a fixture web on loopback, and helpers to run the engine and the real CLI against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from crawler.fixtureweb import FixtureWeb
from tests.fleet_support import redis_prefix  # noqa: F401  (a fixture)

if TYPE_CHECKING:
    from middlewares.policy import Decision

ROOT = Path(__file__).resolve().parent.parent

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


def check(urls: list[str] | str, timeout: float = 5.0, blocklist=None, **policy: object) -> list[Decision]:
    """Run the same engine as `optout check`, in-process, against real loopback servers."""
    # Imported here so the parser unit tests do not depend on the whole engine importing.
    from crawler.check import Checker
    from crawler.cli import user_agent_for
    from crawler.fetcher import RequestsFetcher
    from middlewares.policy import Policy

    pol = Policy.build(**{"agent": "ExampleBot", **policy})  # type: ignore[arg-type]
    fetcher = RequestsFetcher(user_agent_for(pol.agent), timeout=timeout)
    try:
        checker = Checker(pol, fetcher, blocklist)
        return [checker.check(u) for u in ([urls] if isinstance(urls, str) else urls)]
    finally:
        fetcher.close()


def protocols(decision: Decision) -> set[str]:
    return {s.protocol for s in decision.reservations}


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crawler.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def cli_json(*args: str) -> tuple[int, list[dict[str, object]]]:
    proc = run_cli("check", "--json", *args)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, lines
