"""Keeping CPython's cyclic garbage collector off the objects a crawl starts with, and running it less often.

Before its first request a Scrapy process with the add-on holds some 130,000 container objects (modules, classes,
settings, middlewares, parsers' tables) that live until it exits. Every full collection walks all of them, about
twenty times in a 10,000-page crawl: in bench/bench_crawl.py that was 1.1 s of a 17 s crawl's CPU, 0.3 s more than
for the same spider without the add-on (whose modules are part of those objects). ``gc.freeze()`` once the spider
is open moves them into a permanent generation that collections skip; everything created afterwards is collected
as before. The price is that a reference cycle among those start-up objects that became garbage later would never
be freed, which for objects that live as long as the process costs nothing. ``OPTOUT_GC_FREEZE = False`` turns it
off.

A crawl allocates thousands of objects per page (requests, responses, Deferreds, selectors), nearly all freed by
reference counting; with Python's default threshold the young generation is still collected every 700 allocations,
several times per page, about 7 % of a plain Scrapy crawl's CPU (bench_crawl.py). ``OPTOUT_GC_THRESHOLD`` (default
10,000, 20, 20) makes collections rarer from the moment the crawler is built, before the middlewares load, and puts
the previous thresholds back when the spider closes; garbage in reference cycles then lives a few thousand
allocations longer. An empty value leaves the thresholds alone.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.exceptions import NotConfigured

from middlewares.defaults import default

if TYPE_CHECKING:
    from scrapy.crawler import Crawler


def _thresholds(value: Any) -> tuple[int, ...] | None:
    """``OPTOUT_GC_THRESHOLD`` as ``gc.set_threshold`` arguments (a list, a tuple or "10000,20,20"), or None.
    ValueError (what middlewares.config's ConfigError is, not imported here: the extension also serves crawls
    without the add-on) names the setting when it is neither."""
    if value in (None, "", (), []):
        return None
    parts = value.split(",") if isinstance(value, str) else value
    try:
        numbers = tuple(int(part) for part in parts)
    except (TypeError, ValueError):
        raise ValueError(f"OPTOUT_GC_THRESHOLD must be one to three whole numbers, not {value!r}") from None
    if not 1 <= len(numbers) <= 3 or any(n < 0 for n in numbers):
        raise ValueError(f"OPTOUT_GC_THRESHOLD must be one to three whole numbers >= 0, not {value!r}")
    return numbers


class GcFreeze:
    """The extension that sets the collector's thresholds for the crawl and freezes the start-up objects once the
    spider is open (see the module docstring)."""

    def __init__(self, freeze: bool, thresholds: tuple[int, ...] | None) -> None:
        self.freeze = freeze
        self.thresholds = thresholds
        self.previous: tuple[int, ...] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> GcFreeze:
        settings = crawler.settings
        freeze = settings.getbool("OPTOUT_GC_FREEZE", default("OPTOUT_GC_FREEZE"))
        thresholds = _thresholds(settings.get("OPTOUT_GC_THRESHOLD", default("OPTOUT_GC_THRESHOLD")))
        if not freeze and thresholds is None:
            raise NotConfigured("OPTOUT_GC_FREEZE is False and OPTOUT_GC_THRESHOLD is empty")
        extension = cls(freeze, thresholds)
        if thresholds is not None:  # now: extensions are built before the middlewares load
            extension.previous = gc.get_threshold()
            gc.set_threshold(*thresholds)
            crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        if freeze:
            crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        return extension

    def spider_opened(self, spider: Any = None) -> None:
        """Free what start-up left as garbage, then freeze everything still alive."""
        gc.collect()  # whatever start-up left as garbage is freed, not frozen
        gc.freeze()

    def spider_closed(self, spider: Any = None) -> None:
        """Put back the thresholds the process had before the crawl."""
        if self.previous is not None:
            gc.set_threshold(*self.previous)
            self.previous = None
