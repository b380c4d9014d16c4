"""The add-on's gc.freeze extension: on by default, off with OPTOUT_GC_FREEZE = False."""

from __future__ import annotations

import gc

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from middlewares.addon import EXTENSIONS
from middlewares.gcfreeze import GcFreeze


def test_gc_freeze_extension_is_part_of_the_add_on_and_can_be_switched_off() -> None:
    assert "middlewares.gcfreeze.GcFreeze" in EXTENSIONS
    with pytest.raises(NotConfigured):
        GcFreeze.from_crawler(get_crawler(settings_dict={"OPTOUT_GC_FREEZE": False}))
    extension = GcFreeze.from_crawler(get_crawler())
    try:
        extension.spider_opened()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
