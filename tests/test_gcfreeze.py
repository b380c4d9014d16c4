"""The add-on's GC extension: gc.freeze and the collector's thresholds, on by default, each switched off by its
setting, and the thresholds put back when the spider closes."""

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
        GcFreeze.from_crawler(get_crawler(settings_dict={"OPTOUT_GC_FREEZE": False, "OPTOUT_GC_THRESHOLD": ""}))
    before = gc.get_threshold()
    extension = GcFreeze.from_crawler(get_crawler(settings_dict={"OPTOUT_GC_THRESHOLD": ""}))
    assert gc.get_threshold() == before and extension.previous is None
    try:
        extension.spider_opened()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_thresholds_are_set_for_the_crawl_and_put_back_when_the_spider_closes() -> None:
    before = gc.get_threshold()
    crawler = get_crawler(settings_dict={"OPTOUT_GC_FREEZE": False})
    extension = GcFreeze.from_crawler(crawler)
    try:
        assert gc.get_threshold() == (10_000, 20, 20)  # the default, set before the middlewares are built
        assert not extension.freeze
        extension.spider_closed()
        assert gc.get_threshold() == before
    finally:
        gc.set_threshold(*before)
    GcFreeze.from_crawler(get_crawler(settings_dict={"OPTOUT_GC_THRESHOLD": "5000,15"}))
    try:
        assert gc.get_threshold()[:2] == (5000, 15)
    finally:
        gc.set_threshold(*before)


@pytest.mark.parametrize("bad", ["many", "1,2,3,4", "-5", [1.5, "x"]])
def test_a_bad_threshold_names_the_setting(bad: object) -> None:
    before = gc.get_threshold()
    with pytest.raises(ValueError, match="OPTOUT_GC_THRESHOLD must be"):
        GcFreeze.from_crawler(get_crawler(settings_dict={"OPTOUT_GC_THRESHOLD": bad}))
    assert gc.get_threshold() == before
