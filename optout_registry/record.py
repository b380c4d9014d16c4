"""Registry records: the REGISTRY.md §6.2 schema, its RFC 8785 (JCS) leaf bytes, and helpers to build records.

A leaf is the JCS serialisation of one record. Two properties matter more than convenience:

* **One byte string per record.** Verifiers hash the exact leaf bytes, so the schema is restricted to what JCS
  serialises unambiguously and what every JSON stack round-trips: no floats at all, integers within
  ±(2**53 - 1), ASCII object keys (JCS sorts keys by UTF-16 code units; for ASCII that equals code-point order),
  strings as observed (no Unicode normalisation). The schema is declared in optout_registry/schema.py and checked
  by msgspec (C); the leaf is written by optout_registry/canonical.py (msgspec, sorted keys), which property tests
  prove byte-identical to the ``rfc8785`` reference on this domain. ``parse_leaf`` — what verifiers use — always
  compares with ``rfc8785`` itself.
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
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import rfc8785

from optout_registry import schema
from optout_registry.canonical import jcs
from optout_registry.schema import DECISIONS, MAX_DEPTH, MAX_INT, MAX_ITEMS, MAX_KEY_CHARS, MAX_STRING_CHARS, PURPOSES

__all__ = [
    "DECISIONS",
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_ITEMS",
    "MAX_KEY_CHARS",
    "MAX_LEAF_BYTES",
    "MAX_STRING_CHARS",
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

SCHEMA_VERSION = schema.SCHEMA_VERSION
RECORD_TYPE = schema.RECORD_TYPE
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

MAX_LEAF_BYTES = 65535


class RecordError(ValueError):
    """A record or leaf does not meet the schema; the message names the field and the rule."""


# ---------------------------------------------------------------------------------------------------------------
# Schema (REGISTRY.md §6.2, declared in optout_registry/schema.py) and canonical bytes (optout_registry/canonical.py)


def _as_dict(record: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(record, Mapping):
        return dict(record)
    raise RecordError(f"record must be a mapping, got {type(record).__name__}")


def _unwritable(record: dict[str, Any], exc: Exception) -> RecordError:
    """Why a record has no JSON form: the schema's message naming the field if it has one, else the encoder's."""
    problem = schema.check(record, ascii_keys=False)
    if problem:
        return RecordError(problem)
    if isinstance(exc, UnicodeEncodeError):
        return RecordError("record contains a string that is not valid Unicode (lone surrogate)")
    return RecordError(f"record cannot be serialised ({exc})")


def validate(record: Mapping[str, Any]) -> None:
    """Raise RecordError unless ``record`` is a valid schema-v1 record that serialises within the size limit."""
    canonical(record)


def canonical(record: Mapping[str, Any]) -> bytes:
    """Validate and return the JCS leaf bytes of a record.

    Written first, then checked: an ASCII leaf proves every key ASCII, which spares the key check (and the schema
    is what names the field when the writer refuses a value). Kept flat: this runs once per record appended.
    """
    if type(record) is not dict:
        record = _as_dict(record)
    try:
        data = jcs(record)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _unwritable(record, exc) from None
    problem = _check(record, data.isascii())
    if problem is not None:
        raise RecordError(problem)
    if len(data) > MAX_LEAF_BYTES:
        raise RecordError(f"record is {len(data)} bytes once serialised, the limit is {MAX_LEAF_BYTES}")
    return data


_check = schema.check


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
    problem = schema.check(obj, ascii_keys=leaf.isascii())
    if problem:
        raise RecordError(problem)
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
    from optout_registry.suffixes import extractor  # here: the verifier imports this module, never tldextract

    result = extractor()(host)
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


class _Entropy:
    """The operating system's random bytes, read 4 KiB at a time and each handed out once.

    Why not ``os.urandom`` per record: it releases the GIL around ``getrandom()``, and a crawl's registry writer
    thread, building records beside the reactor thread, asked for random bytes twice a record; each call then
    waited for the reactor thread to hand the GIL back (a forced switch of that thread every time, about a
    thousand in a crawl refusing 1,100 URLs). A forked child starts with an empty pool, so parent and child never
    hand out the same bytes."""

    CHUNK = 4096

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0

    def take(self, n: int) -> bytes:
        with self._lock:
            if self._at + n > len(self._pool):
                self._pool, self._at = os.urandom(max(self.CHUNK, n)), 0
            self._at += n
            return self._pool[self._at - n : self._at]


_entropy = _Entropy()


def _uuid7() -> str:
    """A time-ordered UUIDv7 (RFC 9562): 48-bit Unix ms, then random bits; stdlib uuid7 where available."""
    maker = getattr(uuid, "uuid7", None)
    if maker is not None:
        return str(maker())
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(_entropy.take(10), "big")
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
        salt_text = base64.urlsafe_b64encode(_entropy.take(16)).rstrip(b"=").decode("ascii")
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
