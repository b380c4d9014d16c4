"""``scrapy crawl compliant``: a generic spider for teams without their own, run under the opt-out add-on.

    scrapy crawl compliant -a seeds=https://example.com/,https://example.org/ -a depth=2 -a max_pages=500
    scrapy crawl compliant -a seeds_file=seeds.txt -a allowed_domains=example.com,example.org

It starts from the seeds, follows links inside its scope (the seeds' sites, i.e. their registrable domains and
every subdomain, or the ``allowed_domains`` given), reads the sitemaps named in each origin's robots.txt, and turns
every page that reaches it into an item with its text, title, language and links. The spider knows nothing of
opt-outs itself: the add-on refuses what may not be fetched and drops what may not be used before it gets here.
What it adds is the paper trail: every item carries the evidence hashes (the policy files consulted and the
response itself), and every refused request is reported with its decision, so a run can show for every URL it
touched what happened and why (see :mod:`crawler.crawl`, which writes those to files).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urlsplit

import scrapy
from lxml import etree
from scrapy.exceptions import CloseSpider, IgnoreRequest
from scrapy.http import Request, Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.gz import gunzip
from scrapy.utils.sitemap import Sitemap

from middlewares.downloader import DECISION_META
from middlewares.engine import origin_of
from middlewares.policy import Decision
from middlewares.protocols.blocklist import listed_site
from middlewares.protocols.media import media_type
from middlewares.recording import MAX_EVIDENCE, header_block
from middlewares.sitecache import PolicyStore
from middlewares.state import OptOutState, fetched_from_response

# Sent for every request that did not end as a stored page: refused by an opt-out, or failed. Receivers get
# ``event`` (a JSON-ready dict, see CompliantSpider._outcome) and the ``request`` it is about. crawler.runfiles.RunFiles
# writes them to a file (with the request journal, once Scrapy has finished with the request).
outcome_signal = object()

KIND_META = "compliant_kind"
MAX_LINKS = 1000
MAX_TEXT = 2_000_000
HTML_TYPES = ("text/html", "application/xhtml+xml")
_TITLE = etree.XPath("string(//title)")
_LANG = etree.XPath("string(/html/@lang)")
_META_LANGUAGE = etree.XPath(
    "string(//meta[translate(@http-equiv, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"
    " = 'content-language']/@content)"
)
# parent:: rather than ancestor::, as the HTML parser never nests elements inside script or style
_TEXT = etree.XPath("//body//text()[not(parent::script or parent::style or parent::noscript)]", smart_strings=False)
_HREFS = etree.XPath("//a/@href", smart_strings=False)


class SpiderArgumentError(ValueError):
    """A spider argument that cannot be used (the message names it)."""


@lru_cache(maxsize=65536)
def site_of(host: str) -> str:
    """The site a host belongs to: its registrable domain (offline public suffix list), or the host itself
    for IP addresses, ``localhost`` and names without a known suffix (``site1.test``)."""
    return listed_site(host) or host


def parse_seeds(text: str) -> list[str]:
    """Seeds from a comma/whitespace separated argument or a file's text (``#`` starts a comment)."""
    seeds: list[str] = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        seeds += [s for s in line.replace(",", " ").split() if s]
    return seeds


