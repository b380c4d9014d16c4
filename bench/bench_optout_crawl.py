"""Benchmark: `optout crawl` end to end against the same spider under Scrapy's own ROBOTSTXT_OBEY.

The web and the baseline spider are bench_crawl.py's: an asyncio HTTP server on loopback acting as a proxy for
many origins (``http://site00000.test/`` …), each with a realistic robots.txt (``Disallow: /private/`` and friends)
and a tree of ~4 KB news pages linking to five children, a private page and home. Every crawl reaches it through
bench_crawl's ProxyMiddleware (each origin on one of several proxy ports, as real origins have their own
connections; ``optout crawl`` gets it with ``--set DOWNLOADER_MIDDLEWARES=...``), so nothing resolves or leaves the
machine.

Four crawls of the same 10,000 pages, each in a fresh process, alternating, median of ``--repeat`` runs:

  plain    a plain Scrapy spider (title and links, follows every link, items to a JSON Lines feed) with
           ``ROBOTSTXT_OBEY = True``: what a team has before adopting the toolkit;
  spider   the ``compliant`` spider (text, title, language, links, evidence hashes) with ROBOTSTXT_OBEY and no
           add-on, items to a feed: the cost of the spider's extraction alone;
  optout   ``optout crawl SEEDS --out DIR``: the same spider under the add-on (robots.txt, tdmrep.json and ai.txt
           per origin, usage checks on every response, item stamping, the registry recording every refused URL
           with its evidence, items.jsonl/decisions.jsonl written line by line, JOBDIR, summary and report);
  optout-nojob  the same with ``-s JOBDIR=``: what resumability (Scrapy's disk request queue) costs.

Throughput is Scrapy's own ``item_scraped_count / elapsed_time_seconds`` (spider open to close; for ``optout`` read
from the stats dump in crawl.log), so process start-up is left out alike; wall time is reported beside it. On a
shared machine that figure swings with whatever else runs, so the crawler's own CPU time per page (user + system,
whole process, from os.wait4) is reported too: it is what the compliance work actually costs. Peak memory is each
process's ``ru_maxrss``. All three use the project's politeness settings
(crawler/settings.py: 32 requests in all, 4 per site).

Run: python bench/bench_optout_crawl.py [--quick] [--repeat 3] [--origins 20]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_crawl import compile_project, plain_spider, proxy_env, start_server  # noqa: E402  (shared with bench_crawl.py)

VARIANTS = ("plain", "spider", "optout", "optout-nojob")
PROXY = {"bench_crawl.ProxyMiddleware": 700}  # before HttpProxyMiddleware (750)
TARGET = 0.05


def child(variant: str, origins: int, workdir: str) -> None:
    """One baseline crawl in this (fresh) process; prints its stats as JSON."""
    sys.path.insert(0, str(ROOT))
    from scrapy.crawler import CrawlerProcess
    from scrapy.settings import Settings

    from crawler import settings as project
    from crawler.spiders.compliant import CompliantSpider

    settings = Settings()
    settings.setmodule(project, priority="project")
    settings.setdict(
        {
            "ADDONS": {},
            # the add-on's gc.freeze() extension, which any project could use: both sides alike
            "EXTENSIONS": {"middlewares.gcfreeze.GcFreeze": 0},
            "ROBOTSTXT_OBEY": True,
            "DOWNLOADER_MIDDLEWARES": PROXY,
            "LOG_LEVEL": "WARNING",
            "FEEDS": {f"{workdir}/items.jsonl": {"format": "jsonlines"}},
        },
        priority="cmdline",
    )
    process = CrawlerProcess(settings)
    if variant == "plain":
        crawler = process.create_crawler(plain_spider(origins))
        process.crawl(crawler)
    else:
        crawler = process.create_crawler(CompliantSpider)
        seeds = [f"http://site{i:05d}.test/" for i in range(origins)]
        process.crawl(crawler, seeds=seeds, depth=0)
    process.start()
    stats = crawler.stats.get_stats()
    print(json.dumps({"items": stats.get("item_scraped_count", 0), "elapsed": stats.get("elapsed_time_seconds", 0)}))


def _stats_from_log(log: Path) -> dict[str, Any]:
    """Scrapy's closing stats dump ("Dumping Scrapy stats: {...}") in crawl.log."""
    text = log.read_text(encoding="utf-8", errors="replace")
    match = re.search(r"Dumping Scrapy stats:\s*(\{.*?\})\s*(?:\n\d{4}-\d\d-\d\d |\Z)", text, re.S)
    if not match:
        raise RuntimeError(f"no stats dump in {log}")
    body = re.sub(r"datetime\.datetime\([^)]*\)", "None", match.group(1))
    return ast.literal_eval(body)


