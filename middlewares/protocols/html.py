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

# Comments, scripts and styles are matched whole so that tags inside them are never reported; quoted attribute
# values may contain `>`. Every repetition is an "unrolled loop" (a character class run, then one delimiter
# character that the class excludes), so matching is linear and runs in the regex engine's tight class loop.
_HEAD_TOKENS = re.compile(
    r"<!--[^-]*(?:-(?!->)[^-]*)*"
    r"|<(?i:script)\b[^<]*(?:<(?!/(?i:script))[^<]*)*"
    r"|<(?i:style)\b[^<]*(?:<(?!/(?i:style))[^<]*)*"
    r"""|<((?i:meta|link))(?=[\s/>])([^>"']*(?:(?:"[^"]*"|'[^']*')[^>"']*)*)>?""",
    re.DOTALL,
)
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
_PASSWORD = re.compile(rb"""<input\b[^>]*\btype\s*=\s*["']?password""", re.IGNORECASE)
_FORM = re.compile(rb"<form\b", re.IGNORECASE)
_JSON_LD = re.compile(rb"<script\b[^>]*ld\+json[^>]*>(.*?)</script", re.IGNORECASE | re.DOTALL)


def scan_html(body: bytes) -> HtmlHead:
    """Scan an HTML document; never raises. Only the first :data:`MAX_HTML_BYTES` are read.

    Meta and link tags are read from the head only (up to `</head>` or `<body>`), where HTML places them; every
    pass over a whole page costs tens of microseconds, so facts that live in the body (password forms, JSON-LD)
    are computed on first use. One expression walks the head, consuming comments, scripts and styles whole, so the
    Python loop only sees the meta and link tags themselves."""
    body = body[:MAX_HTML_BYTES]
    head_end = _HEAD_END.search(body)
    text = _decode(body if head_end is None else body[: head_end.start()])
    metas: list[Tag] = []
    links: list[Tag] = []
    for m in _HEAD_TOKENS.finditer(text):
        kind = m.group(1)
        if kind is None:
            continue
        tag = Tag("meta" if kind[0] in "mM" else "link", m.group(2), text=text, pos=m.start())
        (metas if tag.name == "meta" else links).append(tag)
    found = _TITLE.search(text)
    title = _html.unescape(found.group(1)).strip()[:500] if found else ""
    return HtmlHead(metas=tuple(metas), links=tuple(links), title=title, body=body)


_SKIP = re.compile(rb"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)


def _visible_text_length(body: bytes) -> int:
    """Rough count of visible characters, used to tell a login wall from an article with a login box."""
    stripped = _TAGS.sub(b" ", _SKIP.sub(b" ", body))
    return len(_SPACE.sub(b" ", stripped).strip())
