"""Per-origin policy state for a crawl: robots.txt and the site-level files, fetched once, shared by every
request to that origin, persisted across runs, and never older than 24 hours (RFC 9309 §2.4).

Scrapy's RobotsTxtMiddleware has every request that arrives while robots.txt is being fetched wait on one
Deferred converted with ``asFuture()``, which hands the result to the first waiter only: the others get ``None``
and are allowed. Here each waiter gets its own Deferred and all of them receive the same parsed policy.

An origin whose robots.txt was unreachable is disallowed, and that answer is kept only for a short re-check
interval, not for the whole run: fail closed, then look again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from middlewares.engine import Fetched, SitePolicy, robots_url
from middlewares.policy import Policy
from middlewares.rediscache import RedisPolicyStore
from middlewares.siteload import Fetch, Plan, RobotsOf, load_site, read_licence, robots_only, run_sync
from optout_registry.messages import first_line

logger = logging.getLogger(__name__)

T = TypeVar("T")
# fetch(url, size limit, Crawl-delay of its origin, wall time of the origin's last known request): the answer.
FetchFn = Callable[[str, int, float, float], Awaitable[Fetched]]


@dataclass
class _Entry:
    site: SitePolicy
    expires: float


class PolicyStore:
    """Raw answers (status, headers, body) of policy files in SQLite, keyed by URL, with their fetch time. Raw
    answers rather than parsed objects: a parser fix applies to cached files too, and evidence stays exact.

    The store interface (``get``/``put``/``claim``/``release``/``close``, all awaitable) is shared with the
    fleet-wide Redis store (middlewares/rediscache.py); here one process owns the file, so a claim always
    succeeds and SiteCache's in-process single flight is all the coordination there is."""

    # No one else stores answers here: what was not there before a claim is not there after it either.
    shared = False

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS policy_file(url TEXT PRIMARY KEY, fetched_at REAL NOT NULL,"
            " expires_at REAL NOT NULL, status INTEGER, headers TEXT NOT NULL, body BLOB NOT NULL,"
            " final_url TEXT NOT NULL, error TEXT NOT NULL)"
        )

    def load(self, url: str, now: float) -> tuple[Fetched, float] | None:
        """A stored answer that has not expired, with its expiry time (synchronous: the spider reads it too)."""
        row = self.db.execute(
            "SELECT status, headers, body, final_url, error, expires_at, fetched_at FROM policy_file"
            " WHERE url = ? AND expires_at > ?",
            (url, now),
        ).fetchone()
        if row is None:
            return None
        status, headers, body, final_url, error, expires, fetched_at = row
        fetched = Fetched(url, status, json.loads(headers), bytes(body), final_url, error, fetched_at=fetched_at)
        return fetched, expires

    async def get(self, url: str, now: float) -> tuple[Fetched, float] | None:
        """The stored answer with its expiry; None when absent or expired."""
        return self.load(url, now)

    def site(self, origin: str, policy: Policy) -> SitePolicy | None:
        """The origin's policy rebuilt from stored answers alone, expired or not (no request is made): the files
        a crawl read, by the same rules. None when one of them is not stored."""

        def answers(step: Fetch) -> list[Fetched]:
            found = [self.load(url, 0.0) for url, _ in step.files]
            if any(f is None for f in found):
                raise LookupError(step.origin)
            return [f[0] for f in found if f is not None]

        def robots_of(origin: str) -> SitePolicy:
            return run_sync(robots_only(origin, policy), answers, robots_of)

        try:
            return run_sync(load_site(origin, policy), answers, robots_of)
        except LookupError:
            return None

    async def put(self, fetched: Fetched, expires: float) -> None:
        """Store an answer (compacted) until ``expires``, replacing the previous one for its URL."""
        fetched = fetched.compacted()
        self.db.execute(
            "INSERT OR REPLACE INTO policy_file VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                fetched.url,
                fetched.fetched_at,
                expires,
                fetched.status,
                json.dumps({k: list(v) for k, v in fetched.headers.items()}),
                fetched.body,
                fetched.final_url,
                fetched.error,
            ),
        )

    async def claim(self, url: str, ttl: float) -> bool:
        """Always True: one process owns the file, and SiteCache's single flight already keeps each fetch single."""
        return True

    async def release(self, url: str) -> None:
        """Nothing to release: claims always succeed here."""
        return None

    async def close(self) -> None:
        """Close the SQLite database."""
        self.db.close()


Store = PolicyStore | RedisPolicyStore


