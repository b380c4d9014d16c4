"""Web Bot Auth request signing for the add-on (``OPTOUT_SIGNING_KEY``), so that a site can tell our requests from an
impostor's with the same User-Agent (draft-meunier-webbotauth-httpsig-protocol; the signature itself is
:mod:`middlewares.httpsig`).

Settings:

* ``OPTOUT_SIGNING_KEY``: an Ed25519 private key file (PEM, or a JWK with ``d``). Unset: nothing is signed.
* ``OPTOUT_SIGNATURE_AGENT``: the https origin serving our key directory at
  ``/.well-known/http-message-signatures-directory`` (``optout disclose`` writes it); sent as ``Signature-Agent``.
* ``OPTOUT_SIGNING_EXPIRES``: seconds a signature stays valid (default 300; the draft recommends at most a day).

Where the signing happens, and why there: in a wrapper around Scrapy's http/https download handlers, the last step
before the bytes leave, not in a downloader middleware. Every request passes there, policy files fetched by the
access middleware included, and every redirect hop and retry is a new request that passes again, so each is signed
with its own authority and path. A downloader middleware, however late in the chain, runs before the request waits
in its download slot, and with a Crawl-delay a request can wait there for minutes (32 queued requests × a 10 s
delay is over five minutes): its signature could expire before it is sent. Here ``created`` is the moment of
sending. The wrapped handlers are whatever the project configured (``DOWNLOAD_HANDLERS``), so a custom handler keeps
working, signed.

A request that cannot be signed is not sent (fail closed): an operator who turned signing on promised sites that
every request is signed.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.misc import build_from_crawler, load_object

from middlewares.config import signer_from_settings
from middlewares.httpsig import SignatureError

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Request, Response

logger = logging.getLogger(__name__)

SCHEMES = ("http", "https")
INNER = "OPTOUT_SIGNING_HANDLERS"  # scheme -> the handler we wrap (set by install())


def install(settings: Any) -> None:
    """Put the signing wrappers in place of the http and https download handlers (called by the add-on when
    ``OPTOUT_SIGNING_KEY`` is set), remembering the handlers they wrap."""
    handlers = settings.getwithbase("DOWNLOAD_HANDLERS")
    inner = dict(settings.getdict(INNER))
    for scheme in SCHEMES:
        current = handlers.get(scheme)
        wrapper = f"{__name__}.{_WRAPPERS[scheme].__name__}"
        if current is None or current == wrapper or current is _WRAPPERS[scheme]:
            continue
        inner[scheme] = current
        own = settings["DOWNLOAD_HANDLERS"]
        # At the priority the project (or the command line) gave that scheme's handler, so ours replaces it.
        own.set(scheme, wrapper, priority=max(own.getpriority(scheme) or 0, 15))
    settings.set(INNER, inner, "addon")


class SigningDownloadHandler:
    """Signs each request, then hands it to the wrapped handler."""

    lazy = False
    scheme = "https"

    def __init__(self, crawler: Crawler) -> None:
        signer = signer_from_settings(crawler.settings)
        inner_path = crawler.settings.getdict(INNER).get(self.scheme)
        if signer is None or inner_path is None:
            raise NotConfigured("request signing is not configured")
        self.signer = signer
        self.stats = crawler.stats
        self.inner = build_from_crawler(load_object(inner_path), crawler)
        self._old_style = not inspect.iscoroutinefunction(self.inner.download_request)
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SigningDownloadHandler:
        return cls(crawler)

    def sign(self, request: Request) -> None:
        """Add the Web Bot Auth signature fields for this exact request (authority and path); a request that cannot be
        signed is refused with IgnoreRequest, never sent unsigned."""
        host = request.headers.get(b"Host")
        try:
            fields = self.signer.sign(request.method, request.url, host.decode("latin-1") if host else None)
        except (SignatureError, UnicodeError) as exc:
            self.stats.inc_value("optout/signing/refused")
            logger.error("optout: not fetching %s: it cannot be signed (%s)", request.url, exc)
            raise IgnoreRequest(f"optout: cannot sign {request.url}: {exc}") from None
        headers = request.headers
        for name, value in fields.items():
            headers[name] = value  # replaces what a redirected or retried copy carried from its predecessor
        self.stats.inc_value("optout/signing/signed")

    async def download_request(self, request: Request) -> Response:
        """Sign the request, then let the wrapped Scrapy handler download it (old-style Deferred handlers included)."""
        self.sign(request)
        if self._old_style:
            return await maybe_deferred_to_future(self.inner.download_request(request, self.crawler.spider))
        response: Response = await self.inner.download_request(request)
        return response

    async def close(self) -> None:
        """Close the wrapped handler, whichever way it closes (coroutine, Deferred or plain call)."""
        close = getattr(self.inner, "close", None)
        if close is None:
            return
        result = close()
        if inspect.isawaitable(result):
            await result
        elif result is not None:
            await maybe_deferred_to_future(result)


class SigningHTTPDownloadHandler(SigningDownloadHandler):
    """The signing wrapper installed for ``http`` URLs."""

    scheme = "http"


class SigningHTTPSDownloadHandler(SigningDownloadHandler):
    """The signing wrapper installed for ``https`` URLs."""

    scheme = "https"


_WRAPPERS = {"http": SigningHTTPDownloadHandler, "https": SigningHTTPSDownloadHandler}
