"""Records: the §8 sample's exact JCS bytes and leaf hash, refusals with clear messages, the JCS fast path proven
equal to the rfc8785 reference, registrable domains offline, and record construction."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from optout_registry import record as rec
from optout_registry.canonical import jcs
from optout_registry.merkle import leaf_hash
from optout_registry.record import (
    DECISIONS,
    PURPOSE_MAP,
    RecordError,
    canonical,
    evidence_ref,
    new_record,
    parse_leaf,
    registrable_domain,
    validate,
)
from tests.support.registry import spec_sample

SAMPLE = (
    b'{"crawler":{"agent_token":"ExampleBot","node":"node-7","operator":"example-crawler.com"},'
    b'"decision":"not_fetched","evidence":{"fetched_at":"2026-11-22T23:40:02Z","length":41,'
    b'"sha256":"e2f2df61401cb6e1b79a4b048190dcddef22ccb60941cc1ed0a78c7cc7d103dc","status":200,'
    b'"url":"https://news.example.net/robots.txt"},"id":"0192f3a4-5b6c-7d8e-9f00-112233445566",'
    b'"mechanism":"robots.txt","observed_at":"2026-11-22T23:59:59.123456Z","purposes":["AI_TRAIN","TDM"],'
    b'"rule":{"directive":"Disallow","group":"ExampleBot","line":4,"pattern":"/2026/"},'
    b'"salt":"q83vEjRWeJCrze8SNFZ4kA","target":{"site":"example.net",'
    b'"url":"https://news.example.net/2026/11/article.html"},"type":"optout.honoured","v":1}'
)
SAMPLE_LEAF_HASH = "bb4f7720c5e456194bc40a42c2296ffce699ad70fa78fa4b4e9769958b937cd2"
ROBOTS = b"User-agent: ExampleBot\nDisallow: /2026/\n"


def sample() -> dict:
    return json.loads(SAMPLE)


def test_sample_record_exact_bytes_and_leaf_hash():
    record = spec_sample()
    assert record["evidence"]["sha256"] == hashlib.sha256(ROBOTS).hexdigest()  # the spec's robots.txt body
    assert canonical(record) == SAMPLE
    assert rfc8785.dumps(record) == SAMPLE
    assert leaf_hash(SAMPLE).hex() == SAMPLE_LEAF_HASH
    assert parse_leaf(SAMPLE) == record
    assert record["evidence"]["sha256"] == "e2f2df61401cb6e1b79a4b048190dcddef22ccb60941cc1ed0a78c7cc7d103dc"


def _refused(record, pattern: str) -> str:
    with pytest.raises(RecordError) as info:
        validate(record)
    message = str(info.value)
    assert re.search(pattern, message), message
    assert "\n" not in message
    return message


def test_refusals_name_the_field_and_rule():
    r = sample()
    del r["salt"]
    _refused(r, r"missing required field\(s\) salt")
    r = sample()
    del r["crawler"]["agent_token"]
    _refused(r, r"record\.crawler: missing required field\(s\) agent_token")
    r = sample()
    r["rule"]["confidence"] = 0.5
    _refused(r, r"record\.rule\.confidence: floats are not allowed")
    r = sample()
    r["evidence"]["length"] = 41.0
    _refused(r, r"record\.evidence\.length: floats are not allowed")
    r = sample()
    r["rule"]["line"] = 2**53
    _refused(r, r"record\.rule\.line: integer 9007199254740992 is outside")
    r = sample()
    r["rule"]["line"] = -(2**53)
    _refused(r, r"outside")
    r = sample()
    r["rule"]["lïne"] = 4
    _refused(r, r"record\.rule: object key 'lïne' must be ASCII")
    r = sample()
    r["decision"] = "ignored"
    _refused(r, r"record\.decision: 'ignored' is not one of not_fetched")
    r = sample()
    r["purposes"] = ["AI_TRAIN", "train-ai"]
    _refused(r, r"record\.purposes: 'train-ai' is not one of")
    r = sample()
    r["purposes"] = []
    _refused(r, r"record\.purposes: must be a non-empty list")
    r = sample()
    r["purposes"] = ["TDM", "TDM"]
    _refused(r, r"duplicate")
    r = sample()
    r["v"] = 2
    _refused(r, r"record\.v: unsupported schema version 2")
    r = sample()
    r["v"] = True
    _refused(r, r"record\.v: must be an integer")
    r = sample()
    r["type"] = "key.rotation"
    _refused(r, r"record\.type")
    r = sample()
    r["extra"] = 1
    _refused(r, r"unknown field\(s\) extra")
    r = sample()
    r["observed_at"] = "2026-11-22 23:59:59Z"
    _refused(r, r"record\.observed_at: .* is not RFC 3339")
    r = sample()
    r["observed_at"] = "2026-02-30T00:00:00Z"
    _refused(r, r"invalid date")
    r = sample()
    r["id"] = "not-a-uuid"
    _refused(r, r"record\.id")
    r = sample()
    r["salt"] = "q83vEjRWeJCrze8SNFZ4kB"  # non-canonical trailing bits
    _refused(r, r"record\.salt")
    r = sample()
    r["target"]["url"] = "/relative"
    _refused(r, r"record\.target\.url: .* is not an absolute URL")
    r = sample()
    r["evidence"]["sha256"] = "E2F2" + r["evidence"]["sha256"][4:]
    _refused(r, r"record\.evidence\.sha256: must be 64 lower-case hex")
    r = sample()
    r["mechanism"] = "Robots TXT"
    _refused(r, r"record\.mechanism")
    r = sample()
    r["rule"] = ["not", "an", "object"]
    _refused(r, r"record\.rule: must be an object")
    r = sample()
    r["crawler"]["operator"] = ""
    _refused(r, r"record\.crawler\.operator: must not be empty")
    r = sample()
    r["rule"]["when"] = datetime.now(timezone.utc)
    _refused(r, r"record\.rule\.when: datetime is not a JSON value")
    r = sample()
    r["rule"]["text"] = "lone \ud800 surrogate"
    _refused(r, r"not valid Unicode")
    r = sample()
    r["rule"]["nan"] = float("nan")
    _refused(r, r"floats are not allowed")
    with pytest.raises(RecordError, match="mapping"):
        validate(["not", "a", "record"])  # type: ignore[arg-type]


def test_size_and_depth_limits():
    r = sample()
    r["rule"]["text"] = "x" * 9000
    _refused(r, r"longer than 8192")
    r = sample()
    r["rule"] = {f"k{i}": "y" * 8000 for i in range(9)}
    _refused(r, r"bytes once serialised, the limit is 65535")
    r = sample()
    deep: dict = {}
    cur = deep
    for _ in range(20):
        cur["a"] = {}
        cur = cur["a"]
    r["rule"] = deep
    _refused(r, r"nested deeper")
    r = sample()
    r["rule"]["list"] = list(range(300))
    _refused(r, r"more than 256 items")


def test_minimal_and_optional_fields():
    r = sample()
    del r["evidence"]
    validate(r)  # evidence is optional (some signals arrive in response headers only)
    r = sample()
    r["crawler"]["software"] = "optout/0.1"
    r["target"]["host"] = "news.example.net"
    r["evidence"]["headers_sha256"] = "0" * 64
    validate(r)
    r["id"] = "01ARZ3NDEKTSV4RRFFQ69G5FAV"  # ULID accepted
    validate(r)
    validate(json.loads(SAMPLE))  # Mapping subclasses are accepted at the top level too


@pytest.mark.parametrize(
    ("leaf", "pattern"),
    [
        (SAMPLE.replace(b'"v":1}', b'"v": 1}'), "canonical"),
        (SAMPLE + b"\n", "canonical"),
        (b'{"v":1,' + SAMPLE[1:-7] + b"}", "canonical|duplicate"),  # key order
        (SAMPLE[:-1] + b',"v":1}', "duplicate key 'v'"),
        (SAMPLE.replace(b'"line":4', b'"line":4.0'), "floats"),
        (SAMPLE.replace(b'"line":4', b'"line":4e0'), "floats"),
        (SAMPLE.replace(b'"line":4', b'"line":NaN'), "NaN"),
        (SAMPLE.replace(b'"line":4', b'"line":' + b"9" * 5000), "not valid JSON|outside"),
        (SAMPLE.replace(b"ExampleBot", b"Example\xffBot", 1), "UTF-8"),
        (SAMPLE.decode().encode("utf-16"), "UTF-8"),
        (b"[" * 30000 + b"]" * 30000, "nested too deeply"),
        (b'{"a":' * 10000 + b"1" + b"}" * 10000, "nested too deeply"),
        (b"[" * 100000 + b"]" * 100000, "limit"),
        (b"[]", "not a JSON object"),
        (b"", "not valid JSON"),
        (SAMPLE.replace(b'"TDM"', b'"T\\u0044M"'), "canonical"),
        (b"x" * 70000, "limit"),
    ],
)
def test_parse_leaf_refuses_non_canonical_or_invalid(leaf, pattern):
    with pytest.raises(RecordError) as info:
        parse_leaf(leaf)
    assert re.search(pattern, str(info.value)), str(info.value)


def test_parse_leaf_type_check():
    with pytest.raises(RecordError):
        parse_leaf(SAMPLE.decode())  # type: ignore[arg-type]


# --- JCS fast path == rfc8785 -----------------------------------------------------------------------------------

ascii_keys = st.text(st.characters(max_codepoint=127), max_size=12)
any_text = st.text(max_size=40)  # all of Unicode except surrogates: controls, U+2028, astral, combining marks
json_ints = st.integers(-(2**53) + 1, 2**53 - 1)
scalars = st.one_of(st.none(), st.booleans(), json_ints, any_text)
values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(ascii_keys, children, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(values)
def test_fast_jcs_equals_rfc8785_on_restricted_values(value):
    assert jcs(value) == rfc8785.dumps(value)


@settings(max_examples=150, deadline=None)
@given(
    rule=st.dictionaries(ascii_keys, values, max_size=6),
    url_path=st.text(max_size=30),
    agent=st.text(min_size=1, max_size=20),
    decision=st.sampled_from(DECISIONS),
    purposes=st.lists(st.sampled_from(rec.PURPOSES), min_size=1, max_size=5, unique=True),
)
def test_canonical_records_equal_rfc8785_and_round_trip(rule, url_path, agent, decision, purposes):
    r = sample()
    r["rule"] = rule
    r["target"]["url"] = "https://news.example.net/" + url_path.replace(" ", "%20").replace("\n", "%0A") + "x"
    r["crawler"]["agent_token"] = agent
    r["decision"] = decision
    r["purposes"] = purposes
    try:
        leaf = canonical(r)
    except RecordError:
        return  # e.g. a URL with other whitespace: refused, never silently changed
    assert leaf == rfc8785.dumps(r)
    assert parse_leaf(leaf) == r


# --- registrable domains ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_", "want"),
    [
        ("https://news.example.net/2026/11/article.html", "example.net"),
        ("news.example.net", "example.net"),
        ("NEWS.Example.NET.", "example.net"),
        ("https://a.b.example.co.uk:8443/x", "example.co.uk"),
        ("https://user.github.io/page", "user.github.io"),  # private suffixes count
        ("https://bücher.example.de/", "example.de"),
        ("xn--bcher-kva.example.de", "example.de"),
        ("http://127.0.0.1:8080/robots.txt", "127.0.0.1"),
        ("http://[::1]:8080/", "::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("localhost", "localhost"),
        ("http://localhost:8000/x", "localhost"),
        ("com", "com"),
        ("intranet", "intranet"),
    ],
)
def test_registrable_domain_offline(given_, want):
    assert registrable_domain(given_) == want


@pytest.mark.parametrize("bad", ["", "   ", "https:///nohost", "http://"])
def test_registrable_domain_refuses_hostless_input(bad):
    with pytest.raises(RecordError):
        registrable_domain(bad)


# --- building records -------------------------------------------------------------------------------------------

WHEN = datetime(2026, 11, 22, 23, 59, 59, 123456, tzinfo=timezone.utc)


def build(**overrides):
    args = dict(
        url="https://News.Example.NET:443/2026/11/article.html?a=1#frag",
        mechanism="robots.txt",
        purposes=["train-ai"],
        rule={"group": "ExampleBot", "directive": "Disallow", "pattern": "/2026/", "line": 4},
        decision="not_fetched",
        agent_token="ExampleBot",
        operator="example-crawler.com",
        node="node-7",
        evidence=evidence_ref("https://news.example.net/robots.txt", 200, ROBOTS, WHEN - timedelta(minutes=20)),
        observed_at=WHEN,
    )
    args.update(overrides)
    return new_record(**args)


def test_new_record_fills_schema_fields():
    r = build()
    validate(r)
    assert r["v"] == 1 and r["type"] == "optout.honoured"
    assert uuid.UUID(r["id"]).version == 7 and r["id"] == r["id"].lower()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", r["salt"])
    assert r["observed_at"] == "2026-11-22T23:59:59.123456Z"
    assert r["target"] == {
        "url": "https://news.example.net/2026/11/article.html?a=1",
        "site": "example.net",
        "host": "news.example.net",
    }
    assert r["crawler"] == {
        "operator": "example-crawler.com",
        "agent_token": "ExampleBot",
        "node": "node-7",
        "software": "optout/0.1",
    }
    assert r["purposes"] == ["AI_TRAIN", "TDM"]
    assert r["evidence"] == {
        "url": "https://news.example.net/robots.txt",
        "fetched_at": "2026-11-22T23:39:59.123456Z",
        "status": 200,
        "sha256": hashlib.sha256(ROBOTS).hexdigest(),
        "length": len(ROBOTS),
    }
    assert parse_leaf(canonical(r)) == r


def test_new_record_ids_salts_are_fresh_and_time_ordered():
    ids = [build()["id"] for _ in range(50)]
    assert len(set(ids)) == 50
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)  # millisecond prefix never goes backwards
    assert build()["salt"] != build()["salt"]
    fixed = build(record_id=uuid.UUID("0192f3a4-5b6c-7d8e-9f00-112233445566"), salt=bytes(range(16)))
    assert fixed["id"] == "0192f3a4-5b6c-7d8e-9f00-112233445566"
    assert fixed["salt"] == "AAECAwQFBgcICQoLDA0ODw"


def test_random_bytes_are_read_in_chunks_and_never_handed_out_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []

    def urandom(n: int) -> bytes:
        reads.append(n)
        return bytes((len(reads) * 37 + i) % 256 for i in range(n))  # distinct content for each read

    monkeypatch.setattr(rec.os, "urandom", urandom)
    pool = rec._Entropy()
    taken = [pool.take(16) for _ in range(600)]  # 9,600 bytes: three reads of 4 KiB, not 600 reads
    assert reads == [4096, 4096, 4096]
    assert all(len(t) == 16 for t in taken)
    first_chunk = b"".join(taken[:256])  # 256 x 16 bytes = the whole first read, in order, nothing repeated
    assert first_chunk == bytes((37 + i) % 256 for i in range(4096))
    assert len(pool.take(5000)) == 5000 and reads[-1] == 5000  # a request larger than a chunk is read whole


def test_a_forked_child_never_repeats_the_parents_random_bytes() -> None:
    import os

    pool = rec._Entropy()
    pool.take(16)  # the pool now holds bytes the parent will hand out next
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        os.write(write, pool.take(16))
        os._exit(0)
    os.close(write)
    child = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    parent = pool.take(16)
    assert len(child) == len(parent) == 16 and child != parent


def test_purpose_mapping():
    assert PURPOSE_MAP == {"train-ai": ("AI_TRAIN", "TDM"), "ai-input": ("AI_INPUT",), "search": ("SEARCH",)}
    assert build(purposes="ai-input")["purposes"] == ["AI_INPUT"]
    assert build(purposes=["search", "train-ai", "GENAI_TRAIN"])["purposes"] == [
        "AI_TRAIN",
        "GENAI_TRAIN",
        "SEARCH",
        "TDM",
    ]
    with pytest.raises(RecordError, match="unknown purpose 'training'"):
        build(purposes=["training"])
    with pytest.raises(RecordError, match="at least one purpose"):
        build(purposes=[])


def test_new_record_refusals():
    with pytest.raises(RecordError, match="timezone-aware"):
        build(observed_at=datetime(2026, 1, 1))
    with pytest.raises(RecordError, match="not absolute"):
        build(url="/relative/path")
    with pytest.raises(RecordError, match="floats"):
        build(rule={"score": 0.9})
    with pytest.raises(RecordError, match="decision"):
        build(decision="maybe")
    with pytest.raises(RecordError, match="salt must be 16 bytes"):
        build(salt=b"short")
    with pytest.raises(RecordError, match="agent_token: must not be empty"):
        build(agent_token="")
    with pytest.raises(RecordError):
        evidence_ref("https://x.example/", 200, "text", WHEN)  # type: ignore[arg-type]


def test_new_record_normalises_enums_tuples_and_ipv6():
    from enum import Enum

    class Decision(str, Enum):
        NOT_FETCHED = "not_fetched"

    r = build(decision=Decision.NOT_FETCHED, rule={"tuple": (1, 2), "nested": {"k": ("a",)}})
    assert r["decision"] == "not_fetched" and type(r["decision"]) is str
    assert r["rule"] == {"tuple": [1, 2], "nested": {"k": ["a"]}}
    r = build(url="http://[::1]:8080/x", evidence=None)
    assert r["target"] == {"url": "http://[::1]:8080/x", "site": "::1", "host": "::1"}
    assert "evidence" not in r
    r = build(url="https://user:secret@Bücher.example.de/p")
    assert r["target"]["url"] == "https://xn--bcher-kva.example.de/p"  # userinfo dropped, IDNA host


def test_evidence_ref_headers_hash():
    ref = evidence_ref("https://x.example/robots.txt", 404, b"", WHEN, headers=b"HTTP/1.1 404\r\n\r\n")
    assert ref["length"] == 0 and ref["status"] == 404
    assert ref["headers_sha256"] == hashlib.sha256(b"HTTP/1.1 404\r\n\r\n").hexdigest()
    r = build(evidence=ref)
    assert r["evidence"] == ref


def test_validate_does_not_mutate_input():
    r = build()
    before = copy.deepcopy(r)
    canonical(r)
    assert r == before
