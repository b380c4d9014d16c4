"""Spawning ``/ai.txt`` (PROTOCOLS.md §6.4): a robots.txt-like file whose patterns are mostly file-extension
globs (``Disallow: *.jpg``) and whose meaning is "do not use the matched files for AI training".

There is no normative spec; the rules here are the toolkit's reading of Spawning's generator output:

* Only files that look like Spawning's format count: at least one ``User-agent``, ``Allow`` or ``Disallow`` line.
  Markdown "AI context" files and other formats also called ai.txt are ignored (``parse_ai_txt`` returns None).
* Groups work as in RFC 9309: consecutive ``User-agent`` lines share a group, groups for the same token merge,
  a specific group replaces ``*``. The WordPress plugin may write ``User-agent: */``, read as ``*``.
* Patterns use RFC 9309 matching (``*`` any characters, ``$`` end, prefix match, longest match wins, allow on
  tie) via :mod:`pathmatch`, against the URL path *and query*. Consequences, chosen deliberately: ``*.jpg``
  matches ``/img/a.jpg``, ``/img/a.jpg?x=1`` and also ``/a.jpg/view``; ``*.jpg$`` would match only the first.
  A pattern starting with ``.`` is read as ``*`` + pattern (``.png`` = ``*.png``); any other pattern not starting
  with ``/`` or ``*`` gets a leading ``/`` (Google's robots.txt convention).
* Conservative mode also matches Disallow patterns case-insensitively (``/PHOTO.JPG`` is a JPEG for
  ``Disallow: *.jpg``); strict mode compares octets like robots.txt. An Allow only ever matches literally: a
  case-insensitive match exists to find more reservations, so it must not lift one that strict mode keeps.
* A disallow means ``TRAIN_AI`` disallow; AI input and search are not addressed (§10.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .pathmatch import compile_pattern, normalise_path, url_path
from .signals import Mode, Purpose, Signal, Verdict

PROTOCOL = "ai-txt"
MAX_BYTES = 500 * 1024  # the robots.txt limit (RFC 9309 §2.5); ai.txt files are a few hundred bytes
MAX_LINE_CHARS = 4096


@dataclass(frozen=True)
class AiTxtRule:
    """One ``Allow``/``Disallow`` line of an ai.txt group."""

    allow: bool
    pattern: str  # as written (after the leading-character fix-ups above)
    line: int
    raw: str  # the value as written in the file


@dataclass
class AiTxtGroup:
    """One ai.txt group: the tokens it names and its rules in file order."""

    agents: list[str] = field(default_factory=list)  # lower-case product tokens; "*" for everyone
    rules: list[AiTxtRule] = field(default_factory=list)
    line: int = 0


@dataclass
class AiTxt:
    """A parsed ai.txt file (Spawning's robots.txt-like syntax): its groups, and notes on what the parser could not read
    as written."""

    groups: list[AiTxtGroup] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def select(self, token: str) -> tuple[list[AiTxtRule], str]:
        """Rules for ``token`` (merged specific groups, else the ``*`` group) and a description of the group."""
        wanted = token.strip().lower()
        specific = [g for g in self.groups if wanted and wanted in g.agents]
        if specific:
            rules = [r for g in specific for r in g.rules]
            return sorted(rules, key=lambda r: r.line), f"User-agent: {token}"
        star = [g for g in self.groups if "*" in g.agents]
        return sorted((r for g in star for r in g.rules), key=lambda r: r.line), "User-agent: *"


def _agent(value: str) -> str:
    """Product token of a User-agent value: ``*/`` (Spawning's plugin) → ``*``; ``Bot/1.0`` → ``bot``."""
    value = value.strip().lower()
    if value.startswith("*"):
        return "*"
    return value.split("/", 1)[0].strip()


def _fix_pattern(value: str) -> str:
    if value.startswith(("/", "*")):
        return value
    if value.startswith("."):
        return "*" + value
    return "/" + value


def parse_ai_txt(body: bytes) -> AiTxt | None:
    """Parse a Spawning ai.txt body; None if it is not in that format. Never raises."""
    if not isinstance(body, bytes | bytearray | memoryview):
        return None
    data = bytes(body[:MAX_BYTES])
    text = data.decode("utf-8", "replace").lstrip("\ufeff")
    result = AiTxt()
    if len(body) > MAX_BYTES:
        result.notes.append(f"ai.txt truncated to {MAX_BYTES} bytes")
    recognised = False
    current: AiTxtGroup | None = None
    last_was_agent = False
    for number, raw_line in enumerate(text.splitlines(), 1):
        line = raw_line[:MAX_LINE_CHARS].split("#", 1)[0].strip()
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower().replace("_", "-")
        value = value.strip()
        if key in ("user-agent", "useragent"):
            recognised = True
            if current is None or not last_was_agent:
                current = AiTxtGroup(line=number)
                result.groups.append(current)
            agent = _agent(value)
            if agent:
                current.agents.append(agent)
            last_was_agent = True
            continue
        if key in ("allow", "disallow"):
            recognised = True
            last_was_agent = False
            if current is None:
                result.notes.append(f"line {number}: {key} before any User-agent line ignored")
                continue
            if not value:
                continue  # an empty pattern matches nothing (RFC 9309)
            current.rules.append(AiTxtRule(key == "allow", _fix_pattern(value), number, value))
            continue
        last_was_agent = False  # other records neither start nor end a group
    if not recognised:
        return None
    return result


def _matches(rule: AiTxtRule, path: str, lowered: str, mode: Mode) -> bool:
    pattern = compile_pattern(rule.pattern)
    if pattern.matches(path):
        return True
    return mode is Mode.CONSERVATIVE and compile_pattern(rule.pattern.lower()).matches(lowered)


def signals(ai: AiTxt, url: str, token: str, *, mode: Mode, source: str = "") -> list[Signal]:
    """The ai.txt verdict for ``url``: a TRAIN_AI disallow signal when the most specific matching rule of our
    group is a Disallow (vector 71), else []."""
    rules, group = ai.select(token)
    if not rules:
        return []
    try:
        raw_path = url_path(url)
    except ValueError:
        return []
    path = normalise_path(raw_path)
    lowered = normalise_path(raw_path.lower())
    best: AiTxtRule | None = None
    best_len = -1
    for rule in rules:
        if not _matches(rule, path, lowered, Mode.STRICT if rule.allow else mode):
            continue
        length = compile_pattern(rule.pattern).length
        if length > best_len or (length == best_len and rule.allow and best is not None and not best.allow):
            best, best_len = rule, length
    if best is None or best.allow:
        return []
    note = "; ".join(ai.notes)
    if not compile_pattern(best.pattern).matches(path):
        note = "; ".join(filter(None, [note, "matched ignoring letter case (conservative)"]))
    return [
        Signal(
            protocol=PROTOCOL,
            where="ai.txt",
            value=best.raw,
            rule=f"line {best.line}: Disallow: {best.raw} ({group})",
            verdicts={Purpose.TRAIN_AI: Verdict.DISALLOW},
            source=source,
            note=note,
        )
    ]
