"""RFC 9309 robots.txt: parse once, decide many times, and say exactly which line decided.

Why a parser of our own rather than Protego or ``urllib.robotparser``: the toolkit must (a) match product tokens as
whole tokens (Protego applies a ``User-agent: Claude`` group to ``ClaudeBot``), (b) keep the non-standard lines that
carry AI preferences (``Content-Usage``, ``Content-Signal``, ``License``) together with the group they belong to,
(c) report the group, line, directive and pattern behind every decision so the registry can record it, and (d) stay
linear-time on hostile patterns. Path patterns and percent-encoding live in :mod:`pathmatch`, shared with every
other robots-style protocol.

Reading rules (PROTOCOLS.md §1; behaviours beyond RFC 9309 follow Google's open-source parser, whose test-suite is
ported in ``tests/test_robots_google.py``):

* Lines end at CR, LF or CRLF; ``#`` starts a comment; keys are case-insensitive; a UTF-8 BOM (even a partial one)
  at the very start is skipped; invalid UTF-8 never raises (undecodable bytes in patterns become ``%XX``).
* Only the first ``limit`` bytes (default 512 000, RFC 9309 §2.5 asks for at least 500 KiB) are read; a line cut by
  the limit is dropped rather than read as a shorter, broader rule, and :attr:`RobotsTxt.truncated` is set.
* A line longer than 16 663 bytes is cut there (Google's limit); the rest of the line is ignored.
* Google leniencies: a missing colon (``disallow /``) when the line is exactly two words; the common misspellings
  ``useragent``, ``user agent``, ``dissallow``, ``dissalow``, ``disalow``, ``diasllow``, ``disallaw``, ``site-map``.
  Misspellings are only accepted in the restrictive direction (nothing is read as ``Allow`` that was not spelled so).
* A group is one or more ``User-agent`` lines followed by its members; it ends at the next ``User-agent`` line
  that follows a *rule*. Rules are ``Allow``/``Disallow`` (RFC 9309) and ``Content-Usage`` (which
  draft-ietf-aipref-attach adds to the ``rule`` production) and ``Content-Signal`` (its Cloudflare twin). Blank
  lines, ``Sitemap``, ``License``, ``Crawl-delay``, ``Request-rate`` and unknown lines never end a group
  (RFC 9309 §2.2.4: other records must not interfere with the defined ones).
* Records before the first ``User-agent`` line are ignored (RFC 9309 §2.2.2) and reported in ``warnings``.
* Agent matching is a case-insensitive whole-token comparison, never prefix or substring. *Lenient* (default,
  conservative mode): each comma-separated item of a ``User-agent`` value is cut at the first ``/`` or whitespace
  and trailing ``*`` are dropped, so ``ExampleBot/1.0``, ``ExampleBot 2.0`` and ``GPTBot*`` name ExampleBot /
  GPTBot. *Strict*: the value must be exactly a token (letters, digits, ``-``, ``_``) or ``*``.
* All groups naming the token are merged; a named group replaces the ``*`` groups entirely; no group → no rules.
* Longest pattern wins, ``Allow`` on a tie; ``*`` and a final ``$`` are special; ``/robots.txt`` is always allowed;
  an empty ``Disallow:`` blocks nothing. Google's "``…/index.html`` allowed ⇒ ``…/`` allowed" is kept.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from middlewares.protocols.pathmatch import Pattern, PrefixMemo, compile_pattern, normalise_path
from middlewares.protocols.signals import Purpose, Signal, Verdict

__all__ = [
    "ALLOW_ALL",
    "DISALLOW_ALL",
    "MAX_LINE_BYTES",
    "PARSE_LIMIT",
    "TRAINING_TOKENS",
    "Extension",
    "Group",
    "RobotsMatch",
    "RobotsTxt",
    "Rule",
    "SelectedGroup",
    "access_signal",
    "cross_token_signals",
    "decision_path",
    "is_valid_token",
    "parse_robots",
    "request_path",
]

PARSE_LIMIT = 512_000
"""Bytes read from a robots.txt body (RFC 9309 §2.5: at least 500 KiB)."""

MAX_LINE_BYTES = 2083 * 8 - 1
"""Bytes kept of one line; Google's parser keeps the same amount and its tests depend on it."""

