"""Running the toolkit from the tests: the engine in-process (``check``, as ``optout check`` runs it) and the real
command line in a subprocess (``run_cli``, ``cli_json``), from the repository's root."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from middlewares.policy import Decision

ROOT = Path(__file__).resolve().parent.parent.parent


def check(urls: list[str] | str, timeout: float = 5.0, blocklist=None, **policy: object) -> list[Decision]:
    """Run the same engine as `optout check`, in-process, against real loopback servers."""
    # Imported here so the parser unit tests do not depend on the whole engine importing.
    from crawler.check import Checker
    from crawler.fetcher import RequestsFetcher
    from crawler.identity import user_agent_for
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
