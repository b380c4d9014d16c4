"""The fleet-wide policy store (middlewares/rediscache.py) against a real Redis: stored answers, claims, the
Crawl-delay gate shared by several "workers" (store instances), and outages."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path

import pytest

from middlewares.engine import Fetched
from middlewares.policy import Policy
from middlewares.rediscache import CacheUnavailable, RedisPolicyStore
from middlewares.sitecache import PolicyStore, SiteCache
from tests.support.fleet import REDIS_URL, PrivateRedis


def store(prefix: str, url: str = REDIS_URL, **kw: object) -> RedisPolicyStore:
    return RedisPolicyStore(url, prefix=prefix, **kw)  # type: ignore[arg-type]


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_answers_round_trip_with_their_fetch_time_and_expiry(redis_prefix: str) -> None:
    async def go() -> None:
        s = store(redis_prefix)
        fetched = Fetched(
            "http://a.test/robots.txt",
            200,
            {"content-type": ["text/plain"], "x-two": ["1", "2"]},
            b"User-agent: *\nDisallow: /p\n\x00\xff",
            final_url="http://a.test/robots.txt",
            fetched_at=1234.5,
        )
        now = time.time()
        await s.put(fetched, now + 60)
        got = await s.get(fetched.url, now)
        assert got is not None
        back, expires = got
        assert (back.status, back.body, back.fetched_at) == (200, fetched.body, 1234.5)
        assert back.final_url == fetched.final_url
        assert back.headers == {"content-type": ["text/plain"], "x-two": ["1", "2"]}
        assert expires == pytest.approx(now + 60)
        assert await s.get(fetched.url, now + 61) is None  # past its expiry even if Redis still holds it
        ttl = await s.client.pttl(f"{redis_prefix}pf:{fetched.url}")
        assert 50_000 < ttl <= 60_000  # Redis drops it by itself at the RFC 9309 limit
        failed = Fetched("http://a.test/ai.txt", None, error="timed out")
        await s.put(failed, now + 60)
        back, _ = (await s.get(failed.url, now)) or (None, 0)
        assert back is not None and back.status is None and back.error == "timed out"
        await s.close()

    run(go())


def test_a_4xx_error_page_is_not_kept(redis_prefix: str) -> None:
    async def go() -> None:
        s = store(redis_prefix)
        await s.put(Fetched("http://a.test/robots.txt", 404, {}, b"<html>not found</html>" * 100), time.time() + 60)
        got = await s.get("http://a.test/robots.txt", time.time())
        assert got is not None and got[0].status == 404 and got[0].body == b""
        await s.put(Fetched("http://a.test/x.json", 503, {}, b"busy"), time.time() + 60)
        got = await s.get("http://a.test/x.json", time.time())
        assert got is not None and got[0].body == b"busy"  # the evidence of a fail-closed decision stays
        await s.close()

    run(go())


def test_only_one_worker_wins_a_claim_and_only_the_owner_releases_it(redis_prefix: str) -> None:
    async def go() -> None:
        a, b = store(redis_prefix, worker="a"), store(redis_prefix, worker="b")
        url = "http://a.test/robots.txt"
        results = await asyncio.gather(*(s.claim(url, 5) for s in (a, b, a, b)))
        assert sorted(results) == [False, False, False, True]
        winner, loser = (a, b) if url in a._claims else (b, a)
        await loser.release(url)  # not its claim: nothing happens
        assert await b.claim(url, 5) is False
        await winner.release(url)
        assert await loser.claim(url, 5) is True
        await a.close()
        await b.close()

    run(go())


def test_a_claim_expires_so_a_dead_worker_holds_no_one_up(redis_prefix: str) -> None:
    async def go() -> None:
        a, b = store(redis_prefix), store(redis_prefix)
        assert await a.claim("u", 0.2) is True
        assert await b.claim("u", 0.2) is False
        await asyncio.sleep(0.3)
        assert await b.claim("u", 0.2) is True
        await a.close()
        await b.close()

    run(go())


def test_crawl_delay_gate_spaces_requests_of_many_workers(redis_prefix: str) -> None:
    delay = 0.2

    async def worker(s: RedisPolicyStore, grants: list[float], n: int) -> None:
        for _ in range(n):
            token, _ = await s.wait_turn("http://slow.test", delay, hold=10)
            grants.append(time.time())
            await s.done("http://slow.test", delay, token)

    async def go() -> list[float]:
        workers = [store(redis_prefix, worker=str(i)) for i in range(4)]
        grants: list[float] = []
        started = time.time()
        await asyncio.gather(*(worker(s, grants, 3) for s in workers))
        for s in workers:
            await s.close()
        assert grants[0] - started >= delay * 0.95  # cold: no record of the last request, wait one delay
        return sorted(grants)

    grants = run(go())
    assert len(grants) == 12
    gaps = [b - a for a, b in itertools.pairwise(grants)]
    assert min(gaps) >= delay * 0.95, gaps  # the Redis clock is ms-resolution; local time.time() jitters a little
    assert grants[-1] - grants[0] < delay * 11 + 1.0  # and nobody waited far longer than needed


def test_a_turn_is_held_until_its_request_is_answered(redis_prefix: str) -> None:
    """The next request starts a full delay after the previous one's answer, not after its grant: a slow answer (or
    a slow way to the server) cannot bring it early. A holder that never answers lets go when its hold expires."""
    delay, answer, hold = 0.2, 0.5, 0.6

    async def go() -> tuple[float, float, float]:
        a, b, c = (store(redis_prefix, worker=w) for w in "abc")
        token, _ = await a.wait_turn("http://o.test", delay, hold=10)  # cold: one delay
        waiting = asyncio.ensure_future(b.wait_turn("http://o.test", delay, hold=hold))
        await asyncio.sleep(answer)
        assert not waiting.done()  # a's request is still out (twice the delay): b waits
        await a.done("http://o.test", delay, token)
        answered = time.time()
        await waiting
        granted_b = time.time()
        await c.wait_turn("http://o.test", delay, hold=10)  # b never answers (a dead worker)
        granted_c = time.time()
        await a.done("http://o.test", delay, token)  # a repeated done of a past turn brings nothing forward:
        with pytest.raises(asyncio.TimeoutError):  # c still holds the turn
            await asyncio.wait_for(b.wait_turn("http://o.test", delay, hold=hold), 1.0)
        for s in (a, b, c):
            await s.close()
        return answered, granted_b, granted_c

    answered, granted_b, granted_c = run(go())
    from redis.crc import key_slot

    gate_keys = store(redis_prefix)._gate_keys("http://o.test:8080")
    assert len(gate_keys) == 2 and len({key_slot(k.encode()) for k in gate_keys}) == 1  # one script on a Cluster
    assert granted_b - answered >= delay * 0.95  # counted from a's answer
    assert delay + hold - 0.05 <= granted_c - granted_b < delay + hold + 1.0  # b's hold expired, then c went


def test_a_turn_never_answered_ends_when_its_hold_expires(redis_prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request that takes its turn and then never reaches the downloader (another middleware replaced it) neither
    blocks this worker's lane nor the fleet's turn for good: both end with its hold, and the next request goes."""
    from scrapy.http import Request
    from scrapy.utils.test import get_crawler

    from middlewares import fleetdelay

    monkeypatch.setattr(fleetdelay, "HOLD_SLACK", 0.3)
    crawler = get_crawler(settings_dict={"DOWNLOAD_TIMEOUT": 0.2})

    async def go() -> float:
        gate = fleetdelay.FleetCrawlDelay(crawler, store(redis_prefix))
        await gate.wait(Request("http://o.test/replaced"), "http://o.test", 0.1)  # granted, never answered
        t0 = time.monotonic()
        following = Request("http://o.test/next")
        await asyncio.wait_for(gate.wait(following, "http://o.test", 0.1), 5)
        gate.release(following)
        await asyncio.sleep(0.05)  # the turn's end, sent to Redis
        await gate.store.close()
        return time.monotonic() - t0

    waited = run(go())
    assert 0.5 <= waited < 2.0, waited  # the hold (0.2 + 0.3 s), then one delay
    assert crawler.stats.get_value("optout/crawl_delay/overdue") == 1


