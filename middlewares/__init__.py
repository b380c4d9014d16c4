"""Opt-out enforcement for Scrapy: protocol parsers, the policy engine, downloader middlewares and the add-on.

Enable everything in a project's settings with ``ADDONS = {"middlewares.OptOutAddon": 0}``.
"""

from middlewares.addon import OptOutAddon

__all__ = ["OptOutAddon"]
