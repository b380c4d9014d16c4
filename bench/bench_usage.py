"""Per-URL cost of the full usage-stage evaluation on an already-cached origin, on a typical HTML response.

"Full" means everything `optout check` and the crawler evaluate after a permitted fetch: the site-level signals
(robots.txt Content-Usage / Content-Signal for our group, cross-token training reservations, tdmrep.json, ai.txt,
RSL) for the URL, the response headers (tdm-reservation, Content-Usage, Content-Signal, X-Robots-Tag, Link), the
HTML head (TDMRep meta, robots meta, RSL links, login wall) and the policy decision. The peer is datadiligence,
the only other library that evaluates response-level opt-outs; it reads two headers (X-Robots-Tag and
tdm-reservation) and nothing else, so the comparison flatters it.

Run: python bench/bench_usage.py [--n 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from middlewares.engine import Fetched, SitePolicy, response_signals
from middlewares.policy import Policy

ORIGIN = "https://news.example"
ROBOTS = (
    "User-agent: *\nDisallow: /search\nDisallow: /account/\nAllow: /\nContent-Signal: search=yes, ai-train=no\n"
    "Content-Usage: /archive/ train-ai=n\n\n"
    + "".join(f"User-agent: {bot}\nDisallow: /\n\n" for bot in ("GPTBot", "CCBot", "ClaudeBot", "Bytespider"))
    + "User-agent: ExampleBot\nAllow: /\nDisallow: /drafts/\nCrawl-delay: 2\n\n"
    + "Sitemap: https://news.example/sitemap.xml\n"
).encode()
TDMREP = json.dumps([{"location": "/premium/", "tdm-reservation": 1}, {"location": "/", "tdm-reservation": 0}]).encode()


def typical_html() -> bytes:
    head = (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Budget talks resume in Brussels</title>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        + "".join(f"<meta property='og:tag{i}' content='value number {i} of the open graph set'>" for i in range(20))
        + "<meta name=description content='A typical news article page used for benchmarking.'>"
        + "<meta name=robots content='index, follow, max-image-preview:large'>"
        + "".join(f"<link rel=preload href='/static/font{i}.woff2' as=font>" for i in range(6))
        + "<link rel=canonical href='https://news.example/2026/11/budget'>"
        + "<script>"
        + "window.dataLayer=window.dataLayer||[];" * 60
        + "</script>"
        + "<style>"
        + "body{margin:0;padding:0}" * 80
        + "</style></head><body>"
    )
    body = "".join(
        f"<p>Paragraph {i} of the article, with <a href='/link/{i}'>a link</a> and some text to read.</p>"
        for i in range(250)
    )
    return (head + body + "</body></html>").encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=7, help="timed runs; the median is judged (default 7)")
    args = parser.parse_args()
    policy = Policy.build(agent="ExampleBot")
    site = SitePolicy.from_robots(ORIGIN, Fetched(ORIGIN + "/robots.txt", 200, {}, ROBOTS), policy)
    site.add_file(
        "tdmrep.json",
        Fetched(ORIGIN + "/.well-known/tdmrep.json", 200, {"content-type": ["application/json"]}, TDMREP),
        policy,
    )
    html = typical_html()
    headers = {
        "content-type": ["text/html; charset=utf-8"],
        "cache-control": ["max-age=60"],
        "x-robots-tag": ["max-snippet: 50"],
        "link": ['<https://news.example/2026/11/budget>; rel="canonical"'],
    }
    urls = [f"{ORIGIN}/2026/11/article-{i}" for i in range(1000)]

    def ours(url: str) -> bool:
        fetched = Fetched(url, 200, headers, html, final_url=url)
        signals = site.usage_signals(url, policy) + response_signals(fetched, policy).signals
        return policy.decide(url, signals).allowed

    verdicts = [ours(u) for u in urls[:5]]
    n = args.n

    def one_run() -> float:
        start = time.perf_counter()
        for i in range(n):
            ours(urls[i % 1000])
        return (time.perf_counter() - start) / n * 1e6

    runs = [one_run() for _ in range(args.runs)]
    ours_us = statistics.median(runs)

    print(f"typical HTML response: {len(html)} bytes; robots.txt {len(ROBOTS)} bytes; decisions {verdicts[:2]}")
    print(f"{'engine':44} {'µs/URL':>10}")
    print(f"{'optout full usage stage (12 protocols)':44} {ours_us:10.1f}   (median of {args.runs} runs: "
          + " ".join(f"{r:.1f}" for r in runs) + ")")  # fmt: skip
    print(f"target < 50 µs per URL, judged on the median: {'met' if ours_us < 50 else 'NOT met'}")

    try:
        os.environ.setdefault("SPAWNING_OPTS_KEY", "")
        from datadiligence.rules import TDMRepHeader, XRobotsTagHeader
    except ImportError:
        print("datadiligence not installed: peer comparison skipped (pip install datadiligence)")
        return
    rules = [XRobotsTagHeader(user_agent="ExampleBot"), TDMRepHeader()]
    flat = {k: v[-1] for k, v in headers.items()}

    def peer(url: str) -> bool:
        return all(rule.is_allowed(url=url, headers=flat) for rule in rules)

    start = time.perf_counter()
    for i in range(n):
        peer(urls[i % 1000])
    peer_us = (time.perf_counter() - start) / n * 1e6
    print(f"{'datadiligence (2 headers only)':44} {peer_us:10.1f}")
    print(f"ratio optout/datadiligence: {ours_us / peer_us:.2f}x (optout reads 12 protocols, datadiligence 2 headers)")


if __name__ == "__main__":
    main()
