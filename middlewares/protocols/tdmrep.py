"""W3C TDM Reservation Protocol (TDMRep, CG Final Report 10 May 2024) — PROTOCOLS.md §2, §7.3.

TDMRep has five carriers, read here as pure functions:

* ``/.well-known/tdmrep.json`` (:func:`parse_tdmrep_json` + :func:`file_signals`): an array of rules, evaluated
  **in order, first match wins** (the spec's "most specific" is defined as the first in sequence; §2.2);
* the ``tdm-reservation`` / ``tdm-policy`` response headers (:func:`header_signal`);
* HTML ``<meta name="tdm-reservation">`` (:func:`html_signal`);
* EPUB OPF metadata, EPUB 2 ``name=`` and EPUB 3 ``property=`` forms (:func:`opf_signal`, :func:`epub_signal`);
* XMP ``tdm:reservation`` in PDF (and any other XMP carrier) (:func:`xmp_signal`).

Each carrier yields at most one :class:`Signal` (the well-known file may yield more in conservative mode).
:func:`effective` then applies the spec's own priority (§2.6: file -> header -> HTML -> embedded, later supersedes
earlier, absence never resets). In conservative mode every reservation survives, so a later ``0`` cannot undo an
earlier ``1`` (§10.4), and the conflict is written into the signal's ``note``.

A value other than ``0``/``1`` is a protocol error and means *unset* (strict). Conservative mode reads values that
evidently mean a reservation (``"1"``, ``true``, ``"yes"``) as ``1`` and logs the error; values that would
*grant* something are never guessed. A signal whose value is unset carries no verdicts (it decides nothing) and a
note explaining why, so the error still reaches the log.

Over 500 lines for one concern: TDMRep's four carriers (tdmrep.json, headers, HTML meta, EPUB/PDF metadata) share
one value model and one processing order (§2.6), which the policy resolves together.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
from dataclasses import dataclass, field, replace
from urllib.parse import unquote, urlsplit
from xml.etree.ElementTree import Element

from .html import HtmlHead
from .pathmatch import PrefixMemo, compile_pattern, normalise_path, url_path
from .signals import Mode, Purpose, Signal, Verdict
from .xmp import XmpDoc, parse_xml

PROTOCOL = "tdmrep"
TDMREP_NS_SLASH = "http://www.w3.org/ns/tdmrep/"  # PDF XMP namespace (§2.5)
TDMREP_NS_HASH = "http://www.w3.org/ns/tdmrep#"  # EPUB 3 prefix IRI (§2.5)
TDMREP_NAMESPACES = (TDMREP_NS_SLASH, TDMREP_NS_HASH)

MAX_FILE_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
MAX_RULES = 10_000
MAX_EPUB_BYTES = 256 * 1024 * 1024
MAX_EPUB_ENTRIES = 20_000
MAX_OPF_BYTES = 4 * 1024 * 1024
MAX_ROOTFILES = 8

_RESERVED_WORDS = frozenset(("1", "true", "yes", "y", "on", "reserved"))
_CONTAINER_NS = "urn:oasis:names:tc:opendocument:xmlns:container"


class TdmrepError(ValueError):
    """A tdmrep.json body that cannot be read as a TDMRep file at all (the origin does not implement TDMRep)."""


@dataclass
class TdmRule:
    """One entry of tdmrep.json. ``reservation`` is ``None`` when the value is missing or invalid (unset);
    ``raw`` keeps the value as written, for the record; ``index`` is the entry's position in the array."""

    location: str
    reservation: int | None
    policy: str | None
    index: int
    raw: str = ""
    note: str = ""


@dataclass
class TdmrepFile:
    """A parsed tdmrep.json. The rules are not to be changed once :func:`file_signals` has read them: their
    answers are remembered per path prefix, mode and source."""

    rules: list[TdmRule] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _answers: dict[tuple[Mode, str], PrefixMemo[tuple[Signal, ...]]] = field(
        default_factory=dict, repr=False, compare=False
    )


# --- value handling ----------------------------------------------------------------------------------------------


