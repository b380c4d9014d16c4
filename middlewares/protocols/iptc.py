"""IPTC Photo Metadata 2023.1 "Data Mining" (PLUS ``plus:DataMining`` in XMP) — PROTOCOLS.md §7.1, §10.3.

The property holds one URI from the PLUS Data Mining vocabulary. Writers spell it three ways, all accepted: the
full URI (``http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED``), the bare code (``DMI-PROHIBITED``), or the
ExifTool print label (``Prohibited``). Codes are normalised on the last path segment, labels on a
case-/dash-/space-insensitive comparison.

Mapping to purposes follows the §7.1 table; for ``ai-input`` §10.3 says "TDM-prohibiting values -> disallow",
i.e. the values whose TDM column is *disallow*. ``DMI-PROHIBITED-GENAIMLTRAINING`` only restricts *generative*
training: strict mode cannot tell whether the crawler trains a generative model, so it is ``unknown``; the
conservative reading treats any AI training as possibly generative and disallows it.
"""

from __future__ import annotations

import re

from .signals import Mode, Purpose, Signal, Verdict
from .xmp import XmpDoc

PROTOCOL = "iptc"
PLUS_NS = "http://ns.useplus.org/ldf/xmp/1.0/"
PLUS_VOCAB = "http://ns.useplus.org/ldf/vocab/"
IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"

A, D, U = Verdict.ALLOW, Verdict.DISALLOW, None

# code -> (TRAIN_AI, AI_INPUT, SEARCH); None = unknown (the purpose is left out of the signal's verdicts).
_TABLE: dict[str, tuple[Verdict | None, Verdict | None, Verdict | None]] = {
    "DMI-UNSPECIFIED": (U, U, U),
    "DMI-ALLOWED": (A, A, A),
    "DMI-PROHIBITED-AIMLTRAINING": (D, U, U),
    "DMI-PROHIBITED-GENAIMLTRAINING": (D, U, U),  # TRAIN_AI: conservative only, see module docstring
    "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING": (D, D, A),
    "DMI-PROHIBITED": (D, D, D),
    "DMI-PROHIBITED-SEECONSTRAINT": (D, D, D),
    "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR": (D, D, D),
    "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR": (D, D, D),
}

_LABELS = {
    "unspecified - no prohibition defined": "DMI-UNSPECIFIED",
    "unspecified": "DMI-UNSPECIFIED",
    "allowed": "DMI-ALLOWED",
    "prohibited for ai/ml training": "DMI-PROHIBITED-AIMLTRAINING",
    "prohibited for generative ai/ml training": "DMI-PROHIBITED-GENAIMLTRAINING",
    "prohibited except for search engine indexing": "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING",
    "prohibited": "DMI-PROHIBITED",
    "prohibited, see plus:otherconstraints": "DMI-PROHIBITED-SEECONSTRAINT",
    "prohibited, see iptcext:embdencrightsexpr": "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR",
    "prohibited, see iptcext:linkedencrightsexpr": "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR",
}

_DASHES = re.compile("[\u2010-\u2015\u2212]")
_SPACES = re.compile(r"\s+")
_SEGMENT = re.compile(r"[/#:]")


def _label_key(text: str) -> str:
    return _SPACES.sub(" ", _DASHES.sub("-", text.strip().lower()))


def normalise(value: str) -> str | None:
    """The vocabulary code for a written value (URI, bare code or label), or ``None`` if it is none of them."""
    text = value.strip()
    if not text:
        return None
    segment = _SEGMENT.split(text.rstrip("/"))[-1].strip().upper()
    if segment.startswith("DMI-"):
        return segment
    return _LABELS.get(_label_key(text))


def signals(xmp: XmpDoc, *, mode: Mode) -> list[Signal]:
    """One signal per ``plus:DataMining`` value found (normally one). Conservative mode also reads the same
    local name in the IPTC Extension namespace, which some tools wrote before the PLUS property was settled."""
    if xmp is None:
        return []
    found = [(v, "plus:DataMining") for v in xmp.values(PLUS_NS, "DataMining")]
    if mode is Mode.CONSERVATIVE:
        found += [(v, "Iptc4xmpExt:DataMining") for v in xmp.values(IPTC_EXT_NS, "DataMining")]
    constraints = [c for c in xmp.values(PLUS_NS, "OtherConstraints") if c][:3]
    out: list[Signal] = []
    for value, prop in found[:16]:
        out.append(_signal(value, prop, constraints, mode))
    return out


def _signal(value: str, prop: str, constraints: list[str], mode: Mode) -> Signal:
    code = normalise(value)
    notes: list[str] = []
    if prop != "plus:DataMining":
        notes.append(f"non-standard property {prop}")
    if code is None or code not in _TABLE:
        shown = code or value[:100]
        if mode is Mode.CONSERVATIVE and code is not None and code.startswith("DMI-PROHIBITED"):
            # An unknown refinement of "prohibited": it prohibits at least AI training.
            triple: tuple[Verdict | None, Verdict | None, Verdict | None] = (D, U, U)
            notes.append(f"unknown Data Mining value {shown}: read as prohibiting AI training (conservative)")
        else:
            triple = (U, U, U)
            notes.append(f"unknown Data Mining value {shown}: no statement")
    else:
        triple = _TABLE[code]
        if code == "DMI-PROHIBITED-GENAIMLTRAINING" and mode is Mode.STRICT:
            triple = (U, U, U)
            notes.append("prohibits generative AI training only: train-ai unknown (strict)")
        elif code == "DMI-PROHIBITED-GENAIMLTRAINING":
            notes.append("prohibits generative AI training: read as train-ai disallow (conservative)")
        if code == "DMI-PROHIBITED-SEECONSTRAINT" and constraints:
            notes.append("plus:OtherConstraints: " + " | ".join(c[:300] for c in constraints))
        if code.startswith("DMI-PROHIBITED-SEE"):
            notes.append("search disallowed unless a review of the referenced constraint says otherwise")
        if code != value.strip() and not value.strip().startswith(PLUS_VOCAB):
            notes.append(f"value written as {value.strip()[:100]!r} instead of the vocabulary URI")
    purposes = (Purpose.TRAIN_AI, Purpose.AI_INPUT, Purpose.SEARCH)
    verdicts = {p: v for p, v in zip(purposes, triple, strict=True) if v is not None}
    return Signal(
        protocol=PROTOCOL,
        where="xmp",
        value=value[:500],
        rule=f"{prop} = {code or value[:100]}",
        verdicts=verdicts,
        note="; ".join(notes),
    )
