"""Keeping CPython's cyclic garbage collector off the objects a crawl starts with.

Before its first request a Scrapy process with the add-on holds some 130,000 container objects (modules, classes,
settings, middlewares, parsers' tables) that live until it exits. Every full collection walks all of them, about
twenty times in a 10,000-page crawl: in bench/bench_crawl.py that was 1.1 s of a 17 s crawl's CPU, 0.3 s more than
for the same spider without the add-on (whose modules are part of those objects). ``gc.freeze()`` once the spider
is open moves them into a permanent generation that collections skip; everything created afterwards is collected
as before. The price is that a reference cycle among those start-up objects that became garbage later would never
be freed, which for objects that live as long as the process costs nothing. ``OPTOUT_GC_FREEZE = False`` turns it
off.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured

from middlewares.defaults import default

if TYPE_CHECKING:
    from scrapy.crawler import Crawler


class GcFreeze:
    """The extension that freezes the start-up objects once the spider is open (see the module docstring)."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> GcFreeze:
        if not crawler.settings.getbool("OPTOUT_GC_FREEZE", default("OPTOUT_GC_FREEZE")):
            raise NotConfigured("OPTOUT_GC_FREEZE is False")
        extension = cls()
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        return extension

    def spider_opened(self, spider: Any = None) -> None:
        """Free what start-up left as garbage, then freeze everything still alive."""
        gc.collect()  # whatever start-up left as garbage is freed, not frozen
        gc.freeze()
