"""The `requests` fetcher behind `optout check`: bounded in size and time, never raises.

Slow servers are the classic way to hang a checker: ``requests`` timeouts bound each socket read, not the whole
answer, so a server trickling one byte per second would never time out. We stream the body and enforce an
overall deadline and a size cap ourselves.
"""

from __future__ import annotations

import time
from urllib.parse import urljoin

import requests

from middlewares.engine import MAX_REDIRECTS, Fetched

DEFAULT_TIMEOUT = 10.0
MAX_BODY = 16 * 1024 * 1024


class RequestsFetcher:
    def __init__(self, user_agent: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self.session = requests.Session()
        # Proxies and .netrc from the environment must not change what a check sees or where it goes.
        self.session.trust_env = False
        self.session.headers["User-Agent"] = user_agent
        self.session.headers["Accept-Encoding"] = "gzip, deflate"

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
        deadline = time.monotonic() + self.timeout
        try:
            with self.session.get(url, stream=True, allow_redirects=False, timeout=self.timeout) as resp:
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_content(65536):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= limit:
                        break
                    if time.monotonic() > deadline:
                        return Fetched(url, None, final_url=url, error=f"timed out after {self.timeout:g}s")
                headers: dict[str, list[str]] = {}
                for key, value in resp.raw.headers.items():
                    headers.setdefault(key.lower(), []).append(value)
                return Fetched(url, resp.status_code, headers, b"".join(chunks)[:limit], final_url=url)
        except requests.Timeout:
            return Fetched(url, None, final_url=url, error=f"timed out after {self.timeout:g}s")
        except requests.ConnectionError as exc:
            return Fetched(url, None, final_url=url, error=f"connection failed: {_reason(exc)}")
        except (requests.RequestException, ValueError, OSError) as exc:
            return Fetched(url, None, final_url=url, error=f"{type(exc).__name__}: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:200]
