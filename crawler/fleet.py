"""Distributed crawls: many workers, one crawl, on scrapy-redis (scheduler queue and dupefilter in Redis).

What scrapy-redis leaves to us, for a crawl that must finish and stay compliant:

* ``FleetScheduler`` rides out a Redis restart: scrapy-redis's scheduler raises into Scrapy's engine when Redis
  is unreachable, which stops the worker. Here a request that cannot be queued is held in memory and queued once
  Redis answers again, and "no request available" is the answer while it does not.
* ``FleetIdle`` keeps a worker alive while the fleet still has work: with a shared queue, a worker whose queue
  view is empty for a moment is not done while another worker is still fetching pages whose links will refill it.
  Each busy worker keeps a heartbeat in a sorted set (Redis clock); a worker closes when the queue is empty, no
  other worker has beaten for ``FLEET_BUSY_TTL`` seconds, and it has itself been idle for ``OPTOUT_FLEET_GRACE``.

The policy side (one robots.txt fetch per origin for the fleet, fleet-wide Crawl-delay) is the add-on's Redis
store (middlewares/rediscache.py); the registry side is PostgreSQL's sequencing protocol (optout_registry).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import DontCloseSpider, NotConfigured
from scrapy_redis.scheduler import Scheduler

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request

logger = logging.getLogger(__name__)

FLEET_BUSY_TTL = 10.0


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

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FleetScheduler:
        instance = cls.from_settings(crawler.settings)
        # Counted here: scrapy-redis passes ``spider=`` to the stats, which Scrapy 2.13+ warns about every time.
        instance._stats = crawler.stats
        return instance

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
            request: Request | None = super().next_request()
        except _redis_errors() as exc:
            self._outage(exc)
            return None
        if request is not None and self._stats is not None:
            self._stats.inc_value("scheduler/dequeued/redis")
        return request

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
        try:
            if idle:
                self.server.zrem(self.key, self.worker)
            else:
                self.server.zadd(self.key, {self.worker: self._now_ms() + int(FLEET_BUSY_TTL * 1000)})
        except _redis_errors() as exc:
            logger.debug("optout: fleet heartbeat failed: %s", exc)
        if idle:
            # Scrapy looks at the scheduler every 5 s when idle; another worker may have queued links since.
            engine._slot.nextcall.schedule()  # type: ignore[union-attr]

    def fleet_busy(self) -> bool:
        """Another worker is still fetching (or we cannot tell, which counts as busy)."""
        try:
            now = self._now_ms()
            self.server.zremrangebyscore(self.key, 0, now)
            others = [m for m in self.server.zrange(self.key, 0, -1) if m.decode() != self.worker]
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
        except _redis_errors():
            pass
