"""A real Scrapy crawl in a subprocess, for end-to-end tests of the middlewares."""
