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
from urllib.parse import ParseResult, SplitResult, urlsplit

from scrapy import signals
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Headers
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from scrapy.utils.misc import build_from_crawler, load_object

from middlewares.config import signer_from_settings
from middlewares.httpsig import SignatureError, Signer, authority_of

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
    # Signed requests counted here between updates of the crawl's stats (a stats call costs ~1 µs, 3% of a
    # signature). ``optout/signing/signed`` is exact in the stats dump and after the crawl; a spider_closed receiver
    # connected before the download handlers (an extension's) may see up to FLUSH_EVERY - 1 fewer.
    FLUSH_EVERY = 256

    def __init__(self, crawler: Crawler) -> None:
        signer = signer_from_settings(crawler.settings)
        inner_path = crawler.settings.getdict(INNER).get(self.scheme)
        if signer is None or inner_path is None:
            raise NotConfigured("request signing is not configured")
        self._setup(signer, crawler.stats)
        self.inner = build_from_crawler(load_object(inner_path), crawler)
        self._old_style = not inspect.iscoroutinefunction(self.inner.download_request)
        self.crawler = crawler
        crawler.signals.connect(self._flush, signal=signals.spider_closed)

    def _setup(self, signer: Signer, stats: Any) -> None:
        """The per-request state: the signer, the stats, and how the fields are put on a Scrapy request."""
        self.signer = signer
        self.stats = stats
        self._signed = 0  # signed since the stats were last updated (a stats call per request costs ~1 µs)
        self._agent = signer.agent_header.encode("ascii")
        # Scrapy's Headers is a dict of normalized name -> list of byte values; setting the three fields through
        # its __setitem__ normalizes names and values that are already normal. Checked here, on Scrapy's own
        # class, that writing the normalized entries directly gives what __setitem__ gives; otherwise (a
        # different Scrapy) the fields go through __setitem__.
        probe, direct = Headers(), Headers()
        probe["Signature-Agent"], probe["Signature-Input"], probe["Signature"] = self._agent, b"i", b"s"
        names = (probe.normkey("Signature-Agent"), probe.normkey("Signature-Input"), probe.normkey("Signature"))
        dict.update(direct, zip(names, ([self._agent], [b"i"], [b"s"]), strict=True))
        self._names = names
        self._host = probe.normkey("Host")
        self._direct = dict(probe) == dict(direct)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SigningDownloadHandler:
        return cls(crawler)

    def sign(self, request: Request) -> None:
        """Add the Web Bot Auth signature fields for this exact request (authority and path); a request that cannot be
        signed is refused with IgnoreRequest, never sent unsigned."""
        headers = request.headers
        direct = self._direct and type(headers) is Headers
        if direct:
            hosts = dict.get(headers, self._host)
            host = hosts[-1] if hosts else None
        else:
            host = headers.get(b"Host")
        url = request.url
        try:
            if ";" in url:  # urlparse (so its cache) splits ;params off the path: @path comes from urlsplit
                parts: SplitResult | ParseResult = urlsplit(url)
            else:  # parsed already: Scrapy's handler dispatch asked for the scheme
                parts = urlparse_cached(request)
            signature_input, signature = self.signer.sign_target(
                request.method,
                authority_of(parts.scheme, parts.netloc, host.decode("latin-1") if host else None),
                parts.path or "/",
            )
        except (SignatureError, UnicodeError) as exc:
            self.stats.inc_value("optout/signing/refused")
            logger.error("optout: not fetching %s: it cannot be signed (%s)", request.url, exc)
            raise IgnoreRequest(f"optout: cannot sign {request.url}: {exc}") from None
        # Each replaces what a redirected or retried copy carried from its predecessor.
        if direct:
            agent_name, input_name, signature_name = self._names
            dict.update(
                headers, ((agent_name, [self._agent]), (input_name, [signature_input]), (signature_name, [signature]))
            )
        else:
            headers["Signature-Agent"] = self._agent
            headers["Signature-Input"] = signature_input
            headers["Signature"] = signature
        self._signed += 1
        if self._signed >= self.FLUSH_EVERY:
            self._flush()

    def _flush(self, *args: Any, **kwargs: Any) -> None:
        """Add the requests signed since the last update to ``optout/signing/signed`` (every FLUSH_EVERY requests,
        when the spider closes, before the stats are dumped, and when the handler closes)."""
        if self._signed:
            self.stats.inc_value("optout/signing/signed", self._signed)
            self._signed = 0

    async def download_request(self, request: Request) -> Response:
        """Sign the request, then let the wrapped Scrapy handler download it (old-style Deferred handlers included)."""
        self.sign(request)
        if self._old_style:
            return await maybe_deferred_to_future(self.inner.download_request(request, self.crawler.spider))
        response: Response = await self.inner.download_request(request)
        return response

    async def close(self) -> None:
        """Close the wrapped handler, whichever way it closes (coroutine, Deferred or plain call)."""
        self._flush()
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
