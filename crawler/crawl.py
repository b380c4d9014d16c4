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
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scrapy import signals

from crawler.jobqueue import JOURNAL, JournalScheduler, check_journal, committed_positions, register_outputs
from crawler.outfiles import CACHE, DECISIONS, ITEMS, JOB, LOG, REGISTRY, RUN, JsonLines, cut_back, utc, write_atomic
from crawler.runsummary import REFUSED, collect, write_outputs
from crawler.spiders.compliant import CompliantSpider, outcome_signal
from middlewares.defaults import DEFAULT_CRAWL_ID, default, project_value
from middlewares.engine import origin_of
from middlewares.state import OptOutState

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
        from scrapy.exceptions import NotConfigured

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
        from scrapy.utils.defer import deferred_from_coro

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
    from optout_registry.errors import RegistryError
    from optout_registry.registry import Registry

    try:
        with Registry.open(url, create=False) as reg:
            return reg.size
    except (RegistryError, OSError, sqlite3.Error):
        return 0  # none yet, or unreadable: the recorder reports that with its own error


# -- preflight: problems found before anything starts -------------------------------------------------------


def check_jobdir(job: Path) -> str | None:
    """A reason why the crawl could not resume from ``job``, or None. Found now, in one line, rather than by a
    scheduler failing inside Scrapy with a traceback in the log."""
    if not job.exists():
        return None
    if not job.is_dir():
        return f"{job} is not a directory"
    if not (job / JOURNAL).exists() and (job / "requests.queue").exists():
        return f"{job} holds the queue files of an earlier version of optout crawl, which this one does not read"
    return check_journal(job / JOURNAL)


def check_out_dir(out: Path) -> None:
    """The folder must exist (or be creatable) and take appends; a read-only mount or a file in the way is
    reported now, before any request is sent."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CrawlError(f"cannot create {out}: {exc.strerror or exc}") from None
    if not out.is_dir():
        raise CrawlError(f"{out} is not a directory")
    probe = out / f".write-test-{os.getpid()}"
    try:
        with probe.open("w") as f:
            f.write("x")
        probe.unlink()
        for name in (ITEMS, DECISIONS):
            with (out / name).open("a"):
                pass
    except OSError as exc:
        raise CrawlError(f"cannot write to {out}: {exc.strerror or exc}") from None


# -- running it ----------------------------------------------------------------------------------------------


@dataclass
class CrawlOptions:
    """What ``optout crawl`` was asked for; crawl_settings turns it into Scrapy settings. The policy defaults are
    the standalone crawler's (middlewares/defaults.py), so a crawl started from code and one started from
    ``scrapy crawl compliant`` enforce the same thing."""

    seeds: list[str]
    out: Path
    purpose: str = project_value("OPTOUT_PURPOSE")
    agent: str = project_value("OPTOUT_AGENT")
    mode: str = project_value("OPTOUT_MODE")
    disabled: list[str] = field(default_factory=list)
    cross_token: bool = project_value("OPTOUT_CROSS_TOKEN")
    blocklist: str | None = None
    registry_url: str | None = None  # None: out/registry.db; "": recording off
    depth: int = 3
    max_pages: int = 0
    allowed_domains: list[str] = field(default_factory=list)
    sitemaps: bool = True
    concurrency: int | None = None
    delay: float | None = None
    timeout: float | None = None
    info_url: str | None = None
    operator: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    redis_url: str | None = None  # set: one worker of a distributed crawl (crawler/fleet.py)
    crawl_id: str = DEFAULT_CRAWL_ID
    integrate: bool = False  # a worker appends, the integrator signs (OPTOUT_REGISTRY_INTEGRATE)
    signing_key: str | None = None  # Web Bot Auth (middlewares/signing.py)
    signature_agent: str | None = None  # default: the origin of info_url
    extra_settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class CrawlResult:
    reason: str | None
    summary: dict[str, Any] | None
    error: str | None = None
    start_error: str | None = None
    signalled: bool = False  # Ctrl-C (or SIGTERM) asked for the stop

    @property
    def interrupted(self) -> bool:
        return self.signalled and self.reason == "shutdown"


def crawl_settings(opts: CrawlOptions) -> Any:
    """The project's settings (crawler/settings.py) with the options on top."""
    from scrapy.settings import Settings

    from crawler import settings as project
    from crawler.identity import user_agent_for

    settings = Settings()
    settings.setmodule(project, priority="project")
    out = opts.out.resolve()
    registry = f"sqlite:///{out / REGISTRY}" if opts.registry_url is None else opts.registry_url
    info_url = opts.info_url or settings.get("OPTOUT_INFO_URL")
    overrides: dict[str, Any] = {
        "OPTOUT_OUT_DIR": str(out),
        "JOBDIR": str(out / JOB),
        "LOG_FILE": str(out / LOG),
        "LOG_LEVEL": "INFO",
        "OPTOUT_PURPOSE": opts.purpose,
        "OPTOUT_AGENT": opts.agent,
        "OPTOUT_MODE": opts.mode,
        "OPTOUT_PROTOCOLS": {p: False for p in opts.disabled},
        "OPTOUT_CROSS_TOKEN": opts.cross_token,
        "OPTOUT_REGISTRY_URL": registry,
        "OPTOUT_CACHE_URL": f"sqlite:///{out / CACHE}",
        "OPTOUT_INFO_URL": info_url,
        "OPTOUT_REPORT_LABELS": opts.labels,
        "USER_AGENT": user_agent_for(opts.agent, info_url, opts.purpose),
    }
    if opts.signing_key:
        overrides["OPTOUT_SIGNING_KEY"] = str(Path(opts.signing_key).resolve())
        agent = opts.signature_agent or settings.get("OPTOUT_SIGNATURE_AGENT")
        if not agent and opts.info_url:
            agent = origin_of(opts.info_url)
        if agent:
            overrides["OPTOUT_SIGNATURE_AGENT"] = agent
    if opts.redis_url:  # crawler.fleet.FleetAddon does the rest
        overrides["OPTOUT_FLEET_REDIS"] = opts.redis_url
        overrides["OPTOUT_CRAWL_ID"] = opts.crawl_id
        overrides["OPTOUT_REGISTRY_INTEGRATE"] = opts.integrate
        del overrides["JOBDIR"], overrides["OPTOUT_CACHE_URL"]
    else:
        # The journal (crawler/jobqueue.py) is the queue, the dupefilter and the keeper of the spider's state.
        overrides["SCHEDULER"] = "crawler.jobqueue.JournalScheduler"
        overrides["EXTENSIONS"] = {**settings.getdict("EXTENSIONS"), SPIDER_STATE: None}
    if opts.blocklist:
        overrides["OPTOUT_BLOCKLIST"] = opts.blocklist
    if opts.operator:
        overrides["OPTOUT_OPERATOR"] = opts.operator
    if opts.concurrency:
        overrides["CONCURRENT_REQUESTS"] = opts.concurrency
        overrides["CONCURRENT_REQUESTS_PER_DOMAIN"] = opts.concurrency
    if opts.delay is not None:
        overrides["DOWNLOAD_DELAY"] = opts.delay
    if opts.timeout:
        overrides["DOWNLOAD_TIMEOUT"] = opts.timeout
        overrides["OPTOUT_POLICY_TIMEOUT"] = opts.timeout
    settings.setdict({**overrides, **opts.extra_settings}, priority="cmdline")
    return settings


