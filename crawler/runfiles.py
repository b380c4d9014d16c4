"""The Scrapy extension that writes a compliant crawl's output folder (crawler/crawl.py describes the folder), and
the record of its runs (run.json). Enabled by ``OPTOUT_OUT_DIR``; ``optout crawl`` sets it, and
``scrapy crawl compliant -s OPTOUT_OUT_DIR=DIR`` writes the same files."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.defer import deferred_from_coro

from crawler.jobqueue import JournalScheduler, committed_positions, register_outputs
from crawler.outfiles import DECISIONS, ITEMS, LOG, RUN, JsonLines, cut_back, utc, write_atomic
from crawler.runsummary import REFUSED, collect, write_outputs
from crawler.spiders.compliant import outcome_signal
from middlewares.engine import origin_of
from middlewares.state import OptOutState
from optout_registry.errors import RegistryError
from optout_registry.registry import Registry

logger = logging.getLogger(__name__)


class CrawlError(Exception):
    """A problem that stops a crawl before or while it runs; one line for the user."""


# -- the extension that writes the files ---------------------------------------------------------------------


@dataclass
class Live:
    """Counts for this run, read by the progress display."""

    started: float = field(default_factory=time.time)
    stored: int = 0
    refused: int = 0
    failed: int = 0
    origins: set[str] = field(default_factory=set)
    honoured: Counter[str] = field(default_factory=Counter)


class RunFiles:
    """Scrapy extension: writes a compliant crawl's files into ``OPTOUT_OUT_DIR`` (see the module docstring)."""

    def __init__(self, crawler: Any, out: Path) -> None:
        self.crawler = crawler
        self.out = out
        self.live = Live()
        self.error: str | None = None
        self.reason: str | None = None
        self.summary: dict[str, Any] | None = None
        out.mkdir(parents=True, exist_ok=True)
        committed = committed_positions(crawler.settings.get("JOBDIR"))
        for name, size in (committed or {}).items():
            if name in (ITEMS, DECISIONS):
                cut_back(out / name, size)
        self.items = JsonLines(out / ITEMS)
        self.decisions = JsonLines(out / DECISIONS)
        self.run = load_run(out)
        self.labels: dict[str, str] = dict(crawler.settings.getdict("OPTOUT_REPORT_LABELS"))
        crawler.signals.connect(self.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(self.outcome, signal=outcome_signal)
        crawler.signals.connect(self.request_scheduled, signal=signals.request_scheduled)
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(self.engine_stopped, signal=signals.engine_stopped)

    @classmethod
    def from_crawler(cls, crawler: Any) -> RunFiles:
        out = crawler.settings.get("OPTOUT_OUT_DIR")
        if not out:
            raise NotConfigured  # no message: Scrapy would log one as a warning, and this is the normal case
        ext = cls(crawler, Path(out))
        register_outputs(crawler, ext)  # the journal commits the files' sizes with the requests they cover
        return ext

    # -- while crawling ---------------------------------------------------------------------------------------

    def spider_opened(self, spider: Any) -> None:
        config = OptOutState.of(self.crawler).config  # the add-on's, already loaded (blocklist included)
        policy = config.policy
        run = self.run
        if not run.get("runs"):
            run.update(
                created_at=utc(),
                purpose=policy.purpose.value,
                agent=policy.agent,
                mode=policy.mode.value,
                # What was enforced, for `optout summary` to report (not the defaults it could assume).
                disabled=sorted(policy.disabled),
                cross_token=policy.cross_token,
                blocklist=config.blocklist.source if config.blocklist is not None else None,
                user_agent=self.crawler.settings.get("USER_AGENT"),
                registry_url=config.registry_url,
                registry_start=registry_size(config.registry_url),
                seeds=list(getattr(spider, "seeds", [])),
            )
        runs = run.setdefault("runs", [])
        if runs and "finished_at" not in runs[-1]:
            runs[-1]["reason"] = "killed"  # it never reached its end: killed, crashed or the power went
        runs.append({"started_at": utc(self.live.started)})
        try:
            self._save_run()
        except OSError as exc:
            self._fail(f"cannot write {self.out / RUN}: {exc.strerror or exc}")

    def request_scheduled(self, request: Any, spider: Any = None) -> None:
        self.live.origins.add(origin_of(request.url))

    def item_scraped(self, item: Any, response: Any = None, spider: Any = None) -> None:
        data = dict(item)
        stamp = data.get("optout") or {}
        event = {
            "url": data.get("requested_url") or data.get("url"),
            "final_url": data.get("url"),
            "kind": "page",
            "outcome": "stored",
            "depth": data.get("depth", 0),
            "at": time.time(),
            "signals": stamp.get("signals", []),
            "errors": stamp.get("errors", []),
        }
        self._emit(getattr(response, "request", None), lambda: self._write_stored(data, event))

    def outcome(self, event: dict[str, Any], request: Any = None) -> None:
        self._emit(request, lambda: self._write_outcome(event))

    def _emit(self, request: Any, write: Callable[[], bool]) -> None:
        """Write a request's lines once Scrapy has finished with it (with the journal), else now."""
        journal = JournalScheduler.of(self.crawler)
        if journal is None or request is None or not journal.defer(request, write):
            write()

    def _write_stored(self, item: dict[str, Any], event: dict[str, Any]) -> bool:
        if self.error or not (self._write(self.items, item) and self._write(self.decisions, event)):
            return False
        self.live.stored += 1
        return True

    def _write_outcome(self, event: dict[str, Any]) -> bool:
        if self.error or not self._write(self.decisions, event):
            return False
        if event.get("outcome") in REFUSED:
            self.live.refused += 1
            self.live.honoured.update(r["protocol"] for r in event.get("reservations", ()))
        else:
            self.live.failed += 1
        return True

    def positions(self) -> dict[str, int] | None:
        """The files' sizes, on disk, for the journal to commit; None once a write failed (see JournalScheduler)."""
        if self.error:
            return None
        try:
            return {ITEMS: self.items.sync(), DECISIONS: self.decisions.sync()}
        except OSError as exc:
            self._fail(f"cannot write {self.out}: {exc.strerror or exc}")
            return None

    def _write(self, log: JsonLines, obj: Any) -> bool:
        try:
            log.write(obj)
        except OSError as exc:
            self._fail(f"cannot write {log.path}: {exc.strerror or exc}")
            return False
        return True

    def _fail(self, message: str) -> None:
        """A file cannot be written (full disk, read-only mount): stop the crawl rather than go on producing
        content that cannot be recorded. What was written before stays."""
        self.error = message
        logger.error("optout crawl: %s; stopping the crawl", message)
        engine = self.crawler.engine
        if engine is not None and engine.spider is not None:
            deferred_from_coro(engine.close_spider_async(reason="write_error"))

    def spider_closed(self, spider: Any, reason: str) -> None:
        self.reason = self.reason or reason

    # -- at the end -------------------------------------------------------------------------------------------

    def engine_stopped(self) -> None:
        """Runs after every spider_closed handler, so the registry recorder has flushed and signed. On a full
        disk the summary is still worked out (and printed by the CLI) even if it cannot be written."""
        for log in (self.items, self.decisions):
            try:
                log.close()
            except OSError as exc:
                self._problem(f"cannot write {log.path}: {exc.strerror or exc}")
        stats = self.crawler.stats.get_stats()
        current = self.run["runs"][-1] if self.run.get("runs") else {}
        current.update(
            finished_at=utc(),
            reason=self.reason or "finished",
            elapsed_seconds=round(time.time() - self.live.started, 3),
            responses=stats.get("response_received_count", 0),
            stored=self.live.stored,
            refused=self.live.refused,
            failed=self.live.failed,
            registry_errors=stats.get("optout/registry/errors", 0),
            log_errors=stats.get("log_count/ERROR", 0),
        )
        state = OptOutState.current(self.crawler)
        recorder = state.recorder if state is not None else None
        if recorder is not None and recorder.skipped:
            current["registry_skipped"] = recorder.skipped  # written by the interrupted run already
        if self.error:
            current["error"] = self.error
        elif current["log_errors"] and not current["registry_errors"]:
            current["error"] = f"{current['log_errors']} error(s) were logged: see {self.out / LOG}"
        try:
            self._save_run()
        except OSError as exc:
            self._problem(f"cannot write {self.out / RUN}: {exc.strerror or exc}")
        try:
            summary, rows, events = collect(self.out, self.run, labels=self.labels)
            self.summary = summary
            write_outputs(self.out, self.run, summary, rows, events)
        except OSError as exc:
            self._problem(f"cannot write the summary and report in {self.out}: {exc.strerror or exc}")
        except Exception:
            logger.exception("optout crawl: writing the summary and report failed")
            self._problem("writing the summary and report failed (see crawl.log)")

    def _problem(self, message: str) -> None:
        self.error = self.error or message
        logger.error("optout crawl: %s", message)

    def _save_run(self) -> None:
        write_atomic(self.out / RUN, json.dumps(self.run, indent=1, sort_keys=True) + "\n")


def load_run(out: Path) -> dict[str, Any]:
    try:
        run = json.loads((out / RUN).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"format": "optout-crawl-run/v1"}
    except (OSError, ValueError) as exc:
        raise CrawlError(f"{out / RUN} is damaged ({exc}); move it away to start a new record of runs") from None
    if not isinstance(run, dict):
        raise CrawlError(f"{out / RUN} is damaged (not a JSON object)")
    return run


def registry_size(url: str | None) -> int:
    """Size of an existing registry (records before this crawl are not part of its report)."""
    if not url:
        return 0
    try:
        with Registry.open(url, create=False) as reg:
            return reg.size
    except (RegistryError, OSError, sqlite3.Error):
        return 0  # none yet, or unreadable: the recorder reports that with its own error
