"""The site-level usage signals of an origin (``SitePolicy.usage_signals``), which the usage middleware asks for on
every page: worked out once per origin when none of the origin's sources reads the URL, and per URL otherwise.
Whichever way, the answer for a URL must be the one a fresh computation gives."""

from __future__ import annotations

import json
from typing import Any

import pytest

from middlewares.engine import Fetched, SitePolicy
from middlewares.policy import Policy

ORIGIN = "https://news.example"
POLICY = Policy.build(purpose="train-ai", agent="ExampleBot", mode="conservative")
URLS = [ORIGIN + p for p in ("/", "/p/1", "/premium/a", "/archive/2020/x", "/img/photo.jpg", "/private/z")]


def text(url: str, body: str) -> Fetched:
    return Fetched(url, 200, {"content-type": ["text/plain"]}, body.encode(), fetched_at=1_790_000_000.0)


def site(robots: str, files: dict[str, str] | None = None, policy: Policy = POLICY) -> SitePolicy:
    made = SitePolicy.from_robots(ORIGIN, text(ORIGIN + "/robots.txt", robots), policy)
    for key, body in (files or {}).items():
        path = "/.well-known/tdmrep.json" if key == "tdmrep.json" else "/" + key
        fetched = text(ORIGIN + path, body)
        if key == "tdmrep.json":
            fetched.headers["content-type"] = ["application/json"]
        made.add_file(key, fetched, policy)
    return made


TDMREP = json.dumps([{"location": "/premium/", "tdm-reservation": 1}, {"location": "/", "tdm-reservation": 0}])
SITES = {
    "nothing": ("User-agent: *\nDisallow: /private/\n", {}),
    "content-signal (site-wide)": ("User-agent: *\nContent-Signal: search=yes, ai-train=no\n", {}),
    "content-usage (by path)": ("User-agent: *\nAllow: /\nContent-Usage: /archive/ train-ai=n\n", {}),
    "a training crawler's group": ("User-agent: *\nAllow: /\n\nUser-agent: GPTBot\nDisallow: /private/\n", {}),
    "tdmrep.json": ("User-agent: *\nAllow: /\n", {"tdmrep.json": TDMREP}),
    "ai.txt": ("User-agent: *\nAllow: /\n", {"ai.txt": "User-agent: *\nDisallow: *.jpg\nAllow: /\n"}),
}


@pytest.mark.parametrize("name", SITES)
def test_every_url_gets_the_answer_a_fresh_computation_gives(name: str) -> None:
    robots, files = SITES[name]
    shared = site(robots, files)
    answers = {url: shared.usage_signals(url, POLICY) for url in URLS + URLS}  # the second round may be memoised
    for url in URLS:
        assert answers[url] == site(robots, files).usage_signals(url, POLICY), (name, url)
    if name not in ("nothing", "content-signal (site-wide)"):
        assert len({repr(a) for a in answers.values()}) > 1, "this source reads the URL: answers must differ"


def test_a_file_added_after_an_answer_is_not_ignored() -> None:
    grown = site("User-agent: *\nAllow: /\n")
    assert grown.usage_signals(ORIGIN + "/premium/a", POLICY) == []
    grown.add_file("tdmrep.json", text(ORIGIN + "/.well-known/tdmrep.json", TDMREP), POLICY)
    [signal] = grown.usage_signals(ORIGIN + "/premium/a", POLICY)
    assert (signal.protocol, signal.where, signal.value) == ("tdmrep", "well-known", "1")
    assert [s.value for s in grown.usage_signals(ORIGIN + "/p/1", POLICY)] == ["0"]  # the file's "/" rule


def test_an_answer_for_one_policy_is_not_given_to_another() -> None:
    robots = "User-agent: ExampleBot\nAllow: /\nContent-Signal: ai-train=no\n\nUser-agent: *\nAllow: /\n"
    shared = site(robots)
    ours = shared.usage_signals(ORIGIN + "/p/1", POLICY)
    assert [s.protocol for s in ours] == ["content-signal"]
    other = Policy.build(purpose="train-ai", agent="OtherBot", mode="conservative")
    assert shared.usage_signals(ORIGIN + "/p/1", other) == []
    assert shared.usage_signals(ORIGIN + "/p/2", POLICY) == ours


def test_whether_an_origin_reads_the_url_is_found_out_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from middlewares.protocols import robots

    asked: list[str] = []
    real = robots.names_training_tokens

    def counting(*args: Any, **kwargs: Any) -> bool:
        asked.append("named?")
        return real(*args, **kwargs)

    monkeypatch.setattr(robots, "names_training_tokens", counting)
    robots_txt, files = SITES["a training crawler's group"]
    shared = site(robots_txt, files)
    answers = [shared.usage_signals(url, POLICY) for url in URLS + URLS]
    assert asked == ["named?"]  # the per-URL answers below still come from the full computation
    assert answers[: len(URLS)] == [site(robots_txt, files).usage_signals(url, POLICY) for url in URLS]
