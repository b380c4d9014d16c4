"""robots.txt first, policy files under its rules and its Crawl-delay (issue 12), end to end: a plain Scrapy
project with the add-on, `optout crawl` and `optout check`, each against the same loopback web
(tests/support/politeweb.py), judged by the servers' own request logs. The distributed fleet runs the same web in
tests/test_distributed.py."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from crawler.fixtureweb import FixtureWeb, Route, page
from tests.support import politeweb
from tests.support.run import run_cli
from tests.support.scrapyproject import crawl


def test_scrapy_addon_reads_robots_first(web: FixtureWeb, tmp_path: Path) -> None:
    seeds = politeweb.build(web, "ExampleBot")
    out = crawl(seeds, tmp_path, settings={"OPTOUT_POLICY_TIMEOUT": politeweb.TIMEOUT})
    politeweb.assert_robots_first(web)
    reached = {u.rsplit("/", 1)[0] for u in out["reached"]}
    assert reached == {web.origin("wk"), web.origin("slow")}
    assert out["stats"]["optout/fetch/tdmrep.json"] == 1  # slow's only: wk's was not requested


def test_optout_crawl_reads_robots_first(web: FixtureWeb, tmp_path: Path) -> None:
    seeds = politeweb.build(web, "ExampleBot")
    (tmp_path / "seeds.txt").write_text("\n".join(seeds) + "\n")
    proc = run_cli(
        "crawl", "--seeds-file", str(tmp_path / "seeds.txt"), "--out", str(tmp_path / "out"),
        "--agent", "ExampleBot", "--timeout", str(politeweb.TIMEOUT), timeout=120,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    politeweb.assert_robots_first(web)
    decisions = [json.loads(line) for line in (tmp_path / "out" / "decisions.jsonl").read_text().splitlines()]
    wk = [d for d in decisions if d["url"].startswith(web.origin("wk"))]
    assert wk and all(d["outcome"] == "stored" for d in wk)
    # the file we did not read is a note, not a reservation, and no evidence cites it
    assert all(
        "tdmrep.json not read: robots.txt disallows /.well-known/tdmrep.json" in " ".join(d["errors"]) for d in wk
    )
    items = [json.loads(line) for line in (tmp_path / "out" / "items.jsonl").read_text().splitlines()]
    cited = {f["url"] for i in items if i["url"].startswith(web.origin("wk")) for f in i["evidence"]["policy_files"]}
    assert cited == {web.origin("wk") + "/robots.txt", web.origin("wk") + "/ai.txt"}


def test_optout_check_reads_robots_first(web: FixtureWeb) -> None:
    seeds = politeweb.build(web, "ExampleBot")
    proc = run_cli("check", "--json", "--agent", "ExampleBot", "--timeout", str(politeweb.TIMEOUT), *seeds, timeout=120)
    assert proc.returncode == 1, proc.stderr[-3000:]
    politeweb.assert_robots_first(web)
    answers = {a["url"]: a for a in map(json.loads, proc.stdout.splitlines())}
    for name in politeweb.CLOSED:
        for path in politeweb.PAGES:
            answer = answers[web.origin(name) + path]
            assert not answer["allowed"]
            assert {r["protocol"] for r in answer["reservations"]} & {"robots", "fetch"}
    wk = answers[web.origin("wk") + "/p0"]
    assert wk["allowed"] and any("tdmrep.json not read" in e for e in wk["errors"])
    assert all(r["source"] != web.origin("wk") + "/.well-known/tdmrep.json" for r in wk["reservations"])


def test_a_download_slot_counts_crawl_delay_from_the_end_of_each_download() -> None:
    """Scrapy counts a slot's delay from each request's dispatch; ours from the end of each download, so that a
    stall between dispatch and the wire cannot bring two requests closer than Crawl-delay at the server."""
    import asyncio
    import time
    from types import SimpleNamespace

    from scrapy import Request, Spider
    from scrapy.core.downloader import Downloader
    from scrapy.utils.test import get_crawler

    from middlewares.state import OptOutState, slot_key

    crawler = get_crawler(Spider, {})
    state = OptOutState.of(crawler)
    downloader = Downloader(crawler)
    crawler.engine = SimpleNamespace(downloader=downloader)
    asyncio.run(state.pace(Request("http://a.test/p"), "http://a.test", 2.0, time.time()))
    slot = downloader.slots[slot_key("http://a.test")]
    assert slot.delay == 2.0 and slot.concurrency == 1
    assert {slot.download_delay() for _ in range(50)} == {2.0}  # RANDOMIZE_DOWNLOAD_DELAY is on: never randomised
    request = Request("http://a.test/p")
    slot.transferring.add(request)  # what Scrapy's Downloader._download does around a download
    slot.lastseen = 0.0  # dispatched long ago
    before = time.monotonic()
    slot.transferring.remove(request)  # the download ends
    assert before <= slot.lastseen <= time.monotonic() and not slot.transferring


def test_crawl_delay_is_kept_after_a_slow_response(web: FixtureWeb, tmp_path: Path) -> None:
    """A page that takes SLOW seconds to answer: the next request still comes a full Crawl-delay after the answer
    (counted from the dispatch, it would come DELAY after the first request left, only DELAY - SLOW after the
    answer)."""
    slow = 0.6
    base = web.site(
        "lag",
        {
            "/robots.txt": Route(body=f"User-agent: *\nCrawl-delay: {politeweb.DELAY:g}\n", content_type="text/plain"),
            "/p0": Route(body=page("p0", '<a href="/p1">next</a>'), delay=slow),
            "/p1": page("p1"),
        },
    )
    crawl([base + "/p0"], tmp_path, follow=True, settings={"OPTOUT_POLICY_TIMEOUT": 5})
    hits = sorted(web.hits("lag"), key=lambda h: h.time)
    paths = [h.path for h in hits]
    assert paths[0] == "/robots.txt" and paths[-2:] == ["/p0", "/p1"], paths
    gaps = [round(b.time - a.time, 3) for a, b in itertools.pairwise(hits)]
    assert min(gaps) >= politeweb.DELAY - 0.01, list(zip(paths[1:], gaps, strict=True))
    assert gaps[-1] >= politeweb.DELAY + slow - 0.01, list(zip(paths[1:], gaps, strict=True))  # /p0 -> /p1


def test_autothrottle_cannot_take_a_slot_below_crawl_delay(web: FixtureWeb, tmp_path: Path) -> None:
    """AutoThrottle, on in many projects, halves a slot's delay towards the answers' latency after every response:
    from Crawl-delay 1 s to ~0.5 s after the first fast page, for the requests already queued in the slot (here the
    three links of /p0)."""
    links = "".join(f'<a href="/{name}">{name}</a>' for name in ("a", "b", "c"))
    base = web.site(
        "throttled",
        {
            "/robots.txt": Route(body=f"User-agent: *\nCrawl-delay: {politeweb.DELAY:g}\n", content_type="text/plain"),
            "/p0": page("p0", links),
            **{f"/{name}": page(name) for name in ("a", "b", "c")},
        },
    )
    settings = {"OPTOUT_POLICY_TIMEOUT": 5, "AUTOTHROTTLE_ENABLED": True, "AUTOTHROTTLE_START_DELAY": 0.1}
    crawl([base + "/p0"], tmp_path, follow=True, settings=settings)
    hits = sorted(web.hits("throttled"), key=lambda h: h.time)
    paths = [h.path for h in hits]
    assert {"/a", "/b", "/c"} <= set(paths), paths
    gaps = [round(b.time - a.time, 3) for a, b in itertools.pairwise(hits)]
    assert min(gaps) >= politeweb.DELAY - 0.01, list(zip(paths[1:], gaps, strict=True))


def test_a_spiders_own_download_slot_does_not_escape_crawl_delay() -> None:
    """``meta["download_slot"]`` set by the spider would put the origin's requests in a slot that does not keep
    Crawl-delay; the origin's own slot is used instead."""
    import asyncio
    import time
    from types import SimpleNamespace

    from scrapy import Request, Spider
    from scrapy.core.downloader import Downloader
    from scrapy.utils.test import get_crawler

    from middlewares.state import OptOutState, slot_key

    crawler = get_crawler(Spider, {})
    state = OptOutState.of(crawler)
    crawler.engine = SimpleNamespace(downloader=Downloader(crawler))
    request = Request("http://a.test/p", meta={"download_slot": "my-own-slot"})
    asyncio.run(state.pace(request, "http://a.test", 2.0, time.time()))
    assert request.meta["download_slot"] == slot_key("http://a.test")
    assert request.meta["autothrottle_dont_adjust_delay"] is True