_MAX_WARNINGS = 100
_MAX_OTHER = 1000
_MAX_CACHE = 256

# Well-known AI *training* product tokens (PROTOCOLS.md §8.1 table, §8.2 item 4): a site that disallows one of
# them has expressed a wish against AI training, even if it never heard of our own token. Search-only and
# user-triggered fetchers (OAI-SearchBot, ChatGPT-User, PerplexityBot, Amazonbot for Alexa answers, ...) are
# deliberately absent: blocking them says nothing about training. ``__usage_ai-training`` is the per-purpose policy
# token of draft-kelley-aipref-training-preference-signal (name UNCONFIRMED, §3.3).
TRAINING_TOKENS: tuple[str, ...] = (
    "GPTBot",
    "ClaudeBot",
    "anthropic-ai",
    "CCBot",
    "Google-Extended",
    "Applebot-Extended",
    "meta-externalagent",
    "FacebookBot",
    "Bytespider",
    "cohere-training-data-crawler",
    "AI2Bot",
    "Ai2Bot-Dolma",
    "DeepSeekBot",
    "YandexAdditional",
    "omgili",
    "Diffbot",
    "img2dataset",
    "LAIONDownloader",
    "__usage_ai-training",
)

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
        return "Allow" if self.allow else "Disallow"

    @property
    def length(self) -> int:
        """Specificity for longest-match precedence: octets of the normalised pattern."""
        return self._compiled.length

    def matches(self, path: str) -> bool:
        """Match a path already normalised with :func:`pathmatch.normalise_path`."""
        return self._compiled.matches(path)

    def describe(self) -> str:
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
            lenient.update(_lenient_keys(value))
            key = _strict_key(value)
            if key:
                strict.add(key)
        self._lenient = frozenset(lenient)
        self._strict = frozenset(strict)


# (literal prefix or None, text before the first `*`, compiled pattern, allow, rule). Every match starts with the
# second item, so one inline str.startswith settles literal rules and rules out most wildcard ones without a call.
_Entry = tuple[str | None, str, Pattern, bool, Rule]


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
    _wild: tuple[_Entry, ...] = field(default=(), repr=False)
    _prefixes: tuple[str, ...] = field(default=(), repr=False)
    _label_by_line: dict[int, str] = field(default_factory=dict, repr=False)

    @property
    def explicit(self) -> bool:
        """True when a group names the token itself (not only ``*``)."""
        return self.agent not in ("", "*")

    @property
    def rules(self) -> list[Rule]:
        """The merged rules in file order."""
        return sorted((r for g in self.groups for r in g.rules), key=lambda r: r.line)

    def label_for(self, rule: Rule) -> str:
        """The ``User-agent`` value of the group the rule was written in."""
        return self._label_by_line.get(rule.line, self.agent)

    def describe(self) -> str:
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
        if self.rule is not None:
            return f"{self.rule.describe()} (User-agent: {self.group.label_for(self.rule)})"
        if self.reason:
            return self.reason
        if self.group.groups:
            return f"no rule matches {self.path} ({self.group.describe()})"
        return "no User-agent group applies: no restrictions"


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
        self._explicit: dict[tuple[tuple[str, ...], str, bool, str], _CrossToken] = {}
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
            selected = self._cache.get(("*", lenient))
            if selected is None:
                selected = _merge("*", star, ["*"] * len(star)) if star else _merge("", [], [])
                self._cache[("*", lenient)] = selected
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
        if _always_allowed(path):
            return RobotsMatch(True, None, selected, path, "/robots.txt is always allowed (RFC 9309 §2.2.2)")
        if self._fixed is not None:
            return RobotsMatch(self._fixed, None, selected, path, self._reason)
        entries = selected._entries if path.startswith(selected._prefixes) else selected._wild
        startswith = path.startswith
        for literal, lead, pattern, allow, rule in entries:
            if startswith(lead) and (literal is not None or pattern.matches(path)):
                return RobotsMatch(allow, rule, selected, path)
        return RobotsMatch(True, None, selected, path)

    def can_fetch(self, token: str, url_or_path: str, *, lenient: bool = True) -> bool:
        """:meth:`match` reduced to the boolean."""
        return self.match(token, url_or_path, lenient=lenient).allowed


