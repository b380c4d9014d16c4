"""A loopback web that tells whether a crawler obeys robots.txt while it looks for opt-outs (issue 12), and the
assertions on the servers' own request logs that every fetching path must pass: the Scrapy add-on, `optout
crawl`, `optout check` and a distributed fleet.

Each origin has two pages (/p0, /p1) and answers robots.txt in one way:

* ``r500``, ``r503``, ``r429``: that status (complete disallow: nothing else may be requested);
* ``timeout``: no answer within the crawler's timeout (the same);
* ``loop``: a redirect loop between /robots.txt and /r2 (the same, in conservative mode);
* ``deny``: ``Disallow: /`` for our token (the same: policy files are URLs like any other);
* ``wk``: ``Disallow: /.well-known/``, answered after ``SLOW_ROBOTS`` seconds: tdmrep.json is never requested,
  ai.txt and the pages are, and none before robots.txt has been answered;
* ``slow``: ``Crawl-delay: 1``: every request after robots.txt at least a second after the one before, on the
  server's clock, policy files included, and the policy files before the pages.
"""

from __future__ import annotations

import itertools

from crawler.fixtureweb import FixtureWeb, Route, page

TEXT = "text/plain"
DELAY = 1.0
SLOW_ROBOTS = 0.5
TIMEOUT = 1.0  # the crawler's timeout for these tests; the ``timeout`` origin answers after 3 s
PAGES = ("/p0", "/p1")
CLOSED = ("r500", "r503", "r429", "timeout", "deny")


def build(web: FixtureWeb, agent: str) -> list[str]:
    """The origins above; returns the page URLs to start from."""
    robots: dict[str, Route | str] = {
        "r500": Route(500, "oops", content_type=TEXT),
        "r503": Route(503, "busy", content_type=TEXT),
        "r429": Route(429, "slow down", content_type=TEXT),
        "timeout": Route(body="User-agent: *\nAllow: /\n", content_type=TEXT, delay=3 * TIMEOUT),
        "loop": Route(302, "", headers=[("Location", "/r2")]),
        "deny": Route(body=f"User-agent: {agent}\nDisallow: /\n\nUser-agent: *\nAllow: /\n", content_type=TEXT),
        "wk": Route(body="User-agent: *\nDisallow: /.well-known/\n", content_type=TEXT, delay=SLOW_ROBOTS),
        "slow": Route(body=f"User-agent: *\nCrawl-delay: {DELAY:g}\n", content_type=TEXT),
    }
    seeds = []
    for name, answer in robots.items():
        routes: dict[str, Route | str] = {"/robots.txt": answer, **{p: page(f"{name} {p}") for p in PAGES}}
        if name == "loop":
            routes["/r2"] = Route(302, "", headers=[("Location", "/robots.txt")])
        base = web.site(name, routes)
        seeds += [base + p for p in PAGES]
    return seeds


def assert_robots_first(web: FixtureWeb, *, pages_fetched: bool = True) -> None:
    """What every path must have done, read off the servers' logs."""
    for name in CLOSED:
        assert [h.path for h in web.hits(name)] == ["/robots.txt"], (name, web.hits(name))
    assert {h.path for h in web.hits("loop")} <= {"/robots.txt", "/r2"}, web.hits("loop")

    wk = sorted(web.hits("wk"), key=lambda h: h.time)
    paths = [h.path for h in wk]
    assert paths[0] == "/robots.txt" and paths.count("/robots.txt") == 1, paths
    assert "/.well-known/tdmrep.json" not in paths
    assert "/ai.txt" in paths
    if pages_fetched:
        assert set(PAGES) <= set(paths), paths
    # Nothing else went to the origin before robots.txt was answered (fetching in parallel would fail this).
    assert min(h.time for h in wk[1:]) >= wk[0].time + SLOW_ROBOTS - 0.01, wk

    slow = sorted(web.hits("slow"), key=lambda h: h.time)
    paths = [h.path for h in slow]
    assert paths[0] == "/robots.txt" and paths.count("/robots.txt") == 1, paths
    policy = [i for i, p in enumerate(paths) if p in ("/.well-known/tdmrep.json", "/ai.txt")]
    pages = [i for i, p in enumerate(paths) if p in PAGES]
    assert len(policy) == 2 and (not pages_fetched or len(pages) == len(PAGES)), paths
    assert max(policy) < min(pages, default=len(paths)), paths  # policy files before the origin's pages
    gaps = [round(b.time - a.time, 3) for a, b in itertools.pairwise(slow)]
    # the server's clock: 10 ms for the resolution of two clocks and the scheduling of the log line
    assert min(gaps) >= DELAY - 0.01, list(zip(paths[1:], gaps, strict=True))
