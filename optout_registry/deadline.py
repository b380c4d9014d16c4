"""``requests`` exchanges that end at a deadline, however slowly the server answers.

``requests`` timeouts bound each socket read, not the whole exchange, so a server trickling its headers or body one
byte per second never times out. Here each exchange made inside ``with deadline(seconds) as d:`` on a
:func:`session` has a watchdog: when the deadline passes, it shuts the connection's socket down, which ends the read
wherever it is blocked, and ``d.expired`` says why the exchange failed. Used by ``optout check``'s fetcher and the
rights-holder service's ownership check (which is why it lives in this package, the lowest of the three).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class Deadline:
    """The end of one exchange: the sockets it uses are shut down when it passes."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


_current = threading.local()  # the deadline of the exchange this thread is making


def _watch(sock: socket.socket | None) -> None:
    deadline: Deadline | None = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


class _WatchedHTTP(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:  # a pooled connection is reused without connect()
        _watch(self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTPS(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _watch(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTP


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPS


class _WatchedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def session(user_agent: str) -> requests.Session:
    """A session whose connections are watched, that ignores proxy variables and .netrc (they must not change
    what is fetched or where it goes), and never retries by itself."""
    s = requests.Session()
    s.trust_env = False
    s.headers["User-Agent"] = user_agent
    s.mount("http://", _WatchedAdapter(max_retries=0))
    s.mount("https://", _WatchedAdapter(max_retries=0))
    return s


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """The exchanges this thread makes inside the block end after ``seconds`` at the latest."""
    watchdog = _current.deadline = Deadline(seconds)
    try:
        yield watchdog
    finally:
        watchdog.cancel()
        _current.deadline = None
