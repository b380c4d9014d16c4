"""`optout check`: the access and usage stages for single URLs, with `requests` as the fetcher.

Per origin, robots.txt and the site-level policy files are fetched once per run and cached. The resource is
fetched only when robots.txt lets our token fetch it, and redirects are followed by hand so that every hop is
checked against its own origin's robots.txt: a redirect must never carry the crawler into a disallowed path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from urllib.parse import urljoin, urlsplit

from crawler.fetcher import MAX_BODY, RequestsFetcher
from middlewares.engine import (
    MAX_REDIRECTS,
    Fetched,
    LoadedLicense,
    SitePolicy,
    fetch_failure,
    load_license,
    origin_of,
    response_signals,
)
from middlewares.policy import Decision, Policy
from middlewares.protocols.blocklist import Blocklist
from middlewares.protocols.signals import ALL_PURPOSES, Signal
from middlewares.siteload import Fetch, load_site, read_licence, robots_only, run_sync


class UsageError(ValueError):
    """Bad command-line input: reported in one line, exit status 2."""


def validate_url(url: str) -> str:
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"invalid URL {url!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UsageError(f"invalid URL {url!r}: expected an absolute http:// or https:// URL")
    del port
    return text


class Checker:
    """Answers "may this URL be used for the policy's purpose?" for many URLs, sharing per-origin state.

    Politeness is the crawler's: robots.txt first and the other policy files under its rules
    (middlewares/siteload.py), and the origin's Crawl-delay between every two requests, pages included."""

    def __init__(self, policy: Policy, fetcher: RequestsFetcher, blocklist: Blocklist | None = None) -> None:
        self.policy = policy
        self.fetcher = fetcher
        self.blocklist = blocklist
        self.sites: dict[str, SitePolicy] = {}
        self.robots: dict[str, SitePolicy] = {}  # robots.txt alone, of origins hosting a licence
        self.last_request: dict[str, float] = {}  # origin -> when its last answer ended (monotonic)
        self.linked_licenses: dict[str, LoadedLicense] = {}

    def site(self, origin: str) -> SitePolicy:
        site = self.sites.get(origin)
        if site is None:
            site = self.sites[origin] = run_sync(load_site(origin, self.policy), self._fetch, self.robots_of)
        return site

    def robots_of(self, origin: str) -> SitePolicy:
        site = self.sites.get(origin) or self.robots.get(origin)
        if site is None:
            site = self.robots[origin] = run_sync(robots_only(origin, self.policy), self._fetch, self.robots_of)
        return site

    def _fetch(self, step: Fetch) -> list[Fetched]:
        return [self._get(step.origin, url, limit, step.delay) for url, limit in step.files]

    def _get(self, origin: str, url: str, limit: int = MAX_BODY, delay: float = 0.0, follow: bool = True) -> Fetched:
        """One request, ``delay`` seconds at least after the end of the origin's previous answer."""
        known = self.robots.get(origin)
        if known is not None and url == known.robots_url:  # read for a licence already: not asked again
            return known.files[url]
        if delay:
            wait = self.last_request.get(origin, 0.0) + delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        try:
            return self.fetcher.get(url, limit=limit, follow=follow)
        finally:
            self.last_request[origin] = time.monotonic()

    def check(self, url: str) -> Decision:
        policy = self.policy
        signals: list[Signal] = []
        errors: list[str] = []
        listed = self.listed(url)
        if listed is not None:
            return listed
        current = url
        visited: list[SitePolicy] = []
        fetched: Fetched | None = None
        for _hop in range(MAX_REDIRECTS + 1):
            site = self.site(origin_of(current))
            if site not in visited:
                visited.append(site)
            refused = self.refused(site, current, url, signals, errors)
            if refused is not None:
                return refused
            fetched = self._get(origin_of(current), current, delay=site.crawl_delay(policy), follow=False)
            location = fetched.header("location")
            if fetched.status in (301, 302, 303, 307, 308) and location:
                current = urljoin(current, location[-1].strip())
                if not current.startswith(("http://", "https://")):
                    break
                continue
            break
        assert fetched is not None
        fetched.url, fetched.final_url = url, current
        if fetched.status is not None and 300 <= fetched.status < 400:
            fetched.error = fetched.error or f"more than {MAX_REDIRECTS} redirects"
            signals.append(fetch_failure("the resource", "url", current, fetched, ALL_PURPOSES))
        for site in visited:
            signals += site.usage_signals(current, policy)
            errors += site.notes
        facts = response_signals(fetched, policy)
        signals += facts.signals
        errors += facts.notes
        if fetched.error:
            errors.append(f"{current}: {fetched.error}")
        if "rsl" not in policy.disabled:
            signals += self._linked_licenses(facts.license_urls, current, errors)
        return policy.decide(url, signals, unique(errors))

    def listed(self, url: str) -> Decision | None:
        """The blocklist's answer, when it names the URL's site: nothing is requested."""
        if self.blocklist is None:
            return None
        signal = self.blocklist.signal(url)
        return None if signal is None else self.policy.decide(url, [signal])

    def refused(
        self, site: SitePolicy, current: str, url: str = "", signals: Sequence[Signal] = (), errors: Sequence[str] = ()
    ) -> Decision | None:
        """robots.txt's answer when it refuses ``current`` (``url``, or a redirect hop of it, after ``signals`` and
        ``errors`` of the hops before): the whole answer, as the resource is not requested."""
        denied = site.access_signals(current, self.policy)
        if not denied:
            return None
        return self.policy.decide(url or current, [*signals, *denied, *site.failures], [*errors, *site.notes])

    def _linked_licenses(self, urls: list[str], page_url: str, notes: list[str]) -> list[Signal]:
        """RSL licences linked from the resource (Link header or HTML link), read once per run under their own
        origin's robots.txt and Crawl-delay."""
        found: list[Signal] = []
        for lic in urls:
            loaded = self.linked_licenses.get(lic)
            if loaded is None:
                answer = run_sync(read_licence(lic, self.policy), self._fetch, self.robots_of)
                if isinstance(answer, str):
                    notes.append(answer)
                    continue
                loaded = self.linked_licenses[lic] = load_license(lic, answer, self.policy.mode)
            found += loaded.signals(page_url, self.policy, lic)
        return found


def unique(items: list[str]) -> list[str]:
    """Notes once each, in the order they were first given (a site's notes and a page's may repeat)."""
    return list(dict.fromkeys(items))
