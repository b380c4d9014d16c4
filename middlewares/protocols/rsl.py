"""Really Simple Licensing (RSL) 1.0: discovery of licence documents and their interpretation
(PROTOCOLS.md §5).

Discovery (§5.1): robots.txt ``License:`` lines (global, absolute URLs), HTTP ``Link`` with ``rel="license"`` *and*
``type="application/rsl+xml"`` and the same as HTML ``<link>``. A plain ``rel="license"`` (a Creative Commons
link) is not RSL (vector 61).

Documents are untrusted XML: parsed with defusedxml with DTDs forbidden, so entity bombs and external entities are
refused before anything is expanded, and capped in size.

Interpretation (§5.3), per purpose, for the ``<content>`` whose ``url`` matches the resource (full URL or RFC 9309
path pattern, longest match; equally long matches are all applied):

* ``<prohibits type="usage">`` listing a token of the purpose → disallow. Tokens: train-ai ← ``ai-train``,
  ``ai-all``, ``all``; ai-input ← ``ai-input``, ``ai-all``, ``all``; search ← ``search``, ``all``. Conservative mode
  also reads the AIPREF label ``train-ai`` as ``ai-train`` and ``ai-index`` (AI-powered search, which feeds content
  to a model at run time) as an ai-input token. ``ai-index`` never decides classic search: an AI reservation must
  not lower search indexing (§10.4), and a grant for AI search is not a grant for classic search.
* ``<permits type="usage">`` present without a token of the purpose → disallow (not granted).
* Granted (explicitly or because nothing restricts usage) but a ``<payment>`` other than ``free`` (or a zero
  amount) applies, or the ``<content>`` has a ``server`` attribute (a licence must be obtained even when free) →
  disallow until a licence is held (vector 59). Payment types ``training`` / ``inference`` apply only to
  train-ai / ai-input; ``attribution`` is free with a condition; every other type applies to all purposes. The
  same payment rule applies to search (§5.3 item 6: "analogous"): a search crawler that must pay per crawl has no
  free licence either.
* Explicitly granted and free → allow. Implicitly permitted (no permits list) and free → unknown.
* ``user`` / ``geo`` restrictions are evaluated against the operator's ``user`` type (default ``commercial``, the
  case of an AI lab) and ``geo`` country (default unknown). An unknown country cannot satisfy a ``permits
  type="geo"`` whitelist, nor be shown to be outside a ``prohibits type="geo"`` list, in conservative mode.
* Several ``<license>`` elements are alternative offers: a prohibition in any of them wins; otherwise one free
  grant is enough.

Over 500 lines for one concern: discovery, the licence document and its interpretation share one data model; the
XML reading alone is a third of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, quote, urljoin, urlsplit
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from .pathmatch import compile_pattern, normalise_path, url_path
from .signals import Mode, Purpose, Signal, Verdict

if TYPE_CHECKING:
    from .html import HtmlHead
    from .robots import Extension

PROTOCOL = "rsl"
RSL_NAMESPACE = "https://rslstandard.org/rsl"
# Namespace spellings accepted (with a note) in conservative mode: a missing xmlns and obvious variants.
LENIENT_NAMESPACES = frozenset(
    {"", "http://rslstandard.org/rsl", "https://rslstandard.org/rsl/", "http://rslstandard.org/rsl/"}
)
RSL_MEDIA_TYPE = "application/rsl+xml"
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_LICENSE_URLS = 32
MAX_CONTENTS = 10_000
MAX_HEADER_CHARS = 64 * 1024

GRANT_TOKENS: dict[Purpose, frozenset[str]] = {
    Purpose.TRAIN_AI: frozenset({"ai-train", "ai-all", "all"}),
    Purpose.AI_INPUT: frozenset({"ai-input", "ai-all", "all"}),
    Purpose.SEARCH: frozenset({"search", "all"}),
}
# Extra prohibition tokens read in conservative mode, with the note logged when they decide.
CONSERVATIVE_PROHIBIT_TOKENS: dict[Purpose, dict[str, str]] = {
    Purpose.TRAIN_AI: {"train-ai": "train-ai is the AIPREF label, not an RSL token; read as ai-train"},
    Purpose.AI_INPUT: {"ai-index": "ai-index (AI-powered search) read as an AI-input reservation"},
    Purpose.SEARCH: {},
}
FREE_PAYMENT_TYPES = frozenset({"free", "attribution"})
PURPOSE_PAYMENT_TYPES: dict[str, Purpose] = {"training": Purpose.TRAIN_AI, "inference": Purpose.AI_INPUT}


class RslError(ValueError):
    """The licence document is not usable RSL (invalid XML, forbidden DTD/entities, wrong root, too large)."""


# ---------------------------------------------------------------------------------------------------------------
# Discovery


def _absolute_http(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _clean_url(value: str) -> str:
    """RSL says licence URLs need not be URL-encoded; encode spaces and non-ASCII so a fetcher can use them."""
    value = value.strip().strip("<>").strip()
    return quote(value, safe=":/?#[]@!$&'()*+,;=%~")


def license_urls_from_robots(licenses: Iterable[Extension], base_url: str, *, mode: Mode) -> list[tuple[str, str]]:
    """Absolute licence URLs from robots.txt ``License:`` lines with a note for each. A relative value is invalid
    (RSL requires a fully qualified URL): strict mode skips it, conservative mode resolves it against the
    robots.txt URL and notes the error (vector 57). Non-HTTP(S) URLs are skipped. Order kept, duplicates removed."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for ext in licenses:
        raw = str(getattr(ext, "value", "")).strip()
        line = getattr(ext, "line", 0)
        if not raw:
            continue
        value = _clean_url(raw)
        note = ""
        if not _absolute_http(value):
            if mode is not Mode.CONSERVATIVE or _urlsplit_safe(value).scheme:
                continue
            try:
                resolved = urljoin(base_url, value)
            except ValueError:
                continue
            if not _absolute_http(resolved):
                continue
            note = (
                f"line {line}: License: {raw[:200]} is not an absolute URL as RSL requires; "
                f"resolved against {base_url[:200]}"
            )
            value = resolved
        if value in seen:
            continue
        seen.add(value)
        out.append((value, note))
        if len(out) >= MAX_LICENSE_URLS:
            break
    return out


