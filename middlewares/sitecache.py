"""Per-origin policy state for a crawl: robots.txt and the site-level files, fetched once, shared by every
request to that origin, persisted across runs, and never older than 24 hours (RFC 9309 §2.4).

Scrapy's RobotsTxtMiddleware has every request that arrives while robots.txt is being fetched wait on one
Deferred converted with ``asFuture()``, which hands the result to the first waiter only: the others get ``None``
and are allowed. Here each waiter gets its own Deferred and all of them receive the same parsed policy.

An origin whose robots.txt was unreachable is disallowed, and that answer is kept only for a short re-check
interval, not for the whole run: fail closed, then look again.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from twisted.internet.defer import Deferred, gatherResults

from middlewares.engine import POLICY_FILE_LIMIT, Fetched, SitePolicy, site_files
from middlewares.policy import Policy

if TYPE_CHECKING:
    from middlewares.rediscache import RedisPolicyStore

logger = logging.getLogger(__name__)

FetchFn = Callable[[str, int], Awaitable[Fetched]]


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
        return self.load(url, now)

    async def put(self, fetched: Fetched, expires: float) -> None:
        fetched = compact(fetched)
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
        return True

    async def release(self, url: str) -> None:
        return None

    async def close(self) -> None:
        self.db.close()


def compact(fetched: Fetched) -> Fetched:
    """What is worth keeping of a policy file's answer: a 4xx means "no such file" (RFC 9309 §2.3.1.3), so
    its error page is dropped; 2xx bodies are the policy and 5xx bodies the evidence of a fail-closed decision."""
    if fetched.status is not None and 400 <= fetched.status < 500 and fetched.body:
        return replace(fetched, body=b"")
    return fetched


Store = Union[PolicyStore, "RedisPolicyStore"]


def open_store(url: str | None, **options: Any) -> Store | None:
    """The persistent policy store an ``OPTOUT_CACHE_URL`` names: ``sqlite:///path`` (one machine, across
    runs) or ``redis://host:port/db`` (shared by a fleet of workers)."""
    if not url:
        return None
    if url.startswith("sqlite:///"):
        return PolicyStore(Path(url[len("sqlite:///") :]))
    if url.startswith(("redis://", "rediss://", "unix://")):
        from middlewares.rediscache import RedisPolicyStore

        return RedisPolicyStore(url, **options)
    raise ValueError(f"OPTOUT_CACHE_URL: unsupported URL {url!r} (expected sqlite:///path or redis://host:port/db)")


class SiteCache:
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
        self._waiting: dict[str, list[Deferred[SitePolicy]]] = {}

    def cached(self, origin: str) -> SitePolicy | None:
        entry = self._sites.get(origin)
        if entry is None or entry.expires <= self.clock():
            return None
        self._sites.move_to_end(origin)
        return entry.site

    async def get(self, origin: str) -> SitePolicy:
        site = self.cached(origin)
        if site is not None:
            return site
        if origin in self._waiting:
            waiter: Deferred[SitePolicy] = Deferred()
            self._waiting[origin].append(waiter)
            from scrapy.utils.defer import maybe_deferred_to_future

            return await maybe_deferred_to_future(waiter)
        self._waiting[origin] = []
        try:
            site, expires = await self._load(origin)
        except Exception as exc:  # never leave waiters hanging, never allow on an internal error
            logger.error("optout: loading the policy of %s failed: %s; treating it as unreachable", origin, exc)
            failed = Fetched(origin + "/robots.txt", None, error=f"internal error: {exc}")
            site, expires = SitePolicy.assemble(origin, self.policy, {"robots": failed}), self.clock() + self.recheck
        self._sites[origin] = _Entry(site, expires)
        self._sites.move_to_end(origin)
        while len(self._sites) > self.max_origins:
            self._sites.popitem(last=False)
        for waiter in self._waiting.pop(origin):
            waiter.callback(site)
        return site

    async def _load(self, origin: str) -> tuple[SitePolicy, float]:
        """The origin's policy and when it expires: when its oldest file does, so a copy loaded from the
        persistent store is not kept beyond 24 hours from its own fetch."""
        files = site_files(origin, self.policy)
        # robots.txt, tdmrep.json and ai.txt are independent: fetch them at the same time, so the first request to
        # an origin waits one round trip, not three (and holds its place in Scrapy's downloader that much less).
        loaded = await self._files([(url, limit) for url, limit in files.values()])
        answers: dict[str, Fetched | None] = {key: fetched for key, (fetched, _) in zip(files, loaded, strict=True)}
        expiries = [expires for _, expires in loaded]
        site = SitePolicy.assemble(origin, self.policy, answers)
        licenses = site.license_urls(self.policy)
        fetched_licenses = await self._files([(url, POLICY_FILE_LIMIT) for url in licenses])
        for url, (fetched, expires) in zip(licenses, fetched_licenses, strict=True):
            expiries.append(expires)
            site.add_license(url, fetched, self.policy)
        if site.unreachable:
            expiries.append(self.clock() + self.recheck)
        return site, min(expiries)

    async def _files(self, wanted: list[tuple[str, int]]) -> list[tuple[Fetched, float]]:
        """Several files at once (as Deferreds, which work under any Twisted reactor, asyncio or not)."""
        if len(wanted) <= 1:
            return [await self._file(url, limit) for url, limit in wanted]
        from scrapy.utils.defer import deferred_from_coro, maybe_deferred_to_future

        pending = [deferred_from_coro(self._file(url, limit)) for url, limit in wanted]
        return await maybe_deferred_to_future(gatherResults(pending, consumeErrors=True))

    async def _file(self, url: str, limit: int) -> tuple[Fetched, float]:
        store = self.store
        if store is None:
            return await self._fetch(url, limit)
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
            fetched, expires = await self._fetch(url, limit)
            await store.put(fetched, expires)
        finally:
            await store.release(url)
        return fetched, expires

    async def _fetch(self, url: str, limit: int) -> tuple[Fetched, float]:
        now = self.clock()
        fetched = await self.fetch(url, limit)
        if self.on_fetch is not None:
            self.on_fetch(fetched)
        # Failures (5xx, 429, no answer) are re-checked soon; a good answer lasts the RFC 9309 maximum.
        failed = fetched.status is None or fetched.status >= 500 or fetched.status == 429
        return fetched, now + (self.recheck if failed else self.ttl)

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()


async def sleep(seconds: float) -> None:
    """Wait without blocking the reactor: on asyncio's loop when the coroutine runs on one (Scrapy's asyncio
    reactor, or plain asyncio), else with Twisted's reactor."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        from scrapy.utils.defer import maybe_deferred_to_future
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        await maybe_deferred_to_future(deferLater(reactor, seconds, lambda: None))
    else:
        await asyncio.sleep(seconds)
