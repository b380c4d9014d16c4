"""robots.txt reading: one pass over the bytes into groups, rules and the non-standard records kept for callers.

The reading rules (limits, BOM, comments, Google's leniencies, what ends a group) are listed in
:mod:`middlewares.protocols.robots`; this module applies them and fills the data model of :mod:`robots_match`.
It never raises on content: a file it cannot read fails closed (complete disallow).
"""

from __future__ import annotations

import math
import re

from middlewares.protocols.pathmatch import compile_pattern
from middlewares.protocols.robots_match import Extension, Group, RobotsTxt, Rule, fixed_answer

PARSE_LIMIT = 512_000
"""Bytes read from a robots.txt body (RFC 9309 §2.5: at least 500 KiB)."""

MAX_LINE_BYTES = 2083 * 8 - 1
"""Bytes kept of one line; Google's parser keeps the same amount and its tests depend on it."""

_MAX_WARNINGS = 100
_MAX_OTHER = 1000

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
        robots = fixed_answer(False, "robots.txt could not be parsed: complete disallow")
        robots.warnings.append(f"internal parser error: {exc!r}")
        return robots


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
