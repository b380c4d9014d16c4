"""A compliant crawl into one output folder: what ``optout crawl`` and ``optout demo`` run, and what
``scrapy crawl compliant -s OPTOUT_OUT_DIR=DIR`` writes.

The folder holds everything a run produces and everything needed to resume it::

    items.jsonl       one JSON object per stored page: only content allowed for the purpose, each with its
                      decision (``optout``) and the evidence hashes (``evidence``)
    decisions.jsonl   one line per URL the crawl touched: stored, refused (with the reservations honoured) or failed
    registry.db       the tamper-evident registry of honoured opt-outs (unless another registry URL is given),
                      with its signing key beside it (registry.db.key: keep it secret)
    policy-cache.db   robots.txt and the other policy files, cached for at most 24 hours
    job/              the request journal (crawler/jobqueue.py), so a second run with the same folder resumes
    crawl.log         Scrapy's log
    run.json          the runs so far (start, end, why they ended)
    summary.json      the totals, as JSON (the report shows the same numbers)
    report.html       the report, one self-contained file, with evidence/ beside it

items.jsonl and decisions.jsonl take a request's lines once Scrapy has finished with it, and the journal commits
their sizes with the requests they cover; a run that was killed is cut back to the last commit when the next one
starts (which also removes a line torn by the kill), and the requests after it are fetched again. The summary and
report are rewritten whole (through a temporary file and a rename) at the end of every run.

Where each part lives: the extension that writes the folder, crawler/runfiles.py; the options, the Scrapy settings
made of them and the checks before anything starts, crawler/preflight.py; the folder's names and writers,
crawler/outfiles.py; the summary and report, crawler/runsummary.py; this module runs the crawl (``run_crawl``) and
keeps the names callers import from it.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass
from typing import Any

from scrapy.crawler import CrawlerProcess

from crawler.preflight import (
    ENFORCEMENT,
    NUMBERS,
    CrawlOptions,
    check_enforcement,
    check_jobdir,
    check_numbers,
    check_out_dir,
    crawl_settings,
    preflight,
    spider_args,
)
from crawler.runfiles import CrawlError, Live, RunFiles, load_run, registry_size
from crawler.spiders.compliant import CompliantSpider

# The names callers import from here, defined in crawler/preflight.py and crawler/runfiles.py before the split.
__all__ = [
    "ENFORCEMENT",
    "NUMBERS",
    "CrawlError",
    "CrawlOptions",
    "CrawlResult",
    "Live",
    "RunFiles",
    "check_enforcement",
    "check_jobdir",
    "check_numbers",
    "check_out_dir",
    "crawl_settings",
    "load_run",
    "preflight",
    "registry_size",
    "run_crawl",
    "run_files",
    "spider_args",
]

logger = logging.getLogger(__name__)


@dataclass
class CrawlResult:
    """How a crawl ended: Scrapy's close reason, the summary written (None if none could be), the error that
    stopped it or kept it from starting, and whether a signal asked for the stop."""

    reason: str | None
    summary: dict[str, Any] | None
    error: str | None = None
    start_error: str | None = None
    signalled: bool = False  # Ctrl-C (or SIGTERM) asked for the stop

    @property
    def interrupted(self) -> bool:
        return self.signalled and self.reason == "shutdown"


def run_crawl(opts: CrawlOptions, progress: Any = None) -> CrawlResult:
    """Run one crawl in this process (Twisted's reactor: once per process). ``progress(files, stats)`` is
    called twice a second while it runs. Ctrl-C stops it gracefully (Scrapy's first SIGINT)."""
    settings = preflight(opts)
    # A full disk must not turn every log line into a traceback on the console: the CLI reports it once.
    logging.raiseExceptions = False
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(CompliantSpider)
    start_error: list[str] = []

    def failed(failure: Any) -> None:
        start_error.append(f"{failure.type.__name__}: {failure.value}")
        logger.error("optout crawl: the crawl failed: %s", failure.getTraceback())

    process.crawl(crawler, **spider_args(opts)).addErrback(failed)
    from twisted.internet import reactor, task  # only now: the crawl installed the reactor it wants

    signalled: list[int] = []
    # Scrapy installs its SIGINT/SIGTERM handlers once the reactor runs; wrap them then, to tell a Ctrl-C from a
    # stop the engine decided on itself (both end with the reason "shutdown").
    reactor.callWhenRunning(reactor.callLater, 0, _note_signals, signalled)
    ticker = None
    if progress is not None:

        def tick() -> None:
            files = run_files(crawler)
            if files is not None and crawler.stats is not None:
                progress(files, crawler.stats.get_stats())

        ticker = task.LoopingCall(tick)
        reactor.callWhenRunning(ticker.start, 0.5, now=False)
    try:
        process.start()
    finally:
        if ticker is not None and ticker.running:
            ticker.stop()
    files = run_files(crawler)
    if files is None:
        return CrawlResult(None, None, start_error="; ".join(start_error) or "the crawl did not start")
    return CrawlResult(
        files.reason,
        files.summary,
        error=files.error,
        start_error="; ".join(start_error) or None,
        signalled=bool(signalled),
    )


def run_files(crawler: Any) -> RunFiles | None:
    """The crawl's RunFiles extension, through Scrapy's component lookup; None before Scrapy has built its
    extensions (a crawl that failed to start) or when OPTOUT_OUT_DIR is unset."""
    try:
        files: RunFiles | None = crawler.get_extension(RunFiles)
    except RuntimeError:  # "can only be called after the extension manager has been created"
        return None
    return files


def _note_signals(seen: list[int]) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def handler(num: int, frame: Any, previous: Any = previous) -> None:
            seen.append(num)
            previous(num, frame)

        signal.signal(signum, handler)
