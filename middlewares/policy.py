"""The policy engine: combine every signal found for a URL into one answer for one purpose, with its reasons.

The rule is AIPREF's "most restrictive wins" (vocab §5.1) applied across protocols: any signal that denies the
purpose denies it, and an explicit allow never lifts another source's deny (PROTOCOLS.md §10.4). Purpose
separation lives in the signals themselves: a training reservation carries no SEARCH verdict, so it can never
block search indexing. TDMRep is first resolved internally by its own priority order, because its spec says a
later source supersedes an earlier one; conservative mode keeps every reservation it saw.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from middlewares.protocols import tdmrep
from middlewares.protocols.signals import PROTOCOLS, Mode, Purpose, Signal

# Protocols that cannot be switched off: they are what RFC 9309 and the Code of Practice require, and "fetch"
# is how the engine fails closed.
MANDATORY_PROTOCOLS = frozenset({"robots", "access", "fetch", "blocklist"})

DEFAULT_AGENT = "OptOutBot"


class PolicyError(ValueError):
    """A policy setting that cannot be used (unknown purpose, mode or protocol)."""


def parse_purpose(value: str | Purpose) -> Purpose:
    """The purpose a setting or argument names, in any case; PolicyError listing the choices otherwise."""
    try:
        return Purpose(str(getattr(value, "value", value)).strip().lower())
    except ValueError:
        choices = ", ".join(p.value for p in Purpose)
        raise PolicyError(f"unknown purpose {value!r} (choose one of: {choices})") from None


def parse_mode(value: str | Mode) -> Mode:
    """The reading mode a setting or argument names (conservative or strict); PolicyError otherwise."""
    try:
        return Mode(str(getattr(value, "value", value)).strip().lower())
    except ValueError:
        raise PolicyError(f"unknown mode {value!r} (choose conservative or strict)") from None


def parse_agent(value: str) -> str:
    """The crawler's robots.txt product token (RFC 9309 §2.2.1, digits accepted as real crawlers use them)."""
    token = (value or "").strip()
    if not token or not all(c.isascii() and (c.isalnum() or c in "-_") for c in token):
        raise PolicyError(f"invalid agent token {value!r} (letters, digits, '-' and '_' only)")
    return token


@dataclass(frozen=True)
class Policy:
    """What the operator declared: the purpose, its crawler token and how literally to read the specs."""

    purpose: Purpose = Purpose.TRAIN_AI
    agent: str = DEFAULT_AGENT
    mode: Mode = Mode.CONSERVATIVE
    disabled: frozenset[str] = frozenset()
    # Conservative EU training posture (PROTOCOLS.md §8.2 item 4): a disallow aimed at well-known training
    # crawlers is a reservation against AI training even for a token the site has never heard of.
    cross_token: bool = True

    @classmethod
    def build(
        cls,
        purpose: str | Purpose = Purpose.TRAIN_AI,
        agent: str = DEFAULT_AGENT,
        mode: str | Mode = Mode.CONSERVATIVE,
        disabled: Iterable[str] = (),
        cross_token: bool = True,
    ) -> Policy:
        """A checked policy from settings or arguments: unknown protocols are refused, and so is switching off the
        mandatory ones (robots, access, fetch, blocklist)."""
        off = frozenset(p.strip().lower() for p in disabled if p.strip())
        unknown = off - set(PROTOCOLS)
        if unknown:
            raise PolicyError(f"unknown protocol(s) {', '.join(sorted(unknown))} (known: {', '.join(PROTOCOLS)})")
        mandatory = off & MANDATORY_PROTOCOLS
        if mandatory:
            raise PolicyError(f"protocol(s) {', '.join(sorted(mandatory))} cannot be switched off")
        return cls(parse_purpose(purpose), parse_agent(agent), parse_mode(mode), off, cross_token)

    @property
    def lenient(self) -> bool:
        """Lenient user-agent matching (``ExampleBot/1.0`` names ExampleBot) in conservative mode only."""
        return self.mode is Mode.CONSERVATIVE

    @property
    def conservative(self) -> bool:
        """Whether doubtful or conflicting statements count as reservations (the default), rather than only what each
        spec strictly says."""
        return self.mode is Mode.CONSERVATIVE

    def decide(self, url: str, signals: Iterable[Signal], errors: Iterable[str] = ()) -> Decision:
        """The answer for ``url``: disabled protocols ignored, TDMRep resolved by its own order, then any signal that
        denies the purpose is a reservation (most restrictive wins)."""
        observed = [s for s in signals if s.protocol not in self.disabled]
        if not observed:  # most pages: nothing to resolve or weigh
            return Decision(url, self.purpose, self.agent, self.mode, True, errors=tuple(errors))
        observed = resolve_tdmrep(observed, self.mode)
        reservations = [s for s in observed if s.denies(self.purpose)]
        return Decision(
            url=url,
            purpose=self.purpose,
            agent=self.agent,
            mode=self.mode,
            allowed=not reservations,
            reservations=tuple(reservations),
            signals=tuple(observed),
            errors=tuple(errors),
        )


def resolve_tdmrep(signals: list[Signal], mode: Mode) -> list[Signal]:
    """Replace the TDMRep signals by TDMRep's own effective answer, keeping the others in place."""
    tdm = [s for s in signals if s.protocol == "tdmrep"]
    if len(tdm) < 2:
        return signals
    kept = tdmrep.effective(tdm, mode=mode)
    others = [s for s in signals if s.protocol != "tdmrep"]
    return others + list(kept)


@dataclass(slots=True)
class Decision:
    """The answer for one URL and purpose, with every signal that denied it and everything else observed. Tuples, not
    lists: a crawl keeps one per page in ``request.meta``, and Scrapy's responses are freed by the garbage collector
    (a response and its cached selector refer to each other): empty tuples are one shared object the collector does not
    track, where three empty lists were three more objects a page for it to walk."""

    url: str
    purpose: Purpose
    agent: str
    mode: Mode
    allowed: bool
    reservations: tuple[Signal, ...] = ()
    signals: tuple[Signal, ...] = ()
    errors: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """The `check --json` contract of DESIGN.md."""
        return {
            "url": self.url,
            "purpose": self.purpose.value,
            "agent": self.agent,
            "mode": self.mode.value,
            "allowed": self.allowed,
            "reservations": [signal_json(s) for s in self.reservations],
            "errors": list(self.errors),
        }


def signal_json(signal: Signal) -> dict[str, object]:
    """A signal in the form of the ``check --json`` contract (DESIGN.md), also used in item stamps."""
    out: dict[str, object] = {
        "protocol": signal.protocol,
        "source": signal.source,
        "where": signal.where,
        "value": signal.value,
        "rule": signal.rule,
        "purposes": signal.denied_purposes(),
    }
    if signal.note:
        out["note"] = signal.note
    return out


def with_source(signals: Iterable[Signal], source: str) -> list[Signal]:
    """Fill in the document URL on signals whose parser could not know it."""
    return [s if s.source else s.sourced(source) for s in signals]
