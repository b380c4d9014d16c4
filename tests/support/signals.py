"""Properties every parser's signals share, for the fuzz tests.

A fuzz test that only says "no crash" lets a parser return anything at all; these pin what it may return, so a
mutated verdict, purpose or protocol name fails the fuzz tests too.
"""

from __future__ import annotations

from collections.abc import Iterable

from middlewares.protocols.signals import ALL_PURPOSES, Purpose, Signal, Verdict


def well_formed(signals: Iterable[Signal], protocol: str, purposes: Iterable[Purpose] = ALL_PURPOSES) -> set[Purpose]:
    """Assert that each signal is ``protocol``'s, speaks only to ``purposes`` with a definite verdict (UNKNOWN is
    said by leaving a purpose out), and return the purposes they deny."""
    allowed = set(purposes)
    denied: set[Purpose] = set()
    for signal in signals:
        assert signal.protocol == protocol, signal
        assert set(signal.verdicts) <= allowed, signal
        assert all(v in (Verdict.ALLOW, Verdict.DISALLOW) for v in signal.verdicts.values()), signal
        denied |= {p for p in allowed if signal.denies(p)}
    return denied
