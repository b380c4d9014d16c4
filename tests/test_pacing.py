"""The add-on's lazy start: start requests wait in the spider while the engine needs to back out, and are all
passed on, in order, once it can take them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler
from twisted.internet.defer import succeed

from crawler.fixtureweb import FixtureWeb, Route, page
from middlewares import pacing
from middlewares.addon import SPIDER_MIDDLEWARES
from middlewares.pacing import POLL, LazyStartMiddleware
from tests.support.scrapyproject import crawl


def _lazy_start(monkeypatch: pytest.MonkeyPatch, after: int, seeds: int) -> tuple[list[Any], list[bool], list[float]]:
    """What the middleware passes on from ``seeds`` start requests, to an engine that is saturated twice, free, then
    saturated once and free for good: the requests in order, each answer the engine gave, and the waits."""
    answers = [True, True, False, True, False]
    asked: list[bool] = []

    def needs_backout() -> bool:
        asked.append(answers.pop(0) if answers else False)
        return asked[-1]

    crawler = get_crawler(settings_dict={"OPTOUT_REGISTRY_URL": "", "OPTOUT_LAZY_START_AFTER": after})
    crawler.engine = SimpleNamespace(running=True, needs_backout=needs_backout)
    waits: list[float] = []
    monkeypatch.setattr(pacing, "deferLater", lambda reactor, delay: waits.append(delay) or succeed(None))

    async def start() -> AsyncIterator[Any]:
        for n in range(seeds):
            yield n

    async def passed_on() -> list[Any]:
        return [x async for x in LazyStartMiddleware(crawler).process_start(start())]  # type: ignore[arg-type]

    return asyncio.run(passed_on()), asked, waits


def test_start_requests_wait_while_the_engine_needs_to_back_out(monkeypatch: pytest.MonkeyPatch) -> None:
    passed, asked, waits = _lazy_start(monkeypatch, after=0, seeds=3)
    assert passed == [0, 1, 2]
    assert asked == [True, True, False, True, False, False]  # twice before the first, once before the second
    assert waits == [POLL, POLL, POLL]


def test_the_first_start_requests_go_straight_on_as_scrapy_would_send_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Up to OPTOUT_LAZY_START_AFTER seeds pass without asking the engine (a saturated one, here); from then on each
    waits until it can take more."""
    passed, asked, waits = _lazy_start(monkeypatch, after=2, seeds=4)
    assert passed == [0, 1, 2, 3]
    assert asked == [True, True, False, True, False]  # only the third and fourth seed asked
    assert waits == [POLL, POLL, POLL]


def test_lazy_start_is_part_of_the_add_on_and_can_be_switched_off() -> None:
    assert "middlewares.pacing.LazyStartMiddleware" in SPIDER_MIDDLEWARES
    with pytest.raises(NotConfigured):
        LazyStartMiddleware.from_crawler(get_crawler(settings_dict={"OPTOUT_LAZY_START": False}))
    started = LazyStartMiddleware.from_crawler(get_crawler(settings_dict={"OPTOUT_REGISTRY_URL": ""}))
    assert started.prefetch == 16  # Scrapy's CONCURRENT_REQUESTS
    assert started.after == 256


@pytest.mark.parametrize("prefetch", [4, 0])
def test_policies_of_upcoming_origins_load_while_the_downloader_is_full(
    web: FixtureWeb, tmp_path: Path, prefetch: int
) -> None:
    """One request at a time, every answer 0.2 s late: with prefetch, the upcoming origins' robots.txt (and then
    their policy files) are fetched while the first origin's page waits, not one origin after another."""
    origins = [web.site(f"o{i}", {"/robots.txt": Route(body="User-agent: *\nAllow: /\n", delay=0.2), "/": page("x")})
               for i in range(4)]  # fmt: skip
    settings = {"CONCURRENT_REQUESTS": 1, "OPTOUT_PREFETCH": prefetch, "OPTOUT_LAZY_START_AFTER": 0}
    out = crawl([o + "/" for o in origins], tmp_path, settings=settings)
    assert len(out["reached"]) == 4
    last_robots = web.hits("o3", "/robots.txt")[0].time
    first_page = web.hits("o0", "/")[0].time
    assert (last_robots < first_page) is bool(prefetch)
    for i in range(4):  # robots.txt first, as ever
        assert min(web.hits(f"o{i}"), key=lambda h: h.time).path == "/robots.txt"
