"""robots.txt first, policy files under its rules and its Crawl-delay (issue 12), end to end: a plain Scrapy
project with the add-on, `optout crawl` and `optout check`, each against the same loopback web
(tests/support/politeweb.py), judged by the servers' own request logs. The distributed fleet runs the same web in
tests/test_distributed.py."""

from __future__ import annotations

import json
from pathlib import Path

from crawler.fixtureweb import FixtureWeb
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


def test_a_download_slot_spaces_requests_by_more_than_crawl_delay() -> None:
    """Scrapy spaces a slot's requests from their dispatch, not from the wire: the slot gets Crawl-delay plus a
    margin, so a reactor stall between the two cannot bring two requests closer than Crawl-delay at the server."""
    import asyncio
    import time
    from types import SimpleNamespace

    from scrapy import Request, Spider
    from scrapy.core.downloader import Downloader
    from scrapy.utils.test import get_crawler

    from middlewares.rediscache import GATE_MARGIN
    from middlewares.state import OptOutState, slot_key

    crawler = get_crawler(Spider, {})
    state = OptOutState.of(crawler)
    downloader = Downloader(crawler)
    crawler.engine = SimpleNamespace(downloader=downloader)
    asyncio.run(state.pace(Request("http://a.test/p"), "http://a.test", 2.0, time.time()))
    slot = downloader.slots[slot_key("http://a.test")]
    assert GATE_MARGIN > 0 and slot.delay == 2.0 + GATE_MARGIN and slot.concurrency == 1
    assert slot.jitter == 0.0  # never randomised below the delay
