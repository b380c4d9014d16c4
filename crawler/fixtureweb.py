"""A small web of fixture sites on loopback, one port per origin, for the demo and the end-to-end tests.

Each site is a real HTTP server (``http.server``) on 127.0.0.1, so checks and crawls exercise real sockets,
status lines, duplicate header lines, redirects and slow answers. Every request is logged, which lets tests
assert what was fetched, and just as important, what was never fetched.

A site may have a host name of its own (``web.site("news", host="city-news.test")``): its origin is then
``http://city-news.test:PORT``, so each site is a registrable domain of its own in records, exports and reports.
Such names resolve nowhere but inside a crawl given :meth:`FixtureWeb.crawl_settings`, whose Scrapy DNS resolver
(:class:`LoopbackResolver`) answers 127.0.0.1 for exactly these names and asks the system for every other.
Use names under ``.test`` (RFC 2606: never delegated), so nothing can ever reach a real host by them.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from scrapy.resolver import CachingThreadedResolver

GATE_TIMEOUT = 120.0


@dataclass
class Route:
    status: int = 200
    body: bytes | str = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "text/html; charset=utf-8"
    delay: float = 0.0  # seconds before answering (slow servers, timeouts)
    # When set, these bytes are sent as the whole answer (status line, headers, body) and the connection is
    # closed: malformed status lines or header lines that http.server would not write.
    raw: bytes | None = None
    # When set, the answer waits until the event is set (at most GATE_TIMEOUT): a test holds pages back until
    # every party it needs is in place, instead of hoping the timing works out.
    gate: threading.Event | None = None

    def payload(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body


def page(title: str, body: str = "", head: str = "") -> str:
    """A plain HTML page with optional extra head markup."""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>{head}</head>"
        f"<body><h1>{title}</h1>{body}</body></html>"
    )


@dataclass
class Hit:
    site: str
    method: str
    path: str
    time: float
    host: str = ""  # the Host header the request came with


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, web: FixtureWeb, name: str, host: str | None = None) -> None:
        self.web = web
        self.name = name
        self.host = host
        self.routes: dict[str, Route] = {}
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; avoid 40 ms delayed-ACK stalls

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def _answer(self, send_body: bool) -> None:
        server = self.server
        server.web.log.append(Hit(server.name, self.command, self.path, time.time(), self.headers.get("Host", "")))
        route = server.routes.get(self.path) or server.routes.get(self.path.split("?", 1)[0])
        if route is None:
            route = Route(404, "not found", content_type="text/plain")
        if route.gate is not None:
            route.gate.wait(GATE_TIMEOUT)
        if route.delay:
            time.sleep(route.delay)
        if route.raw is not None:
            self.close_connection = True
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(route.raw)
            return
        payload = route.payload()
        try:
            self.send_response(route.status)
            if route.content_type:
                self.send_header("Content-Type", route.content_type)
            for name, value in route.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if send_body:
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass


class FixtureWeb:
    """Start with ``with FixtureWeb() as web: base = web.site("news", {...})``."""

    def __init__(self) -> None:
        self.log: list[Hit] = []
        self.servers: dict[str, _Server] = {}
        self._threads: list[threading.Thread] = []

    def site(self, name: str, routes: dict[str, Route | str] | None = None, host: str | None = None) -> str:
        """Start (or extend) a site; returns its origin, e.g. ``http://127.0.0.1:41234``, or with a ``host`` name
        (given when the site starts) ``http://city-news.test:41234``."""
        server = self.servers.get(name)
        if server is None:
            server = _Server(self, name, host.lower() if host else None)
            self.servers[name] = server
            thread = threading.Thread(target=server.serve_forever, name=f"fixture-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        for path, route in (routes or {}).items():
            server.routes[path] = route if isinstance(route, Route) else Route(body=route)
        return self.origin(name)

    def origin(self, name: str) -> str:
        server = self.servers[name]
        return f"http://{server.host or '127.0.0.1'}:{server.server_address[1]}"

    def hosts(self) -> dict[str, str]:
        """Host name -> address, for the sites that have a name."""
        return {s.host: "127.0.0.1" for s in self.servers.values() if s.host}

    def crawl_settings(self) -> dict[str, Any]:
        """Scrapy settings that make a crawl resolve the sites' host names to loopback (and only those)."""
        from scrapy.settings import default_settings

        key = "TWISTED_DNS_RESOLVER" if hasattr(default_settings, "TWISTED_DNS_RESOLVER") else "DNS_RESOLVER"
        return {key: "crawler.fixtureweb.LoopbackResolver", "OPTOUT_LOOPBACK_HOSTS": self.hosts()}

    def hits(self, name: str | None = None, path: str | None = None) -> list[Hit]:
        return [h for h in self.log if (name is None or h.site == name) and (path is None or h.path == path)]

    def close(self) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()
        self.servers.clear()

    def __enter__(self) -> FixtureWeb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LoopbackResolver(CachingThreadedResolver):
    """Scrapy's caching resolver, except that the names in the ``OPTOUT_LOOPBACK_HOSTS`` setting (name ->
    address) are answered from it: the fixture web's sites, by name, without touching /etc/hosts or DNS."""

    def __init__(self, reactor: Any, cache_size: int, timeout: float, names: dict[str, str] | None = None) -> None:
        super().__init__(reactor, cache_size, timeout)
        self.names = {k.lower(): v for k, v in (names or {}).items()}

    @classmethod
    def from_crawler(cls, crawler: Any, reactor: Any) -> LoopbackResolver:
        settings = crawler.settings
        size = settings.getint("DNSCACHE_SIZE") if settings.getbool("DNSCACHE_ENABLED") else 0
        names = settings.getdict("OPTOUT_LOOPBACK_HOSTS")
        return cls(reactor, size, settings.getfloat("DNS_TIMEOUT"), names)

    def getHostByName(self, name: str, timeout: Any = ()) -> Any:
        from twisted.internet import defer

        address = self.names.get(name.lower().rstrip("."))
        if address is not None:
            return defer.succeed(address)
        return super().getHostByName(name, timeout)
