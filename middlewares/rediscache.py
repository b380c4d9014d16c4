"""Policy state shared by a fleet of crawl workers, in Redis (``OPTOUT_CACHE_URL = "redis://host:port/db"``).

Three things must hold across workers, not just within one (issue 7):

* one fetch of robots.txt and each site-level file per origin per 24 hours for the whole fleet: answers are
  stored raw (as in the SQLite store) under ``<prefix>pf:<url>`` with Redis expiring them at the RFC 9309 limit,
  and a worker fetches only after winning ``SET <prefix>claim:<url> NX PX`` (others wait for its answer);
* the same decision for the same URL on every worker: every worker parses the same stored bytes;
* Crawl-delay fleet-wide: ``<prefix>next:{<origin>}`` holds the earliest time (Redis's own clock, so worker clocks
  do not matter) the next request may start; a Lua script grants or says how long to wait, atomically, and a
  granted request holds the turn until it is answered: the next one starts a full delay after that answer.

Failing closed: if Redis is unreachable, callers wait (the crawl pauses, the reactor does not) up to
``OPTOUT_CACHE_OUTAGE`` seconds and then get ``CacheUnavailable``, which the site cache turns into "policy
unknown: do not fetch". A Redis that comes back empty (restarted without persistence) is a cold cache: policy
files are fetched again before anything else of the origin is, and the first request to a Crawl-delay origin waits
one full delay, because nobody knows when the fleet last requested it.

Needs Twisted's asyncio reactor (Scrapy's default since 2.13): the client is ``redis.asyncio``.

The fleet's code, by layer: here and middlewares/fleetdelay.py (the add-on: shared policies, fleet-wide
Crawl-delay); crawler/fleet.py and crawler/fleetqueue.py (the crawl: joining a fleet, the shared queue,
heartbeats); docs/distributed.md (the design and its measurements).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from middlewares.engine import Fetched
from optout_registry.messages import first_line, redact_url

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Compare-and-delete: release a claim only if it is still ours (it may have expired and been re-claimed).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Grant the next request to an origin, or say how many milliseconds to wait. KEYS[1] = next-allowed time (ms,
# Redis clock), KEYS[2] = who holds the turn; ARGV[1] = the delay in ms, ARGV[2] = how long a granted request may
# hold the turn (ms), ARGV[3] = how long the time outlives the last request (ms), ARGV[4] = this grant's token. A
# granted request holds the turn until it is answered (_DONE), so the next one is counted from the end of its answer,
# whatever delayed it on the way (a stall, a slow connect); a holder that dies lets go when its hold expires. No key
# means no memory of the last request (first one, or the cache was lost): reserve one full delay from now.
_GATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nxt = redis.call('GET', KEYS[1])
if not nxt then
  redis.call('SET', KEYS[1], now + tonumber(ARGV[1]), 'PX', ARGV[3])
  return tonumber(ARGV[1])
end
nxt = tonumber(nxt)
if now < nxt then return nxt - now end
redis.call('SET', KEYS[1], now + tonumber(ARGV[2]), 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[2])
return 0
"""

# A granted request was answered (or failed): the next one may start a full delay from now. Only the turn's holder
# may bring the time forward (its own hold); anyone else, say after a hold expired, can only move it later.
_DONE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local later = now + tonumber(ARGV[1])
if redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('DEL', KEYS[2])
  redis.call('SET', KEYS[1], later, 'PX', ARGV[2])
