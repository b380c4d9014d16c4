"""``ADDONS = {"middlewares.OptOutAddon": 0}``: full opt-out enforcement for an existing Scrapy project.

The add-on replaces Scrapy's RobotsTxtMiddleware (which allows everything when robots.txt answers 5xx, lets
concurrent requests through while it is being fetched, and records nothing) with the access middleware in the same
slot, adds the usage middleware next to the engine, the spider middleware that stamps items and the pipeline that
drops items from reserved pages, a spider middleware that feeds start requests only while Scrapy can take them
(:mod:`middlewares.pacing`) and an extension that spares the garbage collector the start-up objects
(:mod:`middlewares.gcfreeze`). ``ROBOTSTXT_OBEY`` is switched off because robots.txt is now enforced by us. With
``OPTOUT_SIGNING_KEY`` set, every request is signed for Web Bot Auth (:mod:`middlewares.signing`).
"""

from __future__ import annotations

from typing import Any

ROBOTSTXT_MW = "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware"

DOWNLOADER_MIDDLEWARES = {
    "middlewares.downloader.OptOutAccessMiddleware": 100,
    "middlewares.downloader.OptOutUsageMiddleware": 50,
    "middlewares.downloader.OptOutPolicyFileDecoding": 595,  # before HttpCompressionMiddleware (590) expands them
}
SPIDER_MIDDLEWARES = {"middlewares.items.OptOutSpiderMiddleware": 950, "middlewares.pacing.LazyStartMiddleware": 10}
ITEM_PIPELINES = {"middlewares.items.OptOutItemPipeline": 50}
EXTENSIONS = {"middlewares.gcfreeze.GcFreeze": 0}


class OptOutAddon:
    """The Scrapy add-on: the opt-out components in place of RobotsTxtMiddleware (see the module docstring)."""

    def update_settings(self, settings: Any) -> None:
        """Remove RobotsTxtMiddleware and switch ``ROBOTSTXT_OBEY`` off, add every opt-out component at its priority
        and, with ``OPTOUT_SIGNING_KEY``, the signing download handlers."""
        settings.set("ROBOTSTXT_OBEY", False, "addon")
        settings.set_in_component_priority_dict("DOWNLOADER_MIDDLEWARES", ROBOTSTXT_MW, None)
        for name, order in DOWNLOADER_MIDDLEWARES.items():
            settings.set_in_component_priority_dict("DOWNLOADER_MIDDLEWARES", name, order)
        for name, order in SPIDER_MIDDLEWARES.items():
            settings.set_in_component_priority_dict("SPIDER_MIDDLEWARES", name, order)
        for name, order in ITEM_PIPELINES.items():
            settings.set_in_component_priority_dict("ITEM_PIPELINES", name, order)
        for name, order in EXTENSIONS.items():
            settings.set_in_component_priority_dict("EXTENSIONS", name, order)
        if settings.get("OPTOUT_SIGNING_KEY"):  # Web Bot Auth signatures on every request (middlewares/signing.py)
            from middlewares.signing import install

            install(settings)
