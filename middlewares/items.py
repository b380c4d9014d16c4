"""Stamping items with the decision about the page they came from, and dropping items from reserved pages.

Scrapy does not link an item to the response it was extracted from, so a spider middleware does it: every item a
callback yields is stamped with ``optout`` (the response's decision, in a compact JSON-friendly form). The item
pipeline then drops items whose source is reserved for the purpose — which happens with
``OPTOUT_ON_RESERVED = "annotate"``, where reserved pages still reach the spider so it can follow their links —
and records that exclusion.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from scrapy import Request
from scrapy.exceptions import DropItem

from middlewares.downloader import DECISION_META
from middlewares.policy import Decision, signal_json
from middlewares.state import OptOutState

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response

STAMP = "optout"
_UNSTAMPABLE: dict[int, dict[str, Any]] = {}


def stamp_of(decision: Decision) -> dict[str, Any]:
    """The compact, JSON-friendly form of a decision stamped on items as ``optout``: the verdict, its reservations,
    which protocols spoke and the errors."""
    return {
        "url": decision.url,
        "purpose": decision.purpose.value,
        "agent": decision.agent,
        "mode": decision.mode.value,
        "allowed": decision.allowed,
        "reservations": [signal_json(s) for s in decision.reservations],
        "signals": sorted({s.protocol for s in decision.signals}),
        "errors": list(decision.errors),  # notes such as "tdmrep.json not read: robots.txt disallows ..."
    }


def _adapter(item: Any) -> Any:
    """An ItemAdapter, imported on first need: most spiders yield plain dicts, and itemadapter's import pulls in
    pydantic where it is installed (~45 ms of start-up)."""
    from itemadapter import ItemAdapter

    return ItemAdapter(item)


def _stamp(item: Any, stamp: dict[str, Any]) -> None:
    if type(item) is dict:  # most spiders yield plain dicts: no adapter needed
        item[STAMP] = stamp
        return
    adapter = _adapter(item)
    try:
        adapter[STAMP] = stamp
    except KeyError:  # an Item class without an `optout` field: keep the stamp aside for the pipeline
        _UNSTAMPABLE[id(item)] = stamp


def _stamp_in(item: Any) -> dict[str, Any] | None:
    if type(item) is dict:
        return item.get(STAMP)
    adapter = _adapter(item)
    return adapter.get(STAMP) if STAMP in adapter.field_names() else None


class OptOutSpiderMiddleware:
    """Stamps every item a callback yields with the decision about its response, so the pipeline can tell items from
    reserved pages; requests pass unstamped."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> OptOutSpiderMiddleware:
        OptOutState.of(crawler)
        return cls()

    async def process_spider_output_async(
        self, response: Response, result: AsyncIterator[Any], spider: object = None
    ) -> AsyncIterator[Any]:
        """Stamp the items of an asynchronous callback's output."""
        made, stamp = False, None  # the stamp is made with the first item: many pages yield only requests
        async for obj in result:
            if not isinstance(obj, Request):
                if not made:
                    made, stamp = True, _stamp_for(response)
                if stamp is not None:
                    _stamp(obj, stamp)
            yield obj

    def process_spider_output(self, response: Response, result: Iterable[Any], spider: object = None) -> Iterable[Any]:
        """Stamp the items of a synchronous callback's output."""
        made, stamp = False, None
        for obj in result:
            if not isinstance(obj, Request):
                if not made:
                    made, stamp = True, _stamp_for(response)
                if stamp is not None:
                    _stamp(obj, stamp)
            yield obj


def _stamp_for(response: Response) -> dict[str, Any] | None:
    decision = response.meta.get(DECISION_META)
    return stamp_of(decision) if isinstance(decision, Decision) else None


class OptOutItemPipeline:
    """Drops items whose source page is reserved for the purpose (reserved pages reach the spider under
    ``OPTOUT_ON_RESERVED = "annotate"``) and counts unstamped items, which it lets through."""

    def __init__(self, state: OptOutState) -> None:
        self.state = state

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> OptOutItemPipeline:
        return cls(OptOutState.of(crawler))

    def process_item(self, item: Any, spider: object = None) -> Any:
        """The item when its source is allowed or its stamp is missing; DropItem when its stamp says reserved."""
        stamp = _UNSTAMPABLE.pop(id(item), None) or _stamp_in(item)
        if stamp is None:
            self.state.stats.inc_value("optout/items/unstamped")
            return item
        if not stamp.get("allowed", False):
            self.state.stats.inc_value("optout/items/dropped")
            protocols = ", ".join(sorted({r["protocol"] for r in stamp.get("reservations", [])}))
            raise DropItem(f"optout: source {stamp.get('url')} is reserved for {stamp.get('purpose')} ({protocols})")
        self.state.tally["optout/items/allowed"] += 1
        return item
