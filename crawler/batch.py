"""The concurrent engine behind ``optout check --urls``: many origins at once, each one politely.

The answers come from the one-URL path itself (crawler/check.py's :class:`~crawler.check.Checker`), made safe for
many threads by :class:`SharedChecker`; nothing here decides anything. What this module adds is scheduling:

* **per origin, one at a time** (``--per-origin``, default 1): a :class:`Scheduler` hands an origin's rows to at most
  that many workers at once, and every request also passes the origin's :class:`Gate`, which holds the same limit
  and the robots.txt Crawl-delay (counted, as in the one-URL path, from the end of the origin's previous answer;
  with a Crawl-delay, one request at a time whatever ``--per-origin`` says);
* **no origin stalls the others**: a worker never sleeps through a Crawl-delay while it could be asking another
  origin. When the origin's turn has not come, the gate raises :class:`NotYet` before any request is made and the
  row goes back to the scheduler with the time its origin is free again. Policy files are remembered by URL
  for the run (and in the persistent cache), so starting a row again asks nothing twice. Only after the resource
  itself has been requested would starting again repeat a request; from then on the worker waits instead (a
  redirect to the same origin). A hanging origin holds one worker until the request deadline, no more;
* **policy files once per origin**: single flight per origin and per file, robots.txt first and the others under
  its rules, exactly as :func:`middlewares.siteload.load_site` plans them; with ``--cache`` (or ``--out``) the
  answers persist across runs in the store ``optout crawl`` uses.

``--site-level`` answers from the site-level files alone (:meth:`SharedChecker.site_level`): one set of requests
per origin, then pure computation, done by whichever thread holds the rows (the reading thread, once an origin is
known).
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from crawler.check import Checker, unique, validate_url
from crawler.fetcher import MAX_BODY, RequestsFetcher
from middlewares.engine import Fetched, SitePolicy, origin_of
from middlewares.policy import Decision, Policy
from middlewares.protocols.blocklist import Blocklist
from middlewares.siteload import Fetch

T = TypeVar("T")
DAY = 24 * 3600.0
RECHECK = 300.0  # an answer that failed (5xx, 429, none) is asked again after this long, as in a crawl

# What a site-level answer did not look at: everything read from the resource itself (DESIGN.md "Corpus
# commands"): protocol ids of the check contract, with the "where" of their signals (optout_registry/vocabulary.py)
# when the protocol is read in more than one place ("rsl:link": licences a page links to).
PAGE_LEVEL = (
    "tdmrep:header",
    "tdmrep:html-meta",
    "tdmrep:xmp",
    "tdmrep:opf",
    "content-usage:header",
    "content-signal:header",
    "robots-tag:header",
    "robots-tag:html-meta",
    "rsl:link",
    "iptc",
    "c2pa",
    "access",
    "fetch:url",
)


class NotYet(Exception):
    """The origin's turn has not come: start the row again at ``at`` (monotonic), no request was made."""

    def __init__(self, at: float) -> None:
        super().__init__(at)
        self.at = at