def test_other_origins_do_not_wait(redis_prefix: str) -> None:
    # The first request to an origin waits one delay (cold gate); an unrelated origin has its own clock.
    async def two() -> tuple[float, float]:
        s = store(redis_prefix)
        t0 = time.time()
        token, _ = await s.wait_turn("http://a.test", 0.3, hold=10)
        t1 = time.time()
        await s.done("http://a.test", 0.3, token)  # answered at once
        await s.wait_turn("http://b.test", 0.3, hold=10)
        t2 = time.time()
        await s.wait_turn("http://a.test", 0.3, hold=10)
        t3 = time.time()
        await s.close()
        return t1 - t0, t3 - t2

    first, again = run(two())
    assert 0.25 < first < 1.0
    assert again < 0.35  # a.test's delay had already passed while b.test waited its own


def test_unreachable_redis_fails_closed_after_the_outage_limit() -> None:
    from tests.support.fleet import free_port

    async def go() -> None:
        s = RedisPolicyStore(f"redis://127.0.0.1:{free_port()}/0", outage=0.5)
        t0 = time.monotonic()
        with pytest.raises(CacheUnavailable, match="unreachable for over"):
            await s.get("http://a.test/robots.txt", time.time())
        assert 0.4 < time.monotonic() - t0 < 5
        with pytest.raises(CacheUnavailable):
            await s.wait_turn("http://a.test", 1.0, hold=10)
        await s.close()

    run(go())


