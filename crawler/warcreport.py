"""The report.html of ``optout filter``: the crawl report's page (crawler/report.py: its styles, cards, protocol
chart and site table) filled with what a filter run decided. Every number comes from summary.json and names its
place there (``data-key``)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from crawler.report import (
    CSS,
    FILTER_JS,
    card,
    esc,
    num,
    problems_block,
    protocol_chart,
    protocol_legend,
    sites_table,
)


@dataclass
class FilterSiteRow:
    """One origin in the site table (the attributes the crawl report's rows have)."""

    origin: str
    label: str = ""
    stored: int = 0  # responses kept
    refused: int = 0  # responses excluded
    errors: int = 0  # responses skipped (truncated, malformed)
    protocols: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    records: list[dict[str, Any]] = field(default_factory=list)
    more_records: int = 0


def render_filter_report(summary: dict[str, Any], rows: list[FilterSiteRow]) -> str:
    problems = [f["error"] for f in summary.get("files", []) if f.get("error")]
    problems += list(summary.get("problems") or []) + list(summary.get("registry_errors") or [])
    problem_html = problems_block(problems)
    files = ", ".join(str(f.get("path")) for f in summary.get("files", []))
    meta = (
        f'<p class="meta">Purpose <b>{esc(summary.get("purpose"))}</b> · agent <b>{esc(summary.get("agent"))}</b> · '
        f"mode <b>{esc(summary.get('mode'))}</b> · site policy <b>{esc(summary.get('site_policy'))}</b></p>"
        f'<p class="meta">WARC files: <code>{esc(files)}</code></p>'
    )
    cards = "".join(
        [
            card(summary.get("kept", 0), "responses kept (allowed for the purpose)", "kept", "ok"),
            card(summary.get("excluded", 0), "responses excluded", "excluded", "no"),
            card(summary.get("skipped", 0), "records skipped (truncated, malformed)", "skipped"),
            card(summary.get("responses", 0), "responses read", "responses"),
            card(summary.get("records", 0), "WARC records read", "records"),
            card(summary.get("origins", 0), "origins", "origins"),
            card(summary.get("policy_requests", 0), "policy files requested", "policy_requests"),
            card(summary.get("registry_records", 0), "registry records", "registry_records"),
        ]
    )
    by_protocol = summary.get("by_protocol", {})
    table = sites_table(
        rows,  # type: ignore[arg-type]
        ("kept", "excluded", "skipped"),
        placeholder="filter sites or protocols",
        empty="No response record was judged.",
    )
    data = json.dumps(summary, sort_keys=True).replace("<", "\\u003c")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>optout filter report</title><style>{CSS}</style></head><body><main>
<h1>Web archive filter report</h1>{meta}{problem_html}
<div class="cards">{cards}</div>
<section><h2>Opt-outs honoured, by protocol</h2>{protocol_chart(by_protocol)}
<div class="legend">{protocol_legend(by_protocol)}</div></section>
<h2>Sites</h2>{table}
<footer>Written by <code>optout filter</code>. The kept records are in <code>kept.warc.gz</code>, every response
record's decision in <code>decisions.jsonl</code>, these totals ({num(summary.get("responses", 0))} responses) in
<code>summary.json</code>.</footer>
</main><script type="application/json" id="summary">{data}</script><script>{FILTER_JS}</script></body></html>
"""
