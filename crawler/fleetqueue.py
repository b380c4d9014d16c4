"""The scrapy-redis scheduler of a fleet worker (see crawler/fleet.py for the whole picture): rides out a Redis
restart, and keeps what the worker has taken in an in-flight hash so that a killed worker's requests are queued
again by a survivor. Needs the ``redis`` extra (scrapy-redis). The add-on's side of a fleet (shared policies,
fleet-wide Crawl-delay) is middlewares/rediscache.py and middlewares/fleetdelay.py."""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError
from scrapy.utils.misc import load_object
from scrapy_redis import defaults as redis_defaults
from scrapy_redis.connection import get_redis_from_settings
from scrapy_redis.dupefilter import RFPDupeFilter
from scrapy_redis.queue import PriorityQueue
from scrapy_redis.scheduler import Scheduler

from crawler.fleet import _redis_errors, worker_name
from middlewares.defaults import DEFAULT_CRAWL_ID

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)

# Add a request to the dupefilter (unless ARGV[1] is empty: dont_filter) and, if it was new, to the queue.
_ENQUEUE = """
if ARGV[1] ~= '' and redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

# The highest-priority request of scrapy-redis's PriorityQueue (a sorted set), moved into the in-flight hash.
_TAKE = """
local top = redis.call('ZRANGE', KEYS[1], 0, 0)
if #top == 0 then return false end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, 0)
redis.call('HSET', KEYS[2], redis.sha1hex(top[1]), top[1])
redis.call('SADD', KEYS[3], ARGV[1])
return top[1]
"""


def _without_ping(settings: BaseSettings) -> BaseSettings:
    """The same Redis settings with a client class whose ``ping`` is skipped, to build the scheduler with during
    an outage (its client is then replaced by an ordinary one, which connects when first used)."""
    params = settings.getdict("REDIS_PARAMS")
    base = params.get("redis_cls", redis_defaults.REDIS_CLS)
    base = load_object(base) if isinstance(base, str) else base
    params["redis_cls"] = type(f"Unpinged{base.__name__}", (base,), {"ping": lambda self, **kwargs: True})
    copy = settings.copy()
    copy.frozen = False  # a crawler's settings are frozen, and so is their copy
    copy.set("REDIS_PARAMS", params)
    return copy


class FleetScheduler(Scheduler):  # type: ignore[misc]  # scrapy-redis ships no type hints: Scheduler is Any
    """scrapy-redis's Scheduler that holds requests in memory while Redis is away instead of failing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: deque[Request] = deque()
        self._down = False
        self._stats: Any = None
        self._taken: dict[str, Request] = {}  # SHA-1 of the serialised request -> request, while Scrapy has it
        self._take_script: Any = None
        self._enqueue_script: Any = None
        self._finishing: dict[str, int] = {}  # finished, waiting for their records to be written
        self._flush_owed = False  # SCHEDULER_FLUSH_ON_START could not flush: done before anything is queued
        self.crawl_id = DEFAULT_CRAWL_ID
        self.worker = worker_name()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> FleetScheduler:
        try:
            instance: FleetScheduler = cls.from_settings(crawler.settings)
        except _redis_errors() as exc:  # scrapy-redis pings Redis here, to fail early: this worker waits (see open)
            instance = cls.from_settings(_without_ping(crawler.settings))
            instance.server = get_redis_from_settings(crawler.settings)
            instance._outage(exc)
        # Counted here: scrapy-redis passes ``spider=`` to the stats, which Scrapy 2.13+ warns about every time.
        instance._stats = crawler.stats
        instance.crawl_id = crawler.settings.get("OPTOUT_CRAWL_ID") or instance.crawl_id
        return instance

    # scrapy-redis (0.9) serialises requests only through its queue's private methods; the ledger must hold the
    # same bytes the queue stores, so these two are the one place that reaches in.
    def _encode(self, request: Request) -> bytes:
        data: bytes = self.queue._encode_request(request)
        return data

    def _decode(self, data: bytes) -> Request:
        request: Request = self.queue._decode_request(data)
        return request

    @property
    def ledger(self) -> str:
        return self.ledger_of(self.worker)

    def ledger_of(self, worker: str) -> str:
        return f"{self.crawl_id}:inflight:{worker}"

    @property
    def holders(self) -> str:
        """The set of workers that may hold requests in flight (no SCAN of a keyspace the cache shares)."""
        return f"{self.crawl_id}:holders"

    def _outage(self, exc: BaseException) -> None:
        if not self._down:
            logger.warning("optout: Redis scheduler unreachable (%s); holding requests until it is back", exc)
            self._down = True

    def open(self, spider: Any) -> None:
        """A worker that starts while Redis is away (down, restarting, or gone between ``optout crawl``'s check
        and here) waits for it as a running worker does: scrapy-redis's ``open`` raised into Scrapy's engine,
        which then failed to close a spider that never opened and reported only "Engine slot not assigned"."""
        try:
            super().open(spider)  # the queue and dupefilter objects connect lazily; only the flush and count talk
        except _redis_errors() as exc:
            self._outage(exc)
            self._flush_owed = bool(self.flush_on_start)

    def _flush_held(self) -> None:
        if self._flush_owed:
            self.flush()
            self._flush_owed = False
        while self._held:
            self._enqueue(self._held[0])
            self._held.popleft()
        if self._down:
            logger.warning("optout: Redis scheduler reachable again")
            self._down = False

    def enqueue_request(self, request: Request) -> bool:
        try:
            self._flush_held()
            queued = self._enqueue(request)
        except _redis_errors() as exc:
            self._outage(exc)
            self._held.append(request)
            return True
        if queued and self._stats is not None:
            self._stats.inc_value("scheduler/enqueued/redis")
        return queued

    def _enqueue(self, request: Request) -> bool:
        """Mark seen and queue in one step: a worker killed between scrapy-redis's two commands would leave a
        URL in the dupefilter that is in no queue, never to be crawled."""
        if not isinstance(self.queue, PriorityQueue) or not isinstance(self.df, RFPDupeFilter):
            return bool(super().enqueue_request(request))  # other classes: scrapy-redis's two steps
        if self._enqueue_script is None:
            self._enqueue_script = self.server.register_script(_ENQUEUE)
        seen = "" if request.dont_filter else self.df.request_fingerprint(request)
        data = self._encode(request)
        queued = bool(self._enqueue_script(keys=[self.df.key, self.queue.key], args=[seen, -request.priority, data]))
        if not queued:
            self.df.log(request, self.spider)
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
        request: Request = self._decode(data)
        self._taken[hashlib.sha1(data).hexdigest()] = request
        return request

    def _take(self) -> bytes | None:
        """Pop the next request and note it in this worker's in-flight hash in one step (a worker killed between
        the two would otherwise lose it), keyed by the SHA-1 of its serialised form."""
        if isinstance(self.queue, PriorityQueue):
            if self._take_script is None:
                self._take_script = self.server.register_script(_TAKE)
            keys = [self.queue.key, self.ledger, self.holders]
            taken: bytes | None = self._take_script(keys=keys, args=[self.worker])
            return taken
        request = super().next_request()  # another queue class: three steps
        if request is None:
            return None
        data: bytes = self._encode(request)
        self.server.hset(self.ledger, hashlib.sha1(data).hexdigest(), data)
        self.server.sadd(self.holders, self.worker)
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
        if not self._taken:  # the in-flight hash is gone with its last field: no longer a holder
            self.server.srem(self.holders, self.worker)

    def recover(self, alive: set[str]) -> int:
        """Put back in the queue what dead workers had taken; returns how many requests."""
        recovered = 0
        for member in self.server.smembers(self.holders):
            worker = member.decode()
            if worker in alive or worker == self.worker:
                continue
            moving = f"{self.crawl_id}:recovering:{worker}:{self.worker}"
            try:
                self.server.rename(self.ledger_of(worker), moving)  # one survivor wins; the others find it gone
            except ResponseError:  # "no such key": nothing in flight, or another survivor got it first
                self.server.srem(self.holders, worker)
                continue
            taken = self.server.hvals(moving)
            for data in taken:
                self.queue.push(self._decode(data))
            self.server.delete(moving)
            self.server.srem(self.holders, worker)
            recovered += len(taken)
            logger.warning(
                "optout: worker %s stopped beating; %d request(s) it had taken are queued again", worker, len(taken)
            )
        return recovered

    def others_in_flight(self) -> bool:
        """Whether another worker holds requests it took (call ``recover`` first: dead holders are cleared)."""
        return any(m.decode() != self.worker for m in self.server.smembers(self.holders))

    def close(self, reason: str) -> None:
        """A worker stopped early (Ctrl-C, a page limit) hands back what it took in its last moments, for the
        others; a worker that finished has nothing in flight."""
        try:
            if reason != "finished":
                for request in self._taken.values():
                    self.queue.push(request)
            self.server.delete(self.ledger)
            self.server.srem(self.holders, self.worker)
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
