"""``optout filter`` (issue 17): WARC records decided by the crawler's engine, page-level signals from the archive,
site-level policy fetched live from a loopback fixture web (robots.txt first, once per origin)."""

from __future__ import annotations

import gzip
import io
import json
import uuid
import zlib
from pathlib import Path

import pytest

from crawler.cli import main
from crawler.fixtureweb import FixtureWeb, Route, page
from tests.support.warc import AGENT, DATE, TEXT, capture, pages, write_warc

warcio = pytest.importorskip("warcio")
from warcio.archiveiterator import ArchiveIterator  # noqa: E402
from warcio.statusandheaders import StatusAndHeaders  # noqa: E402
from warcio.warcwriter import WARCWriter  # noqa: E402


@pytest.fixture(scope="module")
def web():
    with FixtureWeb() as web:
        web.site("open", {"/robots.txt": Route(body="User-agent: *\nAllow: /\n", content_type=TEXT)})
        web.site(
            "tdm",
            {
                "/robots.txt": Route(body="User-agent: *\nAllow: /\n", content_type=TEXT),
                "/.well-known/tdmrep.json": Route(
                    body='[{"location": "/reserved/*", "tdm-reservation": 1}]', content_type="application/json"
                ),
            },
        )
        web.site(
            "deny",
            {"/robots.txt": Route(body=f"User-agent: {AGENT}\nDisallow: /private\n", content_type=TEXT)},
        )
        yield web


def raw_response(url: str, block: bytes) -> bytes:
    """A response record written by hand (what warcio's writer would not write)."""
    head = (
        f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {url}\r\nWARC-Date: {DATE}\r\n"
        f"WARC-Record-ID: <urn:uuid:{uuid.uuid4()}>\r\nContent-Type: application/http; msgtype=response\r\n"
        f"Content-Length: {len(block)}\r\n\r\n"
    )
    return head.encode() + block + b"\r\n\r\n"


def run(tmp_path: Path, *warcs: Path, extra=()) -> tuple[int, Path]:
    out = tmp_path / "out"
    status = main(["filter", *map(str, warcs), "--out", str(out), "--timeout", "3", *extra])
    return status, out


def decisions(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]


def kept_records(out: Path) -> list[tuple[str, str]]:
    """(type, URL) of the kept WARC, read back by both warcio and FastWARC with digests checked: the file's records
    were written by warcio (the test's writer, copied byte for byte, and the warcinfo record) and chosen by
    ``optout filter`` reading with FastWARC; each library must read all of it, and the same."""
    from fastwarc.warc import ArchiveIterator as FastIterator

    path = out / "kept.warc.gz"
    with path.open("rb") as f:
        by_warcio = [
            (r.rec_type, r.rec_headers.get_header("WARC-Target-URI") or "")
            for r in ArchiveIterator(f, check_digests="raise")
        ]
    by_fastwarc = []
    with path.open("rb") as f:
        for record in FastIterator(f, parse_http=False):
            assert record.verify_block_digest() or not record.headers.get("WARC-Block-Digest")
            by_fastwarc.append((record.headers["WARC-Type"], record.headers.get("WARC-Target-URI", "")))
    assert by_warcio == by_fastwarc
    assert gzip_members(path.read_bytes()) == len(by_warcio)  # a gzip member per record, each complete
    return by_warcio


