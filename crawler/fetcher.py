"""The `requests` fetcher behind `optout check`: bounded in size (after decoding) and in time, never raises.

Slow servers are the classic way to hang a checker: ``requests`` timeouts bound each socket read, not the whole
exchange, so a server trickling its headers or body one byte per second never times out. Each exchange here has a
deadline; when it passes, a watchdog shuts the connection's socket down, which ends the read wherever it is blocked.

Bodies are read raw and decoded by middlewares/decoding.py, which never expands more than the caller's limit (a
1 MB gzip body can be 1 GB decoded).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any
from urllib.parse import urljoin

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from middlewares.decoding import ACCEPT_ENCODING, DecodingError, codings, decode
from middlewares.engine import MAX_REDIRECTS, Fetched

DEFAULT_TIMEOUT = 10.0
MAX_BODY = 16 * 1024 * 1024
CHUNK = 16 * 1024


class _Deadline:
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
    deadline: _Deadline | None = getattr(_current, "deadline", None)
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


class RequestsFetcher:
    def __init__(self, user_agent: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self.session = requests.Session()
        # Proxies and .netrc from the environment must not change what a check sees or where it goes.
        self.session.trust_env = False
        self.session.headers["User-Agent"] = user_agent
        self.session.headers["Accept-Encoding"] = ACCEPT_ENCODING
        self.session.mount("http://", _WatchedAdapter(max_retries=0))
        self.session.mount("https://", _WatchedAdapter(max_retries=0))

    def close(self) -> None:
        self.session.close()

    def get(self, url: str, *, limit: int = MAX_BODY, follow: bool = True) -> Fetched:
        """GET ``url``; with ``follow``, up to 5 redirects (RFC 9309 §2.3.1.2), across hosts. A redirect that
        cannot be followed further is returned as its 3xx answer with ``error`` set."""
        current = url
        for hop in range(MAX_REDIRECTS + 1):
            answer = self._get_once(current, limit)
            answer.url = url
            answer.redirects = hop
            location = answer.header("location")
            if not (follow and answer.status in (301, 302, 303, 307, 308) and location):
                return answer
            if hop == MAX_REDIRECTS:
                answer.error = f"more than {MAX_REDIRECTS} redirects"
                return answer
            current = urljoin(current, location[-1].strip())
            if not current.startswith(("http://", "https://")):
                answer.error = f"redirect to a non-HTTP location {current[:100]!r}"
                return answer
        raise AssertionError("unreachable")

    def _get_once(self, url: str, limit: int) -> Fetched:
        """One exchange, over within ``timeout`` seconds whatever the server does; at most ``limit`` + 1 bytes of
        decoded body (one past the limit, so parsers can tell the file went on)."""
        deadline = _current.deadline = _Deadline(self.timeout)
        try:
            with self.session.get(url, stream=True, allow_redirects=False, timeout=self.timeout) as resp:
                raw = bytearray()
                while len(raw) <= limit:
                    chunk = resp.raw.read(CHUNK, decode_content=False)
                    if not chunk:
                        break
                    raw += chunk
                headers: dict[str, list[str]] = {}
                for key, value in resp.raw.headers.items():
                    headers.setdefault(key.lower(), []).append(value)
                body = decode(bytes(raw), codings(headers.get("content-encoding", [])), limit + 1)
                if deadline.expired:
                    raise requests.Timeout
                return Fetched(url, resp.status_code, headers, body, final_url=url)
        except DecodingError as exc:
            return Fetched(url, None, final_url=url, error=str(exc))
        except (requests.RequestException, urllib3.exceptions.HTTPError, ValueError, OSError) as exc:
            if deadline.expired or isinstance(exc, requests.Timeout):
                return Fetched(url, None, final_url=url, error=f"timed out after {self.timeout:g}s")
            if isinstance(exc, requests.ConnectionError):
                return Fetched(url, None, final_url=url, error=f"connection failed: {_reason(exc)}")
            return Fetched(url, None, final_url=url, error=f"{type(exc).__name__}: {_reason(exc)}")
        finally:
            deadline.cancel()
            _current.deadline = None


def _reason(exc: BaseException) -> str:
    """The root cause in a few words: urllib3 wraps "Connection refused" in a message of a thousand characters."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror[:200]
        nested = [getattr(current, "reason", None), current.__cause__, current.__context__, *current.args]
        current = next((e for e in nested if isinstance(e, BaseException)), None)
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:200]