def run(variant: str, origins: int, ports: list[int]) -> dict[str, Any]:
    env = proxy_env(ports)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).parent), env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="bench-optout-") as workdir:
        optout = variant.startswith("optout")
        if optout:
            seeds = [f"http://site{i:05d}.test/" for i in range(origins)]
            cmd = [sys.executable, "-m", "crawler.cli", "crawl", *seeds, "--out", f"{workdir}/out", "--depth", "0"]
            cmd += ["--set", f"DOWNLOADER_MIDDLEWARES={json.dumps(PROXY)}"]
            if variant == "optout-nojob":
                cmd += ["--set", "JOBDIR="]
        else:
            cmd = [sys.executable, __file__, "--child", variant, str(origins), workdir]
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout, stderr = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
        if proc.returncode != 0:
            sys.exit(f"{variant} crawl failed ({proc.returncode}):\n{stderr[-3000:]}")
        if optout:
            stats = _stats_from_log(Path(workdir, "out", "crawl.log"))
            summary = json.loads(Path(workdir, "out", "summary.json").read_text())
            result = {
                "items": stats.get("item_scraped_count", 0),
                "elapsed": stats.get("elapsed_time_seconds", 0.0),
                "records": summary["registry"]["records"],
                "stored": summary["pages"]["stored"],
            }
        else:
            result = json.loads(stdout.strip().splitlines()[-1])
            result["records"] = 0
    result["wall"] = wall
    result["pps"] = result["items"] / result["elapsed"] if result["elapsed"] else 0.0
    result["maxrss_mb"] = usage.ru_maxrss / 1024
    result["cpu"] = usage.ru_utime + usage.ru_stime
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 pages, one run of each")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--origins", type=int, default=20)
    args = parser.parse_args()
    total = 2_000 if args.quick else 10_000
    repeat = 1 if args.quick else args.repeat
    pages = total // args.origins
    compile_project()
    server, ports = start_server(pages)
    try:
        print(
            f"{args.origins} origins x {pages} pages = {args.origins * pages} pages on loopback, {repeat} run(s) each"
        )
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
        for _ in range(repeat):
            for variant in VARIANTS:
                runs[variant].append(run(variant, args.origins, ports))
    finally:
        server.terminate()
    print(
        f"{'crawl':<13}{'pages':>8}{'pages/s (median)':>18}{'all runs':>22}{'wall s':>9}{'CPU ms/page':>13}"
        f"{'peak RSS MB':>13}{'records':>9}"
    )
    median, cpu = {}, {}
    for variant in VARIANTS:
        rs = runs[variant]
        median[variant] = statistics.median(r["pps"] for r in rs)
        all_runs = " ".join(f"{r['pps']:.0f}" for r in rs)
        wall = statistics.median(r["wall"] for r in rs)
        rss = max(r["maxrss_mb"] for r in rs)
        cpu[variant] = statistics.median(r["cpu"] / r["items"] * 1000 for r in rs)
        print(
            f"{variant:<13}{rs[0]['items']:>8}{median[variant]:>18.0f}{all_runs:>22}{wall:>9.1f}"
            f"{cpu[variant]:>13.2f}{rss:>13.0f}{rs[0]['records']:>9}"
        )
    # Like with like: the compliant spider with Scrapy's robots.txt handling and nothing else is the baseline; the
    # lighter plain spider is shown for scale only.
    ratio = median["optout"] / median["spider"]
    verdict = "within" if 1 - ratio <= TARGET else "OVER"
    print(
        f"optout crawl / the same spider with ROBOTSTXT_OBEY only: {ratio:.3f} ({(1 - ratio) * 100:+.1f}% cost; "
        f"target <= {TARGET * 100:.0f}%: {verdict})"
    )
    cost = cpu["optout"] / cpu["spider"] - 1
    print(f"optout crawl CPU per page vs the same spider: {cost * 100:+.1f}% (whole process, start-up included)")
    print(f"optout crawl / a plain title-and-links spider (scale only): {median['optout'] / median['plain']:.3f}")
    print(f"optout crawl without JOBDIR / the same spider: {median['optout-nojob'] / median['spider']:.3f}")
    if len({r["items"] for v in VARIANTS for r in runs[v]}) != 1:
        print("WARNING: the crawls did not deliver the same number of pages")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main()
