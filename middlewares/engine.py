"""Turn fetch results into signals: the shared core of `optout check` (requests) and the Scrapy middlewares.

Nothing here does I/O. A fetcher hands over :class:`Fetched` results (robots.txt, the site-level policy files, the
resource, linked licences) and gets back signals; :class:`~middlewares.policy.Policy` turns them into a decision.
That split is what guarantees a URL gets the same answer from the command line and from a crawl.

Fetch semantics follow RFC 9309 §2.3.1 for robots.txt and PROTOCOLS.md §10.4 for the other files: whatever
cannot be established is denied (a ``fetch`` signal) for the purposes that file could have reserved.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from middlewares.policy import Policy, with_source
from middlewares.protocols import (
    access,
    ai_txt,
    content_signal,
    content_usage,
    media,
    robots,
    robots_tag,
    rsl,
    tdmrep,
)
from middlewares.protocols.html import HtmlHead, scan_html
from middlewares.protocols.signals import AI_PURPOSES, ALL_PURPOSES, Mode, Purpose, Signal, Verdict, verdicts

ROBOTS_LIMIT = 512_000
POLICY_FILE_LIMIT = 1024 * 1024
MAX_REDIRECTS = 5
TDMREP_PATH = "/.well-known/tdmrep.json"
AI_TXT_PATH = "/ai.txt"


@dataclass(slots=True)
class Fetched:
    """One HTTP exchange as the engine needs it. ``status`` is None when no HTTP answer arrived (DNS, refused,
    timeout, too many redirects); ``error`` then says why in one line."""

    url: str
    status: int | None
    headers: Mapping[str, list[str]] = field(default_factory=dict)  # names lower-case, one entry per field line
    body: bytes = b""
    final_url: str = ""
    error: str = ""
    redirects: int = 0
    fetched_at: float = field(default_factory=time.time)

    def header(self, name: str) -> list[str]:
        """All values of a header, by name in any case; empty when the header is absent."""
        return list(self.headers.get(name.lower(), ()))

    @property
    def content_type(self) -> str:
        """The media type of the last Content-Type header, lower-case and without parameters; empty when there is
        none."""
        values = self.headers.get("content-type")
        return media.media_type(values[-1]) if values else ""

    @property
    def ok(self) -> bool:
        """A 2xx answer: the only kind whose body is the policy or page itself."""
        return self.status is not None and 200 <= self.status < 300

    def compacted(self) -> Fetched:
        """What is worth keeping of a policy file's answer: a 4xx means "no such file" (RFC 9309 §2.3.1.3), so
        its error page is dropped; 2xx bodies are the policy and 5xx bodies the evidence of a fail-closed decision."""
        if self.status is not None and 400 <= self.status < 500 and self.body:
            return replace(self, body=b"")
        return self


def origin_of(url: str) -> str:
    """scheme://host[:port] — the unit RFC 9309 scopes robots.txt to (§2.3)."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def fetch_failure(what: str, where: str, source: str, fetched: Fetched, purposes: Iterable[Purpose]) -> Signal:
    """The fail-closed signal for something that could not be fetched: it denies ``purposes``, since an unreadable
    policy cannot be taken to allow."""
    reason = fetched.error or f"HTTP {fetched.status}"
    return Signal(
        protocol="fetch",
        where=where,
        value=str(fetched.status) if fetched.status is not None else "no response",
        rule=f"{what} could not be fetched ({reason}); the safe answer is no",
        verdicts=verdicts(Verdict.DISALLOW, *purposes),
        source=source,
    )


@functools.lru_cache(maxsize=16)
def _head_words(agent: str) -> tuple[str, ...]:
    """Every word the HTML readers of :func:`response_signals` look for: a head with none has nothing for them."""
    return (*tdmrep.HTML_WORDS, *robots_tag.meta_words(agent), *rsl.HTML_WORDS)


def _looks_like_html(body: bytes, content_type: str) -> bool:
    if content_type in ("text/html", "application/xhtml+xml"):
        return True
    return body[:512].lstrip().lower().startswith((b"<!doctype", b"<html"))


def robots_url(origin: str) -> str:
    """Where RFC 9309 puts an origin's robots.txt."""
    return origin + "/robots.txt"


