"""Benchmark: ``optout summary`` (issue 21) streams a crawl's items with bounded memory.

A synthetic ``optout crawl`` folder: run.json, items.jsonl with ITEMS items (the crawl's item shape: URL, status,
content type, fetch time, title, a short text, the evidence hashes and body length, the decision stamp) over
DOMAINS hosts, and a decisions.jsonl with one refusal per thousand items. Every measurement runs in a fresh
process, which reports its own peak RSS (ru_maxrss) and wall time:

(a) memory slope: ``optout summary`` on folders of SIZES items: the peak RSS should not grow with the items
    (only with the domains), while the peer's grows with them;
(b) throughput: items per second at the largest size, in alternating rounds against the peer (bench/peers.py);
(c) the headline: one ``optout summary`` over --big items (default 10,000,000), its peak RSS and items/s.

The peer is what a provider would otherwise write: pyarrow (C++) reads items.jsonl whole into a table and groups
the body lengths by host (pyarrow.json.read_json, then a regex for the host and a group_by). It is faster per item
and its memory grows with the file; it answers one figure of the summary (the domain list), not all of them.

Run: python bench/bench_summary.py [--sizes 250000 500000 1000000] [--big 10000000] [--domains 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peers import alternate, command_line, ratio, spread  # noqa: E402

TYPES = ("text/html", "text/html", "text/html", "application/pdf", "image/jpeg", "text/plain")


def make_folder(folder: Path, items: int, domains: int) -> Path:
    """A crawl folder of ``items`` items over ``domains`` hosts (deterministic: the same arguments, the same bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    run = {
        "format": "optout-crawl-run/v1",
        "purpose": "train-ai",
        "agent": "OptOutBot",
        "mode": "conservative",
        "user_agent": "Mozilla/5.0 (compatible; OptOutBot/0.1; +https://example.org/bot)",
        "registry_url": None,
        "runs": [{"started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-02T00:00:00Z"}],
    }
    (folder / "run.json").write_text(json.dumps(run))
    base = 1767225600  # 2026-01-01T00:00:00Z
    sha = "ab" * 32
    with (folder / "items.jsonl").open("w") as out, (folder / "decisions.jsonl").open("w") as dec:
        buf = []
        for i in range(items):
            host = f"site{(i * 7919) % domains:06d}.example"
            length = 500 + (i * 2654435761) % 60000
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(base + i // 50))
            buf.append(
                f'{{"url": "https://{host}/p/{i}", "status": 200, "content_type": "{TYPES[i % len(TYPES)]}", '
                f'"fetched_at": "{when}", "depth": 1, "title": "Page {i}", "language": "en", '
                f'"text": "Lorem ipsum dolor sit amet, page {i} of {host}.", "links": [], '
                f'"evidence": {{"response": {{"status": 200, "sha256": "{sha}", "length": {length}}}}}, '
                f'"optout": {{"purpose": "train-ai", "agent": "OptOutBot", "allowed": true}}}}\n'
            )
            if i % 1000 == 999:
                dec.write(
                    json.dumps(
                        {
                            "url": f"https://{host}/r/{i}",
                            "outcome": "not_fetched",
                            "reservations": [{"protocol": "robots", "rule": "Disallow: /r/"}],
                        }
                    )
                    + "\n"
                )
            if len(buf) == 10000:
                out.write("".join(buf))
                buf.clear()
        out.write("".join(buf))
    return folder


def child(side: str, folder: Path) -> None:
    """One measurement in this (fresh) process: prints {seconds, rss_mb, items}."""
    started = time.perf_counter()
    if side == "ours":
        from crawler.summary import build
        from crawler.summary_render import write_outputs

        data = build([str(folder)])
        out = folder.parent / f"{folder.name}-summary"
        out.mkdir(exist_ok=True)
        write_outputs(out, data)
        items = data["sections"]["2.3"]["domains"]["value"]["items"]
    else:
        import pyarrow as pa
        import pyarrow.compute as pc
        from pyarrow import json as pj

        table = pj.read_json(folder / "items.jsonl")
        hosts = pc.struct_field(pc.extract_regex(table["url"], r"^https?://(?P<host>[^/:]+)"), "host")
        lengths = pc.struct_field(table["evidence"], ["response", "length"])
        grouped = pa.table({"host": hosts, "length": lengths}).group_by("host").aggregate([("length", "sum")])
        grouped.sort_by([("length_sum", "descending")])
        items = table.num_rows
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mb": rss, "items": items}))


def measure(side: str, folder: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", side, "--folder", str(folder)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000, 500_000, 1_000_000])
    parser.add_argument("--big", type=int, default=10_000_000, help="the headline size (0: skip)")
    parser.add_argument("--domains", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", choices=("ours", "peer"))
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.folder)
        return
    print(command_line())
    with tempfile.TemporaryDirectory(prefix="bench-summary-") as tmp:
        folders = {n: make_folder(Path(tmp) / f"crawl-{n}", n, args.domains) for n in args.sizes}
        print(f"items.jsonl over {args.domains:,} domains; peak RSS of a fresh process per run")
        print(f"{'items':>12} {'ours MB':>9} {'peer MB':>9} {'ours items/s':>14} {'peer items/s':>14}")
        first: dict[str, dict[str, float]] = {}
        last: dict[str, dict[str, float]] = {}
        for n, folder in folders.items():
            ours, peer = measure("ours", folder), measure("peer", folder)
            assert ours["items"] == peer["items"] == n
            first = first or {"ours": ours, "peer": peer}
            last = {"ours": ours, "peer": peer}
            print(
                f"{n:>12,} {ours['rss_mb']:>9.1f} {peer['rss_mb']:>9.1f} "
                f"{n / ours['seconds']:>14,.0f} {n / peer['seconds']:>14,.0f}"
            )
        span = (args.sizes[-1] - args.sizes[0]) / 1e6
        if span:
            for side in ("ours", "peer"):
                slope = (last[side]["rss_mb"] - first[side]["rss_mb"]) / span
                print(f"memory slope, {side}: {slope:+.1f} MB per million items")
        n = args.sizes[-1]
        rounds = alternate(args.rounds, ["ours", "peer"], lambda side: n / measure(side, folders[n])["seconds"])
        print(f"throughput at {n:,} items, {args.rounds} alternating rounds, items/s median (min–max):")
        print(f"  optout summary {spread(rounds['ours'])}; peer (pyarrow, whole file) {spread(rounds['peer'])}")
        print(f"  ours/peer {ratio(rounds['ours'], rounds['peer'])}")
        for folder in folders.values():
            for f in folder.glob("*.jsonl"):
                f.unlink()
        if args.big:
            started = time.perf_counter()
            big = make_folder(Path(tmp) / "crawl-big", args.big, args.domains)
            size = (big / "items.jsonl").stat().st_size
            took = time.perf_counter() - started
            print(f"{args.big:,} items ({size / 1e9:.2f} GB items.jsonl, written in {took:.0f}s):")
            got = measure("ours", big)
            assert got["items"] == args.big
            print(
                f"  optout summary: {got['seconds']:.0f}s, {args.big / got['seconds']:,.0f} items/s, "
                f"peak RSS {got['rss_mb']:.1f} MB (the peer is not run at this size: it holds the whole file)"
            )


if __name__ == "__main__":
    main()