def _raw(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value[:200]
    try:
        return json.dumps(value)[:200]
    except (TypeError, ValueError):
        return repr(value)[:200]


def parse_value(value: object, *, mode: Mode, json_value: bool = False) -> tuple[int | None, str]:
    """(reservation, note) for one ``tdm-reservation`` value from any carrier.

    Strict: exactly ``0`` or ``1`` — a JSON number in tdmrep.json (``json_value``), the text ``0``/``1`` in headers
    and markup — anything else unset. Conservative additionally reads evident reservations (``"1"`` as a JSON
    string, ``true``, ``"yes"``, ``" 1 "``) as ``1``; a value that would *grant* is never guessed."""
    if value is None:
        return None, "tdm-reservation missing: unset"
    if isinstance(value, bool):
        if value and mode is Mode.CONSERVATIVE:
            return 1, "protocol error: tdm-reservation true is not 0/1; read as 1 (conservative)"
        return None, f"protocol error: tdm-reservation {_raw(value)} is not 0/1: unset"
    if isinstance(value, (int, float)):
        if value == 1 or value == 0:
            return int(value), ""
        return None, f"protocol error: tdm-reservation {_raw(value)} is not 0/1: unset"
    if isinstance(value, str):
        if value in ("0", "1") and not json_value:
            return int(value), ""
        text = value.strip()
        if mode is Mode.CONSERVATIVE and text.lower() in _RESERVED_WORDS:
            return 1, f"protocol error: tdm-reservation {value!r} is not 0/1; read as 1 (conservative)"
        return None, f"protocol error: tdm-reservation {value[:100]!r} is not 0/1: unset"
    return None, f"protocol error: tdm-reservation {_raw(value)} is not 0/1: unset"


def _verdicts(reservation: int | None) -> dict[Purpose, Verdict]:
    """§2.8 / §10.3: 1 reserves TDM, so AI training and AI input; search is not TDMRep's to decide."""
    if reservation == 1:
        return {Purpose.TRAIN_AI: Verdict.DISALLOW, Purpose.AI_INPUT: Verdict.DISALLOW}
    if reservation == 0:
        return {Purpose.TRAIN_AI: Verdict.ALLOW, Purpose.AI_INPUT: Verdict.ALLOW}
    return {}


def _policy_note(reservation: int | None, policy: str | None) -> str:
    if not policy:
        return ""
    if reservation == 1:
        return f"policy: {policy}"
    if reservation == 0:
        return f"tdm-policy {policy} present with tdm-reservation 0: not processed"
    return f"tdm-policy {policy} ignored: tdm-reservation unset"


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _signal(where: str, value: str, rule: str, reservation: int | None, policy: str | None, *notes: str) -> Signal:
    return Signal(
        protocol=PROTOCOL,
        where=where,
        value=value[:200],
        rule=rule[:300],
        verdicts=_verdicts(reservation),
        note=_join(*notes, _policy_note(reservation, policy)),
    )


# --- Technique A: /.well-known/tdmrep.json -----------------------------------------------------------------------

# The closing quote is optional so an unterminated string is consumed to the end in one match instead of being
# retried from every later quote (which would be quadratic).
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _json_depth(text: str) -> int:
    """Maximum bracket nesting, computed without recursion (strings removed first, so brackets inside them do not
    count). Guards :func:`json.loads`, whose decoder recurses once per level."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return 0
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = deepest = 0
    for ch in brackets:
        if ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_DEPTH:
                    return deepest
        else:
            depth -= 1
    return deepest


def _location(value: object, index: int, mode: Mode, notes: list[str]) -> str | None:
    if not isinstance(value, str):
        notes.append(f"entry {index}: location missing or not a string: entry ignored")
        return None
    location = value.strip() if mode is Mode.CONSERVATIVE else value
    if not location:
        notes.append(f"entry {index}: empty location: entry ignored")
        return None
    if location.startswith(("/", "*")):
        return location
    if "://" in location and mode is Mode.CONSERVATIVE:
        parts = urlsplit(location)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        notes.append(f"entry {index}: location {location!r} is a URL, not a path; using {path!r} (conservative)")
        return path
    if mode is Mode.CONSERVATIVE:
        notes.append(f"entry {index}: location {location!r} does not start with '/'; read as '/{location}'")
        return "/" + location
    notes.append(f"entry {index}: location {location!r} does not start with '/': it matches nothing")
    return location


class _Object(dict[str, object]):
    """A JSON object that remembers every ``tdm-reservation`` value it was given: duplicate keys are legal JSON,
    ``json`` keeps only the last, and conservative mode must not let a trailing ``0`` hide a ``1``."""

    reservations: list[object]

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, object]]) -> _Object:
        obj = cls(pairs)
        obj.reservations = [v for k, v in pairs if k == "tdm-reservation"]
        return obj


def parse_tdmrep_json(body: bytes, *, mode: Mode) -> TdmrepFile:
    """Parse a tdmrep.json body. Raises :class:`TdmrepError` when the body is not a TDMRep file (too large, not
    JSON, too deeply nested, not an array — except, in conservative mode, a lone rule object). Entry-level
    problems never raise: the entry is kept with an unset value, or skipped, and a note says so."""
    if not isinstance(body, (bytes, bytearray, str)):
        raise TdmrepError("tdmrep.json: body is not bytes")
    if len(body) > MAX_FILE_BYTES:
        raise TdmrepError(f"tdmrep.json larger than {MAX_FILE_BYTES} bytes")
    if isinstance(body, str):
        text = body
    else:
        try:
            text = bytes(body).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise TdmrepError("tdmrep.json is not UTF-8") from None
    if _json_depth(text) > MAX_JSON_DEPTH:
        raise TdmrepError(f"tdmrep.json nested deeper than {MAX_JSON_DEPTH} levels")
    notes: list[str] = []
    try:
        data = json.loads(text, object_pairs_hook=_Object.from_pairs)
    except (ValueError, RecursionError) as exc:
        raise TdmrepError(f"tdmrep.json is not valid JSON: {str(exc).splitlines()[0][:120]}") from None
    if isinstance(data, dict):
        if mode is Mode.CONSERVATIVE and "location" in data and "tdm-reservation" in data:
            notes.append("protocol error: tdmrep.json is a single object, not an array; read as one rule")
            data = [data]
        else:
            raise TdmrepError("tdmrep.json is not a JSON array")
    if not isinstance(data, list):
        raise TdmrepError("tdmrep.json is not a JSON array")
    rules: list[TdmRule] = []
    for index, entry in enumerate(data[:MAX_RULES]):
        if not isinstance(entry, dict):
            notes.append(f"entry {index}: not an object: ignored")
            continue
        location = _location(entry.get("location"), index, mode, notes)
        if location is None:
            continue
        value = entry.get("tdm-reservation")
        reservation, note = parse_value(value, mode=mode, json_value=True)
        if isinstance(entry, _Object) and len(entry.reservations) > 1:
            values = entry.reservations
            parsed = [parse_value(v, mode=mode, json_value=True)[0] for v in values]
            if mode is Mode.CONSERVATIVE and 1 in parsed:
                reservation, value = 1, values[parsed.index(1)]
            note = _join(note, f"duplicate tdm-reservation keys {[_raw(v) for v in values]}")
        if note:
            notes.append(f"entry {index}: {note}")
        policy = entry.get("tdm-policy")
        if policy is not None and not isinstance(policy, str):
            notes.append(f"entry {index}: tdm-policy is not a string: ignored")
            policy = None
        raw = _raw(value) if value is not None else ""
        rules.append(TdmRule(location, reservation, policy, index, raw, note))
    if len(data) > MAX_RULES:
        notes.append(f"only the first {MAX_RULES} entries read")
    return TdmrepFile(rules=rules, notes=notes)


def file_signals(f: TdmrepFile, url: str, *, mode: Mode, source: str = "") -> list[Signal]:
    """Signals of tdmrep.json for ``url``. Strict: the first matching rule (§2.2). Conservative: the first
    matching rule, plus every later matching rule that reserves (vector 25), each noting the conflict. ``source``
    (the file's URL) is set on the signals, which are then shared by every URL they apply to."""
    try:
        path = normalise_path(url_path(url))
    except ValueError:
        return []
    answers = f._answers.get((mode, source))
    if answers is None:
        answers = f._answers[mode, source] = PrefixMemo(compile_pattern(r.location).literal for r in f.rules)
    return list(answers.get(path, lambda: _file_answer(f, path, mode, source)))


def _file_answer(f: TdmrepFile, path: str, mode: Mode, source: str) -> tuple[Signal, ...]:
    matches = [r for r in f.rules if compile_pattern(r.location).matches(path)]
    if not matches:
        return ()
    first = matches[0]
    out = [_signal("well-known", first.raw, f"location {first.location}", first.reservation, first.policy, first.note)]
    if mode is Mode.CONSERVATIVE:
        for rule in matches[1:]:
            if rule.reservation != 1:
                continue
            conflict = (
                f"conflict: an earlier matching rule (entry {first.index}, location {first.location}) says "
                f"{first.raw or 'unset'} and wins under first-match; this later reservation is honoured (conservative)"
            )
            out.append(_signal("well-known", rule.raw, f"location {rule.location}", 1, rule.policy, conflict))
    return tuple(s.sourced(source) for s in out) if source else tuple(out)


# --- Technique B: HTTP headers -----------------------------------------------------------------------------------


def _items(field_lines: list[str]) -> list[str]:
    items: list[str] = []
    for line in field_lines or ():
        if not isinstance(line, str):
            continue
        items.extend(part.strip() for part in line[:4096].split(","))
    return [i for i in items if i][:64]


def _combine_values(
    values: list[str], policies: list[str], *, mode: Mode, where: str, rule: str, extra_note: str = ""
) -> Signal | None:
    """One signal from the (possibly repeated) values of one carrier. Strict: repeated identical values are one
    value, disagreeing values are an error (unset). Conservative: any reservation wins; the disagreement is noted."""
    if not values:
        return None
    parsed = [parse_value(v, mode=mode) for v in values]
    notes = [n for _, n in parsed if n][:8]
    results = [r for r, _ in parsed]
    distinct = {r for r in results if r is not None}
    policy = next((p for p in policies if p), None)
    if len(values) > 1 and len(set(values)) > 1:
        notes.append(f"multiple values {[v[:50] for v in values[:8]]}")
    if mode is Mode.CONSERVATIVE and 1 in results:
        value = values[results.index(1)]
        return _signal(where, value, rule, 1, policy, extra_note, *notes)
    if len(distinct) == 1 and (mode is Mode.CONSERVATIVE or None not in results):
        reservation = distinct.pop()
        value = values[results.index(reservation)]
        return _signal(where, value, rule, reservation, policy, extra_note, *notes)
    if len(distinct) > 1:
        notes.append("disagreeing values: unset")
    return _signal(where, ", ".join(values[:8]), rule, None, policy, extra_note, *notes)


def header_signal(reservation_values: list[str], policy_values: list[str], *, mode: Mode) -> Signal | None:
    """The ``tdm-reservation`` / ``tdm-policy`` response headers (one string per field line). ``None`` when the
    response has no ``tdm-reservation`` field (absence never resets an earlier value, §2.6)."""
    values = _items(reservation_values)
    if not values:
        return None
    return _combine_values(values, _items(policy_values), mode=mode, where="header", rule="tdm-reservation header")


# --- Technique C: HTML <meta> ------------------------------------------------------------------------------------


HTML_WORDS = ("tdm-",)
"""What :func:`html_signal` looks for in a head: a head without it holds no TDMRep meta tag."""


def html_signal(head: HtmlHead, *, mode: Mode) -> Signal | None:
    """``<meta name="tdm-reservation" content=...>`` (name compared case-insensitively); conservative mode also
    reads the ``http-equiv`` spelling, which some sites use to mimic the header."""
    values: list[str] = []
    policies: list[str] = []
    lines: list[int] = []
    notes: list[str] = []
    for tag in head.metas_mentioning(*HTML_WORDS):
        attrs = tag.attrs
        name = attrs.get("name", "").strip().lower()
        if not name and mode is Mode.CONSERVATIVE:
            name = attrs.get("http-equiv", "").strip().lower()
            if name == "tdm-reservation":
                notes.append(f"line {tag.line}: http-equiv used instead of name")
        if name == "tdm-reservation":
            if "content" not in attrs:
                notes.append(f"line {tag.line}: tdm-reservation meta without content")
                continue
            values.append(attrs["content"].strip())
            lines.append(tag.line)
        elif name == "tdm-policy" and attrs.get("content", "").strip():
            policies.append(attrs["content"].strip())
    if not values:
        return None
    rule = f"meta tdm-reservation (line {lines[0]})" if len(lines) == 1 else f"meta tdm-reservation (lines {lines})"
    return _combine_values(values, policies, mode=mode, where="html-meta", rule=rule, extra_note=_join(*notes))


# --- Technique D: EPUB (OPF) and PDF/XMP -------------------------------------------------------------------------


def _local(tag: object) -> str:
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1]


def _epub_prefixes(root: Element) -> dict[str, str]:
    """``prefix`` attribute of the EPUB 3 ``<package>``: whitespace-separated ``name: IRI`` pairs."""
    raw = root.get("prefix", "")
    tokens = raw.split()
    out: dict[str, str] = {}
    for i in range(len(tokens) - 1):
        if tokens[i].endswith(":") and len(tokens[i]) > 1:
            out[tokens[i][:-1]] = tokens[i + 1]
    return out


def _is_tdm_iri(iri: str) -> bool:
    return iri.strip() in TDMREP_NAMESPACES


def opf_signal(opf: bytes, *, mode: Mode) -> Signal | None:
    """TDMRep in an EPUB package document: EPUB 2 ``<meta name="tdm:reservation" content="1"/>`` and EPUB 3
    ``<meta property="tdm:reservation">1</meta>`` (the property's prefix resolved through ``package/@prefix``;
    an undeclared ``tdm:`` prefix is accepted with a note, since no other meaning is possible). Any DTD entity
    declaration makes the document unreadable (``None``)."""
    if not isinstance(opf, (bytes, bytearray)) or len(opf) > MAX_OPF_BYTES:
        return None
    root = parse_xml(bytes(opf), allow_doctype=True)
    if root is None:
        return None
    prefixes = _epub_prefixes(root)
    values: list[str] = []
    policies: list[str] = []
    forms: list[str] = []
    notes: list[str] = []
    for meta in root.iter():
        if _local(meta.tag) != "meta":
            continue
        name = meta.get("name")
        prop = meta.get("property")
        if name is not None:
            key = name.strip()
            if key in ("tdm:reservation", "tdm:policy"):
                content = (meta.get("content") or "").strip()
                if key == "tdm:reservation":
                    values.append(content)
                    forms.append(f'name="{key}"')
                elif content:
                    policies.append(content)
            continue
        if prop is None:
            continue
        prefix, sep, reference = prop.strip().partition(":")
        if not sep or reference not in ("reservation", "policy"):
            continue
        iri = prefixes.get(prefix)
        if iri is None:
            if prefix != "tdm":
                continue
            notes.append('prefix "tdm" not declared in package/@prefix; read as TDMRep')
        elif not _is_tdm_iri(iri):
            continue
        elif iri.strip() != TDMREP_NS_HASH:
            notes.append(f"prefix IRI {iri.strip()} (expected {TDMREP_NS_HASH})")
        text = (meta.text or "").strip()
        if meta.get("refines"):
            notes.append("tdm meta with refines applies to a sub-resource; read as package-wide (conservative)")
            if mode is Mode.STRICT:
                continue
        if reference == "reservation":
            values.append(text)
            forms.append(f'property="{prop.strip()}"')
        elif text:
            policies.append(text)
    if not values:
        return None
    rule = "OPF meta " + ", ".join(dict.fromkeys(forms))
    return _combine_values(values, policies, mode=mode, where="opf", rule=rule, extra_note=_join(*notes))


def _zip_entry_count(epub: bytes) -> int | None:
    """Entry count from the end-of-central-directory record, read before :class:`zipfile.ZipFile` parses the whole
    central directory (which could hold millions of entries)."""
    tail = epub[-(65536 + 22) :]
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + 22 > len(tail):
        return None
    count: int
    (count,) = struct.unpack_from("<H", tail, pos + 10)
    return count


def _read_member(zf: zipfile.ZipFile, name: str, limit: int) -> bytes | None:
    """Read at most ``limit`` decompressed bytes of one member (the header's size fields are not trusted)."""
    try:
        with zf.open(name) as fh:
            data = fh.read(limit + 1)
    except KeyError:
        return None
    if len(data) > limit:
        return None
    return data


def _rootfiles(container: bytes) -> list[str]:
    root = parse_xml(container, allow_doctype=True)
    if root is None:
        return []
    paths: list[str] = []
    for node in root.iter():
        if _local(node.tag) != "rootfile":
            continue
        path = (node.get("full-path") or "").strip()
        media_type = (node.get("media-type") or "application/oebps-package+xml").strip()
        if path and media_type == "application/oebps-package+xml":
            paths.append(unquote(path))
    return paths[:MAX_ROOTFILES]


def epub_signal(epub: bytes, *, mode: Mode) -> Signal | None:
    """TDMRep of an EPUB: ``META-INF/container.xml`` -> package document(s) -> :func:`opf_signal`.

    Zip bombs are bounded: entry count checked before the central directory is parsed, each member read with a
    decompressed-size cap, at most a few package documents read. Conservative mode falls back to any ``.opf``
    member when the container is missing or broken."""
    if not isinstance(epub, (bytes, bytearray)) or len(epub) > MAX_EPUB_BYTES:
        return None
    epub = bytes(epub)
    count = _zip_entry_count(epub)
    if count is None or count > MAX_EPUB_ENTRIES:
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(epub)) as zf:
            names = zf.namelist()
            container = _read_member(zf, "META-INF/container.xml", MAX_OPF_BYTES)
            paths = _rootfiles(container) if container else []
            note = ""
            if not paths and mode is Mode.CONSERVATIVE:
                paths = [n for n in names if n.lower().endswith(".opf")][:MAX_ROOTFILES]
                if paths:
                    note = "container.xml missing or unreadable; package found by .opf extension"
            found: list[Signal] = []
            for path in paths:
                opf = _read_member(zf, path, MAX_OPF_BYTES)
                if opf is None:
                    continue
                sig = opf_signal(opf, mode=mode)
                if sig is not None:
                    found.append(replace(sig, rule=f"{sig.rule} in {path}", note=_join(note, sig.note)))
    except Exception:  # zipfile's error surface is undocumented and wide (BadZipFile, zlib, lzma, struct, ...)
        return None
    if not found:
        return None
    if mode is Mode.CONSERVATIVE:
        reserved = [s for s in found if s.denies(Purpose.TRAIN_AI)]
        if reserved:
            return reserved[0]
    return found[0]


