"""IETF AI Preferences: the ``Content-Usage`` HTTP header and robots.txt rule (draft-ietf-aipref-vocab-07,
draft-ietf-aipref-attach-05; PROTOCOLS.md §3).

A preference is an RFC 9651 Structured Field *Dictionary* whose keys are category labels (``train-ai``,
``search``) and whose values are the Tokens ``y`` / ``n``. Everything else is "unknown", not an error, except a
whole-field parse failure (for example an upper-case key), which makes every preference unknown.

Parsing uses the ``http-sf`` package's RFC 9651 building blocks (key, item / inner list, parameters) in our own
member loop: the package's public ``parse`` applies "last duplicate wins" silently, and conservative mode needs
to see every member to detect ``train-ai=n, train-ai=y``. The loop is the RFC 9651 §4.2.2 algorithm verbatim, so
strict results are identical to a plain RFC 9651 parse (uppercase keys fail, parameters are ignored, the last
duplicate wins, Token vs String vs Boolean stay distinct; verified in the tests).

Conservative mode (PROTOCOLS.md §3.1, §3.2, §10.4) only ever *adds* disallows to the strict reading:
* several ``Content-Usage`` field lines are also read one by one, and a ``n`` on any line wins;
* a duplicate key whose earlier member says ``n`` wins over a later ``y``;
* legacy labels of earlier drafts (``bots``, ``all``, ``tdm``, ``ai``, ``genai``, ``train-genai`` = training;
  ``ai-use``, ``ai-output``, ``inference``, ``infer-user``, ``infer-system`` = inference) with ``=n`` disallow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from http_sf.errors import StructuredFieldError
from http_sf.innerlist import parse_item_or_inner_list
from http_sf.parameters import parse_params
from http_sf.state import ParserState
from http_sf.types import Token
from http_sf.util import discard_http_ows, discard_ows, parse_key

from .pathmatch import compile_pattern, normalise_path, url_path
from .signals import Mode, Purpose, Signal, Verdict

if TYPE_CHECKING:
    from .robots import Extension

PROTOCOL = "content-usage"

# A real Content-Usage value is a few dozen bytes. The cap bounds parse time (http-sf takes ~1 s per MiB) and is
# far above anything an HTTP server accepts as a header block anyway.
MAX_VALUE_BYTES = 64 * 1024
# Field lines considered per response; more than this is an attack, not a preference.
MAX_FIELD_LINES = 64
# Content-Usage rules considered per robots.txt group (a 500 KiB file cannot hold many more useful ones).
MAX_ROBOTS_RULES = 10_000

LABELS: dict[str, Purpose] = {"train-ai": Purpose.TRAIN_AI, "search": Purpose.SEARCH}

# Labels of drafts -01 .. -04 and of an unmerged PR (PROTOCOLS.md §3.1 label history). A ``=n`` on a superset or
# training label reserves training; on an inference / output label it reserves AI input.
LEGACY_LABELS: dict[str, Purpose] = {
    "bots": Purpose.TRAIN_AI,
    "all": Purpose.TRAIN_AI,
    "tdm": Purpose.TRAIN_AI,
    "ai": Purpose.TRAIN_AI,
    "genai": Purpose.TRAIN_AI,
    "train-genai": Purpose.TRAIN_AI,
    "ai-use": Purpose.AI_INPUT,
    "ai-output": Purpose.AI_INPUT,
    "inference": Purpose.AI_INPUT,
    "infer-user": Purpose.AI_INPUT,
    "infer-system": Purpose.AI_INPUT,
}


class _ParseFailure(Exception):
    """Internal: the value is not an RFC 9651 Dictionary (message is the reason)."""


# ---------------------------------------------------------------------------------------------------------------
# RFC 9651 Dictionary parsing


def _to_bytes(value: bytes | str) -> bytes:
    """vocab-07 §6.3: preferences are bytes. Text is encoded as UTF-8; any non-ASCII byte then fails parsing
    (outside a Display String), exactly as it would on the wire."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode("utf-8", "replace")