def _label(group: Group, wanted: str, lenient: bool) -> str:
    for value in group.agents:
        keys = _lenient_keys(value) if lenient else {_strict_key(value)}
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
    wild: list[_Entry] = []
    prefixes: list[str] = []
    for r in rules:
        text = r.pattern
        literal = None if ("*" in text or text.endswith("$")) else normalise_path(text)
        entry = (literal, r._compiled.lead if literal is None else literal, r._compiled, r.allow, r)
        entries.append(entry)
        if literal is None:
            wild.append(entry)
        else:
            prefixes.append(literal)
    return SelectedGroup(
        agent=agent,
        groups=groups,
        extensions=extensions,
        crawl_delay=max(delays) if delays else None,
        request_rate=min(rates, key=lambda rr: rr[0] / rr[1] if rr[1] else math.inf) if rates else None,
        labels=labels,
        _entries=tuple(entries),
        _wild=tuple(wild),
        _prefixes=tuple(prefixes),
        _label_by_line=label_by_line,
    )


# ----------------------------------------------------------------------------------------------------------------
# Agents and paths

_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")
_LEAD_SPLIT_RE = re.compile(r"[/\s]")


def is_valid_token(value: str) -> bool:
    """RFC 9309 product token, widened to digits (AI2Bot, img2dataset exist): letters, digits, ``-``, ``_``."""
    return bool(value) and _TOKEN_RE.fullmatch(value) is not None


def _lenient_keys(value: str) -> set[str]:
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


def _strict_key(value: str) -> str:
    value = value.strip()
    if value == "*" or is_valid_token(value):
        return value.lower()
    return ""


_PATH_START_RE = re.compile(r"[/?;]")


def decision_path(url_or_path: str) -> str:
    """The path rules are matched against: :func:`request_path`, normalised like the patterns."""
    return normalise_path(request_path(url_or_path))


def _always_allowed(path: str) -> bool:
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


# ----------------------------------------------------------------------------------------------------------------
# Parsing

_UA, _ALLOW, _DISALLOW, _SITEMAP, _LICENSE, _DELAY, _RATE, _USAGE, _SIGNAL = range(9)

_KEYS: dict[bytes, tuple[int, str]] = {
    b"user-agent": (_UA, "user-agent"),
    b"useragent": (_UA, "user-agent"),
    b"user agent": (_UA, "user-agent"),
    b"allow": (_ALLOW, "allow"),
    b"disallow": (_DISALLOW, "disallow"),
    b"dissallow": (_DISALLOW, "disallow"),
    b"dissalow": (_DISALLOW, "disallow"),
    b"disalow": (_DISALLOW, "disallow"),
    b"diasllow": (_DISALLOW, "disallow"),
    b"disallaw": (_DISALLOW, "disallow"),
    b"sitemap": (_SITEMAP, "sitemap"),
    b"site-map": (_SITEMAP, "sitemap"),
    b"license": (_LICENSE, "license"),
    b"crawl-delay": (_DELAY, "crawl-delay"),
    b"crawl delay": (_DELAY, "crawl-delay"),
    b"crawldelay": (_DELAY, "crawl-delay"),
    b"request-rate": (_RATE, "request-rate"),
    b"request rate": (_RATE, "request-rate"),
    b"content-usage": (_USAGE, "content-usage"),
    b"content-signal": (_SIGNAL, "content-signal"),
}
_RULE_KINDS = frozenset({_ALLOW, _DISALLOW, _USAGE, _SIGNAL})
_SURROGATE_RE = re.compile("[\udc80-\udcff]")
_RATE_RE = re.compile(r"\s*(\d{1,9})\s*/\s*(\d{1,9}(?:\.\d{1,9})?)\s*([smhd]?)", re.IGNORECASE)
_RATE_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _pattern_text(value: bytes) -> str:
    if value.isascii():
        return value.decode("ascii")
    text = value.decode("utf-8", "surrogateescape")
    # Bytes that are not UTF-8 keep their identity as %XX instead of becoming U+FFFD.
    return _SURROGATE_RE.sub(lambda m: "%%%02X" % (ord(m.group()) - 0xDC00), text)


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


