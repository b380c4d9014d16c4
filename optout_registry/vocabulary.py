"""One vocabulary for everything a person reads: the protocol ids of the ``check`` contract, with the place the
signal was found ("where") beside them.

The crawler decides with protocol ids (``robots``, ``tdmrep``, ``content-usage``, ``robots-tag``, ``iptc``, …,
DESIGN.md) and a ``where`` (``robots.txt``, ``well-known``, ``header``, ``html-meta``, ``xmp``, ``url``, …).
Registry records carry a finer ``mechanism`` (REGISTRY.md §6.2: ``robots.txt``, ``tdmrep.wellknown``,
``aipref.header``, ``x-robots-tag``, ``meta-robots``, ``iptc.xmp``, …). Records are hashed into the Merkle log, so
they keep ``mechanism`` exactly as written; the report, ``optout check``, ``optout registry records``, export
summaries, the offline verifier's report and the service all show :func:`describe` of it instead. This module is
the one table both directions come from: the recorder writes :data:`MECHANISMS`, readers map back with
:func:`describe` (records written by any earlier version included). It imports nothing, so the standalone
verifier can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Protocol ids of the `check` contract (DESIGN.md), in the order the README's table lists them.
PROTOCOL_IDS = (
    "robots",
    "tdmrep",
    "content-usage",
    "content-signal",
    "robots-tag",
    "ai-txt",
    "rsl",
    "iptc",
    "c2pa",
    "access",
    "blocklist",
    "fetch",
)

# (protocol id, where) -> the record's mechanism. Pairs not listed are written as the protocol id itself, and
# failures to fetch as "<where>.unreachable" ("fetch.failed" for the resource).
MECHANISMS: dict[tuple[str, str], str] = {
    ("robots", "robots.txt"): "robots.txt",
    ("tdmrep", "well-known"): "tdmrep.wellknown",
    ("tdmrep", "header"): "tdmrep.header",
    ("tdmrep", "html-meta"): "tdmrep.meta",
    ("tdmrep", "opf"): "tdmrep.epub",
    ("tdmrep", "xmp"): "tdmrep.xmp",
    ("content-usage", "header"): "aipref.header",
    ("content-usage", "robots.txt"): "aipref.robots",
    ("robots-tag", "header"): "x-robots-tag",
    ("robots-tag", "html-meta"): "meta-robots",
    ("iptc", "xmp"): "iptc.xmp",
    ("fetch", "robots.txt"): "robots.txt.unreachable",
}
_BY_MECHANISM = {mechanism: pair for pair, mechanism in MECHANISMS.items()}
# Mechanism prefixes of REGISTRY.md that name a protocol by another name.
_PREFIXES = {"aipref": "content-usage", "tdmrep": "tdmrep", "iptc": "iptc", "robots": "robots", "c2pa": "c2pa"}


def mechanism_of(protocol: str, where: str) -> str:
    """The mechanism a record is written with for a signal of ``protocol`` found at ``where``."""
    found = MECHANISMS.get((protocol, where))
    if found:
        return found
    if protocol == "fetch":
        return f"{where}.unreachable" if where != "url" else "fetch.failed"
    return protocol


def from_mechanism(mechanism: str) -> tuple[str, str]:
    """(protocol id, where) for a record's mechanism; ``where`` is "" when the mechanism does not say."""
    mechanism = str(mechanism or "")
    if mechanism in _BY_MECHANISM:
        return _BY_MECHANISM[mechanism]
    if mechanism in PROTOCOL_IDS:
        return mechanism, ""
    if mechanism == "fetch.failed":
        return "fetch", "url"
    if mechanism.endswith(".unreachable"):
        return "fetch", mechanism[: -len(".unreachable")]
    head, _, tail = mechanism.partition(".")
    if head in _PREFIXES:
        return _PREFIXES[head], tail
    return mechanism, ""


def describe(record: Mapping[str, Any]) -> tuple[str, str]:
    """(protocol id, where) of a registry record: what its rule says it was, else what its mechanism maps to."""
    rule = record.get("rule")
    if isinstance(rule, Mapping):
        protocol, where = rule.get("protocol"), rule.get("where")
        if isinstance(protocol, str) and protocol in PROTOCOL_IDS:
            return protocol, where if isinstance(where, str) else from_mechanism(str(record.get("mechanism")))[1]
    return from_mechanism(str(record.get("mechanism", "")))


def label(record: Mapping[str, Any]) -> str:
    """``protocol (where)`` for one-line output, e.g. ``robots-tag (html-meta)``."""
    protocol, where = describe(record)
    return f"{protocol} ({where})" if where else protocol


def rule_text(record: Mapping[str, Any]) -> str:
    """The rule a record rests on, as a person reads it: the rule text the crawler wrote, or its fields."""
    rule = record.get("rule")
    if not isinstance(rule, Mapping):
        return "" if rule is None else str(rule)
    text = rule.get("rule")
    if isinstance(text, str) and text:
        return text
    parts = [f"{k}: {v}" for k, v in rule.items() if k not in ("protocol", "where", "mode", "source") and v != ""]
    return "; ".join(parts)
