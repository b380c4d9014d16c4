"""crawler.jobqueue: RequestDiskQueue writes exactly what Scrapy's PickleLifoDiskQueue writes (a JOBDIR stays
readable by either), reads it back with the same callbacks, and fails where Scrapy fails. JournalScheduler keeps
every request until Scrapy has finished with it, commits it done only with its output and its registry records,
and after a kill (the database closed without a commit) gives back exactly what was not done."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from scrapy import Request, Spider
from scrapy.http.request import NO_CALLBACK
from scrapy.squeues import PickleLifoDiskQueue
from scrapy.utils.test import get_crawler
from twisted.internet.task import Clock

from crawler.jobqueue import JOURNAL, JournalScheduler, RequestDiskQueue, committed_positions, register_outputs
from middlewares.state import OptOutState


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


# -- the journal ------------------------------------------------------------------------------------------------


class Engine:
    """What the scheduler sees of Scrapy's engine: download slots and the requests in progress."""

    def __init__(self) -> None:
        self.downloader = SimpleNamespace(slots={}, get_slot_key=lambda request: request.url.split("/")[2])
        self._slot = SimpleNamespace(inprogress=set())


class Files:
    """crawler.runfiles.RunFiles as the journal sees it: sizes to commit, and a log of the writes it was asked for."""

    def __init__(self) -> None:
        self.size = 0
        self.written: list[str] = []
        self.failing = False

    def positions(self) -> dict[str, int] | None:
        return None if self.failing else {"items.jsonl": self.size}

    def write(self, line: str) -> bool:
        if self.failing:
            return False
        self.written.append(line)
        self.size += len(line) + 1
        return True


def journal(tmp_path: Path, recorder: Any = None, files: Files | None = None) -> tuple[JournalScheduler, Pages]:
    crawler = get_crawler(Pages, {"JOBDIR": str(tmp_path / "job")})
    crawler.spider = spider = Pages()
    crawler.engine = Engine()
    OptOutState.attach(crawler, SimpleNamespace(recorder=recorder))
    if files is not None:
        register_outputs(crawler, files)
    (tmp_path / "job").mkdir(exist_ok=True)
    scheduler = JournalScheduler(crawler, str(tmp_path / "job"), interval=1.0, clock=Clock())
    scheduler.open(spider)
    return scheduler, spider


def take(scheduler: JournalScheduler) -> Request:
    """What the engine does: take the next request and hold it in progress."""
    request = scheduler.next_request()
    assert request is not None
    scheduler.crawler.engine._slot.inprogress.add(request)
    return request


def finish(scheduler: JournalScheduler, request: Request) -> None:
    scheduler.crawler.engine._slot.inprogress.discard(request)


def kill(scheduler: JournalScheduler) -> None:
    """kill -9 as the database sees it: whatever was not committed is gone."""
    assert scheduler.journal is not None
    scheduler.journal.db.close()


def done_rows(tmp_path: Path) -> int:
    with closing(sqlite3.connect(tmp_path / "job" / JOURNAL)) as db:
        return int(db.execute("SELECT count(*) FROM request WHERE data IS NULL").fetchone()[0])


def page(n: int, spider: Pages, site: str = "a.test") -> Request:
    return Request(f"http://{site}/{n}", callback=spider.parse, errback=spider.failed)


def test_a_kill_gives_back_what_was_not_done_and_the_dupefilter_remembers(tmp_path: Path) -> None:
    scheduler, spider = journal(tmp_path)
    for n in range(5):
        assert scheduler.enqueue_request(page(n, spider))
    assert not scheduler.enqueue_request(page(3, spider))  # a duplicate
    first, second = take(scheduler), take(scheduler)
    finish(scheduler, first)
    scheduler.clock.advance(1.0)  # a commit: `first` is done, `second` is in progress
    scheduler.enqueue_request(page(9, spider))  # after the last commit: lost with the kill
    kill(scheduler)

    scheduler, spider = journal(tmp_path)
    assert len(scheduler) == 4  # 5 queued, 1 done; `second` (in flight at the kill) is queued again
    urls = [take(scheduler).url for _ in range(4)]
    assert first.url not in urls and second.url in urls
    assert not scheduler.enqueue_request(page(0, spider)) and not scheduler.enqueue_request(page(4, spider))
    assert scheduler.enqueue_request(page(9, spider))  # never committed, so never seen
    assert scheduler.enqueue_request(Request(first.url, dont_filter=True))


def test_a_request_is_done_only_once_its_registry_records_are_written(tmp_path: Path) -> None:
    recorder = SimpleNamespace(queued=0, handled=0, next_index=0, resume=lambda since: None)
    scheduler, spider = journal(tmp_path, recorder)
    scheduler.enqueue_request(page(1, spider))
    request = take(scheduler)
    recorder.queued = 2  # the request was refused: two records handed to the writer
    finish(scheduler, request)
    scheduler.clock.advance(1.0)
    assert done_rows(tmp_path) == 0
    recorder.handled = 2
    scheduler.clock.advance(1.0)
    assert done_rows(tmp_path) == 1


def test_output_waits_for_its_request_and_its_sizes_are_committed_with_it(tmp_path: Path) -> None:
    files = Files()
    scheduler, spider = journal(tmp_path, files=files)
    for n in range(2):
        scheduler.enqueue_request(page(n, spider))
    done, busy = take(scheduler), take(scheduler)
    assert scheduler.defer(done, lambda: files.write("done")) and scheduler.defer(busy, lambda: files.write("busy"))
    assert not scheduler.defer(Request("http://a.test/other"), lambda: files.write("x"))  # not taken: write now
    assert files.written == []
    finish(scheduler, done)
    scheduler.clock.advance(1.0)
    assert files.written == ["done"] and done_rows(tmp_path) == 1
    assert committed_positions(tmp_path / "job") == {"items.jsonl": len("done") + 1}
    # A write that fails leaves its request open, and the committed sizes never move again.
    files.failing = True
    finish(scheduler, busy)
    scheduler.clock.advance(1.0)
    files.failing = False
    scheduler.enqueue_request(page(2, spider))
    later = take(scheduler)
    scheduler.defer(later, lambda: files.write("later"))
    finish(scheduler, later)
    scheduler.clock.advance(1.0)
    assert done_rows(tmp_path) == 1 and committed_positions(tmp_path / "job") == {"items.jsonl": 5}


def test_order_and_spider_state_are_scrapys_and_survive(tmp_path: Path) -> None:
    scheduler, spider = journal(tmp_path)
    start = [Request(f"http://a.test/s{n}", meta={"is_start_request": True}) for n in range(2)]
    for request in [*start, page(1, spider), page(2, spider), Request("http://a.test/high", priority=5)]:
        scheduler.enqueue_request(request)
    spider.state["pages"] = 7
    scheduler.clock.advance(1.0)
    kill(scheduler)
    scheduler, spider = journal(tmp_path)
    assert spider.state == {"pages": 7}
    # highest priority first; then newest first; start requests last, oldest first
    assert [take(scheduler).url.rsplit("/", 1)[1] for _ in range(5)] == ["high", "2", "1", "s0", "s1"]
