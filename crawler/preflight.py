"""What ``optout crawl`` is asked for (CrawlOptions), the Scrapy settings that makes of it, and everything checked
before the crawl starts (preflight), so that a problem is one line for the user rather than a traceback in the
log after requests went out."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scrapy.crawler import Crawler
from scrapy.settings import Settings
from scrapy.utils.conf import build_component_list
from scrapy.utils.misc import load_object

from crawler import settings as project
from crawler.identity import user_agent_for
from crawler.jobqueue import JOURNAL, check_journal
from crawler.outfiles import CACHE, DECISIONS, ITEMS, JOB, LOG, REGISTRY
from crawler.runfiles import CrawlError, load_run
from crawler.spiders.compliant import CompliantSpider
from middlewares.config import ConfigError, OptOutConfig
from middlewares.defaults import DEFAULT_CRAWL_ID, default, project_value
from middlewares.engine import origin_of
from optout_registry import Registry
from optout_registry.messages import first_line, redact_url


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


def crawl_settings(opts: CrawlOptions) -> Any:
    """The project's settings (crawler/settings.py) with the options on top."""
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


# -- the output folder ---------------------------------------------------------------------------------------


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
