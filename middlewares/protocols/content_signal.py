"""Cloudflare Content Signals: the robots.txt ``Content-Signal:`` line and its de-facto HTTP header form
(PROTOCOLS.md §4).

Syntax: comma-separated ``key=value`` pairs; keys ``search``, ``ai-input``, ``ai-train`` with values ``yes`` /
``no`` (missing key = neither granted nor restricted) and the 2026 ``use=immediate|reference|full`` extension.
Keys are read case-insensitively, like every robots.txt key. There is no formal grammar, so the parser is
lenient about whitespace and skips malformed pairs (with a note) instead of rejecting the whole line: a stray
token must not hide ``ai-train=no`` next to it.

Modes:
* strict accepts only ``yes`` / ``no`` (any letter case) and ignores ``use``;
* conservative also accepts ``y|allow|allowed|true`` and ``n|disallow|disallowed|false`` (values seen from
  third-party middleware, §4.3) and reads ``use=immediate`` / ``use=reference`` as a training reservation
  (training retains and reuses content, which both levels exclude; §4.2). ``use=full`` restricts nothing.

A key given twice with different values resolves to ``no`` in both modes: each ``no`` is an express reservation
(the comment block Cloudflare ships calls it one under Art. 4 of Directive 2019/790) and there is no spec rule
saying a later pair withdraws it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .signals import Mode, Purpose, Signal, Verdict

if TYPE_CHECKING:
    from .robots import Extension

PROTOCOL = "content-signal"
MAX_VALUE_CHARS = 16 * 1024
MAX_PAIRS = 256
MAX_LINES = 1024

KEYS: dict[str, Purpose] = {"search": Purpose.SEARCH, "ai-input": Purpose.AI_INPUT, "ai-train": Purpose.TRAIN_AI}

_STRICT_VALUES = {"yes": Verdict.ALLOW, "no": Verdict.DISALLOW}
_LENIENT_VALUES = {
    **_STRICT_VALUES,
    "y": Verdict.ALLOW,
    "allow": Verdict.ALLOW,
    "allowed": Verdict.ALLOW,
    "true": Verdict.ALLOW,
    "n": Verdict.DISALLOW,
    "disallow": Verdict.DISALLOW,
    "disallowed": Verdict.DISALLOW,
    "false": Verdict.DISALLOW,
}
# `use` levels, least to most permissive (§4.2). Below `full`, content may not be retained, so no training.
USE_RESTRICTING = frozenset({"immediate", "reference"})
USE_LEVELS = frozenset({"immediate", "reference", "full"})


def _parse(value: str, mode: Mode) -> tuple[dict[str, Verdict], list[str]]:
    """Pairs of one Content-Signal value → ({key: verdict}, notes). Keys: search, ai-input, ai-train, use."""
    notes: list[str] = []
    if len(value) > MAX_VALUE_CHARS:
        notes.append(f"value truncated to {MAX_VALUE_CHARS} characters")
        value = value[:MAX_VALUE_CHARS]
    table = _LENIENT_VALUES if mode is Mode.CONSERVATIVE else _STRICT_VALUES
    out: dict[str, Verdict] = {}
    for part in value.split(",")[:MAX_PAIRS]:
        part = part.strip(" \t\r\n")
        if not part:
            continue
        key, sep, raw = part.partition("=")
        key, raw = key.strip(" \t").lower(), raw.strip(" \t").strip("\"'").strip(" \t")
        if not sep or not key:
            notes.append(f"ignored malformed pair {_clip(part)!r}")
            continue
        word = raw.lower()
        if key == "use":
            if word not in USE_LEVELS:
                notes.append(f"unknown use level {_clip(raw)!r}")
                continue
            if word in USE_RESTRICTING:
                if mode is Mode.CONSERVATIVE:
                    verdict = Verdict.DISALLOW
                else:
                    notes.append(f"use={word} has no defined training meaning in strict mode")
                    continue
            else:
                continue  # use=full: no restriction from this key
        elif key in KEYS:
            found = table.get(word)
            if found is None:
                notes.append(f"unrecognised value {key}={_clip(raw)!r}")
                continue
            verdict = found
        else:
            continue  # unknown keys carry no meaning for us
        previous = out.get(key)
        if previous is not None and previous is not verdict:
            notes.append(f"{key} given with conflicting values; the reservation is kept")
            verdict = Verdict.DISALLOW
        out[key] = verdict
    return out, notes


def _clip(text: str, limit: int = 60) -> str:
    text = "".join(c if c.isprintable() else "\ufffd" for c in text[: limit + 1])
    return text if len(text) <= limit else text[:limit] + "…"


def parse_content_signal(value: str, *, mode: Mode) -> dict[str, Verdict]:
    """Decisive pairs of a Content-Signal value: ``{"search"|"ai-input"|"ai-train": ALLOW|DISALLOW}`` and, in
    conservative mode, ``{"use": DISALLOW}`` for ``use=immediate|reference``. Keys not present are unknown."""
    if not isinstance(value, str):
        value = bytes(value).decode("utf-8", "replace")
    return _parse(value, mode)[0]


def _to_purposes(parsed: dict[str, Verdict]) -> tuple[dict[Purpose, Verdict], list[str]]:
    verdicts: dict[Purpose, Verdict] = {}
    notes: list[str] = []
    for key, verdict in parsed.items():
        if key in KEYS:
            verdicts[KEYS[key]] = verdict
    if parsed.get("use") is Verdict.DISALLOW and verdicts.get(Purpose.TRAIN_AI) is not Verdict.DISALLOW:
        if verdicts.get(Purpose.TRAIN_AI) is Verdict.ALLOW:
            notes.append("ai-train=yes contradicted by use below full; the reservation is kept")
        verdicts[Purpose.TRAIN_AI] = Verdict.DISALLOW
        notes.append("use below full read as no training (content may not be retained)")
    return verdicts, notes


def _signal(value: str, where: str, rule: str, mode: Mode, source: str) -> Signal | None:
    parsed, notes = _parse(value, mode)
    verdicts, more = _to_purposes(parsed)
    if not verdicts:
        return None
    return Signal(
        protocol=PROTOCOL,
        where=where,
        value=_clip(value, 300),
        rule=rule,
        verdicts=verdicts,
        source=source,
        note="; ".join(notes + more),
    )


def robots_signals(lines: Iterable[Extension], *, mode: Mode, group: str = "", source: str = "") -> list[Signal]:
    """One signal per ``Content-Signal`` line of the selected robots.txt group (label matched
    case-insensitively, vector 55). Comments carry nothing (vector 53): the robots parser has already removed
    them. ``group`` (e.g. ``"User-agent: *"``) is shown in the rule text."""
    out: list[Signal] = []
    suffix = f" ({group})" if group else ""
    for count, ext in enumerate(lines):
        if count >= MAX_LINES:
            break
        if str(getattr(ext, "key", "")).lower() != "content-signal":
            continue
        value = str(getattr(ext, "value", ""))
        line = getattr(ext, "line", 0)
        sig = _signal(value, "robots.txt", f"line {line}: Content-Signal: {_clip(value, 200)}{suffix}", mode, source)
        if sig is not None:
            out.append(sig)
    return out


def header_signals(values: list[str], *, mode: Mode) -> list[Signal]:
    """One signal per ``Content-Signal`` response-header line (§4.3, de-facto)."""
    out: list[Signal] = []
    for value in values[:MAX_LINES]:
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("latin-1")
        if not isinstance(value, str):
            continue
        value = value.strip()
        sig = _signal(value, "header", f"Content-Signal: {_clip(value, 200)}", mode, "")
        if sig is not None:
            out.append(sig)
    return out
