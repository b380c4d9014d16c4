"""crawler.jobqueue.RequestDiskQueue writes exactly what Scrapy's PickleLifoDiskQueue writes (a JOBDIR stays
readable by either), reads it back with the same callbacks, and fails where Scrapy fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scrapy import Request, Spider
from scrapy.http.request import NO_CALLBACK
from scrapy.squeues import PickleLifoDiskQueue
from scrapy.utils.test import get_crawler

from crawler.jobqueue import RequestDiskQueue


class Pages(Spider):
    name = "pages"

    def parse(self, response: Any) -> None:
        pass

    def failed(self, failure: Any) -> None:
        pass


def queues(tmp_path: Path) -> tuple[Any, Any, Spider]:
    crawler = get_crawler(Pages)
    crawler.spider = spider = Pages()
    ours = RequestDiskQueue.from_crawler(crawler, str(tmp_path / "ours"))
    scrapys = PickleLifoDiskQueue.from_crawler(crawler, str(tmp_path / "scrapy"))
    return ours, scrapys, spider


def test_same_file_and_same_requests_back(tmp_path: Path) -> None:
    ours, scrapys, spider = queues(tmp_path)
    requests = [
        Request("http://a.test/1", callback=spider.parse, errback=spider.failed, meta={"depth": 1}),
        Request("http://a.test/2", callback=spider.parse, errback=spider.failed, priority=3),
        Request("http://a.test/3"),
        Request("http://a.test/4", callback=spider.parse),
        Request("http://a.test/5", errback=spider.failed),
    ]
    for request in requests:
        ours.push(request)
        scrapys.push(request)
    assert requests[0].callback == spider.parse and requests[0].errback == spider.failed  # left as they were
    ours.close()
    scrapys.close()
    assert (tmp_path / "ours").read_bytes() == (tmp_path / "scrapy").read_bytes()
    reopened = RequestDiskQueue.from_crawler(get_crawler(Pages), str(tmp_path / "ours"))
    reopened.spider = spider
    back = [reopened.pop() for _ in requests][::-1]
    assert [r.url for r in back] == [r.url for r in requests]
    assert back[0].callback == spider.parse and back[0].errback == spider.failed and back[0].meta == {"depth": 1}
    assert back[2].callback is None and back[4].errback == spider.failed


@pytest.mark.parametrize("callback", [NO_CALLBACK, lambda response: None, print])
def test_what_scrapy_cannot_queue_is_refused_alike(tmp_path: Path, callback: Any) -> None:
    ours, scrapys, spider = queues(tmp_path)
    ours.push(Request("http://a.test/1", callback=spider.parse))  # a name already known
    for queue in (ours, scrapys):
        request = Request("http://a.test/2", callback=callback, errback=spider.failed)
        with pytest.raises(ValueError):
            queue.push(request)
        assert request.callback is callback


def test_pushes_and_pops_as_scrapy_does_beyond_the_memory_tail(tmp_path: Path) -> None:
    ours, scrapys, spider = queues(tmp_path)
    popped: dict[str, list[str]] = {"ours": [], "scrapy": []}
    for n in range(600):  # far more than TAIL_BYTES of requests, some popped on the way
        request = Request(f"http://a.test/{n}?{'x' * (n % 50)}", callback=spider.parse, errback=spider.failed)
        for name, queue in (("ours", ours), ("scrapy", scrapys)):
            queue.push(request)
            if n % 3 == 2:
                popped[name].append(queue.pop().url)
        assert len(ours) == len(scrapys)
    assert popped["ours"] == popped["scrapy"]
    assert ours.peek().url == scrapys.peek().url
    ours.close()
    scrapys.close()
    assert (tmp_path / "ours").read_bytes() == (tmp_path / "scrapy").read_bytes()
    reopened = RequestDiskQueue.from_crawler(get_crawler(Pages), str(tmp_path / "ours"))
    reopened.spider = spider
    assert len(reopened) == 400
    first = reopened.pop()
    assert first.url.startswith("http://a.test/598?") and first.callback == spider.parse
    reopened.push(Request("http://a.test/new", callback=spider.parse))
    assert reopened.pop().url == "http://a.test/new" and reopened.pop().url.startswith("http://a.test/597?")
    while reopened.pop() is not None:
        pass
    reopened.close()
    assert not (tmp_path / "ours").exists()  # an empty queue removes its file, as queuelib's does
