"""Opt-out enforcement layer: protocol parsers, the policy engine and (later) Scrapy middlewares."""
