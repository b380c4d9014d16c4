"""Items other than plain dicts are stamped through itemadapter (imported on first need, not at start-up)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import scrapy

from middlewares import items

STAMP = {"allowed": False, "purpose": "train-ai"}


class WithField(scrapy.Item):
    title = scrapy.Field()
    optout = scrapy.Field()


class WithoutField(scrapy.Item):
    title = scrapy.Field()


@dataclasses.dataclass
class Story:
    title: str
    optout: dict[str, Any] | None = None


def test_items_of_every_kind_are_stamped_or_kept_aside() -> None:
    plain: dict[str, Any] = {"title": "a"}
    with_field, without_field, story = WithField(title="b"), WithoutField(title="c"), Story("d")
    for item in (plain, with_field, without_field, story):
        items._stamp(item, STAMP)
    assert plain["optout"] == STAMP and with_field["optout"] == STAMP and story.optout == STAMP
    assert items._stamp_in(plain) == STAMP and items._stamp_in(with_field) == STAMP and items._stamp_in(story) == STAMP
    assert "optout" not in without_field and items._stamp_in(without_field) is None
    assert items._UNSTAMPABLE.pop(id(without_field)) == STAMP  # what the pipeline reads for such items


def test_itemadapter_is_not_imported_with_the_addon() -> None:
    code = "import sys, middlewares.items, middlewares.downloader; print('itemadapter' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