def _urlsplit_safe(value: str) -> SplitResult:
    try:
        return urlsplit(value)
    except ValueError:
        return urlsplit("")


def parse_link_header(value: str) -> list[tuple[str, dict[str, str]]]:
    """RFC 8288 ``Link`` field value → ``[(uri_reference, {param: value})]``. Linear, never raises; malformed
    link-values are skipped. Parameter names are lower-cased; the first occurrence of a parameter wins."""
    value = value[:MAX_HEADER_CHARS]
    out: list[tuple[str, dict[str, str]]] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t,":
            i += 1
        if i >= n:
            break
        if value[i] != "<":
            i = _skip_to_comma(value, i)
            continue
        end = value.find(">", i + 1)
        if end < 0:
            break
        uri = value[i + 1 : end].strip()
        i = end + 1
        params: dict[str, str] = {}
        while i < n:
            while i < n and value[i] in " \t":
                i += 1
            if i >= n or value[i] == ",":
                break
            if value[i] != ";":
                i = _skip_to_comma(value, i)
                break
            i += 1
            while i < n and value[i] in " \t":
                i += 1
            start = i
            while i < n and value[i] not in "=;, \t":
                i += 1
            name = value[start:i].lower()
            while i < n and value[i] in " \t":
                i += 1
            param = ""
            if i < n and value[i] == "=":
                i += 1
                while i < n and value[i] in " \t":
                    i += 1
                if i < n and value[i] == '"':
                    i += 1
                    chars: list[str] = []
                    while i < n and value[i] != '"':
                        if value[i] == "\\" and i + 1 < n:
                            i += 1
                        chars.append(value[i])
                        i += 1
                    i += 1  # closing quote (or end)
                    param = "".join(chars)
                else:
                    start = i
                    while i < n and value[i] not in ";,":
                        i += 1
                    param = value[start:i].strip(" \t")
            if name and name not in params:
                params[name] = param
        out.append((uri, params))
    return out


