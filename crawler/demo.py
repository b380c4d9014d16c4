"""`optout demo`: a local fixture web where every site shows a different kind of opt-out, checked end to end.

Everything runs on 127.0.0.1 and nothing reaches the internet. The demo prints what was honoured and why, and
writes the decisions as JSON Lines and a self-contained HTML report.
"""

from __future__ import annotations

import html
import json
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from crawler.fixtureweb import FixtureWeb, Route, page
from middlewares.policy import Decision, Policy
from middlewares.protocols.blocklist import Blocklist

AGENT = "OptOutBot"


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


def build_web(web: FixtureWeb) -> list[Case]:
    """Start the demo sites; return the URLs to check with what a correct engine must answer."""
    open_site = {"/robots.txt": Route(body="User-agent: *\nAllow: /\n", content_type="text/plain")}
    web.site("open", {**open_site, "/": page("Open site"), "/article": page("An open article", "<p>Free.</p>")})
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
    licensed = web.site("licensed")
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
        Case("open", "/article", True, (), "no opt-out anywhere"),
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
    origin = web.origin(case.site)
    if case.site == "blocked":  # the blocklist matches host names, so this site is reached as "localhost"
        origin = origin.replace("127.0.0.1", "localhost")
    return origin + case.path


def run_checks(web: FixtureWeb, cases: list[Case], policy: Policy) -> list[Decision]:
    from crawler.check import Checker
    from crawler.cli import user_agent_for
    from crawler.fetcher import RequestsFetcher

    fetcher = RequestsFetcher(user_agent_for(policy.agent), timeout=5.0)
    checker = Checker(policy, fetcher, Blocklist.parse("# demo blocklist\nlocalhost\n"))
    try:
        return [checker.check(case_url(web, c)) for c in cases]
    finally:
        fetcher.close()


def run_demo(out: Path) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    policy = Policy.build(agent=AGENT)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"optout demo: error: cannot create {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    with FixtureWeb() as web:
        cases = build_web(web)
        console.print(
            f"[bold]optout demo[/]: {len(web.servers)} fixture sites on 127.0.0.1, purpose "
            f"{policy.purpose.value}, agent {policy.agent}, mode {policy.mode.value}"
        )
        decisions = run_checks(web, cases, policy)
    table = Table(title="What was honoured", show_lines=False)
    for col in ("verdict", "site", "URL path", "protocol", "why"):
        table.add_column(col)
    wrong = 0
    for case, decision in zip(cases, decisions, strict=True):
        got = tuple(sorted({s.protocol for s in decision.reservations}))
        ok = decision.allowed == case.expect_allowed and set(case.expect_protocols) <= set(got)
        wrong += not ok
        verdict = "[green]allowed[/]" if decision.allowed else "[red]reserved[/]"
        rules = "; ".join(s.rule for s in decision.reservations) or case.what
        table.add_row(
            verdict + ("" if ok else " [bold red]UNEXPECTED[/]"), case.site, case.path, ", ".join(got) or "-", rules
        )
    console.print(table)
    jsonl = out / "decisions.jsonl"
    jsonl.write_text("".join(json.dumps(d.to_json()) + "\n" for d in decisions), encoding="utf-8")
    report = out / "report.html"
    report.write_text(render_report(cases, decisions, policy), encoding="utf-8")
    honoured = Counter(s.protocol for d in decisions for s in d.reservations)
    summary = ", ".join(f"{p} {n}" for p, n in honoured.most_common())
    console.print(
        f"{sum(not d.allowed for d in decisions)} of {len(decisions)} URLs reserved ({summary}); "
        f"{time.monotonic() - started:.1f}s"
    )
    console.print(f"decisions: {jsonl}\nreport:    {report}")
    if wrong:
        console.print(f"[bold red]{wrong} answer(s) differ from what the demo expects[/]")
        return 1
    return 0


def render_report(cases: list[Case], decisions: list[Decision], policy: Policy) -> str:
    """A self-contained HTML page (no scripts, no network) listing every decision and its evidence."""
    rows = []
    for case, d in zip(cases, decisions, strict=True):
        reasons = "<br>".join(
            f"<b>{html.escape(s.protocol)}</b> {html.escape(s.rule)} <small>{html.escape(s.source)}</small>"
            for s in d.reservations
        )
        cls = "ok" if d.allowed else "no"
        rows.append(
            f"<tr class={cls}><td>{'allowed' if d.allowed else 'reserved'}</td><td>{html.escape(case.site)}</td>"
            f"<td>{html.escape(case.path)}</td><td>{reasons or html.escape(case.what)}</td></tr>"
        )
    counts = Counter(s.protocol for d in decisions for s in d.reservations)
    peak = max(counts.values(), default=1)
    bars = "".join(
        f"<div class=bar><span>{html.escape(p)}</span><i style='width:{40 * n / peak:.0f}ch'></i> {n}</div>"
        for p, n in counts.most_common()
    )
    return f"""<!doctype html><html lang=en><head><meta charset=utf-8><title>optout demo report</title>
<style>body{{font:15px system-ui,sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}}
tr.no td:first-child{{color:#b00020;font-weight:600}}tr.ok td:first-child{{color:#0a7d28;font-weight:600}}
.bar span{{display:inline-block;width:10em}}.bar i{{display:inline-block;height:.9em;background:#4a6fa5}}</style>
</head><body><h1>Opt-outs honoured</h1>
<p>Purpose <b>{policy.purpose.value}</b>, agent <b>{html.escape(policy.agent)}</b>, mode <b>{policy.mode.value}</b>:
{sum(not d.allowed for d in decisions)} of {len(decisions)} URLs reserved.</p>
<h2>By protocol</h2>{bars}
<h2>Decisions</h2><table><tr><th>verdict</th><th>site</th><th>path</th><th>why</th></tr>{"".join(rows)}</table>
</body></html>"""
