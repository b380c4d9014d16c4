"""A bounded, fast scan of an HTML document for the few things opt-out protocols read: `<meta>` and `<link>`
tags, the title, JSON-LD blocks, password forms and the amount of visible text.

A full DOM parse (lxml) costs hundreds of microseconds on a typical page; the usage stage runs on every fetched
page, so we walk the head tag by tag with small expressions that cannot backtrack, skipping comments, scripts
and styles so a commented-out directive does not count. The document is capped.
"""

from __future__ import annotations

import functools
import html as _html
import re

from .bytesearch import contains

MAX_HTML_BYTES = 5 * 1024 * 1024

_TAG_REST = re.compile(r"""[^>"']*(?:(?:"[^"]*"|'[^']*')[^>"']*)*>?""")
_TITLE = re.compile(r"<(?i:title)\b[^>]*>(.*?)</(?i:title)", re.DOTALL)
_ATTR = re.compile(r"""([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?""")
_TAGS = re.compile(rb"<[^>]*>")
_SPACE = re.compile(rb"\s+")


class Tag:
    """A `<meta>` or `<link>` tag. Attributes and the line number are computed on first access: pages carry
    dozens of tags we never read (Open Graph, preload links), and working them all out would dominate a scan."""

    __slots__ = ("_attrs", "_line", "_lower", "_pos", "_raw", "_text", "name")

    def __init__(self, name: str, raw: str | dict[str, str], line: int = 0, *, text: str = "", pos: int = 0) -> None:
        self.name = name
        self._line = line
        self._text = text
        self._pos = pos
        self._attrs: dict[str, str] | None
        if isinstance(raw, dict):
            self._raw, self._attrs = "", raw
            self._lower = " ".join(f"{k}={v}" for k, v in raw.items()).lower()
        else:
            self._raw, self._attrs = raw, None
            self._lower = raw.lower()

    def __repr__(self) -> str:
        return f"Tag({self.name!r}, {self.attrs!r}, line={self.line})"

    @property
    def line(self) -> int:
        """1-based line of the tag in the document."""
        if not self._line:
            self._line = self._text.count("\n", 0, self._pos) + 1
        return self._line

    @property
    def attrs(self) -> dict[str, str]:
        """Attribute names lower-cased, values entity-decoded; the first occurrence of a name wins."""
        if self._attrs is None:
            self._attrs = _attrs(self._raw)
        return self._attrs

    def get(self, name: str, default: str = "") -> str:
        """One attribute's value; ``default`` when the tag does not have it."""
        return self.attrs.get(name, default)

    def mentions(self, text: str) -> bool:
        """Cheap pre-filter: could this tag carry ``text`` (lower-case) in any attribute?"""
        return text in self._lower

    def may_match(self, pattern: re.Pattern[str]) -> bool:
        """Could an attribute value, entity-decoded and lower-cased, contain a match of ``pattern`` (which must
        only match ASCII)? False only when certain: no match in the tag as written and no entity that could spell
        one, so callers can skip working out the attributes."""
        return "&" in self._lower or pattern.search(self._lower) is not None


