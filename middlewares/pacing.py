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
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.task import deferLater

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

POLL = 0.01  # seconds between looks at a saturated engine (each look is a few microseconds)


class LazyStartMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> LazyStartMiddleware:
        if not crawler.settings.getbool("OPTOUT_LAZY_START", True):
            raise NotConfigured("OPTOUT_LAZY_START is False")
        return cls(crawler)

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        from twisted.internet import reactor

        async for item_or_request in start:
            engine = self.crawler.engine
            while engine is not None and engine.running and engine.needs_backout():
                await maybe_deferred_to_future(deferLater(reactor, POLL))
            yield item_or_request
