"""The canonical writer (optout_registry/canonical.py) is byte-identical to the ``rfc8785`` reference on every value
type a record can hold, and each place where the two differ lies outside what the schema admits (and the schema
refuses it). Hypothesis generates the values; nothing here is a hard-coded expected output."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timezone
from typing import Any, get_args

import msgspec
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from optout_registry import schema
from optout_registry.canonical import jcs
from optout_registry.record import (
    DECISIONS,
    MAX_INT,
    MAX_KEY_CHARS,
    PURPOSES,
    RecordError,
    canonical,
    parse_leaf,
    validate,
)

# --- strings ----------------------------------------------------------------------------------------------------

every_char = st.characters(exclude_categories=["Cs"])  # all of Unicode that has UTF-8: controls, U+2028, astral, …
escapes = st.sampled_from(['"', "\\", "/", "\x00", "\x08", "\t", "\n", "\x0b", "\x0c", "\r", "\x1f", "\x7f", "\u2028"])


@settings(max_examples=600, deadline=None)
@given(st.text(st.one_of(every_char, escapes), max_size=60))
def test_strings_with_any_unicode_and_every_escape(text):
    assert jcs(text) == rfc8785.dumps(text)
    assert jcs({"k": text, "l": [text]}) == rfc8785.dumps({"k": text, "l": [text]})


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=5), st.characters(categories=["Cs"]), st.text(max_size=5))
def test_lone_surrogates_are_refused_by_both(before, surrogate, after):
    text = before + surrogate + after
    with pytest.raises(UnicodeEncodeError):
        jcs(text)
    with pytest.raises(rfc8785.CanonicalizationError):
        rfc8785.dumps(text)
    record = _valid_record()
    record["rule"] = {"text": text}
    with pytest.raises(RecordError, match="not valid Unicode"):
        validate(record)


# --- integers ---------------------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.integers(-MAX_INT, MAX_INT), st.sampled_from([-MAX_INT, MAX_INT, 0, -1, 2**31, -(2**32), 10**15])))
def test_integers_up_to_the_bounds(n):
    assert jcs(n) == rfc8785.dumps(n) == str(n).encode()


@pytest.mark.parametrize("n", [MAX_INT + 1, -MAX_INT - 1, 2**64])
def test_integers_beyond_the_bounds_are_refused_by_the_schema(n):
    record = _valid_record()
    record["rule"] = {"n": n}
    with pytest.raises(RecordError, match=r"record\.rule\.n: integer .* is outside"):
        validate(record)


# --- objects, arrays, key order ---------------------------------------------------------------------------------

ascii_keys = st.text(st.characters(max_codepoint=127), max_size=MAX_KEY_CHARS)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-MAX_INT, MAX_INT), st.text(st.one_of(every_char, escapes)))


def nested(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=6)),
        max_leaves=40,
    )


@settings(max_examples=600, deadline=None)
@given(nested(ascii_keys))
def test_nested_values_with_ascii_keys(value):
    assert jcs(value) == rfc8785.dumps(value)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(st.characters(exclude_categories=["Cs"], max_codepoint=0xD7FF), max_size=4), scalars))
def test_key_order_is_utf16_order_below_the_surrogate_range(value):
    """Code-point order (msgspec) and UTF-16 code-unit order (JCS) agree for every key without a character at or
    above U+E000; the schema is stricter still (ASCII)."""
    assert jcs(value) == rfc8785.dumps(value)


@settings(max_examples=200, deadline=None)
@given(
    st.characters(min_codepoint=0xE000, max_codepoint=0xFFFF, exclude_categories=["Cs"]), st.integers(0x10000, 0x10FFFF)
)
def test_key_order_differs_above_it_which_is_why_keys_must_be_ascii(bmp, astral):
    value = {bmp: 1, chr(astral): 2}
    assert jcs(value) != rfc8785.dumps(value)  # code points: U+E000.. first; UTF-16: the surrogate pair (D8xx) first
    record = _valid_record()
    record["rule"] = value
    with pytest.raises(RecordError, match=r"record\.rule: object key .* must be ASCII"):
        validate(record)


# --- floats -----------------------------------------------------------------------------------------------------


def test_floats_differ_which_is_why_the_schema_has_none():
    assert jcs(1e21) != rfc8785.dumps(1e21)  # b'1e21' against b'1e+21'
    record = _valid_record()
    record["rule"] = {"x": 1.5}
    with pytest.raises(RecordError, match=r"record\.rule\.x: floats are not allowed"):
        validate(record)


# --- whole records: every field type ----------------------------------------------------------------------------

ULID_CHARS = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
times = st.datetimes(
    min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=st.just(timezone.utc)
).flatmap(
    lambda d: st.sampled_from(
        [
            d.strftime("%Y-%m-%dT%H:%M:%SZ"),
            d.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            d.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        ]
    )
)
ids = st.one_of(
    st.uuids().map(str),
    st.tuples(st.sampled_from("01234567"), st.text(st.sampled_from(ULID_CHARS), min_size=25, max_size=25)).map("".join),
)
salts = st.binary(min_size=16, max_size=16).map(lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode())
urls = st.tuples(
    st.sampled_from(["http", "https", "HTTPS", "git+ssh"]),
    st.text(st.characters(exclude_categories=["Cs", "Zs", "Zl", "Zp", "Cc"]), min_size=1, max_size=40),
).map(lambda p: f"{p[0]}://{p[1]}")
texts = st.text(st.one_of(every_char, escapes), max_size=30)
hexes = st.binary(min_size=32, max_size=32).map(bytes.hex)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    crawler = {"operator": draw(texts.filter(bool)), "agent_token": draw(texts.filter(bool)), "node": draw(texts)}
    if draw(st.booleans()):
        crawler["software"] = draw(texts)
    target = {"url": draw(urls), "site": draw(texts.filter(bool))}
    if draw(st.booleans()):
        target["host"] = draw(texts.filter(bool))
    record: dict[str, Any] = {
        "v": 1,
        "type": "optout.honoured",
        "id": draw(ids),
        "salt": draw(salts),
        "observed_at": draw(times),
        "crawler": crawler,
        "target": target,
        "mechanism": draw(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)),
        "purposes": draw(st.lists(st.sampled_from(PURPOSES), min_size=1, unique=True)),
        "rule": draw(st.dictionaries(ascii_keys, nested(ascii_keys), max_size=5)),
        "decision": draw(st.sampled_from(DECISIONS)),
    }
    if draw(st.booleans()):
        evidence = {
            "url": draw(urls),
            "fetched_at": draw(times),
            "status": draw(st.integers(0, 999)),
            "sha256": draw(hexes),
            "length": draw(st.integers(0, MAX_INT)),
        }
        if draw(st.booleans()):
            evidence["headers_sha256"] = draw(hexes)
        record["evidence"] = evidence
    return record


@settings(max_examples=500, deadline=None)
@given(records())
def test_every_valid_record_is_written_as_rfc8785_writes_it(record):
    leaf = canonical(record)
    assert leaf == rfc8785.dumps(record)
    assert parse_leaf(leaf) == record


def test_schema_vocabularies_are_the_module_constants():
    hints = schema._hints(schema.Record)
    assert get_args(get_args(get_args(hints["purposes"])[0])[0]) == PURPOSES
    assert get_args(hints["decision"]) == DECISIONS


def test_schema_publishes_as_json_schema():
    """The declaration is data: msgspec renders it as a JSON Schema other tools can read."""
    doc = msgspec.json.schema(schema.Record)
    record = doc["$defs"]["Record"]
    assert set(record["required"]) == {
        "v",
        "type",
        "id",
        "salt",
        "observed_at",
        "crawler",
        "target",
        "mechanism",
        "purposes",
        "rule",
        "decision",
    }
    assert record["properties"]["decision"]["enum"] == sorted(DECISIONS)


def _valid_record() -> dict[str, Any]:
    return {
        "v": 1,
        "type": "optout.honoured",
        "id": str(uuid.UUID(int=7, version=4)),
        "salt": "AAECAwQFBgcICQoLDA0ODw",
        "observed_at": "2026-11-22T23:59:59Z",
        "crawler": {"operator": "op", "agent_token": "Bot", "node": ""},
        "target": {"url": "https://example.net/", "site": "example.net"},
        "mechanism": "robots.txt",
        "purposes": ["TDM"],
        "rule": {},
        "decision": "not_fetched",
    }


def test_remembered_evidence_shapes_never_vouch_for_another_field():
    """Evidence texts that passed are remembered per group of fields: the joined text of a valid evidence object is
    no valid headers digest."""
    record = _valid_record()
    record["evidence"] = {
        "url": "https://example.net/robots.txt",
        "fetched_at": "2026-11-22T23:40:02Z",
        "status": 200,
        "sha256": "0" * 64,
        "length": 1,
    }
    validate(record)
    record["evidence"]["headers_sha256"] = "\n".join(record["evidence"][k] for k in ("url", "fetched_at", "sha256"))
    with pytest.raises(RecordError, match=r"record\.evidence\.headers_sha256: must be 64 lower-case hex"):
        validate(record)
    record["evidence"]["headers_sha256"] = "1" * 64
    validate(record)
    record["evidence"]["fetched_at"] = "2026-02-30T00:00:00Z"  # a remembered url and digest, a new bad date
    with pytest.raises(RecordError, match=r"record\.evidence\.fetched_at: invalid date"):
        validate(record)
