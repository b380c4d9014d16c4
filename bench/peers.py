"""What the benchmarks that run a peer side by side share: alternating rounds, and the way their figures print.

Every side runs once a round, one at a time (never two at once: on 2 cores the slower side would finish alone and
the ratio would be pulled towards 1), the order reversed every other round (a b, b a, a b, …) so that a drift of
a shared machine's speed hits every side alike. A figure is the median of the rounds with its spread (min–max);
a ratio is the ratio of the medians, with the per-round ratios beside it.
"""

from __future__ import annotations

import shlex
import statistics
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TypeVar

T = TypeVar("T")
MIN_ROUNDS = 5


def command_line() -> str:
    """The command that produced the figures, printed above them."""
    return "$ python " + shlex.join(sys.argv)


def alternate(rounds: int, sides: Sequence[str], run: Callable[[str], T]) -> dict[str, list[T]]:
    """``run(side)`` for every side, ``rounds`` times, one at a time, in alternating order."""
    if rounds < MIN_ROUNDS:
        print(f"({rounds} round(s): fewer than {MIN_ROUNDS}, not a figure to quote)")
    out: dict[str, list[T]] = {side: [] for side in sides}
    for r in range(rounds):
        for side in sides if r % 2 == 0 else list(reversed(sides)):
            out[side].append(run(side))
    return out


def spread(values: Sequence[float], fmt: str = ",.0f") -> str:
    """``median (min–max)``."""
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"


def ratio(ours: Sequence[float], peer: Sequence[float]) -> str:
    """The ratio of the medians, and the spread of the per-round ratios (round r of one side against round r of
    the other: they ran next to each other)."""
    per_round = [o / p for o, p in zip(ours, peer, strict=True) if p]
    of_medians = statistics.median(ours) / statistics.median(peer)
    return f"{of_medians:.3f} (per round {min(per_round):.3f}–{max(per_round):.3f})"


def fresh_pg_schema() -> AbstractContextManager[str]:
    """The URL of a schema of its own on the tests' PostgreSQL ($OPTOUT_TEST_PG_URL), dropped afterwards."""
    from tests.support.registry import pg_schema_url

    return contextmanager(pg_schema_url)()