def test_a_redis_restart_is_waited_out_and_comes_back_cold(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path)
    server.start()

    async def go() -> None:
        s = RedisPolicyStore(server.url, prefix="t:", outage=20)
        await s.put(Fetched("http://a.test/robots.txt", 200, {}, b"User-agent: *\nDisallow: /\n"), time.time() + 60)
        assert await s.get("http://a.test/robots.txt", time.time()) is not None
        server.stop()
        loop = asyncio.get_running_loop()
        loop.call_later(1.0, server.start)  # back after a second, empty (no persistence)
        t0 = time.monotonic()
        assert await s.get("http://a.test/robots.txt", time.time()) is None  # cold: must be fetched again
        assert time.monotonic() - t0 > 0.9
        await s.close()

    try:
        run(go())
    finally:
        server.stop()


def test_site_cache_on_two_workers_fetches_each_file_once(redis_prefix: str) -> None:
    """Two workers (two SiteCaches, two stores) ask for the same origin at once: one fetches every file, the
    other waits for its answers and reaches the same policy; robots.txt is fetched before anything else."""
    fetches: list[str] = []

    async def fetch(url: str, limit: int, delay: float, after: float) -> Fetched:
        fetches.append(url)
        await asyncio.sleep(0.2)
        if url.endswith("/robots.txt"):
            return Fetched(url, 200, {}, b"User-agent: *\nDisallow: /private/\n")
        return Fetched(url, 404, {}, b"")

    async def go() -> list[bool]:
        policy = Policy.build(agent="ExampleBot")
        caches = [
            SiteCache(policy, fetch, ttl=3600, recheck=60, store=store(redis_prefix, worker=str(i)), claim_ttl=5)
            for i in range(2)
        ]
        sites = await asyncio.gather(*(c.get("http://shared.test") for c in caches))
        for c in caches:
            await c.close()
        return [bool(site.access_signals("http://shared.test/private/x", policy)) for site in sites]

    assert run(go()) == [True, True]
    assert fetches[0] == "http://shared.test/robots.txt"
    assert sorted(fetches) == [
        "http://shared.test/.well-known/tdmrep.json",
        "http://shared.test/ai.txt",
        "http://shared.test/robots.txt",
    ]