def _members(value: bytes | str) -> list[tuple[str, Any]]:
    """Every member of the Dictionary in order, duplicates included: ``[(key, (bare_item_or_list, params))]``.

    Raises :class:`_ParseFailure` with a one-line reason. Implements RFC 9651 §4.2 (top level: leading and
    trailing SP) and §4.2.2 (dictionary members) on top of http-sf's item, inner-list, key and parameter
    parsers."""
    data = _to_bytes(value)
    if len(data) > MAX_VALUE_BYTES:
        raise _ParseFailure(f"value is {len(data)} bytes, over the {MAX_VALUE_BYTES}-byte limit")
    state = ParserState(data)
    members: list[tuple[str, Any]] = []
    n = len(data)
    try:
        discard_ows(state)
        if state.cursor < n:
            while True:
                key = parse_key(state)
                if state.cursor < n and data[state.cursor] == 0x3D:  # "="
                    state.cursor += 1
                    member = parse_item_or_inner_list(state, None)
                else:
                    member = (True, parse_params(state, None))
                members.append((key, member))
                discard_http_ows(state)
                if state.cursor >= n:
                    break
                if data[state.cursor] != 0x2C:  # ","
                    state.fail(f"unexpected character after the value of '{key}'")
                state.cursor += 1
                discard_http_ows(state)
                if state.cursor >= n:
                    state.fail("trailing comma")
        discard_ows(state)
        if state.cursor < n:  # pragma: no cover - the loop above consumes everything or fails
            state.fail("trailing characters")
    except StructuredFieldError as exc:
        raise _ParseFailure(f"not an RFC 9651 dictionary: {exc}") from None
    except (ValueError, TypeError, OverflowError, IndexError, RecursionError) as exc:
        # http-sf's own errors are StructuredFieldError; anything else is a library edge case, still "invalid".
        raise _ParseFailure(f"not an RFC 9651 dictionary: {type(exc).__name__}") from None
    return members


def _token(member: Any) -> str | None:
    """The Token a dictionary member carries, ignoring its parameters; None for any other type (String,
    Boolean, Integer, inner list ...), which vocab-07 §6.5 reads as unknown."""
    item = member[0] if isinstance(member, tuple) else member
    if isinstance(item, Token):
        return str(item)
    return None


def parse_preferences(value: bytes | str) -> dict[str, str] | None:
    """Parse a preference expression: ``{label: token}`` for members whose (last) value is a Token, or None
    when the whole value is not a valid Dictionary (all preferences unknown)."""
    try:
        members = _members(value)
    except _ParseFailure:
        return None
    last: dict[str, Any] = {}
    for key, member in members:
        last[key] = member  # RFC 9651: a later duplicate overwrites the earlier value
    out: dict[str, str] = {}
    for key, member in last.items():
        tok = _token(member)
        if tok is not None:
            out[key] = tok
    return out


def parse_error(value: bytes | str) -> str | None:
    """One-line reason why ``value`` is not a valid preference expression, or None when it parses. The engine
    logs it: a parse failure makes every preference unknown, which silently drops a reservation."""
    try:
        _members(value)
    except _ParseFailure as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------------------------------------------------------
# Preference evaluation


@dataclass
class _Evaluation:
    verdicts: dict[Purpose, Verdict]
    notes: list[str]


def _evaluate(members: Sequence[tuple[str, Any]], mode: Mode) -> _Evaluation:
    """Map dictionary members to purposes. Strict: vocab-07 §6.5 (last member per key, Token y/n only).
    Conservative: strict, plus a Token ``n`` in any duplicate member or on a legacy label disallows."""
    last: dict[str, Any] = {}
    for key, member in members:
        last[key] = member
    verdicts: dict[Purpose, Verdict] = {}
    notes: list[str] = []
    for label, purpose in LABELS.items():
        if label not in last:
            continue
        tok = _token(last[label])
        if tok == "y":
            verdicts[purpose] = Verdict.ALLOW
        elif tok == "n":
            verdicts[purpose] = Verdict.DISALLOW
    if mode is not Mode.CONSERVATIVE:
        return _Evaluation(verdicts, notes)

    for label, purpose in LABELS.items():
        if verdicts.get(purpose) is Verdict.DISALLOW:
            continue
        if any(key == label and _token(m) == "n" for key, m in members):
            verdicts[purpose] = Verdict.DISALLOW
            notes.append(f"duplicate key {label}: an earlier {label}=n taken over the last value (most restrictive)")
    for key, member in members:
        legacy = LEGACY_LABELS.get(key)
        if legacy is None or _token(member) != "n":
            continue
        if verdicts.get(legacy) is not Verdict.DISALLOW:
            verdicts[legacy] = Verdict.DISALLOW
        note = f"legacy label {key}=n (earlier AIPREF draft) read as a {legacy.value} reservation"
        if note not in notes:
            notes.append(note)
    return _Evaluation(verdicts, notes)


