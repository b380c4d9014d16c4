"""Feeding the spider's start requests to Scrapy only while its downloader can take more.

Scrapy (2.13+) reads ``Spider.start()`` without pause whenever the downloader is full, so a crawl with many seeds
moves all of them into the scheduler at once. Its default scheduler queue (``DownloaderAwarePriorityQueue``) then
scans every download slot with pending requests on each pop: with 10,000 one-page origins, 10,000 slots per
request, and the crawl turns quadratic. Scrapy's own robots.txt middleware rarely fills the downloader, but the
add-on fetches robots.txt, tdmrep.json and ai.txt through it before an origin's first request, so it does, and
the whole start list lands in the scheduler. In bench/bench_crawl.py (10,000 one-page origins) that made 60% of
the crawl's time ``pqueues.py``; waiting here instead took it from 37 to 131 pages/s and 286 to 233 MB peak.

This is Scrapy's documented lazy-start pattern (``ExecutionEngine.needs_backout``): while the downloader or the
scraper is saturated, the next start request waits in the spider, not in the scheduler. Requests the spider yields
from responses are not affected. ``OPTOUT_LAZY_START = False`` turns it off.

It starts holding back only after the first ``OPTOUT_LAZY_START_AFTER`` start requests (default 256), which go
straight to the scheduler as Scrapy would send them: a few hundred pending origins cost its queue little, while
holding back every seed of a small list changes the order the whole crawl takes its pages in, and that cost a crawl
of 100 origins of 100 pages 5 % of its throughput and 5 % more CPU a page (``bench/bench_crawl.py --against`` the
add-on that held back from the first seed; 10,000 one-page origins were as fast either way).

While they wait, the next ``OPTOUT_PREFETCH`` start requests (default: ``CONCURRENT_REQUESTS``) have their
origin's policy loaded ahead, by the same rules (robots.txt first, then what it allows, under its Crawl-delay).
Otherwise a first request to a new origin would hold one of the downloader's ``CONCURRENT_REQUESTS`` places for
two round trips (robots.txt, then the policy files) before its own, and a crawl of many one-page origins would be
bound by that wait rather than by the network or the CPU. Blocklisted origins are not contacted.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import NotConfigured
from scrapy.http import Request
from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future
from twisted.internet.task import deferLater

from middlewares.defaults import default
from middlewares.engine import origin_of
from middlewares.state import OptOutState

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

POLL = 0.01  # seconds between looks at a saturated engine (each look is a few microseconds)

logger = logging.getLogger(__name__)


class LazyStartMiddleware:
    """The spider middleware that passes start requests on, after the first ``OPTOUT_LAZY_START_AFTER``, only while
    the engine can take more, loading the policy of the next ``OPTOUT_PREFETCH`` origins meanwhile (see the module
    docstring)."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.state = OptOutState.of(crawler)
        self.prefetch = self.state.config.prefetch
        self.after = self.state.config.lazy_start_after

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> LazyStartMiddleware:
        if not crawler.settings.getbool("OPTOUT_LAZY_START", default("OPTOUT_LAZY_START")):
            raise NotConfigured("OPTOUT_LAZY_START is False")
        return cls(crawler)

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """The spider's start requests and items in their order, each after the first ``OPTOUT_LAZY_START_AFTER``
        held back while the downloader or scraper is saturated; nothing is dropped."""
        from twisted.internet import reactor

        upcoming: deque[Any] = deque()
        passed = 0
        source = start.__aiter__()
        more = True
        while True:
            while more and len(upcoming) <= self.prefetch:
                try:
                    item_or_request = await source.__anext__()
                except StopAsyncIteration:
                    more = False
                    break
                upcoming.append(item_or_request)
                self._warm(item_or_request)
            if not upcoming:
                return
            engine = self.crawler.engine
            while passed >= self.after and engine is not None and engine.running and engine.needs_backout():
                await maybe_deferred_to_future(deferLater(reactor, POLL))
            passed += 1
            yield upcoming.popleft()

    def _warm(self, request: Any) -> None:
        """Start loading the policy of a request's origin, unless it is known, blocklisted or not HTTP."""
        if not self.prefetch or not isinstance(request, Request) or not request.url.startswith(("http:", "https:")):
            return
        blocklist = self.state.config.blocklist
        if blocklist is not None and blocklist.signal(request.url) is not None:
            return
        origin = origin_of(request.url)
        if self.state.cache.cached(origin) is None:
            loading = deferred_from_coro(self.state.cache.get(origin))
            loading.addErrback(lambda f: logger.debug("optout: prefetching the policy of %s: %s", origin, f.value))
