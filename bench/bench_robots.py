"""Benchmark: our RFC 9309 robots.txt matcher against Protego (and Scrapy's ProtegoRobotParser wrapper).

Standalone, no network. A deterministic corpus of real-world-shaped robots.txt files (large sites with hundreds of
rules and wildcards, Cloudflare-managed files with Content-Signal, AI-crawler block lists with many User-agent
lines, tiny files) and many URLs is generated in this script. It measures, with time.perf_counter:

  (a) parse time per file,
  (b) decisions per second, parse once / match many: ours (`RobotsTxt.match`, the full decision with its deciding
      rule, and `RobotsTxt.can_fetch`) vs Protego `can_fetch` vs Scrapy's `ProtegoRobotParser.allowed`,
  (c) a pathological-wildcard case,

and prints a table with ratios (target: our decision within 2x of Protego's raw speed). It also counts how often
our decision agrees with Protego's on the corpus and prints examples where they differ; those are places where
Protego departs from RFC 9309 (prefix token matching, groups ended by non-rule lines, percent-encoding).

Run: python bench/bench_robots.py [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protego import Protego

from middlewares.protocols.robots import parse_robots

try:  # Scrapy's wrapper is optional for this script.
    from scrapy.robotstxt import ProtegoRobotParser
except ImportError:  # pragma: no cover
    ProtegoRobotParser = None  # type: ignore[assignment,misc]

SEED = 20261114
TOKENS = ("ExampleBot", "GPTBot", "ClaudeBot")

AI_BOTS = [
    "AI2Bot",
    "Ai2Bot-Dolma",
    "Amazonbot",
    "anthropic-ai",
    "Applebot-Extended",
    "Bytespider",
    "CCBot",
    "ChatGPT-User",
    "Claude-Web",
    "ClaudeBot",
    "cohere-ai",
    "cohere-training-data-crawler",
    "Diffbot",
    "DuckAssistBot",
    "FacebookBot",
    "Google-Extended",
    "GPTBot",
    "ImagesiftBot",
    "meta-externalagent",
    "Meta-ExternalFetcher",
    "OAI-SearchBot",
    "omgili",
    "omgilibot",
    "PerplexityBot",
    "Perplexity-User",
    "PetalBot",
    "Scrapy",
    "Timpibot",
    "VelenPublicWebCrawler",
    "YouBot",
    "DeepSeekBot",
    "YandexAdditional",
    "img2dataset",
    "LAIONDownloader",
    "Kangaroo Bot",
    "iaskspider/2.0",
    "MistralAI-User/1.0",
    "bigsur.ai",
]
WORDS = [
    "news",
    "article",
    "sport",
    "video",
    "shop",
    "cart",
    "account",
    "search",
    "tag",
    "category",
    "user",
    "api",
    "static",
    "img",
    "media",
    "docs",
    "blog",
    "wiki",
    "private",
    "tmp",
]
EXTS = ["", ".html", ".php", ".pdf", ".jpg", ".json", "/"]
PARAMS = ["sort", "page", "sessionid", "utm_source", "q", "filter", "ref", "lang"]


def _dir(rng: random.Random) -> str:
    return "/" + "/".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3))) + "/"


_BIG_SITES = itertools.count()


def big_site(rng: random.Random) -> str:
    """A large site: hundreds of Disallow/Allow rules with wildcards, a few crawler-specific groups."""
    lines = ["# robots.txt for a big site", "User-agent: *"]
    for _ in range(rng.randint(200, 500)):
        kind = rng.random()
        if kind < 0.55:
            pattern = _dir(rng)
        elif kind < 0.70:
            pattern = f"/*?{rng.choice(PARAMS)}="
        elif kind < 0.80:
            pattern = f"/*&{rng.choice(PARAMS)}="
        elif kind < 0.88:
            pattern = f"/*{rng.choice(['.pdf', '.json', '.xml', '.php'])}$"
        elif kind < 0.95:
            pattern = _dir(rng) + "*" + rng.choice(WORDS)
        else:
            pattern = f"/{rng.choice(WORDS)}-{rng.randint(1, 999)}.html"
        lines.append(f"{'Allow' if rng.random() < 0.15 else 'Disallow'}: {pattern}")
    lines += ["", "User-agent: Googlebot", "Disallow: /search", "Allow: /search/about", ""]
    lines += ["User-agent: Mediapartners-Google", "Disallow:", ""]
    for bot in rng.sample(AI_BOTS, 8):
        lines += [f"User-agent: {bot}", "Disallow: /", ""]
    if next(_BIG_SITES) % 3 == 0:
        lines += ["User-agent: Claude", "Disallow: /"]  # seen in the wild; not ClaudeBot's group (RFC 9309)
    lines += [f"Sitemap: https://www.example.com/sitemap-{i}.xml" for i in range(rng.randint(1, 20))]
    return "\n".join(lines) + "\n"


def cloudflare(rng: random.Random) -> str:
    """Cloudflare managed robots.txt: Content Signals comment block, `*` group, AI crawler block list."""
    lines = [
        "# As a condition of accessing this website, you agree to abide by the following content signals:",
        "# (a)  If a content-signal = yes, you may collect content for the corresponding use.",
        "# (b)  If a content-signal = no, you may not collect content for the corresponding use.",
        "# (c)  If the website operator does not include a content signal for a corresponding use, the website",
        "#      operator neither grants nor restricts permission via content signal with respect to the",
        "#      corresponding use.",
        "",
        "User-Agent: *",
        f"Content-Signal: search=yes,ai-train={rng.choice(['no', 'yes'])}",
        "Allow: /",
        "",
    ]
    for bot in ["Amazonbot", "Applebot-Extended", "Bytespider", "CCBot", "ClaudeBot", "Google-Extended", "GPTBot"]:
        lines += [f"User-agent: {bot}", "Disallow: /", ""]
    lines += ["User-agent: meta-externalagent", "Disallow: /", ""]
    for _ in range(rng.randint(0, 20)):
        lines.append(f"Disallow: {_dir(rng)}")
    return "\n".join(lines) + "\n"


def ai_block_list(rng: random.Random) -> str:
    """ai.robots.txt style: one group with many User-agent lines and `Disallow: /`."""
    lines = [f"User-agent: {bot}" for bot in AI_BOTS]
    lines += ["Disallow: /", "", "User-agent: *"]
    lines += [f"Disallow: {_dir(rng)}" for _ in range(rng.randint(0, 30))]
    return "\n".join(lines) + "\n"


def ai_separate_groups(rng: random.Random) -> str:
    """One group per AI crawler, some with partial rules, some with Crawl-delay."""
    lines = ["User-agent: *", "Disallow: /wp-admin/", "Allow: /wp-admin/admin-ajax.php", ""]
    for bot in rng.sample(AI_BOTS, rng.randint(10, len(AI_BOTS))):
        lines.append(f"User-agent: {bot}")
        if rng.random() < 0.2:
            lines.append(f"Crawl-delay: {rng.randint(1, 30)}")
        lines.append("Disallow: /" if rng.random() < 0.8 else f"Disallow: {_dir(rng)}")
        lines.append("")
    return "\n".join(lines) + "\n"


def tiny(rng: random.Random) -> str:
    return rng.choice(
        [
            "User-agent: *\nDisallow:\n",
            "User-agent: *\nDisallow: /admin/\n",
            "User-agent: *\nAllow: /\n",
            "User-agent: *\nDisallow: /\n",
            "User-agent: *\nDisallow: /cgi-bin/\nDisallow: /tmp/\nSitemap: https://e.example/sitemap.xml\n",
        ]
    )


def old_style(rng: random.Random) -> str:
    """Files written for blank-line-separated parsers: a crawl-delay-only group before `*` (RFC 9309 merges)."""
    return (
        f"User-agent: GPTBot\nCrawl-delay: {rng.randint(1, 9)}\n\nUser-agent: *\nDisallow: /private/\nDisallow: /tmp/\n"
    )


def url(rng: random.Random) -> str:
    path = "/" + "/".join(rng.choice(WORDS) for _ in range(rng.randint(0, 4)))
    path += rng.choice(EXTS) if path != "/" else ""
    if rng.random() < 0.35:
        path += "?" + "&".join(f"{rng.choice(PARAMS)}={rng.randint(1, 99)}" for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.02:
        path = rng.choice(["/caf%C3%A9/menu", "/%7Euser/home", "/robots.txt", "/a%2Fb"])
    return "https://www.example.com" + path


def corpus(quick: bool) -> tuple[list[tuple[str, str]], list[str]]:
    rng = random.Random(SEED)
    files: list[tuple[str, str]] = []
    mix = [(big_site, 12), (cloudflare, 8), (ai_block_list, 6), (ai_separate_groups, 8), (tiny, 10), (old_style, 2)]
    for make, count in mix:
        for _ in range(count if not quick else max(1, count // 3)):
            files.append((make.__name__, make(rng)))
    urls = [url(rng) for _ in range(200 if quick else 500)]
    return files, urls


def timed(fn: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller corpus, for a smoke run")
    args = parser.parse_args()
    files, urls = corpus(args.quick)
    bodies = [body for _, body in files]
    raw = [body.encode() for body in bodies]
    total_bytes = sum(map(len, raw))
    print(f"corpus: {len(files)} robots.txt files ({total_bytes / 1024:.0f} KiB), {len(urls)} URLs, tokens {TOKENS}")

    # (a) parse time
    t_ours = timed(lambda: [parse_robots(b) for b in raw])
    t_prot = timed(lambda: [Protego.parse(b) for b in bodies])
    rows = [("parse (all files)", t_ours, t_prot, None)]
    if ProtegoRobotParser is not None:
        t_scr = timed(lambda: [ProtegoRobotParser(b, None) for b in raw])
        rows[0] = ("parse (all files)", t_ours, t_prot, t_scr)

    ours = [parse_robots(b) for b in raw]
    theirs = [Protego.parse(b) for b in bodies]
    scrapy_parsers = [ProtegoRobotParser(b, None) for b in raw] if ProtegoRobotParser is not None else []
    n_decisions = len(files) * len(urls) * len(TOKENS)

    def run_ours_match() -> None:
        for robots in ours:
            match = robots.match
            for token in TOKENS:
                for u in urls:
                    match(token, u)

    def run_ours_bool() -> None:
        for robots in ours:
            can_fetch = robots.can_fetch
            for token in TOKENS:
                for u in urls:
                    can_fetch(token, u)

    def run_protego() -> None:
        for rp in theirs:
            can_fetch = rp.can_fetch
            for token in TOKENS:
                for u in urls:
                    can_fetch(u, token)

    def run_scrapy() -> None:
        for sp in scrapy_parsers:
            allowed = sp.allowed
            for token in TOKENS:
                for u in urls:
                    allowed(u, token)

    t_match = timed(run_ours_match)
    t_bool = timed(run_ours_bool)
    t_p = timed(run_protego)
    t_s = timed(run_scrapy) if scrapy_parsers else None
    rows.append(("decisions: ours match() vs Protego", t_match, t_p, t_s))
    rows.append(("decisions: ours can_fetch() vs Protego", t_bool, t_p, t_s))

    # (c) pathological wildcards: many `*a` segments against a long run of `a`.
    pattern = "/" + "*a" * 20 + "*b"
    patho_body = "User-agent: *\n" + "".join(f"Disallow: {pattern}{i}\n" for i in range(20))
    patho_url = "https://e.example/" + "a" * 5000
    po, pp = parse_robots(patho_body), Protego.parse(patho_body)
    ps = ProtegoRobotParser(patho_body.encode(), None) if ProtegoRobotParser is not None else None
    reps = 200
    t_po = timed(lambda: [po.match("bot", patho_url) for _ in range(reps)])
    t_pp = timed(lambda: [pp.can_fetch(patho_url, "bot") for _ in range(reps)])
    t_ps = timed(lambda: [ps.allowed(patho_url, "bot") for _ in range(reps)]) if ps is not None else None
    rows.append((f"pathological /*a x20*b, 5000-char URL, {reps} decisions", t_po, t_pp, t_ps))

    print()
    header = f"{'measurement':58} {'ours':>12} {'Protego':>12} {'Scrapy':>12} {'ours/Protego':>13}"
    print(header)
    print("-" * len(header))
    for name, o, p, s in rows:
        scr = f"{s * 1000:10.1f}ms" if s is not None else f"{'n/a':>12}"
        print(f"{name:58} {o * 1000:10.1f}ms {p * 1000:10.1f}ms {scr} {o / p:12.2f}x")
    print()
    print(f"decisions per run: {n_decisions}")
    print(f"  ours match():     {n_decisions / t_match:12,.0f} decisions/s")
    print(f"  ours can_fetch(): {n_decisions / t_bool:12,.0f} decisions/s")
    print(f"  Protego:          {n_decisions / t_p:12,.0f} decisions/s")
    if t_s is not None:
        print(f"  Scrapy wrapper:   {n_decisions / t_s:12,.0f} decisions/s")
    print(f"  parse: ours {t_ours / len(files) * 1e6:.0f} us/file, Protego {t_prot / len(files) * 1e6:.0f} us/file")
    target = "MET" if t_match <= 2 * t_p else "MISSED"
    print(f"  target 'match() within 2x of Protego can_fetch': {target} ({t_match / t_p:.2f}x)")

    # Agreement, with each difference classified by cause.
    agree = 0
    causes: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    for (kind, body), robots, rp in zip(files, ours, theirs, strict=True):
        for token in TOKENS:
            their_set = rp._get_matching_rule_set(token)  # private, used only to explain differences
            their_agent = their_set.user_agent if their_set is not None else ""
            our_agent = robots.select(token).agent.lower()
            for u in urls:
                m = robots.match(token, u)
                if m.allowed is rp.can_fetch(u, token):
                    agree += 1
                    continue
                if their_agent != our_agent and not (their_agent == token.lower() and our_agent):
                    cause = (
                        f"group selection (Protego applies 'User-agent: {their_agent}' to {token}; "
                        f"ours: '{our_agent or 'none'}')"
                    )
                elif kind == "old_style":
                    cause = (
                        "group structure: Protego ends a group at a Crawl-delay line; RFC 9309 §2.2.4 does not, "
                        "so 'User-agent: GPTBot / Crawl-delay / User-agent: *' is one group"
                    )
                elif "?" in u or "&" in u:
                    cause = "rule precedence: Protego counts '?'/'&' in patterns as 3 octets (%3F/%26)"
                elif "%" in u:
                    cause = "percent-encoding normalisation (RFC 9309 Figure 4)"
                else:
                    cause = f"other ({kind})"
                causes[cause] = causes.get(cause, 0) + 1
                bucket = examples.setdefault(cause, [])
                if len(bucket) < 2:
                    first = " | ".join(body.splitlines()[:2])
                    bucket.append(
                        f"{kind}: {token} {u.removeprefix('https://www.example.com')} -> ours "
                        f"{'allow' if m.allowed else 'deny'} [{m.describe()}], Protego "
                        f"{'deny' if m.allowed else 'allow'}  (file: '{first[:70]}...')"
                    )
    print()
    print(f"agreement with Protego: {agree}/{n_decisions} decisions ({100 * agree / n_decisions:.2f}%)")
    for cause, count in sorted(causes.items(), key=lambda kv: -kv[1]):
        print(f"  {count:6d} differ: {cause}")
        for example in examples[cause]:
            print(f"           e.g. {example}")


if __name__ == "__main__":
    main()