def valid_seed(url: str) -> str:
    """An absolute http(s) URL without its fragment, or SpiderArgumentError."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise SpiderArgumentError(f"invalid seed URL {url!r}: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise SpiderArgumentError(f"invalid seed URL {url!r}: expected an absolute http:// or https:// URL")
    return urldefrag(url.strip())[0]


def _int_arg(name: str, value: Any, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SpiderArgumentError(f"spider argument {name} must be a whole number, not {value!r}") from None
    if number < 0:
        raise SpiderArgumentError(f"spider argument {name} must not be negative")
    return number


def _flag(value: Any, default: bool) -> bool:
    if value in (None, ""):
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in ("0", "false", "no", "off")


class CompliantSpider(scrapy.Spider):
    name = "compliant"

    def __init__(
        self,
        seeds: str | Iterable[str] | None = None,
        seeds_file: str | None = None,
        allowed_domains: str | Iterable[str] | None = None,
        depth: int | str | None = None,
        max_pages: int | str | None = None,
        sitemaps: bool | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        urls = parse_seeds(seeds) if isinstance(seeds, str) else list(seeds or [])
        if seeds_file:
            try:
                urls += parse_seeds(Path(seeds_file).read_text(encoding="utf-8", errors="replace"))
            except OSError as exc:
                raise SpiderArgumentError(f"cannot read seeds file {seeds_file}: {exc.strerror or exc}") from None
        self.seeds = list(dict.fromkeys(valid_seed(u) for u in urls))
        if not self.seeds:
            raise SpiderArgumentError("no seeds: pass -a seeds=URL[,URL...] or -a seeds_file=FILE")
        domains = allowed_domains.replace(",", " ").split() if isinstance(allowed_domains, str) else allowed_domains
        if domains:
            # Also read by Scrapy's OffsiteMiddleware, which then enforces the same scope for redirects.
            self.allowed_domains = [d.strip().lower().lstrip(".") for d in domains if d.strip()]
            self.sites: frozenset[str] = frozenset()
        else:
            self.allowed_domains = []
            self.sites = frozenset(site_of(urlsplit(u).hostname or "") for u in self.seeds)
        self.max_depth = _int_arg("depth", depth, 3)  # 0 = unlimited
        self.max_pages = _int_arg("max_pages", max_pages, 0)  # 0 = unlimited
        self.use_sitemaps = _flag(sitemaps, True)
        self._sitemap_origins: set[str] = set()
        self._evidence: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        # Replaced by the request journal's copy (optout crawl) or Scrapy's SpiderState extension (JOBDIR).
        self.state: dict[str, Any] = {}

    # -- scope ------------------------------------------------------------------------------------------------

    def in_scope(self, url: str) -> bool:
        if not url.startswith(("http://", "https://")):
            return False
        try:
            host = (urlsplit(url).hostname or "").lower()
        except ValueError:
            return False
        if self.allowed_domains:
            return any(host == d or host.endswith("." + d) for d in self.allowed_domains)
        return site_of(host) in self.sites

    # -- requests ---------------------------------------------------------------------------------------------

    async def start(self) -> AsyncIterator[Request]:
        for url in self.seeds:
            yield self._page(url, depth=0, kind="seed")

    def _page(self, url: str, depth: int, kind: str = "page") -> Request:
        # No dont_filter, even for seeds: on a resumed run (JOBDIR) the seeds already crawled are skipped.
        return Request(url, callback=self.parse, errback=self.failed, meta={"depth": depth, KIND_META: kind})

    def _pages_done(self) -> int:
        return int(self.state.get("pages", 0))

    def _limit_reached(self) -> bool:
        return bool(self.max_pages) and self._pages_done() >= self.max_pages

    # -- pages ------------------------------------------------------------------------------------------------

    def parse(self, response: Response) -> Iterator[Any]:
        # A plain generator, not an async one: Scrapy runs async callback output through a pool of
        # CONCURRENT_ITEMS tasks per response, which cost more than everything else this spider does.
        if self._limit_reached():
            raise CloseSpider("max_pages")
        self.state["pages"] = self._pages_done() + 1
        item = self._item(response)
        yield item
        yield from self._sitemap_requests(response.url)
        depth = int(response.meta.get("depth", 0))
        if not self.max_depth or depth < self.max_depth:
            for link in item.get("links", ()):
                if self.in_scope(link):
                    yield self._page(link, depth + 1)

    def _item(self, response: Response) -> dict[str, Any]:
        content_type = media_type((response.headers.get(b"Content-Type") or b"").decode("latin-1"))
        item: dict[str, Any] = {
            "url": response.url,
            "status": response.status,
            "content_type": content_type,
            "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "depth": int(response.meta.get("depth", 0)),
        }
        redirects = response.meta.get("redirect_urls")
        if redirects:
            item["requested_url"] = redirects[0]
        if isinstance(response, TextResponse) and (content_type in HTML_TYPES or not content_type):
            item.update(extract(response))
        item["evidence"] = self._evidence_for(response)
        return item

    def _evidence_for(self, response: Response) -> dict[str, Any]:
        """SHA-256 of what the decision rested on: the response (headers and body, as the registry hashes
        them) and the policy files of its origin as they were fetched. The policy files' bytes are the ones
        the add-on keeps in its cache and, for every honoured opt-out, in the registry."""
        fetched = fetched_from_response(response)
        evidence: dict[str, Any] = {
            "response": {
                "status": response.status,
                "sha256": hashlib.sha256(response.body[:MAX_EVIDENCE]).hexdigest(),
                "length": len(response.body),
                "headers_sha256": hashlib.sha256(header_block(fetched)).hexdigest(),
            }
        }
        files = self._policy_files(origin_of(response.url))
        if files is not None:
            evidence["policy_files"] = files
        return evidence

    def _policy_files(self, origin: str) -> list[dict[str, Any]] | None:
        """The origin's policy files as the usage check saw them a moment ago: from the add-on's cache (read
        synchronously, see parse), else from its entry that has just expired, else from the persistent store."""
        state = OptOutState.current(self.crawler)
        if state is None:  # the add-on is off (e.g. the benchmark's baseline): nothing was consulted
            return None
        cache = state.cache
        site = cache.cached(origin, expired=True)
        key = id(site) if site is not None else None
        known = self._evidence.get(origin)
        if known is not None and key is not None and known[0] == key:
            return known[1]
        if site is None and isinstance(cache.store, PolicyStore):
            # Evicted from memory (more origins than OPTOUT_CACHE_MAX_ORIGINS): the same files, from the store.
            site = cache.store.site(origin, state.policy)
        if site is None:
            return None
        answers = list(site.files.items())
        files = []
        for url, f in answers:
            body = f.body if f.status is not None else f.error.encode()
            files.append({"url": url, "status": f.status, "sha256": hashlib.sha256(body[:MAX_EVIDENCE]).hexdigest()})
        if key is not None:
            if len(self._evidence) > 10_000:
                self._evidence.clear()
            self._evidence[origin] = (key, files)
        return files

    # -- sitemaps ---------------------------------------------------------------------------------------------

    def _sitemap_requests(self, url: str) -> Iterator[Request]:
        """The sitemaps robots.txt names, once per origin. robots.txt was already fetched by the add-on (and is
        in its cache), so nothing is fetched twice; a sitemap itself is an ordinary, checked request."""
        if not self.use_sitemaps:
            return
        origin = origin_of(url)
        if origin in self._sitemap_origins:
            return
        state = OptOutState.current(self.crawler)
        site = state.cache.cached(origin) if state is not None else None
        if site is None:
            return
        self._sitemap_origins.add(origin)
        for sitemap in site.robots.sitemaps[:50]:
            if self.in_scope(sitemap):
                yield Request(
                    sitemap, callback=self.parse_sitemap, errback=self.failed, meta={"depth": 1, KIND_META: "sitemap"}
                )

    def parse_sitemap(self, response: Response) -> Iterator[Request]:
        body = response.body
        if body[:2] == b"\x1f\x8b":
            try:
                body = gunzip(body, max_size=50 * 1024 * 1024)
            except Exception:
                self.logger.warning("ignoring sitemap %s: cannot decompress it", response.url)
                return
        try:
            sitemap = Sitemap(body)
        except Exception:
            self.logger.warning("ignoring sitemap %s: not a sitemap", response.url)
            return
        depth = int(response.meta.get("depth", 1))
        for entry in sitemap:
            loc = entry.get("loc", "")
            if not self.in_scope(loc):
                continue
            if sitemap.type == "sitemapindex":
                yield Request(loc, callback=self.parse_sitemap, errback=self.failed, meta={**response.meta})
            elif not self.max_depth or depth <= self.max_depth:
                yield self._page(loc, depth, kind="sitemap-entry")

    # -- refusals and failures --------------------------------------------------------------------------------

    def failed(self, failure: Any) -> Iterator[Request]:
        """Errback of every request: report what happened, and still look at the origin's sitemaps (a refused
        seed does not make the rest of its site off limits)."""
        request: Request = failure.request
        self.crawler.signals.send_catch_log(outcome_signal, event=self._outcome(failure, request), request=request)
        yield from self._sitemap_requests(request.url)

    def _outcome(self, failure: Any, request: Request) -> dict[str, Any]:
        meta = request.meta
        redirects = meta.get("redirect_urls") or []
        event: dict[str, Any] = {
            "url": redirects[0] if redirects else request.url,
            "kind": meta.get(KIND_META, "page"),
            "depth": int(meta.get("depth", 0)),
            "at": time.time(),
        }
        if request.url != event["url"]:
            event["final_url"] = request.url
        decision = meta.get(DECISION_META)
        exc = failure.value
        if isinstance(exc, IgnoreRequest) and isinstance(decision, Decision) and not decision.allowed:
            # download_latency is set by Scrapy's downloader: present means the response was fetched and then
            # refused by the usage stage; absent means the access stage refused it before any byte was sent.
            event["outcome"] = "fetched_not_stored" if "download_latency" in meta else "not_fetched"
            event["reservations"] = decision.to_json()["reservations"]
            event["errors"] = decision.errors
        elif isinstance(exc, HttpError):
            event["outcome"] = "http_error"
            event["status"] = exc.response.status
        else:
            event["outcome"] = "error"
            event["error"] = f"{type(exc).__name__}: {exc}"[:300]
        return event


def extract(response: TextResponse) -> dict[str, Any]:
    """Title, language, visible text and absolute links of an HTML page. The queries run as compiled lxml
    XPath on the tree Scrapy already parsed: through parsel, every text node would become a Selector object."""
    root = response.selector.root
    title = " ".join(_TITLE(root).split())
    lang = str(_LANG(root) or _META_LANGUAGE(root))
    if not lang:
        lang = (response.headers.get(b"Content-Language") or b"").decode("latin-1")
    lang = lang.split(",")[0].strip().lower()
    text = " ".join(" ".join(_TEXT(root)).split())[:MAX_TEXT]
    links: dict[str, None] = {}
    for href in _HREFS(root):
        href = str(href).strip()
        if not href or href.startswith(("#", "javascript:", "mailto:", "tel:", "data:")):
            continue
        try:
            absolute = urldefrag(response.urljoin(href))[0]
        except ValueError:
            continue
        if absolute.startswith(("http://", "https://")):
            links[absolute] = None
            if len(links) >= MAX_LINKS:
                break
    return {"title": title, "language": lang, "text": text, "links": list(links)}