def xmp_signal(xmp: XmpDoc, *, mode: Mode) -> Signal | None:
    """``tdm:reservation`` / ``tdm:policy`` in XMP (PDF's carrier, §2.5), matched by namespace URI: the PDF ``/``
    namespace and, tolerated, the EPUB ``#`` IRI."""
    if xmp is None:
        return None
    values: list[str] = []
    policies: list[str] = []
    notes: list[str] = []
    for ns in TDMREP_NAMESPACES:
        found = xmp.values(ns, "reservation")
        if found and ns == TDMREP_NS_HASH:
            notes.append(f"namespace {TDMREP_NS_HASH} used in XMP (spec: {TDMREP_NS_SLASH})")
        values.extend(found)
        policies.extend(xmp.values(ns, "policy"))
    if not values:
        return None
    return _combine_values(
        values, policies, mode=mode, where="xmp", rule="XMP tdm:reservation", extra_note=_join(*notes)
    )


# --- priority (§2.6) ---------------------------------------------------------------------------------------------


def _reservation_of(sig: Signal) -> int | None:
    if sig.denies(Purpose.TRAIN_AI):
        return 1
    if sig.verdict(Purpose.TRAIN_AI) is Verdict.ALLOW:
        return 0
    return None


def _describe(sig: Signal) -> str:
    return f"{sig.where} {sig.value!r} ({sig.rule})"