SPIDER_STATE = "scrapy.extensions.spiderstate.SpiderState"
# What enforces opt-outs: the add-on installs these, and `optout crawl` does not run without every one of them.
ENFORCEMENT = {
    "DOWNLOADER_MIDDLEWARES": (
        "middlewares.downloader.OptOutAccessMiddleware",
        "middlewares.downloader.OptOutUsageMiddleware",
        "middlewares.downloader.OptOutPolicyFileDecoding",  # keeps a gzip-bombed policy file at its parse limit
    ),
    "SPIDER_MIDDLEWARES": ("middlewares.items.OptOutSpiderMiddleware",),
    "ITEM_PIPELINES": ("middlewares.items.OptOutItemPipeline",),
}


def spider_args(opts: CrawlOptions) -> dict[str, Any]:
    return {
        "seeds": opts.seeds,
        "allowed_domains": opts.allowed_domains or None,
        "depth": opts.depth,
        "max_pages": opts.max_pages,
        "sitemaps": opts.sitemaps,
    }


def preflight(opts: CrawlOptions) -> Any:
    """Everything that can be checked before the crawl starts; CrawlError with one line otherwise. The settings
    come first, so a typo in an option leaves nothing behind on disk."""
    from middlewares.config import ConfigError, OptOutConfig

    settings = crawl_settings(opts)
    check_numbers(settings)
    check_enforcement(settings)
    try:
        config = OptOutConfig.from_settings(settings)
    except ConfigError as exc:
        raise CrawlError(str(exc)) from None
    if opts.redis_url:
        check_fleet(opts.redis_url)
    check_out_dir(opts.out)
    run = load_run(opts.out)
    for key, wanted in (("purpose", opts.purpose), ("agent", opts.agent), ("mode", opts.mode)):
        if run.get(key) not in (None, wanted):
            raise CrawlError(
                f"{opts.out} holds a crawl with {key} {run[key]!r}, not {wanted!r}: its items would be mixed. "
                "Use another --out (or the same options to resume)"
            )
    problem = check_jobdir(opts.out / JOB)
    if problem:
        raise CrawlError(
            f"cannot resume: {problem}. Move {opts.out / JOB} away to start the crawl afresh "
            f"(items, decisions and the registry in {opts.out} are kept and appended to)"
        )
    if config.registry_url:
        check_registry(config.registry_url, sign=config.integrate)
    return settings


