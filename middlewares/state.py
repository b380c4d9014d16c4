"""The per-crawler state shared by the opt-out middlewares and the pipeline: configuration, the origin cache,
the registry recorder and the stats. One instance per crawler, created by whichever component starts first."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any
from weakref import WeakSet

from scrapy import signals
from scrapy.exceptions import IgnoreRequest, NotConfigured, StopDownload
from scrapy.http import Request
from scrapy.http.request import NO_CALLBACK
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.threads import deferToThread

from middlewares.config import ConfigError, OptOutConfig
from middlewares.decoding import ACCEPT_ENCODING
from middlewares.defaults import default
from middlewares.engine import MAX_REDIRECTS, Fetched, origin_of
from middlewares.fleetdelay import FleetCrawlDelay
from middlewares.percrawler import PerCrawler
from middlewares.policy import Decision
from middlewares.recording import Recorder
from middlewares.rediscache import CacheUnavailable, RedisPolicyStore
from middlewares.scrapyinternals import delay_from_download_ends, download_slot
from middlewares.sitecache import SiteCache, open_store

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

_STATES: PerCrawler[OptOutState] = PerCrawler()  # the add-on's state of each running crawler
_SAID_DISABLED: WeakSet[Crawler] = WeakSet()  # crawlers whose "OPTOUT_ENABLED is False" warning was logged

INTERNAL = "optout_internal"
BODY_LIMIT = "optout_body_limit"
_RECEIVED = "optout_received"
DOWNLOAD_PRIORITY = 1000


def slot_key(origin: str) -> str:
    """The download slot of an origin that asked for a Crawl-delay (one per scheme+host+port, RFC 9309 §2.3)."""
    return "optout:" + origin


def fetched_from_response(response: Response, url: str | None = None, limit: int | None = None) -> Fetched:
    """A Scrapy response in the engine's terms (header names lower-cased, one list entry per field line)."""
    headers: dict[str, list[str]] = {}
    # Scrapy's Headers is a dict of title-cased bytes names to lists of bytes values; its own items() normalises
    # every name again and copies every list, which cost more than the rest of this per-page conversion.
    for key, values in dict.items(response.headers):
        headers[key.decode("latin-1").lower()] = [v.decode("latin-1") for v in values]
    body = response.body if limit is None else response.body[:limit]
    return Fetched(url or response.url, response.status, headers, body, final_url=response.url)


