"""What every request of the service shares: its settings, the read-only registry, its own store, the token signer.

One :class:`ServiceState` per application (``app.state.service``), opened by ``create_app`` so that a bad
registry URL or key fails at start-up, and closed when the application shuts down. The index of records by site
is derived data: small lags are closed in-line by the request that notices them, big ones by a background thread.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from optout_registry.errors import RegistryError
from optout_registry.registry import Registry
from optout_registry.service.guard import RateLimits
from optout_registry.service.ownership import Resolver, TokenSigner, TxtLookup
from optout_registry.service.store import ServiceStore

log = logging.getLogger(__name__)


class ReadOnlyRegistry(Registry):
    """The registry as the service sees it: it reads and proves, it never integrates or signs.

    (``export_bundle`` integrates first when it can sign; a query service must not become the log's integrator
    by accident, so here the latest checkpoint the real integrator signed is what everything is proved against.)
    """

    @classmethod
    def open_read_only(cls, url: str, key: str | None) -> ReadOnlyRegistry:
        """Open an existing registry for the service (never creates one)."""
        reg = cls.open(url, key=key, create=False)
        assert isinstance(reg, ReadOnlyRegistry)  # Registry.open builds cls(...); its annotation says Registry
        return reg

    def can_sign(self) -> bool:
        """Never: the service is not the log's integrator."""
        return False

    def checkpoint(self) -> str:
        """The latest checkpoint the integrator signed (never signs a new one)."""
        latest = self.latest()
        if latest is None:
            raise RegistryError("nothing has been signed in this registry yet")
        return latest[2]

    def signed_at(self, size: int) -> tuple[int, bytes, str] | None:
        """The checkpoint signed at exactly ``size`` records, as (size, root, note), if one was."""
        return self._store.checkpoint_at(size)


@dataclass
class ServiceConfig:
    """Everything ``create_app`` needs; tests inject the resolver, DNS lookup, clock and limits.

    ``registry_url`` is the registry to serve (sqlite:///… or postgresql://…); ``service_db`` the service's own
    tables (default: beside the registry). Times are in seconds: ``challenge_ttl`` and ``token_ttl`` bound the
    ownership challenge and the holder's token, ``checkpoint_poll`` how often the latest checkpoint is re-read.
    ``sync_index_budget`` is the largest index lag a request closes itself; ``max_export_records`` the largest
    export bundle built on request.
    """

    registry_url: str
    service_db: str | None = None
    key: str | None = None
    admin_token: str | None = None
    resolver: Resolver | None = None
    txt_lookup: TxtLookup | None = None
    limits: RateLimits = field(default_factory=RateLimits)
    challenge_ttl: int = 900
    token_ttl: int = 86_400
    max_attempts: int = 10
    fetch_timeout: float = 5.0
    checkpoint_poll: float = 1.0
    sync_index_budget: int = 5_000
    max_export_records: int = 50_000
    operator: str | None = None
    contact: str | None = None
    background_indexer: bool = True
    clock: Callable[[], float] = time.time


class ServiceState:
    """Registry, service store and token signer, plus a short-lived cache of the latest checkpoint."""

    def __init__(self, cfg: ServiceConfig) -> None:
        self.cfg = cfg
        self.reg = ReadOnlyRegistry.open_read_only(cfg.registry_url, cfg.key)
        try:
            self.store = ServiceStore(cfg.registry_url, cfg.service_db)
            self.store.bind(self.reg.origin)
            secret = self.store.meta_default("token_secret", secrets.token_hex(32))
            self.signer = TokenSigner(bytes.fromhex(secret), clock=cfg.clock)
        except BaseException:
            self.reg.close()
            raise
        self.vkey = self.reg.vkey if self.reg.latest() is not None else self.reg.recorded_vkey()
        self._latest: tuple[int, bytes, str] | None = None
        self._latest_at = -1e9
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._thread: threading.Thread | None = None

    def latest(self) -> tuple[int, bytes, str] | None:
        """The latest signed checkpoint as (size, root, note), re-read at most every ``checkpoint_poll`` seconds."""
        now = time.monotonic()
        if now - self._latest_at >= self.cfg.checkpoint_poll:
            self._latest = self.reg.latest()
            self._latest_at = now
            if self.vkey is None and self._latest is not None:
                self.vkey = self.reg.recorded_vkey()
        return self._latest

    def size(self) -> int:
        """Size of the latest signed checkpoint (0 before the first)."""
        latest = self.latest()
        return 0 if latest is None else latest[0]

    def indexed(self, size: int) -> int:
        """How far the index reaches (never past ``size``); small lags are closed in-line, big ones in background."""
        done = self.store.indexed_upto()
        if done >= size:
            return size
        if size - done <= self.cfg.sync_index_budget or not self.cfg.background_indexer:
            return min(size, self.store.catch_up(size))
        self._kick.set()
        return done

    def start(self) -> None:
        """Start the background indexer (once; not at all if the settings turn it off)."""
        if self.cfg.background_indexer and self._thread is None:
            self._thread = threading.Thread(target=self._index_loop, name="optout-service-indexer", daemon=True)
            self._thread.start()

    def _index_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.store.catch_up(self.size())
            except Exception:  # the index is derived data: log-and-retry beats taking the service down
                log.exception("indexing failed; retrying")
            self._kick.wait(2.0)
            self._kick.clear()

    def close(self) -> None:
        """Stop the indexer and close the store and the registry."""
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.store.close()
        self.reg.close()
