"""Distributed crawls: many workers, one crawl, on scrapy-redis (scheduler queue and dupefilter in Redis).

What scrapy-redis leaves to us, for a crawl that must finish and stay compliant:

* ``FleetScheduler`` rides out a Redis restart: scrapy-redis's scheduler raises into Scrapy's engine when Redis
  is unreachable, which stops the worker. Here a request that cannot be queued is held in memory and queued once
  Redis answers again, and "no request available" is the answer while it does not.
* It also keeps what a worker has taken: scrapy-redis pops requests for good, so a worker killed mid-crawl would
  take up to CONCURRENT_REQUESTS pages with it (already in the dupefilter, so never crawled). Each taken request
  is written to the worker's in-flight hash and removed once Scrapy has finished with it; a worker that stops
  beating has its in-flight requests put back in the queue by a survivor. At least once, not at most once: a page
  the dead worker had fetched but not finished is fetched again.
* ``FleetIdle`` keeps a worker alive while the fleet still has work: with a shared queue, a worker whose queue
  view is empty for a moment is not done while another worker is still fetching pages whose links will refill it.
  Each busy worker keeps a heartbeat in a sorted set (Redis clock); a worker closes when the queue is empty, no
  other worker has beaten for ``FLEET_BUSY_TTL`` seconds, and it has itself been idle for ``OPTOUT_FLEET_GRACE``.

The policy side (one robots.txt fetch per origin for the fleet, fleet-wide Crawl-delay) is the add-on's Redis
store (middlewares/rediscache.py); the registry side is PostgreSQL's sequencing protocol (optout_registry).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import DontCloseSpider, NotConfigured
from scrapy_redis.queue import PriorityQueue
from scrapy_redis.scheduler import Scheduler

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request

logger = logging.getLogger(__name__)

# The highest-priority request of scrapy-redis's PriorityQueue (a sorted set), moved into the in-flight hash.
_TAKE = """
local top = redis.call('ZRANGE', KEYS[1], 0, 0)
if #top == 0 then return false end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, 0)
redis.call('HSET', KEYS[2], redis.sha1hex(top[1]), top[1])
return top[1]
"""

FLEET_BUSY_TTL = 10.0
FLEET_ALIVE_TTL = 10.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _redis_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ConnectionError, TimeoutError

    return (ConnectionError, TimeoutError, OSError)


class FleetScheduler(Scheduler):
    """scrapy-redis's Scheduler that holds requests in memory while Redis is away instead of failing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: deque[Request] = deque()
        self._down = False
        self._stats: Any = None
        self._taken: dict[str, Request] = {}  # SHA-1 of the serialised request -> request, while Scrapy has it
        self._take_script: Any = None
        self._finishing: dict[str, int] = {}  # finished, waiting for their records to be written
        self.crawl_id = "optout-crawl"
        self.worker = worker_name()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FleetScheduler:
        instance = cls.from_settings(crawler.settings)
        # Counted here: scrapy-redis passes ``spider=`` to the stats, which Scrapy 2.13+ warns about every time.
        instance._stats = crawler.stats
        instance.crawl_id = crawler.settings.get("OPTOUT_CRAWL_ID") or instance.crawl_id
        return instance

    @property
    def ledger(self) -> str:
        return f"{self.crawl_id}:inflight:{self.worker}"

    def _outage(self, exc: BaseException) -> None:
        if not self._down:
            logger.warning("optout: Redis scheduler unreachable (%s); holding requests until it is back", exc)
            self._down = True

    def _flush_held(self) -> None:
        while self._held:
            request = self._held[0]
            super().enqueue_request(request)
            self._held.popleft()
        if self._down:
            logger.warning("optout: Redis scheduler reachable again")
            self._down = False

    def enqueue_request(self, request: Request) -> bool:
        try:
            self._flush_held()
            queued = bool(super().enqueue_request(request))
        except _redis_errors() as exc:
            self._outage(exc)
            self._held.append(request)
            return True
        if queued and self._stats is not None:
            self._stats.inc_value("scheduler/enqueued/redis")
        return queued

    def next_request(self) -> Request | None:
        try:
            self._flush_held()
            data = self._take()
        except _redis_errors() as exc:
            self._outage(exc)
            return None
        if data is None:
            return None
        if self._stats is not None:
            self._stats.inc_value("scheduler/dequeued/redis")
        request: Request = self.queue._decode_request(data)
        self._taken[hashlib.sha1(data).hexdigest()] = request
        return request

    def _take(self) -> bytes | None:
        """Pop the next request and note it in this worker's in-flight hash in one step (a worker killed between
        the two would otherwise lose it), keyed by the SHA-1 of its serialised form."""
        if isinstance(self.queue, PriorityQueue):
            if self._take_script is None:
                self._take_script = self.server.register_script(_TAKE)
            return self._take_script(keys=[self.queue.key, self.ledger])  # type: ignore[no-any-return]
        request = super().next_request()  # another queue class: two steps
        if request is None:
            return None
        data: bytes = self.queue._encode_request(request)
        self.server.hset(self.ledger, hashlib.sha1(data).hexdigest(), data)
        return data

    def settle(self, in_progress: set[Request], queued: int = 0, written: int = 0) -> None:
        """Forget the taken requests Scrapy has finished with (downloaded and parsed, or refused, or failed) once
        the registry records their handling produced are written: ``queued`` and ``written`` are the recorder's
        counts now, and a request finished when ``queued`` records had been queued is settled when ``written``
        reaches that. Until then a kill puts it back in the queue, so its opt-out is recorded again, not lost."""
        for fp, request in self._taken.items():
            if fp not in self._finishing and request not in in_progress:
                self._finishing[fp] = queued
        done = [fp for fp, mark in self._finishing.items() if written >= mark]
        if not done:
            return
        try:
            self.server.hdel(self.ledger, *done)
        except _redis_errors() as exc:
            self._outage(exc)
            return
        for fp in done:
            del self._taken[fp]
            del self._finishing[fp]

    def recover(self, alive: set[str]) -> int:
        """Put back in the queue what dead workers had taken; returns how many requests."""
        recovered = 0
        prefix = f"{self.crawl_id}:inflight:"
        for key in self.server.scan_iter(f"{prefix}*", count=1000):
            worker = key.decode()[len(prefix) :]
            if worker in alive or worker == self.worker:
                continue
            moving = f"{self.crawl_id}:recovering:{worker}:{self.worker}"
            try:
                self.server.rename(key, moving)  # one survivor wins; the others find the key gone
            except Exception:  # redis.ResponseError "no such key"
                continue
            taken = self.server.hvals(moving)
            for data in taken:
                self.queue.push(self.queue._decode_request(data))
            self.server.delete(moving)
            recovered += len(taken)
            logger.warning(
                "optout: worker %s stopped beating; %d request(s) it had taken are queued again", worker, len(taken)
            )
        return recovered

    def close(self, reason: str) -> None:
        """A worker stopped early (Ctrl-C, a page limit) hands back what it took in its last moments, for the
        others; a worker that finished has nothing in flight."""
        try:
            if reason != "finished":
                for request in self._taken.values():
                    self.queue.push(request)
            self.server.delete(self.ledger)
        except _redis_errors() as exc:
            logger.error("optout: could not hand back %d unfinished request(s): %s", len(self._taken), exc)
        self._taken.clear()
        self._finishing.clear()
        super().close(reason)

    def has_pending_requests(self) -> bool:
        if self._held:
            return True
        try:
            return bool(super().has_pending_requests())
        except _redis_errors() as exc:
            self._outage(exc)
            return True  # unknown: not done