def _merge_restrictive(into: dict[Purpose, Verdict], other: dict[Purpose, Verdict]) -> list[Purpose]:
    """Add ``other``'s disallows to ``into``; return the purposes that changed."""
    changed = []
    for purpose, verdict in other.items():
        if verdict is Verdict.DISALLOW and into.get(purpose) is not Verdict.DISALLOW:
            into[purpose] = Verdict.DISALLOW
            changed.append(purpose)
    return changed


def _clip(text: str, limit: int = 300) -> str:
    text = "".join(c if c.isprintable() else "\ufffd" for c in text[: limit + 1])
    return text if len(text) <= limit else text[:limit] + "…"


# ---------------------------------------------------------------------------------------------------------------
# HTTP header


def header_signals(values: list[str], *, mode: Mode) -> list[Signal]:
    """Signals of the ``Content-Usage`` response header (attach-05 §2), given its field lines.

    Strict: the field lines are joined with ", " and parsed as one Dictionary (RFC 9651 §4.2), so the last
    duplicate wins even across lines (vector 41 strict: allow). Conservative: each line is also read on its own
    and a disallow on any of them wins (vector 41 conservative: disallow); a line that fails to parse does not
    hide a valid reservation on another line. Returns [] when nothing is decided; use :func:`parse_error` to log
    a malformed value."""
    decoded = [v.decode("latin-1") if isinstance(v, bytes) else v for v in values[:MAX_FIELD_LINES]]
    lines = [v.strip(" \t") for v in decoded if isinstance(v, str) and v.strip(" \t")]
    if not lines:
        return []
    joined = ", ".join(lines)
    notes: list[str] = []
    try:
        evaluation = _evaluate(_members(joined), mode)
        verdicts, notes = evaluation.verdicts, list(evaluation.notes)
    except _ParseFailure as exc:
        if mode is not Mode.CONSERVATIVE:
            return []
        verdicts = {}
        notes.append(f"combined field value unparseable ({exc}); lines read one by one")
    if mode is Mode.CONSERVATIVE and len(lines) > 1:
        for i, line in enumerate(lines, 1):
            try:
                per_line = _evaluate(_members(line), mode)
            except _ParseFailure:
                continue
            for purpose in _merge_restrictive(verdicts, per_line.verdicts):
                notes.append(
                    f"field line {i} of {len(lines)} says {purpose.value} disallow; most restrictive line taken"
                )
            notes.extend(n for n in per_line.notes if n not in notes)
    if not verdicts:
        return []
    shown = _clip(joined)
    return [
        Signal(
            protocol=PROTOCOL,
            where="header",
            value=shown,
            rule=f"Content-Usage: {shown}",
            verdicts=verdicts,
            note="; ".join(notes),
        )
    ]


# ---------------------------------------------------------------------------------------------------------------
# robots.txt rule


@dataclass(frozen=True)
class UsageRule:
    """One ``Content-Usage`` line of a robots.txt group, split per attach-05 §3.2."""

    line: int
    value: str
    path: str  # "" when absent: applies to every path with specificity 0
    preference: str

    @property
    def length(self) -> int:
        """Specificity for longest-match precedence, counted as for robots.txt rules; 0 for a rule without a path."""
        return compile_pattern(self.path).length if self.path else 0

    def matches(self, normalised_path: str) -> bool:
        """Whether the rule covers a path already normalised; a rule without a path covers every path."""
        return not self.path or compile_pattern(self.path).matches(normalised_path)


