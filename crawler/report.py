"""The crawl report: one self-contained HTML file a compliance officer can open offline.

Everything is inline (styles, the two SVG charts, a few lines of script for the site filter that the page does
not need to be read), so the file can be mailed or archived on its own; the only links go to the evidence copies
beside it (``evidence/<sha256>.<ext>``). Every number in it is taken from the same dict that is written to
summary.json, and carries ``data-key`` naming its place there, so a test (or an auditor) can check one against the
other. It stays usable for large crawls: the site table is a CSS grid whose rows off screen are not laid out
(``content-visibility``), so 10,000 sites open in a couple of seconds, with a filter box.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crawler.runsummary import SiteRow

COLOURS = {
    "robots": "#4e79a7",
    "tdmrep": "#f28e2b",
    "content-usage": "#e15759",
    "content-signal": "#76b7b2",
    "robots-tag": "#59a14f",
    "ai-txt": "#c9a227",
    "rsl": "#b07aa1",
    "iptc": "#ff9da7",
    "c2pa": "#9c755f",
    "access": "#7f7f7f",
    "blocklist": "#222222",
    "fetch": "#d37295",
}
WHAT = {
    "robots": "robots.txt disallows the crawler (or, for training, well-known AI crawlers)",
    "tdmrep": "TDMRep reservation (tdmrep.json, header, meta, EPUB/PDF metadata)",
    "content-usage": "IETF AI preferences (Content-Usage)",
    "content-signal": "Cloudflare Content-Signal",
    "robots-tag": "X-Robots-Tag or robots meta: noai, noimageai, noindex",
    "ai-txt": "Spawning ai.txt",
    "rsl": "RSL licence terms",
    "iptc": "IPTC plus:DataMining in image metadata",
    "c2pa": "C2PA / CAWG training-mining assertion",
    "access": "401/402/403/451, login wall or paywall: never circumvented",
    "blocklist": "domain on the operator's blocklist",
    "fetch": "a policy file could not be fetched: the safe answer is no",
}
BUCKETS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 6 * 3600, 86400, 7 * 86400)
# Opt-outs honoured within less than this many seconds are not charted over time: a few seconds of crawling cut
# into one-second columns shows only when each request happened to finish.
MIN_CHART_SPAN = 120

CSS = """
:root{--fg:#1d2330;--muted:#5b6475;--line:#dde1e8;--bg:#f6f7f9;--ok:#0a7d28;--no:#b00020}
*{box-sizing:border-box}body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
margin:0;background:#fff}main{max-width:78em;margin:0 auto;padding:1.5em 2em 4em}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.2em;margin:2em 0 .6em;border-bottom:1px solid var(--line);
padding-bottom:.3em}.meta{color:var(--muted);margin:.2em 0}.meta b{color:var(--fg);font-weight:600}
.cards{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:.8em;margin:1.2em 0}
@media (max-width:700px){.cards{grid-template-columns:repeat(2,minmax(0,1fr))}}
.card{background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:.7em .9em}
.card .n{font-size:1.7em;font-weight:650;font-variant-numeric:tabular-nums}.card .l{color:var(--muted);font-size:.9em}
.card.no .n{color:var(--no)}.card.ok .n{color:var(--ok)}
.problems{background:#fdecee;border:1px solid #f3b5bd;color:#7a0016;border-radius:8px;padding:.6em 1em}
.charts{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1.3fr);gap:1.5em}
@media (max-width:900px){.charts{grid-template-columns:1fr}}
svg{width:100%;height:auto;display:block}svg text{font:12px system-ui,sans-serif;fill:var(--fg)}
svg .axis{fill:var(--muted)}.legend{display:flex;flex-wrap:wrap;gap:.3em .9em;font-size:.85em;margin-top:.4em}
.chip{display:inline-block;padding:0 .45em;border-radius:4px;color:#fff;font-size:.8em;font-weight:600;
white-space:nowrap;margin:0 .2em .2em 0}.sw{display:inline-block;width:.8em;height:.8em;border-radius:2px;
margin-right:.3em;vertical-align:-.05em}
.sites{overflow-x:auto}.gr{display:grid;grid-template-columns:minmax(11em,2fr) 5em 5em 5em minmax(8em,1.6fr)
minmax(10em,2.8fr);border-bottom:1px solid var(--line);min-width:46em}
.gr>div{padding:.35em .5em;min-width:0}.gr.head{background:var(--bg);font-weight:600;position:sticky;top:0;z-index:1}
.rows>.gr{content-visibility:auto;contain-intrinsic-size:auto 4.4em}
.num{text-align:right;font-variant-numeric:tabular-nums}
.rule{font-size:.9em}.label{display:block;color:var(--muted);font-size:.85em}.more{font-size:.85em;color:#2b5aa8}
.gr>details{grid-column:1/-1;padding:0 .5em .4em}
details summary{cursor:pointer;color:#2b5aa8;font-size:.9em}details ul{margin:.4em 0;padding-left:1.1em;
font-size:.85em}details li{margin-bottom:.35em}details h3{font-size:.9em;margin:.5em 0 .2em}
code,pre{font:12.5px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}pre{background:var(--bg);
border:1px solid var(--line);padding:.7em;border-radius:6px;overflow-x:auto;white-space:pre-wrap;
overflow-wrap:anywhere}.note{color:var(--muted)}
.filter{margin:.3em 0 .8em;display:flex;gap:.8em;align-items:center;color:var(--muted)}
.filter input{font:inherit;padding:.3em .5em;border:1px solid var(--line);border-radius:6px;min-width:20em}
.empty{color:var(--muted);font-style:italic}footer{margin-top:3em;color:var(--muted);font-size:.9em}
"""

FILTER_JS = """
(function(){var box=document.getElementById('site-filter');if(!box)return;var rows=document.querySelectorAll(
'#sites .rows>.gr');var shown=document.getElementById('sites-shown');box.addEventListener('input',function(){
var q=box.value.toLowerCase(),n=0;for(var i=0;i<rows.length;i++){var ok=!q||rows[i].getAttribute('data-find')
.indexOf(q)>=0;rows[i].style.display=ok?'':'none';if(ok)n++}shown.textContent=n.toLocaleString('en')})})();
document.addEventListener('click',function(e){var a=e.target.closest&&e.target.closest('a.more');if(!a)return;
var t=document.getElementById(a.getAttribute('href').slice(1));var d=t&&t.closest('details');if(d)d.open=true});
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


_BREAK_AFTER = re.compile(r"(?<=[/.?&=_:;,-])(?=\S)")


def brk(value: Any) -> str:
    """Escaped text that may wrap after its punctuation (``<wbr>``): a long URL or rule breaks between its parts,
    never inside a word."""
    return "<wbr>".join(esc(part) for part in _BREAK_AFTER.split("" if value is None else str(value)))


def num(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else esc(value)


def colour(protocol: str) -> str:
    return COLOURS.get(protocol, "#6b6b8f")


def chip(protocol: str, count: int | None = None) -> str:
    label = esc(protocol) + (f" {count:,}" if count is not None else "")
    return (
        f'<span class="chip" style="background:{colour(protocol)}" title="{esc(WHAT.get(protocol, ""))}">{label}</span>'
    )


def card(value: Any, label: str, key: str, kind: str = "") -> str:
    return (
        f'<div class="card {kind}"><div class="n" data-key="{esc(key)}">{num(value)}</div>'
        f'<div class="l">{esc(label)}</div></div>'
    )


# -- charts --------------------------------------------------------------------------------------------------


def protocol_chart(by_protocol: dict[str, int]) -> str:
    """Horizontal bars, one per protocol, longest first."""
    if not by_protocol:
        return '<p class="empty">No opt-out had to be honoured.</p>'
    items = sorted(by_protocol.items(), key=lambda kv: (-kv[1], kv[0]))
    peak = max(v for _, v in items) or 1
    bar_h, gap, left, width = 22, 8, 120, 560
    height = len(items) * (bar_h + gap) + gap
    parts = [f'<svg id="chart-protocols" viewBox="0 0 {width} {height}" role="img" aria-label="opt-outs by protocol">']
    for i, (protocol, count) in enumerate(items):
        y = gap + i * (bar_h + gap)
        w = max(2.0, (width - left - 70) * count / peak)
        parts.append(
            f'<text x="{left - 8}" y="{y + bar_h * 0.7:.1f}" text-anchor="end">{esc(protocol)}</text>'
            f'<rect class="bar" data-protocol="{esc(protocol)}" data-count="{count}" x="{left}" y="{y}" '
            f'width="{w:.1f}" height="{bar_h}" rx="3" fill="{colour(protocol)}"><title>{esc(protocol)}: {count:,} '
            f"({esc(WHAT.get(protocol, ''))})</title></rect>"
            f'<text x="{left + w + 6:.1f}" y="{y + bar_h * 0.7:.1f}">{count:,}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _bucket(span: float) -> int:
    for size in BUCKETS:
        if span / size <= 48:
            return size
    return BUCKETS[-1]


def _when(ts: float, size: int) -> str:
    moment = datetime.fromtimestamp(ts, timezone.utc)
    if size >= 86400:
        return moment.strftime("%Y-%m-%d")
    if size >= 60:
        return moment.strftime("%m-%d %H:%M")
    return moment.strftime("%H:%M:%S")


def time_chart(events: list[tuple[float, str]]) -> str:
    """Stacked columns: opt-outs honoured per time bucket, coloured by protocol (bucket size adapts to the span)."""
    timed = [(t, p) for t, p in events if t > 0]
    if not timed:
        return '<p class="empty">Nothing to chart yet.</p>'
    first, last = timed[0][0], timed[-1][0]
    if last - first < MIN_CHART_SPAN:
        return (
            f'<p class="empty" id="chart-time-note">All {len(timed):,} opt-outs were honoured within '
            f"{last - first:.0f} s ({esc(_when(first, 1))} to {esc(_when(last, 1))} UTC): too short a crawl to chart "
            f"over time (the chart appears for crawls spanning {MIN_CHART_SPAN // 60} minutes or more).</p>"
        )
    size = _bucket(last - first)
    start = math.floor(first / size) * size
    count = int((last - start) // size) + 1
    buckets: list[Counter[str]] = [Counter() for _ in range(count)]
    for t, p in timed:
        buckets[min(count - 1, int((t - start) // size))][p] += 1
    protocols = sorted({p for _, p in timed}, key=lambda p: list(COLOURS).index(p) if p in COLOURS else 99)
    peak = max(sum(b.values()) for b in buckets) or 1
    width, height, left, bottom, top = 640, 230, 44, 26, 10
    plot_w, plot_h = width - left - 8, height - bottom - top
    col = plot_w / count
    parts = [f'<svg id="chart-time" viewBox="0 0 {width} {height}" role="img" aria-label="opt-outs over time">']
    for tick in sorted({0, peak // 2, peak}):
        y = top + plot_h * (1 - tick / peak)
        parts.append(
            f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dde1e8"/>'
            f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:,}</text>'
        )
    for i, bucket in enumerate(buckets):
        y = top + plot_h
        for p in protocols:
            n = bucket.get(p, 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            parts.append(
                f'<rect class="bar" x="{left + i * col + col * 0.12:.1f}" y="{y:.1f}" '
                f'width="{max(1.0, col * 0.76):.1f}" '
                f'height="{h:.1f}" fill="{colour(p)}"><title>{esc(_when(start + i * size, size))}: {esc(p)} {n:,}'
                "</title></rect>"
            )
    parts.append(
        f'<text class="axis" x="{left}" y="{height - 6}">{esc(_when(start, size))}</text>'
        f'<text class="axis" x="{width - 8}" y="{height - 6}" text-anchor="end">'
        f"{esc(_when(start + (count - 1) * size, size))} (per {_span(size)})</text></svg>"
    )
    legend = "".join(f'<span><i class="sw" style="background:{colour(p)}"></i>{esc(p)}</span>' for p in protocols)
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _span(seconds: int) -> str:
    for unit, size in (("week", 7 * 86400), ("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}" if n > 1 else unit
    return f"{seconds} s"


# -- sites ---------------------------------------------------------------------------------------------------


def _records(row: SiteRow, n: int) -> str:
    """The row's full-width second line: every rule that applied (with counts) and the registry records behind
    them with their evidence, folded."""
    if not row.records and not row.rules:
        return ""
    rules = "".join(
        f"<li>{chip(rule.split(': ', 1)[0])} {brk(rule.split(': ', 1)[-1])} <i>× {count:,}</i></li>"
        for rule, count in row.rules.most_common()
    )
    items = []
    for r in row.records:
        evidence = ""
        sha = r.get("evidence_sha256")
        if sha and r.get("evidence_path"):
            evidence = f' <a href="{esc(r["evidence_path"])}">evidence {esc(sha[:12])}</a>'
        elif sha:
            evidence = f" <span>evidence {esc(sha[:12])}</span>"
        source = f' <span class="label">source: {brk(r.get("source"))}</span>' if r.get("source") else ""
        where = f' <span class="note">({esc(r["where"])})</span>' if r.get("where") else ""
        items.append(
            f"<li>{chip(str(r.get('protocol')))}{where} <code>{brk(r.get('url'))}</code> — {brk(r.get('rule'))} "
            f"<i>({brk(r.get('decision'))}, record #{esc(r.get('index'))})</i>{evidence}{source}</li>"
        )
    more = f"<li>… and {row.more_records:,} more in the registry</li>" if row.more_records else ""
    total = len(row.records) + row.more_records
    plural = "s" if total != 1 else ""
    rule_count = len(row.rules)
    parts = [f'<h3 id="rules-{n}">Rules that applied</h3><ul>{rules}</ul>'] if rules else []
    if total:
        parts.append(f"<h3>Registry records and evidence</h3><ul>{''.join(items)}{more}</ul>")
    summary = f"{rule_count:,} rule{'s' if rule_count != 1 else ''}" + (
        f", {total:,} registry record{plural} and evidence" if total else ""
    )
    return f"<details><summary>{summary}</summary>{''.join(parts)}</details>"


def site_rows(rows: Iterable[SiteRow]) -> str:
    out = []
    for n, row in enumerate(rows):
        chips = "".join(chip(p, c) for p, c in row.protocols.most_common())
        rule = ""
        if row.rules:
            top, _ = row.rules.most_common(1)[0]
            others = len(row.rules) - 1
            rule = brk(top) + (
                f' <a class="more" href="#rules-{n}">+{others} other rule{"s" if others > 1 else ""}</a>'
                if others
                else ""
            )
        label = f'<span class="label">{esc(row.label)}</span>' if row.label else ""
        find = f"{row.origin} {row.label} {' '.join(row.protocols)}".lower()
        out.append(
            f'<div class="gr" role="row" data-find="{esc(find)}"><div role="cell" class="site">{brk(row.origin)}'
            f'{label}</div><div role="cell" class="num">{row.stored:,}</div><div role="cell" class="num">'
            f'{row.refused:,}</div><div role="cell" class="num">{row.errors:,}</div><div role="cell">{chips}</div>'
            f'<div role="cell" class="rule">{rule}</div>{_records(row, n)}</div>'
        )
    return "".join(out)


# -- the page ------------------------------------------------------------------------------------------------


def registry_section(reg: dict[str, Any]) -> str:
    if not reg.get("url"):
        return '<p class="empty">Recording was off for this crawl: no registry.</p>'
    if reg.get("error"):
        return f'<p class="problems">{esc(reg["error"])}</p>'
    url = str(reg.get("url"))
    vkey = str(reg.get("vkey") or "")
    example = next(iter(reg.get("by_site") or {}), "SITE")
    return (
        f'<p>Backend <code>{esc(url)}</code>: <b data-key="registry.records">{num(reg.get("records", 0))}</b> records '
        f'from this crawl; the signed tree has <b data-key="registry.tree_size">{num(reg.get("tree_size", 0))}</b> '
        f"entries. Every record links its evidence by SHA-256, and every record is covered by this checkpoint:</p>"
        f'<pre id="checkpoint">{esc(reg.get("checkpoint") or "(no checkpoint yet)")}</pre>'
        f'<p>Verifier key (publish it, e.g. with <code>optout disclose</code>; holders pin it):</p><pre id="vkey">'
        f"{esc(vkey)}</pre><p>A rights holder's bundle, verifiable offline without trusting this operator:</p><pre>"
        f"optout registry export --registry {esc(url)} --site {esc(example)} --out bundle-{esc(example)}\n"
        f"optout registry verify bundle-{esc(example)} --vkey '{esc(vkey)}'</pre>"
    )


def problems_block(problems: list[str]) -> str:
    """The red box listing what went wrong, or nothing."""
    if not problems:
        return ""
    return (
        '<div class="problems" id="problems"><b>Problems</b><ul>'
        + "".join(f"<li>{esc(p)}</li>" for p in problems)
        + "</ul></div>"
    )


def protocol_legend(by_protocol: dict[str, int]) -> str:
    """What each protocol in the chart is, in the chart's colours."""
    return "".join(
        f'<span><i class="sw" style="background:{colour(p)}"></i>{esc(p)}: {esc(WHAT[p])}</span>'
        for p in by_protocol
        if p in WHAT
    )


def sites_table(rows: list[SiteRow], counts: tuple[str, str, str], *, placeholder: str, empty: str) -> str:
    """The filterable site table: one row per origin, with the three count columns named by ``counts``."""
    if not rows:
        return f'<p class="empty">{esc(empty)}</p>'
    count = len(rows)
    heads = "".join(f'<div role="columnheader" class="num">{esc(name)}</div>' for name in counts)
    return (
        f'<div class="filter"><input id="site-filter" type="search" placeholder="{esc(placeholder)}" '
        f'aria-label="filter sites"><span><span id="sites-shown">{count:,}</span> of {count:,} '
        'shown</span></div><div id="sites" class="sites" role="table" aria-label="sites"><div class="gr head" '
        f'role="row"><div role="columnheader">site (origin)</div>{heads}'
        '<div role="columnheader">opt-outs honoured</div><div role="columnheader">rule that applied (most '
        "frequent)</div></div>"
        f'<div class="rows" role="rowgroup">{site_rows(rows)}</div></div>'
    )


def render_report(summary: dict[str, Any], rows: list[SiteRow], events: list[tuple[float, str]]) -> str:
    pages = summary.get("pages", {})
    honoured = summary.get("honoured", {})
    reg = summary.get("registry", {})
    problems = list(summary.get("problems") or [])
    expected = honoured.get("total", 0)
    if reg.get("url") and not reg.get("error") and reg.get("records", 0) != expected:
        problems.append(
            f"the registry holds {reg.get('records', 0):,} records for this crawl but {expected:,} opt-outs were "
            "honoured: see crawl.log"
        )
    unreachable = summary.get("unreachable_seeds") or {}
    if unreachable:
        listed = "; ".join(f"{u} ({why})" for u, why in list(unreachable.items())[:5])
        problems.append(f"{len(unreachable):,} seed(s) could not be crawled: {listed}")
    problem_html = problems_block(problems)
    meta = (
        f'<p class="meta">Purpose <b>{esc(summary.get("purpose"))}</b> · agent <b>{esc(summary.get("agent"))}</b> · '
        f"mode <b>{esc(summary.get('mode'))}</b> · {num(summary.get('runs', 0))} run(s), "
        f"{esc(summary.get('started_at'))} → {esc(summary.get('finished_at'))} "
        f"({esc(summary.get('finish_reason'))})</p>"
        f'<p class="meta">User-Agent <code>{esc(summary.get("user_agent"))}</code></p>'
    )
    cards = "".join(
        [
            card(pages.get("stored", 0), "pages stored (allowed for the purpose)", "pages.stored", "ok"),
            card(pages.get("refused", 0), "URLs refused", "pages.refused", "no"),
            card(pages.get("not_fetched", 0), "never fetched", "pages.not_fetched"),
            card(pages.get("fetched_not_stored", 0), "fetched, not stored", "pages.fetched_not_stored"),
            card(expected, "opt-outs honoured", "honoured.total", "no"),
            card(summary.get("origins", 0), "origins", "origins"),
            card(pages.get("http_errors", 0) + pages.get("errors", 0), "fetch errors", "pages.failed"),
            card(summary.get("pages_per_second", 0), "responses per second", "pages_per_second"),
        ]
    )
    table = sites_table(
        rows,
        ("stored", "refused", "errors"),
        placeholder="filter sites, labels or protocols",
        empty="No site was crawled.",
    )
    data = json.dumps(summary, sort_keys=True).replace("<", "\\u003c")  # no tag can open or close in it
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>optout crawl report</title><style>{CSS}</style></head><body><main>
<h1>Compliant crawl report</h1>{meta}{problem_html}
<div class="cards">{cards}</div>
<div class="charts"><section><h2>Opt-outs honoured, by protocol</h2>{protocol_chart(honoured.get("by_protocol", {}))}
<div class="legend">{protocol_legend(honoured.get("by_protocol", {}))}</div></section>
<section><h2>Opt-outs honoured, over time</h2>{time_chart(events)}</section></div>
<h2>Sites</h2>{table}
<h2>Registry checkpoint</h2>{registry_section(reg)}
<footer>Written by <code>optout crawl</code>. The items are in <code>items.jsonl</code>, every URL's outcome in
<code>decisions.jsonl</code>, these totals in <code>summary.json</code>.</footer>
</main><script type="application/json" id="summary">{data}</script><script>{FILTER_JS}</script></body></html>
"""
