"""Proving control of a domain, and the access tokens that follow (ACME-style, without the certificates).

Flow: the claimant asks for a challenge for a domain and gets three values: a challenge id, a private ``secret``
and a public ``token``. They publish the token either

* **http**: as the whole body of ``http(s)://<domain>/.well-known/optout-challenge/<token>`` (served with status
  200, no redirect), or
* **dns**: as a TXT record at ``_optout-challenge.<domain>``,

then ask the service to verify, presenting the id and the secret. The secret is never published, so somebody who
sees the token on the site (it is public by design) cannot redeem the challenge. Challenges expire (default 15
minutes), allow a few attempts, and are single-use. A successful check yields a bearer token bound to the
registrable domain, signed with the service's HMAC key and expiring (default 24 hours).

The claimed domain is always reduced to its registrable domain (``registrable_domain``) before anything else, so
``news.example.com`` and ``EXAMPLE.com.`` and the Unicode and A-label spellings of one name all lead to one key,
and the check is made on that key's own host, never on a host the claimant chose.

Fetching is abstracted behind two small interfaces so tests (and air-gapped deployments) never touch the
internet: a ``Resolver`` maps a domain to the base URLs to try, and a ``TxtLookup`` answers TXT queries. The
default resolver refuses domains that resolve to loopback, private or link-local addresses (the service must not
be a proxy into its own network); tests inject one that maps fixture names to 127.0.0.1:PORT.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import requests
import urllib3

from optout_registry.deadline import deadline
from optout_registry.deadline import session as deadline_session
from optout_registry.record import RecordError, registrable_domain

CHALLENGE_PATH = "/.well-known/optout-challenge/"
DNS_LABEL = "_optout-challenge"
MAX_CHALLENGE_BYTES = 4096
TOKEN_PREFIX = "oh1"
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)\Z")

Resolver = Callable[[str], list[str]]
TxtLookup = Callable[[str], list[str]]
AddressLookup = Callable[[str], list[str]]


class DomainError(ValueError):
    """The text is not a domain name the service can key records by."""


class ChallengeFailed(Exception):
    """The published token was not found; the message says what was seen instead."""


@functools.lru_cache(maxsize=65_536)
def site_key(text: str) -> str:
    """Normalise a claimed or queried domain to the registry's site key (registrable domain, IDNA A-label).

    Refuses anything that is not a plain host name or IP literal: wildcards, paths, user info, ports other than
    a bare ``:port`` suffix, empty labels, over-long names. The same function guards every endpoint, so one name
    always maps to one key.
    """
    if not isinstance(text, str) or not text.strip():
        raise DomainError("a domain is required")
    if len(text) > 253:
        raise DomainError("domain name longer than 253 characters")
    raw = text.strip()
    if any(ch in raw for ch in "*/\\@?#%[] \t\r\n\x00,;\"'<>") or "://" in raw:
        raise DomainError(f"not a domain name: {raw[:80]!r}")
    try:
        key = registrable_domain(raw)
    except (RecordError, ValueError, UnicodeError) as exc:
        raise DomainError(f"not a domain name: {raw[:80]!r} ({exc})") from None
    try:
        ipaddress.ip_address(key)
        return key
    except ValueError:
        pass
    labels = key.split(".")
    if len(key) > 253 or not all(_LABEL.match(label) for label in labels):
        raise DomainError(f"not a domain name: {raw[:80]!r}")
    return key


# -- access tokens ----------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Grant:
    """What a verified bearer token allows: one domain until ``expires`` (epoch seconds)."""

    domain: str
    expires: int


class TokenSigner:
    """Stateless bearer tokens ``oh1.<payload>.<hmac>``: no session table, any worker can check them."""

    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 32:
            raise ValueError("token secret must be at least 32 bytes")
        self._secret = secret
        self._clock = clock

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, f"{TOKEN_PREFIX}.{payload}".encode("ascii"), hashlib.sha256).digest())

    def issue(self, domain: str, ttl: int) -> tuple[str, int]:
        """A token for ``domain`` valid ``ttl`` seconds, and when it expires (UNIX time)."""
        expires = int(self._clock()) + ttl
        body = json.dumps({"d": domain, "e": expires, "n": secrets.token_hex(8)}, separators=(",", ":"))
        payload = _b64(body.encode("utf-8"))
        return f"{TOKEN_PREFIX}.{payload}.{self._mac(payload)}", expires

    def check(self, token: str) -> Grant | None:
        """The grant of a valid, unexpired token; None for anything else (never raises on hostile input)."""
        if not isinstance(token, str) or len(token) > 1024:
            return None
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            return None
        _, payload, mac = parts
        try:
            if not hmac.compare_digest(mac.encode("ascii"), self._mac(payload).encode("ascii")):
                return None
            body = json.loads(_unb64(payload))
            domain, expires = body["d"], body["e"]
        except (ValueError, KeyError, TypeError, UnicodeError):
            return None
        if not isinstance(domain, str) or type(expires) is not int or expires <= self._clock():
            return None
        return Grant(domain, expires)


# -- fetching the proof ----------------------------------------------------------------------------------------


def system_addresses(domain: str) -> list[str]:
    """Every address the host's own resolver (getaddrinfo) gives for ``domain``."""
    return [str(info[4][0]) for info in socket.getaddrinfo(domain, None, proto=socket.IPPROTO_TCP)]


