"""The order in which an origin's policy is read: robots.txt first, then only what robots.txt lets us read.

A crawler that breaks robots.txt while looking for opt-outs breaks the one promise it makes. So:

1. robots.txt is the first request to an origin; nothing else goes there before its answer is known;
2. tdmrep.json, ai.txt and an RSL licence on that origin are requested only if robots.txt allows their path for
   our token, like any other URL; when robots.txt is unreachable (5xx, 429, timeout, redirect loop) nothing else
   is requested at all. A licence on another origin obeys that origin's robots.txt;
3. every request after robots.txt keeps the origin's Crawl-delay (the fetcher does the waiting: the plan tells it
   the delay with each request).

The rules are written once, here, as a generator that does no I/O: it yields what it wants fetched and receives
the answers. Each fetcher drives it its own way (the Scrapy add-on's SiteCache on Twisted, ``optout check`` with
``requests``, the spider reading a persistent store), so the order cannot drift apart between them.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from middlewares.engine import POLICY_FILE_LIMIT, ROBOTS_LIMIT, Fetched, SitePolicy, origin_of, policy_files, robots_url
from middlewares.policy import Policy


@dataclass(frozen=True)
class Fetch:
    """Fetch these files of ``origin`` (at once if the fetcher likes) keeping ``delay`` seconds between requests
    to the origin, the first of them ``delay`` after ``after`` (the wall time robots.txt was fetched), and send
    back their answers in the same order."""

    origin: str
    files: tuple[tuple[str, int], ...]
    delay: float = 0.0
    after: float = 0.0


@dataclass(frozen=True)
class RobotsOf:
    """Send back the robots.txt-only :class:`SitePolicy` of another origin (a licence is hosted there)."""

    origin: str


T = TypeVar("T")
Step = Fetch | RobotsOf
# A plan yields steps, is sent their answers (a list of Fetched for a Fetch, a SitePolicy for a RobotsOf) and
# returns its result.
Plan = Generator[Step, Any, T]


def robots_only(origin: str, policy: Policy) -> Plan[SitePolicy]:
    """Just the robots.txt of ``origin``: enough to know what else may be requested there."""
    answers = yield Fetch(origin, ((robots_url(origin), ROBOTS_LIMIT),))
    assert isinstance(answers, list)
    return SitePolicy.from_robots(origin, answers[0], policy)


def load_site(origin: str, policy: Policy) -> Plan[SitePolicy]:
    """Everything fetched once per origin, in the order and under the rules above."""
    site = yield from robots_only(origin, policy)
    delay = site.crawl_delay(policy)
    wanted = []
    for key, (url, limit) in policy_files(origin, policy).items():
        refusal = site.read_refusal(url, key, policy)
        if refusal is None:
            wanted.append((key, url, limit))
        elif not site.unreachable:  # an unreachable robots.txt already says why, once
            site.notes.append(refusal)
    if wanted:
        answers = yield Fetch(origin, tuple((url, limit) for _, url, limit in wanted), delay, site.robots_fetched_at)
        assert isinstance(answers, list)
        for (key, _, _), fetched in zip(wanted, answers, strict=True):
            site.add_file(key, fetched, policy)
    for url in site.license_urls(policy):
        answer = yield from read_licence(url, policy, home=site)
        if isinstance(answer, str):
            site.notes.append(answer)
        else:
            site.add_license(url, answer, policy)
    return site


def read_licence(url: str, policy: Policy, home: SitePolicy | None = None) -> Plan[Fetched | str]:
    """An RSL licence (named in robots.txt, or linked from a page) under its own origin's robots.txt and
    Crawl-delay: its answer, or why it was not requested. ``home`` is the policy of the origin asking, used as the
    gate when the licence is hosted there."""
    host = origin_of(url)
    gate = home if home is not None and home.origin == host else (yield RobotsOf(host))
    assert isinstance(gate, SitePolicy)
    refusal = gate.read_refusal(url, "RSL licence " + url, policy)
    if refusal is not None:
        return refusal
    answers: list[Fetched] = yield Fetch(
        host, ((url, POLICY_FILE_LIMIT),), gate.crawl_delay(policy), gate.robots_fetched_at
    )
    return answers[0]


def run_sync(plan: Plan[T], fetch: Callable[[Fetch], list[Fetched]], robots_of: Callable[[str], SitePolicy]) -> T:
    """Drive a plan with blocking calls (``optout check``, or answers read from a store)."""
    reply: list[Fetched] | SitePolicy | None = None
    try:
        while True:
            step = plan.send(reply)
            reply = robots_of(step.origin) if isinstance(step, RobotsOf) else fetch(step)
    except StopIteration as done:
        result: T = done.value
        return result