def policy_files(origin: str, policy: Policy) -> dict[str, tuple[str, int]]:
    """The site-level files after robots.txt, once per origin, for this policy: key -> (URL, size limit). The key
    is also the name users read. tdmrep.json can only reserve AI uses and ai.txt only training, so a search
    crawler does not ask for them."""
    files: dict[str, tuple[str, int]] = {}
    if policy.purpose in (Purpose.TRAIN_AI, Purpose.AI_INPUT) and "tdmrep" not in policy.disabled:
        files["tdmrep.json"] = (origin + TDMREP_PATH, POLICY_FILE_LIMIT)
    if policy.purpose is Purpose.TRAIN_AI and "ai-txt" not in policy.disabled:
        files["ai.txt"] = (origin + AI_TXT_PATH, POLICY_FILE_LIMIT)
    return files


@dataclass
class SitePolicy:
    """Everything fetched once per origin: robots.txt and the site-level policy files, parsed."""

    origin: str
    robots: robots.RobotsTxt
    robots_url: str
    tdmrep: tdmrep.TdmrepFile | None = None
    ai_txt: ai_txt.AiTxt | None = None
    licenses: dict[str, rsl.RslDocument] = field(default_factory=dict)
    failures: list[Signal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Raw answers by URL, kept as evidence: the registry stores exactly the bytes a decision rested on.
    files: dict[str, Fetched] = field(default_factory=dict)
    # usage_signals' answer for a policy when no source this origin has reads the URL, which is so on most sites
    # (no tdmrep.json, ai.txt, RSL licence, Content-Usage line or training crawler's group): then it is worked out
    # once, not for every page; None when some source does (found out once too). Forgotten whenever a file is added.
    _site_wide: tuple[Policy, tuple[Signal, ...] | None] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def unreachable(self) -> bool:
        """robots.txt could not be fetched: everything is disallowed, and the answer must be re-checked soon
        rather than cached for the usual 24 hours (RFC 9309 §2.3.1.4)."""
        return any(f.protocol == "fetch" and f.where == "robots.txt" for f in self.failures)

    @classmethod
    def from_robots(cls, origin: str, fetched: Fetched, policy: Policy) -> SitePolicy:
        """RFC 9309 §2.3.1: 2xx parse; 4xx "unavailable" allows all; 5xx and network errors "unreachable"
        disallow all. Conservative mode also treats 429 and a redirect chain longer than 5 as unreachable.
        The other files are added afterwards, each only if this robots.txt lets us read it (siteload.py)."""
        url = robots_url(origin)
        site = cls(origin=origin, robots=robots.ALLOW_ALL, robots_url=url)
        site.files[url] = fetched
        status = fetched.status
        if fetched.ok:
            if robots.looks_binary(fetched.body):
                if policy.conservative:  # it cannot be what the site meant to say: do not read it as "allow all"
                    site.robots = robots.NOT_TEXT
                    site.failures.append(
                        Signal(
                            protocol="fetch",
                            where="robots.txt",
                            value="not text",
                            rule=robots.NOT_TEXT.fixed_reason,
                            verdicts=verdicts(Verdict.DISALLOW, *ALL_PURPOSES),
                            source=url,
                        )
                    )
                    site.notes.append(f"{url}: not text (binary data or NUL bytes), everything disallowed")
                    return site
                site.notes.append(f"{url}: not text (binary data or NUL bytes), read literally (strict mode)")
            site.robots = robots.parse_robots(fetched.body, limit=ROBOTS_LIMIT)
            if site.robots.truncated:
                site.notes.append(f"{url}: larger than {ROBOTS_LIMIT} bytes, the rest was ignored (RFC 9309 §2.5)")
            return site
        too_many_redirects = status is not None and 300 <= status < 400
        unreachable = status is None or status >= 500 or (policy.conservative and status == 429)
        if too_many_redirects and policy.conservative:
            unreachable = True
        if unreachable:
            site.robots = robots.DISALLOW_ALL
            site.failures.append(fetch_failure("robots.txt", "robots.txt", url, fetched, ALL_PURPOSES))
            site.notes.append(f"{url}: unreachable ({fetched.error or f'HTTP {status}'}), everything disallowed")
        return site

    @property
    def robots_fetched_at(self) -> float:
        """When robots.txt was fetched (wall time): the request a Crawl-delay after it counts from."""
        return self.files[self.robots_url].fetched_at

    def crawl_delay(self, policy: Policy) -> float:
        """Seconds to keep between requests to this origin (0: none asked for)."""
        return self.robots.crawl_delay(policy.agent, lenient=policy.lenient) or 0.0

    def read_refusal(self, url: str, name: str, policy: Policy) -> str | None:
        """Why we may not request ``url`` (a policy file on this origin), or None when robots.txt lets our token
        fetch it like any other URL. A file we may not read is neither a reservation nor a failure: the note
        says so, and the pages it would have covered are judged without it."""
        if self.unreachable:
            return f"{name} not read: {self.robots_url} is unreachable, so nothing else is requested from this origin"
        denied = self.access_signals(url, policy)
        if not denied:
            return None
        return f"{name} not read: robots.txt disallows {urlsplit(url).path} for {policy.agent} ({denied[0].rule})"

    def add_file(self, key: str, fetched: Fetched, policy: Policy) -> None:
        """One of :func:`policy_files`'s answers."""
        self._site_wide = None
        self.files[fetched.url] = fetched
        if key == "tdmrep.json":
            self._add_tdmrep(fetched, policy)
        elif key == "ai.txt":
            self._add_ai_txt(fetched)
        else:
            raise ValueError(f"unknown policy file {key!r}")

    def _add_tdmrep(self, fetched: Fetched, policy: Policy) -> None:
        body = self._policy_file("tdmrep.json", "well-known", fetched, AI_PURPOSES)
        if body is None:
            return
        try:
            self.tdmrep = tdmrep.parse_tdmrep_json(body, mode=policy.mode)
        except tdmrep.TdmrepError as exc:
            self.notes.append(f"{self.origin}{TDMREP_PATH}: {exc}")
            if policy.conservative:
                # The site evidently tried to say something here; when in doubt, do not use the content.
                self.failures.append(
                    Signal(
                        protocol="tdmrep",
                        where="well-known",
                        value="invalid",
                        rule=f"invalid tdmrep.json ({exc}); treated as a reservation",
                        verdicts=verdicts(Verdict.DISALLOW, *AI_PURPOSES),
                        source=self.origin + TDMREP_PATH,
                    )
                )

    def _add_ai_txt(self, fetched: Fetched) -> None:
        body = self._policy_file("ai.txt", "ai.txt", fetched, (Purpose.TRAIN_AI,))
        if body is not None:
            self.ai_txt = ai_txt.parse_ai_txt(body)

    def add_license(self, url: str, fetched: Fetched, policy: Policy) -> None:
        """An RSL licence named in robots.txt: it applies to the whole origin, by its own `<content>` URLs."""
        self._site_wide = None
        self.files[url] = fetched
        loaded = load_license(url, fetched, policy.mode)
        if loaded.note:
            self.notes.append(loaded.note)
        if loaded.failure is not None:
            self.failures.append(loaded.failure)
        if loaded.document is not None:
            self.licenses[url] = loaded.document

    def _policy_file(self, name: str, where: str, fetched: Fetched, purposes: Iterable[Purpose]) -> bytes | None:
        """Body of a site-level file, or None when the site does not implement it. Servers that answer every
        path with their home page (a "soft 404") do not implement the protocol either."""
        source = fetched.url
        if fetched.ok:
            if _looks_like_html(fetched.body, fetched.content_type):
                return None
            if len(fetched.body) > POLICY_FILE_LIMIT:
                self.notes.append(f"{source}: larger than {POLICY_FILE_LIMIT} bytes, ignored beyond that")
            return fetched.body[:POLICY_FILE_LIMIT]
        status = fetched.status
        if status is not None and 400 <= status < 500 and status != 429:
            return None
        self.failures.append(fetch_failure(name, where, source, fetched, purposes))
        self.notes.append(f"{source}: {fetched.error or f'HTTP {status}'}; reserved until it can be read")
        return None

    # -- what the site-level files say about one URL ---------------------------------------------------------

    def license_urls(self, policy: Policy) -> list[str]:
        """RSL licences named in robots.txt (global `License:` lines), to fetch once per origin."""
        if "rsl" in policy.disabled:
            return []
        pairs = rsl.license_urls_from_robots(self.robots.licenses, self.origin + "/", mode=policy.mode)
        for _url, note in pairs:
            if note:
                self.notes.append(note)
        return [u for u, _ in pairs]

    def access_signals(self, url: str, policy: Policy) -> list[Signal]:
        """Whether ``url`` may be fetched at all: robots.txt's refusal for the crawler's token, as a list (empty when
        allowed)."""
        signal = robots.access_signal(self.robots, policy.agent, url, lenient=policy.lenient)
        return [] if signal is None else with_source([signal], self.robots_url)

    def usage_signals(self, url: str, policy: Policy) -> list[Signal]:
        """Site-level reservations that apply to ``url`` (robots.txt extensions, tdmrep.json, ai.txt, RSL)."""
        site_wide = self._site_wide if self._site_wide is not None and self._site_wide[0] is policy else None
        if site_wide is not None and site_wide[1] is not None:
            return list(site_wide[1])
        mode = policy.mode
        found: list[Signal] = list(self.failures)
        group = self.robots.select(policy.agent, lenient=policy.lenient)
        cu_lines = [e for e in group.extensions if e.key == "content-usage"]
        cs_lines = [e for e in group.extensions if e.key == "content-signal"]
        if cu_lines:
            found += content_usage.robots_signals(cu_lines, url, mode=mode, group=group.describe())
        if cs_lines:
            found += content_signal.robots_signals(cs_lines, mode=mode, group=group.describe())
        found = with_source(found, self.robots_url)
        cross = policy.cross_token and mode is Mode.CONSERVATIVE
        if cross:
            found += robots.cross_token_signals(self.robots, url, policy.agent, source=self.robots_url)
        if self.tdmrep is not None:
            found += tdmrep.file_signals(self.tdmrep, url, mode=mode, source=self.origin + TDMREP_PATH)
        if self.ai_txt is not None:
            found += with_source(ai_txt.signals(self.ai_txt, url, policy.agent, mode=mode), self.origin + AI_TXT_PATH)
        for lic_url, doc in self.licenses.items():
            found += with_source(rsl.signals(doc, url, mode=mode, source=lic_url), lic_url)
        if site_wide is None:  # not yet known for this policy
            reads_url = bool(
                cu_lines
                or self.tdmrep is not None
                or self.ai_txt is not None
                or self.licenses
                or (cross and robots.names_training_tokens(self.robots, policy.agent, source=self.robots_url))
            )
            self._site_wide = (policy, None if reads_url else tuple(found))
        return found


@dataclass
class LoadedLicense:
    """An RSL licence as read once per crawl: its parsed document, the failure signal standing in for an unreadable one,
    or only a note when there is none."""

    document: rsl.RslDocument | None = None
    failure: Signal | None = None
    note: str = ""

    def signals(self, url: str, policy: Policy, source: str) -> list[Signal]:
        """What the licence says about ``url``: an unreadable licence denies AI use, one that was not found says
        nothing."""
        if self.failure is not None:
            return [self.failure]
        if self.document is None:
            return []
        return with_source(rsl.signals(self.document, url, mode=policy.mode, source=source), source)


def load_license(url: str, fetched: Fetched, mode: Mode) -> LoadedLicense:
    """Parse a fetched RSL licence. RSL asks crawlers to obtain and follow the licence before using content,
    so a licence that is named but cannot be read leaves AI use unlicensed: a failure signal."""
    if not fetched.ok:
        if fetched.status in (404, 410):
            return LoadedLicense(note=f"{url}: RSL licence not found (HTTP {fetched.status})")
        return LoadedLicense(failure=fetch_failure("RSL licence", "license", url, fetched, AI_PURPOSES))
    try:
        return LoadedLicense(document=rsl.parse_license(fetched.body[:POLICY_FILE_LIMIT], mode=mode))
    except rsl.RslError as exc:
        failure = Signal(
            protocol="rsl",
            where="license",
            value="invalid",
            rule=f"RSL licence unreadable ({exc}); no licence, no use",
            verdicts=verdicts(Verdict.DISALLOW, *AI_PURPOSES),
            source=url,
        )
        return LoadedLicense(failure=failure, note=f"{url}: {exc}")


# Every response header response_signals reads besides Content-Type (tests/test_quiet_pages.py holds it to that).
SIGNAL_HEADERS = frozenset({"tdm-reservation", "tdm-policy", "content-usage", "content-signal", "x-robots-tag", "link"})


def page_head(body: bytes, content_type: str) -> HtmlHead | None:
    """The head the usage stage reads of an HTML response; None for anything else, whose media metadata is read."""
    return scan_html(body) if _looks_like_html(body, content_type) else None


def quiet_page(head: HtmlHead, url: str, agent: str) -> bool:
    """Whether response_signals would find nothing in a 2xx HTML answer from ``url`` (not redirected) that has none
    of :data:`SIGNAL_HEADERS`: its head mentions none of the words the HTML readers look for, and it is no login
    wall. Most pages are such pages, and this answers for them without the full reading: no Fetched, no signal
    lists, no facts. A page that is not quiet gets the full reading, which takes the head already scanned."""
    return not head.mentions_any(_head_words(agent)) and access.login_wall_signal(url, url, head) is None


@dataclass(slots=True)
class ResponseFacts:
    """Signals read from the resource itself, and the RSL licences it links to (fetched by the caller)."""

    signals: list[Signal]
    license_urls: list[str]
    head: HtmlHead | None = None
    notes: list[str] = field(default_factory=list)


def response_signals(fetched: Fetched, policy: Policy, head: HtmlHead | None = None) -> ResponseFacts:
    """Usage-stage signals of one fetched resource: status, headers, HTML head, embedded media metadata. ``head`` is
    :func:`page_head` of its body when the caller has it already.

    TDMRep signals are returned in TDMRep's processing order (header, HTML, file metadata) so the policy can
    resolve them by that order (§2.6)."""
    url = fetched.final_url or fetched.url
    mode = policy.mode
    status = fetched.status
    if status is None or not 200 <= status < 300:
        denied = access.status_signal(status, url) if status is not None else None
        if denied is None:
            denied = fetch_failure("the resource", "url", url, fetched, ALL_PURPOSES)
        return ResponseFacts(with_source([denied], url), [])
    found: list[Signal] = []
    # Header names as Fetched stores them (lower-case); the lists are read, never changed.
    header = fetched.headers.get
    reservation = header("tdm-reservation")
    if reservation:
        sig = tdmrep.header_signal(reservation, header("tdm-policy") or [], mode=mode)
        if sig is not None:
            found.append(sig)
    notes: list[str] = []
    usage_lines = header("content-usage")
    if usage_lines:
        usage = content_usage.header_signals(usage_lines, mode=mode)
        found += usage
        if not usage:
            reason = content_usage.parse_error(", ".join(usage_lines))
            if reason:
                notes.append(f"{url}: Content-Usage header ignored: {reason}")
    signal_lines = header("content-signal")
    if signal_lines:
        found += content_signal.header_signals(signal_lines, mode=mode)
    ctype = fetched.content_type
    is_image = ctype.startswith("image/")
    robots_lines = header("x-robots-tag")
    if robots_lines:
        found += robots_tag.header_signals(robots_lines, policy.agent, is_image=is_image, mode=mode)
    links = header("link")
    licenses = rsl.license_urls_from_headers(links, url) if links else []
    if head is None:
        head = page_head(fetched.body, ctype)
    if head is not None:
        if head.mentions_any(_head_words(policy.agent)):  # a head without any of their words has nothing for them
            sig = tdmrep.html_signal(head, mode=mode)
            if sig is not None:
                found.append(sig)
            found += robots_tag.meta_signals(head, policy.agent, mode=mode)
            licenses += [u for u in rsl.license_urls_from_html(head, url) if u not in licenses]
    else:
        found += media.signals(fetched.body, ctype, mode=mode)
    wall = access.login_wall_signal(fetched.url, url, head)
    if wall is not None:
        found.append(wall)
    return ResponseFacts(with_source(found, url), licenses, head, notes)
