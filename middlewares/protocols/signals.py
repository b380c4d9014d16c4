"""Typed values shared by every protocol parser and the policy engine.

Parsers turn bytes and headers into :class:`Signal` objects: one statement of one protocol, with what it says
per purpose. The policy engine only ever combines signals; it never looks at protocol syntax. Keeping this
vocabulary in one small module is what lets each parser stay a pure function with no knowledge of the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from optout_registry.vocabulary import PROTOCOL_IDS


class Purpose(str, Enum):
    """What the crawler operator intends to do with the content (DESIGN.md "Purposes")."""

    TRAIN_AI = "train-ai"
    AI_INPUT = "ai-input"
    SEARCH = "search"


class Verdict(str, Enum):
    """Tri-state result of one signal for one purpose (PROTOCOLS.md conventions)."""

    ALLOW = "allow"
    DISALLOW = "disallow"
    UNKNOWN = "unknown"


class Mode(str, Enum):
    """``conservative`` is the reading an EU training crawler should use; ``strict`` is the literal spec."""

    CONSERVATIVE = "conservative"
    STRICT = "strict"


# Protocol ids of the `check` JSON contract (DESIGN.md): the one table, shared with the registry's records.
PROTOCOLS = PROTOCOL_IDS

AI_PURPOSES = (Purpose.TRAIN_AI, Purpose.AI_INPUT)
ALL_PURPOSES = (Purpose.TRAIN_AI, Purpose.AI_INPUT, Purpose.SEARCH)


@dataclass(frozen=True, slots=True)
class Signal:
    """One machine-readable statement found for a URL, already normalised to per-purpose verdicts.

    ``verdicts`` holds only the purposes the statement speaks to; every other purpose is UNKNOWN.
    ``source`` is the URL of the document the statement came from; parsers that do not know it leave it
    empty and the engine fills it in. ``note`` carries protocol errors and conflicts worth logging.
    """

    protocol: str
    where: str
    value: str
    rule: str
    verdicts: Mapping[Purpose, Verdict] = field(default_factory=dict)
    source: str = ""
    note: str = ""

    def sourced(self, source: str) -> Signal:
        """A copy with ``source`` set (``dataclasses.replace`` is several times slower, and this is per URL)."""
        return Signal(self.protocol, self.where, self.value, self.rule, self.verdicts, source, self.note)

    def verdict(self, purpose: Purpose) -> Verdict:
        """The verdict for one purpose; UNKNOWN when the statement does not speak to it."""
        return self.verdicts.get(purpose, Verdict.UNKNOWN)

    def denies(self, purpose: Purpose) -> bool:
        """Whether the statement reserves ``purpose``: only an explicit DISALLOW does."""
        return self.verdicts.get(purpose) is Verdict.DISALLOW

    def denied_purposes(self) -> list[str]:
        """The names of the purposes it reserves, in a fixed order, for JSON and registry records."""
        return [p.value for p in ALL_PURPOSES if self.denies(p)]


def verdicts(value: Verdict, *purposes: Purpose) -> dict[Purpose, Verdict]:
    """Shorthand for the common case of one verdict applied to several purposes."""
    return {p: value for p in purposes}
