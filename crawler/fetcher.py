"""The `requests` fetcher behind `optout check`: bounded in size (after decoding) and in time, never raises.

Slow servers are the classic way to hang a checker: ``requests`` timeouts bound each socket read, not the whole
exchange, so a server trickling its headers or body one byte per second never times out. Each exchange here ends
at its deadline (optout_registry/deadline.py).

Bodies are read raw and decoded by middlewares/decoding.py, which never expands more than the caller's limit (a
1 MB gzip body can be 1 GB decoded).
"""

from __future__ import annotations

from urllib.parse import urljoin

import requests
import urllib3

from middlewares.decoding import ACCEPT_ENCODING, DecodingError, codings, decode
from middlewares.engine import MAX_REDIRECTS, Fetched
from optout_registry.deadline import Deadline, deadline, session

DEFAULT_TIMEOUT = 10.0
MAX_BODY = 16 * 1024 * 1024
CHUNK = 16 * 1024


class RequestsFetcher:
    def __init__(self, user_agent: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self.session = session(user_agent)
        self.session.headers["Accept-Encoding"] = ACCEPT_ENCODING

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
        with deadline(self.timeout) as watchdog:
            try:
                return self._exchange(url, limit, watchdog)
            except DecodingError as exc:
                return Fetched(url, None, final_url=url, error=str(exc))
            except (requests.RequestException, urllib3.exceptions.HTTPError, ValueError, OSError) as exc:
                if watchdog.expired or isinstance(exc, requests.Timeout):
                    return Fetched(url, None, final_url=url, error=f"timed out after {self.timeout:g}s")
                if isinstance(exc, requests.ConnectionError):
                    return Fetched(url, None, final_url=url, error=f"connection failed: {_reason(exc)}")
                return Fetched(url, None, final_url=url, error=f"{type(exc).__name__}: {_reason(exc)}")

    def _exchange(self, url: str, limit: int, watchdog: Deadline) -> Fetched:
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
            if watchdog.expired:  # the socket was shut: what arrived is cut short, not the whole answer
                raise requests.Timeout
            body = decode(bytes(raw), codings(headers.get("content-encoding", [])), limit + 1)
            return Fetched(url, resp.status_code, headers, body, final_url=url)


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
