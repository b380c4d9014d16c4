"""The usage middleware's screen for quiet pages (downloader._screen, engine.quiet_page): a page without any header
the usage stage reads, whose head mentions none of the words its HTML readers look for and that is no login wall,
is allowed without the full reading. The screen must never decide differently from the full reading."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st
from scrapy.http import HtmlResponse, Request, Response
from scrapy.utils.test import get_crawler

from middlewares import downloader
from middlewares.downloader import DECISION_META, OptOutUsageMiddleware
from middlewares.engine import SIGNAL_HEADERS, Fetched, SitePolicy, load_license, response_signals
from middlewares.policy import Decision, Policy
from middlewares.sitecache import _Entry

ORIGIN = "https://site.example"
URL = ORIGIN + "/a/page"
AGENT = "MyBot"


class _Watched(Mapping[str, list[str]]):
    """Headers that note every name they are asked for."""

    def __init__(self, headers: dict[str, list[str]]) -> None:
        self.headers = headers
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> list[str]:
        self.asked.add(name)
        return self.headers[name]

    def get(self, name: str, default: Any = None) -> Any:
        self.asked.add(name)
        return self.headers.get(name, default)

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("response_signals must ask for headers by name")

    def __len__(self) -> int:
        return len(self.headers)


def test_the_screen_covers_every_header_the_full_reading_asks_for() -> None:
    """SIGNAL_HEADERS is what lets a page skip the full reading: a header the reading asks for and the screen does
    not know would be a signal the screen lets through unread."""
    every = {name: ["1"] for name in SIGNAL_HEADERS}
    asked: set[str] = set()
    pages = [
        ("text/html", b"<html><head><meta name=robots content=noai><link rel=license href=/l.xml></head>"),
        ("image/jpeg", b"\xff\xd8\xff\xe0 not really a jpeg"),
        ("application/pdf", b"%PDF-1.7"),
    ]
    for ctype, body in pages:
        for status in (200, 404, 503):
            headers = _Watched({"content-type": [ctype], **every})
            response_signals(Fetched(URL, status, headers, body, final_url=URL), Policy.build(agent=AGENT))
            asked |= headers.asked
    assert (
        "x-robots-tag" in asked and "tdm-policy" in asked
    )  # the headers were read, so the check below means something
    assert asked <= SIGNAL_HEADERS | {"content-type"}, asked - SIGNAL_HEADERS


def _middleware(robots: str = "User-agent: *\nAllow: /\n") -> OptOutUsageMiddleware:
    crawler = get_crawler(settings_dict={"OPTOUT_AGENT": AGENT, "OPTOUT_REGISTRY_URL": "", "LOG_LEVEL": "ERROR"})
    middleware = OptOutUsageMiddleware.from_crawler(crawler)
    state = middleware.state
    fetched = Fetched(ORIGIN + "/robots.txt", 200, {"content-type": ["text/plain"]}, robots.encode())
    site = SitePolicy.from_robots(ORIGIN, fetched, state.policy)
    state.cache._sites[ORIGIN] = _Entry(site, time.time() + 3600)
    for licence in (ORIGIN + "/licence.xml", ORIGIN + "/l.xml"):  # linked licences, read already (unreadable)
        middleware.licenses[licence] = load_license(licence, Fetched(licence, 503), state.policy.mode)
    return middleware


def _decide(middleware: OptOutUsageMiddleware, request: Request, response: Response) -> Decision | None:
    """The middleware's decision, run to completion: with the origin's policy in memory it awaits nothing."""
    coroutine = middleware.process_response(request, response)
    try:
        coroutine.send(None)
    except StopIteration:
        pass
    except Exception as exc:  # a reserved page is dropped: its decision is still on the request
        assert "optout: reserved" in str(exc), exc
    else:  # pragma: no cover - it awaited something
        raise AssertionError("process_response waited for something")
    decision = request.meta.get(DECISION_META)
    return decision if isinstance(decision, Decision) else None


def _summary(decision: Decision | None) -> Any:
    if decision is None:
        return None
    signals = sorted((s.protocol, s.where, s.value, s.rule, s.source) for s in decision.signals)
    return decision.to_json(), signals


_HEAD = st.sampled_from(
    [
        "<title>News</title>",
        "<meta name=viewport content=width=device-width>",
        "<meta name=robots content=noai>",
        "<meta name=MYBOT content='noimageai'>",
        "<meta name=robots content='index, follow'>",
        '<meta name="tdm-reservation" content="1">',
        '<meta name="tdm-reservation" content="0">',
        '<link rel="license" type="application/rsl+xml" href="/licence.xml">',
        "<!-- <meta name=robots content=noai> -->",
        '<script type="application/ld+json">{"@type":"NewsArticle","isAccessibleForFree":false}</script>',
        "x" * 300,
    ]
)
_BODY = st.sampled_from(
    [
        "<p>" + "Plenty of visible article text. " * 40 + "</p>",
        "<p>short</p>",
        '<form action=/login><input type="password" name=pw></form>',
        "<p>robots and licenses are words in the text too</p>",
    ]
)
_HEADERS = st.dictionaries(
    st.sampled_from(
        ["X-Robots-Tag", "TDM-Reservation", "Content-Usage", "Content-Signal", "Link", "Server", "Cache-Control"]
    ),
    st.sampled_from(["noai", "1", "0", "train-ai=n", "ai-train=no", '</l.xml>; rel="license"', "max-age=60"]),
    max_size=3,
)


@given(
    head=st.lists(_HEAD, max_size=4).map("".join),
    body=st.lists(_BODY, max_size=2).map("".join),
    headers=_HEADERS,
    ctype=st.sampled_from(["text/html; charset=utf-8", "TEXT/HTML", "text/plain", "image/png", ""]),
    redirected_from=st.sampled_from([None, ORIGIN + "/old", ORIGIN + "/members/story"]),
    final=st.sampled_from([URL, ORIGIN + "/account/login?next=/members/story"]),
    status=st.sampled_from([200, 203, 404]),
)
@settings(max_examples=300, deadline=None)
def test_a_screened_page_gets_the_decision_the_full_reading_gives(
    head: str, body: str, headers: dict[str, str], ctype: str, redirected_from: str | None, final: str, status: int
) -> None:
    page = f"<!doctype html><html><head>{head}</head><body>{body}</body></html>".encode()
    answers = []
    for screened in (True, False):
        middleware = _middleware()
        # After a redirect Scrapy hands over the request to the final URL, with the first one in its meta.
        request = Request(final, meta={"redirect_urls": [redirected_from]} if redirected_from else {})
        all_headers = {**headers, **({"Content-Type": ctype} if ctype else {})}
        response = HtmlResponse(final, status=status, headers=all_headers, body=page, request=request)
        if screened:
            answers.append(_summary(_decide(middleware, request, response)))
        else:
            with patch.object(downloader, "quiet_page", lambda head, url, agent: False):
                answers.append(_summary(_decide(middleware, request, response)))
    assert answers[0] == answers[1]


def test_a_plain_page_is_screened_and_allowed_and_one_that_says_something_is_read_in_full() -> None:
    """The screen is taken for an ordinary page (else the test above would compare the full reading with itself)."""
    plain = b"<!doctype html><html><head><title>News</title></head><body><p>text</p></body></html>"
    saying = plain.replace(b"<title>", b"<meta name=robots content=noai><title>")
    for body, quiet in ((plain, True), (saying, False)):
        middleware = _middleware()
        request = Request(URL)
        response = HtmlResponse(URL, headers={"Content-Type": "text/html"}, body=body, request=request)
        with patch.object(downloader, "fetched_from_response", wraps=downloader.fetched_from_response) as full:
            decision = _decide(middleware, request, response)
        assert decision is not None and decision.allowed is quiet
        assert full.called is not quiet
    site_wide = _middleware("User-agent: *\nContent-Signal: ai-train=no\n")  # a site-level signal: never screened
    request = Request(URL)
    response = HtmlResponse(URL, headers={"Content-Type": "text/html"}, body=plain, request=request)
    decision = _decide(site_wide, request, response)
    assert decision is not None and not decision.allowed