class _Parser:
    """One pass over the lines; kept as a class so the per-line state is explicit."""

    def __init__(self) -> None:
        self.robots = RobotsTxt()
        self.current: Group | None = None
        self.in_agents = False  # the last group-structuring record was a User-agent line
        self.dropped_warnings = 0

    def warn(self, message: str) -> None:
        if len(self.robots.warnings) < _MAX_WARNINGS:
            self.robots.warnings.append(message)
        else:
            self.dropped_warnings += 1

    def keep_other(self, ext: Extension) -> None:
        if len(self.robots.other) < _MAX_OTHER:
            self.robots.other.append(ext)

    def run(self, data: bytes, limit: int) -> RobotsTxt:
        robots = self.robots
        limit = max(0, limit)
        if len(data) > limit:
            robots.truncated = True
            cut = data[:limit]
            # Drop a line cut in half by the limit: a shortened pattern would be a different (broader) rule.
            if limit and data[limit : limit + 1] not in (b"\n", b"\r") and cut[-1:] not in (b"\n", b"\r"):
                last = max(cut.rfind(b"\n"), cut.rfind(b"\r"))
                cut = cut[: last + 1] if last >= 0 else b""
            self.warn(f"robots.txt is {len(data)} bytes: only the first {limit} are read (RFC 9309 §2.5)")
            data = cut
        robots.size = len(data)
        # A UTF-8 byte order mark, even a partial one, is skipped at the very start only (Google).
        for bom in (b"\xef\xbb\xbf", b"\xef\xbb", b"\xef"):
            if data.startswith(bom):
                data = data[len(bom) :]
                break
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.warn(f"robots.txt is not valid UTF-8 (byte {exc.start}); undecodable bytes are kept as %XX")
        for number, raw in enumerate(data.splitlines(), 1):
            self.line(number, raw)
        for g in robots.groups:
            g._finish()
        if self.dropped_warnings:
            robots.warnings.append(f"... {self.dropped_warnings} more warnings not shown")
        return robots

    def line(self, number: int, raw: bytes) -> None:
        if len(raw) > MAX_LINE_BYTES:
            raw = raw[:MAX_LINE_BYTES]
            self.warn(f"line {number}: longer than {MAX_LINE_BYTES} bytes, the rest of the line is ignored")
        hash_pos = raw.find(b"#")
        if hash_pos >= 0:
            raw = raw[:hash_pos]
        raw = raw.strip()
        if not raw:
            return
        colon = raw.find(b":")
        if colon >= 0:
            key = raw[:colon].strip().lower()
            value = raw[colon + 1 :].strip()
            missing_colon = False
        else:
            # Google: "disallow /" means "disallow: /" when the line is exactly two words.
            words = raw.split()
            if len(words) != 2 or words[0].lower() not in _KEYS:
                self.warn(f"line {number}: not a 'key: value' record, ignored")
                return
            key, value = words[0].lower(), words[1]
            missing_colon = True
        if not key:
            self.warn(f"line {number}: record without a name, ignored")
            return
        spec = _KEYS.get(key)
        if spec is None:
            self.unknown(number, key, value)
            return
        kind, canonical = spec
        if missing_colon:
            self.warn(f"line {number}: missing ':' after '{canonical}', read as '{canonical}: {_text(value)}'")
        if key != canonical.encode():
            self.warn(f"line {number}: '{_text(key)}' read as '{canonical}'")
        if kind == _UA:
            self.user_agent(number, _text(value))
        elif kind == _SITEMAP:
            ext = Extension("sitemap", _text(value), number)
            if ext.value:
                self.robots.sitemaps.append(ext.value)
                self.robots.sitemap_records.append(ext)
        elif kind == _LICENSE:
            ext = Extension("license", _text(value), number)
            if ext.value:
                self.robots.licenses.append(ext)
        elif self.current is None:
            self.warn(f"line {number}: '{canonical}' before any User-agent line, ignored (RFC 9309 §2.2.2)")
            if kind in (_USAGE, _SIGNAL):
                self.keep_other(Extension(canonical, _text(value), number))
        else:
            if kind in _RULE_KINDS:
                self.in_agents = False
            if kind in (_ALLOW, _DISALLOW):
                self.rule(number, kind == _ALLOW, value)
            elif kind in (_USAGE, _SIGNAL):
                self.current.extensions.append(Extension(canonical, _text(value), number))
            elif kind == _DELAY:
                self.crawl_delay(number, _text(value))
            else:
                self.request_rate(number, _text(value))

    def user_agent(self, number: int, value: str) -> None:
        current = self.current
        if current is None or not self.in_agents:
            current = Group(line=number)
            self.robots.groups.append(current)
            self.current = current
        current.agents = (*current.agents, value)
        current.agent_lines = (*current.agent_lines, number)
        self.in_agents = True
        if not value:
            self.warn(f"line {number}: empty User-agent value names no crawler")

    def rule(self, number: int, allow: bool, value: bytes) -> None:
        group = self.current
        assert group is not None
        if not value:
            return  # empty pattern: matches nothing (RFC 9309 §2.2.2), but still a rule for grouping
        text = _pattern_text(value)
        if text[0] not in "/*":
            self.warn(f"line {number}: pattern {text!r} does not start with '/' and can only match as written")
        group.rules.append(Rule(allow, text, number, compile_pattern(text)))
        if allow:
            # Google: allowing ".../index.htm(l)" also allows the directory URL ".../".
            slash = text.rfind("/")
            if slash >= 0 and text.startswith("/index.htm", slash):
                implied = text[: slash + 1] + "$"
                group._implied.append(Rule(True, implied, number, compile_pattern(implied), via=text))

    def crawl_delay(self, number: int, value: str) -> None:
        group = self.current
        assert group is not None
        try:
            delay = float(value.replace(",", "."))
        except ValueError:
            delay = math.nan
        if not math.isfinite(delay) or delay < 0:
            self.warn(f"line {number}: Crawl-delay {value!r} is not a number of seconds, ignored")
            return
        if group.crawl_delay is None or delay > group.crawl_delay:
            group.crawl_delay = delay

    def request_rate(self, number: int, value: str) -> None:
        group = self.current
        assert group is not None
        m = _RATE_RE.match(value)
        requests = int(m.group(1)) if m else 0
        seconds = float(m.group(2)) * _RATE_UNITS[m.group(3).lower()] if m else 0.0
        if not m or requests <= 0 or seconds <= 0:
            self.warn(f"line {number}: Request-rate {value!r} is not 'requests/seconds', ignored")
            return
        old = group.request_rate
        if old is None or requests / seconds < old[0] / old[1]:
            group.request_rate = (requests, seconds)

    def unknown(self, number: int, key: bytes, value: bytes) -> None:
        ext = Extension(_text(key), _text(value), number)
        if self.current is not None:
            self.current.extensions.append(ext)
        else:
            self.keep_other(ext)


