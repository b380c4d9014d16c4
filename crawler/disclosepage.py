"""The disclosure page's files as text: the HTML page and the Atom feed, from the facts ``optout disclose`` gathers
(crawler/disclose.py). Rendering only: nothing here reads settings or writes files."""

from __future__ import annotations

import hashlib
import html
import json
from typing import Any

from crawler.outfiles import utc

PLACEHOLDER_IP = "not published yet: set OPTOUT_IP_RANGES to the address ranges the crawler connects from"


def _text(value: Any, placeholder: str) -> str:
    if not value:
        return f'<span class="todo">{html.escape(placeholder)}</span>'
    text = html.escape(str(value))
    if str(value).startswith(("http://", "https://")):
        return f'<a href="{text}">{text}</a>'
    if "@" in str(value) and " " not in str(value):
        return f'<a href="mailto:{text}">{text}</a>'
    return text


def render_html(data: dict[str, Any], warnings: list[str]) -> str:
    esc = html.escape
    crawler = data["crawler"]
    rows = "".join(
        f"<tr><td><code>{esc(p['id'])}</code></td><td>{'yes' if p['honoured'] else '<b>switched off</b>'}</td>"
        f"<td>{esc(p['reads'])}</td><td>{esc(p['acts'])}</td></tr>"
        for p in data["protocols"]
    )
    purposes = "".join(f"<li><code>{esc(p['id'])}</code>: {esc(p['description'])}</li>" for p in data["purposes"])
    tokens = ", ".join(f"<code>{esc(t)}</code>" for t in crawler["tokens"])
    groups = "\n\n".join(f"User-agent: {t}\nDisallow: /" for t in crawler["tokens"])
    ranges = (
        "".join(f"<li><code>{esc(r)}</code></li>" for r in data["ip_ranges"])
        if data["ip_ranges"]
        else f'<li><span class="todo">{esc(PLACEHOLDER_IP)}</span></li>'
    )
    reg = data["registry"]
    if reg:
        registry = (
            f'<p>Verifier key (pin it):</p><pre id="vkey">{esc(reg["vkey"] or "")}</pre>'
            f"<p>Latest signed checkpoint ({reg['tree_size']:,} records):</p>"
            f'<pre id="checkpoint">{esc(reg["checkpoint"] or "(none yet)")}</pre>'
        )
    else:
        registry = '<p><span class="todo">No registry yet: run a crawl first, then publish this page again.</span></p>'
    banner = (
        '<div class="warn"><b>Fill in before publishing:</b><ul>'
        + "".join(f"<li>{esc(w)}</li>" for w in warnings)
        + "</ul></div>"
        if warnings
        else ""
    )
    blocklist = "yes" if data["blocklist"]["used"] else "no blocklist configured"
    user_agents = "".join(f"<pre>{esc(ua)}</pre>" for ua in crawler["user_agents"][1:])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(", ".join(crawler["tokens"]))}: about this crawler</title>
