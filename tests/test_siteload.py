"""The order and rules of reading an origin's policy (middlewares/siteload.py), driven without any I/O.

Every fetcher (the Scrapy add-on, `optout check`, the spider reading the store) runs this plan, so these tests pin
what may be requested from an origin and when; the end-to-end tests check that each driver obeys it."""

from __future__ import annotations

import pytest

from middlewares.engine import Fetched
from middlewares.policy import Policy
from middlewares.siteload import Fetch, RobotsOf, load_site, read_licence, robots_only, run_sync

A = "http://a.test"
B = "http://b.test"
TDMREP = A + "/.well-known/tdmrep.json"
AI_TXT = A + "/ai.txt"
POLICY = Policy.build(agent="ExampleBot")


class Web:
    """Answers by URL (404 for anything else), and the steps the plan asked for, in order."""

    def __init__(self, answers: dict[str, Fetched | str]) -> None:
        self.answers = answers
        self.steps: list[Fetch | RobotsOf] = []

    def fetch(self, step: Fetch) -> list[Fetched]:
        self.steps.append(step)
        out = []
        for url, _ in step.files:
            answer = self.answers.get(url, Fetched(url, 404))
            out.append(
                Fetched(url, 200, {"content-type": ["text/plain"]}, answer.encode(), fetched_at=100.0)
                if isinstance(answer, str)
                else answer
            )
        return out

    def robots_of(self, origin: str) -> object:
        self.steps.append(RobotsOf(origin))
        return run_sync(robots_only(origin, POLICY), self.fetch, self.robots_of)

    def load(self, policy: Policy = POLICY, origin: str = A) -> object:
        return run_sync(load_site(origin, policy), self.fetch, self.robots_of)

    @property
    def requested(self) -> list[str]:
        return [url for step in self.steps if isinstance(step, Fetch) for url, _ in step.files]


def test_robots_first_then_the_files_it_allows() -> None:
    web = Web({A + "/robots.txt": "User-agent: *\nDisallow: /private/\n"})
    site = web.load()
    assert web.requested == [A + "/robots.txt", TDMREP, AI_TXT]
    first, second = web.steps
    assert first.files == ((A + "/robots.txt", 512_000),)  # alone: nothing else before its answer
    assert second.delay == 0.0
    assert set(site.files) == {A + "/robots.txt", TDMREP, AI_TXT}


@pytest.mark.parametrize(
    "robots",
    [
        Fetched(A + "/robots.txt", 500, error=""),
        Fetched(A + "/robots.txt", 503),
        Fetched(A + "/robots.txt", 429),
        Fetched(A + "/robots.txt", None, error="connection refused"),
        Fetched(A + "/robots.txt", 301, error="more than 5 redirects"),
    ],
    ids=["500", "503", "429", "unreachable", "redirect-loop"],
)
def test_unreachable_robots_means_nothing_else_is_requested(robots: Fetched) -> None:
    web = Web({A + "/robots.txt": robots})
    site = web.load()
    assert web.requested == [A + "/robots.txt"]
    assert site.unreachable
    assert set(site.files) == {A + "/robots.txt"}  # no evidence cites a file that was not fetched
    assert not any("not read" in n for n in site.notes)  # the unreachable note says it once


def test_disallow_all_for_our_token_reads_nothing_else() -> None:
    web = Web({A + "/robots.txt": "User-agent: ExampleBot\nDisallow: /\n\nUser-agent: *\nAllow: /\n"})
    site = web.load()
    assert web.requested == [A + "/robots.txt"]
    assert "tdmrep.json not read: robots.txt disallows /.well-known/tdmrep.json for ExampleBot" in site.notes[0]
    assert "ai.txt not read: robots.txt disallows /ai.txt for ExampleBot" in site.notes[1]
    assert site.tdmrep is None and site.ai_txt is None
    assert not [f for f in site.failures if f.protocol != "robots"]  # not a reservation, not a failure