def parse_robots(body: bytes | bytearray | memoryview | str | None, *, limit: int = PARSE_LIMIT) -> RobotsTxt:
    """Parse a robots.txt body. Never raises on content; raises ``TypeError`` only for a body that is not
    bytes-like, str or None. A str is measured against ``limit`` in UTF-8 bytes."""
    if body is None:
        data = b""
    elif isinstance(body, str):
        data = body.encode("utf-8", "surrogatepass")
    elif isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
    else:
        raise TypeError(f"robots.txt body must be bytes or str, not {type(body).__name__}")
    try:
        return _Parser().run(data, limit)
    except Exception as exc:  # pragma: no cover - defensive: a parser bug must fail closed, not open
        robots = _fixed(False, "robots.txt could not be parsed: complete disallow")
        robots.warnings.append(f"internal parser error: {exc!r}")
        return robots


def _fixed(allowed: bool, reason: str) -> RobotsTxt:
    robots = RobotsTxt()
    robots._fixed = allowed
    robots._reason = reason
    return robots


ALLOW_ALL = _fixed(True, "robots.txt unavailable (4xx): no restrictions (RFC 9309 §2.3.1.3)")
DISALLOW_ALL = _fixed(False, "robots.txt unreachable (5xx or network error): complete disallow (RFC 9309 §2.3.1.4)")
NOT_TEXT = _fixed(False, "robots.txt is not text (binary data or NUL bytes): complete disallow in conservative mode")


def looks_binary(body: bytes) -> bool:
    """A body that is plainly not a text file: a NUL byte, or more than one control byte in ten, in its first
    KiB (an image, an archive, a compressed body sent without Content-Encoding). RFC 9309 files are UTF-8 text."""
    sample = body[:1024]
    if not sample:
        return False
    if b"\x00" in sample:
        return True
    control = sum(1 for b in sample if (b < 0x20 and b not in (9, 10, 11, 12, 13)) or b == 0x7F)
    return control * 10 > len(sample)