def gzip_members(data: bytes) -> int:
    """How many complete gzip members ``data`` is made of (fails on a torn one)."""
    count = 0
    while data:
        inflater = zlib.decompressobj(31)
        inflater.decompress(data)
        assert inflater.eof, "a torn gzip member"
        count += 1
        data = inflater.unused_data
    return count


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "plain"])
def test_filter_keeps_exactly_the_allowed_captures(web, tmp_path, gz):
    entries = pages(web)
    warc = tmp_path / ("in.warc.gz" if gz else "in.warc")
    ids = write_warc(warc, entries, gz=gz)
    before = len(web.log)
    status, out = run(tmp_path, warc)
    assert status == 0

    lines = decisions(out)
    assert [d["url"] for d in lines] == list(entries)
    for line in lines:
        allowed = entries[line["url"]][2]
        assert line["allowed"] is allowed, line
        assert line["warc_record_id"] == ids[line["url"]]
        assert line["warc_date"] == DATE
        assert line["purpose"] == "train-ai" and line["agent"] == AGENT
        assert line["site_policy"]["source"] == "live"
        assert line["site_policy"]["robots_url"].endswith("/robots.txt")
        assert bool(line["reservations"]) is not allowed
    by_url = {d["url"]: {r["protocol"] for r in d["reservations"]} for d in lines}
    o, t, d = web.origin("open"), web.origin("tdm"), web.origin("deny")
    assert by_url[f"{o}/xrt"] == {"robots-tag"}
    assert by_url[f"{o}/tdm-header"] == {"tdmrep"}
    assert by_url[f"{o}/tdm-meta"] == {"tdmrep"}
    assert by_url[f"{o}/robots-meta"] == {"robots-tag"}
    assert by_url[f"{t}/reserved/b"] == {"tdmrep"}
    assert by_url[f"{d}/private/x"] == {"robots"}

    allowed = [u for u, (_, _, ok) in entries.items() if ok]
    records = kept_records(out)
    assert records[0][0] == "warcinfo"
    assert records[1:] == [(kind, u) for u in allowed for kind in ("request", "response", "metadata")]

    summary = json.loads((out / "summary.json").read_text())
    assert (summary["responses"], summary["kept"], summary["excluded"], summary["skipped"]) == (9, 3, 6, 0)
    assert summary["origins"] == 3
    report = (out / "report.html").read_text()
    assert "Web archive filter report" in report
    assert f'data-key="kept">{summary["kept"]}<' in report and f'data-key="excluded">{summary["excluded"]}<' in report
    assert report.count('role="row" data-find') == 3  # one row per origin

    # Site-level policy fetched live: robots.txt first and once per origin, then only policy files; no page.
    hits = web.log[before:]
    for name in ("open", "tdm", "deny"):
        paths = [h.path for h in hits if h.site == name]
        assert paths[0] == "/robots.txt" and paths.count("/robots.txt") == 1, (name, paths)
        assert set(paths) <= {"/robots.txt", "/.well-known/tdmrep.json", "/ai.txt"}, (name, paths)
        assert len(paths) == len(set(paths)), (name, paths)


