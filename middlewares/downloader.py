"""Scrapy downloader middlewares enforcing opt-outs: access before download, usage after.

``OptOutAccessMiddleware`` replaces Scrapy's RobotsTxtMiddleware (same place in the chain, priority 100): it
waits, without blocking the reactor, for the origin's policy (robots.txt and the site-level files fetched through
Scrapy's own downloader), refuses blocklisted and disallowed URLs with ``IgnoreRequest``, and routes each origin to
its own download slot carrying the robots.txt Crawl-delay, so a slow origin never slows the others.

``OptOutUsageMiddleware`` sits next to the engine (priority 50), so it sees the final response after redirects
and decompression: it evaluates headers, HTML and media metadata with the policy engine and drops a reserved
response before it reaches the spider (``OPTOUT_ON_RESERVED = "drop"``), or passes it on with
``response.meta["optout_decision"]`` for spiders that only follow links (``"annotate"``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy.exceptions import IgnoreRequest
from scrapy.utils.httpobj import urlparse_cached

from middlewares.decoding import DecodingError, codings, decode
from middlewares.engine import (
    SIGNAL_HEADERS,
    LoadedLicense,
    SitePolicy,
    load_license,
    origin_of,
    page_head,
    quiet_page,
    response_signals,
)
from middlewares.policy import Decision
from middlewares.protocols.html import HtmlHead
from middlewares.protocols.media import media_type
from middlewares.protocols.signals import Signal
from middlewares.recording import EXCLUDED, FETCHED_NOT_STORED, NOT_FETCHED
from middlewares.rediscache import CacheUnavailable
from middlewares.state import BODY_LIMIT, INTERNAL, OptOutState, fetched_from_response

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request, Response

logger = logging.getLogger(__name__)

DECISION_META = "optout_decision"


def _origin(request: Request) -> str:
    """``origin_of(request.url)`` from the parse Scrapy caches on the request (its offsite and cookie middlewares
    and the downloader's slot key parse the same URL)."""
    parts = urlparse_cached(request)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def _skip(request: Request) -> bool:
    return bool(request.meta.get(INTERNAL)) or not request.url.startswith(("http://", "https://"))


class _AccessChecks:
    """What the access middleware does for every request: blocklist, robots.txt, Crawl-delay."""

    def __init__(self, crawler: Crawler) -> None:
        self.state = OptOutState.of(crawler)
        self.crawler = crawler

    async def process_request(self, request: Request, spider: object = None) -> None:
        if _skip(request):
            return
        state = self.state
        policy = state.policy
        url = request.url
        blocklist = state.config.blocklist
        if blocklist is not None:
            listed = blocklist.signal(url)
            if listed is not None:
                raise self._refusal(request, policy.decide(url, [listed]), None)
        origin = _origin(request)
        # A known origin is answered without a coroutine: this runs for every request of the crawl.
        site = state.cache.cached(origin) or await state.cache.get(origin)
        denied = site.access_signals(url, policy)
        if denied:
            decision = policy.decide(url, denied + site.failures, site.notes)
            raise self._refusal(request, decision, site)
        state.tally["optout/access/allowed"] += 1
        delay = site.crawl_delay(policy)
        if delay:
            try:
                await state.pace(request, origin, delay, site.robots_fetched_at)
            except CacheUnavailable as exc:
                state.stats.inc_value("optout/access/gate_unavailable")
                logger.error("optout: not fetching %s: the fleet's Crawl-delay clock is unavailable (%s)", url, exc)
                raise IgnoreRequest(f"optout: Crawl-delay {delay:g} s cannot be honoured fleet-wide: {exc}") from None

    def _refusal(self, request: Request, decision: Decision, site: SitePolicy | None) -> IgnoreRequest:
        """Count and record a refused request; the exception that drops it, for the caller to raise."""
        state = self.state
        request.meta[DECISION_META] = decision
        state.stats.inc_value("optout/access/denied")
        state.honour(decision, NOT_FETCHED, site=site)
        reasons = "; ".join(f"{s.protocol}: {s.rule}" for s in decision.reservations)
        logger.debug("optout: not fetching %s (%s)", request.url, reasons)
        return IgnoreRequest(f"optout: {reasons}")


class OptOutAccessMiddleware(_AccessChecks):
    """The access checks, and on a fleet worker the release of each Crawl-delay grant once its request is answered
    (or failed), so that the next request to that origin may be granted."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> _AccessChecks:
        # Scrapy calls every process_response/process_exception a middleware has, for every request, at a cost of
        # a few microseconds each: outside a fleet the stock middleware comes without them. A subclass keeps them
        # (they do nothing there), so it can never lose a fleet's releases.
        if cls is OptOutAccessMiddleware and OptOutState.of(crawler).fleet_delay is None:
            return _AccessChecks(crawler)
        return cls(crawler)

    def process_response(self, request: Request, response: Response, spider: object = None) -> Response:
        """Release the request's fleet Crawl-delay grant, so that the origin's next request may go."""
        if self.state.fleet_delay is not None:
            self.state.fleet_delay.release(request)
        return response

    def process_exception(self, request: Request, exception: BaseException, spider: object = None) -> None:
        """Release the grant of a failed request too; the exception goes on to Scrapy's other middlewares."""
        if self.state.fleet_delay is not None:
            self.state.fleet_delay.release(request)


class OptOutPolicyFileDecoding:
    """Decodes policy files (gzip, deflate) up to one byte past their parse limit, before Scrapy's
    HttpCompressionMiddleware (590) would expand them whole: 1 MB of gzip on the wire can be 1 GB decoded
    (middlewares/decoding.py). Pages are left to HttpCompressionMiddleware, bounded by ``DOWNLOAD_MAXSIZE``."""

    def process_response(self, request: Request, response: Response, spider: object = None) -> Response:
        """A policy file decoded up to one byte past its limit (so an oversized file is still seen as one), or
        IgnoreRequest when it cannot be decoded; pages pass untouched."""
        limit = request.meta.get(BODY_LIMIT)
        if limit is None:  # a page: every response passes here, so this is all it costs
            return response
        applied = response.headers.getlist(b"Content-Encoding")
        if not applied:
            return response
        try:
            body = decode(response.body, codings(v.decode("latin-1") for v in applied), limit + 1)
        except DecodingError as exc:
            raise IgnoreRequest(f"{request.url}: {exc}") from None
        headers = response.headers.copy()
        del headers[b"Content-Encoding"]
        return response.replace(body=body, headers=headers)


# Scrapy's names (title-cased bytes) of the headers response_signals reads, to screen a response's header names with.
_SIGNAL_HEADER_KEYS = frozenset(name.encode("latin-1").title() for name in SIGNAL_HEADERS)


def _screen(response: Response, agent: str) -> tuple[bool, HtmlHead | None]:
    """Whether a 2xx answer, not redirected, has nothing for response_signals to find (engine.quiet_page), screened
    straight from Scrapy's response: most pages are quiet, and for them no Fetched is built. With the answer, the
    HTML head it scanned, for the full reading of a page that is not quiet."""
    if not 200 <= response.status < 300:
        return False, None
    headers = response.headers  # a dict of title-cased bytes names (Scrapy's Headers) to lists of bytes values
    if not _SIGNAL_HEADER_KEYS.isdisjoint(dict.keys(headers)):
        return False, None
    types = dict.get(headers, b"Content-Type")
    head = page_head(response.body, media_type(types[-1].decode("latin-1")) if types else "")
    return head is not None and quiet_page(head, response.url, agent), head


class OptOutUsageMiddleware:
    """Decides whether a fetched page may be used for the purpose: the site-level reservations, the response's headers,
    HTML and media metadata, and the RSL licences it links. A reserved page is dropped or annotated
    (``OPTOUT_ON_RESERVED``) and recorded."""

    def __init__(self, crawler: Crawler) -> None:
        self.state = OptOutState.of(crawler)
        self.licenses: dict[str, LoadedLicense] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> OptOutUsageMiddleware:
        return cls(crawler)

    async def process_response(self, request: Request, response: Response, spider: object = None) -> Response:
        """The response, with its decision in ``meta["optout_decision"]``; IgnoreRequest when it is reserved and
        ``OPTOUT_ON_RESERVED = "drop"``. Redirects and error pages pass undecided."""
        if _skip(request) or 300 <= response.status < 400:
            return response
        state = self.state
        policy = state.policy
        url = response.url
        first_url = (request.meta.get("redirect_urls") or [request.url])[0]
        origin = _origin(request) if url == request.url else origin_of(url)
        site = state.cache.cached(origin) or await state.cache.get(origin)
        site_signals = site.usage_signals(url, policy)
        fetched = None
        quiet, head = _screen(response, policy.agent) if not site_signals and url == first_url else (False, None)
        if quiet:
            decision = policy.decide(url, (), site.notes)
        else:
            fetched = fetched_from_response(response, url=first_url)
            facts = response_signals(fetched, policy, head)
            if all(s.protocol == "fetch" for s in facts.signals) and facts.signals:
                return response  # a 404 or 500 page is not an opt-out: let Scrapy's HttpError handling see it
            signals = site_signals + facts.signals
            notes = site.notes + facts.notes
            if facts.license_urls and "rsl" not in policy.disabled:
                linked, unread = await self._linked_licenses(facts.license_urls, url)
                signals += linked
                notes += unread
            decision = policy.decide(url, signals, notes)
        request.meta[DECISION_META] = decision
        if decision.allowed:
            state.tally["optout/usage/allowed"] += 1
            return response
        state.stats.inc_value("optout/usage/reserved")
        drop = state.config.on_reserved == "drop"
        assert fetched is not None  # a quiet page is allowed
        state.honour(decision, FETCHED_NOT_STORED if drop else EXCLUDED, site=site, response=fetched)
        if drop:
            reasons = "; ".join(f"{s.protocol}: {s.rule}" for s in decision.reservations)
            raise IgnoreRequest(f"optout: reserved for {policy.purpose.value} ({reasons})")
        return response

    async def _linked_licenses(self, urls: list[str], page_url: str) -> tuple[list[Signal], list[str]]:
        """RSL licences linked from responses, read once per crawl under their own origin's robots.txt."""
        found: list[Signal] = []
        notes: list[str] = []
        for url in urls:
            loaded = self.licenses.get(url)
            if loaded is None:
                answer = await self.state.cache.licence(url)
                if isinstance(answer, str):
                    notes.append(answer)
                    continue
                loaded = self.licenses[url] = load_license(url, answer, self.state.policy.mode)
            found += loaded.signals(page_url, self.state.policy, url)
        return found, notes
