"""Registry records: the REGISTRY.md §6.2 schema, its RFC 8785 (JCS) leaf bytes, and helpers to build records.

A leaf is the JCS serialisation of one record. Two properties matter more than convenience:

* **One byte string per record.** Verifiers hash the exact leaf bytes, so the schema is restricted to what JCS
  serialises unambiguously and what every JSON stack round-trips: no floats at all, integers within
  ±(2**53 - 1), ASCII object keys (JCS sorts keys by UTF-16 code units; for ASCII that equals code-point order),
  strings as observed (no Unicode normalisation). ``rfc8785`` is the reference; the fast path below (stdlib
  ``json`` with sorted keys) is only used because a property test proves it byte-identical under these rules,
  and ``parse_leaf`` — what verifiers use — always checks against ``rfc8785``.
* **Refuse rather than guess.** A record with a missing field, an unknown field, a float or an oversized value
  raises RecordError naming the field, so a bad record never becomes permanent in an append-only log.

Size limits keep a leaf under 65,535 bytes, the largest entry a C2SP tlog-tiles entry bundle can carry.

Purpose vocabulary (PROTOCOLS.md): ``AI_TRAIN``, ``GENAI_TRAIN``, ``AI_INPUT``, ``SEARCH``, ``TDM``. The toolkit's
policy purposes map onto it through ``PURPOSE_MAP``: ``train-ai`` -> ``AI_TRAIN`` + ``TDM`` (training is text and
data mining, so an Art. 4 TDM reservation is what was honoured), ``ai-input`` -> ``AI_INPUT``, ``search`` ->
``SEARCH``. Vocabulary names are also accepted as-is (e.g. ``GENAI_TRAIN`` when a signal names generative AI).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import rfc8785

__all__ = [
    "DECISIONS",
    "MAX_LEAF_BYTES",
    "PURPOSES",
    "PURPOSE_MAP",
    "RECORD_TYPE",
    "SCHEMA_VERSION",
    "RecordError",
    "canonical",
    "evidence_ref",
    "format_time",
    "new_record",
    "parse_leaf",
    "registrable_domain",
    "validate",
]

SCHEMA_VERSION = 1
RECORD_TYPE = "optout.honoured"
DECISIONS = ("not_fetched", "fetched_not_stored", "excluded_from_corpus", "purged")
PURPOSES = ("AI_TRAIN", "GENAI_TRAIN", "AI_INPUT", "SEARCH", "TDM")
PURPOSE_MAP: dict[str, tuple[str, ...]] = {
    "train-ai": ("AI_TRAIN", "TDM"),
    "ai-input": ("AI_INPUT",),
    "search": ("SEARCH",),
}
# Mechanisms named in REGISTRY.md §6.2; the field accepts any lower-case token so new protocols need no schema bump.
KNOWN_MECHANISMS = (
    "robots.txt",
    "tdmrep.wellknown",
    "tdmrep.header",
    "tdmrep.meta",
    "aipref.header",
    "aipref.robots",
    "content-signal",
    "x-robots-tag",
    "meta-robots",
    "iptc.xmp",
    "c2pa",
)

MAX_INT = 2**53 - 1
MAX_LEAF_BYTES = 65535
MAX_STRING_CHARS = 8192
MAX_DEPTH = 12
MAX_ITEMS = 256
MAX_KEY_CHARS = 64

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}\Z")
_SALT = re.compile(r"[A-Za-z0-9_-]{21}[AQgw]\Z")  # 16 bytes: the last char carries 2 bits, low 4 bits zero
_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?Z\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_TOKEN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s]+\Z")


class RecordError(ValueError):
    """A record or leaf does not meet the schema; the message names the field and the rule."""


# ---------------------------------------------------------------------------------------------------------------
# Generic JSON-value rules (what makes JCS unambiguous)


def _check_value(value: object, path: ValuePath, depth: int) -> None:
    """Raise RecordError unless ``value`` is in the JSON domain JCS is unambiguous on. ``path`` is built as
    (parent, key) pairs and spelt out only for an error: this runs on every value of every record appended."""
    t = type(value)
    if t is str:
        if len(value) > MAX_STRING_CHARS:  # type: ignore[arg-type]
            raise RecordError(f"{_spell(path)}: string longer than {MAX_STRING_CHARS} characters")
    elif t is int:
        if not -MAX_INT <= value <= MAX_INT:  # type: ignore[operator]
            raise RecordError(f"{_spell(path)}: integer {value} is outside ±(2**53-1)")
    elif t is bool or value is None:
        pass
    elif t is float:
        raise RecordError(f"{_spell(path)}: floats are not allowed in records (use an integer or a string)")
    elif t is dict:
        if depth >= MAX_DEPTH:
            raise RecordError(f"{_spell(path)}: nested deeper than {MAX_DEPTH} levels")
        if len(value) > MAX_ITEMS:  # type: ignore[arg-type]
            raise RecordError(f"{_spell(path)}: object has more than {MAX_ITEMS} members")
        for k, v in value.items():  # type: ignore[attr-defined]
            if type(k) is not str:
                raise RecordError(f"{_spell(path)}: object key {k!r} is not a string")
            if not k.isascii() or len(k) > MAX_KEY_CHARS:
                raise RecordError(
                    f"{_spell(path)}: object key {k[:80]!r} must be ASCII and at most {MAX_KEY_CHARS} chars"
                )
            if type(v) is not str or len(v) > MAX_STRING_CHARS:  # most members are short strings: no call
                _check_value(v, (path, k), depth + 1)
    elif t is list or t is tuple:
        if depth >= MAX_DEPTH:
            raise RecordError(f"{_spell(path)}: nested deeper than {MAX_DEPTH} levels")
        if len(value) > MAX_ITEMS:  # type: ignore[arg-type]
            raise RecordError(f"{_spell(path)}: array has more than {MAX_ITEMS} items")
        for i, v in enumerate(value):  # type: ignore[arg-type]
            if type(v) is not str or len(v) > MAX_STRING_CHARS:
                _check_value(v, (path, i), depth + 1)
    else:
        raise RecordError(
            f"{_spell(path)}: {t.__name__} is not a JSON value (plain str, int, bool, None, dict, list only)"
        )


# Where a value sits: the root's name, or (parent, key) for an object member, (parent, index) for an array item.
ValuePath = str | tuple["ValuePath", str | int]


def _spell(path: ValuePath) -> str:
    """``record.rule.value`` / ``record.purposes[2]`` for a :data:`ValuePath`."""
    parts: list[str] = []
    while isinstance(path, tuple):
        path, key = path
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return path + "".join(reversed(parts))


# ---------------------------------------------------------------------------------------------------------------
# Schema (REGISTRY.md §6.2)


def _require(obj: Mapping[str, Any], path: str, required: frozenset[str], allowed: frozenset[str]) -> None:
    keys = obj.keys()
    if required <= keys and keys <= allowed:
        return
    missing = sorted(required - keys)
    if missing:
        raise RecordError(f"{path}: missing required field(s) {', '.join(missing)}")
    unknown = sorted(keys - allowed)
    raise RecordError(f"{path}: unknown field(s) {', '.join(unknown)} (schema v{SCHEMA_VERSION})")


def _fields(required: str, optional: str = "") -> tuple[frozenset[str], frozenset[str]]:
    req = frozenset(required.split())
    return req, req | frozenset(optional.split())


_TOP = _fields("v type id salt observed_at crawler target mechanism purposes rule decision", "evidence")
_CRAWLER = _fields("operator agent_token node", "software")
_TARGET = _fields("url site", "host")
_EVIDENCE = _fields("url fetched_at status sha256 length", "headers_sha256")


def _str(obj: Mapping[str, Any], key: str, path: str, *, empty: bool = False) -> str:
    value = obj[key]
    if type(value) is not str:
        raise RecordError(f"{path}.{key}: must be a string, got {type(value).__name__}")
    if not empty and not value:
        raise RecordError(f"{path}.{key}: must not be empty")
    return value


def _int(obj: Mapping[str, Any], key: str, path: str, lo: int, hi: int) -> int:
    value = obj[key]
    if type(value) is not int:
        raise RecordError(f"{path}.{key}: must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise RecordError(f"{path}.{key}: {value} is outside {lo}..{hi}")
    return value


def _obj(obj: Mapping[str, Any], key: str, path: str) -> dict[str, Any]:
    value = obj[key]
    if type(value) is not dict:
        raise RecordError(f"{path}.{key}: must be an object, got {type(value).__name__}")
    return value


def _time(obj: Mapping[str, Any], key: str, path: str) -> None:
    value = _str(obj, key, path)
    m = _TIME.match(value)
    if not m:
        raise RecordError(f"{path}.{key}: {value[:40]!r} is not RFC 3339 UTC 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z'")
    try:
        datetime.fromisoformat(value[:19])  # calendar check (Feb 30, hour 24...); format fixed by the regex
    except ValueError as exc:
        raise RecordError(f"{path}.{key}: invalid date/time {value!r} ({exc})") from None


def _url(obj: Mapping[str, Any], key: str, path: str) -> None:
    value = _str(obj, key, path)
    if not _URL.match(value):
        raise RecordError(f"{path}.{key}: {value[:80]!r} is not an absolute URL")


def _check_schema(record: Mapping[str, Any]) -> None:
    _require(record, "record", *_TOP)
    v = record["v"]
    if type(v) is not int:
        raise RecordError(f"record.v: must be an integer, got {type(v).__name__}")
    if v != SCHEMA_VERSION:
        raise RecordError(f"record.v: unsupported schema version {v} (this code reads v{SCHEMA_VERSION})")
    if record["type"] != RECORD_TYPE:
        raise RecordError(f"record.type: must be {RECORD_TYPE!r}, got {record['type']!r}")
    rid = _str(record, "id", "record")
    if not (_UUID.match(rid) or _ULID.match(rid)):
        raise RecordError(f"record.id: {rid[:40]!r} is not a lower-case UUID or a ULID")
    salt = _str(record, "salt", "record")
    if not _SALT.match(salt):
        raise RecordError("record.salt: must be 16 bytes in base64url without padding (22 characters)")
    _time(record, "observed_at", "record")

    crawler = _obj(record, "crawler", "record")
    _require(crawler, "record.crawler", *_CRAWLER)
    _str(crawler, "operator", "record.crawler")
    _str(crawler, "agent_token", "record.crawler")
    _str(crawler, "node", "record.crawler", empty=True)
    if "software" in crawler:
        _str(crawler, "software", "record.crawler", empty=True)

    target = _obj(record, "target", "record")
    _require(target, "record.target", *_TARGET)
    _url(target, "url", "record.target")
    _str(target, "site", "record.target")
    if "host" in target:
        _str(target, "host", "record.target")

    mechanism = _str(record, "mechanism", "record")
    if not _TOKEN.match(mechanism):
        raise RecordError(f"record.mechanism: {mechanism[:40]!r} is not a lower-case token (e.g. 'robots.txt')")

    purposes = record["purposes"]
    if type(purposes) not in (list, tuple) or not purposes:
        raise RecordError("record.purposes: must be a non-empty list")
    for p in purposes:
        if p not in PURPOSES or type(p) is not str:
            raise RecordError(f"record.purposes: {p!r} is not one of {', '.join(PURPOSES)}")
    if len(set(purposes)) != len(purposes):
        raise RecordError("record.purposes: duplicate purpose")

    _obj(record, "rule", "record")
    decision = record["decision"]
    if decision not in DECISIONS or type(decision) is not str:
        raise RecordError(f"record.decision: {decision!r} is not one of {', '.join(DECISIONS)}")

    if "evidence" in record:
        ev = _obj(record, "evidence", "record")
        _require(ev, "record.evidence", *_EVIDENCE)
        _url(ev, "url", "record.evidence")
        _time(ev, "fetched_at", "record.evidence")
        _int(ev, "status", "record.evidence", 0, 999)
        _int(ev, "length", "record.evidence", 0, MAX_INT)
        for key in ("sha256", "headers_sha256"):
            if key in ev and not _HEX64.match(_str(ev, key, "record.evidence")):
                raise RecordError(f"record.evidence.{key}: must be 64 lower-case hex digits")


# ---------------------------------------------------------------------------------------------------------------
# Canonical bytes

_fast_encoder = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _fast_jcs(value: Any) -> bytes:
    """JCS for the restricted value domain (_check_value passed). Equal to rfc8785.dumps there because: keys are
    ASCII (code-point order == UTF-16 order), no floats, ints print as decimal, and Python's escaping with
    ensure_ascii=False is JCS's (only ", \\ and U+0000..U+001F, as \\b \\t \\n \\f \\r or lower-case \\u00xx).
    Property-tested in tests/test_registry_record.py."""
    return _fast_encoder.encode(value).encode("utf-8")


def _encode(record: Mapping[str, Any]) -> bytes:
    try:
        data = _fast_jcs(record)
    except UnicodeEncodeError:
        raise RecordError("record contains a string that is not valid Unicode (lone surrogate)") from None
    if len(data) > MAX_LEAF_BYTES:
        raise RecordError(f"record is {len(data)} bytes once serialised, the limit is {MAX_LEAF_BYTES}")
    return data


def _as_dict(record: Mapping[str, Any]) -> dict[str, Any]:
    if type(record) is dict:
        return record
    if isinstance(record, Mapping):
        return dict(record)
    raise RecordError(f"record must be a mapping, got {type(record).__name__}")


def validate(record: Mapping[str, Any]) -> None:
    """Raise RecordError unless ``record`` is a valid schema-v1 record that serialises within the size limit."""
    canonical(record)


def canonical(record: Mapping[str, Any]) -> bytes:
    """Validate and return the JCS leaf bytes of a record."""
    record = _as_dict(record)
    _check_value(record, "record", 0)
    _check_schema(record)
    return _encode(record)


def parse_leaf(leaf: bytes) -> dict[str, Any]:
    """Decode leaf bytes into a record, requiring valid UTF-8 JSON, the schema, and canonical JCS form.

    Canonical form is checked with the ``rfc8785`` reference (never the fast path): this is what verifiers run.
    """
    if not isinstance(leaf, (bytes, bytearray)):
        raise RecordError("leaf must be bytes")
    leaf = bytes(leaf)
    if len(leaf) > MAX_LEAF_BYTES:
        raise RecordError(f"leaf is {len(leaf)} bytes, the limit is {MAX_LEAF_BYTES}")
    try:
        text = leaf.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordError("leaf is not valid UTF-8") from None
    try:
        obj = json.loads(text, parse_constant=_refuse_constant, object_pairs_hook=_no_duplicates)
    except RecordError:
        raise
    except RecursionError:
        raise RecordError("leaf JSON is nested too deeply") from None
    except ValueError as exc:
        raise RecordError(f"leaf is not valid JSON ({str(exc)[:120]})") from None
    if type(obj) is not dict:
        raise RecordError("leaf is not a JSON object")
    _check_value(obj, "record", 0)
    _check_schema(obj)
    try:
        reference = rfc8785.dumps(obj)
    except Exception as exc:  # rfc8785 raises its own error classes
        raise RecordError(f"leaf cannot be canonicalised ({exc})") from None
    if reference != leaf:
        raise RecordError("leaf is not in canonical RFC 8785 form")
    return obj


def _refuse_constant(name: str) -> None:
    raise RecordError(f"leaf contains {name}, which is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise RecordError(f"leaf has a duplicate key {k[:60]!r}")
        out[k] = v
    return out


# ---------------------------------------------------------------------------------------------------------------
# Building records


@lru_cache(maxsize=1)
def _extractor() -> Any:
    import tldextract  # imported lazily: the verifier never needs it

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)


@lru_cache(maxsize=8192)  # called with the same scheme://host of a crawl's origins for every record
def _host_of(host_or_url: str) -> str:
    """Lower-case IDNA A-label host of a URL or host[:port]; RecordError if there is none."""
    if not isinstance(host_or_url, str) or not host_or_url.strip():
        raise RecordError("a host or URL is required")
    text = host_or_url.strip()
    try:
        if "://" in text:
            host = urlsplit(text).hostname or ""
        elif text.startswith("["):
            host = text[1 : text.index("]")]
        elif text.count(":") == 1:
            host = text.split(":", 1)[0]
        else:
            host = text
    except ValueError:
        raise RecordError(f"cannot find a host in {text[:80]!r}") from None
    host = host.strip().rstrip(".").lower()
    if not host:
        raise RecordError(f"cannot find a host in {text[:80]!r}")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise RecordError(f"host {host[:80]!r} is not a valid internationalised domain name") from None
    if any(ch.isspace() or ch in "/\\@" for ch in host):
        raise RecordError(f"host {host[:80]!r} contains invalid characters")
    return host


def registrable_domain(host_or_url: str) -> str:
    """The site key rights holders query by: eTLD+1 from tldextract's bundled public suffix list, offline.

    Private suffixes count (``user.github.io`` is its own site, as the toolkit's blocklist does). IP addresses,
    ``localhost`` and hosts without a registrable part (single labels, bare suffixes) return the host itself.
    """
    if not isinstance(host_or_url, str):
        raise RecordError("a host or URL is required")
    return _registrable(host_or_url)


@lru_cache(maxsize=8192)  # a crawl records many URLs of the same few hosts; the answer depends on the text alone
def _registrable(host_or_url: str) -> str:
    host = _host_of(host_or_url)
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    result = _extractor()(host)
    if result.domain and result.suffix:
        return f"{result.domain}.{result.suffix}".lower()
    return host


def _normalise_url(url: str) -> tuple[str, str]:
    """(normalised absolute URL, host): lower-case scheme and host, IDNA host, no userinfo/fragment/default port.

    Path and query are kept byte-for-byte: they are what the rule matched against.
    """
    if not isinstance(url, str):
        raise RecordError("target url must be a string")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise RecordError(f"invalid URL {url[:80]!r}") from None
    scheme = parts.scheme.lower()
    if not scheme or not parts.hostname:
        raise RecordError(f"URL {url[:80]!r} is not absolute")
    host = _host_of(f"{scheme}://{parts.netloc.rpartition('@')[2]}")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443)):
        netloc += f":{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, "")), host


def format_time(when: datetime) -> str:
    """RFC 3339 UTC with microseconds, e.g. 2026-11-22T23:59:59.123456Z. Naive datetimes are refused."""
    if not isinstance(when, datetime):
        raise RecordError("time must be a datetime")
    if when.tzinfo is None or when.utcoffset() is None:
        raise RecordError("time must be timezone-aware (e.g. datetime.now(timezone.utc))")
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _uuid7() -> str:
    """A time-ordered UUIDv7 (RFC 9562): 48-bit Unix ms, then random bits; stdlib uuid7 where available."""
    maker = getattr(uuid, "uuid7", None)
    if maker is not None:
        return str(maker())
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76 | ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62 | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def _purposes(purposes: Iterable[str] | str) -> list[str]:
    if isinstance(purposes, str):
        purposes = [purposes]
    wanted: set[str] = set()
    for p in purposes:
        name = getattr(p, "value", p)  # toolkit Purpose enums
        if name in PURPOSE_MAP:
            wanted.update(PURPOSE_MAP[name])
        elif name in PURPOSES:
            wanted.add(name)
        else:
            raise RecordError(f"unknown purpose {name!r} (use {', '.join([*PURPOSE_MAP, *PURPOSES])})")
    if not wanted:
        raise RecordError("at least one purpose is required")
    return [p for p in PURPOSES if p in wanted]


def _plain(value: Any) -> Any:
    """Copy a rule/evidence value into plain JSON types (str-enums to str, tuples to lists); floats stay floats
    so that validation refuses them with a clear message."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, Mapping):
        return {(str(k) if isinstance(k, str) else k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def new_record(
    *,
    url: str,
    mechanism: str,
    purposes: Iterable[str] | str,
    rule: Mapping[str, Any],
    decision: str,
    agent_token: str,
    operator: str,
    node: str = "",
    software: str = "optout/0.1",
    evidence: Mapping[str, Any] | None = None,
    observed_at: datetime | None = None,
    record_id: str | uuid.UUID | None = None,
    salt: bytes | str | None = None,
) -> dict[str, Any]:
    """Build and validate a schema-v1 ``optout.honoured`` record (RecordError if anything is off).

    Fills what a caller should not have to think about: a time-ordered id (the idempotency key for retries), a
    16-byte random salt (so sibling hashes in someone else's proof cannot confirm guesses about this record),
    the observation time, and the target's normalised URL, host and registrable domain (the query key).
    """
    norm_url, host = _normalise_url(url)
    if isinstance(salt, bytes):
        if len(salt) != 16:
            raise RecordError("salt must be 16 bytes")
        salt_text = base64.urlsafe_b64encode(salt).rstrip(b"=").decode("ascii")
    elif salt is None:
        salt_text = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")
    else:
        salt_text = salt
    record: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "type": RECORD_TYPE,
        "id": str(record_id).lower() if isinstance(record_id, uuid.UUID) else (record_id or _uuid7()),
        "salt": salt_text,
        "observed_at": format_time(observed_at or datetime.now(timezone.utc)),
        "crawler": {"operator": operator, "agent_token": agent_token, "node": node, "software": software},
        "target": {"url": norm_url, "site": registrable_domain(host), "host": host},
        "mechanism": getattr(mechanism, "value", mechanism),
        "purposes": _purposes(purposes),
        "rule": _plain(rule),
        "decision": getattr(decision, "value", decision),
    }
    if evidence is not None:
        record["evidence"] = _plain(evidence)
    validate(record)
    return record


def evidence_ref(
    url: str, status: int, body: bytes, fetched_at: datetime, headers: bytes | None = None
) -> dict[str, Any]:
    """The record's pointer to evidence stored outside the leaf, content-addressed by SHA-256 (stored once).

    ``headers`` are the raw response header bytes if the operator keeps them; only their hash enters the record.
    """
    if not isinstance(body, (bytes, bytearray)):
        raise RecordError("evidence body must be bytes")
    if type(status) is not int:
        raise RecordError("evidence status must be an int")
    ref: dict[str, Any] = {
        "url": url,
        "fetched_at": format_time(fetched_at),
        "status": status,
        "sha256": hashlib.sha256(body).hexdigest(),
        "length": len(body),
    }
    if headers is not None:
        ref["headers_sha256"] = hashlib.sha256(headers).hexdigest()
    return ref
