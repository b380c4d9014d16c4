"""The summary and report of a crawl, computed from its output folder (items, decisions, run.json) and its
registry: per-site rows, the totals of summary.json, the evidence copies the report links to."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from crawler.outfiles import (
    DECISIONS,
    EVIDENCE,
    ITEMS,
    LOG,
    REPORT,
    RUN,
    SUMMARY,
    SUMMARY_FORMAT,
    count_lines,
    read_lines,
    utc,
    write_atomic,
)
from crawler.spiders.compliant import site_of
from middlewares.engine import origin_of

logger = logging.getLogger(__name__)


REFUSED = ("not_fetched", "fetched_not_stored")
RECORDS_PER_SITE = 25  # records listed per site in the report (all of them are in the registry)


# -- summary and report --------------------------------------------------------------------------------------


@dataclass
class SiteRow:
    """One origin in the report: what was stored, refused and why, and the registry records behind it."""

    origin: str
    site: str = ""
    label: str = ""
    stored: int = 0
    not_fetched: int = 0
    fetched_not_stored: int = 0
    errors: int = 0
    protocols: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    records: list[dict[str, Any]] = field(default_factory=list)
    more_records: int = 0

    @property
    def refused(self) -> int:
        return self.not_fetched + self.fetched_not_stored


def origin_key(url: str) -> str:
    """scheme://host[:port] without the default port, so registry URLs (normalised) and crawl URLs agree."""
    origin = origin_of(url)
    for scheme, port in (("http://", ":80"), ("https://", ":443")):
        if origin.startswith(scheme) and origin.endswith(port):
            return origin[: -len(port)]
    return origin


def collect(
    out: Path, run: dict[str, Any], labels: dict[str, str] | None = None
) -> tuple[dict[str, Any], list[SiteRow], list[tuple[float, str]]]:
    """Totals (summary.json), the per-site rows and the (time, protocol) of every honoured opt-out, from the
    files themselves, so a resumed crawl's summary covers all its runs."""
    sites: dict[str, SiteRow] = {}
    honoured: Counter[str] = Counter()
    by_decision: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    events: list[tuple[float, str]] = []
    seeds = set(run.get("seeds", []))
    seed_problems: dict[str, str] = {}
    for event in read_lines(out / DECISIONS):
        url = str(event.get("url", ""))
        if not url.startswith(("http://", "https://")):
            continue
        key = origin_key(str(event.get("final_url") or url))
        row = sites.get(key)
        if row is None:
            host = urlsplit(key).hostname or ""
            row = sites[key] = SiteRow(key, site=site_of(host), label=(labels or {}).get(key, ""))
        outcome = str(event.get("outcome", ""))
        outcomes[outcome] += 1
        if outcome == "stored":
            row.stored += 1
        elif outcome in REFUSED:
            setattr(row, outcome, getattr(row, outcome) + 1)
            by_decision[outcome] += len(event.get("reservations", ()))
            for r in event.get("reservations", ()):
                protocol = str(r.get("protocol"))
                honoured[protocol] += 1
                row.protocols[protocol] += 1
                row.rules[f"{protocol}: {r.get('rule', '')}"] += 1
                events.append((float(event.get("at", 0) or 0), protocol))
        else:
            row.errors += 1
        if url in seeds:
            problem = unreachable(event)
            if problem:
                seed_problems[url] = problem
    stored = count_lines(out / ITEMS)
    registry = registry_facts(run, sites)
    runs = run.get("runs", [])
    last = runs[-1] if runs else {}
    elapsed = sum(float(r.get("elapsed_seconds", 0) or 0) for r in runs)
    responses = sum(int(r.get("responses", 0) or 0) for r in runs)
    problems = [r["error"] for r in runs if r.get("error")]
    if registry.get("errors"):
        problems.append(f"{registry['errors']} registry error(s): see crawl.log")
    summary: dict[str, Any] = {
        "format": SUMMARY_FORMAT,
        "generated_at": utc(),
        "purpose": run.get("purpose"),
        "agent": run.get("agent"),
        "mode": run.get("mode"),
        "user_agent": run.get("user_agent"),
        "seeds": len(seeds),
        "runs": len(runs),
        "started_at": runs[0].get("started_at") if runs else None,
        "finished_at": last.get("finished_at"),
        "finish_reason": last.get("reason"),
        "elapsed_seconds": round(elapsed, 3),
        "responses": responses,
        "pages_per_second": round(responses / elapsed, 2) if elapsed else 0.0,
        "pages": {
            "stored": stored,
            "refused": outcomes["not_fetched"] + outcomes["fetched_not_stored"],
            "not_fetched": outcomes["not_fetched"],
            "fetched_not_stored": outcomes["fetched_not_stored"],
            "http_errors": outcomes["http_error"],
            "errors": outcomes["error"],
        },
        "origins": len(sites),
        "sites": len({row.site for row in sites.values()}),
        "honoured": {
            "total": sum(honoured.values()),
            "by_protocol": dict(honoured.most_common()),
            "by_decision": dict(sorted(by_decision.items())),
        },
        "registry": registry,
        "last_run": {k: last.get(k, 0) for k in ("stored", "refused", "failed", "responses")},
        "unreachable_seeds": dict(sorted(seed_problems.items())),
        "problems": problems,
        "files": {name: name for name in (ITEMS, DECISIONS, RUN, SUMMARY, REPORT, LOG)},
    }
    return summary, sorted(sites.values(), key=lambda r: (-r.refused, -r.stored, r.origin)), sorted(events)


