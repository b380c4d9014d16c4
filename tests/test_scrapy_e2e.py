"""End-to-end: real Scrapy crawls (CrawlerProcess in a subprocess) with the add-on, against loopback sites.

Each test asserts which URLs reached the spider, which were never fetched at all (the server's own request log),
what went into the registry and what the stats say.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.fixtureweb import FixtureWeb, Route, page
from tests.support.run import ROOT
from tests.support.scrapyproject import crawl, registry_records

TEXT = "text/plain"


def paths(urls: list[str]) -> set[str]:
    return {"/" + u.split("/", 3)[3] if u.count("/") >= 3 else "/" for u in urls}


def test_burst_of_disallowed_urls_is_blocked_every_time(web: FixtureWeb, tmp_path: Path) -> None:
    # Scrapy's own middleware lets every request but the first through while robots.txt is being fetched.
    base = web.site("s", {"/robots.txt": Route(body="User-agent: *\nDisallow: /private/\n", content_type=TEXT)})
    web.site("s", {f"/open/{i}": page(str(i)) for i in (1, 2, 3)})
    private = [f"{base}/private/{i}" for i in range(7)]
    out = crawl([*private, base + "/open/1", base + "/open/2", base + "/open/3"], tmp_path)
    assert sorted(out["refused"]) == sorted(private)
    assert not [h for h in web.hits("s") if h.path.startswith("/private/")]
    assert len(web.hits("s", "/robots.txt")) == 1
    assert out["stats"]["optout/honoured/robots"] == 7
    assert out["stats"]["optout/access/denied"] == 7
    # Per-request counters reach the stats at close; nothing listens to page bytes once the policy files are in.
    assert out["stats"]["optout/access/allowed"] == 3 and out["stats"]["optout/usage/allowed"] == 3
    assert out["stats"]["optout/items/allowed"] == 3 and out["bytes_received_receivers"] == 0
    records = registry_records(tmp_path)
    assert len(records) == 7
    assert {r["decision"] for r in records} == {"not_fetched"}
    assert {r["mechanism"] for r in records} == {"robots.txt"}


@pytest.mark.parametrize(
    ("status", "fetched"),
    [(200, False), (404, True), (401, True), (500, False), (503, False), (429, False)],
)
def test_robots_status_classes(web: FixtureWeb, tmp_path: Path, status: int, fetched: bool) -> None:
    base = web.site("s", {"/robots.txt": Route(status, "User-agent: *\nDisallow: /\n", content_type=TEXT)})
    web.site("s", {"/page": page("p")})
    out = crawl([base + "/page"], tmp_path)
    assert bool(web.hits("s", "/page")) is fetched
    assert (base + "/page" in out["reached"]) is fetched
    if not fetched:
        assert out["refused"] == [base + "/page"]
        assert registry_records(tmp_path)[0]["decision"] == "not_fetched"


def test_robots_timeout_and_redirects(web: FixtureWeb, tmp_path: Path) -> None:
    cdn = web.site("cdn", {"/r.txt": Route(body="User-agent: *\nDisallow: /secret\n", content_type=TEXT)})
    moved = web.site("moved", {"/robots.txt": Route(301, headers=[("Location", cdn + "/r.txt")])})
    web.site("moved", {"/secret": page("s"), "/open": page("o")})
    loop = web.site("loop", {"/robots.txt": Route(302, headers=[("Location", "/robots.txt")]), "/p": page("p")})
    slow = web.site("slow", {"/robots.txt": Route(body="User-agent: *\nAllow: /\n", delay=4), "/p": page("p")})
    out = crawl(
        [moved + "/secret", moved + "/open", loop + "/p", slow + "/p"],
        tmp_path,
        settings={"OPTOUT_POLICY_TIMEOUT": 1.5},
    )
    assert paths(out["reached"]) == {"/open"}
    assert not web.hits("moved", "/secret") and not web.hits("loop", "/p") and not web.hits("slow", "/p")
    assert len(web.hits("loop", "/robots.txt")) == 6  # the first request and 5 redirects, then unreachable


def test_origins_are_separate_per_port(web: FixtureWeb, tmp_path: Path) -> None:
    # Two origins on one host (like http:// and https:// of one site): each has its own robots.txt.
    a = web.site("a", {"/robots.txt": Route(body="User-agent: *\nDisallow: /x\n", content_type=TEXT), "/x": page("x")})
    b = web.site("b", {"/robots.txt": Route(body="User-agent: *\nAllow: /\n", content_type=TEXT), "/x": page("x")})
    out = crawl([a + "/x", b + "/x"], tmp_path)
    assert out["reached"] == [b + "/x"]
    assert out["refused"] == [a + "/x"]


def test_crawl_delay_per_origin(web: FixtureWeb, tmp_path: Path) -> None:
    slow_pages = {f"/p{i}": page(str(i)) for i in range(4)}
    slow = web.site(
        "slow", {"/robots.txt": Route(body="User-agent: *\nCrawl-delay: 1\n", content_type=TEXT), **slow_pages}
    )
    fast = web.site("fast", {f"/p{i}": page(str(i)) for i in range(4)})
    out = crawl([slow + f"/p{i}" for i in range(4)] + [fast + f"/p{i}" for i in range(4)], tmp_path)
    assert len(out["reached"]) == 8
    times = sorted(h.time for h in web.hits("slow") if h.path.startswith("/p"))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 4 and min(gaps) >= 0.9, gaps
    fast_done = max(h.time for h in web.hits("fast") if h.path.startswith("/p"))
    assert fast_done < times[-1] - 1.5  # the fast origin did not wait for the slow one


def test_usage_protocols_drop_mode(web: FixtureWeb, tmp_path: Path) -> None:
    rsl = (
        '<rsl xmlns="https://rslstandard.org/rsl"><content url="/"><license>'
        '<prohibits type="usage">ai-train</prohibits></license></content></rsl>'
    )
    base = web.site(
        "s",
        {
            "/.well-known/tdmrep.json": Route(
                body=json.dumps([{"location": "/books/", "tdm-reservation": 1}]), content_type="application/json"
            ),
            "/ai.txt": Route(body="User-agent: *\nDisallow: *.png\n", content_type=TEXT),
            "/books/1": page("book"),
            "/tdm-header": Route(body=page("t"), headers=[("tdm-reservation", "1")]),
            "/aipref": Route(body=page("a"), headers=[("Content-Usage", "train-ai=n")]),
            "/meta": page("m", head='<meta name="robots" content="noai">'),
            "/img.png": Route(body=b"\x89PNG\r\n\x1a\n", content_type="image/png"),
            "/403": Route(403, "no"),
            "/licensed": Route(
                body=page("l"), headers=[("Link", '</l.xml>; rel="license"; type="application/rsl+xml"')]
            ),
            "/l.xml": Route(body=rsl, content_type="application/rsl+xml"),
            "/open": page("open"),
        },
    )
    reserved = ["/books/1", "/tdm-header", "/aipref", "/meta", "/img.png", "/403", "/licensed"]
    out = crawl([base + p for p in [*reserved, "/open"]], tmp_path)
    assert out["reached"] == [base + "/open"]
    assert paths(out["refused"]) == set(reserved)
    assert [i["url"] for i in out["items"]] == [base + "/open"]
    assert out["items"][0]["optout"]["allowed"] is True
    stats = out["stats"]
    for protocol in ("tdmrep", "content-usage", "robots-tag", "ai-txt", "access", "rsl"):
        assert stats.get(f"optout/honoured/{protocol}", 0) >= 1, protocol
    records = registry_records(tmp_path)
    assert {r["decision"] for r in records} == {"fetched_not_stored"}
    assert {r["target"]["url"].rsplit("/", 1)[-1] for r in records} >= {"1", "tdm-header", "aipref", "meta", "img.png"}


def test_annotate_mode_passes_pages_and_drops_items(web: FixtureWeb, tmp_path: Path) -> None:
    base = web.site(
        "s",
        {
            "/": page(
                "home", '<a href="/reserved">r</a> <a href="/free">f</a>', head='<meta name="robots" content="noai">'
            ),
            "/reserved": Route(body=page("r"), headers=[("X-Robots-Tag", "noai")]),
            "/free": page("f"),
        },
    )
    out = crawl([base + "/"], tmp_path, follow=True, settings={"OPTOUT_ON_RESERVED": "annotate"})
    assert paths(out["reached"]) == {"/", "/reserved", "/free"}  # links of reserved pages are still followed
    assert out["decisions"][base + "/"]["allowed"] is False
    assert [i["url"] for i in out["items"]] == [base + "/free"]
    assert out["stats"]["optout/items/dropped"] == 2
    assert {r["decision"] for r in registry_records(tmp_path)} == {"excluded_from_corpus"}


def test_blocklist_and_search_purpose(web: FixtureWeb, tmp_path: Path) -> None:
    base = web.site(
        "s",
        {
            "/robots.txt": Route(body="User-agent: GPTBot\nDisallow: /\n", content_type=TEXT),
            "/p": Route(body=page("p"), headers=[("tdm-reservation", "1")]),
        },
    )
    blocked = base.replace("127.0.0.1", "localhost")
    listing = tmp_path / "blocklist.txt"
    listing.write_text("# persistently infringing\nlocalhost\n")
    out = crawl(
        [base + "/p", blocked + "/other"],
        tmp_path,
        settings={"OPTOUT_BLOCKLIST": str(listing), "OPTOUT_PURPOSE": "search"},
    )
    # A training reservation (tdm header, GPTBot disallow) never blocks search; the blocklist always does.
    assert out["reached"] == [base + "/p"]
    assert out["refused"] == [blocked + "/other"]
    assert not [h for h in web.hits("s") if h.path == "/other"]


def test_persistent_policy_cache_across_runs(web: FixtureWeb, tmp_path: Path) -> None:
    base = web.site(
        "s", {"/robots.txt": Route(body="User-agent: *\nDisallow: /x\n", content_type=TEXT), "/p": page("p")}
    )
    crawl([base + "/p", base + "/x"], tmp_path)
    crawl([base + "/p", base + "/x"], tmp_path)
    assert len(web.hits("s", "/robots.txt")) == 1  # the second run used the cached copy (< 24 h old)
    assert not web.hits("s", "/x")


def test_a_project_that_disables_the_add_on_is_warned_and_records_nothing(web: FixtureWeb, tmp_path: Path) -> None:
    """OPTOUT_ENABLED = False in a Scrapy project of one's own: its choice, but said out loud (the standalone
    crawler refuses to run like that)."""
    base = web.site(
        "s", {"/robots.txt": Route(body="User-agent: *\nDisallow: /\n", content_type=TEXT), "/p": page("p")}
    )
    config = {"start_urls": [base + "/p"], "settings": {"OPTOUT_ENABLED": False,
              "OPTOUT_REGISTRY_URL": f"sqlite:///{tmp_path / 'registry.db'}"}}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "tests.scrapyrun.run", json.dumps(config)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("OPTOUT_ENABLED is False: this crawl enforces no opt-out") == 1
    assert json.loads(proc.stdout.strip().splitlines()[-1])["reached"] == [base + "/p"]  # as it asked
    assert not (tmp_path / "registry.db").exists()