def _skip_to_comma(value: str, i: int) -> int:
    """Index just after the next comma outside a quoted string (or the end)."""
    n = len(value)
    quoted = False
    while i < n:
        c = value[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == ",":
            return i + 1
        i += 1
    return n


def _is_rsl_link(rel: str, media_type: str) -> bool:
    rels = {r.lower() for r in rel.split()}
    return "license" in rels and media_type.split(";", 1)[0].strip().lower() == RSL_MEDIA_TYPE


def _cannot_name_license(value: str) -> bool:
    """A field value with no ``license`` (any case) cannot carry ``rel=license``, unless a quoted-pair spells it:
    most pages send `Link` only for canonical URLs and preloads, which then need no parsing."""
    return "\\" not in value and "license" not in value.lower()


def license_urls_from_headers(link_values: list[str], base_url: str) -> list[str]:
    """Licence URLs from ``Link`` field lines: only links with ``rel`` containing ``license`` *and*
    ``type="application/rsl+xml"`` (vector 61), resolved against the response URL."""
    out: list[str] = []
    for value in link_values[:64]:
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("latin-1")
        if not isinstance(value, str) or _cannot_name_license(value):
            continue
        for uri, params in parse_link_header(value):
            if not _is_rsl_link(params.get("rel", ""), params.get("type", "")):
                continue
            _add(out, uri, base_url)
    return out


HTML_WORDS = ("license",)
"""What :func:`license_urls_from_html` looks for in a head: a head without it links no licence."""


def license_urls_from_html(head: HtmlHead, base_url: str) -> list[str]:
    """Licence URLs from ``<link rel="license" type="application/rsl+xml" href="…">`` in the page head."""
    out: list[str] = []
    for tag in head.links_mentioning(*HTML_WORDS):
        attrs = getattr(tag, "attrs", None) or {}
        if not _is_rsl_link(str(attrs.get("rel", "")), str(attrs.get("type", ""))):
            continue
        _add(out, str(attrs.get("href", "")), base_url)
    return out


def _add(out: list[str], uri: str, base_url: str) -> None:
    uri = uri.strip()
    if not uri or len(out) >= MAX_LICENSE_URLS:
        return
    try:
        resolved = urljoin(base_url, _clean_url(uri))
    except ValueError:
        return
    if _absolute_http(resolved) and resolved not in out:
        out.append(resolved)


# ---------------------------------------------------------------------------------------------------------------
# Document model and parsing


@dataclass
class RslPayment:
    """A ``<payment>`` of an RSL licence: its type, any amounts, and the standard or custom terms it points to."""

    type: str  # lower-case, "" when absent
    amounts: list[tuple[str, str]] = field(default_factory=list)  # (amount text, currency)
    standard: list[str] = field(default_factory=list)
    custom: list[str] = field(default_factory=list)

    @property
    def free(self) -> bool:
        """No money or licence needed: type ``free``/``attribution``, or only zero amounts and no terms URL."""
        if self.type in FREE_PAYMENT_TYPES:
            return True
        if self.amounts and not self.standard and not self.custom:
            return all(_is_zero(a) for a, _ in self.amounts)
        return False

    def applies_to(self, purpose: Purpose) -> bool:
        """Whether the payment concerns ``purpose``: ``training`` and ``inference`` payments concern one purpose each,
        any other type every purpose."""
        only = PURPOSE_PAYMENT_TYPES.get(self.type)
        return only is None or only is purpose

    def describe(self) -> str:
        """The payment in a few words (type and up to three amounts), for the reasons users read."""
        text = f"payment type={self.type or '(none)'}"
        if self.amounts:
            text += " " + ", ".join(f"{a} {c}".strip() for a, c in self.amounts[:3])
        return text


def _is_zero(text: str) -> bool:
    try:
        return Decimal(text.strip()) == 0
    except (InvalidOperation, ValueError):
        return False


@dataclass
class RslLicense:
    """One ``<license>``: what it permits and prohibits (lower-case tokens by ``type``) and the payments it asks for."""

    permits: dict[str, set[str]] = field(default_factory=dict)  # type -> tokens (lower-case)
    prohibits: dict[str, set[str]] = field(default_factory=dict)
    payments: list[RslPayment] = field(default_factory=list)


@dataclass
class RslContent:
    """One ``<content>`` element: the URL it licenses, its licence server and its licences."""

    url: str
    server: str = ""
    licenses: list[RslLicense] = field(default_factory=list)


@dataclass
class RslDocument:
    """A parsed RSL file: its ``<content>`` elements, the namespace it was written in and notes on what was not
    understood."""

    contents: list[RslContent] = field(default_factory=list)
    namespace: str = RSL_NAMESPACE
    notes: list[str] = field(default_factory=list)


def _local(tag: object) -> tuple[str, str]:
    """(namespace, local name) of an ElementTree tag; comments/PIs have non-str tags."""
    if not isinstance(tag, str):
        return "\0", ""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _tokens(text: str | None) -> set[str]:
    return {t.strip().lower() for t in (text or "").replace(",", " ").split() if t.strip()}


def parse_license(body: bytes, *, mode: Mode = Mode.CONSERVATIVE) -> RslDocument:
    """Parse an RSL licence document. Raises :class:`RslError` on anything unusable: too large, not XML, a DTD
    or entity declaration (refused before expansion), or a root that is not ``<rsl>`` in the RSL namespace.
    Conservative mode accepts a missing or ``http:`` namespace with a note; strict mode refuses it."""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise RslError("licence document must be bytes")
    data = bytes(body)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise RslError(f"licence document is {len(data)} bytes, over the {MAX_DOCUMENT_BYTES}-byte limit")
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise RslError(f"refused unsafe XML: {type(exc).__name__}") from None
    except Exception as exc:  # expat errors, unsupported encodings, recursion limits: all "not XML"
        raise RslError(f"invalid XML: {str(exc)[:200] or type(exc).__name__}") from None

    ns, local = _local(root.tag)
    doc = RslDocument(namespace=ns)
    if local != "rsl":
        raise RslError(f"root element is <{local[:50]}>, not <rsl>")
    if ns != RSL_NAMESPACE:
        if mode is Mode.CONSERVATIVE and ns in LENIENT_NAMESPACES:
            doc.notes.append(f"root namespace {ns or '(none)'!r} is not {RSL_NAMESPACE}; read as RSL (conservative)")
        else:
            raise RslError(f"root namespace {ns[:100] or '(none)'!r} is not {RSL_NAMESPACE}")

    def children(element: Element, name: str) -> list[Element]:
        return [c for c in element if _local(c.tag) == (ns, name)]

    for content_el in children(root, "content"):
        if len(doc.contents) >= MAX_CONTENTS:
            doc.notes.append(f"only the first {MAX_CONTENTS} <content> elements read")
            break
        url = (content_el.get("url") or "").strip()
        if not url:
            doc.notes.append("<content> without url attribute ignored")
            continue
        content = RslContent(url=url, server=(content_el.get("server") or "").strip())
        for license_el in children(content_el, "license"):
            lic = RslLicense()
            for name, target in (("permits", lic.permits), ("prohibits", lic.prohibits)):
                for el in children(license_el, name):
                    kind = (el.get("type") or "usage").strip().lower()
                    target.setdefault(kind, set()).update(_tokens(el.text))
            for pay_el in children(license_el, "payment"):
                pay = RslPayment(type=(pay_el.get("type") or "").strip().lower())
                for amount in children(pay_el, "amount"):
                    pay.amounts.append(((amount.text or "").strip(), (amount.get("currency") or "").strip()))
                pay.standard = [(s.text or "").strip() for s in children(pay_el, "standard")]
                pay.custom = [(s.text or "").strip() for s in children(pay_el, "custom")]
                lic.payments.append(pay)
            content.licenses.append(lic)
        doc.contents.append(content)
    return doc


# ---------------------------------------------------------------------------------------------------------------
# Interpretation


def _content_match(content: RslContent, url: str) -> int | None:
    """Specificity of ``content.url`` for ``url`` (pattern length), or None when it does not apply. A full URL
    must name the same host (scheme and default port ignored); its path is then matched like a path pattern."""
    pattern_text = content.url
    try:
        target = urlsplit(url)
        if "://" in pattern_text:
            parts = urlsplit(pattern_text)
            if (parts.hostname or "").lower() != (target.hostname or "").lower():
                return None
            if parts.port not in (None, 80, 443) and parts.port != target.port:
                return None
            pattern_text = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        elif not pattern_text.startswith(("/", "*")):
            pattern_text = "/" + pattern_text
        pattern = compile_pattern(pattern_text)
        path = normalise_path(url_path(url))
    except ValueError:
        return None
    return pattern.length if pattern.matches(path) else None


@dataclass
class _Outcome:
    kind: str  # "prohibit" | "not-granted" | "licence-required" | "granted" | "implicit" | "none"
    reason: str
    note: str = ""


def _evaluate_license(
    lic: RslLicense, content: RslContent, purpose: Purpose, *, mode: Mode, user: str, geo: str | None
) -> _Outcome:
    grant = GRANT_TOKENS[purpose]
    prohibited = lic.prohibits.get("usage", set())
    hit = sorted(prohibited & grant)
    if hit:
        return _Outcome("prohibit", f"prohibits usage {hit[0]}")
    if mode is Mode.CONSERVATIVE:
        for token, why in CONSERVATIVE_PROHIBIT_TOKENS[purpose].items():
            if token in prohibited:
                return _Outcome("prohibit", f"prohibits usage {token}", why)
    note = ""
    if user and user.lower() in lic.prohibits.get("user", set()):
        return _Outcome("prohibit", f"prohibits user {user.lower()}")
    if "user" in lic.permits and user and user.lower() not in lic.permits["user"]:
        return _Outcome("not-granted", f"permits user {','.join(sorted(lic.permits['user']))} only")
    if geo:
        if geo.lower() in lic.prohibits.get("geo", set()):
            return _Outcome("prohibit", f"prohibits geo {geo.lower()}")
        if "geo" in lic.permits and geo.lower() not in lic.permits["geo"]:
            return _Outcome("not-granted", f"permits geo {','.join(sorted(lic.permits['geo']))} only")
    elif lic.prohibits.get("geo") and mode is Mode.CONSERVATIVE:
        return _Outcome(
            "prohibit",
            f"prohibits geo {','.join(sorted(lic.prohibits['geo']))}",
            "operator country unknown; it may be one the licence prohibits",
        )
    elif "geo" in lic.permits:
        if mode is Mode.CONSERVATIVE:
            return _Outcome(
                "not-granted",
                f"permits geo {','.join(sorted(lic.permits['geo']))} only",
                "operator country unknown; a geo whitelist cannot be shown to be met",
            )
        note = "geo whitelist not evaluated (operator country unknown)"
    if "usage" in lic.permits:
        granted = sorted(lic.permits["usage"] & grant)
        if not granted:
            listed = ",".join(sorted(lic.permits["usage"])) or "(nothing)"
            return _Outcome("not-granted", f"permits usage {listed} only", note)
        kind, reason = "granted", f"permits usage {granted[0]}"
    else:
        kind, reason = "implicit", "usage not restricted"
    payments = [p for p in lic.payments if p.applies_to(purpose) and not p.free]
    if payments:
        return _Outcome("licence-required", f"{reason}, {payments[0].describe()}: licence required", note)
    if content.server:
        return _Outcome("licence-required", f"{reason}, licence server {content.server[:200]}: licence required", note)
    if any(p.type == "attribution" for p in lic.payments if p.applies_to(purpose)):
        note = "; ".join(filter(None, [note, "attribution required"]))
    return _Outcome(kind, reason, note)


def _decide(outcomes: list[_Outcome]) -> tuple[Verdict | None, _Outcome | None]:
    for kind, verdict in (
        ("prohibit", Verdict.DISALLOW),
        ("granted", Verdict.ALLOW),
        ("implicit", None),
        ("licence-required", Verdict.DISALLOW),
        ("not-granted", Verdict.DISALLOW),
    ):
        for outcome in outcomes:
            if outcome.kind == kind:
                return verdict, outcome
    return None, None


def signals(
    doc: RslDocument,
    url: str,
    *,
    mode: Mode,
    source: str = "",
    user: str = "commercial",
    geo: str | None = None,
) -> list[Signal]:
    """The RSL verdicts for ``url`` (see the module docstring). [] when no ``<content>`` matches or nothing is
    decided. One signal per applicable ``<content>`` element."""
    matched: list[tuple[int, RslContent]] = []
    for content in doc.contents:
        length = _content_match(content, url)
        if length is not None:
            matched.append((length, content))
    if not matched:
        return []
    best = max(length for length, _ in matched)
    out: list[Signal] = []
    for length, content in matched:
        if length != best:
            continue
        verdicts: dict[Purpose, Verdict] = {}
        reasons: list[str] = []
        notes: list[str] = list(doc.notes)
        if not content.licenses:
            notes.append("<content> has no <license>")
        for purpose in (Purpose.TRAIN_AI, Purpose.AI_INPUT, Purpose.SEARCH):
            outcomes = [
                _evaluate_license(lic, content, purpose, mode=mode, user=user, geo=geo) for lic in content.licenses
            ]
            verdict, outcome = _decide(outcomes)
            if outcome is None:
                continue
            if verdict is not None:
                verdicts[purpose] = verdict
                reasons.append(f"{purpose.value}: {outcome.reason}")
            if outcome.note and outcome.note not in notes:
                notes.append(outcome.note)
        if not verdicts:
            continue
        out.append(
            Signal(
                protocol=PROTOCOL,
                where="license",
                value=content.url[:300],
                rule=f'<content url="{content.url[:200]}">: ' + "; ".join(reasons),
                verdicts=verdicts,
                source=source,
                note="; ".join(notes),
            )
        )
    return out
