"""A loopback web whose servers verify the Web Bot Auth signature of every request they receive, with an
implementation that is not ours: the ``http-message-signatures`` library for RFC 9421, and the thumbprints and the
directory read here with hashlib and json. The keys come from the published key directory, fetched over HTTP from
the directory site the way a site would (with its own possession proof checked by the library too).

Each request is logged with the verifier's verdict, so a test can assert that every request, policy files, redirect
hops and retries included, carried a valid signature.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

WELL_KNOWN = "/.well-known/http-message-signatures-directory"


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 for an OKP key, written out here rather than imported from the code under test."""
    members = json.dumps({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(members.encode()).digest()).rstrip(b"=").decode()


def public_key(jwk: dict[str, Any]) -> Ed25519PublicKey:
    x = jwk["x"]
    return Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))


@dataclass
class Seen:
    site: str
    method: str
    path: str
    ok: bool
    why: str
    keyid: str | None
    time: float
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Answer:
    status: int = 200
    body: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "text/html; charset=utf-8"
    fail_first: int = 0  # answer 503 this many times before the real answer (to make Scrapy retry)
    delay: float = 0.0  # seconds before answering (keeps a crawl busy long enough for every fleet worker to join)


class VerifyingWeb:
    """Sites on loopback ports; ``directory_site`` serves the published key directory files from a folder."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.servers: dict[str, ThreadingHTTPServer] = {}
        self.routes: dict[str, dict[str, Answer]] = {}
        self.counts: dict[tuple[str, str], int] = {}
        self.directory_folder: Path | None = None
        self.directory_url: str | None = None
        self._keys: dict[str, Ed25519PublicKey] | None = None
        self.lock = threading.Lock()

    def site(self, name: str, routes: dict[str, Answer | str] | None = None) -> str:
        if name not in self.servers:
            web = self

            class Handler(BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"

                def log_message(self, *args: object) -> None:
                    pass

                def do_GET(self) -> None:
                    web.handle(name, self)

            server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            server.daemon_threads = True
            self.servers[name] = server
            self.routes[name] = {}
            threading.Thread(target=server.serve_forever, daemon=True).start()
        for path, answer in (routes or {}).items():
            self.routes[name][path] = answer if isinstance(answer, Answer) else Answer(body=answer)
        return self.origin(name)

    def origin(self, name: str) -> str:
        return f"http://127.0.0.1:{self.servers[name].server_address[1]}"

    def publish(self, folder: Path) -> str:
        """Serve ``optout disclose``'s directory files from a site of their own; returns its origin."""
        self.directory_folder = folder
        origin = self.site("keys")
        self.directory_url = origin + WELL_KNOWN
        return origin

    def keys(self, refresh: bool = False) -> dict[str, Ed25519PublicKey]:
        """The published keys, fetched like a site would and checked: each directory entry's kid is its
        thumbprint, and the response's possession proofs verify (the library, "@authority";req and
        content-digest, with the directory's own keys)."""
        with self.lock:
            if self._keys is not None and not refresh:
                return self._keys
            assert self.directory_url is not None, "publish() the directory first"
            import requests
            from http_message_signatures import HTTPMessageVerifier, MappingKeyResolver, algorithms

            resp = requests.get(self.directory_url, timeout=5)
            assert resp.status_code == 200
            assert resp.headers["Content-Type"] == "application/http-message-signatures-directory+json"
            jwks = json.loads(resp.content)["keys"]
            keys = {}
            for jwk in jwks:
                assert jwk["kid"] == thumbprint(jwk)
                keys[jwk["kid"]] = public_key(jwk)
            resolver = MappingKeyResolver(public_keys=keys, private_keys={})
            verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=resolver)
            proofs = verifier.verify(
                resp, max_age=None, expect_tag="http-message-signatures-directory", body=resp.content
            )
            assert proofs and all(r.body == resp.content for r in proofs)
            self._keys = keys
            return keys

    def verify(self, method: str, url: str, headers: dict[str, str]) -> tuple[bool, str, str | None]:
        from http_message_signatures import HTTPMessageVerifier, MappingKeyResolver, algorithms
        from http_message_signatures.exceptions import HTTPMessageSignaturesException

        message = SimpleNamespace(method=method, url=url, headers=headers)
        resolver = MappingKeyResolver(public_keys=self.keys(), private_keys={})
        verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=resolver)
        verifier.max_clock_skew = datetime.timedelta(0)  # a signature that expired in the slot queue is refused
        try:
            (result,) = verifier.verify(
                message, max_age=None, expect_tag="web-bot-auth", require_components=("@authority",)
            )
        except (HTTPMessageSignaturesException, ValueError) as exc:
            return False, f"{type(exc).__name__}: {exc}", None
        agent_ids = [c for c in result.covered_components if c.startswith('"signature-agent";key=')]
        if agent_ids != [f'"signature-agent";key="{result.label}"']:
            return False, f"Signature-Agent member of the label not covered: {result.covered_components}", None
        params = result.parameters
        if not {"created", "expires", "keyid", "tag"} <= set(params):
            return False, f"missing parameters: {params}", None
        agent = headers.get("Signature-Agent", "")
        if agent != f'{result.label}="{self.directory_url.removesuffix(WELL_KNOWN)}"':
            return False, f"Signature-Agent {agent!r} does not name the published directory's origin", None
        return True, "", str(params["keyid"])

    def handle(self, name: str, request: BaseHTTPRequestHandler) -> None:
        path = request.path
        headers = {k: v for k, v in request.headers.items()}
        if name == "keys" and self.directory_folder is not None:
            self._serve_directory(request)
            return
        url = f"http://{headers.get('Host', '')}{path}"
        ok, why, keyid = self.verify(request.command, url, headers)
        with self.lock:
            self.seen.append(Seen(name, request.command, path, ok, why, keyid, time.time(), headers))
            count = self.counts[(name, path)] = self.counts.get((name, path), 0) + 1
        answer = self.routes[name].get(path.split("?", 1)[0]) or Answer(404, "not found", content_type="text/plain")
        if count <= answer.fail_first:
            answer = Answer(503, "busy", content_type="text/plain")
        if answer.delay:
            time.sleep(answer.delay)
        payload = answer.body.encode()
        request.send_response(answer.status)
        request.send_header("Content-Type", answer.content_type)
        for header, value in answer.headers:
            request.send_header(header, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def _serve_directory(self, request: BaseHTTPRequestHandler) -> None:
        assert self.directory_folder is not None
        if request.path != WELL_KNOWN:
            request.send_error(404)
            return
        body = (self.directory_folder / WELL_KNOWN.lstrip("/")).read_bytes()
        lines = (self.directory_folder / (WELL_KNOWN.lstrip("/") + ".headers")).read_text().splitlines()
        request.send_response(200)
        for line in lines:
            header, _, value = line.partition(": ")
            request.send_header(header, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def close(self) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()
