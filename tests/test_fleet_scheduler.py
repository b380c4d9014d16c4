"""crawler/fleetqueue.py's FleetScheduler on a real Redis: requests in flight are noted and settled only once their
records are written, a dead worker's are queued again by a survivor, and a Redis outage holds requests instead of
failing the engine."""

from __future__ import annotations

from pathlib import Path

import scrapy
from scrapy.http import Request
from scrapy.utils.test import get_crawler

from crawler.fleetqueue import FleetScheduler
from tests.support.fleet import REDIS_URL, PrivateRedis


class Spider(scrapy.Spider):
    name = "fleet-test"

    def parse(self, response):  # type: ignore[no-untyped-def]
        yield from ()


def scheduler(prefix: str, worker: str, url: str = REDIS_URL, **settings: object) -> FleetScheduler:
    crawler = get_crawler(
        Spider,
        {
            **settings,
            "REDIS_URL": url,
            "OPTOUT_CRAWL_ID": f"{prefix}crawl",
            "SCHEDULER_QUEUE_KEY": f"{prefix}crawl:requests",
            "SCHEDULER_DUPEFILTER_KEY": f"{prefix}crawl:dupefilter",
            "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
            "SCHEDULER_PERSIST": True,
        },
    )
    crawler.spider = spider = Spider.from_crawler(crawler)
    sched = FleetScheduler.from_crawler(crawler)
    sched.worker = worker
    sched.open(spider)
    return sched


def test_taken_requests_settle_only_when_done_and_recorded(redis_prefix: str) -> None:
    s = scheduler(redis_prefix, "w1")
    for i in range(3):
        assert s.enqueue_request(Request(f"http://a.test/{i}"))
    assert not s.enqueue_request(Request("http://a.test/0"))  # the shared dupefilter
    assert s.server.scard(s.df.key) == 3 and s.server.zcard(s.queue.key) == 3  # seen and queued together
    again = Request("http://a.test/0", dont_filter=True, priority=5)
    assert s.enqueue_request(again) and s.server.zcard(s.queue.key) == 4
    first = s.next_request()  # the highest priority comes first
    assert first is not None and first.url == "http://a.test/0" and first.dont_filter
    s.settle(set())
    taken = s.next_request()
    assert taken is not None and taken.url.startswith("http://a.test/")
    assert s.server.hlen(s.ledger) == 1
    s.settle({taken}, queued=0, written=0)  # still being worked on
    assert s.server.hlen(s.ledger) == 1
    s.settle(set(), queued=5, written=3)  # done, but its records are not all written yet
    assert s.server.hlen(s.ledger) == 1
    assert s.server.sismember(s.holders, "w1")  # known to hold requests in flight (found without a SCAN)
    s.settle(set(), queued=6, written=5)  # the mark is the count when it finished (5), not now
    assert s.server.hlen(s.ledger) == 0
    assert not s.server.sismember(s.holders, "w1")
    s.close("finished")


def test_a_dead_workers_requests_are_queued_again_once(redis_prefix: str) -> None:
    dead, alive = scheduler(redis_prefix, "dead"), scheduler(redis_prefix, "alive")
    for i in range(2):
        dead.enqueue_request(Request(f"http://a.test/{i}"))
    urls = {dead.next_request().url, dead.next_request().url}  # type: ignore[union-attr]
    assert alive.next_request() is None and not alive.has_pending_requests()
    assert alive.recover({"dead", "alive"}) == 0  # still beating: its requests are its own
    assert alive.others_in_flight()
    assert alive.recover({"alive"}) == 2
    assert alive.recover({"alive"}) == 0  # once
    assert not alive.others_in_flight()
    again = {alive.next_request().url, alive.next_request().url}  # type: ignore[union-attr]
    assert again == urls
    assert not dead.server.exists(dead.ledger)
    alive.close("finished")


def test_a_worker_stopped_early_hands_back_what_it_took(redis_prefix: str) -> None:
    a, b = scheduler(redis_prefix, "a"), scheduler(redis_prefix, "b")
    a.enqueue_request(Request("http://a.test/x"))
    assert a.next_request() is not None
    a.close("shutdown")
    got = b.next_request()
    assert got is not None and got.url == "http://a.test/x"
    b.close("finished")


def test_redis_outage_holds_requests_instead_of_failing(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        s = scheduler("t:", "w", url=server.url)
        server.stop()
        assert s.enqueue_request(Request("http://a.test/held")) is True
        assert s.next_request() is None
        assert s.has_pending_requests()  # unknown counts as not done
        server.start()
        got = s.next_request()  # the held request is queued first, then taken
        assert got is not None and got.url == "http://a.test/held"
        s.close("finished")
    finally:
        server.stop()


def test_a_scheduler_opened_during_an_outage_waits_and_flushes_late(tmp_path: Path) -> None:
    """Redis down at start: scrapy-redis's ping and its queue count fail, and the scheduler waits instead. A flush
    asked for at start (SCHEDULER_FLUSH_ON_START) is owed and done before anything is queued."""
    import redis

    server = PrivateRedis(tmp_path)  # not started
    try:
        s = scheduler("t:", "w", url=server.url, SCHEDULER_FLUSH_ON_START=True)
        assert s.enqueue_request(Request("http://a.test/new")) is True and s.next_request() is None
        server.start()
        client = redis.Redis.from_url(server.url)
        client.zadd("t:crawl:requests", {b"stale": 0})  # left by an earlier crawl: the flush must remove it
        client.sadd("t:crawl:dupefilter", b"stale")
        got = s.next_request()
        assert got is not None and got.url == "http://a.test/new"
        assert client.zcard("t:crawl:requests") == 0 and client.scard("t:crawl:dupefilter") == 1
        s.close("finished")
    finally:
        server.stop()


def test_a_heartbeat_while_the_engine_closes_is_skipped(redis_prefix: str) -> None:
    """The engine drops its slot before its spider when it closes; a heartbeat in between used to raise
    "Engine slot not assigned" from the LoopingCall (and fail the worker's exit status under load)."""
    from types import SimpleNamespace

    from crawler.fleet import FleetIdle

    crawler = get_crawler(Spider, {"REDIS_URL": REDIS_URL, "OPTOUT_CRAWL_ID": f"{redis_prefix}crawl"})
    idle = FleetIdle(crawler)

    def closing() -> bool:
        raise RuntimeError("Engine slot not assigned")

    crawler.engine = SimpleNamespace(spider=object(), _slot=None, spider_is_idle=closing)  # type: ignore[assignment]
    idle.beat()  # must not raise
    assert idle.server.zscore(idle.key, idle.worker) is None  # and says nothing to the fleet
