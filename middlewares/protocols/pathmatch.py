"""RFC 9309 path patterns (`*`, `$`, percent-encoding), shared by robots.txt, tdmrep.json, ai.txt, RSL and
robots.txt Content-Usage rules, which all reuse the same matching.

Matching is linear in the path length per pattern segment: a pattern is split at `*` and each literal segment is
located with ``str.find`` from left to right. With `*` as the only wildcard, the leftmost occurrence is always
the right choice, so no backtracking is ever needed and `/*a*a*a*a*b` costs no more than its segments. Regular
expressions (what Protego and urllib use) backtrack on such patterns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Generic, TypeVar
from urllib.parse import urlsplit

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_HEX = frozenset("0123456789abcdefABCDEF")
# Anything but printable ASCII, and the characters normalisation rewrites: without them a text is already canonical.
_NEEDS_NORMALISING = re.compile(r"[^\x21-\x7e]|[%*$]")


def _normalise(text: str) -> str:
    """Bring a path (or a pattern segment, its wildcards already split off) to the canonical octet form of RFC
    9309 §2.2.2: non-ASCII and controls percent-encoded as UTF-8, hex digits upper-case, encoded unreserved
    characters decoded. `*` and `$` are encoded so a URL's literal characters can only match a pattern's `%2A` /
    `%24`."""
    if _NEEDS_NORMALISING.search(text) is None:
        return text
    out: list[str] = []
    raw = text.encode("utf-8", "surrogatepass")
    i, n = 0, len(raw)
    while i < n:
        b = raw[i]
        if b == 0x25 and i + 2 < n and chr(raw[i + 1]) in _HEX and chr(raw[i + 2]) in _HEX:
            v = int(raw[i + 1 : i + 3], 16)
            out.append(chr(v) if v in _UNRESERVED else f"%{v:02X}")
            i += 3
            continue
        if b <= 0x20 or b >= 0x7F or b in (0x2A, 0x24):
            out.append(f"%{b:02X}")
        else:
            out.append(chr(b))
        i += 1
    return "".join(out)


def normalise_path(path: str) -> str:
    """Canonical form of a URL path (+ query) for matching against patterns."""
    return _normalise(path or "/")


def url_path(url: str) -> str:
    """The part of a URL that RFC 9309 rules match: path and query, starting with `/`."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    if parts.query:
        path += "?" + parts.query
    return path


class Pattern:
    """A compiled path pattern. ``length`` is the specificity used for longest-match precedence."""

    __slots__ = ("_anchored", "_literal", "_segments", "length", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        anchored = text.endswith("$")
        body = text[:-1] if anchored else text
        # Inside a pattern `$` is only special at the end; elsewhere it is a literal character.
        segments = [_normalise(s) for s in body.split("*")]
        self._segments = segments
        self._anchored = anchored
        self._literal = segments[0] if len(segments) == 1 and not anchored else None
        self.length = sum(len(s) for s in segments) + (len(segments) - 1) + (1 if anchored else 0)

    def __repr__(self) -> str:
        return f"Pattern({self.text!r})"

    @property
    def lead(self) -> str:
        """The normalised text before the first `*`: every path this pattern matches starts with it."""
        return self._segments[0]

    @property
    def literal(self) -> str | None:
        """The normalised prefix this pattern stands for, or None when it has a `*` or a final `$`."""
        return self._literal

    def matches(self, path: str) -> bool:
        """Match an already normalised path (see :func:`normalise_path`)."""
        literal = self._literal
        if literal is not None:
            return path.startswith(literal)
        segments = self._segments
        first = segments[0]
        if not path.startswith(first):
            return False
        if len(segments) == 1:  # anchored literal
            return len(path) == len(first)
        pos = len(first)
        last = len(segments) - 1
        for i in range(1, last):
            seg = segments[i]
            found = path.find(seg, pos)
            if found < 0:
                return False
            pos = found + len(seg)
        tail = segments[last]
        if self._anchored:
            return len(path) - len(tail) >= pos and path.endswith(tail)
        return path.find(tail, pos) >= 0


@lru_cache(maxsize=4096)
def compile_pattern(text: str) -> Pattern:
    """A robots.txt-style path pattern, compiled once and shared: the same patterns recur across groups, files and
    origins."""
    return Pattern(text)


_T = TypeVar("_T")

MEMO_SIZE = 128
"""Answers a :class:`PrefixMemo` keeps before starting afresh."""


class PrefixMemo(Generic[_T]):
    """Answers that depend on a path only through plain-prefix patterns, remembered per deciding prefix.

    A pattern without `*` or a final `$` matches exactly the paths that start with it, so what a set of such
    patterns says about a path is fixed by the path's first ``horizon`` characters (the longest pattern's
    length): every article under ``/2026/11/`` gets the same answer from a file naming ``/premium/`` and ``/``.
    Most policy files are written that way, and re-evaluating them for every URL of an origin otherwise costs
    more than everything else the usage stage does. One wildcard or end anchor makes the whole path matter: the
    memo is then off (``horizon`` is None). Bounded: when full it starts afresh, trading a recomputation for
    memory, since a crawl keeps one per cached origin."""

    __slots__ = ("_answers", "horizon")

    def __init__(self, literals: Iterable[str | None]) -> None:
        prefixes = list(literals)
        self.horizon: int | None = None
        if None not in prefixes:
            self.horizon = max((len(p) for p in prefixes if p is not None), default=0)
        self._answers: dict[str, _T] = {}

    def get(self, path: str, compute: Callable[[], _T]) -> _T:
        """The answer for ``path`` (normalised as the patterns were), computing it on first use of its prefix."""
        if self.horizon is None:
            return compute()
        key = path[: self.horizon]
        answers = self._answers
        if key in answers:
            return answers[key]
        if len(answers) >= MEMO_SIZE:
            answers.clear()
        answer = answers[key] = compute()
        return answer
