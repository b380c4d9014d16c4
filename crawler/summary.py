"""``optout summary RUN… --out DIR``: the public summary of training content (AI Act Art. 53(1)(d)), in the
Commission's template, filled in from the evidence of crawls, corpus filters and registries.

Only what the evidence shows is written: the crawler's identity and purpose as the crawl recorded them, how each
opt-out protocol was enforced (from the configuration the run recorded; where a run did not record a setting, the
summary says so rather than assume the default), the period of collection, content types, the domain list of
section 2.3 by bytes of content kept, and the opt-outs honoured per protocol, counted from the signed registry with
the checkpoint that proves them. Everything else is a marked blank for the provider.

Output (crawler/summary_render.py): summary.md, summary.html, summary.json and domains.csv. Each figure names the
files it was computed from (hashed in summary.json) and the registry checkpoint; the output holds no clock reading
of its own, so the same inputs give the same bytes.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from crawler.summary_inputs import Evidence, SummaryError, modality, read_runs
from crawler.summary_registry import registry_facts
from crawler.summary_template import TEMPLATE, listed_count, rule_text

FORMAT = "optout-training-summary/v1"


def add_summary_command(sub: Any) -> None:
    from optout_registry import cliargs

    p = sub.add_parser(
        "summary",
        help="the public summary of training content (EU template) from crawls, filters and registries",
        description="Fill in the Commission's Template for the Public Summary of Training Content from the evidence "
        "of optout crawl folders, optout filter folders and registries (sqlite:///… or postgresql://…): crawler "
        "identity, purposes, behaviour, period, content types, the domain list by bytes of content kept, and the "
        "opt-outs honoured per protocol with the registry checkpoint that proves them. Writes summary.md, "
        "summary.html, summary.json and domains.csv into --out (exit 0 done, 2 error).",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="optout crawl folder, optout filter folder or registry URL")
    p.add_argument("--out", required=True, metavar="DIR", type=cliargs.non_empty, help="output folder")
    p.add_argument("--provider", type=cliargs.non_empty, help="the provider's name (section 1.1)")
    p.add_argument("--model", type=cliargs.non_empty, help="the versioned model name (section 1.2)")
    p.add_argument(
        "--sme", action="store_true", help="the provider is an SME: the domain list is the top 5 %% or 1,000 names"
    )
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")


def run_summary(args: argparse.Namespace) -> int:
    from crawler.summary_render import write_outputs

    out = Path(args.out)
    for marker in ("run.json", "kept.warc.gz", "items.jsonl"):
        if (out / marker).exists():  # a crawl's or a filter's own summary.json would be overwritten
            raise SummaryError(f"--out {out} holds a crawl or filter run ({marker}): give another folder")
    data = build(list(args.runs), provider=args.provider, model=args.model, sme=args.sme)
    try:
        out.mkdir(parents=True, exist_ok=True)
        write_outputs(out, data)
    except OSError as exc:
        raise SummaryError(f"cannot write {out}: {exc.strerror or exc}") from None
    domains = data["sections"]["2.3"]["domains"]["value"]
    print(
        f"optout summary: {domains['items']:,} items kept, {domains['total_bytes']:,} bytes from "
        f"{domains['total_domains']:,} domains; {domains['listed_count']:,} listed; "
        f"{data['sections']['3.1']['optouts']['value']['records']:,} opt-outs in the registry → {out}",
        file=sys.stderr,
    )
    return 0


def build(
    runs: list[str], *, provider: str | None = None, model: str | None = None, sme: bool = False
) -> dict[str, Any]:
    """summary.json: the template's sections with every field the evidence answers, and where each came from."""
    ev = read_runs(runs)
    registries = registry_facts(ev.selectors)
    records: Counter[str] = Counter()
    for reg in registries:
        records.update(reg["by_protocol"])
    return {
        "format": FORMAT,
        "template": TEMPLATE,
        "provider": provider,
        "model": model,
        "sme": sme,
        "inputs": {
            "runs": [{k: v for k, v in r.items() if k != "files"} for r in ev.runs],
            "files": [f for r in ev.runs for f in r["files"]],
            "registries": registries,
        },
        "sections": {"2.3": crawl_section(ev, sme, records), "3.1": rights_section(ev, registries, records)},
    }


def sources(ev: Evidence, *names: str, kinds: tuple[str, ...] = ("crawl", "filter")) -> list[str]:
    """``RUN/file`` of the named files the runs of ``kinds`` read."""
    return [f"{f['run']}/{f['file']}" for r in ev.runs if r["kind"] in kinds for f in r["files"] if f["file"] in names]


def crawl_section(ev: Evidence, sme: bool, records: Counter[str]) -> dict[str, Any]:
    crawls = [r for r in ev.runs if r["kind"] == "crawl"]
    filters = [r for r in ev.runs if r["kind"] == "filter"]
    meta = sources(ev, "run.json", "summary.json")
    kept = sources(ev, "items.jsonl", "kept.warc.gz")
    return {
        "crawlers_used": {"value": "Yes" if crawls else "No", "sources": sources(ev, "run.json")},
        "crawler_names": {"value": crawler_names(crawls, filters), "sources": meta},
        "purposes": {"value": purposes(ev.runs), "sources": meta},
        "behaviour": {"value": behaviour(ev, records), "sources": meta},
        "period": {"value": {"first_fetch": ev.first, "last_fetch": ev.last}, "sources": kept},
        "content": {"value": content(ev), "sources": kept},
        "domains": {"value": domains(ev, sme), "sources": kept},
    }


