"""Benchmark: the cost of the add-on in instructions, which a shared or throttled machine cannot blur.

Wall-clock and CPU-time ratios from ``bench/bench_crawl.py`` move by ±10 % from one run to the next on a 2-core VM
whose host is busy. Counting instructions (valgrind's callgrind) gives the same number every time, so a change of
1-2 % can be seen. The crawl is bench_crawl's own (same web, spider and settings, ``gc.freeze`` on both sides), run
as its child process under callgrind: once with Scrapy's RobotsTxtMiddleware, once with the full add-on and
recording, and once each with a single page, so that start-up (imports, registry key, checkpoint) is reported
apart from the per-page cost.

With ``--per-origin MORE`` the same pages are crawled again spread over MORE origins, and the difference gives what
one more origin costs apart from its pages: robots.txt (and, for the add-on, tdmrep.json, ai.txt, their cache
entries, the refusals and registry records an origin brings). A crawl of many small sites is bound by that figure.

It is slow (about 40-100x a normal crawl: some 10-20 minutes for the default 2,000 pages on 2 cores), needs
``valgrind``, and counts instructions, not time: memory stalls, system calls and the other thread's GIL waits are
not in it. Work driven by the clock happens more often per page than in a real crawl, since the crawl runs that
much slower: the registry writer's batches (one every ``OPTOUT_REGISTRY_FLUSH``), each a transaction with a signed
checkpoint, are smaller and more numerous here, so their fixed cost is overstated.

With ``--variants scrapy,optout,optout~usage,optout~pipeline,optout~items`` each per-page component of the add-on
is left out in turn (bench_crawl.LEAVE_OUT: the usage middleware, the item pipeline, and the pipeline with the
spider middleware that stamps items), and what it costs a page is the difference from the whole add-on, its hook
dispatch included.

Run: python bench/bench_instructions.py [--origins 20] [--pages 2000] [--variants scrapy,optout] [--per-origin 200]
     [--against CHECKOUT]   (the add-on of another checkout as a third variant, e.g. ``git worktree add``)
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_crawl import compile_project, proxy_env, start_server


def instructions(variant: str, origins: int, pages: int) -> int:
    """Instructions executed by one crawl of ``origins`` x ``pages // origins`` pages (all threads)."""
    child, _, checkout = variant.partition("@")
    script = Path(checkout) / "bench" / "bench_crawl.py" if checkout else Path(__file__).with_name("bench_crawl.py")
    per_origin = max(1, pages // origins)
    server, ports = start_server(per_origin)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-instr-") as work:
            env = {**proxy_env(ports), "BENCH_GC": "freeze", "PYTHONHASHSEED": "0"}
            out = Path(work) / "callgrind.out"
            command = [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                "--dump-instr=no",
                "--collect-jumps=no",
                sys.executable,
                str(script),
                "--child",
                child,
                str(origins),
                str(per_origin),
                work,
            ]
            proc = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True)
            found = re.search(r"Collected : (\d+)", proc.stderr)
            if proc.returncode != 0 or found is None:
                sys.exit(f"{variant} crawl under callgrind failed:\n{proc.stderr[-3000:]}")
            return int(found.group(1))
    finally:
        server.terminate()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--origins", type=int, default=20)
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--variants", default="scrapy,optout")
    parser.add_argument("--against", help="a checkout whose add-on is measured too (optout@CHECKOUT)")
    parser.add_argument(
        "--per-origin", type=int, metavar="MORE", help="also crawl the pages over MORE origins: the cost of an origin"
    )
    args = parser.parse_args()
    if args.per_origin is not None and args.per_origin <= args.origins:
        sys.exit("--per-origin must be more than --origins")
    if shutil.which("valgrind") is None:
        sys.exit("bench_instructions needs valgrind (apt install valgrind)")
    variants = args.variants.split(",")
    if args.against:
        variants.append("optout@" + str(Path(args.against).resolve()))
    compile_project(*([Path(args.against).resolve()] if args.against else []))
    print(f"python {' '.join(sys.argv)}")
    print(f"{args.origins} origins, {args.pages} pages; instructions counted by callgrind (start-up: a 1-page crawl)")
    rows = {}
    for variant in variants:
        whole = instructions(variant, args.origins, args.pages)
        start = instructions(variant, 1, 1)
        origin = 0.0
        if args.per_origin:
            origin = (instructions(variant, args.per_origin, args.pages) - whole) / (args.per_origin - args.origins)
        rows[variant] = (whole, start, (whole - start) / args.pages, origin)
        whole_g, start_g, page_m = whole / 1e9, start / 1e9, rows[variant][2] / 1e6
        extra = f"  {origin / 1e6:6.3f} M/origin" if args.per_origin else ""
        print(f"{variant:40s} {whole_g:8.3f} G total  {start_g:6.3f} G start-up  {page_m:6.3f} M/page{extra}")
    if "scrapy" in rows:
        base = rows["scrapy"]
        for variant, (whole, start, page, origin) in rows.items():
            if variant != "scrapy":
                extra = f", per origin +{(origin - base[3]) / 1e6:.2f} M" if args.per_origin else ""
                print(
                    f"{variant} / scrapy: whole crawl {whole / base[0]:.3f}, per page {page / base[2]:.3f}, "
                    f"start-up +{(start - base[1]) / 1e9:.2f} G{extra}"
                )

    if "optout" in rows:
        for variant, (_, _, page, _) in rows.items():
            if variant.startswith("optout~"):
                cost = rows["optout"][2] - page
                share = f" ({cost / rows['scrapy'][2]:.1%} of Scrapy's page)" if "scrapy" in rows else ""
                print(f"{variant.partition('~')[2]}: {cost / 1e6:.3f} M instructions a page{share}")


if __name__ == "__main__":
    main()
