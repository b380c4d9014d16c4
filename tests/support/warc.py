"""WARC files written on the fly for the corpus tests (optout filter, recheck, summary): captures as Common Crawl
writes them (request, response, metadata), and a small web whose pages show each page-level opt-out."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from crawler.fixtureweb import FixtureWeb, page

warcio = pytest.importorskip("warcio")
from warcio.statusandheaders import StatusAndHeaders  # noqa: E402
from warcio.warcwriter import WARCWriter  # noqa: E402

TEXT = "text/plain"
AGENT = "OptOutBot"
DATE = "2025-03-01T10:00:00Z"


def capture(
    writer: WARCWriter, url: str, body: bytes, headers=(), status: str = "200 OK", ctype: str = "text/html"
) -> str:
    """request, response and metadata of one URL, as Common Crawl writes them; returns the response's id."""
    resp_headers = StatusAndHeaders(status, [("Content-Type", ctype), *headers], "HTTP/1.1")
    response = writer.create_warc_record(
        url, "response", payload=io.BytesIO(body), http_headers=resp_headers, warc_headers_dict={"WARC-Date": DATE}
    )
    rid = response.rec_headers.get_header("WARC-Record-ID")
    path = "/" + url.split("/", 3)[3]
    req_headers = StatusAndHeaders(f"GET {path} HTTP/1.1", [("User-Agent", "CCBot")], is_http_request=True)
    request = writer.create_warc_record(
        url,
        "request",
        payload=io.BytesIO(b""),
        http_headers=req_headers,
        warc_headers_dict={"WARC-Date": DATE, "WARC-Concurrent-To": rid},
    )
    metadata = writer.create_warc_record(
        url,
        "metadata",
        payload=io.BytesIO(b"fetchTimeMs: 12\r\n"),
        warc_content_type="application/warc-fields",
        warc_headers_dict={"WARC-Date": DATE, "WARC-Concurrent-To": rid},
    )
    for record in (request, response, metadata):
        writer.write_record(record)
    return rid


def pages(web: FixtureWeb) -> dict[str, tuple[bytes, list[tuple[str, str]], bool]]:
    """URL -> (body, headers, allowed for train-ai)."""
    o, t, d = web.origin("open"), web.origin("tdm"), web.origin("deny")
    meta_tdm = "<meta name='tdm-reservation' content='1'>"
    meta_robots = f"<meta name='{AGENT}' content='noai'>"
    return {
        f"{o}/plain": (page("plain").encode(), [], True),
        f"{o}/xrt": (page("xrt").encode(), [("X-Robots-Tag", "noai")], False),
        f"{o}/tdm-header": (page("tdmh").encode(), [("tdm-reservation", "1")], False),
        f"{o}/tdm-meta": (page("tdmm", head=meta_tdm).encode(), [], False),
        f"{o}/robots-meta": (page("rm", head=meta_robots).encode(), [], False),
        f"{t}/free/a": (page("free").encode(), [], True),
        f"{t}/reserved/b": (page("reserved").encode(), [], False),
        f"{d}/public": (page("public").encode(), [], True),
        f"{d}/private/x": (page("private").encode(), [], False),
    }


def write_warc(path: Path, entries, *, gz: bool) -> dict[str, str]:
    ids = {}
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=gz)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "test"}))
        for url, (body, headers, _) in entries.items():
            ids[url] = capture(writer, url, body, headers)
    return ids
