"""Benchmark: where the add-on's time goes inside a real crawl, part by part, beside the peer's robots.txt check.

``bench_crawl.py`` prices the add-on as a whole; ``bench_usage.py`` and ``bench_robots.py`` time single parts in a
loop, where their data stays in the CPU's caches. Inside a crawl it does not (Scrapy's own work between two pages
evicts it) and the same function can take several times as long, so the loop figures understate what a part costs
a crawl. This script runs bench_crawl's crawl (the same web, spider and settings, 10,000 pages) with timers around
the parts that run for every request or page:

* Scrapy with ``ROBOTSTXT_OBEY``: Protego's ``can_fetch`` behind RobotsTxtMiddleware, which our access check replaces;
* the add-on: the access check (robots.txt match, blocklist, Crawl-delay), the usage middleware and its parts (the
  screen that answers for quiet pages from their headers and HTML head, the full reading of the others, the origin's
  site-level signals, the decision), the item stamp and the pipeline, and the registry writer thread's CPU time.

Each is printed in microseconds a page and as a share of the crawl's elapsed time, as the median of ``--rounds``
crawls. A timer costs about 0.3 µs a call, counted in every figure; nested parts are included in their parent's.

Run: python bench/bench_components.py [--origins 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_crawl import ROOT, compile_project, proxy_env, start_server

PAGES = 10_000
WRITER = "registry writer thread (CPU)"

# (label, module, attribute path, kind): a function looked up in that module, a method, or a coroutine method.
PARTS: dict[str, list[tuple[str, str, str, str]]] = {
    "scrapy": [("robots.txt check (Protego)", "scrapy.robotstxt", "ProtegoRobotParser.allowed", "method")],
    "optout": [
        ("access check", "middlewares.downloader", "_AccessChecks.process_request", "coroutine"),
        ("  robots.txt match", "middlewares.engine", "SitePolicy.access_signals", "method"),
        ("usage middleware", "middlewares.downloader", "OptOutUsageMiddleware.process_response", "coroutine"),
        ("  quiet-page screen", "middlewares.downloader", "_screen", "function"),
        ("  as Fetched (not quiet)", "middlewares.downloader", "fetched_from_response", "function"),
        ("  full reading (not quiet)", "middlewares.downloader", "response_signals", "function"),
        ("  site-level signals", "middlewares.engine", "SitePolicy.usage_signals", "method"),
        ("  decision", "middlewares.policy", "Policy.decide", "method"),
        ("item stamp", "middlewares.items", "_stamp_for", "function"),
        ("item pipeline", "middlewares.items", "OptOutItemPipeline.process_item", "method"),
    ],
}


def _timed(spent: dict[str, float], label: str, original: Any, kind: str) -> Any:
    clock = time.perf_counter
    if kind == "coroutine":

        async def coroutine(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return await original(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + clock() - start

        return coroutine

    def function(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0.0) + clock() - start

    return function


def child(variant: str, origins: int, workdir: str) -> None:
    """One crawl with the timers in place; prints the seconds spent in each part and the crawl's own figures."""
    sys.path.insert(0, str(ROOT))
    spent: dict[str, float] = {}
    for label, module_name, path, kind in PARTS[variant]:
        owner: Any = importlib.import_module(module_name)
        *outer, name = path.split(".")
        for part in outer:
            owner = getattr(owner, part)
        setattr(owner, name, _timed(spent, label, getattr(owner, name), kind))
    if variant == "optout":
        from middlewares.recording import Recorder

        run = Recorder._run

        def writer(self: Any) -> None:
            start = time.thread_time()
            try:
                run(self)
            finally:
                spent[WRITER] = time.thread_time() - start

        Recorder._run = writer  # type: ignore[method-assign]
    import bench_crawl

    bench_crawl.run_crawl(variant, origins, PAGES // origins, workdir, False)  # prints the crawl's JSON line
    print(json.dumps(spent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--origins", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    compile_project()
    print(f"python {' '.join(sys.argv)}")
    print(f"{args.origins} origins x {PAGES // args.origins} pages, bench_crawl's crawl; median of {args.rounds}")
    server, ports = start_server(PAGES // args.origins)
    results: dict[str, list[tuple[dict[str, Any], dict[str, float]]]] = {v: [] for v in PARTS}
    try:
        for r in range(args.rounds):
            for variant in PARTS if r % 2 == 0 else reversed(PARTS):
                with tempfile.TemporaryDirectory(prefix="bench-parts-") as work:
                    command = [sys.executable, __file__, "--child", variant, str(args.origins), work]
                    proc = subprocess.run(command, env=proxy_env(ports), cwd=work, capture_output=True, text=True)
                    if proc.returncode != 0:
                        sys.exit(f"{variant} crawl failed:\n{proc.stderr[-3000:]}")
                    crawl_line, parts_line = proc.stdout.strip().splitlines()[-2:]
                    results[variant].append((json.loads(crawl_line), json.loads(parts_line)))
    finally:
        server.terminate()
    print(f"{'variant / part':<34}{'µs a page':>11}{'% of crawl':>12}")
    for variant, runs in results.items():
        pages = statistics.median(c["items"] for c, _ in runs)
        elapsed = statistics.median(c["elapsed"] for c, _ in runs)
        print(f"{variant:<34}{'':>11}{'':>12}   ({pages:.0f} pages, {elapsed:.1f} s a crawl)")
        labels = [label for label, *_ in PARTS[variant]] + ([WRITER] if variant == "optout" else [])
        for label in labels:
            seconds = statistics.median(p.get(label, 0.0) for _, p in runs)
            print(f"  {label:<32}{seconds / pages * 1e6:>11.1f}{seconds / elapsed * 100:>11.2f}%")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main()
