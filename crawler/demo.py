"""`optout demo`: a local fixture web where every site shows a different kind of opt-out, crawled end to end.

Everything runs on 127.0.0.1 and nothing reaches the internet. Each fixture site has a host name of its own under
``.test`` (``book-publisher.test``, ``photo-gallery.test``, ...), which the crawl's DNS resolver answers with
127.0.0.1 (crawler/fixtureweb.py), so the registry, its exports, the service and the report see twelve sites, as
a real crawl would. The demo runs the same crawl as ``optout crawl``
(the ``compliant`` spider under the add-on, with a blocklist), then prints what was honoured and why, checks every
answer against what the fixture site is built to show, verifies the registry, exports one site's bundle and
verifies it offline like a rights holder would, writes the crawler's disclosure page, and prints where everything
is. It opens nothing. It exits 1 if any answer or check is not what it should be.
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crawler.fixtureweb import FixtureWeb, Route, page

AGENT = "OptOutBot"

# Each fixture site's host name (resolved to 127.0.0.1 inside the crawl only; .test is never delegated).
HOSTS = {
    "open": "open-blog.test",
    "robots": "city-news.test",
    "aibots": "essay-journal.test",
    "down": "under-maintenance.test",
    "publisher": "book-publisher.test",
    "headers": "magazine.test",
    "meta": "art-portfolio.test",
    "cloudflare": "cdn-news.test",
    "gallery": "photo-gallery.test",
    "licensed": "licensed-stories.test",
    "paywall": "paywalled-daily.test",
    "blocked": "pirate-copies.test",
}
# The site whose bundle the demo exports and verifies (three records: ai.txt, IPTC, X-Robots-Tag).
EXPORTED = "gallery"


def _jpeg_with_xmp(xmp: str) -> bytes:
    """A minimal JPEG carrying an XMP packet in its APP1 segment (where cameras and ExifTool put it)."""
    payload = b"http://ns.adobe.com/xap/1.0/\x00" + xmp.encode("utf-8")
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return b"\xff\xd8" + app1 + b"\xff\xd9"


_IPTC_XMP = """<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/"
 plus:DataMining="http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING"/></rdf:RDF></x:xmpmeta>"""

_RSL = """<rsl xmlns="https://rslstandard.org/rsl"><content url="/"><license>
<permits type="usage">search</permits><prohibits type="usage">ai-train</prohibits></license></content></rsl>"""


@dataclass
class Case:
    site: str
    path: str
    expect_allowed: bool
    expect_protocols: tuple[str, ...]
    what: str
    seed: bool = True  # False: the crawl must find it (a link, a sitemap)


def build_web(web: FixtureWeb) -> list[Case]:
    """Start the demo sites; return the URLs to check with what a correct engine must answer."""
    for name, host in HOSTS.items():
        web.site(name, host=host)
    opened = web.origin("open")
    web.site(
        "open",
        {
            "/robots.txt": Route(
                body=f"User-agent: *\nDisallow: /drafts/\nSitemap: {opened}/sitemap.xml\n", content_type="text/plain"
            ),
            "/": page(
                "Open blog",
                '<p>Welcome.</p><a href="/article">An article</a> <a href="/linked">More</a> '
                '<a href="/drafts/next-post">Coming soon</a>',
            ),
            "/drafts/next-post": page("A draft"),
            "/article": page("An open article", "<p>Free to use.</p>"),
            "/linked": page("A linked page", "<p>Found by following a link.</p>"),
            "/sitemap.xml": Route(
                body='<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                f"<url><loc>{opened}/from-sitemap</loc></url></urlset>",
                content_type="application/xml",
            ),
            "/from-sitemap": page("In the sitemap", "<p>Only the sitemap links here.</p>"),
        },
    )
    web.site(
        "robots",
        {
            "/robots.txt": Route(
                body=f"User-agent: *\nAllow: /\n\nUser-agent: {AGENT}\nDisallow: /private/\n", content_type="text/plain"
            ),
            "/private/report": page("Private"),
            "/public": page("Public"),
        },
    )
    web.site(
        "aibots",
        {
            "/robots.txt": Route(
                body="User-agent: GPTBot\nUser-agent: CCBot\nDisallow: /\n", content_type="text/plain"
            ),
            "/essay": page("Essay"),
        },
    )
    web.site("down", {"/robots.txt": Route(503, "maintenance", content_type="text/plain"), "/": page("Down")})
    web.site(
        "publisher",
        {
            "/.well-known/tdmrep.json": Route(
                body=json.dumps([{"location": "/books/", "tdm-reservation": 1}]), content_type="application/json"
            ),
            "/books/novel": page("A novel"),
            "/blog/post": page("A blog post"),
        },
    )
    web.site(
        "headers",
        {
            "/tdm": Route(body=page("TDM header"), headers=[("tdm-reservation", "1")]),
            "/aipref": Route(body=page("AI preferences"), headers=[("Content-Usage", "train-ai=n")]),
            "/noai": Route(body=page("noai header"), headers=[("X-Robots-Tag", "noai")]),
        },
    )
    web.site("meta", {"/art": page("Art", head='<meta name="robots" content="noai, noimageai">')})
    web.site(
        "cloudflare",
        {
            "/robots.txt": Route(
                body="User-Agent: *\nContent-Signal: search=yes, ai-train=no\nAllow: /\n", content_type="text/plain"
            ),
            "/news": page("News"),
        },
    )
    web.site(
        "gallery",
        {
            "/ai.txt": Route(body="User-agent: *\nDisallow: *.png\nAllow: /\n", content_type="text/plain"),
            "/img/art.png": Route(body=b"\x89PNG\r\n\x1a\n", content_type="image/png"),
            "/img/photo.jpg": Route(body=_jpeg_with_xmp(_IPTC_XMP), content_type="image/jpeg"),
            "/img/sketch.jpg": Route(
                body=_jpeg_with_xmp("<x/>"), content_type="image/jpeg", headers=[("X-Robots-Tag", "noimageai")]
            ),
        },
    )
    licensed = web.origin("licensed")
    web.site(
        "licensed",
        {
            "/robots.txt": Route(
                body=f"User-agent: *\nAllow: /\nLicense: {licensed}/license.xml\n", content_type="text/plain"
            ),
            "/license.xml": Route(body=_RSL, content_type="application/rsl+xml"),
            "/story": page("Story"),
        },
    )
    web.site(
        "paywall",
        {
            "/premium": Route(402, page("Subscribe to read")),
            "/members": Route(302, "", headers=[("Location", "/login?next=/members")]),
            "/login": page("Log in", "<form method=post><input name=user><input type=password name=pw></form>"),
        },
    )
    web.site("blocked", {"/": page("A persistently infringing site")})
    return [
        Case("open", "/", True, (), "no opt-out applies: stored, and its links followed"),
        Case("open", "/article", True, (), "no opt-out applies"),
        Case("open", "/linked", True, (), "found by following a link from the home page", seed=False),
        Case("open", "/from-sitemap", True, (), "found in the sitemap that robots.txt names", seed=False),
        Case(
            "open",
            "/drafts/next-post",
            False,
            ("robots",),
            "robots.txt disallows /drafts/ to every crawler",
            seed=False,
        ),
        Case("robots", "/private/report", False, ("robots",), "robots.txt disallows our token"),
        Case("robots", "/public", True, (), "robots.txt allows our token here"),
        Case("aibots", "/essay", False, ("robots",), "robots.txt disallows well-known AI training crawlers"),
        Case("down", "/", False, ("fetch",), "robots.txt answers 503: complete disallow"),
        Case("publisher", "/books/novel", False, ("tdmrep",), "tdmrep.json reserves /books/"),
        Case("publisher", "/blog/post", True, (), "tdmrep.json does not cover /blog/"),
        Case("headers", "/tdm", False, ("tdmrep",), "tdm-reservation: 1 header"),
        Case("headers", "/aipref", False, ("content-usage",), "Content-Usage: train-ai=n header"),
        Case("headers", "/noai", False, ("robots-tag",), "X-Robots-Tag: noai"),
        Case("meta", "/art", False, ("robots-tag",), "<meta name=robots content=noai>"),
        Case("cloudflare", "/news", False, ("content-signal",), "Content-Signal: ai-train=no in robots.txt"),
        Case("gallery", "/img/art.png", False, ("ai-txt",), "ai.txt disallows *.png"),
        Case("gallery", "/img/photo.jpg", False, ("iptc",), "IPTC plus:DataMining prohibits AI/ML training"),
        Case("gallery", "/img/sketch.jpg", False, ("robots-tag",), "X-Robots-Tag: noimageai on an image"),
        Case("licensed", "/story", False, ("rsl",), "RSL licence prohibits ai-train"),
        Case("paywall", "/premium", False, ("access",), "402 Payment Required: never circumvented"),
        Case("paywall", "/members", False, ("access",), "redirect to a login wall"),
        Case("blocked", "/", False, ("blocklist",), "domain on the operator's blocklist"),
    ]


def case_url(web: FixtureWeb, case: Case) -> str:
    return web.origin(case.site) + case.path


DEMO_FILES = (
    "items.jsonl",
    "decisions.jsonl",
    "registry.db",
    "registry.db-wal",
    "registry.db-shm",
    "registry.db.key",
    "policy-cache.db",
    "policy-cache.db-wal",
    "policy-cache.db-shm",
    "crawl.log",
    "run.json",
    "summary.json",
    "report.html",
    "blocklist.txt",
    # written by `optout serve --registry …/registry.db` (its index and sessions), tied to this run's registry
    "registry.db.service.db",
    "registry.db.service.db-wal",
    "registry.db.service.db-shm",
)
DEMO_DIRS = ("job", "evidence", "disclosure")


def clean(out: Path) -> None:
    """Remove what an earlier demo wrote (and only that): every run starts from nothing."""
    for name in DEMO_FILES:
        (out / name).unlink(missing_ok=True)
    for name in DEMO_DIRS:
        shutil.rmtree(out / name, ignore_errors=True)
    for bundle in out.glob("bundle-*"):
        if bundle.is_dir():
            shutil.rmtree(bundle, ignore_errors=True)


@dataclass
class Outcome:
    case: Case
    stored: bool
    protocols: tuple[str, ...]
    rules: str
    ok: bool


def outcomes(web: FixtureWeb, cases: list[Case], out: Path) -> list[Outcome]:
    """What the crawl did with each case's URL, from its own files: decisions.jsonl and items.jsonl."""
    from crawler.outfiles import read_lines

    decided = {str(d.get("url")): d for d in read_lines(out / "decisions.jsonl")}
    items = {str(i.get("requested_url") or i.get("url")) for i in read_lines(out / "items.jsonl")}
    found = []
    for case in cases:
        url = case_url(web, case)
        event = decided.get(url, {})
        reservations = event.get("reservations", [])
        protocols = tuple(sorted({r["protocol"] for r in reservations}))
        stored = event.get("outcome") == "stored" and url in items
        ok = stored == case.expect_allowed and set(case.expect_protocols) <= set(protocols)
        if not event:
            rules = "never reached"
        elif reservations:
            # The rule that decided it; a robots.txt failure comes with its "fetch" twin, which says the same.
            first = next((r for r in reservations if r["protocol"] != "fetch"), reservations[0])
            rules = first["rule"] + (f" (+{len(reservations) - 1} more)" if len(reservations) > 1 else "")
        else:
            rules = case.what
        found.append(Outcome(case, stored, protocols, rules, ok))
    return found