class HtmlHead:
    """What :func:`scan_html` found. Everything is computed on first use: consumers mostly ask for the few tags
    that mention a word they care about (``robots``, ``tdm-``, their token), which :meth:`metas_mentioning`
    answers with ``str.find`` without walking every tag; only a caller that wants all tags pays for the walk."""

    __slots__ = (
        "_any",
        "_body",
        "_head",
        "_json_ld",
        "_links",
        "_lower",
        "_lower_utf8",
        "_metas",
        "_occurring",
        "_password",
        "_skipped",
        "_text",
        "_text_length",
        "_title",
    )

    def __init__(
        self,
        metas: tuple[Tag, ...] | None = None,
        links: tuple[Tag, ...] | None = None,
        title: str | None = None,
        body: bytes = b"",
        text: str | None = None,
        head: bytes | None = None,
    ) -> None:
        self._metas = metas
        self._links = links
        self._title = title
        self._body = body
        # The head as text, decoded from ``head`` when first needed: most pages are answered from the bytes alone.
        self._text = text
        self._head = head  # the bytes ``text`` is decoded from, when the caller has them
        self._lower: str | None = None
        self._lower_utf8: bytes | None = None
        self._occurring: dict[str, bool] = {}
        self._any: dict[tuple[str, ...], bool] = {}
        self._skipped: _Skipped | None = None
        self._text_length: int | None = None
        self._password: bool | None = None
        self._json_ld: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        return f"HtmlHead(metas={self.metas!r}, links={self.links!r}, title={self.title!r})"

    def _prepared(self) -> tuple[str, str, _Skipped]:
        if self._lower is None:
            if self._text is None:
                self._text = _decode(self._head or b"")
            text = self._text
            head = self._head
            if self._lower_utf8 is not None and head is not None and head.isascii():
                lower = self._lower_utf8.decode("ascii")  # the word tests lower-cased these bytes already
            else:
                lower = text.lower()
            if len(lower) != len(text):  # a few characters change length when lower-cased; keep positions exact
                lower = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
            self._lower = lower
            self._skipped = _Skipped(lower)
        assert self._skipped is not None
        assert self._text is not None
        return self._text, self._lower, self._skipped

    @property
    def metas(self) -> tuple[Tag, ...]:
        """Every ``<meta>`` tag in document order; walks all tags once, so prefer :meth:`metas_mentioning` for a few."""
        if self._metas is None:
            self._metas = tuple(_tags(*self._prepared(), "meta"))
        return self._metas

    @property
    def links(self) -> tuple[Tag, ...]:
        """Every ``<link>`` tag in document order; walks all tags once, so prefer :meth:`links_mentioning` for a few."""
        if self._links is None:
            self._links = tuple(_tags(*self._prepared(), "link"))
        return self._links

    @property
    def title(self) -> str:
        """The ``<title>`` text, entity-decoded, trimmed and cut to 500 characters; empty when there is none."""
        if self._title is None:
            text, _, skipped = self._prepared()
            found = _TITLE.search(text)
            ok = found is not None and not skipped.covers(found.start())
            self._title = _html.unescape(found.group(1)).strip()[:500] if ok and found else ""
        return self._title

    @property
    def has_password_form(self) -> bool:
        """A form with a password field anywhere in the document (login walls)."""
        if self._password is None:
            body = self._body
            # Lower-case spellings only: each substring test is a pass over the whole page, and upper-case
            # `type=PASSWORD` is vanishingly rare; the expression below is case-insensitive anyway.
            self._password = contains(body, b"assword") and bool(_PASSWORD.search(body) and _FORM.search(body))
        return self._password

    @property
    def json_ld(self) -> tuple[str, ...]:
        """Raw contents of every ``application/ld+json`` script (paywall markup lives there)."""
        if self._json_ld is None:
            body = self._body
            found = _JSON_LD.findall(body) if contains(body, b"ld+json", rare=2) else []
            self._json_ld = tuple(_decode(b[:1_000_000]) for b in found)
        return self._json_ld

    @property
    def mentions_paywall_key(self) -> bool:
        """Whether the page holds ``isAccessibleForFree`` at all: schema.org paywall markup is a JSON-LD member of
        exactly that name, and most pages have none, so their JSON-LD need not be extracted."""
        return contains(self._body, b"isAccessibleForFree")

    @property
    def text_length(self) -> int:
        """How much visible text the page holds, computed once: the access checks tell a login wall's short page from a
        full page by it."""
        if self._text_length is None:
            self._text_length = _visible_text_length(self._body)
        return self._text_length

    def mentions_any(self, words: tuple[str, ...]) -> bool:
        """Does any of ``words`` (lower-case) occur anywhere in the lower-cased head? When none does, every
        ``metas_mentioning``/``links_mentioning`` of these words is empty, which is the answer for most pages, so
        callers can skip asking each. The answer is remembered for the tuple asked about, and when it is yes, so is
        what was learnt on the way (the words before the one found are absent, that one present), since the readers
        then ask word by word. (One alternation regex instead took 4.7 µs for four words on a typical head: ``re``
        tries every alternative at every position.)"""
        found = self._any.get(words)
        if found is None:
            lower = self._lower_bytes()
            found = False
            for i, word in enumerate(_utf8(words)):
                if contains(lower, word):
                    found = True
                    self._occurring.update(dict.fromkeys(words[:i], False))
                    self._occurring[words[i]] = True
                    break
            self._any[words] = found
        return found

    def metas_mentioning(self, *words: str) -> list[Tag]:
        """Meta tags whose attributes contain any of ``words`` (lower-case), in document order."""
        return self._mentioning("meta", words) if self._metas is None else self._filter(self._metas, words)

    def links_mentioning(self, *words: str) -> list[Tag]:
        """Link tags whose attributes contain any of ``words`` (lower-case), in document order."""
        return self._mentioning("link", words) if self._links is None else self._filter(self._links, words)

    @staticmethod
    def _filter(tags: tuple[Tag, ...], words: tuple[str, ...]) -> list[Tag]:
        return [t for t in tags if any(w in t._lower for w in words)]

    def _mentioning(self, kind: str, words: tuple[str, ...]) -> list[Tag]:
        text, lower, skipped = self._prepared()
        opener = "<" + kind
        found: dict[int, Tag] = {}
        for word in words:
            if not word or not self._occurs(word):
                continue
            i = lower.find(word)
            while i >= 0:
                start = lower.rfind("<", 0, i)
                if (
                    start >= 0
                    and start not in found
                    and lower.startswith(opener, start)
                    and lower[start + len(opener) : start + len(opener) + 1] in _TAG_NAME_END
                    and not skipped.covers(start)
                ):
                    end = _tag_end(text, start + len(opener))
                    if end >= i:  # the word lies inside this tag, not in text after it
                        found[start] = Tag(kind, text[start + len(opener) : end], text=text, pos=start)
                i = lower.find(word, i + len(word))
        return [found[k] for k in sorted(found)]

    def _occurs(self, word: str) -> bool:
        """Does ``word`` occur anywhere in the lower-cased head? Most words asked about do not, and this page-wide
        negative is answered several times faster on bytes (:func:`bytesearch.contains`) than ``str.find`` can
        answer it; UTF-8 being self-synchronising, the bytes contain the word exactly where the text does."""
        found = self._occurring.get(word)
        if found is None:
            found = self._occurring[word] = contains(self._lower_bytes(), word.encode("utf-8", "surrogatepass"))
        return found

    def _lower_bytes(self) -> bytes:
        """The lower-cased head in UTF-8, where the page-wide word tests run."""
        if self._lower_utf8 is None:
            head = self._head
            # An ASCII head (most are) lower-cased as bytes is exactly the lower-cased text in UTF-8, without
            # decoding, lower-casing and encoding it again; anything else takes the long way, since a few
            # non-ASCII letters lower-case to ASCII ones (the Kelvin sign to "k").
            if head is not None and head.isascii():
                self._lower_utf8 = head.lower()
            else:
                self._lower_utf8 = self._prepared()[1].encode("utf-8", "surrogatepass")
        return self._lower_utf8

    def meta_values(self, name: str) -> list[Tag]:
        """Meta tags whose ``name`` equals ``name`` case-insensitively."""
        name = name.lower()
        return [t for t in self.metas if t.mentions(name) and t.get("name").strip().lower() == name]


