"""robots.txt decisions: the parsed file's data model, group selection and longest-match precedence.

What a parsed robots.txt *is* and how one question ("may this token fetch this URL?") is answered from it, apart
from how the bytes are read (:mod:`robots_parse`) and what the answers mean for the policy (:mod:`robots_signals`).
The reading rules are summarised in :mod:`middlewares.protocols.robots`, which re-exports the public names.

Agent matching (whole tokens, lenient or strict) and the decision path of a URL live here too: group selection
and :meth:`RobotsTxt.match` are their only users besides the parser, which records the keys on each group. The
match loop is the hot path of every crawl (see bench/bench_robots.py): rules are merged, presorted and split into
literal and wildcard entries once per selected group.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from middlewares.protocols.pathmatch import Pattern, PrefixMemo, normalise_path
from middlewares.protocols.signals import Signal

_MAX_CACHE = 256

# ----------------------------------------------------------------------------------------------------------------
# Data model


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``Allow``/``Disallow`` line. ``pattern`` is the value as written (comment and blanks stripped;
    undecodable bytes shown as ``%XX``). ``via`` is set on rules the parser implies from another one (Google's
    ``…/index.html`` ⇒ ``…/$``) and holds the pattern that was actually written."""

    allow: bool
    pattern: str
    line: int
    _compiled: Pattern = field(repr=False, compare=False)
    via: str = ""

    @property
    def directive(self) -> str:
        """``Allow`` or ``Disallow``, as the reasons users read spell it."""
        return "Allow" if self.allow else "Disallow"

    @property
    def length(self) -> int:
        """Specificity for longest-match precedence: octets of the normalised pattern."""
        return self._compiled.length

    def matches(self, path: str) -> bool:
        """Match a path already normalised with :func:`pathmatch.normalise_path`."""
        return self._compiled.matches(path)

    def describe(self) -> str:
        """The rule and its line as users read it in a reason (``line 4: Disallow: /private/``); an implied rule shows
        the pattern actually written."""
        return f"line {self.line}: {self.directive}: {self.via or self.pattern}"


@dataclass(frozen=True, slots=True)
class Extension:
    """A non-standard record kept for the caller: ``key`` is the lower-case record name (``content-usage``,
    ``content-signal``, ``license``, ``sitemap`` or whatever unknown name was written), ``value`` is trimmed with
    the comment stripped, ``line`` is 1-based."""

    key: str
    value: str
    line: int


@dataclass(slots=True)
class Group:
    """One group as written in the file: its ``User-agent`` values, rules in file order, and the group-scoped
    non-standard records (Content-Usage, Content-Signal and unknown lines) in file order."""

    agents: tuple[str, ...] = ()
    line: int = 0
    rules: list[Rule] = field(default_factory=list)
    extensions: list[Extension] = field(default_factory=list)
    crawl_delay: float | None = None
    request_rate: tuple[int, float] | None = None
    agent_lines: tuple[int, ...] = ()
    _implied: list[Rule] = field(default_factory=list, repr=False)
    _lenient: frozenset[str] = field(default=frozenset(), repr=False)
    _strict: frozenset[str] = field(default=frozenset(), repr=False)

    def names(self, token: str, *, lenient: bool = True) -> bool:
        """Whether this group names ``token`` (``*`` included), under the lenient or strict reading."""
        keys = self._lenient if lenient else self._strict
        return token.strip().lower() in keys

    def _finish(self) -> None:
        lenient: set[str] = set()
        strict: set[str] = set()
        for value in self.agents:
            lenient.update(lenient_keys(value))
            key = strict_key(value)
            if key:
                strict.add(key)
        self._lenient = frozenset(lenient)
        self._strict = frozenset(strict)


# (literal prefix or None, text before the first `*`, compiled pattern, allow, rule). Every match starts with the
# second item, so one inline str.startswith settles literal rules and rules out most wildcard ones without a call.
_Entry = tuple[str | None, str, Pattern, bool, Rule]

BUCKET_CHARS = 4
"""How much of a path picks the rules it is matched against (:meth:`SelectedGroup.candidates`)."""
MAX_BUCKETS = 4096
"""Distinct path starts remembered per group; beyond them a path is matched against every rule."""