def _with_note(sig: Signal, note: str) -> Signal:
    return replace(sig, note=_join(sig.note, note))


def effective(signals: list[Signal], *, mode: Mode) -> list[Signal]:
    """Apply TDMRep's processing priority to its signals, given in processing order (file, header, HTML, embedded).

    Strict: the last signal that has a value supersedes all earlier ones (absence — including an unset value —
    never resets). Conservative: every reservation is kept; if none, the last value. When values disagree the
    kept signal's note says what it overrode or was contradicted by. If no signal has a value, the unset ones are
    returned: they decide nothing but carry the protocol errors to the log."""
    valued = [s for s in signals if _reservation_of(s) is not None]
    if not valued:
        return [s for s in signals if s.note]
    values = {_reservation_of(s) for s in valued}
    if mode is Mode.STRICT:
        last = valued[-1]
        if len(values) > 1:
            others = [_describe(s) for s in valued[:-1] if _reservation_of(s) != _reservation_of(last)]
            return [_with_note(last, "conflict: supersedes " + ", ".join(others))]
        return [last]
    reserved = [s for s in valued if _reservation_of(s) == 1]
    if not reserved:
        return [valued[-1]]
    if len(values) > 1:
        later_zero = [_describe(s) for s in valued if _reservation_of(s) == 0]
        note = "conflict: also stated tdm-reservation 0 by " + ", ".join(later_zero) + "; reservation kept"
        return [_with_note(s, note) for s in reserved]
    return reserved