elseif later > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], later, 'PX', ARGV[2])
end
return 0
"""

GATE_MEMORY_MS = 3600 * 1000


def _gate_ms(seconds: float) -> int:
    """Milliseconds on Redis's clock, rounded up and one more: its ``TIME`` is truncated to the millisecond here, so
    two readings ``n`` ms apart may be up to 1 ms less than ``n`` ms apart in fact."""
    return math.ceil(seconds * 1000) + 1


class CacheUnavailable(RuntimeError):
    """Redis did not answer for longer than the configured outage limit."""


class RedisPolicyStore:
    """The fleet-wide store: same interface as the SQLite PolicyStore, plus the Crawl-delay gate."""

    # Other workers store answers here too: one may store the answer we are about to fetch just before our claim.
    shared = True

    def __init__(self, url: str, *, prefix: str = "optout:", outage: float = 60.0, worker: str | None = None) -> None:
        try:  # the [redis] extra, imported where it is used so that installs without it can still load this module
            import redis.asyncio  # noqa: F401
        except ImportError:  # pragma: no cover - the [redis] extra is missing
            raise ValueError(
                "OPTOUT_CACHE_URL is a Redis URL but redis is not installed: pip install 'optout-toolkit[redis]'"
            ) from None
        self.url = url
        self.prefix = prefix
        self.outage = outage
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._claims: dict[str, str] = {}
        self._down_since: float | None = None

    @property
    def client(self) -> Any:
        """Created on first use, inside the running event loop it belongs to."""
        if self._client is None:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            # No retries inside the client: _call waits out an outage itself, with a limit and a log line.
            self._client = Redis.from_url(
                self.url, socket_connect_timeout=5, socket_timeout=10, retry=Retry(NoBackoff(), 0)
            )
        return self._client

    def _script(self, source: str) -> Any:
        script = self._scripts.get(source)
        if script is None:  # redis-py re-loads a script Redis forgot (NOSCRIPT after a restart) by itself
            script = self._scripts[source] = self.client.register_script(source)
        return script

    async def _call(self, op: Callable[[Any], Awaitable[T]]) -> T:
        from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

        pause = 0.1
        while True:
            try:
                result = await op(self.client)
            except (ConnectionError, TimeoutError, BusyLoadingError, OSError) as exc:
                now = time.monotonic()
                if self._down_since is None:
                    self._down_since = now
                    logger.warning(
                        "optout: Redis policy cache %s unreachable (%s); pausing for up to %.0f s",
                        redact_url(self.url),
                        first_line(exc)[:200],
                        self.outage,
                    )
                if now - self._down_since > self.outage:
                    raise CacheUnavailable(
                        f"Redis policy cache {redact_url(self.url)} unreachable for over {self.outage:.0f} s: "
                        f"{first_line(exc)[:200]}"
                    ) from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
                continue
            if self._down_since is not None:
                logger.warning("optout: Redis policy cache %s reachable again", redact_url(self.url))
                self._down_since = None
            return result

    # -- policy files ------------------------------------------------------------------------------------------

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"

    async def get(self, url: str, now: float) -> tuple[Fetched, float] | None:
        """The fleet's stored answer for ``url`` with its expiry; None when absent, expired or unreadable (a damaged or
        foreign entry is fetched again, never trusted)."""
        fields = await self._call(lambda r: r.hgetall(self._key("pf", url)))
        if not fields:
            return None
        try:
            expires = float(fields[b"expires_at"])
            status = fields[b"status"]
            fetched = Fetched(
                url,
                int(status) if status else None,
                json.loads(fields[b"headers"]),
                bytes(fields[b"body"]),
                fields[b"final_url"].decode(),
                fields[b"error"].decode(),
                fetched_at=float(fields[b"fetched_at"]),
            )
        except (KeyError, ValueError, UnicodeDecodeError) as exc:  # not ours, or damaged: fetch it again
            logger.warning("optout: ignoring a damaged cache entry for %s: %s", url, exc)
            return None
        return (fetched, expires) if expires > now else None

    async def put(self, fetched: Fetched, expires: float) -> None:
        """Store an answer (compacted) for the whole fleet, written in one transaction with its expiry so that Redis
        drops it once it is stale."""
        fetched = fetched.compacted()
        key = self._key("pf", fetched.url)
        mapping = {
            "status": "" if fetched.status is None else str(fetched.status),
            "headers": json.dumps({k: list(v) for k, v in fetched.headers.items()}),
            "body": fetched.body,
            "final_url": fetched.final_url,
            "error": fetched.error,
            "fetched_at": repr(fetched.fetched_at),
            "expires_at": repr(expires),
        }

        async def write(r: Any) -> Any:
            async with r.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=mapping)
                pipe.pexpireat(key, int(expires * 1000))
                return await pipe.execute()

        await self._call(write)

    async def claim(self, url: str, ttl: float) -> bool:
        """Try to become the one worker that fetches ``url``: True for the winner only. The claim lapses after ``ttl``
        seconds, so a worker that dies holding it blocks nobody for long."""
        token = f"{self.worker}:{uuid.uuid4().hex[:8]}"
        won = await self._call(lambda r: r.set(self._key("claim", url), token, nx=True, px=max(1, int(ttl * 1000))))
        if won:
            self._claims[url] = token
        return bool(won)

    async def release(self, url: str) -> None:
        """Give up this worker's own claim on ``url`` (a lapsed claim another worker took is left alone); best effort,
        since an unreleased claim expires anyway."""
        token = self._claims.pop(url, None)
        if token is None:
            return
        try:  # once: an unreleased claim only expires a little later
            await self._script(_RELEASE)(keys=[self._key("claim", url)], args=[token])
        except Exception as exc:
            logger.debug("optout: could not release the claim on %s: %s", url, exc)

    # -- fleet-wide Crawl-delay ----------------------------------------------------------------------------------

    def _gate_keys(self, origin: str) -> list[str]:
        """The origin's next-allowed time and its turn's holder, in one Redis Cluster hash slot (the ``{…}`` tag):
        the gate's scripts touch both."""
        return [self._key("next", f"{{{origin}}}"), self._key("turn", f"{{{origin}}}")]

    async def wait_turn(self, origin: str, delay: float, *, hold: float) -> tuple[str, float]:
        """Wait until this worker may start the next request to ``origin``, which then holds the turn until
        ``done`` (or for ``hold`` seconds at most); returns the grant's token and the seconds waited."""
        keys = self._gate_keys(origin)
        step = _gate_ms(delay)
        token = uuid.uuid4().hex
        args = [step, _gate_ms(delay + hold), GATE_MEMORY_MS, token]
        waited = 0.0
        while True:
            ms = int(await self._call(lambda r: self._script(_GATE)(keys=keys, args=args, client=r)))
            if ms <= 0:
                return token, waited
            # Another request holds the turn for as long as it is in flight: look again after one delay at most.
            pause = min(ms, step) / 1000
            await asyncio.sleep(pause)
            waited += pause

    async def done(self, origin: str, delay: float, token: str) -> None:
        """The request granted ``token`` has its answer: the next request to ``origin`` waits a full delay from now."""
        keys = self._gate_keys(origin)
        args = [_gate_ms(delay), GATE_MEMORY_MS, token]
        await self._call(lambda r: self._script(_DONE)(keys=keys, args=args, client=r))

    async def close(self) -> None:
        """Close the Redis connection; a server that is already gone is not an error at shutdown."""
        if self._client is not None:
            try:
                await self._client.aclose()
            except Exception as exc:  # closing a connection to a dead server
                logger.debug("optout: closing the Redis client: %s", exc)
            self._client = None