@dataclass(slots=True)
class SelectedGroup:
    """The groups that apply to one token, merged (RFC 9309 §2.2.1). ``agent`` is ``''`` when no group applies,
    ``'*'`` for the default group, otherwise the ``User-agent`` value that named the token."""

    agent: str
    groups: list[Group]
    extensions: list[Extension]
    crawl_delay: float | None
    request_rate: tuple[int, float] | None
    labels: list[str] = field(default_factory=list, repr=False)
    _entries: tuple[_Entry, ...] = field(default=(), repr=False)
    _label_by_line: dict[int, str] = field(default_factory=dict, repr=False)
    _buckets: dict[str, tuple[_Entry, ...]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def explicit(self) -> bool:
        """True when a group names the token itself (not only ``*``)."""
        return self.agent not in ("", "*")

    @property
    def rules(self) -> list[Rule]:
        """The merged rules in file order."""
        return sorted((r for g in self.groups for r in g.rules), key=lambda r: r.line)

    def candidates(self, path: str) -> tuple[_Entry, ...]:
        """The rules that could match ``path``, in priority order: those whose text before any ``*`` agrees with the
        path's first :data:`BUCKET_CHARS` characters. Each distinct start of a path is worked out once, so a URL is
        matched against a handful of rules however long the file (a site's rules mostly start differently)."""
        key = path[:BUCKET_CHARS]
        found = self._buckets.get(key)
        if found is None:
            if len(self._buckets) >= MAX_BUCKETS:  # a crawl of endlessly varied paths: no worse than no buckets
                return self._entries
            n = len(key)
            found = tuple(
                e for e in self._entries if (e[1].startswith(key) if len(e[1]) >= n else key.startswith(e[1]))
            )
            self._buckets[key] = found
        return found

    def label_for(self, rule: Rule) -> str:
        """The ``User-agent`` value of the group the rule was written in."""
        return self._label_by_line.get(rule.line, self.agent)

    def describe(self) -> str:
        """Which ``User-agent`` group applied, and on which lines, for the reasons users read."""
        if not self.groups:
            return "no User-agent group applies"
        lines = [g.line for g in self.groups]
        where = f"line {lines[0]}" if len(lines) == 1 else "lines " + ", ".join(map(str, lines))
        return f"User-agent: {self.agent} ({where})"


@dataclass(slots=True)
class RobotsMatch:
    """One decision. ``rule`` is the deciding rule (``None`` when no rule matched, when ``/robots.txt`` was asked
    for, or for the fixed ALLOW_ALL / DISALLOW_ALL answers, which carry a ``reason``)."""

    allowed: bool
    rule: Rule | None
    group: SelectedGroup
    path: str = ""
    reason: str = ""

    def describe(self) -> str:
        """Why the path is allowed or not, in one phrase: the deciding rule and its group, the fixed reason, or that
        nothing matched."""
        if self.rule is not None:
            return f"{self.rule.describe()} (User-agent: {self.group.label_for(self.rule)})"
        if self.reason:
            return self.reason
        if self.group.groups:
            return f"no rule matches {self.path} ({self.group.describe()})"
        return "no User-agent group applies: no restrictions"


@dataclass(slots=True)
class CrossTokenMemo:
    """Per file and own token: the training tokens with a group of their own, and their answers by path."""

    named: list[str]
    answers: PrefixMemo[tuple[Signal, ...]]


class RobotsTxt:
    """A parsed robots.txt. Decisions go through :meth:`match`; the selected group per token is cached, rules are
    precompiled and presorted, so one parse serves any number of decisions."""

    __slots__ = (
        "_cache",
        "_explicit",
        "_fixed",
        "_reason",
        "groups",
        "licenses",
        "other",
        "sitemap_records",
        "sitemaps",
        "size",
        "truncated",
        "warnings",
    )

    def __init__(self) -> None:
        self.groups: list[Group] = []
        self.sitemaps: list[str] = []
        self.sitemap_records: list[Extension] = []
        self.licenses: list[Extension] = []
        # Unknown records outside any group, and group-scoped records (Content-Usage, ...) found before the first
        # User-agent line: not applied to anyone, kept for the caller to log or interpret.
        self.other: list[Extension] = []
        self.truncated: bool = False
        self.warnings: list[str] = []
        self.size: int = 0  # bytes of the body that were parsed
        self._cache: dict[tuple[str, bool], SelectedGroup] = {}
        self._explicit: dict[tuple[tuple[str, ...], str, bool, str], CrossTokenMemo] = {}
        self._fixed: bool | None = None  # ALLOW_ALL / DISALLOW_ALL answer regardless of rules
        self._reason: str = ""

    @property
    def fixed_reason(self) -> str:
        """Why every URL gets the same answer (ALLOW_ALL, DISALLOW_ALL, NOT_TEXT); empty for a parsed file."""
        return self._reason

    def __repr__(self) -> str:
        return (
            f"RobotsTxt(groups={len(self.groups)}, sitemaps={len(self.sitemaps)}, "
            f"truncated={self.truncated}, warnings={len(self.warnings)})"
        )

    # -- group selection ---------------------------------------------------------------------------------------

    def select(self, token: str, *, lenient: bool = True) -> SelectedGroup:
        """The merged groups that apply to ``token``: every group naming it, else every ``*`` group, else none."""
        key = (token, lenient)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        wanted = token.strip().lower()
        own: list[Group] = []
        star: list[Group] = []
        for g in self.groups:
            keys = g._lenient if lenient else g._strict
            if wanted and wanted != "*" and wanted in keys:
                own.append(g)
            elif "*" in keys:
                star.append(g)
        if own:
            labels = [_label(g, wanted, lenient) for g in own]
            selected = _merge(labels[0], own, labels)
        else:
            # Every token without a group of its own gets the same selection: one shared object, so asking about
            # many tokens (the cross-token checks) does not keep a merged copy of the `*` rules for each of them.
            shared = self._cache.get(("*", lenient))
            if shared is None:
                shared = _merge("*", star, ["*"] * len(star)) if star else _merge("", [], [])
                self._cache[("*", lenient)] = shared
            selected = shared
        if len(self._cache) >= _MAX_CACHE:
            self._cache.clear()
        self._cache[key] = selected
        return selected

    def has_explicit_group(self, token: str, *, lenient: bool = True) -> bool:
        """Whether some group names ``token`` itself (a ``*`` group does not count)."""
        return self.select(token, lenient=lenient).explicit

    def crawl_delay(self, token: str, *, lenient: bool = True) -> float | None:
        """The largest ``Crawl-delay`` (seconds) in the groups that apply to ``token``."""
        return self.select(token, lenient=lenient).crawl_delay

    def request_rate(self, token: str, *, lenient: bool = True) -> tuple[int, float] | None:
        """The most restrictive ``Request-rate`` (requests, seconds) in the groups that apply to ``token``."""
        return self.select(token, lenient=lenient).request_rate

    # -- decisions ---------------------------------------------------------------------------------------------

    def match(self, token: str, url_or_path: str, *, lenient: bool = True) -> RobotsMatch:
        """Decide whether ``token`` may fetch ``url_or_path`` (an absolute URL or a path starting with ``/``)."""
        selected = self._cache.get((token, lenient)) or self.select(token, lenient=lenient)
        path = decision_path(url_or_path)
        if always_allowed(path):
            return RobotsMatch(True, None, selected, path, "/robots.txt is always allowed (RFC 9309 §2.2.2)")
        if self._fixed is not None:
            return RobotsMatch(self._fixed, None, selected, path, self._reason)
        startswith = path.startswith
        for literal, lead, pattern, allow, rule in selected.candidates(path):
            if startswith(lead) and (literal is not None or pattern.matches(path)):
                return RobotsMatch(allow, rule, selected, path)
        return RobotsMatch(True, None, selected, path)

    def can_fetch(self, token: str, url_or_path: str, *, lenient: bool = True) -> bool:
        """:meth:`match` reduced to the boolean."""
        return self.match(token, url_or_path, lenient=lenient).allowed


def _label(group: Group, wanted: str, lenient: bool) -> str:
    for value in group.agents:
        keys = lenient_keys(value) if lenient else {strict_key(value)}
        if wanted in keys:
            return value
    return group.agents[0] if group.agents else ""


def _merge(agent: str, groups: list[Group], labels: list[str]) -> SelectedGroup:
    extensions = sorted((e for g in groups for e in g.extensions), key=lambda e: e.line)
    delays = [g.crawl_delay for g in groups if g.crawl_delay is not None]
    rates = [g.request_rate for g in groups if g.request_rate is not None]
    label_by_line: dict[int, str] = {}
    rules: list[Rule] = []
    for g, label in zip(groups, labels, strict=True):
        for r in (*g.rules, *g._implied):
            rules.append(r)
            label_by_line[r.line] = label
    # First match decides: longest pattern first, Allow before Disallow on equal length (RFC 9309 §2.2.2).
    rules.sort(key=lambda r: (-r.length, not r.allow, r.line))
    entries: list[_Entry] = []
    for r in rules:
        text = r.pattern
        literal = None if ("*" in text or text.endswith("$")) else normalise_path(text)
        entries.append((literal, r._compiled.lead if literal is None else literal, r._compiled, r.allow, r))
    return SelectedGroup(
        agent=agent,
        groups=groups,
        extensions=extensions,
        crawl_delay=max(delays) if delays else None,
        request_rate=min(rates, key=lambda rr: rr[0] / rr[1] if rr[1] else math.inf) if rates else None,
        labels=labels,
        _entries=tuple(entries),
        _label_by_line=label_by_line,
    )


# ----------------------------------------------------------------------------------------------------------------
# Fixed answers


def fixed_answer(allowed: bool, reason: str) -> RobotsTxt:
    """A robots.txt that gives every URL the same answer, for ``reason`` (no file, unreachable, not text)."""
    robots = RobotsTxt()
    robots._fixed = allowed
    robots._reason = reason
    return robots


ALLOW_ALL = fixed_answer(True, "robots.txt unavailable (4xx): no restrictions (RFC 9309 §2.3.1.3)")
DISALLOW_ALL = fixed_answer(
    False, "robots.txt unreachable (5xx or network error): complete disallow (RFC 9309 §2.3.1.4)"
)
NOT_TEXT = fixed_answer(
    False, "robots.txt is not text (binary data or NUL bytes): complete disallow in conservative mode"
)


# ----------------------------------------------------------------------------------------------------------------
# Agents and paths

_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")
_LEAD_SPLIT_RE = re.compile(r"[/\s]")


def is_valid_token(value: str) -> bool:
    """RFC 9309 product token, widened to digits (AI2Bot, img2dataset exist): letters, digits, ``-``, ``_``."""
    return bool(value) and _TOKEN_RE.fullmatch(value) is not None


def lenient_keys(value: str) -> set[str]:
    """The tokens a ``User-agent`` value names under the lenient reading: each comma-separated item up to its first
    ``/`` or blank, lower-case (``ExampleBot/1.0`` names examplebot)."""
    keys: set[str] = set()
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        lead = _LEAD_SPLIT_RE.split(item, 1)[0]
        if lead != "*":
            lead = lead.rstrip("*")
        if lead:
            keys.add(lead.lower())
    return keys


def strict_key(value: str) -> str:
    """The token a ``User-agent`` value names under RFC 9309's strict reading: the value itself, lower-case, when it is
    ``*`` or a valid token; empty otherwise."""
    value = value.strip()
    if value == "*" or is_valid_token(value):
        return value.lower()
    return ""


_PATH_START_RE = re.compile(r"[/?;]")


def decision_path(url_or_path: str) -> str:
    """The path rules are matched against: :func:`request_path`, normalised like the patterns."""
    return normalise_path(request_path(url_or_path))


def always_allowed(path: str) -> bool:
    """RFC 9309 §2.2.2: /robots.txt itself (a decision path) may always be fetched."""
    return path == "/robots.txt" or path.startswith("/robots.txt?")


def request_path(url_or_path: str) -> str:
    """Path, params and query of a URL (or of an already bare path), always starting with ``/``; the fragment is
    dropped. Follows Google's ``GetPathParamsQuery`` so scheme-less inputs (``example.com/a``) work too."""
    url = url_or_path or ""
    if url[:1] == "/" and url[1:2] != "/":
        cut = url.find("#")
        return url if cut < 0 else url[:cut]
    start = 2 if url[:2] == "//" else 0
    early = _PATH_START_RE.search(url, start)
    proto = url.find("://", start)
    # "://" only marks a scheme when no path, params or query started before it.
    has_scheme = proto >= 0 and (early is None or early.start() > proto)
    proto_end = proto + 3 if has_scheme else start
    found = _PATH_START_RE.search(url, proto_end)
    if found is None:
        return "/"
    path_start = found.start()
    hash_pos = url.find("#", start)
    if 0 <= hash_pos < path_start:
        return "/"
    path = url[path_start:] if hash_pos < 0 else url[path_start:hash_pos]
    return path if path.startswith("/") else "/" + path
