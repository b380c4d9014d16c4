"""Run one Scrapy crawl with the opt-out add-on and print what happened as JSON on the last stdout line.

Usage: python -m tests.scrapyrun.run CONFIG_JSON. The config gives start URLs, extra settings and whether the
spider follows links. The output lists every URL that reached the spider, every item that left the pipelines,
every request the spider's errback saw refused, and the crawl stats.
"""

from __future__ import annotations

import json
import sys
from typing import Any, ClassVar

import scrapy
from scrapy.crawler import CrawlerProcess


class ProbeSpider(scrapy.Spider):
    name = "probe"

    def __init__(self, config: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.reached: list[str] = []
        self.refused: list[str] = []
        self.decisions: dict[str, Any] = {}

    async def start(self):  # type: ignore[override]
        for url in self.config["start_urls"]:
            yield scrapy.Request(url, callback=self.parse, errback=self.refuse, dont_filter=True)

    def parse(self, response: scrapy.http.Response):  # type: ignore[override]
        self.reached.append(response.url)
        decision = response.meta.get("optout_decision")
        if decision is not None:
            self.decisions[response.url] = decision.to_json()
        yield {"url": response.url, "status": response.status}
        if self.config.get("follow") and hasattr(response, "css"):
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href, callback=self.parse, errback=self.refuse)

    def refuse(self, failure: Any) -> None:
        self.refused.append(failure.request.url)


class Collect:
    items: ClassVar[list[dict[str, Any]]] = []

    def process_item(self, item: Any, spider: Any = None) -> Any:
        Collect.items.append(dict(item))
        return item


def main() -> None:
    config = json.loads(sys.argv[1])
    settings = {
        "ADDONS": {"middlewares.OptOutAddon": 0},
        "ITEM_PIPELINES": {"tests.scrapyrun.run.Collect": 900},
        "LOG_LEVEL": config.get("log_level", "WARNING"),
        "TELNETCONSOLE_ENABLED": False,
        "USER_AGENT": "Mozilla/5.0 (compatible; ExampleBot/1.0; +http://127.0.0.1/bot)",
        "RETRY_ENABLED": False,
        "DOWNLOAD_TIMEOUT": 10,
        "CONCURRENT_REQUESTS": 16,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 16,
        **config.get("settings", {}),
    }
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(ProbeSpider)
    process.crawl(crawler, config=config)
    process.start()
    spider = crawler.spider
    from pydispatch import dispatcher

    # Receivers left on bytes_received: policy-file downloads connect one only while they run.
    receivers = len(list(dispatcher.getAllReceivers(crawler.signals.sender, scrapy.signals.bytes_received)))
    stats = {k: v for k, v in crawler.stats.get_stats().items() if isinstance(v, (int, float, str))}
    print(
        json.dumps(
            {
                "reached": spider.reached,
                "refused": spider.refused,
                # Scrapy loads the pipeline by module path, not from __main__: read that class's list.
                "items": sys.modules["tests.scrapyrun.run"].Collect.items,
                "decisions": spider.decisions,
                "stats": stats,
                "bytes_received_receivers": receivers,
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
