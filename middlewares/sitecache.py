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
from dataclasses import dataclass
from pathlib import Path

from twisted.internet.defer import Deferred, gatherResults

from middlewares.engine import POLICY_FILE_LIMIT, Fetched, SitePolicy, site_files
from middlewares.policy import Policy

logger = logging.getLogger(__name__)

FetchFn = Callable[[str, int], Awaitable[Fetched]]


@dataclass
class _Entry:
    site: SitePolicy
    expires: float


class PolicyStore:
    """Raw answers (status, headers, body) of policy files in SQLite, keyed by URL, with their fetch time. Raw
    answers rather than parsed objects: a parser fix applies to cached files too, and evidence stays exact."""

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

    @classmethod
    def from_url(cls, url: str | None) -> PolicyStore | None:
        if not url:
            return None
        if url.startswith("sqlite:///"):
            return cls(Path(url[len("sqlite:///") :]))
        if url.startswith("redis://") or url.startswith("rediss://"):
            raise ValueError("OPTOUT_CACHE_URL: Redis caches are not supported yet; use sqlite:///path")
        raise ValueError(f"OPTOUT_CACHE_URL: unsupported URL {url!r} (expected sqlite:///path)")

    def get(self, url: str, now: float) -> tuple[Fetched, float] | None:
        """A stored answer that has not expired, with its expiry time."""
        row = self.db.execute(
            "SELECT status, headers, body, final_url, error, expires_at FROM policy_file"
            " WHERE url = ? AND expires_at > ?",
            (url, now),
        ).fetchone()
        if row is None:
            return None
        status, headers, body, final_url, error, expires = row
        return Fetched(url, status, json.loads(headers), bytes(body), final_url=final_url, error=error), expires

    def put(self, fetched: Fetched, now: float, expires: float) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO policy_file VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                fetched.url,
                now,
                expires,
                fetched.status,
                json.dumps({k: list(v) for k, v in fetched.headers.items()}),
                fetched.body,
                fetched.final_url,
                fetched.error,
            ),
        )

    def close(self) -> None:
        self.db.close()


class SiteCache:
    def __init__(
        self,
        policy: Policy,
        fetch: FetchFn,
        *,
        ttl: float,
        recheck: float,
        store: PolicyStore | None = None,
        clock: Callable[[], float] = time.time,
        on_fetch: Callable[[Fetched], None] | None = None,
        max_origins: int = 5000,
    ) -> None:
        self.policy = policy
        self.fetch = fetch
        self.ttl = ttl
        self.recheck = recheck
        self.store = store
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
        now = self.clock()
        if self.store is not None:
            stored = self.store.get(url, now)
            if stored is not None:
                return stored
        fetched = await self.fetch(url, limit)
        if self.on_fetch is not None:
            self.on_fetch(fetched)
        # Failures (5xx, 429, no answer) are re-checked soon; a good answer lasts the RFC 9309 maximum.
        failed = fetched.status is None or fetched.status >= 500 or fetched.status == 429
        expires = now + (self.recheck if failed else self.ttl)
        if self.store is not None:
            self.store.put(fetched, now, expires)
        return fetched, expires

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
