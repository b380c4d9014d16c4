"""Crawl-delay held across a fleet of workers: the Scrapy side of the Redis gate (middlewares/rediscache.py).

On one machine Scrapy's download slot spaces requests, counting from the end of each download (OptOutState.pace).
Across workers the spacing must come from one clock, so each request to a Crawl-delay origin asks Redis for its
turn and holds it until its answer has arrived (or it failed): the next request, from whichever worker, starts a
full delay after that, so nothing between grant and server (a busy reactor, a slow connect) can bring it early. A
granted request must leave at once, so a worker holds one *lane* per origin: at most one request per origin
between "waiting for its turn" and "answered".

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

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request

    from middlewares.rediscache import RedisPolicyStore

logger = logging.getLogger(__name__)

HOLD_SLACK = 5.0  # seconds a turn is held beyond the request's download timeout
# Added to the first request's wait after robots.txt, whose fetch time is a worker's wall clock: workers' clocks
# differ a little. The Redis gate itself runs on Redis's clock and counts from the end of each answer.
GATE_MARGIN = 0.05


class FleetCrawlDelay:
    """This worker's side of the fleet-wide Crawl-delay: one lane per origin, and a turn from the Redis gate held
    until the request is answered (see the module docstring)."""

    def __init__(self, crawler: Crawler, store: RedisPolicyStore) -> None:
        self.store = store
        self.stats = crawler.stats
        # A granted request holds its origin's turn for its download timeout + HOLD_SLACK at most: its download,
        # whatever ends it, comes first; a worker that dies holding the turn blocks the origin for that long.
        self.timeout = crawler.settings.getfloat("DOWNLOAD_TIMEOUT")
        self._lanes: dict[str, DeferredLock] = {}
        # id(request) -> (origin, delay, grant token, the turn's end if it is never answered); no token: not granted
        self._held: dict[int, tuple[str, float, str | None, asyncio.TimerHandle | None]] = {}
        crawler.signals.connect(self._left_downloader, signal=signals.request_left_downloader)

    async def wait(self, request: Request, origin: str, delay: float, after: float = 0.0) -> None:
        """Hold the origin's lane, then wait for the fleet's turn, and at least ``delay`` after ``after`` (when
        robots.txt was fetched, a request the gate does not see). Raises CacheUnavailable (lane released)."""
        lane = self._lanes.get(origin)
        if lane is None:
            lane = self._lanes[origin] = DeferredLock()
        await maybe_deferred_to_future(lane.acquire())
        self._held[id(request)] = (origin, delay, None, None)
        hold = float(request.meta.get("download_timeout", self.timeout)) + HOLD_SLACK
        try:
            waited = max(0.0, after + delay + GATE_MARGIN - time.time())
            if waited:
                await asyncio.sleep(waited)
            token, gated = await self.store.wait_turn(origin, delay, hold=hold)
        except BaseException:
            self.release(request)
            raise
        # A request that never reaches the downloader and never fails (a later middleware's process_request
        # returned another request instead) would hold the turn and this worker's lane for good.
        overdue = asyncio.get_running_loop().call_later(hold, self._expire, request, origin, hold)
        self._held[id(request)] = (origin, delay, token, overdue)
        waited += gated
        if waited:
            self.stats.inc_value("optout/crawl_delay/waits")
            self.stats.inc_value("optout/crawl_delay/waited_ms", int(waited * 1000))

    def release(self, request: Request) -> None:
        """The request is answered or failed: end its turn, then free its lane (idempotent: several signals and hooks
        may say it is done). The lane waits for the turn's end, so this worker's next request sees it."""
        held = self._held.pop(id(request), None)
        if held is None:
            return
        origin, delay, token, overdue = held
        if overdue is not None:
            overdue.cancel()
        if token is None:  # never granted
            self._free(origin)
            return
        deferred_from_coro(self._end_turn(origin, delay, token))

    async def _end_turn(self, origin: str, delay: float, token: str) -> None:
        try:
            await self.store.done(origin, delay, token)
        except Exception as exc:  # CacheUnavailable: the turn is let go when its hold expires
            logger.warning("optout: could not end the Crawl-delay turn of %s: %s", origin, exc)
        finally:
            self._free(origin)

    def _expire(self, request: Request, origin: str, hold: float) -> None:
        self.stats.inc_value("optout/crawl_delay/overdue")
        logger.warning(
            "optout: a request to %s held the fleet's Crawl-delay turn for %.0f s without an answer (did a downloader "
            "middleware replace it?); the turn ends now",
            origin,
            hold,
        )
        self.release(request)

    def _free(self, origin: str) -> None:
        lane = self._lanes[origin]
        lane.release()
        if not lane.locked and not lane.waiting:
            del self._lanes[origin]

    def _left_downloader(self, request: Request, spider: Any = None) -> None:
        self.release(request)