# ----------------------------------------------------------------------------------------------------------------
# Signals


def _rule_value(m: RobotsMatch) -> str:
    if m.rule is None:
        return ("not text" if m.reason == NOT_TEXT.fixed_reason else "unreachable") if m.reason else ""
    return f"{m.rule.directive}: {m.rule.via or m.rule.pattern}"


def access_signal(robots: RobotsTxt, token: str, url: str, *, lenient: bool = True) -> Signal | None:
    """The access-stage signal: when ``token`` may not fetch ``url``, a robots signal denying every purpose
    (a page that may not be fetched can be used for nothing). ``None`` when fetching is allowed."""
    m = robots.match(token, url, lenient=lenient)
    if m.allowed:
        return None
    return Signal(
        protocol="robots",
        where="robots.txt",
        value=_rule_value(m),
        rule=m.describe(),
        verdicts={
            Purpose.TRAIN_AI: Verdict.DISALLOW,
            Purpose.AI_INPUT: Verdict.DISALLOW,
            Purpose.SEARCH: Verdict.DISALLOW,
        },
    )


@dataclass(slots=True)
class _CrossToken:
    """Per file and own token: the training tokens with a group of their own, and their answers by path."""

    named: list[str]
    answers: PrefixMemo[tuple[Signal, ...]]


def cross_token_signals(
    robots: RobotsTxt,
    url: str,
    own_token: str,
    *,
    tokens: tuple[str, ...] | list[str] = TRAINING_TOKENS,
    lenient: bool = True,
    source: str = "",
) -> list[Signal]:
    """Conservative-mode cross-token training reservations (PROTOCOLS.md §8.2 item 4): for every well-known
    training token that has its *own* group (``*`` does not count) disallowing ``url``, a signal that AI training
    is reserved. It never affects fetching or search. Tokens sharing one rule produce one signal naming them all.
    ``source`` (the robots.txt URL) is set on the signals, which are then shared by every URL they apply to."""
    own = own_token.strip().lower()
    # Which training tokens have a group of their own depends only on the file: work it out once per file, since
    # this runs for every URL and most files name none of them. Their groups are mostly `Disallow: /`, so the
    # answer is remembered per deciding path prefix (see PrefixMemo) rather than worked out for every URL.
    key = (tuple(tokens), own, lenient, source)
    cross = robots._explicit.get(key)
    if cross is None:
        named = [t for t in tokens if t.strip().lower() != own and robots.has_explicit_group(t, lenient=lenient)]
        literals = (entry[0] for t in named for entry in robots.select(t, lenient=lenient)._entries)
        cross = robots._explicit[key] = _CrossToken(named, PrefixMemo(literals))
    if not cross.named:
        return []
    decided = decision_path(url)

    def answer() -> tuple[Signal, ...]:
        return _cross_token_answer(robots, cross.named, url, lenient, source)

    return list(answer() if _always_allowed(decided) else cross.answers.get(decided, answer))


def _cross_token_answer(
    robots: RobotsTxt, named: list[str], url: str, lenient: bool, source: str
) -> tuple[Signal, ...]:
    found: dict[tuple[int, bool], tuple[RobotsMatch, list[str]]] = {}
    for token in named:
        m = robots.match(token, url, lenient=lenient)
        if m.allowed or m.rule is None:
            continue
        key = (m.rule.line, m.rule.allow)
        if key in found:
            found[key][1].append(token)
        else:
            found[key] = (m, [token])
    signals = []
    for m, names in found.values():
        assert m.rule is not None
        signals.append(
            Signal(
                protocol="robots",
                where="robots.txt",
                value=_rule_value(m),
                rule=f"{m.rule.describe()} (User-agent: {', '.join(_dedupe_labels(m, names))})",
                verdicts={Purpose.TRAIN_AI: Verdict.DISALLOW},
                source=source,
            )
        )
    return tuple(signals)


def _dedupe_labels(m: RobotsMatch, names: list[str]) -> list[str]:
    label = m.group.label_for(m.rule) if m.rule is not None else ""
    out = [label] if label else []
    for n in names:
        if n.lower() not in {o.lower() for o in out} and n.lower() not in _lenient_keys(label):
            out.append(n)
    return out