class OptOutState:
    """Everything the opt-out components of one crawler share (configuration, policy, origin cache, registry recorder,
    counters); obtain it with :meth:`of`, which makes one per crawler."""

    def __init__(self, crawler: Crawler, config: OptOutConfig) -> None:
        self.crawler = crawler
        self.config = config
        self.policy = config.policy
        self.stats = crawler.stats
        self.honoured: Counter[str] = Counter()
        # Per-request counters, added to the crawl's stats when the spider closes: a Scrapy stats call costs a few
        # microseconds (attribute interception, spider-argument check), paid three times a page otherwise.
        self.tally: Counter[str] = Counter()
        store = open_store(config.cache_url, prefix=config.cache_prefix, outage=config.cache_outage)
        self.cache = SiteCache(
            config.policy,
            self._download,
            ttl=config.robots_ttl,
            recheck=config.recheck_unreachable,
            store=store,
            claim_ttl=config.policy_timeout + 10.0,
            on_fetch=self._count_fetch,
            max_origins=config.max_origins,
        )
        # With a fleet-wide store, Crawl-delay is fleet-wide too (one clock in Redis for all workers).
        self.fleet_delay: FleetCrawlDelay | None = None
        if isinstance(store, RedisPolicyStore):
            from scrapy.utils.reactor import is_asyncio_reactor_installed

            if not is_asyncio_reactor_installed():
                raise ValueError(
                    "OPTOUT_CACHE_URL: a Redis cache needs Twisted's asyncio reactor (TWISTED_REACTOR = "
                    "'twisted.internet.asyncioreactor.AsyncioSelectorReactor', Scrapy's default)"
                )
            self.fleet_delay = FleetCrawlDelay(crawler, store)
        self.recorder: Recorder | None = None
        if config.registry_url:
            self.recorder = Recorder(
                config.registry_url,
                agent=config.policy.agent,
                operator=config.operator,
                node=config.node,
                integrate=config.integrate,
                interval=config.registry_flush,
            )
        crawler.signals.connect(self._spider_closed, signal=signals.spider_closed)
        # Policy files being downloaded: only then is a bytes_received receiver connected (Scrapy sends that signal
        # for every chunk of every response, and a receiver costs each of them a dispatch).
        self._policy_downloads = 0

    @classmethod
    def of(cls, crawler: Crawler) -> OptOutState:
        """The crawler's state, made by the first component that asks (every middleware of the add-on does);
        NotConfigured when ``OPTOUT_ENABLED`` is False, ConfigError for a setting that cannot be used."""
        state = _STATES.get(crawler)
        if state is None:
            if not crawler.settings.getbool("OPTOUT_ENABLED", default("OPTOUT_ENABLED")):
                if crawler not in _SAID_DISABLED:
                    _SAID_DISABLED.add(crawler)
                    logger.warning(
                        "optout: OPTOUT_ENABLED is False: this crawl enforces no opt-out (robots.txt included) "
                        "and records nothing"
                    )
                raise NotConfigured("OPTOUT_ENABLED is False")
            try:
                config = OptOutConfig.from_settings(crawler.settings)
                state = cls(crawler, config)
            except ValueError as exc:  # a bad setting stops the crawl: never crawl unprotected
                raise ConfigError(str(exc)) from None
            _STATES.set(crawler, state)
            logger.info(
                "optout: enforcing %s for agent %s (%s mode), registry %s",
                config.policy.purpose.value,
                config.policy.agent,
                config.policy.mode.value,
                config.registry_url or "off",
            )
        return state

    @staticmethod
    def current(crawler: Crawler) -> OptOutState | None:
        """The crawler's state if the add-on made one (None when it is off), without making it."""
        return _STATES.get(crawler)

    @staticmethod
    def attach(crawler: Crawler, state: Any) -> None:
        """Make ``state`` the crawler's (for tests that stand in for the add-on)."""
        _STATES.set(crawler, state)

    # -- fetching policy files through Scrapy's own downloader ------------------------------------------------

    async def _download(self, url: str, limit: int, delay: float = 0.0, after: float = 0.0) -> Fetched:
        """A policy file through Scrapy's downloader, keeping its origin's Crawl-delay (``delay`` seconds between
        requests, the first a full delay after ``after``, when robots.txt was fetched)."""
        request = Request(
            url,
            priority=DOWNLOAD_PRIORITY,
            callback=NO_CALLBACK,
            dont_filter=True,
            meta={
                INTERNAL: True,
                "dont_obey_robotstxt": True,
                "dont_retry": True,
                "redirect_ttl": MAX_REDIRECTS,
                "download_timeout": self.config.policy_timeout,
                # A policy file larger than what we parse is read up to just past the limit and then cut off
                # (see _bytes_received), not refused: RFC 9309 §2.5 says parse the first 500 KiB of robots.txt,
                # which a size cap that fails the download (even on Content-Length alone) would turn into "5xx".
                BODY_LIMIT: limit,
                "download_maxsize": 0,
                "download_warnsize": 0,
            },
            # Decoded by OptOutPolicyFileDecoding up to the limit; an encoding we did not ask for is an error.
            headers={"Accept-Encoding": ACCEPT_ENCODING},
        )
        assert self.crawler.engine is not None
        origin = origin_of(url)
        if delay:
            try:
                await self.pace(request, origin, delay, after)
            except CacheUnavailable as exc:
                return Fetched(url, None, error=f"Crawl-delay {delay:g} s cannot be honoured fleet-wide: {exc}")
        elif slot_key(origin) in self.crawler.engine.downloader.slots:
            # A robots.txt fetched again (its answer expired) keeps the Crawl-delay its last copy asked for.
            request.meta["download_slot"] = slot_key(origin)
        if not self._policy_downloads:
            self.crawler.signals.connect(self._bytes_received, signal=signals.bytes_received)
        self._policy_downloads += 1
        try:
            response = await self.crawler.engine.download_async(request)
        except IgnoreRequest as exc:  # e.g. more than 5 redirects
            return Fetched(url, None, error=str(exc) or "redirect limit reached")
        except Exception as exc:
            return Fetched(url, None, error=f"{type(exc).__name__}: {exc}"[:300])
        finally:
            self._policy_downloads -= 1
            if not self._policy_downloads:
                self.crawler.signals.disconnect(self._bytes_received, signal=signals.bytes_received)
        # One byte past the limit: the parsers see that the file went on (a note, and a line cut in half by
        # the limit is dropped rather than read as a shorter, broader rule).
        fetched = fetched_from_response(response, url=url, limit=limit + 1)
        if 300 <= response.status < 400:
            fetched.error = f"more than {MAX_REDIRECTS} redirects"
        return fetched

    async def pace(self, request: Request, origin: str, delay: float, after: float) -> None:
        """Keep the origin's Crawl-delay for ``request`` (a page or a policy file).

        One process: one download slot per origin (RFC 9309 scopes robots.txt to scheme+host+port) fetching one
        request at a time, ``delay`` apart, the first a full delay after robots.txt (``after``, wall time); other
        origins keep their own slots. A fleet: the spacing comes from the shared clock in Redis, so the slot adds
        no delay of its own (a granted request must leave at once). Raises CacheUnavailable when that clock cannot
        be reached: then the request must not be made."""
        if self.fleet_delay is not None:
            await self.fleet_delay.wait(request, origin, delay, after)
        engine = self.crawler.engine
        key = slot_key(origin)
        if engine is None or request.meta.get("download_slot") == key:
            return  # a redirect, or a policy file already paced
        # The origin's slot even when the spider named one of its own: requests spread over several slots would each
        # keep the delay only from the others in their slot.
        request.meta["download_slot"] = key
        # AutoThrottle lowers a slot's delay after fast answers (towards latency / target concurrency), which would
        # take the slot below Crawl-delay for the requests already queued in it.
        request.meta["autothrottle_dont_adjust_delay"] = True
        downloader = engine.downloader
        slot = downloader.slots.get(key)
        if slot is None:
            slot = download_slot(downloader, request)
            slot.lastseen = max(0.0, time.monotonic() - max(0.0, time.time() - after))
        fleet = self.fleet_delay is not None
        if slot.concurrency != 1 or (not fleet and slot.delay < delay):
            slot.delay = 0.0 if fleet else max(slot.delay, delay)
            slot.jitter = 0.0  # never randomised below the delay
            slot.concurrency = 1
            if not fleet:
                # Counted from the end of each download, not from its dispatch as Scrapy does: a stall before the
                # wire can then never bring the next request to the server early.
                delay_from_download_ends(slot)
            self.stats.set_value(f"optout/crawl_delay/{origin}", delay)

    @staticmethod
    def _bytes_received(data: bytes, request: Request, spider: Any = None) -> None:
        """Stop reading a policy file once it is past its parse limit; the response keeps what arrived."""
        meta = request.meta
        limit = meta.get(BODY_LIMIT)
        if limit is None:
            return
        # Counted per request object: a redirect copies the meta, and its body must not count towards the next.
        owner, received = meta.get(_RECEIVED, (None, 0))
        received = (received if owner == id(request) else 0) + len(data)
        meta[_RECEIVED] = (id(request), received)
        if received > limit:
            raise StopDownload(fail=False)

    def _count_fetch(self, fetched: Fetched) -> None:
        kind = fetched.url.rsplit("/", 1)[-1] or "file"
        self.stats.inc_value(f"optout/fetch/{kind}")
        self.stats.inc_value(f"optout/fetch/status/{fetched.status if fetched.status is not None else 'error'}")

    # -- outcomes --------------------------------------------------------------------------------------------

    def honour(self, decision: Decision, action: str, **evidence: Any) -> None:
        """Count and record a decision that kept content out (or flagged it)."""
        protocols = sorted({s.protocol for s in decision.reservations})
        for protocol in protocols:
            self.honoured[protocol] += 1
            self.stats.inc_value(f"optout/honoured/{protocol}")
        self.stats.inc_value(f"optout/decision/{action}")
        if self.recorder is not None:
            queued = self.recorder.record(decision, action, **evidence)
            self.stats.inc_value("optout/registry/queued", queued)

    async def _spider_closed(self, spider: Any, reason: str) -> None:
        for key, count in self.tally.items():
            self.stats.inc_value(key, count)
        self.tally.clear()
        await self.cache.close()
        if self.recorder is not None:
            await maybe_deferred_to_future(deferToThread(self.recorder.close))
            self.stats.set_value("optout/registry/written", self.recorder.written)
            if self.recorder.retried:
                self.stats.set_value("optout/registry/retried", self.recorder.retried)
            if self.recorder.failed or self.recorder.errors:
                self.stats.set_value("optout/registry/errors", self.recorder.failed + len(self.recorder.errors))
        summary = ", ".join(f"{p} {n}" for p, n in self.honoured.most_common()) or "none"
        written = self.recorder.written if self.recorder else 0
        logger.info(
            "optout: honoured opt-outs by protocol: %s; %d registry records written%s",
            summary,
            written,
            f" ({self.config.registry_url})" if self.recorder else "",
        )