def test_disallowed_well_known_skips_tdmrep_only() -> None:
    web = Web({A + "/robots.txt": "User-agent: *\nDisallow: /.well-known/\n", AI_TXT: "User-agent: *\nDisallow: /\n"})
    site = web.load()
    assert web.requested == [A + "/robots.txt", AI_TXT]
    assert site.ai_txt is not None
    assert any(n.startswith("tdmrep.json not read") and "Disallow: /.well-known/" in n for n in site.notes)


def test_another_agents_disallow_does_not_stop_us() -> None:
    web = Web({A + "/robots.txt": "User-agent: OtherBot\nDisallow: /\n"})
    web.load()
    assert web.requested == [A + "/robots.txt", TDMREP, AI_TXT]


def test_robots_404_allows_reading_every_file() -> None:
    web = Web({})
    web.load()
    assert web.requested == [A + "/robots.txt", TDMREP, AI_TXT]


def test_strict_mode_429_is_not_unreachable() -> None:
    web = Web({A + "/robots.txt": Fetched(A + "/robots.txt", 429)})
    web.load(Policy.build(agent="ExampleBot", mode="strict"))
    assert web.requested == [A + "/robots.txt", TDMREP, AI_TXT]


def test_crawl_delay_is_passed_on_with_robots_fetch_time() -> None:
    web = Web({A + "/robots.txt": "User-agent: *\nCrawl-delay: 2\n"})
    web.load()
    assert [(s.delay, s.after) for s in web.steps if isinstance(s, Fetch)] == [(0.0, 0.0), (2.0, 100.0)]


def test_search_purpose_reads_robots_only() -> None:
    web = Web({A + "/robots.txt": "User-agent: *\nAllow: /\n"})
    web.load(Policy.build(agent="ExampleBot", purpose="search"))
    assert web.requested == [A + "/robots.txt"]


def test_licence_on_same_origin_obeys_its_robots() -> None:
    robots = f"User-agent: *\nDisallow: /licenses/\n\nLicense: {A}/licenses/rsl.xml\n"
    web = Web({A + "/robots.txt": robots})
    site = web.load()
    assert A + "/licenses/rsl.xml" not in web.requested
    assert any(n.startswith(f"RSL licence {A}/licenses/rsl.xml not read") for n in site.notes)


def test_licence_on_another_origin_asks_that_origins_robots_first() -> None:
    robots = f"User-agent: *\nAllow: /\n\nLicense: {B}/rsl.xml\n"
    web = Web({A + "/robots.txt": robots, B + "/robots.txt": "User-agent: *\nCrawl-delay: 3\n"})
    web.load()
    assert web.requested == [A + "/robots.txt", TDMREP, AI_TXT, B + "/robots.txt", B + "/rsl.xml"]
    licence = web.steps[-1]
    assert isinstance(licence, Fetch) and licence.origin == B and licence.delay == 3.0  # B's Crawl-delay


def test_licence_on_another_origin_that_disallows_it_is_not_requested() -> None:
    robots = f"User-agent: *\nAllow: /\n\nLicense: {B}/rsl.xml\n"
    web = Web({A + "/robots.txt": robots, B + "/robots.txt": "User-agent: *\nDisallow: /\n"})
    site = web.load()
    assert web.requested == [A + "/robots.txt", TDMREP, AI_TXT, B + "/robots.txt"]
    assert site.licenses == {} and not [f for f in site.failures if f.protocol == "fetch"]
    assert any("not read: robots.txt disallows /rsl.xml" in n for n in site.notes)


def test_a_linked_licence_asks_its_own_origins_robots_first() -> None:
    """A licence a page links to (no home policy given): that origin's robots.txt decides, and its Crawl-delay."""
    web = Web({B + "/robots.txt": "User-agent: *\nCrawl-delay: 2\nDisallow: /private/\n"})
    assert isinstance(run_sync(read_licence(B + "/rsl.xml", POLICY), web.fetch, web.robots_of), Fetched)
    assert web.requested == [B + "/robots.txt", B + "/rsl.xml"] and web.steps[-1].delay == 2.0
    refused = run_sync(read_licence(B + "/private/rsl.xml", POLICY), web.fetch, web.robots_of)
    assert isinstance(refused, str) and "not read: robots.txt disallows /private/rsl.xml" in refused
    assert B + "/private/rsl.xml" not in web.requested
