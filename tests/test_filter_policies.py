"""``optout filter --policies-warc`` (issue 17): archived robots.txt and tdmrep.json captures decide, as of each
page's capture date, instead of live fetches; origins the archive does not hold are asked live."""

from __future__ import annotations

import hashlib
import io
import json

import pytest

from crawler.cli import main
from crawler.fixtureweb import FixtureWeb, Route, page

pytest.importorskip("warcio")
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

TEXT = "text/plain"
ALLOW = "User-agent: *\nAllow: /\n"
DENY = "User-agent: OptOutBot\nDisallow: /\n"
TDMREP = '[{"location": "/tdm/*", "tdm-reservation": 1}]'


def record(writer: WARCWriter, url: str, body: str, date: str, ctype: str = "text/html") -> str:
    headers = StatusAndHeaders("200 OK", [("Content-Type", ctype)], "HTTP/1.1")
    rec = writer.create_warc_record(
        url, "response", payload=io.BytesIO(body.encode()), http_headers=headers, warc_headers_dict={"WARC-Date": date}
    )
    writer.write_record(rec)
    return rec.rec_headers.get_header("WARC-Record-ID")


@pytest.fixture
def web():
    with FixtureWeb() as web:
        for name in ("arch", "live"):
            web.site(name, {"/robots.txt": Route(body=ALLOW, content_type=TEXT)})
        yield web


def test_archived_policies_decide_as_of_the_capture_date(web, tmp_path):
    arch, live = web.origin("arch"), web.origin("live")
    policies = tmp_path / "robotstxt.warc.gz"
    with policies.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        record(writer, f"{arch}/robots.txt", ALLOW, "2025-01-01T00:00:00Z", TEXT)
        june = record(writer, f"{arch}/robots.txt", DENY, "2025-06-01T00:00:00Z", TEXT)
        record(writer, f"{arch}/.well-known/tdmrep.json", TDMREP, "2025-01-01T00:00:00Z", "application/json")
    pages = tmp_path / "pages.warc.gz"
    with pages.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        record(writer, f"{arch}/a", page("a"), "2025-03-01T00:00:00Z")
        record(writer, f"{arch}/tdm/x", page("x"), "2025-03-01T00:00:00Z")
        record(writer, f"{arch}/b", page("b"), "2025-07-01T00:00:00Z")
        record(writer, f"{live}/c", page("c"), "2025-07-01T00:00:00Z")
    out = tmp_path / "out"
    registry = f"sqlite:///{tmp_path / 'reg.db'}"
    argv = ["filter", str(pages), "--policies-warc", str(policies), "--out", str(out), "--registry", registry]
    assert main([*argv, "--timeout", "3"]) == 0

    lines = {d["url"]: d for d in map(json.loads, (out / "decisions.jsonl").read_text().splitlines())}
    assert {u: d["allowed"] for u, d in lines.items()} == {
        f"{arch}/a": True,  # robots.txt of January allows
        f"{arch}/tdm/x": False,  # the archived tdmrep.json reserves /tdm/
        f"{arch}/b": False,  # robots.txt of June disallows; live it allows
        f"{live}/c": True,
    }
    assert {r["protocol"] for r in lines[f"{arch}/tdm/x"]["reservations"]} == {"tdmrep"}
    assert {r["protocol"] for r in lines[f"{arch}/b"]["reservations"]} == {"robots"}
    b = lines[f"{arch}/b"]["site_policy"]
    assert b["source"] == "archive" and b["captured_at"] == "2025-06-01T00:00:00Z"
    assert b["warc_record_id"] == june and b["warc_file"] == str(policies)
    assert b["not_archived"] == []  # that robots.txt disallows every other file: none was looked for
    a = lines[f"{arch}/a"]["site_policy"]
    assert a["captured_at"] == "2025-01-01T00:00:00Z"
    assert a["not_archived"] == [f"{arch}/ai.txt"]  # counted absent, never fetched live
    assert lines[f"{live}/c"]["site_policy"]["source"] == "live"

    assert web.hits("arch") == []  # the archive answered for this origin: nothing asked live
    paths = [h.path for h in web.hits("live")]
    assert paths[0] == "/robots.txt" and paths.count("/robots.txt") == 1

    summary = json.loads((out / "summary.json").read_text())
    assert summary["site_policy"] == "archive, else live"
    assert (summary["origins"], summary["origins_archived"]) == (2, 1)

    from optout_registry import Registry

    with Registry.open(registry, create=False) as reg:
        records = {e.record["target"]["url"]: e.record for e in reg.records()}
    evidence = records[f"{arch}/b"]["evidence"]  # the archived robots.txt, with its capture date
    assert evidence["sha256"] == hashlib.sha256(DENY.encode()).hexdigest()
    assert evidence["fetched_at"].startswith("2025-06-01T00:00:00")