def unreachable(event: dict[str, Any]) -> str | None:
    """Why a URL could not be crawled at all, if it could not: no HTTP answer for the page or for its site's
    robots.txt (which fails closed: recorded as an honoured opt-out, and still worth telling the user), or an
    HTTP error. A robots.txt answering 5xx or a reservation is a site's answer, not a failure to reach it."""
    outcome = event.get("outcome")
    if outcome == "error":
        return str(event.get("error") or "no answer")
    if outcome == "http_error":
        return f"HTTP {event.get('status')}"
    for r in event.get("reservations", ()):
        if r.get("protocol") == "fetch" and r.get("value") == "no response":
            return str(r.get("rule"))
    return None


def registry_facts(run: dict[str, Any], sites: dict[str, SiteRow]) -> dict[str, Any]:
    """The registry's side: records of this crawl (counted, and attached to their sites), the signed
    checkpoint and the public key. Records from before the first run (a shared registry) are left out."""
    url = run.get("registry_url")
    facts: dict[str, Any] = {"url": url, "records": 0}
    runs = run.get("runs", [])
    facts["errors"] = sum(int(r.get("registry_errors", 0) or 0) for r in runs)
    if not url:
        facts["note"] = "recording was off"
        return facts
    from optout_registry.errors import RegistryError
    from optout_registry.registry import Registry
    from optout_registry.vocabulary import describe, rule_text

    start = int(run.get("registry_start", 0) or 0)
    agent = run.get("agent")
    try:
        with Registry.open(url, create=False) as reg:
            latest = reg.latest()
            facts.update(
                location=reg.location,
                origin=reg.origin,
                vkey=reg.vkey,
                tree_size=latest[0] if latest else 0,
                root=latest[1].hex() if latest else None,
                checkpoint=latest[2] if latest else None,
            )
            by_site: Counter[str] = Counter()
            for entry in reg.records():
                if entry.index < start:
                    continue
                record = entry.record
                if agent and record.get("crawler", {}).get("agent_token") != agent:
                    continue
                facts["records"] += 1
                target = record.get("target", {})
                by_site[str(target.get("site", ""))] += 1
                row = sites.get(origin_key(str(target.get("url", ""))))
                if row is None:
                    continue
                if len(row.records) >= RECORDS_PER_SITE:
                    row.more_records += 1
                    continue
                evidence = record.get("evidence") or {}
                protocol, where = describe(record)
                row.records.append(
                    {
                        "index": entry.index,
                        "url": target.get("url"),
                        "observed_at": record.get("observed_at"),
                        "mechanism": record.get("mechanism"),
                        "decision": record.get("decision"),
                        "protocol": protocol,
                        "where": where,
                        "rule": rule_text(record),
                        "source": record.get("rule", {}).get("source"),
                        "evidence_sha256": evidence.get("sha256"),
                        "evidence_url": evidence.get("url"),
                    }
                )
            facts["by_site"] = dict(by_site.most_common())
    except (RegistryError, OSError) as exc:
        facts["error"] = f"cannot read the registry: {exc}"
    return facts


def write_evidence(out: Path, url: str | None, rows: list[SiteRow]) -> None:
    """Copy the evidence the report links to out of the registry (content-addressed, written once)."""
    wanted = {r["evidence_sha256"] for row in rows for r in row.records if r.get("evidence_sha256")}
    if not wanted or not url:
        return
    from optout_registry.errors import RegistryError
    from optout_registry.registry import Registry

    folder = out / EVIDENCE
    folder.mkdir(exist_ok=True)
    names = {p.name.split(".", 1)[0]: p.name for p in folder.iterdir()}  # copied by an earlier run
    try:
        with Registry.open(url, create=False) as reg:
            for sha in sorted(wanted - names.keys()):
                body = reg.evidence(sha)
                if body is None:
                    continue
                name = sha + evidence_suffix(body)
                (folder / name).write_bytes(body)
                names[sha] = name
    except RegistryError as exc:
        logger.error("optout crawl: cannot copy evidence out of the registry: %s", exc)
    for row in rows:
        for r in row.records:
            name = names.get(r.get("evidence_sha256") or "")
            if name:
                r["evidence_path"] = f"{EVIDENCE}/{name}"


def evidence_suffix(body: bytes) -> str:
    """A file name suffix that lets a browser show the evidence: text as .txt, known media as themselves."""
    for magic, suffix in ((b"\x89PNG", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"%PDF", ".pdf"), (b"GIF8", ".gif")):
        if body.startswith(magic):
            return suffix
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return ".webp"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return ".bin"
    return ".txt"


def write_outputs(
    out: Path, run: dict[str, Any], summary: dict[str, Any], rows: list[SiteRow], events: list[tuple[float, str]]
) -> None:
    """(Re)write summary.json, report.html and the evidence copies the report links to."""
    from crawler.report import render_report

    write_evidence(out, run.get("registry_url"), rows)
    write_atomic(out / SUMMARY, json.dumps(summary, indent=1, sort_keys=True) + "\n")
    write_atomic(out / REPORT, render_report(summary, rows, events))