class Gate:
    """An origin's requests: at most ``limit`` in flight, and ``delay`` seconds between the end of one answer and
    the next request (with a delay, one at a time)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.cond = threading.Condition()
        self.inflight = 0
        self.last_end = 0.0

    def enter(self, delay: float, deferrable: bool) -> None:
        with self.cond:
            while True:
                cap = 1 if delay > 0 else self.limit
                wait = self.last_end + delay - time.monotonic() if delay > 0 and self.last_end else 0.0
                if self.inflight < cap and wait <= 0:
                    self.inflight += 1
                    return
                if deferrable:
                    raise NotYet(time.monotonic() + (wait if self.inflight < cap else 0.02))
                self.cond.wait(wait if self.inflight < cap else None)

    def leave(self) -> None:
        with self.cond:
            self.inflight -= 1
            self.last_end = time.monotonic()
            self.cond.notify_all()


class SyncStore:
    """A persistent policy store (middlewares/sitecache.py's SQLite or Redis store, whose methods are coroutines)
    used from threads: its coroutines run on one private event loop."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="optout-policy-store", daemon=True)
        self.thread.start()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def get(self, url: str) -> Fetched | None:
        found = self._call(self.store.get(url, time.time()))
        return found[0] if found is not None else None

    def put(self, fetched: Fetched) -> None:
        failed = fetched.status is None or fetched.status >= 500 or fetched.status == 429
        self._call(self.store.put(fetched, time.time() + (RECHECK if failed else DAY)))

    def close(self) -> None:
        try:
            self._call(self.store.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


def widen_pools(fetcher: RequestsFetcher, origins: int, per_origin: int) -> None:
    """Keep a connection open to each of the last ``origins`` origins (requests keeps 10 by default, so with
    many origins in flight every request would open and close a TCP connection of its own)."""
    for adapter in fetcher.session.adapters.values():
        adapter.init_poolmanager(origins, per_origin + 1, block=False)  # type: ignore[attr-defined]


class SharedChecker(Checker):
    """:class:`~crawler.check.Checker` for many threads: the same answers, per-origin single flight for the
    policy, one :class:`Gate` per origin for every request, policy files remembered by URL."""

    def __init__(
        self,
        policy: Policy,
        fetcher: RequestsFetcher,
        blocklist: Blocklist | None = None,
        *,
        per_origin: int = 1,
        store: SyncStore | None = None,
    ) -> None:
        super().__init__(policy, fetcher, blocklist)
        self.per_origin = per_origin
        self.store = store
        self.answers: dict[str, Fetched] = {}  # policy files of this run, by URL
        self.requests = 0
        self.from_store = 0
        self._gates: dict[str, Gate] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._mutex = threading.Lock()
        self._local = threading.local()

    # -- the one-URL path's hooks, made thread-safe ------------------------------------------------------------

    def site(self, origin: str) -> SitePolicy:
        site = self.sites.get(origin)
        if site is not None:
            return site
        with self._lock("site " + origin):
            return super().site(origin)

    def robots_of(self, origin: str) -> SitePolicy:
        site = self.sites.get(origin) or self.robots.get(origin)
        if site is not None:
            return site
        with self._lock("robots " + origin):
            return super().robots_of(origin)

    def _fetch(self, step: Fetch) -> list[Fetched]:
        """The policy files a plan asks for: each once per run, from the store when it has them."""
        return [self._policy_file(step.origin, url, limit, step.delay) for url, limit in step.files]

    def _policy_file(self, origin: str, url: str, limit: int, delay: float) -> Fetched:
        known = self.answers.get(url)
        if known is not None:
            return known
        with self._lock("file " + url):
            known = self.answers.get(url)
            if known is not None:
                return known
            stored = self.store.get(url) if self.store is not None else None
            if stored is not None:
                self.from_store += 1
                known = stored
            else:
                known = self._request(origin, url, limit, delay, True)
                if self.store is not None:
                    self.store.put(known)
            self.answers[url] = known
            return known

    def _get(self, origin: str, url: str, limit: int = MAX_BODY, delay: float = 0.0, follow: bool = True) -> Fetched:
        """The resource itself (check() asks for it through here)."""
        fetched = self._request(origin, url, limit, delay, follow)
        self._local.deferrable = False  # starting the row again would request it again: wait from now on
        self._local.page = fetched
        return fetched

    def _request(self, origin: str, url: str, limit: int, delay: float, follow: bool) -> Fetched:
        gate = self._gate(origin)
        gate.enter(delay, getattr(self._local, "deferrable", False))
        try:
            self.requests += 1
            return self.fetcher.get(url, limit=limit, follow=follow)
        finally:
            gate.leave()

    def _gate(self, origin: str) -> Gate:
        gate = self._gates.get(origin)
        if gate is None:
            with self._mutex:
                gate = self._gates.setdefault(origin, Gate(self.per_origin))
        return gate

    def _lock(self, key: str) -> threading.Lock:
        lock = self._locks.get(key)
        if lock is None:
            with self._mutex:
                lock = self._locks.setdefault(key, threading.Lock())
        return lock

    # -- answers ----------------------------------------------------------------------------------------------

    def begin(self) -> None:
        """A row starts on this thread: until the resource is requested, it may be put off (:class:`NotYet`)."""
        self._local.deferrable = True
        self._local.page = None

    def fetched(self, url: str, origin: str = "") -> Answer:
        """The one-URL answer (check())."""
        decision = self.check(url)
        page = self._local.page
        return Answer(decision, self.sites.get(origin_of(page.final_url or url) if page else origin_of(url)), page)

    def site_level(self, url: str, origin: str = "") -> Answer:
        """The answer of robots.txt and the site-level files alone (blocklist, access stage, site usage signals):
        check() without the request for the resource. When robots.txt refuses the URL, that is the whole answer
        in both paths, and nothing was left out."""
        decision = self.listed(url)
        if decision is not None:
            return Answer(decision, None, None, ())
        site = self.site(origin or origin_of(url))
        decision = self.refused(site, url)
        if decision is not None:
            return Answer(decision, site, None, ())
        decision = self.policy.decide(url, site.usage_signals(url, self.policy), unique(site.notes))
        return Answer(decision, site, None, self.not_evaluated)

    @functools.cached_property
    def not_evaluated(self) -> tuple[str, ...]:
        off = self.policy.disabled
        return tuple(p for p in PAGE_LEVEL if p.split(":")[0] not in off)


# An http(s) URL with a plain host name or IPv4 address, an optional port and no space or control character: what
# most lists hold. Such a URL passes validate_url, and its origin is its lower-cased first two groups.
_PLAIN_URL = re.compile(r"(https?)://([A-Za-z0-9.-]+(?::([0-9]{1,5}))?)(?:[/?#][!-~]*)?", re.ASCII | re.IGNORECASE)


def checked(raw: str) -> tuple[str, str]:
    """:func:`crawler.check.validate_url` and the URL's origin; the plain URLs of :data:`_PLAIN_URL` (checked to
    give the same answer) without parsing, the others through it. Raises UsageError as it does."""
    text = raw.strip()
    match = _PLAIN_URL.fullmatch(text)
    if match is None or (match[3] is not None and int(match[3]) > 65535):
        text = validate_url(raw)
        return text, origin_of(text)
    return text, f"{match[1].lower()}://{match[2].lower()}"


def fast_origin(url: str) -> str:
    """:func:`middlewares.engine.origin_of` of a URL :func:`crawler.check.validate_url` accepted, without parsing
    it again (the same text: scheme and authority, lower case); URLs with characters urlsplit removes take the
    long way."""
    scheme, _, rest = url.partition("://")
    if not rest or not url.isprintable():  # urlsplit removes or strips control characters
        return origin_of(url)
    end = len(rest)
    for stop in "/?#":
        at = rest.find(stop)
        if 0 <= at < end:
            end = at
    return f"{scheme.lower()}://{rest[:end].lower()}"


@dataclass
class Answer:
    decision: Decision
    site: SitePolicy | None = None
    page: Fetched | None = None
    not_evaluated: tuple[str, ...] | None = None  # site-level answers only


# -- scheduling ----------------------------------------------------------------------------------------------------


@dataclass
class _Origin:
    rows: deque[tuple[int, str]] = field(default_factory=deque)
    running: int = 0
    ready_at: float = 0.0
    listed: bool = False  # in the ready deque or the timed heap


class Scheduler:
    """Rows grouped by origin; a worker takes an origin's next row (or, with ``take_all``, all its rows) when fewer
    than ``per_origin`` workers hold that origin and its turn has come."""

    def __init__(self, per_origin: int, take_all: bool = False) -> None:
        self.per_origin = per_origin
        self.take_all = take_all
        self.cond = threading.Condition()
        self.origins: dict[str, _Origin] = {}
        self.ready: deque[str] = deque()
        self.timed: list[tuple[float, int, str]] = []
        self.waiting = 0  # rows queued
        self.running = 0  # workers holding rows
        self.closed = False
        self._seq = 0

    def add(self, origin: str, row: int, url: str) -> None:
        with self.cond:
            state = self.origins.get(origin)
            if state is None:
                state = self.origins[origin] = _Origin()
            state.rows.append((row, url))
            self.waiting += 1
            self._list(origin, state)

    def _list(self, origin: str, state: _Origin) -> None:
        if state.listed or not state.rows or state.running >= self.per_origin:
            return
        state.listed = True
        if state.ready_at > time.monotonic():
            self._seq += 1
            heapq.heappush(self.timed, (state.ready_at, self._seq, origin))
        else:
            self.ready.append(origin)
        self.cond.notify()  # a waiting worker takes it, or waits for its time

    def take(self) -> tuple[str, list[tuple[int, str]]] | None:
        """The next origin and rows to work on; None once closed and nothing is left."""
        with self.cond:
            while True:
                now = time.monotonic()
                while self.timed and self.timed[0][0] <= now:
                    self.ready.append(heapq.heappop(self.timed)[2])
                while self.ready:
                    origin = self.ready.popleft()
                    state = self.origins[origin]
                    state.listed = False
                    if not state.rows or state.running >= self.per_origin:
                        continue
                    if self.take_all:
                        rows = list(state.rows)
                        state.rows.clear()
                    else:
                        rows = [state.rows.popleft()]
                    self.waiting -= len(rows)
                    state.running += 1
                    self.running += 1
                    self._list(origin, state)
                    return origin, rows
                if self.closed and not self.waiting and not self.running:
                    self.cond.notify_all()
                    return None
                self.cond.wait(self.timed[0][0] - now if self.timed else None)

    def done(self, origin: str, left: list[tuple[int, str]] = (), at: float = 0.0) -> None:  # type: ignore[assignment]
        """A worker is done with ``origin``; ``left`` rows go back to the front of its queue, its turn at ``at``."""
        with self.cond:
            state = self.origins[origin]
            state.running -= 1
            self.running -= 1
            if left:
                state.rows.extendleft(reversed(left))
                self.waiting += len(left)
            state.ready_at = max(state.ready_at, at)
            if not state.rows and not state.running and not state.listed:
                del self.origins[origin]  # memory stays flat however many origins a list touches
            else:
                self._list(origin, state)
            if self.closed and not self.waiting and not self.running:
                self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class Pool:
    """``concurrency`` worker threads answering the scheduler's rows with ``answer``; each result goes to
    ``deliver(row, answer or exception)`` (called on the worker thread)."""

    def __init__(
        self,
        checker: SharedChecker,
        scheduler: Scheduler,
        answer: Callable[[str, str], Answer],
        deliver: Callable[[int, Answer | BaseException], None],
        concurrency: int,
    ) -> None:
        self.checker = checker
        self.scheduler = scheduler
        self.answer = answer
        self.deliver = deliver
        self.threads = [
            threading.Thread(target=self._work, name=f"optout-check-{i}", daemon=True) for i in range(concurrency)
        ]
        for thread in self.threads:
            thread.start()

    def _work(self) -> None:
        while True:
            taken = self.scheduler.take()
            if taken is None:
                return
            origin, rows = taken
            at = 0.0
            left: list[tuple[int, str]] = []
            for i, (row, url) in enumerate(rows):
                self.checker.begin()
                try:
                    result: Answer | BaseException = self.answer(url, origin)
                except NotYet as wait:
                    at, left = wait.at, rows[i:]
                    break
                except Exception as exc:  # one row's bug must not end the run: that row says so
                    result = exc
                self.deliver(row, result)
            self.scheduler.done(origin, left, at)

    def join(self, timeout: float | None = None) -> None:
        for thread in self.threads:
            thread.join(timeout)
