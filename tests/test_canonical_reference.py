"""The registry's previous record path, kept as the reference the new one is measured and checked against.

Before issue 18, ``record.canonical`` validated with a hand-written recursive walk (``_check_value`` +
``_check_schema`` below, verbatim) and wrote the leaf with stdlib ``json`` (sorted keys); the issue's peer is the
same validation with the ``rfc8785`` reference writer. bench/bench_registry.py times both beside the new path
(msgspec schema + msgspec writer), and the tests here check that the new path accepts exactly what the old one
accepted, refuses what it refused naming the same field, and writes the same bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optout_registry import record as rec
from optout_registry.record import (
    DECISIONS,
    MAX_DEPTH,
    MAX_INT,
    MAX_ITEMS,
    MAX_KEY_CHARS,
    MAX_LEAF_BYTES,
    MAX_STRING_CHARS,
    PURPOSES,
    RECORD_TYPE,
    SCHEMA_VERSION,
    RecordError,
)
from tests.support.registry import spec_sample

# ---------------------------------------------------------------------------------------------------------------
# The previous implementation (optout_registry/record.py before issue 18), unchanged but for this module's imports

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}\Z")
_SALT = re.compile(r"[A-Za-z0-9_-]{21}[AQgw]\Z")  # 16 bytes: the last char carries 2 bits, low 4 bits zero
_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?Z\Z")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_TOKEN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\Z")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s]+\Z")

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


_previous_encoder = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _old_validate(record: Mapping[str, Any]) -> dict[str, Any]:
    if type(record) is not dict:
        if not isinstance(record, Mapping):
            raise RecordError(f"record must be a mapping, got {type(record).__name__}")
        record = dict(record)
    _check_value(record, "record", 0)
    _check_schema(record)
    return record


def _sized(data: bytes) -> bytes:
    if len(data) > MAX_LEAF_BYTES:
        raise RecordError(f"record is {len(data)} bytes once serialised, the limit is {MAX_LEAF_BYTES}")
    return data


def previous_canonical(record: Mapping[str, Any]) -> bytes:
    """The previous ``record.canonical``: hand-written validation, stdlib json with sorted keys."""
    record = _old_validate(record)
    try:
        return _sized(_previous_encoder.encode(record).encode("utf-8"))
    except UnicodeEncodeError:
        raise RecordError("record contains a string that is not valid Unicode (lone surrogate)") from None


def reference_canonical(record: Mapping[str, Any]) -> bytes:
    """The issue's peer: the previous validation with the ``rfc8785`` reference writer."""
    record = _old_validate(record)
    try:
        return _sized(rfc8785.dumps(record))
    except rfc8785.CanonicalizationError:
        raise RecordError("record contains a string that is not valid Unicode (lone surrogate)") from None


# ---------------------------------------------------------------------------------------------------------------
# The new path against the previous one

SAMPLE = spec_sample()


def outcome(fn: Any, record: Any) -> bytes | str:
    """The leaf, or the path the refusal names (the text before the first ': ')."""
    try:
        return fn(record)
    except RecordError as exc:
        message = str(exc)
        assert fn is not rec.canonical or "\n" not in message  # one line (the previous path did print raw keys)
        return "refused " + message.split(": ", 1)[0]


def same_outcome(record: Any, same_field: bool = True) -> None:
    new, old, ref = (
        outcome(rec.canonical, record),
        outcome(previous_canonical, record),
        outcome(reference_canonical, record),
    )
    assert old == ref  # the two previous paths agree (a sanity check of this module)
    if isinstance(old, bytes) or isinstance(new, bytes):
        assert new == old
    elif same_field:  # both refused one bad field: the new message names it too (or, for a list item, the list)
        # Of a container with several bad items the two may name different ones (``rule.0``, ``rule.1``).
        new_field, old_field = (re.sub(r"\.\d+\b|\[\d+\]", "", m).split("[")[0] for m in (new, old))
        assert new_field.startswith(old_field) or old_field.startswith(new_field), (new, old)


