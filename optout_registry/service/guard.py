"""One ASGI layer in front of every endpoint: size limits, rate limits and security headers.

It is a plain ASGI middleware (not Starlette's BaseHTTPMiddleware) because it sits on the hot path of every
request: no extra task, no body buffering, a dict lookup and a little arithmetic per request.

* **Size limits**: request targets longer than ``max_url`` get 414, bodies longer than ``max_body`` get 413
  (checked on Content-Length and again while streaming, so chunked uploads cannot slip past).
* **Rate limits**: token buckets per client address and class — ``read`` (GETs), ``write`` (POSTs: challenges,
  verification, complaints) and ``export`` (bundle downloads, the expensive one). Over the limit: 429 with
  Retry-After. The client address is the socket peer; forwarded headers are not believed unless the server was
  started with ``--proxy-headers`` (otherwise any client could pick a fresh address per request). The table of
  buckets is bounded (least recently used out).
* **Headers**: a strict Content-Security-Policy (no inline script, nothing from other origins — the page works
  offline and a crawled URL shown in it cannot run script), nosniff, no referrer, no framing.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode("ascii")),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


@dataclass(frozen=True)
class RateLimits:
    """Per client address: sustained rate and burst for each class. ``rate <= 0`` switches a class off."""

    read_per_s: float = 20.0
    read_burst: int = 60
    write_per_min: float = 10.0
    write_burst: int = 10
    export_per_min: float = 6.0
    export_burst: int = 3
    max_clients: int = 100_000

    def bucket(self, cls: str) -> tuple[float, float]:
        """(tokens per second, capacity) of a class."""
        if cls == "write":
            return self.write_per_min / 60.0, float(self.write_burst)
        if cls == "export":
            return self.export_per_min / 60.0, float(self.export_burst)
        return self.read_per_s, float(self.read_burst)


class RateLimiter:
    """Token buckets keyed by (class, client). Single event loop, so no locking is needed."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str], list[float]] = OrderedDict()

    def take(self, cls: str, client: str) -> float:
        """0.0 if the request may proceed, else the seconds until it would."""
        rate, cap = self.limits.bucket(cls)
        if rate <= 0:
            return 0.0
        now = self._clock()
        key = (cls, client)
        b = self._buckets.get(key)
        if b is None:
            b = [cap, now]
            self._buckets[key] = b
            if len(self._buckets) > self.limits.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            b[0] = min(cap, b[0] + (now - b[1]) * rate)
            b[1] = now
        if b[0] >= 1.0:
            b[0] -= 1.0
            return 0.0
        return (1.0 - b[0]) / rate


def classify(method: str, path: str) -> str:
    """Which rate limit a request counts against: export (the costly bundle), write, or read."""
    if path.endswith("/export.zip"):
        return "export"
    if method not in ("GET", "HEAD", "OPTIONS"):
        return "write"
    return "read"


async def _reply(send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        *SECURITY_HEADERS,
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware in front of every route: refuses over-long targets (414) and bodies (413) and requests over
    the caller's rate limit (429, with Retry-After), and adds the security headers to every answer."""

    def __init__(
        self,
        app: ASGIApp,
        limiter: RateLimiter,
        *,
        max_url: int = 4096,
        max_body: int = 64 * 1024,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.max_url = max_url
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "replace")
        if len(raw_path) + len(scope.get("query_string", b"")) > self.max_url:
            await _reply(send, 414, f"request target longer than {self.max_url} bytes")
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        wait = self.limiter.take(classify(scope["method"], scope["path"]), client)
        if wait > 0:
            retry = str(max(1, int(wait + 0.999))).encode("ascii")
            await _reply(send, 429, "rate limit exceeded; slow down", [(b"retry-after", retry)])
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_body
                except ValueError:
                    too_big = True
                if too_big:
                    await _reply(send, 413, f"request body larger than {self.max_body} bytes")
                    return
        app_receive = receive
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            # Bodies are small (max_body), so read them whole here: a chunked upload past the limit is refused
            # before the application sees a byte, and the application gets the body replayed in one message.
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # client went away
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_body:
                    await _reply(send, 413, f"request body larger than {self.max_body} bytes")
                    return
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            replay: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

            async def app_receive() -> Message:
                return replay.pop() if replay else await receive()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, app_receive, send_with_headers)
