"""One object of a kind per running crawler, kept beside the crawler rather than bolted onto it.

Scrapy's ``Crawler`` has no slot for a component's shared state; setting ``crawler._something`` works until Scrapy
(or another add-on) uses the same name, hides the dependency from type checkers and readers, and has to be read back
through ``getattr(..., None)``. A ``PerCrawler`` is a weak mapping from crawler to object: lookups are typed, a
finished crawler's objects go away with it, and each kind of object has one owner that says what it holds.
Components Scrapy builds itself are found through Scrapy's own lookups instead (``crawler.get_extension``,
``crawler.engine.scheduler``).
"""

from __future__ import annotations

from typing import Generic, TypeVar
from weakref import WeakKeyDictionary

from scrapy.crawler import Crawler

T = TypeVar("T")


class PerCrawler(Generic[T]):
    """A typed, weak ``crawler -> object`` map (see the module docstring)."""

    def __init__(self) -> None:
        self._objects: WeakKeyDictionary[Crawler, T] = WeakKeyDictionary()

    def get(self, crawler: Crawler) -> T | None:
        """The crawler's object, None if it has none yet."""
        return self._objects.get(crawler)

    def set(self, crawler: Crawler, value: T) -> None:
        """Attach ``value`` to the crawler, replacing any earlier one; it is released with the crawler."""
        self._objects[crawler] = value