def public_resolver(domain: str, addresses: AddressLookup = system_addresses) -> list[str]:
    """Default resolver: https then http on the domain itself, refused if it resolves to a non-public address.

    ``addresses`` looks the name up (the host's resolver unless a deployment or a test names another, e.g. a DNS
    server on loopback); every address it returns must be global, so one private address among public ones is
    enough to refuse. (A name could still re-resolve elsewhere between this check and the fetch; deployments that
    need a hard guarantee put the service behind an egress proxy that enforces the same rule.)
    """
    try:
        found = addresses(domain)
    except (OSError, UnicodeError):
        raise ChallengeFailed(f"{domain} does not resolve") from None
    if not found:
        raise ChallengeFailed(f"{domain} does not resolve")
    for text in found:
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            raise ChallengeFailed(f"{domain} resolves to something that is not an address; refusing") from None
        if not addr.is_global:
            raise ChallengeFailed(f"{domain} resolves to a non-public address; refusing to fetch from it")
    return [f"https://{domain}", f"http://{domain}"]


def static_resolver(mapping: Mapping[str, str]) -> Resolver:
    """For tests and ``optout serve --resolve``: domain -> one base URL (e.g. http://127.0.0.1:8081)."""
    table = {site_key(k): v.rstrip("/") for k, v in mapping.items()}

    def resolve(domain: str) -> list[str]:
        base = table.get(domain)
        if base is None:
            raise ChallengeFailed(f"{domain} is not reachable from this service")
        return [base]

    return resolve


def fetch_http_token(base: str, token: str, *, timeout: float = 5.0, user_agent: str = "optout-service") -> bytes:
    """GET ``<base>/.well-known/optout-challenge/<token>``: no redirects, no content coding, at most 4 KiB, over
    within ``timeout`` however slowly the server sends its headers or body (optout_registry/deadline.py)."""
    url = f"{base}{CHALLENGE_PATH}{token}"
    http = deadline_session(user_agent)
    http.headers.update({"Accept": "text/plain", "Accept-Encoding": "identity"})
    with deadline(timeout) as watchdog:
        try:
            with http.get(url, timeout=(min(3.0, timeout), timeout), stream=True, allow_redirects=False) as resp:
                if resp.status_code != 200:
                    raise ChallengeFailed(
                        f"{url} answered HTTP {resp.status_code} (expected 200, redirects not followed)"
                    )
                if resp.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
                    raise ChallengeFailed(f"{url} answered with a Content-Encoding (expected plain text)")
                body: bytes = resp.raw.read(MAX_CHALLENGE_BYTES + 1, decode_content=False)
                if watchdog.expired:
                    raise ChallengeFailed(f"{url} was too slow (over {timeout:g} s)")
                if len(body) > MAX_CHALLENGE_BYTES:
                    raise ChallengeFailed(f"{url} returned more than {MAX_CHALLENGE_BYTES} bytes")
                return body
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if watchdog.expired:
                raise ChallengeFailed(f"{url} was too slow (over {timeout:g} s)") from None
            raise ChallengeFailed(f"could not fetch {url}: {type(exc).__name__}") from None
        finally:
            http.close()


def check_http(domain: str, token: str, resolver: Resolver, timeout: float = 5.0) -> str:
    """Return the URL where the token was found; ChallengeFailed with the reasons otherwise."""
    reasons = []
    for base in resolver(domain):
        try:
            body = fetch_http_token(base, token, timeout=timeout)
        except ChallengeFailed as exc:
            reasons.append(str(exc))
            continue
        if body.strip() == token.encode("ascii"):
            return f"{base}{CHALLENGE_PATH}{token}"
        reasons.append(f"{base}{CHALLENGE_PATH}{token} does not contain the token")
    raise ChallengeFailed("; ".join(reasons) or f"no address to try for {domain}")


def check_dns(domain: str, token: str, lookup: TxtLookup | None) -> str:
    """Where the token was found (``dns:<name>``) in a TXT record of ``_optout-challenge.<domain>``; ChallengeFailed
    if it is not there, the lookup fails, or DNS verification is not configured."""
    if lookup is None:
        raise ChallengeFailed("DNS verification is not configured on this service; use the http method")
    name = f"{DNS_LABEL}.{domain}"
    try:
        values = lookup(name)
    except Exception as exc:  # a lookup backend's own errors
        raise ChallengeFailed(f"TXT lookup for {name} failed: {type(exc).__name__}") from None
    if any(v.strip().strip('"') == token for v in values):
        return f"dns:{name}"
    raise ChallengeFailed(f"no TXT record at {name} holds the token")


def new_secret() -> tuple[str, str]:
    """(secret, its SHA-256 hex): the service stores only the hash."""
    secret = secrets.token_urlsafe(32)
    return secret, hashlib.sha256(secret.encode("ascii")).hexdigest()


def secret_matches(secret: str, digest: str) -> bool:
    """Whether ``secret`` hashes to ``digest`` (compared in constant time)."""
    return hmac.compare_digest(hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest(), digest)
