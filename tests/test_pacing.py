"""The add-on's lazy start: start requests wait in the spider while the engine needs to back out, and are all
passed on, in order, once it can take them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.settings import Settings
from scrapy.utils.test import get_crawler
from twisted.internet.defer import succeed

from middlewares import pacing
from middlewares.addon import SPIDER_MIDDLEWARES
from middlewares.pacing import POLL, LazyStartMiddleware


def test_start_requests_wait_while_the_engine_needs_to_back_out(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [True, True, False, True, False]  # saturated twice before the first request, once before the second
    engine = SimpleNamespace(running=True, needs_backout=lambda: answers.pop(0) if answers else False)
    crawler = SimpleNamespace(engine=engine, settings=Settings())
    waits: list[float] = []
    monkeypatch.setattr(pacing, "deferLater", lambda reactor, delay: waits.append(delay) or succeed(None))

    async def start() -> AsyncIterator[Any]:
        for n in range(3):
            yield n

    async def passed_on() -> list[Any]:
        return [x async for x in LazyStartMiddleware(crawler).process_start(start())]  # type: ignore[arg-type]

    assert asyncio.run(passed_on()) == [0, 1, 2]
    assert waits == [POLL, POLL, POLL]


def test_lazy_start_is_part_of_the_add_on_and_can_be_switched_off() -> None:
    assert "middlewares.pacing.LazyStartMiddleware" in SPIDER_MIDDLEWARES
    with pytest.raises(NotConfigured):
        LazyStartMiddleware.from_crawler(get_crawler(settings_dict={"OPTOUT_LAZY_START": False}))
    assert isinstance(LazyStartMiddleware.from_crawler(get_crawler()), LazyStartMiddleware)
