"""Scrapy settings for the standalone compliant crawler (``scrapy crawl compliant``)."""

BOT_NAME = "optout"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"
ROBOTSTXT_OBEY = True
