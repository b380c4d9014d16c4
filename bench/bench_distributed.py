"""Benchmark: a distributed compliant crawl with 1, 2 and 4 workers (`optout crawl --distributed`), on this
machine's Redis (queue, dupefilter, policy cache) and PostgreSQL (one registry, one integrator at the end).

The web: ``--origins`` sites on loopback ports, each a tree of ``--pages`` HTML pages (five links per page), a
robots.txt that disallows ``/private/`` (linked from every page, so every origin yields refusals to record), and
404 for tdmrep.json and ai.txt. It is served by an asyncio server in its own process, which counts every request,
so the table shows what the fleet asked of each origin: robots.txt fetches per origin must stay at 1 whatever the
number of workers, and no page may be fetched twice.

Pages/s is pages fetched over the wall time from the first worker's start to the last worker's exit (process
start-up included, as an operator sees it). On this 2-vCPU machine the server, Redis, PostgreSQL and the workers
share two cores, so more than ~2x cannot appear here; the point is that adding workers does not cost compliance
(fetch counts) and that throughput grows until the CPUs are full.

A second table measures the registry's sequencing step as a fleet uses it: ``--appenders`` processes each
append small batches (``--batch`` records, pre-canonicalised, as a worker's recorder does every half second) for a
few seconds; every batch takes the one ``seq_coord`` row lock until its commit, so transactions per second is the
fleet-wide ceiling that docs/distributed.md scales from.

Run: python bench/bench_distributed.py [--origins 40] [--pages 150] [--workers 1,2,4] [--appenders 8]
     [--batch 50] [--registry-only]   (registry: the sequencing and Redis memory figures only)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REDIS_URL = os.environ.get("OPTOUT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
FANOUT = 5


def page(port: int, n: int, pages: int) -> bytes:
    kids = [c for c in range(n * FANOUT + 1, n * FANOUT + FANOUT + 1) if c < pages]
    links = "".join(f'<a href="/p{c}.html">page {c}</a> ' for c in kids)
    body = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>site {port} page {n}</title>"
        '<meta name="description" content="a page of a benchmark site"></head><body>'
        f"<h1>Page {n}</h1><p>{'Some text of the article. ' * 40}</p>{links}"
        '<a href="/private/account.html">account</a></body></html>'
    )
    return body.encode()


def is_page(path: str) -> bool:
    return path == "/" or (path.startswith("/p") and path.endswith(".html") and path[2:-5].isdigit())


def answer(status: str, body: bytes, ctype: str) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def serve(origins: int, pages: int, ports_out: Any, counts_path: str, stop: Any) -> None:
    hits: Counter[str] = Counter()

    def respond(port: int, path: str) -> bytes:
        hits[f"{port} {path}"] += 1
        if path == "/robots.txt":
            return answer("200 OK", b"User-agent: *\nDisallow: /private/\nAllow: /\n", "text/plain")
        if is_page(path) and (path == "/" or int(path[2:-5]) < pages):
            return answer(
                "200 OK", page(port, 0 if path == "/" else int(path[2:-5]), pages), "text/html; charset=utf-8"
            )
        return answer("404 Not Found", b"not found", "text/plain")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = writer.get_extra_info("sockname")[1]
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode("latin-1")
                writer.write(respond(port, path))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        servers = [await asyncio.start_server(handle, "127.0.0.1", 0) for _ in range(origins)]
        ports_out.send([s.sockets[0].getsockname()[1] for s in servers])
        while not stop.is_set():
            await asyncio.sleep(0.2)
        Path(counts_path).write_text(json.dumps(hits))

    asyncio.run(main())


def fresh_registry() -> AbstractContextManager[str]:
    """The URL of a registry in a schema of its own, dropped afterwards (the tests' helper)."""
    from tests.registry_helpers import pg_schema_url

    return contextmanager(pg_schema_url)()


def fleet_run(workers: int, ports: list[int], pages: int, workdir: Path) -> float:
    """One crawl with ``workers`` processes; returns wall seconds."""
    with fresh_registry() as registry:
        return _fleet_run(workers, ports, registry, workdir)


def _fleet_run(workers: int, ports: list[int], registry: str, workdir: Path) -> float:
    key = workdir / "registry.key"
    env = {**os.environ, "OPTOUT_REGISTRY_KEY": str(key)}
    cli = [sys.executable, "-m", "crawler.cli"]
    subprocess.run([*cli, "registry", "key", "--registry", registry], env=env, check=True, capture_output=True)
    seeds = workdir / "seeds.txt"
    seeds.write_text("".join(f"http://127.0.0.1:{p}/\n" for p in ports))
    prefix = f"optout-bench-{uuid.uuid4().hex[:8]}:"
    started = time.perf_counter()
    args = ["--redis", REDIS_URL, "--registry", registry, "--crawl-id", f"{prefix}crawl", "--seeds-file", str(seeds)]
    args += ["--depth", "0", "--no-sitemaps", "-s", f"OPTOUT_CACHE_PREFIX={prefix}", "-s", "OPTOUT_FLEET_GRACE=1"]
    procs = [
        subprocess.Popen(
            [*cli, "crawl", "--distributed", *args, "--out", str(workdir / f"w{i}")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(workers)
    ]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a worker failed ({proc.returncode}): {err[-2000:]}")
    wall = time.perf_counter() - started
    subprocess.run([*cli, "registry", "checkpoint", "--registry", registry], env=env, check=True, capture_output=True)
    check = subprocess.run([*cli, "registry", "check", "--registry", registry], env=env, capture_output=True)
    if check.returncode != 0:
        raise SystemExit(f"the registry does not verify: {check.stdout!r} {check.stderr!r}")
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    stale = list(client.scan_iter(f"{prefix}*"))
    if stale:
        client.delete(*stale)
    return wall


def measure(workers: int, origins: int, pages: int) -> dict[str, Any]:
    parent, child = multiprocessing.Pipe()
    stop = multiprocessing.Event()
    with tempfile.TemporaryDirectory(prefix="optout-bench-fleet-") as tmp:
        counts_path = str(Path(tmp) / "hits.json")
        server = multiprocessing.Process(target=serve, args=(origins, pages, child, counts_path, stop), daemon=True)
        server.start()
        ports = parent.recv()
        wall = fleet_run(workers, ports, pages, Path(tmp))
        stop.set()
        server.join(10)
        hits = Counter(json.loads(Path(counts_path).read_text()))
    robots = [hits.get(f"{p} /robots.txt", 0) for p in ports]
    page_hits = {k: v for k, v in hits.items() if is_page(k.split(" ", 1)[1])}
    fetched = sum(page_hits.values())
    return {
        "workers": workers,
        "pages": fetched,
        "wall": wall,
        "pages_per_s": fetched / wall,
        "robots_per_origin": (min(robots), max(robots)),
        "pages_fetched_twice": sum(1 for v in page_hits.values() if v > 1),
        "private_fetched": sum(v for k, v in hits.items() if "/private/" in k),
    }


def _appender(registry: str, key: str, batch: int, seconds: float, out: Any) -> None:
    from optout_registry import Registry
    from optout_registry.record import canonical
    from tests.registry_helpers import make_records

    leaves = [canonical(r) for r in make_records(batch)]
    with Registry.open(registry, key=key) as reg:
        store = reg._store  # the sequencing step itself, as the recorder's writer thread reaches it
        done = 0
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            store.append(leaves, [], [], reg._sign)
            done += 1
    out.send(done)


def registry_ceiling(appenders: int, batch: int, seconds: float = 8.0) -> dict[str, float]:
    """Concurrent sequencing transactions per second on one PostgreSQL registry."""
    with fresh_registry() as registry, tempfile.TemporaryDirectory() as tmp:
        key = str(Path(tmp) / "k")
        subprocess.run(
            [sys.executable, "-m", "crawler.cli", "registry", "key", "--registry", registry, "--key", key],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        pipes = [multiprocessing.Pipe() for _ in range(appenders)]
        procs = [
            multiprocessing.Process(target=_appender, args=(registry, key, batch, seconds, child)) for _, child in pipes
        ]
        for proc in procs:
            proc.start()
        batches = sum(parent.recv() for parent, _ in pipes)
        for proc in procs:
            proc.join()
    return {"tx_per_s": batches / seconds, "records_per_s": batches * batch / seconds}


def redis_memory_per_origin() -> dict[str, float]:
    """Bytes Redis holds per origin (MEMORY USAGE of every key), for bench_robots' corpus of real-world-shaped
    robots.txt files, with tdmrep.json and ai.txt answered 404 (most sites) and a Crawl-delay clock."""
    import statistics

    import redis

    from bench.bench_robots import corpus
    from middlewares.engine import Fetched
    from middlewares.rediscache import RedisPolicyStore

    files = [body for _, body in corpus(quick=False)[0]]
    prefix = f"optout-bench-mem-{uuid.uuid4().hex[:8]}:"
    expires = time.time() + 3600
    plain, html = {"content-type": ["text/plain"]}, {"content-type": ["text/html"]}

    async def fill() -> None:
        store = RedisPolicyStore(REDIS_URL, prefix=prefix)
        for i, body in enumerate(files):
            origin = f"https://site{i}.example"
            await store.put(Fetched(origin + "/robots.txt", 200, plain, body.encode()), expires)
            for path in ("/.well-known/tdmrep.json", "/ai.txt"):
                await store.put(Fetched(origin + path, 404, html, b"<html>not found</html>"), expires)
            await store.wait_turn(origin, 0.001)
        await store.close()

    asyncio.run(fill())
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}*", count=1000))
    total = sum(client.memory_usage(k) or 0 for k in keys)
    client.delete(*keys)
    sizes = [len(b.encode()) for b in files]
    return {
        "origins": len(files),
        "bytes_per_origin": total / len(files),
        "robots_median": statistics.median(sizes),
        "robots_mean": statistics.fmean(sizes),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--origins", type=int, default=40)
    ap.add_argument("--pages", type=int, default=150, help="pages per origin")
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--appenders", type=int, default=8, help="concurrent registry appenders")
    ap.add_argument("--batch", type=int, default=50, help="records per sequencing transaction")
    ap.add_argument("--registry-only", action="store_true", help="skip the crawl table")
    args = ap.parse_args()
    if not args.registry_only:
        crawl_table(args)
    print(f"\nregistry sequencing on one PostgreSQL: {args.appenders} appenders x batches of {args.batch}")
    for batch in sorted({1, args.batch}):
        r = registry_ceiling(args.appenders, batch)
        print(f"  batch {batch:>4}: {r['tx_per_s']:>8.0f} transactions/s  {r['records_per_s']:>9.0f} records/s")
    mem = redis_memory_per_origin()
    print(
        f"\nRedis memory per cached origin: {mem['bytes_per_origin']:,.0f} bytes (robots.txt + tdmrep.json 404 + "
        f"ai.txt 404 + Crawl-delay clock), over {mem['origins']} real-world-shaped robots.txt files "
        f"(median {mem['robots_median']:,.0f} B, mean {mem['robots_mean']:,.0f} B)"
    )


def crawl_table(args: argparse.Namespace) -> None:
    rows = [measure(int(n), args.origins, args.pages) for n in args.workers.split(",")]
    base = rows[0]["pages_per_s"]
    print(f"\n{args.origins} origins x {args.pages} pages, loopback, Redis + PostgreSQL, {os.cpu_count()} CPUs")
    print(f"{'workers':>7} {'pages':>7} {'wall s':>7} {'pages/s':>8} {'speed-up':>8} {'robots.txt/origin':>18} "
          f"{'fetched twice':>13} {'disallowed fetched':>18}")  # fmt: skip
    for r in rows:
        lo, hi = r["robots_per_origin"]
        print(
            f"{r['workers']:>7} {r['pages']:>7} {r['wall']:>7.1f} {r['pages_per_s']:>8.1f} "
            f"{r['pages_per_s'] / base:>7.2f}x {f'{lo}..{hi}' if lo != hi else str(lo):>18} "
            f"{r['pages_fetched_twice']:>13} {r['private_fetched']:>18}"
        )


if __name__ == "__main__":
    main()
