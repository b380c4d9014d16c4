"""Helpers for the ``optout check --urls`` tests: a web of origins showing every site-level protocol, and ways to
run the batch checker (in-process and as the real CLI) and the one-URL path on the same URLs."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from crawler.fixtureweb import FixtureWeb, Route, page
from tests.support.run import ROOT

AGENT = "ExampleBot"
TEXT = "text/plain"
RSL = (
    '<rsl xmlns="https://rslstandard.org/rsl"><content url="/"><license>'
    '<prohibits type="usage">ai-train</prohibits></license></content></rsl>'
)
# What each kind of origin says, for AGENT and train-ai; the protocols its reserved URLs carry.
KINDS: dict[str, dict[str, Route | str]] = {
    "open": {"/robots.txt": Route(body="User-agent: *\nAllow: /\n", content_type=TEXT)},
    "path": {"/robots.txt": Route(body="User-agent: *\nDisallow: /private/\n", content_type=TEXT)},
    "token": {
        "/robots.txt": Route(body=f"User-agent: {AGENT}\nDisallow: /\n\nUser-agent: *\nAllow: /\n", content_type=TEXT)
    },
    "cross": {"/robots.txt": Route(body="User-agent: GPTBot\nDisallow: /\n", content_type=TEXT)},
    "usage": {"/robots.txt": Route(body="User-agent: *\nContent-Usage: train-ai=n\nAllow: /\n", content_type=TEXT)},
    "signal": {"/robots.txt": Route(body="User-agent: *\nContent-Signal: ai-train=no\n", content_type=TEXT)},
    "tdm": {
        "/.well-known/tdmrep.json": Route(
            body=json.dumps([{"location": "/a/", "tdm-reservation": 1}]), content_type="application/json"
        )
    },
    "aitxt": {"/ai.txt": Route(body="User-agent: *\nDisallow: *.jpg\n", content_type=TEXT)},
    "rsl": {
        "/robots.txt": Route(body="User-agent: *\nAllow: /\nLicense: /license.xml\n", content_type=TEXT),
        "/license.xml": Route(body=RSL, content_type="application/rsl+xml"),
    },
    "r500": {"/robots.txt": Route(500, "oops", content_type=TEXT)},
    "r404": {"/robots.txt": Route(404, "missing", content_type=TEXT)},
    "soft404": {"/.well-known/tdmrep.json": page("home"), "/ai.txt": page("home")},
}
PATHS = ("/a/1", "/b/2", "/private/3", "/img/4.jpg", "/c/5?q=x")


def build_web(web: FixtureWeb, origins: int, per_origin: int) -> tuple[list[str], dict[str, str]]:
    """``origins`` sites cycling through KINDS, each with pages on PATHS (and more numbered ones); returns the URL
    list (interleaved across origins) and the kind of each origin."""
    kinds = list(KINDS)
    names: list[str] = []
    kind_of: dict[str, str] = {}
    for i in range(origins):
        kind = kinds[i % len(kinds)]
        name = f"{kind}{i}"
        kind_of[web.site(name, dict(KINDS[kind]))] = kind
        names.append(name)
    urls = []
    for n in range(per_origin):
        path = PATHS[n % len(PATHS)]
        if n >= len(PATHS):
            head, sep, query = path.partition("?")
            path = f"{head}-{n}{sep}{query}"
        for name in names:
            web.servers[name].routes[path.split("?")[0]] = Route(body=page("p"))
            urls.append(web.origin(name) + path)
    return urls, kind_of


def close_fast(web: FixtureWeb) -> None:
    """Stop many fixture servers at once (FixtureWeb.close stops them one after the other, each waiting up to its
    half-second poll: minutes for 200 origins)."""
    for server in web.servers.values():
        server._BaseServer__shutdown_request = True  # type: ignore[attr-defined]
    web.close()


def fast_web() -> Iterator[FixtureWeb]:
    """The ``web`` fixture of these tests: FixtureWeb, closed by :func:`close_fast`."""
    fixture = FixtureWeb()
    try:
        yield fixture
    finally:
        close_fast(fixture)


def batch(urls_file: str, *args: str, **options: Any) -> tuple[list[dict[str, Any]], Any]:
    """Run the batch checker in this process: the answer lines and the summary."""
    from crawler.batchrun import BatchOptions, BatchRun
    from crawler.cli import user_agent_for
    from middlewares.policy import Policy

    policy = Policy.build(agent=options.pop("agent", AGENT), mode=options.pop("mode", "conservative"))
    out, err = io.StringIO(), io.StringIO()
    opts = BatchOptions(path=urls_file, timeout=options.pop("timeout", 5.0), **options)
    summary = BatchRun(opts, policy, user_agent=user_agent_for(policy.agent), out=out, err=err).run()
    return [json.loads(line) for line in out.getvalue().splitlines()], summary


def one_url(urls: list[str], timeout: float = 5.0) -> list[dict[str, Any]]:
    """Today's one-URL path (what ``optout check URL`` prints with --json), one URL after the other."""
    from tests.support.run import check

    return [d.to_json() for d in check(urls, timeout=timeout, agent=AGENT)]


def cli(*args: str, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crawler.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        **kwargs,
    )


def contract(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer line without what only batch lines carry."""
    return {k: v for k, v in answer.items() if k not in ("row", "not_evaluated")}
