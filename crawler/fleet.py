"""Distributed crawls: many workers, one crawl, on scrapy-redis (scheduler queue and dupefilter in Redis).

What scrapy-redis leaves to us, for a crawl that must finish and stay compliant:

* ``FleetAddon`` (``ADDONS = {"crawler.fleet.FleetAddon": 10}``, in the compliant crawler's settings already)
  turns a worker into a fleet member when ``OPTOUT_FLEET_REDIS`` is set, and does nothing otherwise.
* ``FleetScheduler`` (crawler/fleetqueue.py) rides out a Redis restart: scrapy-redis's scheduler raises into
  Scrapy's engine when Redis is unreachable, which stops the worker. Here a request that cannot be queued is held
  in memory and queued once Redis answers again, and "no request available" is the answer while it does not.
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
store (middlewares/rediscache.py, with middlewares/fleetdelay.py for the Crawl-delay gate); the registry side is
PostgreSQL's sequencing protocol (optout_registry). The design and its measurements: docs/distributed.md.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import DontCloseSpider, NotConfigured

from middlewares.defaults import DEFAULT_CRAWL_ID, default
from middlewares.scrapyinternals import engine_running, in_progress, wake
from middlewares.state import OptOutState

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


class FleetAddon:
    """``OPTOUT_FLEET_REDIS = "redis://host:port/db"`` (and ``OPTOUT_CRAWL_ID`` to name the crawl) makes this
    process one worker of a distributed crawl: scrapy-redis's queue and dupefilter (kept when a worker stops,
    since the others still use them), the add-on's Redis policy cache, fleet heartbeats, and no checkpoint
    signing unless ``OPTOUT_REGISTRY_INTEGRATE`` says so. Settings of the project or the command line win."""

    def update_settings(self, settings: Any) -> None:
        redis_url = settings.get("OPTOUT_FLEET_REDIS")
        if not redis_url:
            return
        try:
            import scrapy_redis  # noqa: F401
        except ImportError:
            raise NotConfigured(
                "OPTOUT_FLEET_REDIS is set but scrapy-redis is not installed: pip install 'optout-toolkit[redis]'"
            ) from None
        crawl_id = settings.get("OPTOUT_CRAWL_ID") or DEFAULT_CRAWL_ID
        for name, value in {
            "SCHEDULER": "crawler.fleetqueue.FleetScheduler",
            "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
            "SCHEDULER_PERSIST": True,
            "SCHEDULER_QUEUE_KEY": f"{crawl_id}:requests",
            "SCHEDULER_DUPEFILTER_KEY": f"{crawl_id}:dupefilter",
            "REDIS_URL": redis_url,
            "OPTOUT_CRAWL_ID": crawl_id,
            "OPTOUT_CACHE_URL": redis_url,
            "OPTOUT_REGISTRY_INTEGRATE": False,
            "JOBDIR": None,  # the queue lives in Redis; resuming is joining the crawl again
        }.items():
            settings.set(name, value, "addon")
        settings.set_in_component_priority_dict("EXTENSIONS", "crawler.fleet.FleetIdle", 510)


FLEET_BUSY_TTL = 10.0
FLEET_ALIVE_TTL = 10.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _redis_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import ConnectionError, TimeoutError

    return (ConnectionError, TimeoutError, OSError)


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
        self.grace = settings.getfloat("OPTOUT_FLEET_GRACE", default("OPTOUT_FLEET_GRACE"))
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
        # While the engine closes the spider, its slot is gone before its spider is: a beat in between would
        # raise "Engine slot not assigned" (seen under load, when closing takes longer) and log an error.
        if not engine_running(engine):
            return
        idle = engine.spider_is_idle()
        if not idle:
            self._idle_since = None
        scheduler = self._scheduler()
        try:
            now = self._now_ms()
            self.server.zadd(self.alive_key, {self.worker: now + int(FLEET_ALIVE_TTL * 1000)})
            if idle:
                self.server.zrem(self.key, self.worker)
            else:
                self.server.zadd(self.key, {self.worker: now + int(FLEET_BUSY_TTL * 1000)})
            if hasattr(scheduler, "settle"):  # crawler.fleetqueue.FleetScheduler
                state = OptOutState.current(self.crawler)
                recorder = state.recorder if state is not None else None
                marks = (recorder.queued, recorder.handled) if recorder is not None else (0, 0)
                scheduler.settle(in_progress(engine), *marks)
                if self._recover_dead(scheduler, now):
                    idle = False
        except _redis_errors() as exc:
            logger.debug("optout: fleet heartbeat failed: %s", exc)
        if idle:
            # Scrapy looks at the scheduler every 5 s when idle; another worker may have queued links since.
            wake(engine)

    def _scheduler(self) -> Any:
        engine = self.crawler.engine
        return engine.scheduler if engine is not None else None

    def _recover_dead(self, scheduler: Any, now: int) -> int:
        """Queue again what workers that stopped beating had taken (crawler.fleetqueue.FleetScheduler.recover)."""
        alive = {m.decode() for m in self.server.zrangebyscore(self.alive_key, now, "+inf")}
        return int(scheduler.recover(alive))

    def fleet_busy(self) -> bool:
        """Another worker is still fetching, or holds requests it took (a dead worker's are queued again first),
        or we cannot tell: all count as busy."""
        try:
            now = self._now_ms()
            self.server.zremrangebyscore(self.key, 0, now)
            if any(m.decode() != self.worker for m in self.server.zrange(self.key, 0, -1)):
                return True
            scheduler = self._scheduler()
            if hasattr(scheduler, "recover"):
                self._recover_dead(scheduler, now)
                return bool(scheduler.others_in_flight())
        except _redis_errors():
            return True
        return False

    def spider_idle(self, spider: Any) -> None:
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
        scheduler = self._scheduler()
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