# Scrapy settings a user may pass with -s that are numbers: (least value, whole numbers only). Scrapy itself takes
# `-s DOWNLOAD_DELAY=inf` (the crawl then waits forever) or reports `CONCURRENT_REQUESTS=abc` with a traceback.
NUMBERS = {
    "DOWNLOAD_DELAY": (0, False),
    "DOWNLOAD_TIMEOUT": (0.001, False),
    "CONCURRENT_REQUESTS": (1, True),
    "CONCURRENT_REQUESTS_PER_DOMAIN": (1, True),
    "CONCURRENT_ITEMS": (1, True),
    "DOWNLOAD_MAXSIZE": (0, True),
    "DOWNLOAD_WARNSIZE": (0, True),
    "RETRY_TIMES": (0, True),
    "REDIRECT_MAX_TIMES": (0, True),
    "DEPTH_LIMIT": (0, True),
    "CLOSESPIDER_PAGECOUNT": (0, True),
    "CLOSESPIDER_ITEMCOUNT": (0, True),
    "CLOSESPIDER_TIMEOUT": (0, False),
}


def check_numbers(settings: Any) -> None:
    """Numeric Scrapy settings are finite numbers in range; CrawlError naming the first that is not."""
    for name, (least, whole) in NUMBERS.items():
        value = settings.get(name)
        if value is None:
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise CrawlError(f"{name}: {value!r} is not a number") from None
        if not math.isfinite(number) or number < least or (whole and number != int(number)):
            kind = "a whole number" if whole else "a finite number"
            raise CrawlError(f"{name}: {value!r} must be {kind} of at least {least:g}")


def check_enforcement(settings: Any) -> None:
    """The standalone crawler exists to crawl compliantly: settings that would take the add-on's enforcement away
    (``OPTOUT_ENABLED=False``, ``ADDONS={}``, a middleware set to None, ...) stop it before it starts, instead of
    producing items and a report that look compliant. The check resolves the settings the way Scrapy will, add-ons
    included. A Scrapy project that turns the add-on off in its own settings is its own business."""
    from scrapy.crawler import Crawler
    from scrapy.utils.conf import build_component_list
    from scrapy.utils.misc import load_object

    if not settings.getbool("OPTOUT_ENABLED", default("OPTOUT_ENABLED")):
        raise CrawlError("OPTOUT_ENABLED is False: optout crawl always enforces opt-outs; remove that setting")
    crawler = Crawler(CompliantSpider, settings)  # a copy: the real crawler applies the add-ons again
    try:
        crawler.addons.load_settings(crawler.settings)
    except Exception as exc:
        raise CrawlError(f"ADDONS: {type(exc).__name__}: {exc}") from None
    for name, wanted in ENFORCEMENT.items():
        listed = build_component_list(crawler.settings.getwithbase(name))
        enabled = {load_object(c) if isinstance(c, str) else c for c in listed}
        missing = [path for path in wanted if load_object(path) not in enabled]
        if missing:
            raise CrawlError(
                f"opt-out enforcement is switched off ({missing[0]} is not in {name}; ADDONS must keep "
                "middlewares.OptOutAddon): optout crawl does not run without it"
            )


def check_registry(url: str, sign: bool) -> None:
    """A registry that cannot be opened or written now (unknown scheme, unreachable server, read-only place, a
    key that cannot be created) would leave a whole crawl's opt-outs unrecorded; say so before the first request."""
    from optout_registry import Registry
    from optout_registry.messages import first_line, redact_url

    try:
        with Registry.open(url) as registry:
            if sign:
                registry.vkey  # noqa: B018 - finds or creates the signing key
    except Exception as exc:
        message, where = first_line(exc), redact_url(url)
        raise CrawlError(f"registry: {message}" + ("" if where in message else f" ({where})")) from None


def check_fleet(redis_url: str) -> None:
    """A fleet worker that cannot reach Redis says so now, in one line, instead of failing inside Scrapy's start-up
    (the shared registry is checked like any other, by check_registry)."""
    try:
        import redis

        redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5).ping()
    except ImportError:
        raise CrawlError("--distributed needs the redis extra: pip install 'optout-toolkit[redis]'") from None
    except Exception as exc:
        raise CrawlError(f"cannot reach Redis at {redis_url}: {exc}") from None


def run_crawl(opts: CrawlOptions, progress: Any = None) -> CrawlResult:
    """Run one crawl in this process (Twisted's reactor: once per process). ``progress(files, stats)`` is
    called twice a second while it runs. Ctrl-C stops it gracefully (Scrapy's first SIGINT)."""
    from scrapy.crawler import CrawlerProcess

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
    import signal

    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def handler(num: int, frame: Any, previous: Any = previous) -> None:
            seen.append(num)
            previous(num, frame)

        signal.signal(signum, handler)