def test_an_answer_stored_just_before_our_claim_is_not_fetched_again(redis_prefix: str) -> None:
    """Worker B looks (nothing stored), worker A stores its answer and releases its claim, then B wins the claim:
    B must read A's answer, not fetch the file a second time (workers that waited for the same robots.txt all
    reach the next file at the same moment, so this race is the common case, not a rare one)."""
    url = "http://race.test/.well-known/tdmrep.json"
    fetches: list[str] = []

    class LateClaim(RedisPolicyStore):
        async def claim(self, url: str, ttl: float) -> bool:
            other = store(redis_prefix, worker="A")
            await other.put(Fetched(url, 200, {}, b"[]"), time.time() + 60)
            await other.close()
            return await super().claim(url, ttl)

    async def fetch(url: str, limit: int, delay: float, after: float) -> Fetched:
        fetches.append(url)
        return Fetched(url, 404)

    async def go() -> Fetched:
        cache = SiteCache(Policy.build(agent="ExampleBot"), fetch, ttl=3600, recheck=60,
                          store=LateClaim(REDIS_URL, prefix=redis_prefix, worker="B"))  # fmt: skip
        answer, _ = await cache._file(url, 1024)
        await cache.close()
        return answer

    answer = run(go())
    assert answer.status == 200 and answer.body == b"[]"
    assert fetches == []


def test_a_store_of_our_own_is_looked_at_once_per_file(tmp_path: Path) -> None:
    """The SQLite store has no other writer, so the look after the claim (above) would be a query for nothing: one
    look per file, then the fetch, then the answer stored."""
    url = "http://once.test/ai.txt"
    looks: list[str] = []

    class Counting(PolicyStore):
        async def get(self, url: str, now: float) -> tuple[Fetched, float] | None:
            looks.append(url)
            return await super().get(url, now)

    async def fetch(url: str, limit: int, delay: float, after: float) -> Fetched:
        return Fetched(url, 404)

    async def go() -> Fetched:
        cache = SiteCache(Policy.build(agent="ExampleBot"), fetch, ttl=3600, recheck=60,
                          store=Counting(tmp_path / "cache.db"))  # fmt: skip
        answer, _ = await cache._file(url, 1024)
        await cache.close()
        return answer

    assert run(go()).status == 404
    assert looks == [url]
    reopened = PolicyStore(tmp_path / "cache.db")
    assert reopened.load(url, time.time()) is not None
    reopened.db.close()


def test_a_cache_outage_mid_load_is_one_line_in_the_decision(redis_prefix: str) -> None:
    """The fleet's cache fails while the policy files after robots.txt are being loaded (two at once): the origin
    is treated as unreachable, and what reaches decisions and records is one line naming the outage, not the
    Twisted traceback that a failed gatherResults carries in its text."""

    class Outage(RedisPolicyStore):
        async def get(self, url: str, now: float) -> tuple[Fetched, float] | None:
            if not url.endswith("/robots.txt"):
                raise CacheUnavailable("Redis policy cache redis://127.0.0.1:1/0 unreachable for over 60 s")
            return await super().get(url, now)

    async def fetch(url: str, limit: int, delay: float, after: float) -> Fetched:
        return Fetched(url, 200, {}, b"User-agent: *\nAllow: /\n")

    async def go():  # type: ignore[no-untyped-def]
        policy = Policy.build(agent="ExampleBot")
        cache = SiteCache(policy, fetch, ttl=3600, recheck=60, store=Outage(REDIS_URL, prefix=redis_prefix))
        site = await cache.get("http://outage.test")
        await cache.close()
        url = "http://outage.test/p"
        return policy.decide(url, site.access_signals(url, policy) + site.failures, site.notes)

    decision = run(go())
    assert not decision.allowed
    text = json.dumps(decision.to_json())
    assert "unreachable for over 60 s" in text
    assert "Traceback" not in text and "Failure" not in text
    assert all("\n" not in e for e in decision.errors)