def crawler_names(crawls: list[dict[str, Any]], filters: list[dict[str, Any]]) -> dict[str, Any]:
    seen: dict[tuple[str, str], list[str]] = {}
    for r in crawls:
        seen.setdefault((str(r.get("agent")), str(r.get("user_agent"))), []).append(r["run"])
    return {
        "crawlers": [{"token": t, "user_agent": ua, "runs": runs} for (t, ua), runs in sorted(seen.items())],
        # Web archives filtered by optout filter were captured by a crawler their WARC files name, not ours.
        "archives": [{"run": r["run"], "warcs": r.get("warcs", []), "decided_as": r.get("agent")} for r in filters],
    }


def purposes(runs: list[dict[str, Any]]) -> list[dict[str, str]]:
    from crawler.disclose import PURPOSES

    ids = sorted({str(r["purpose"]) for r in runs if r.get("purpose")})
    return [{"id": p, "description": PURPOSES.get(p, p)} for p in ids]


def behaviour(ev: Evidence, records: Counter[str]) -> dict[str, Any]:
    """How each protocol was enforced, from the configuration each run recorded: a mandatory protocol cannot be
    switched off (middlewares/policy.py refuses), an optional one is honoured unless the run recorded it as
    switched off. Where a run did not record which protocols it switched off, the summary says so instead of
    assuming the default, and adds what the registry proves: a protocol with records was enforced."""
    from crawler.disclose import MODES, PROTOCOLS
    from middlewares.policy import MANDATORY_PROTOCOLS

    runs = [r for r in ev.runs if r["kind"] in ("crawl", "filter")]
    unrecorded = [r["run"] for r in runs if r.get("disabled") is None]
    protocols = []
    for pid, (reads, acts) in PROTOCOLS.items():
        off = [r["run"] for r in runs if pid in (r.get("disabled") or ())]
        if pid in MANDATORY_PROTOCOLS:
            status = "honoured (mandatory: cannot be switched off)"
        elif off:
            status = "switched off in " + ", ".join(off)
        elif records.get(pid):
            status = f"honoured ({records[pid]:,} opt-out{'s' if records[pid] > 1 else ''} in the registry)"
        elif not unrecorded:
            status = "honoured"
        else:
            status = "not recorded"
        protocols.append({"id": pid, "status": status, "reads": reads, "acts": acts, "records": records.get(pid, 0)})
    cross = sorted({str(r.get("cross_token")) for r in runs if r.get("cross_token") is not None})
    modes = sorted({str(r["mode"]) for r in runs if r.get("mode")})
    return {
        "modes": [{"id": m, "description": MODES.get(m, m)} for m in modes],
        "protocols": protocols,
        "access_controls": "No circumvention of access controls: " + PROTOCOLS["access"][1] + ". "
        "Paywalls, login walls and 401, 402, 403 and 451 answers end the request for that URL.",
        "cross_token": cross[0] if len(cross) == 1 else ("mixed" if cross else "not recorded"),
        "unrecorded": unrecorded,  # runs that did not record which protocols they switched off
    }


def content(ev: Evidence) -> dict[str, Any]:
    total = sum(b for b, _ in ev.families.values())
    families = [
        {"family": fam, "modality": modality(fam), "pages": pages, "bytes": size, "share": share(size, total)}
        for fam, (size, pages) in sorted(ev.families.items(), key=lambda kv: (-kv[1][0], kv[0]))
    ]
    return {"items": ev.items, "bytes": total, "families": families}


def share(part: int, total: int) -> float:
    return round(part / total, 6) if total else 0.0


def domains(ev: Evidence, sme: bool) -> dict[str, Any]:
    """Hosts folded into their registrable domains, ranked by bytes of content kept (ties by name), and the
    template's top share of them."""
    from crawler.spiders.compliant import site_of

    merged: dict[str, list[int]] = {}
    for host, (size, pages) in ev.hosts.items():
        tally = merged.setdefault(site_of(host) or host, [0, 0])
        tally[0] += size
        tally[1] += pages
    total = sum(b for b, _ in merged.values())
    ranked = sorted(merged.items(), key=lambda kv: (-kv[1][0], kv[0]))
    count = listed_count(len(ranked), sme)
    rows = [
        {"rank": i, "domain": d, "bytes": b, "pages": p, "share": share(b, total)}
        for i, (d, (b, p)) in enumerate(ranked, 1)
    ]
    return {
        "items": ev.items,
        "total_domains": len(ranked),
        "total_bytes": total,
        "rule": rule_text(sme),
        "listed_count": count,
        "listed": rows[:count],
        "all": rows,  # domains.csv; not rendered in the summary itself
    }


def rights_section(ev: Evidence, registries: list[dict[str, Any]], records: Counter[str]) -> dict[str, Any]:
    rows = [
        {"protocol": p, "decisions": ev.refused.get(p, 0), "records": records.get(p, 0)}
        for p in sorted(set(records) | set(ev.refused), key=lambda p: (-records.get(p, 0), -ev.refused.get(p, 0), p))
    ]
    checkpoints = [f"{r['origin']} tree size {r['tree_size']} root {r['root_sha256']}" for r in registries]
    return {
        "optouts": {
            "value": {"records": sum(records.values()), "decisions": sum(ev.refused.values()), "by_protocol": rows},
            "sources": sources(ev, "decisions.jsonl") + [r["registry"] for r in registries],
            "checkpoints": checkpoints,
        },
        "measures": {
            "value": "Reservations of rights were identified per URL, before use, with the machine-readable "
            "protocols listed under 2.3 (robots.txt first). A URL whose use is reserved was not fetched, or was "
            "fetched and dropped before storage (crawls), or left out of the kept archive (corpus filters). Each "
            "reservation honoured was logged with the evidence it rested on in an append-only Merkle-tree registry "
            "with signed checkpoints; a rights holder can ask for the records about a site and verify them offline "
            "against the checkpoint and verifier key below.",
            "sources": [r["registry"] for r in registries],
        },
    }