def verify_registry(out: Path, site: str) -> list[str]:
    """Self-check the whole registry, export one site's bundle and verify it offline, as a rights holder
    would with the published key. Returns the lines to print; raises DemoError on a failed check."""
    from optout_registry import Registry, verify_export
    from optout_registry.export import export_bundle

    lines = []
    with Registry.open(out / "registry.db", create=False) as reg:
        report = reg.self_check(full=True)
        if not report.ok:
            raise DemoError(f"registry self-check failed: {'; '.join(report.problems[:3])}")
        lines.append(f"registry self-check (full): ok, {report.size} entries consistent with the signed checkpoints")
        vkey = reg.vkey
        bundle = out / f"bundle-{site}"
        result = export_bundle(reg, site, bundle)
    verdict = verify_export(bundle, vkey)
    if not verdict.ok:
        raise DemoError(f"the exported bundle does not verify: {'; '.join(verdict.problems[:3])}")
    lines.append(
        f"bundle for site {site}: {result.records} record{'s' if result.records != 1 else ''} with inclusion proofs, "
        "verified offline with the "
        f"public key: VALID"
    )
    return lines


class DemoError(Exception):
    """A check the demo makes failed."""


def run_demo(out: Path) -> int:
    from rich.console import Console
    from rich.table import Table

    from crawler.console import ConsoleProgress
    from crawler.crawl import CrawlError, CrawlOptions, run_crawl
    from crawler.runsummary import origin_key

    console = Console()
    if not console.is_terminal:
        console = Console(width=130)  # CI logs and pipes: wide enough for one line per URL
    started = time.monotonic()
    try:
        out.mkdir(parents=True, exist_ok=True)
        clean(out)
        (out / "blocklist.txt").write_text(
            f"# the demo's blocklist: never fetch these\n{HOSTS['blocked']}\n", encoding="utf-8"
        )
    except OSError as exc:
        print(f"optout demo: error: cannot write to {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    with FixtureWeb() as web:
        cases = build_web(web)
        labels = {origin_key(case_url(web, c)): c.site for c in cases}
        seeds = list(dict.fromkeys(case_url(web, c) for c in cases if c.seed))
        console.print(
            f"[bold]optout demo[/]: {len(web.servers)} fixture sites, each showing one kind of opt-out, named under "
            ".test and served on 127.0.0.1 (only this crawl resolves those names); "
            f"crawling {len(seeds)} seed URLs for [bold]train-ai[/] as [bold]{AGENT}[/] (conservative mode), "
            "with a blocklist"
        )
        opts = CrawlOptions(
            seeds=seeds,
            out=out,
            agent=AGENT,
            blocklist=str(out / "blocklist.txt"),
            depth=2,
            timeout=5.0,
            labels=labels,
            extra_settings=web.crawl_settings(),
        )
        progress = ConsoleProgress(console)
        try:
            result = run_crawl(opts, progress=progress)
        except CrawlError as exc:
            print(f"optout demo: error: {exc}", file=sys.stderr)
            return 2
        finally:
            progress.stop()
        if result.summary is None or result.error or result.start_error:
            print(f"optout demo: error: the crawl failed: {result.error or result.start_error}", file=sys.stderr)
            return 1
        found = outcomes(web, cases, out)
        misnamed = sorted({f"{h.site}: Host {h.host!r}" for h in web.log if h.host.rpartition(":")[0] != HOSTS[h.site]})
    summary = result.summary
    table = Table(title="What the crawl did, and why", title_justify="left")
    for col in ("verdict", "site", "URL path", "protocol", "why"):
        table.add_column(col)
    for o in found:
        verdict = "[green]stored[/]" if o.stored else "[red]refused[/]"
        table.add_row(
            verdict + ("" if o.ok else " [bold red]UNEXPECTED[/]"),
            HOSTS[o.case.site],
            o.case.path,
            ", ".join(o.protocols) or "-",
            o.rules,
        )
    console.print(table)
    wrong = [o for o in found if not o.ok]
    pages, honoured = summary["pages"], summary["honoured"]
    console.print(
        f"{pages['stored']} pages stored, {pages['refused']} URLs refused ({pages['not_fetched']} never fetched, "
        f"{pages['fetched_not_stored']} fetched but not stored); {honoured['total']} opt-outs honoured: "
        + ", ".join(f"{p} {n}" for p, n in honoured["by_protocol"].items())
    )
    problems = [f"{len(wrong)} answer(s) differ from what the fixture sites are built to show"] if wrong else []
    if misnamed:  # every request must have reached its site by the site's own name
        problems.append(f"requests not addressed to their site's host name: {'; '.join(misnamed[:3])}")
    records = summary["registry"].get("records", 0)
    if records != honoured["total"]:
        problems.append(f"the registry holds {records} records, but {honoured['total']} opt-outs were honoured")
    by_site = summary["registry"].get("by_site") or {}
    console.print(
        f"{summary['sites']} sites crawled ({summary['origins']} origins); the registry holds {records} records "
        f"about {len(by_site)} of them"
    )
    if len(by_site) != len(HOSTS) or summary["sites"] != len(HOSTS):
        problems.append(
            f"{len(HOSTS)} sites expected in the summary and the registry, found {summary['sites']} and {len(by_site)}"
        )
    exported = HOSTS[EXPORTED]
    try:
        for line in verify_registry(out, exported):
            console.print(line)
    except DemoError as exc:
        problems.append(str(exc))
    disclosure = write_disclosure(out)
    console.print(f"done in {time.monotonic() - started:.1f}s. Nothing was opened; the files:")
    for label, path in (
        ("report", out / "report.html"),
        ("items", out / "items.jsonl"),
        ("decisions", out / "decisions.jsonl"),
        ("summary", out / "summary.json"),
        ("run", out / "run.json"),
        ("log", out / "crawl.log"),
        ("registry", out / "registry.db"),
        ("signing key", out / "registry.db.key"),
        ("evidence", out / "evidence"),
        ("journal", out / "job"),
        ("bundle", out / f"bundle-{exported}"),
        ("disclosure", disclosure),
    ):
        console.print(f"  {label:<11} {path}")
    registry_url = f"sqlite:///{(out / 'registry.db').resolve()}"
    console.print("Next steps:")
    for line in next_steps(out, registry_url, exported):
        console.print(line, highlight=False, markup=False, soft_wrap=True)  # commands stay whole for copying
    for problem in problems:
        console.print(f"[bold red]problem:[/] {problem}")
    return 1 if problems else 0


def next_steps(out: Path, registry_url: str, site: str) -> list[str]:
    """What to do after the demo: read the report, browse the registry as a rights holder, check one's own URL."""
    report = (out / "report.html").resolve()
    bundle = out / f"bundle-{site}"
    return [
        f"  1. open the report in a browser: {report.as_uri()}",
        "  2. browse the registry as a rights holder would (needs pip install -e '.[service]'):",
        f"       optout serve --registry {registry_url}",
        f"     then open http://127.0.0.1:8080/ and search for {site} (or any demo site): the page shows how many",
        "     records there are; proving control of a domain (or the operator's admin token) shows the records",
        f'  3. verify the bundle yourself: optout registry verify {bundle} --vkey "$(optout registry key --registry '
        f'{registry_url})"',
        "  4. check a URL of your own: optout check https://example.com/some/page --purpose train-ai",
        f"  5. the AI Act public summary of this crawl: optout summary {out} --out {out.parent / 'summary'}",
    ]


def write_disclosure(out: Path) -> Path:
    """The public page about the demo's crawler, as ``optout disclose`` writes it."""
    from crawler.disclose import Disclosure
    from crawler.disclose import write_disclosure as write

    folder = out / "disclosure"
    facts: dict[str, Any] = {
        "agents": [AGENT],
        "registry_url": f"sqlite:///{(out / 'registry.db').resolve()}",
        "blocklist": str(out / "blocklist.txt"),
    }
    write(Disclosure.from_settings(overrides=facts), folder)
    return folder / "index.html"
