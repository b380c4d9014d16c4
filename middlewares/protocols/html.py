"""A bounded, fast scan of an HTML document for the few things opt-out protocols read: `<meta>` and `<link>`
tags, the title, JSON-LD blocks, password forms and the amount of visible text.

A full DOM parse (lxml) costs hundreds of microseconds on a typical page; the usage stage runs on every fetched
page, so we walk the head tag by tag with small expressions that cannot backtrack, skipping comments, scripts
and styles so a commented-out directive does not count. The document is capped.
"""

from __future__ import annotations

import html as _html
import re

MAX_HTML_BYTES = 5 * 1024 * 1024

# Only the elements we read or must skip; other tags are stepped over by the regex engine, not by Python.
_OPEN = re.compile(r"<(!--|(?i:meta|link|script|style|title)(?=[\s/>]))")
_TAG_REST = re.compile(r"""[^>"']*(?:(?:"[^"]*"|'[^']*')[^>"']*)*>?""")
_ATTR = re.compile(r"""([^\s"'>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?""")
_TAGS = re.compile(rb"<[^>]*>")
_SPACE = re.compile(rb"\s+")


class Tag:
    """A `<meta>` or `<link>` tag. Attributes are parsed on first access: pages carry dozens of tags we never
    read (Open Graph, preload links), and parsing them all would dominate the cost of a scan."""

    __slots__ = ("_attrs", "_lower", "_raw", "line", "name")

    def __init__(self, name: str, raw: str | dict[str, str], line: int) -> None:
        self.name = name
        self.line = line
        if isinstance(raw, dict):
            self._raw, self._attrs = "", raw
            self._lower = " ".join(f"{k}={v}" for k, v in raw.items()).lower()
        else:
            self._raw, self._attrs = raw, None
            self._lower = raw.lower()

    def __repr__(self) -> str:
        return f"Tag({self.name!r}, {self.attrs!r}, line={self.line})"

    @property
    def attrs(self) -> dict[str, str]:
        """Attribute names lower-cased, values entity-decoded; the first occurrence of a name wins."""
        if self._attrs is None:
            self._attrs = _attrs(self._raw)
        return self._attrs

    def get(self, name: str, default: str = "") -> str:
        return self.attrs.get(name, default)

    def mentions(self, text: str) -> bool:
        """Cheap pre-filter: could this tag carry ``text`` (lower-case) in any attribute?"""
        return text in self._lower


class HtmlHead:
    """What :func:`scan_html` found. ``text_length`` is computed on first use: only login-wall detection needs it
    and it costs a pass over the whole body."""

    __slots__ = ("_body", "_json_ld", "_password", "_text_length", "links", "metas", "title")

    def __init__(
        self,
        metas: tuple[Tag, ...] = (),
        links: tuple[Tag, ...] = (),
        title: str = "",
        body: bytes = b"",
    ) -> None:
        self.metas = metas
        self.links = links
        self.title = title
        self._body = body
        self._text_length: int | None = None
        self._password: bool | None = None
        self._json_ld: tuple[str, ...] | None = None

    @property
    def has_password_form(self) -> bool:
        """A form with a password field anywhere in the document (login walls)."""
        if self._password is None:
            body = self._body
            self._password = (b"assword" in body or b"ASSWORD" in body) and bool(
                _PASSWORD.search(body) and _FORM.search(body)
            )
        return self._password

    @property
    def json_ld(self) -> tuple[str, ...]:
        """Raw contents of every ``application/ld+json`` script (paywall markup lives there)."""
        if self._json_ld is None:
            body = self._body
            found = _JSON_LD.findall(body) if b"ld+json" in body or b"LD+JSON" in body else []
            self._json_ld = tuple(_decode(b[:1_000_000]) for b in found)
        return self._json_ld

    def __repr__(self) -> str:
        return f"HtmlHead(metas={self.metas!r}, links={self.links!r}, title={self.title!r})"

    @property
    def text_length(self) -> int:
        if self._text_length is None:
            self._text_length = _visible_text_length(self._body)
        return self._text_length

    def meta_values(self, name: str) -> list[Tag]:
        """Meta tags whose ``name`` equals ``name`` case-insensitively."""
        name = name.lower()
        return [t for t in self.metas if t.mentions(name) and t.get("name").strip().lower() == name]


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
_WANTED = frozenset(("meta", "link"))
_PASSWORD = re.compile(rb"""<input\b[^>]*\btype\s*=\s*["']?password""", re.IGNORECASE)
_FORM = re.compile(rb"<form\b", re.IGNORECASE)
_JSON_LD = re.compile(rb"<script\b[^>]*ld\+json[^>]*>(.*?)</script", re.IGNORECASE | re.DOTALL)


def _find_close(text: str, name: str, start: int, end: int) -> int:
    """Position of the closing tag of a raw-text element, or ``end`` when it is missing."""
    for variant in (f"</{name}", f"</{name.upper()}", f"</{name.capitalize()}"):
        found = text.find(variant, start, end)
        if found >= 0:
            return found
    return end


def scan_html(body: bytes) -> HtmlHead:
    """Scan an HTML document; never raises. Only the first :data:`MAX_HTML_BYTES` are read.

    Meta and link tags are read from the head only (up to `</head>` or `<body>`), where HTML places them; every
    pass over a whole page costs tens of microseconds, so facts that live in the body (password forms, JSON-LD)
    are computed on first use."""
    body = body[:MAX_HTML_BYTES]
    head_end = _HEAD_END.search(body)
    text = _decode(body if head_end is None else body[: head_end.start()])
    end = len(text)
    metas: list[Tag] = []
    links: list[Tag] = []
    title = ""
    line, pos = 1, 0
    i = 0
    while True:
        m = _OPEN.search(text, i, end)
        if m is None:
            break
        name = m.group(1).lower()
        if name == "!--":
            close = text.find("-->", m.end(), end)
            i = end if close < 0 else close + 3
            continue
        rest = _TAG_REST.match(text, m.end(), end)
        raw = rest.group()[:-1] if rest.group().endswith(">") else rest.group()
        i = rest.end()
        if name in ("script", "style", "title"):
            close = _find_close(text, name, i, end)
            if name == "title" and not title:
                title = _html.unescape(text[i:close]).strip()[:500]
            i = end if close == end else text.find(">", close, end) + 1 or end
            continue
        if name not in _WANTED:
            continue
        line += text.count("\n", pos, m.start())
        pos = m.start()
        if name == "meta":
            metas.append(Tag("meta", raw, line))
        else:
            links.append(Tag("link", raw, line))
    return HtmlHead(metas=tuple(metas), links=tuple(links), title=title, body=body)


_SKIP = re.compile(rb"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def _visible_text_length(body: bytes) -> int:
    """Rough count of visible characters, used to tell a login wall from an article with a login box."""
    stripped = _TAGS.sub(b" ", _SKIP.sub(b" ", body))
    return len(_SPACE.sub(b" ", stripped).strip())