class FleetIdle:
    """Heartbeats of busy workers, and "do not close yet" while the fleet has work."""

    def __init__(self, crawler: Crawler) -> None:
        from scrapy_redis.connection import get_redis_from_settings

        settings = crawler.settings
        crawl_id = settings.get("OPTOUT_CRAWL_ID")
        if not crawl_id:
            raise NotConfigured("OPTOUT_CRAWL_ID is not set (not a distributed crawl)")
        self.crawler = crawler
        self.server = get_redis_from_settings(settings)
        self.key = f"{crawl_id}:busy"
        self.alive_key = f"{crawl_id}:alive"
        self.worker = worker_name()
        self.grace = settings.getfloat("OPTOUT_FLEET_GRACE", 3.0)
        self._idle_since: float | None = None
        self._loop: Any = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_idle, signal=signals.spider_idle)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FleetIdle:
        return cls(crawler)

    def spider_opened(self, spider: Any) -> None:
        from twisted.internet import task

        self._loop = task.LoopingCall(self.beat)
        self._loop.start(1.0, now=True)

    def _now_ms(self) -> int:
        seconds, micros = self.server.time()  # Redis's clock: workers on many machines agree on it
        return int(seconds) * 1000 + int(micros) // 1000

    def beat(self) -> None:
        """Say "busy" while this worker has requests in flight; pull new work if it sits idle."""
        engine = self.crawler.engine
        if engine is None or engine.spider is None:
            return
        idle = engine.spider_is_idle()
        if not idle:
            self._idle_since = None
        slot = engine._slot
        scheduler = slot.scheduler if slot is not None else None
        try:
            now = self._now_ms()
            self.server.zadd(self.alive_key, {self.worker: now + int(FLEET_ALIVE_TTL * 1000)})
            if idle:
                self.server.zrem(self.key, self.worker)
            else:
                self.server.zadd(self.key, {self.worker: now + int(FLEET_BUSY_TTL * 1000)})
            if isinstance(scheduler, FleetScheduler):
                recorder = getattr(getattr(self.crawler, "_optout_state", None), "recorder", None)
                marks = (recorder.queued, recorder.written) if recorder is not None else (0, 0)
                scheduler.settle(slot.inprogress, *marks)  # type: ignore[union-attr]
                alive = {m.decode() for m in self.server.zrangebyscore(self.alive_key, now, "+inf")}
                if scheduler.recover(alive):
                    idle = False
        except _redis_errors() as exc:
            logger.debug("optout: fleet heartbeat failed: %s", exc)
        if idle:
            # Scrapy looks at the scheduler every 5 s when idle; another worker may have queued links since.
            engine._slot.nextcall.schedule()  # type: ignore[union-attr]

    def fleet_busy(self) -> bool:
        """Another worker is still fetching, or holds requests it took (a dead worker's are queued again first),
        or we cannot tell: all count as busy."""
        try:
            now = self._now_ms()
            self.server.zremrangebyscore(self.key, 0, now)
            others = [m for m in self.server.zrange(self.key, 0, -1) if m.decode() != self.worker]
            engine = self.crawler.engine
            scheduler = engine._slot.scheduler if engine is not None and engine._slot is not None else None
            if isinstance(scheduler, FleetScheduler):
                alive = {m.decode() for m in self.server.zrangebyscore(self.alive_key, now, "+inf")}
                scheduler.recover(alive)
                others += [
                    k
                    for k in self.server.scan_iter(f"{scheduler.crawl_id}:inflight:*")
                    if k.decode() != scheduler.ledger
                ]
        except _redis_errors():
            return True
        return bool(others)

    def spider_idle(self, spider: Any) -> None:
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
        engine = self.crawler.engine
        scheduler = engine._slot.scheduler if engine is not None and engine._slot is not None else None
        if scheduler is not None and scheduler.has_pending_requests():
            self._idle_since = None
            raise DontCloseSpider
        if now - self._idle_since < self.grace or self.fleet_busy():
            raise DontCloseSpider
        logger.info("optout: fleet crawl %s has no work left; this worker stops", self.key.rsplit(":", 1)[0])

    def spider_closed(self, spider: Any) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        try:
            self.server.zrem(self.key, self.worker)
            self.server.zrem(self.alive_key, self.worker)
        except _redis_errors():
            pass