def test_truncated_and_malformed_records_are_reported_and_skipped(web, tmp_path):
    o = web.origin("open")
    warc = tmp_path / "bad.warc"
    with warc.open("wb") as out:
        writer = WARCWriter(out, gzip=False)
        capture(writer, f"{o}/good", page("good").encode())
        out.write(raw_response(f"{o}/broken", b"HTTX/1.1 abc\r\nContent-Type: text/html\r\n\r\n<html></html>"))
        capture(writer, f"{o}/after", page("after").encode())
        capture(writer, f"{o}/cut", page("cut", body="x" * 2000).encode())
    data = warc.read_bytes()
    warc.write_bytes(data[:-1500])  # the last record ends early

    status, out = run(tmp_path, warc)
    assert status == 0
    lines = {d["url"]: d for d in decisions(out)}
    assert lines[f"{o}/good"]["allowed"] and lines[f"{o}/after"]["allowed"]
    assert "truncated" in lines[f"{o}/cut"]["skipped"]
    assert lines[f"{o}/cut"]["allowed"] is False
    assert "status line" in lines[f"{o}/broken"]["skipped"]
    assert [u for kind, u in kept_records(out) if kind == "response"] == [f"{o}/good", f"{o}/after"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped"] == 2 and summary["kept"] == 2


def test_damaged_gzip_member_stops_that_file_only(web, tmp_path, capsys):
    o = web.origin("open")
    entries = {f"{o}/m{i}": (page(f"m{i}").encode(), [], True) for i in range(4)}
    warc = tmp_path / "damaged.warc.gz"
    write_warc(warc, entries, gz=True)
    data = bytearray(warc.read_bytes())
    offsets = []
    with warc.open("rb") as f:
        it = ArchiveIterator(f)
        for record in it:
            it.read_to_end(record)
            offsets.append((record.rec_type, record.rec_headers.get_header("WARC-Target-URI"), it.get_record_offset()))
    # damage the request member of the third capture (records: warcinfo, then request/response/metadata x 4)
    at = offsets[7][2]
    assert offsets[7][:2] == ("request", f"{o}/m2")
    for k in range(at + 12, at + 40):
        data[k] ^= 0x5A
    warc.write_bytes(bytes(data))
    good = tmp_path / "good.warc.gz"
    write_warc(good, {f"{o}/g": (page("g").encode(), [], True)}, gz=True)

    status, out = run(tmp_path, warc, good)
    assert status == 1
    err = capsys.readouterr().err
    problem = [line for line in err.splitlines() if "damaged.warc.gz" in line]
    assert len(problem) == 1 and "cannot read on at byte" in problem[0], err
    assert [d["url"] for d in decisions(out)] == [f"{o}/m0", f"{o}/m1", f"{o}/g"]
    assert [u for kind, u in kept_records(out) if kind == "response"] == [f"{o}/m0", f"{o}/m1", f"{o}/g"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"][0]["error"] and not summary["files"][1]["error"]
    assert gzip_members((out / "kept.warc.gz").read_bytes()) == 1 + 3 * 3


def test_registry_records_every_excluded_record(web, tmp_path):
    from optout_registry import Registry

    entries = pages(web)
    warc = tmp_path / "in.warc.gz"
    write_warc(warc, entries, gz=True)
    registry = f"sqlite:///{tmp_path / 'reg.db'}"
    status, out = run(tmp_path, warc, extra=["--registry", registry, "--operator", "test-lab"])
    assert status == 0
    excluded = {u for u, (_, _, ok) in entries.items() if not ok}
    with Registry.open(registry, create=False) as reg:
        records = [e.record for e in reg.records()]
    assert {r["target"]["url"] for r in records} == excluded
    assert {r["decision"] for r in records} == {"excluded_from_corpus"}
    assert all(r["evidence"]["sha256"] for r in records)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["registry_records"] == len(records) and not summary["registry_errors"]


def test_usage_errors(tmp_path, capsys):
    assert main(["filter", str(tmp_path / "missing.warc"), "--out", str(tmp_path / "o")]) == 2
    assert "no such WARC file" in capsys.readouterr().err


def test_every_kind_of_page_level_signal_is_read_from_the_archive(web, tmp_path):
    from tests.support.media import PLUS_VOCAB, make_jpeg, make_png, xmp_packet

    o = web.origin("open")
    prohibited = xmp_packet(data_mining=PLUS_VOCAB + "DMI-PROHIBITED-AIMLTRAINING")
    cases = {
        f"{o}/usage": (page("u").encode(), [("Content-Usage", "train-ai=n")], "text/html", {"content-usage"}),
        f"{o}/signal": (page("s").encode(), [("Content-Signal", "ai-train=no")], "text/html", {"content-signal"}),
        f"{o}/photo.jpg": (make_jpeg(xmp=prohibited), [], "image/jpeg", {"iptc"}),
        f"{o}/free.png": (make_png(), [], "image/png", set()),
        f"{o}/gone": (page("404").encode(), [], "text/html", {"fetch"}),  # not content: excluded, no opt-out
    }
    warc = tmp_path / "media.warc.gz"
    with warc.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        for url, (body, headers, ctype, _) in cases.items():
            capture(
                writer, url, body, headers, status="404 Not Found" if url.endswith("/gone") else "200 OK", ctype=ctype
            )
    status, out = run(tmp_path, warc)
    assert status == 0
    found = {d["url"]: {r["protocol"] for r in d["reservations"]} for d in decisions(out)}
    assert found == {url: expected for url, (*_, expected) in cases.items()}
    assert [u for kind, u in kept_records(out) if kind == "response"] == [f"{o}/free.png"]


def test_policy_cache_is_shared_between_runs(web, tmp_path):
    entries = pages(web)
    warc = tmp_path / "in.warc.gz"
    write_warc(warc, entries, gz=True)
    cache = f"sqlite:///{tmp_path / 'cache.db'}"
    answers = []
    for run_no in range(2):
        before = len(web.log)
        out = tmp_path / f"out{run_no}"
        assert main(["filter", str(warc), "--out", str(out), "--cache", cache, "--timeout", "3"]) == 0
        answers.append([(d["url"], d["allowed"]) for d in decisions(out)])
        summary = json.loads((out / "summary.json").read_text())
        if run_no:  # the second run asks nothing: every policy file comes from the cache
            assert web.log[before:] == [] and summary["policy_requests"] == 0 and summary["policy_from_cache"] > 0
    assert answers[0] == answers[1]


def test_one_gzip_stream_of_several_records_is_reported(web, tmp_path, capsys):
    o = web.origin("open")
    plain = tmp_path / "whole.warc"
    write_warc(plain, {f"{o}/w": (page("w").encode(), [], True)}, gz=False)
    whole = tmp_path / "whole.warc.gz"
    whole.write_bytes(gzip.compress(plain.read_bytes()))
    status, out = run(tmp_path, whole)
    assert status == 1
    assert "warcio recompress" in capsys.readouterr().err
    assert kept_records(out) == [("warcinfo", "")]


def revisit_capture(writer: WARCWriter, url: str, headers=(), status: str = "200 OK", profile: str = "") -> str:
    """request, revisit and metadata of one URL, as Common Crawl writes a capture whose payload was seen before:
    the revisit holds the HTTP headers only; returns its id."""
    http = StatusAndHeaders(status, [("Content-Type", "text/html"), *headers], "HTTP/1.1")
    revisit = writer.create_revisit_record(
        url, "sha1:AAAABBBBCCCCDDDDEEEEFFFFGGGGHHHH", url, "2024-01-01T00:00:00Z", http_headers=http
    )
    if profile:
        revisit.rec_headers.replace_header("WARC-Profile", profile)
    revisit.rec_headers.replace_header("WARC-Date", DATE)
    rid = revisit.rec_headers.get_header("WARC-Record-ID")
    path = "/" + url.split("/", 3)[3]
    req_headers = StatusAndHeaders(f"GET {path} HTTP/1.1", [("User-Agent", "CCBot")], is_http_request=True)
    request = writer.create_warc_record(
        url, "request", payload=io.BytesIO(b""), http_headers=req_headers, warc_headers_dict={"WARC-Concurrent-To": rid}
    )
    metadata = writer.create_warc_record(
        url,
        "metadata",
        payload=io.BytesIO(b"fetchTimeMs: 3\r\n"),
        warc_content_type="application/warc-fields",
        warc_headers_dict={"WARC-Concurrent-To": rid},
    )
    for record in (request, revisit, metadata):
        writer.write_record(record)
    return rid


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "plain"])
def test_revisit_records_are_judged_on_their_headers_and_site_and_kept_with_their_capture(web, tmp_path, gz):
    o, d = web.origin("open"), web.origin("deny")
    not_modified = "http://netpreserve.org/warc/1.1/revisit/server-not-modified"
    warc = tmp_path / ("rv.warc.gz" if gz else "rv.warc")
    with warc.open("wb") as out:
        writer = WARCWriter(out, gzip=gz)
        capture(writer, f"{o}/page", page("page").encode())
        ids = {
            f"{o}/page": revisit_capture(writer, f"{o}/page"),
            f"{o}/noai": revisit_capture(writer, f"{o}/noai", [("X-Robots-Tag", "noai")]),
            f"{o}/tdm": revisit_capture(writer, f"{o}/tdm", [("tdm-reservation", "1")]),
            f"{d}/private/r": revisit_capture(writer, f"{d}/private/r"),
            f"{o}/304": revisit_capture(writer, f"{o}/304", status="304 Not Modified", profile=not_modified),
        }
    status, out = run(tmp_path, warc, extra=["--agent", AGENT])
    assert status == 0
    lines = decisions(out)
    revisits = {line["url"]: line for line in lines if "revisit" in line}
    assert set(revisits) == set(ids)
    assert {u: line["warc_record_id"] for u, line in revisits.items()} == ids
    allowed = {u for u, line in revisits.items() if line["allowed"]}
    assert allowed == {f"{o}/page"}
    # a server-not-modified revisit (HTTP 304) carries no page: the engine's rule for a non-2xx answer applies
    assert [r["protocol"] for r in revisits[f"{o}/304"]["reservations"]] == ["fetch"]
    assert [r["protocol"] for r in revisits[f"{o}/noai"]["reservations"]] == ["robots-tag"]
    assert [r["protocol"] for r in revisits[f"{o}/tdm"]["reservations"]] == ["tdmrep"]
    assert [r["protocol"] for r in revisits[f"{d}/private/r"]["reservations"]] == ["robots"]
    for line in revisits.values():
        assert line["revisit"]["WARC-Refers-To-Target-URI"] == line["url"]
        assert "tdmrep:html-meta" in line["not_evaluated"] and "robots-tag:header" not in line["not_evaluated"]
    assert revisits[f"{o}/304"]["revisit"]["WARC-Profile"] == not_modified
    # kept with their request and metadata records, in order, and readable by another library than the writer's
    kept = kept_records(out)
    assert kept == [
        ("warcinfo", ""),
        *[(kind, f"{o}/page") for kind in ("request", "response", "metadata")],
        *[(kind, f"{o}/page") for kind in ("request", "revisit", "metadata")],
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["revisits"] == 5 and summary["responses"] == 6 and summary["kept"] == 2


def test_truncated_gzip_member_at_the_end_is_skipped_and_the_output_stays_valid(web, tmp_path):
    o = web.origin("open")
    entries = {f"{o}/t{i}": (page(f"t{i}", body="x" * 3000 + str(i)).encode(), [], True) for i in range(3)}
    warc = tmp_path / "cut.warc.gz"
    write_warc(warc, entries, gz=True)
    offsets = []
    with warc.open("rb") as f:
        it = ArchiveIterator(f)
        for record in it:
            it.read_to_end(record)
            offsets.append((record.rec_type, it.get_record_offset(), it.get_record_length()))
    kind, at, length = offsets[-2]  # the last response record: cut inside its gzip member, and drop what follows
    assert kind == "response"
    warc.write_bytes(warc.read_bytes()[: at + length // 2])
    status, out = run(tmp_path, warc)
    lines = decisions(out)
    assert [line["url"] for line in lines] == list(entries)
    assert "truncated" in lines[-1]["skipped"] and lines[-1]["allowed"] is False
    assert [u for kind, u in kept_records(out) if kind == "response"] == list(entries)[:2]
    assert status == 0


def fastwarc_capture(url: str, body: bytes, headers) -> tuple[list[bytes], str]:
    """request, response and metadata of one URL written by FastWARC's writer, each record's bytes apart."""
    from fastwarc.warc import WarcRecord, WarcRecordType

    rid = f"uuid:{uuid.uuid4()}"
    http_head = "".join(f"{k}: {v}\r\n" for k, v in [("Content-Type", "text/html"), *headers])
    blocks = [
        (WarcRecordType.request, f"GET /{url.split('/', 3)[3]} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), "request"),
        (WarcRecordType.response, f"HTTP/1.1 200 OK\r\n{http_head}\r\n".encode() + body, "response"),
        (WarcRecordType.metadata, b"fetchTimeMs: 5\r\n", ""),
    ]
    out = []
    for kind, block, msgtype in blocks:
        record = WarcRecord()
        urn = rid if msgtype == "response" else f"uuid:{uuid.uuid4()}"
        record.init_headers(record_type=kind, record_urn=urn.encode())
        record.headers.append("WARC-Target-URI", url)
        record.headers.append("WARC-Date", DATE)
        ctype = f"application/http; msgtype={msgtype}" if msgtype else "application/warc-fields"
        record.headers.append("Content-Type", ctype)
        record.set_bytes_content(block)
        buffer = io.BytesIO()
        record.write(buffer, checksum_data=True)
        out.append(buffer.getvalue())
    return out, f"<urn:{rid}>"


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "plain"])
def test_a_warc_written_by_fastwarc_is_filtered_alike(web, tmp_path, gz):
    entries = pages(web)
    warc = tmp_path / ("fw.warc.gz" if gz else "fw.warc")
    ids = {}
    with warc.open("wb") as out:
        for url, (body, headers, _) in entries.items():
            records, ids[url] = fastwarc_capture(url, body, headers)
            for data in records:
                out.write(gzip.compress(data) if gz else data)
    status, out = run(tmp_path, warc, extra=["--agent", AGENT])
    assert status == 0
    lines = decisions(out)
    assert {d["url"]: d["allowed"] for d in lines} == {u: allowed for u, (_, _, allowed) in entries.items()}
    assert {d["url"]: d["warc_record_id"] for d in lines} == ids
    kept = [u for kind, u in kept_records(out) if kind == "response"]  # read back by warcio and FastWARC
    assert kept == [u for u, (_, _, allowed) in entries.items() if allowed]