def open_store(url: str | None, **options: Any) -> Store | None:
    """The persistent policy store an ``OPTOUT_CACHE_URL`` names: ``sqlite:///path`` (one machine, across
    runs) or ``redis://host:port/db`` (shared by a fleet of workers)."""
    if not url:
        return None
    if url.startswith("sqlite:///"):
        return PolicyStore(Path(url[len("sqlite:///") :]))
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisPolicyStore(url, **options)
    raise ValueError(f"OPTOUT_CACHE_URL: unsupported URL {url!r} (expected sqlite:///path or redis://host:port/db)")


class SingleFlight:
    """One load per key at a time: whoever asks while it runs gets the same result (or the same error), each
    through a Deferred of its own. Scrapy's RobotsTxtMiddleware shares one Deferred converted with ``asFuture()``,
    which hands the result to the first waiter only."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[Deferred[Any]]] = {}

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        """The result of ``work()``, run once for ``key`` however many callers ask while it runs; each gets the same
        result or the same exception."""
        waiters = self._waiting.get(key)
        if waiters is not None:
            waiter: Deferred[T] = Deferred()
            waiters.append(waiter)
            return await maybe_deferred_to_future(waiter)
        self._waiting[key] = []
        try:
            result = await work()
        except BaseException as exc:
            for waiter in self._waiting.pop(key):
                waiter.errback(exc)
            raise
        for waiter in self._waiting.pop(key):
            waiter.callback(result)
        return result


class SiteCache:
    """Drives :func:`middlewares.siteload.load_site` on Twisted: robots.txt first, then the files it lets us read,
    each file fetched once per URL however many origins or workers ask (an RSL licence shared by a thousand
    sites is one request), with the Crawl-delay the plan names passed on to ``fetch``."""

    def __init__(
        self,
        policy: Policy,
        fetch: FetchFn,
        *,
        ttl: float,
        recheck: float,
        store: Store | None = None,
        claim_ttl: float = 30.0,
        clock: Callable[[], float] = time.time,
        on_fetch: Callable[[Fetched], None] | None = None,
        max_origins: int = 5000,
    ) -> None:
        self.policy = policy
        self.fetch = fetch
        self.ttl = ttl
        self.recheck = recheck
        self.store = store
        self.claim_ttl = claim_ttl
        self.clock = clock
        self.on_fetch = on_fetch
        # Least recently used origins are evicted beyond ``max_origins`` so memory stays flat however many
        # origins a crawl touches; an evicted origin is reloaded from the persistent store, not refetched.
        self.max_origins = max_origins
        self._sites: OrderedDict[str, _Entry] = OrderedDict()
        self._answers: OrderedDict[str, tuple[Fetched, float]] = OrderedDict()
        self._flights = SingleFlight()

    def cached(self, origin: str, expired: bool = False) -> SitePolicy | None:
        """The origin's policy if it is in memory and fresh; with ``expired``, also one whose time is up but that
        is still held (what a decision made a moment ago was based on, for its evidence)."""
        entry = self._sites.get(origin)
        if entry is None:
            return None
        if entry.expires <= self.clock():
            return entry.site if expired else None
        self._sites.move_to_end(origin)
        return entry.site

    async def get(self, origin: str) -> SitePolicy:
        """The origin's policy: from memory when fresh, else loaded once for every caller (store first, then the
        network). Never raises for the origin's failures, which become fail-closed signals."""
        site = self.cached(origin)
        if site is not None:
            return site
        return await self._flights.run("site " + origin, lambda: self._load(origin))

    async def robots_of(self, origin: str) -> SitePolicy:
        """What ``origin``'s robots.txt allows, without its other files: enough to fetch one file there."""
        site = self.cached(origin)
        if site is not None:
            return site
        return await self._drive(robots_only(origin, self.policy), [])

    async def licence(self, url: str) -> Fetched | str:
        """An RSL licence a page links to (:func:`middlewares.siteload.read_licence`): its answer, or why it was
        not requested."""
        return await self._drive(read_licence(url, self.policy), [])

    async def _load(self, origin: str) -> SitePolicy:
        expiries: list[float] = []
        try:
            site = await self._drive(load_site(origin, self.policy), expiries)
        except Exception as exc:  # never leave waiters hanging, never allow on an internal error
            reason = first_line(exc)[:300]
            logger.error("optout: loading the policy of %s failed: %s; treating it as unreachable", origin, reason)
            failed = Fetched(robots_url(origin), None, error=f"policy unavailable: {reason}")
            site = SitePolicy.from_robots(origin, failed, self.policy)
        # Kept until its oldest file expires, so a copy loaded from the persistent store is not kept beyond 24
        # hours from its own fetch; an unreachable robots.txt is looked at again soon.
        if site.unreachable:
            expiries.append(self.clock() + self.recheck)
        self._sites[origin] = _Entry(site, min(expiries, default=self.clock() + self.recheck))
        self._sites.move_to_end(origin)
        while len(self._sites) > self.max_origins:
            self._sites.popitem(last=False)
        return site

    async def _drive(self, plan: Plan[T], expiries: list[float]) -> T:
        reply: list[Fetched] | SitePolicy | None = None
        while True:
            try:
                step = plan.send(reply)
            except StopIteration as done:
                result: T = done.value
                return result
            if isinstance(step, RobotsOf):
                reply = await self.robots_of(step.origin)
                continue
            loaded = await self._files([(url, limit, step.delay, step.after) for url, limit in step.files])
            expiries += [expires for _, expires in loaded]
            reply = [fetched for fetched, _ in loaded]

    async def _files(self, wanted: list[tuple[str, int, float, float]]) -> list[tuple[Fetched, float]]:
        """Several files of one origin, one after the other: each can go on the connection the previous answer left
        open (at once, all but one would usually open a connection of their own to the origin: a TCP and, over
        HTTPS, a TLS handshake more, which takes about as long as the wait it saves), and none needs the task and
        Deferred of a concurrent fetch. With a Crawl-delay the fetcher spaces them anyway."""
        return [await self._file(*args) for args in wanted]

    async def _file(self, url: str, limit: int, delay: float = 0.0, after: float = 0.0) -> tuple[Fetched, float]:
        """A file's answer and when it expires: from memory, else from the store, else fetched (once)."""
        known = self._answers.get(url)
        if known is not None and known[1] > self.clock():
            self._answers.move_to_end(url)
            return known
        answer = await self._flights.run("file " + url, lambda: self._stored_or_fetched(url, limit, delay, after))
        self._answers[url] = answer
        self._answers.move_to_end(url)
        while len(self._answers) > 3 * self.max_origins:
            self._answers.popitem(last=False)
        return answer

    async def _stored_or_fetched(self, url: str, limit: int, delay: float, after: float) -> tuple[Fetched, float]:
        store = self.store
        if store is None:
            return await self._fetch(url, limit, delay, after)
        # Fleet-wide single flight: the first worker to claim the URL fetches it; the others read its answer
        # from the shared store once it is there. A claim expires, so a worker killed mid-fetch holds no one up
        # for longer than ``claim_ttl``; after that a waiter fetches itself (a second fetch, never a guess).
        deadline = self.clock() + self.claim_ttl + 5.0
        pause = 0.05
        while True:
            stored = await store.get(url, self.clock())
            if stored is not None:
                return stored
            if await store.claim(url, self.claim_ttl) or self.clock() > deadline:
                break
            await sleep(pause)
            pause = min(pause * 2, 0.5)
        try:
            # Another worker may have stored its answer and released its claim between our look and our claim
            # (likely: workers that waited for the same robots.txt all reach the next file at the same moment).
            # A store of our own cannot have changed: a second look would cost a query per file for nothing.
            stored = await store.get(url, self.clock()) if store.shared else None
            if stored is not None:
                return stored
            fetched, expires = await self._fetch(url, limit, delay, after)
            await store.put(fetched, expires)
        finally:
            await store.release(url)
        return fetched, expires

    async def _fetch(self, url: str, limit: int, delay: float, after: float) -> tuple[Fetched, float]:
        fetched = await self.fetch(url, limit, delay, after)
        if self.on_fetch is not None:
            self.on_fetch(fetched)
        # Failures (5xx, 429, no answer) are re-checked soon; a good answer lasts the RFC 9309 maximum.
        failed = fetched.status is None or fetched.status >= 500 or fetched.status == 429
        return fetched, self.clock() + (self.recheck if failed else self.ttl)

    async def close(self) -> None:
        """Close the persistent store, if there is one."""
        if self.store is not None:
            await self.store.close()


async def sleep(seconds: float) -> None:
    """Wait without blocking the reactor: on asyncio's loop when the coroutine runs on one (Scrapy's asyncio
    reactor, or plain asyncio), else with Twisted's reactor."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        from twisted.internet import reactor  # here, not at the top: importing it installs Twisted's default reactor

        await maybe_deferred_to_future(deferLater(reactor, seconds, lambda: None))
    else:
        await asyncio.sleep(seconds)