def split_rule(value: str, line: int = 0) -> UsageRule:
    """attach-05 §3.2: a value starting with "/" begins a path that ends before the first SP or HTAB; the rest
    is the preference. Any other first character means there is no path and the whole value is the preference
    (so ``*.pdf train-ai=n`` is a preference that fails to parse — vector 45)."""
    value = value.split("#", 1)[0].split("\r", 1)[0].split("\n", 1)[0].strip(" \t")
    if value.startswith("/"):
        cut = len(value)
        for sep in (" ", "\t"):
            pos = value.find(sep)
            if 0 <= pos < cut:
                cut = pos
        return UsageRule(line, value, value[:cut], value[cut:].lstrip(" \t"))
    return UsageRule(line, value, "", value)


def robots_signals(
    lines: Iterable[Extension], url: str, *, mode: Mode, group: str = "", source: str = ""
) -> list[Signal]:
    """The Content-Usage preference that applies to ``url`` from the selected robots.txt group's extension
    lines (attach-05 §3).

    The rule with the longest matching path applies (a rule without a path matches everything with length 0);
    rules with equally long matching paths are all applied and combined most restrictively (vector 43). A rule
    whose preference does not parse leaves every preference unknown (strict); conservative mode then falls back
    to the next most specific parseable rules rather than let a typo lift a broader reservation.

    Only call this for URLs that robots.txt lets you crawl: attach-05 gives disallowed paths no preferences
    (vector 49) — the access stage never fetches them. ``group`` (e.g. ``"User-agent: *"``) is shown in the rule
    text."""
    rules: list[UsageRule] = []
    for ext in lines:
        if str(getattr(ext, "key", "")).lower() != "content-usage":
            continue
        rules.append(split_rule(str(getattr(ext, "value", "")), int(getattr(ext, "line", 0) or 0)))
        if len(rules) >= MAX_ROBOTS_RULES:
            break
    if not rules:
        return []
    try:
        target = normalise_path(url_path(url))
    except ValueError:
        return []
    matching = [r for r in rules if r.matches(target)]
    if not matching:
        return []
    suffix = f" ({group})" if group else ""
    lengths = sorted({r.length for r in matching}, reverse=True)
    notes: list[str] = []
    for depth, length in enumerate(lengths):
        top = [r for r in matching if r.length == length]
        parsed: list[tuple[UsageRule, _Evaluation]] = []
        broken: list[tuple[UsageRule, str]] = []
        for r in top:
            try:
                parsed.append((r, _evaluate(_members(r.preference), mode)))
            except _ParseFailure as exc:
                broken.append((r, str(exc)))
        for r, why in broken:
            notes.append(f"line {r.line}: Content-Usage preference {_clip(r.preference, 80)!r} unparseable ({why})")
        if not parsed:
            if mode is Mode.CONSERVATIVE and depth + 1 < len(lengths):
                notes.append("falling back to the next most specific Content-Usage rule")
                continue
            r = top[0]
            return [
                Signal(
                    protocol=PROTOCOL,
                    where="robots.txt",
                    value=_clip(r.preference),
                    rule=f"line {r.line}: Content-Usage: {_clip(r.value)}{suffix}",
                    verdicts={},
                    source=source,
                    note="; ".join([*notes, "all preferences unknown"]),
                )
            ]
        verdicts: dict[Purpose, Verdict] = {}
        for _, ev in parsed:
            for purpose, verdict in ev.verdicts.items():
                current = verdicts.get(purpose)
                if verdict is Verdict.DISALLOW or current is None:
                    verdicts[purpose] = verdict
            notes.extend(n for n in ev.notes if n not in notes)
        if len(parsed) > 1:
            notes.append(f"{len(parsed)} rules with equally specific paths combined (most restrictive)")
        if not verdicts and not notes:
            return []
        rule_text = "; ".join(f"line {r.line}: Content-Usage: {_clip(r.value, 120)}" for r, _ in parsed)
        return [
            Signal(
                protocol=PROTOCOL,
                where="robots.txt",
                value="; ".join(_clip(r.preference, 120) for r, _ in parsed),
                rule=rule_text + suffix,
                verdicts=verdicts,
                source=source,
                note="; ".join(notes),
            )
        ]
    return []  # pragma: no cover - the loop always returns