@functools.lru_cache(maxsize=64)
def _utf8(words: tuple[str, ...]) -> tuple[bytes, ...]:
    """Words as the page-wide tests search for them (callers ask with the same few tuples for every page)."""
    return tuple(word.encode("utf-8", "surrogatepass") for word in words)


def _attrs(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in _ATTR.finditer(raw):
        key = m.group(1).lower()
        if key in out:  # HTML: the first occurrence of an attribute wins
            continue
        value = m.group(2) if m.group(2) is not None else m.group(3) if m.group(3) is not None else m.group(4)
        out[key] = _html.unescape(value) if value and "&" in value else value or ""
    return out


def _decode(body: bytes) -> str:
    # Meta charset sniffing is pointless for our needs: every directive we read is ASCII. Latin-1 maps bytes 1:1,
    # so line numbers and ASCII tokens stay exact whatever the real encoding.
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("latin-1")


_HEAD_END = re.compile(rb"</head|<body", re.IGNORECASE)
_PASSWORD = re.compile(rb"""<input\b[^>]*\btype\s*=\s*["']?password""", re.IGNORECASE)
_FORM = re.compile(rb"<form\b", re.IGNORECASE)
_JSON_LD = re.compile(rb"<script\b[^>]*ld\+json[^>]*>(.*?)</script", re.IGNORECASE | re.DOTALL)


_CLOSERS = {"<!--": "-->", "<script": "</script", "<style": "</style"}
_OPENERS = re.compile("|".join(map(re.escape, _CLOSERS)))


class _Skipped:
    """The comments, scripts and styles of a document, whose contents are not markup, found only as far as
    someone asks: the tags the protocols read usually come early in the head, before its scripts.

    Each kind is scanned on its own, as if alone in the document: an opener starts a span unless it lies inside
    an earlier span of the same kind, and the span runs to the next closer of that kind (or the end)."""

    __slots__ = ("_lower", "_resume", "_scanned", "_spans")

    def __init__(self, lower: str) -> None:
        self._lower = lower
        self._spans: list[tuple[int, int]] = []
        self._scanned = 0  # every opener starting before this has been read
        self._resume = dict.fromkeys(_CLOSERS, 0)  # per kind: where its next span may start

    def covers(self, pos: int) -> bool:
        """Is ``pos`` strictly inside a comment, script or style?"""
        if pos > self._scanned:
            self._scan(pos)
        return any(a < pos < b for a, b in self._spans)

    def _scan(self, upto: int) -> None:
        """Read the openers starting before ``upto``."""
        lower = self._lower
        for found in _OPENERS.finditer(lower, self._scanned):
            i = found.start()
            if i >= upto:
                self._scanned = i
                return
            opener = found.group()
            if i < self._resume[opener]:
                continue
            closer = _CLOSERS[opener]
            j = lower.find(closer, i + len(opener))
            end = len(lower) if j < 0 else j + len(closer)
            self._spans.append((i, end))
            self._resume[opener] = end
        self._scanned = len(lower)


def _tags(text: str, lower: str, skipped: _Skipped, name: str) -> list[Tag]:
    out: list[Tag] = []
    opener = "<" + name
    i = lower.find(opener)
    while i >= 0:
        after = lower[i + len(opener) : i + len(opener) + 1]
        end = _tag_end(text, i + len(opener))
        if after in _TAG_NAME_END and not skipped.covers(i):
            out.append(Tag(name, text[i + len(opener) : end], text=text, pos=i))
        i = lower.find(opener, end)
    return out


_TAG_NAME_END = frozenset((" ", "\t", "\n", "\r", "\f", "/", ">"))


def _tag_end(text: str, start: int) -> int:
    """Position of the `>` closing a tag, skipping `>` inside quoted attribute values."""
    end = text.find(">", start)
    if end < 0:
        return len(text)
    chunk = text[start:end]
    if chunk.count('"') % 2 == 0 and chunk.count("'") % 2 == 0:  # common case: every quote closed before `>`
        return end
    m = _TAG_REST.match(text, start)
    assert m is not None  # every part of the pattern is optional: it always matches
    return m.end() - 1 if m.group().endswith(">") else m.end()


def scan_html(body: bytes) -> HtmlHead:
    """Prepare an HTML document for the protocol parsers; never raises. Only the first :data:`MAX_HTML_BYTES`
    are read, and meta/link tags only from the head (up to `</head>` or `<body>`), where HTML places them.

    Nothing is parsed here: :class:`HtmlHead` works out what each consumer asks for, on first use, because the
    usage stage runs on every fetched page and most pages carry nothing it looks for."""
    body = body[:MAX_HTML_BYTES]
    head_end = _HEAD_END.search(body)
    head = body if head_end is None else body[: head_end.start()]
    return HtmlHead(body=body, head=head)


_SKIP = re.compile(rb"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def _visible_text_length(body: bytes) -> int:
    """Rough count of visible characters, used to tell a login wall from an article with a login box."""
    stripped = _TAGS.sub(b" ", _SKIP.sub(b" ", body))
    return len(_SPACE.sub(b" ", stripped).strip())