# Values of every JSON type and beyond the schema: floats, big ints, non-ASCII and long keys, deep nesting, sets,
# tuples, datetimes, bytes, non-string keys.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53) - 2, 2**53 + 2),
    st.sampled_from([-MAX_INT, MAX_INT, -(2**53), 2**53, 2**64, 0]),
    st.text(max_size=12),
    st.floats(allow_nan=True, allow_infinity=True),
)
keys = st.one_of(st.text(max_size=6), st.text(st.characters(max_codepoint=127), min_size=60, max_size=70))
odd = st.one_of(
    st.frozensets(st.integers(0, 3), min_size=2, max_size=3),
    st.just(datetime(2026, 1, 1)),
    st.just(b"bytes"),
    st.dictionaries(st.integers(0, 3), st.none(), min_size=1, max_size=2),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.tuples(children, children), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=20,
)


def deep(n: int) -> Any:
    value: Any = 1
    for i in range(n):
        value = {"a": value} if i % 2 else [value]
    return value


def texts_like(valid: str) -> st.SearchStrategy[str]:
    """The valid text, a one-character edit of it, or anything."""
    return st.one_of(
        st.just(valid),
        st.tuples(st.integers(0, len(valid) - 1), st.characters()).map(
            lambda e: valid[: e[0]] + e[1] + valid[e[0] + 1 :]
        ),
        st.tuples(st.integers(0, len(valid)), st.text(max_size=2)).map(lambda e: valid[: e[0]] + e[1] + valid[e[0] :]),
        st.text(max_size=30),
    )


FIELDS: dict[tuple[str, ...], st.SearchStrategy[Any]] = {
    ("v",): st.one_of(st.just(1), st.just(True), st.just(1.0), st.just(2), st.just("1")),
    ("type",): st.one_of(st.just(RECORD_TYPE), st.text(max_size=5)),
    ("id",): st.one_of(texts_like(SAMPLE["id"]), texts_like("01ARZ3NDEKTSV4RRFFQ69G5FAV")),
    ("salt",): texts_like(SAMPLE["salt"]),
    ("observed_at",): st.one_of(
        texts_like(SAMPLE["observed_at"]),
        st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ").zfill(20)),
        st.sampled_from(
            ["2026-02-29T00:00:00Z", "2024-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-11-22T24:00:00Z"]
        ),
    ),
    ("crawler", "operator"): st.one_of(st.just(""), st.text(max_size=8), st.integers()),
    ("crawler", "node"): st.one_of(st.just(""), st.text(max_size=8), st.none()),
    ("crawler", "software"): st.one_of(st.just(""), st.text(max_size=8), st.booleans()),
    ("target", "url"): texts_like(SAMPLE["target"]["url"]),
    ("target", "site"): st.one_of(st.just(""), st.text(max_size=8)),
    ("target", "host"): st.one_of(st.just(""), st.text(max_size=8), st.integers()),
    ("mechanism",): st.one_of(texts_like("robots.txt"), st.text(st.characters(max_codepoint=127), max_size=70)),
    ("purposes",): st.one_of(
        st.lists(st.sampled_from([*PURPOSES, "train-ai", "tdm"]), max_size=4),
        st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=3).map(tuple),
        st.frozensets(st.sampled_from(PURPOSES), min_size=1, max_size=1),
        st.just("TDM"),
    ),
    ("rule",): st.one_of(
        st.dictionaries(keys, json_values, max_size=5),
        st.dictionaries(st.text(max_size=4), st.one_of(json_values, odd), max_size=3),
        st.integers(0, 20).map(lambda n: {"deep": deep(n)}),
        st.lists(st.integers(), max_size=2),
        st.just({"big": list(range(MAX_ITEMS + 1))}),
        st.just({"long": "x" * (MAX_STRING_CHARS + 1)}),
        st.just({"k" * (MAX_KEY_CHARS + 1): 1}),
        st.just({f"k{i}": "y" * 8000 for i in range(9)}),  # over the leaf size limit
        st.just({"text": "lone \ud800 surrogate"}),
    ),
    ("decision",): st.one_of(st.sampled_from(DECISIONS), st.text(max_size=6), st.none()),
    ("evidence",): st.one_of(st.just(None), st.just([])),
    ("evidence", "url"): texts_like(SAMPLE["evidence"]["url"]),
    ("evidence", "fetched_at"): texts_like(SAMPLE["evidence"]["fetched_at"]),
    ("evidence", "status"): st.one_of(st.integers(-2, 1001), st.just(200.0), st.just("200")),
    ("evidence", "sha256"): texts_like(SAMPLE["evidence"]["sha256"]),
    ("evidence", "length"): st.one_of(st.integers(-1, 2**53 + 1), st.just(MAX_INT), st.just(True)),
    ("evidence", "headers_sha256"): texts_like("0" * 64),
}
DELETABLE = [path for path in FIELDS if path[-1] not in ("software", "host", "headers_sha256")] + [("evidence",)]


