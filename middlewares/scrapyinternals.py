"""Every access to a private part of Scrapy's engine, one function each, so that a Scrapy upgrade that moves one
breaks here, visibly, and nowhere else. Written for Scrapy 2.19, the minimum the project supports: 2.13 has no
``engine.download_async`` (every policy file failed, so every URL was refused), 2.14 let the first policy file
follow robots.txt within milliseconds under a Crawl-delay, and before 2.19 a slot's delay randomisation is
``randomize_delay``, not ``jitter``. The journal's tests and the crawl and fleet end-to-end tests exercise them.

Public APIs are used wherever Scrapy has one: signals, ``engine.download_async``, ``engine.close_spider_async``,
``engine.spider_is_idle``, ``downloader.slots`` and ``downloader.get_slot_key``, ``engine.scheduler``. What is left
has no public counterpart: the set of requests the engine holds in progress (a request's output is final only once
it has left it), waking an idle engine (a fleet worker whose shared queue was refilled by another worker), creating
a download slot with Scrapy's own per-slot settings before the first request, and timing a slot's delay from the
end of each download.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from time import monotonic
from typing import Any

from scrapy.core.downloader import Slot
from scrapy.http import Request


def engine_running(engine: Any) -> bool:
    """The engine has a spider open and its slot assigned (between close_spider's first step and its last, the
    slot is gone before the spider is). Scrapy 2.19: ``ExecutionEngine._slot``."""
    return engine is not None and engine.spider is not None and engine._slot is not None


def in_progress(engine: Any) -> Collection[Request]:
    """The requests the engine holds (taken from the scheduler, not finished yet); empty when no spider is open.
    Scrapy 2.19: ``ExecutionEngine._slot.inprogress``."""
    slot = getattr(engine, "_slot", None) if engine is not None else None
    return slot.inprogress if slot is not None else ()


def wake(engine: Any) -> None:
    """Have an idle engine look at its scheduler now instead of at its next 5-second heartbeat. Scrapy 2.19:
    ``ExecutionEngine._slot.nextcall.schedule()``."""
    if engine_running(engine):
        engine._slot.nextcall.schedule()


def download_slot(downloader: Any, request: Request) -> Slot:
    """The download slot ``request`` will use, created with Scrapy's per-slot settings (DOWNLOAD_SLOTS, the
    concurrency and delay settings) if it does not exist yet. Scrapy 2.19: ``Downloader._get_slot``."""
    slot: Slot = downloader._get_slot(request)[1]
    return slot


class _DownloadEnds(set[Request]):
    """A slot's ``transferring`` set that stamps the slot's ``lastseen`` whenever a download ends."""

    __slots__ = ("_slot",)

    def __init__(self, slot: Slot, requests: Iterable[Request]) -> None:
        super().__init__(requests)
        self._slot = slot

    def remove(self, request: Request) -> None:
        super().remove(request)
        self._slot.lastseen = monotonic()


def delay_from_download_ends(slot: Slot) -> None:
    """Make the slot's delay run from the end of each download (response or failure) instead of from its dispatch.

    Scrapy stamps ``slot.lastseen`` when it dispatches a request and waits ``slot.delay`` from that stamp, so a
    request that reaches the wire late (a reactor stall, a slow connect) is followed by the next one less than
    the delay later at the server. With one request at a time, counting from the end of each download keeps every
    gap the server sees at least the delay, whatever happens before the wire. Scrapy 2.19: ``Downloader._download``
    removes the request from ``slot.transferring`` as its download ends, then calls ``_process_queue``, which waits
    ``slot.delay`` from ``slot.lastseen``."""
    if not isinstance(slot.transferring, _DownloadEnds):
        slot.transferring = _DownloadEnds(slot, slot.transferring)
