"""Fault injection, end to end: one real Scrapy crawl across many loopback origins, most of them broken.

A slow or dead robots.txt server, a huge robots.txt, a redirect loop, malformed status and header lines, a body cut
short: the crawl goes on for the healthy origins, and every broken origin fails closed (nothing fetched beyond its
policy files) with the reason in the registry. A robots.txt that is merely big, or has a junk header line, is read
and honoured, not treated as "unreachable" nor as "allow everything".
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from crawler.fixtureweb import FixtureWeb, Route, page
from middlewares.engine import ROBOTS_LIMIT
from tests.support.scrapyproject import crawl, registry_records

TEXT = "text/plain"
ALLOW_ALL = "User-agent: *\nAllow: /\n"
PAD = b"# " + b"padding " * 7 + b"\n"  # 59 bytes


def big_robots(size: int) -> bytes:
    """``Disallow: /x`` first, then comments; the line that straddles the 500 KiB parse limit is an Allow that,
    cut in half, would read ``Allow: /x/d`` and open ``/x/d…`` (it must be dropped instead)."""
    head = b"User-agent: *\nDisallow: /x\n"
    straddle = b"Allow: /x/deep-only\n"
    cut_at = ROBOTS_LIMIT - len(b"Allow: /x/d")
    body = head + PAD * ((cut_at - len(head)) // len(PAD))
    body += b"#" * (cut_at - len(body) - 1) + b"\n" + straddle
    assert body.index(straddle) == cut_at
    return body + PAD * ((size - len(body)) // len(PAD) + 1)


def raw_response(head: bytes, body: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + head + b"\r\n" + body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("faults")
    with FixtureWeb() as web:
        o: dict[str, str] = {}
        o["good"] = web.site("good", {"/robots.txt": Route(body=ALLOW_ALL, content_type=TEXT)})
        web.site("good", {f"/p{i}": page(f"good {i}") for i in range(5)})
        o["dead"] = f"http://127.0.0.1:{free_port()}"
        o["slow"] = web.site(
            "slow", {"/robots.txt": Route(body=ALLOW_ALL, content_type=TEXT, delay=4), "/p": page("p")}
        )
        o["loop"] = web.site(
            "loop", {"/robots.txt": Route(302, headers=[("Location", "/robots.txt")]), "/p": page("p")}
        )
        robots_ok = ALLOW_ALL.encode()
        routes = {
            # "HTTP/1.1 200 OK" missing: not an HTTP answer at all
            "badstatus": Route(raw=b"garbage \x00\xff\r\n\r\n" + robots_ok),
            # one header line longer than any client accepts (Twisted: 16 KiB)
            "hugeheader": Route(body=ALLOW_ALL, content_type=TEXT, headers=[("X-Junk", "a" * 100_000)]),
            # Content-Length promises more than arrives before the connection closes
            "cutshort": Route(raw=raw_response(b"Content-Type: text/plain\r\nContent-Length: 5000\r\n", robots_ok)),
        }
        for name, route in routes.items():
            o[name] = web.site(name, {"/robots.txt": route, "/p": page("p")})
        # Merely odd: a header line without a colon (ignored by the client), binary junk in a header value.
        junk_line = raw_response(
            b"Content-Type: text/plain\r\nthis line has no colon\r\nX-Bin: \x00\xff\x01\r\nContent-Length: %d\r\n"
            % len(b"User-agent: *\nDisallow: /private\n"),
            b"User-agent: *\nDisallow: /private\n",
        )
        o["junkline"] = web.site(
            "junkline", {"/robots.txt": Route(raw=junk_line), "/private": page("x"), "/open": page("o")}
        )
        for name, size in (("big", 10_000_000), ("huge", 24 * 1024 * 1024)):
            o[name] = web.site(
                name,
                {
                    "/robots.txt": Route(body=big_robots(size), content_type=TEXT),
                    "/x": page("x"),
                    "/x/dz": page("x/dz"),
                    "/ok": page("ok"),
                },
            )
        o["headers"] = web.site(
            "headers",
            {
                "/robots.txt": Route(body=ALLOW_ALL, content_type=TEXT),
                "/cu-junk": Route(body=page("cu"), headers=[("Content-Usage", "\x00\xff\x01 junk;;=")]),
                "/xrt-junk": Route(body=page("xrt"), headers=[("X-Robots-Tag", "\xff\xfe noai \x00\x01")]),
                "/too-long": Route(body=page("long"), headers=[("Content-Usage", "train-ai=n, " + "x" * 60_000)]),
                "/ok": page("ok"),
            },
        )
        starts = [o["good"] + f"/p{i}" for i in range(5)]
        starts += [o[n] + "/p" for n in ("dead", "slow", "loop", *routes)]
        starts += [o["junkline"] + "/private", o["junkline"] + "/open"]
        starts += [o[n] + p for n in ("big", "huge") for p in ("/x", "/x/dz", "/ok")]
        starts += [o["headers"] + p for p in ("/cu-junk", "/xrt-junk", "/too-long", "/ok")]
        out = crawl(starts, tmp, settings={"OPTOUT_POLICY_TIMEOUT": 1.5})
        yield web, o, out, registry_records(tmp)


def where(o: dict[str, str], url: str) -> str:
    for name, base in o.items():
        if url.startswith(base + "/"):
            return name + url[len(base) :]
    return url


def test_healthy_origins_are_crawled(faults: Any) -> None:
    _, o, out, _ = faults
    reached = {where(o, u) for u in out["reached"]}
    assert {f"good/p{i}" for i in range(5)} <= reached
    assert {"junkline/open", "big/ok", "huge/ok", "headers/ok"} <= reached
    assert out["stats"]["finish_reason"] == "finished"
    assert {where(o, i["url"]) for i in out["items"]} == reached  # every item from an allowed page, no others
    assert all(i["optout"]["allowed"] for i in out["items"])


@pytest.mark.parametrize(
    ("origin", "reason"),
    [
        ("dead", "refused"),
        ("slow", "took longer than 1.5 seconds"),
        ("loop", "redirect"),
        ("badstatus", "ParseError"),
        ("hugeheader", "could not be fetched"),
        ("cutshort", "could not be fetched"),
    ],
)
def test_broken_origin_fails_closed_with_reason(faults: Any, origin: str, reason: str) -> None:
    web, o, out, records = faults
    url = o[origin] + "/p"
    assert url in out["refused"] and url not in out["reached"]
    if origin != "dead":
        assert not web.hits(origin, "/p")  # refused before the download
        assert web.hits(origin, "/robots.txt")
    mine = [r for r in records if r["target"]["url"] == url]
    assert {r["decision"] for r in mine} == {"not_fetched"}
    failures = [r for r in mine if r["rule"]["protocol"] == "fetch" and r["rule"]["where"] == "robots.txt"]
    assert len(failures) == 1, mine
    assert failures[0]["mechanism"] == "robots.txt.unreachable"
    assert reason.lower() in failures[0]["rule"]["rule"].lower(), failures[0]["rule"]
    assert any(r["rule"]["protocol"] == "robots" and "complete disallow" in r["rule"]["rule"] for r in mine)


def test_redirect_loop_stops_after_five_redirects(faults: Any) -> None:
    web, _, _, _ = faults
    assert len(web.hits("loop", "/robots.txt")) == 6


@pytest.mark.parametrize("origin", ["big", "huge"])
def test_big_robots_txt_is_read_up_to_the_limit(faults: Any, origin: str) -> None:
    web, o, out, records = faults
    base = o[origin]
    # Disallow: /x applies (not "allow all"); the Allow cut in half by the limit is dropped, not read as /x/d.
    assert {base + "/x", base + "/x/dz"} <= set(out["refused"])
    assert not web.hits(origin, "/x") and not web.hits(origin, "/x/dz")
    assert base + "/ok" in out["reached"]  # not "unreachable" either, even past Scrapy's 10 MiB download cap
    errors = out["decisions"][base + "/ok"]["errors"]
    assert any(f"larger than {ROBOTS_LIMIT} bytes" in e for e in errors), errors
    rules = {r["target"]["url"]: r["rule"] for r in records if r["target"]["url"].startswith(base + "/")}
    assert rules[base + "/x"]["rule"].startswith("line 2: Disallow: /x")
    assert rules[base + "/x/dz"]["rule"].startswith("line 2: Disallow: /x")
    assert out["stats"].get("optout/fetch/status/error", 0) < 10  # the big files were answers, not errors


def test_junk_header_line_in_robots_txt_is_ignored_and_rules_honoured(faults: Any) -> None:
    web, o, out, _ = faults
    assert o["junkline"] + "/private" in out["refused"]
    assert not web.hits("junkline", "/private")
    assert o["junkline"] + "/open" in out["reached"]


def test_malformed_page_headers(faults: Any) -> None:
    _, o, out, records = faults
    base = o["headers"]
    # Unparseable Content-Usage is "unknown" (AIPREF; PROTOCOLS.md §10.4), and the decision says it was ignored.
    assert base + "/cu-junk" in out["reached"]
    assert any("Content-Usage header ignored" in e for e in out["decisions"][base + "/cu-junk"]["errors"])
    # noai amid binary junk still counts (conservative), and is recorded with the header as evidence.
    assert base + "/xrt-junk" in out["refused"]
    xrt = [r for r in records if r["target"]["url"] == base + "/xrt-junk"]
    assert [(r["decision"], r["mechanism"]) for r in xrt] == [("fetched_not_stored", "x-robots-tag")]
    # A header too long for the HTTP client: that download fails (nothing reaches the spider), the origin's
    # other pages are fine.
    assert base + "/too-long" in out["refused"] and base + "/too-long" not in out["reached"]
    assert base + "/ok" in out["reached"]