<link rel="alternate" type="application/atom+xml" title="Changes to this page" href="feed.atom">
<link rel="alternate" type="application/json" href="crawler.json">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:52em;margin:2em auto;padding:0 1.2em;color:#1d2330}}
code,pre{{font:14px ui-monospace,Menlo,Consolas,monospace}}h1 code{{font-size:inherit}}
pre{{background:#f6f7f9;border:1px solid #dde1e8;padding:.7em;border-radius:6px;white-space:pre-wrap;
word-break:break-all}}
table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #dde1e8;padding:.35em .5em;text-align:left;vertical-align:top}}
.todo{{color:#8a4b00;background:#fff4e0;padding:0 .3em}}.warn{{background:#fff4e0;border:1px solid #f0c36d;
padding:.2em 1em;border-radius:6px}}</style></head><body>
<h1>About our crawler: {tokens}</h1>{banner}
<p>Operated by <b>{esc(data["operator"])}</b>. It honours copyright and AI opt-outs as described below and keeps a
verifiable record of every opt-out it honoured.</p>
<h2>How to recognise it</h2>
<p>robots.txt token(s): {tokens}. User-Agent string (its comment states the crawl's purpose):</p>
<pre id="user-agent">{esc(crawler["user_agent"])}</pre>{user_agents}
<p>IP address ranges it connects from:</p><ul>{ranges}</ul>
{render_signing(data["signing"])}
<h2>What it collects content for</h2><ul>{purposes}</ul>
<p>{esc(data["purpose_request_header"])}</p>
<p>Mode <code>{esc(data["mode"]["id"])}</code>: {esc(data["mode"]["description"])}.</p>
<h2>How to opt out</h2>
<p>Any of the protocols below works. For example, to keep it off your whole site, add to robots.txt:</p>
<pre>{esc(groups)}</pre>
<table><tr><th>protocol</th><th>honoured</th><th>what is read</th><th>what the crawler does</th></tr>{rows}</table>
<p>{esc(data["reserved_content"])} Blocklist of domains never crawled: {blocklist}.</p>
<h2>Contact and complaints</h2>
<p>Point of contact: {_text(data["contact"], "not set: OPTOUT_CONTACT")}<br>
Complaints: {_text(data["complaints"], "not set: OPTOUT_COMPLAINTS")}</p>
<p>{esc(data["rights_holders"])}</p>
<h2>Registry of honoured opt-outs</h2>{registry}
<p>Changes to this page: <a href="feed.atom">Atom feed</a> ·
machine-readable: <a href="crawler.json">crawler.json</a></p>
</body></html>
"""


def _when(ts: int | None) -> str:
    return "" if ts is None else utc(ts)


def render_signing(signing: dict[str, Any] | None) -> str:
    """The page's section on Web Bot Auth: which keys sign our requests and how a site checks a request."""
    esc = html.escape
    if not signing:
        return "<p>Its requests are not signed (Web Bot Auth): set OPTOUT_SIGNING_KEY to sign them.</p>"
    rows = "".join(
        f"<tr><td><code>{esc(k['kid'])}</code></td><td>{esc(k['status'])}</td><td>{esc(_when(k['listed_since']))}"
        f"</td><td>{esc(_when(k['listed_until']) or 'while in use')}</td></tr>"
        for k in signing["keys"]
    )
    covered = " ".join(f"<code>{esc(c)}</code>" for c in signing["covered_components"])
    return f"""<h3 id="signatures">Signed requests (Web Bot Auth)</h3>
<p>Every request it makes, robots.txt and the other policy files included, carries an HTTP Message Signature
(RFC 9421, {esc(signing["algorithm"])}, <code>tag="{esc(signing["tag"])}"</code>) covering {covered}, valid for
{signing["signature_lifetime"]} seconds, and the header
<code>Signature-Agent: {esc(signing["signature_agent_header"])}</code>.
The keys are published at <a href="{esc(signing["directory"])}">{esc(signing["directory"])}</a>
(<code>{esc(signing["media_type"])}</code>, itself signed with each key). A retired key stays listed until the last
signature it made has expired.</p>
<table id="signing-keys"><tr><th>key id (JWK thumbprint)</th><th>status</th><th>listed since</th><th>listed until</th>
</tr>{rows}</table>
<p>To check a request from your logs: <code>{esc(signing["verify"])}</code></p>"""


def content_hash(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def render_feed(history: list[dict[str, Any]], info_url: str, title: str) -> str:
    esc = html.escape
    base = info_url or "urn:optout:crawler"
    entries = "".join(
        f"<entry><id>{esc(base)}#{esc(h['sha256'][:16])}</id><title>Crawler information updated</title>"
        f'<updated>{esc(h["updated"])}</updated><link href="{esc(base)}"/>'
        f"<summary>{esc(h['summary'])}</summary></entry>"
        for h in reversed(history)
    )
    updated = history[-1]["updated"] if history else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<id>{esc(base)}</id><title>{esc(title)}</title><updated>{esc(updated)}</updated>{entries}</feed>\n"
    )