def with_changes(changes: list[tuple[tuple[str, ...], Any]], delete: tuple[str, ...] | None, extra: str | None) -> dict:
    record = json.loads(json.dumps(SAMPLE))
    for path, value in changes:
        target = record
        for key in path[:-1]:
            target = target.get(key) if isinstance(target, dict) else None
        if isinstance(target, dict) and (path[-1] != "evidence" or value is not None):
            target[path[-1]] = value
        elif path == ("evidence",):
            record.pop("evidence", None)
    if delete is not None:
        target = record
        for key in delete[:-1]:
            target = target.get(key, {})
        if isinstance(target, dict):
            target.pop(delete[-1], None)
    if extra is not None:
        record[extra] = 1
    return record


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    changes=st.lists(st.sampled_from(sorted(FIELDS)).flatmap(lambda p: FIELDS[p].map(lambda v: (p, v))), max_size=2),
    delete=st.one_of(st.none(), st.sampled_from(DELETABLE)),
    extra=st.one_of(st.none(), st.sampled_from(["extra", "v2", "evidence_url"])),
)
def test_new_path_accepts_and_writes_exactly_what_the_previous_one_did(changes, delete, extra):
    same_outcome(with_changes(changes, delete, extra), same_field=False)  # with two faults, either may be named


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(FIELDS)).flatmap(lambda p: FIELDS[p].map(lambda v: (p, v))))
def test_one_bad_field_is_named_alike(change):
    same_outcome(with_changes([change], None, None))


@pytest.mark.parametrize("n", [MAX_DEPTH - 3, MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 5])
def test_nesting_limit_is_where_it_was(n):
    same_outcome(with_changes([(("rule",), {"deep": deep(n)})], None, None))


def test_str_and_int_subclasses_are_taken_as_their_value():
    """The one deliberate difference: a StrEnum/IntEnum member (or a dict subclass) is accepted and written as the
    plain value it equals (the previous path refused it as 'not a JSON value'). The leaf is byte-identical to the
    plain record's, so nothing about the log changes; a set, which has no fixed order, is still refused."""
    from enum import Enum, IntEnum

    class Decision(str, Enum):
        NOT_FETCHED = "not_fetched"

    class Line(IntEnum):
        FOUR = 4

    record = with_changes(
        [(("decision",), Decision.NOT_FETCHED), (("rule",), {**SAMPLE["rule"], "line": Line.FOUR})], None, None
    )
    assert rec.canonical(record) == rfc8785.dumps(SAMPLE)
    with pytest.raises(RecordError, match="is not a JSON value"):
        previous_canonical(record)
    with pytest.raises(RecordError, match=r"record\.rule\.tags: frozenset is not a JSON value"):
        rec.canonical(with_changes([(("rule",), {"tags": frozenset({"a", "b"})})], None, None))
