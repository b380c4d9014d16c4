"""Crawl-delay held across a fleet of workers: the Scrapy side of the Redis gate (middlewares/rediscache.py).

On one machine Scrapy's download slot spaces requests (see OptOutAccessMiddleware). Across workers the spacing
must come from one clock, so each request to a Crawl-delay origin asks Redis for its turn. A granted request must
then leave at once: if it queued behind another request of the same origin in this worker's slot, it would start
later than its turn and the next worker's turn could come too soon. So a worker holds one *lane* per origin: at
most one request per origin between "waiting for its turn" and "left the downloader". When the request actually
reaches the downloader, the next-allowed time is moved to a full delay from that moment.

The rest of the fleet's code: middlewares/rediscache.py (the Redis store and gate this drives), crawler/fleet.py and
crawler/fleetqueue.py (joining a fleet, the shared queue, heartbeats), docs/distributed.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from twisted.internet.defer import DeferredLock

from middlewares.rediscache import GATE_MARGIN

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request

    from middlewares.rediscache import RedisPolicyStore

logger = logging.getLogger(__name__)


class FleetCrawlDelay:
    """This worker's side of the fleet-wide Crawl-delay: one lane per origin, a turn from the Redis gate, and the next
    turn moved on when the request actually reaches the downloader (see the module docstring)."""

    def __init__(self, crawler: Crawler, store: RedisPolicyStore) -> None:
        self.store = store
        self.stats = crawler.stats
        self._lanes: dict[str, DeferredLock] = {}
        self._held: dict[int, tuple[str, float]] = {}  # id(request) -> (origin, delay)
        crawler.signals.connect(self._reached_downloader, signal=signals.request_reached_downloader)
        crawler.signals.connect(self._left_downloader, signal=signals.request_left_downloader)

    async def wait(self, request: Request, origin: str, delay: float, after: float = 0.0) -> None:
        """Hold the origin's lane, then wait for the fleet's turn, and at least ``delay`` after ``after`` (when
        robots.txt was fetched, a request the gate does not see). Raises CacheUnavailable (lane released)."""
        lane = self._lanes.get(origin)
        if lane is None:
            lane = self._lanes[origin] = DeferredLock()
        await maybe_deferred_to_future(lane.acquire())
        self._held[id(request)] = (origin, delay)
        try:
            waited = max(0.0, after + delay + GATE_MARGIN - time.time())
            if waited:
                await asyncio.sleep(waited)
            waited += await self.store.wait_turn(origin, delay)
        except BaseException:
            self.release(request)
            raise
        if waited:
            self.stats.inc_value("optout/crawl_delay/waits")
            self.stats.inc_value("optout/crawl_delay/waited_ms", int(waited * 1000))

    def release(self, request: Request) -> None:
        """Free the lane a request holds (idempotent: several signals and hooks may say it is done)."""
        held = self._held.pop(id(request), None)
        if held is None:
            return
        origin = held[0]
        lane = self._lanes[origin]
        lane.release()
        if not lane.locked and not lane.waiting:
            del self._lanes[origin]

    def _reached_downloader(self, request: Request, spider: Any = None) -> None:
        held = self._held.get(id(request))
        if held is None:
            return
        d = deferred_from_coro(self.store.sent(*held))
        d.addErrback(lambda f: logger.warning("optout: could not note a request to %s: %s", held[0], f.value))

    def _left_downloader(self, request: Request, spider: Any = None) -> None:
        self.release(request)
