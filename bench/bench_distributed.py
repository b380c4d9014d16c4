"""Benchmark: a distributed crawl, our fleet (`optout crawl --distributed`: the add-on + crawler/fleet.py) against
plain scrapy-redis with Scrapy's own RobotsTxtMiddleware, the same spider, the same sites, the same number of
workers, on this machine's Redis and PostgreSQL.

The web: ``--origins`` sites on loopback ports, each a tree of ``--pages`` HTML pages (five links per page), a
robots.txt that disallows ``/private/`` (linked from every page, so every origin yields refusals to record), and
404 for tdmrep.json and ai.txt. It is served by an asyncio server in its own process, fresh for every crawl, which
counts every request, so the table shows what each fleet asked of each origin: our robots.txt fetches per origin
must stay at 1 whatever the number of workers (Scrapy's middleware fetches it once per worker), no page may be
fetched twice, nothing disallowed may be fetched.

Both sides run the ``compliant`` spider (crawler/spiders/compliant.py) on the project's settings
(crawler/settings.py: 32 requests in all, 4 per site), seeds from one file for every worker, ``depth=0`` (no
limit), no sitemaps, items to JSON Lines, log to a file at INFO:

  scrapy-redis  ``ROBOTSTXT_OBEY = True``, no add-on; scrapy-redis's Scheduler and RFPDupeFilter in Redis
                (SCHEDULER_PERSIST, since the first worker to stop would otherwise empty the queue of the others);
  optout        ``optout crawl --distributed``: the add-on (robots.txt, tdmrep.json and ai.txt once per origin for
                the whole fleet through the Redis policy cache, usage checks, every refused URL recorded with its
                evidence into one PostgreSQL registry), the fleet scheduler (requests a worker took kept in Redis
                until done), run files.

Like with like, as in bench_crawl.py: ``gc.freeze`` (the add-on's extension, usable by any Scrapy project) on
both sides (``--gc freeze``, the default) or on neither (``--gc default``); and both stop the same way: the
fleet's FleetIdle extension (crawler/fleet.py: a worker stops once the shared queue is empty and no worker has
been busy for the same 1 s grace), given to the peer too, because a plain scrapy-redis worker either stops at its
first look at an empty shared queue (a second worker may stop at once, having found the seeds already taken) or,
as a RedisSpider, never does -- either way the wall time would measure the stop rule, not the crawl.

Pages/s is pages fetched over the wall time from the first worker's start to the last worker's exit (process
start-up included, as an operator sees it; the registry's integration afterwards is not timed); CPU is the
workers' user + system time per page (os.wait4), peak RSS the largest worker's. The crawls run one at a time,
alternating (bench/peers.py), ``--rounds`` of each; medians, min–max and ratios are printed. On this 2-vCPU
machine the server, Redis, PostgreSQL and the workers share two cores, so more than ~2x cannot appear here.

A second table measures the registry's sequencing step as a fleet uses it: ``--appenders`` processes each call
Registry.append with small batches (``--batch`` records, as a worker's recorder does every half second) for
``--seconds``, started together; every batch takes the one ``seq_coord`` row lock until its commit, so
transactions per second is the fleet-wide ceiling that docs/distributed.md scales from. The peer: the same
processes COPY json.dumps of the same records into a plain table, one transaction a batch. Last, Redis memory
per cached origin (a size: no peer).

Run: python bench/bench_distributed.py [--rounds 5] [--workers 2] [--origins 20] [--pages 100] [--gc freeze|default]
     [--appenders 8] [--batch 50] [--seconds 3] [--registry-only] [--quick]   (the default run took 9 minutes on
     the shared 2-core machine at a load average of 10, where a crawl of 2,000 pages took 45 s; at the ~290 pages/s
     of a quiet machine, about 3; --workers 1,2,4 --origins 40 --pages 150 for the scaling table)
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_crawl import table  # noqa: E402  (the same table as the single-process crawl benchmark)
from bench.peers import alternate, command_line, fresh_pg_schema, ratio, spread  # noqa: E402

REDIS_URL = os.environ.get("OPTOUT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
FANOUT = 5
SIDES = ("scrapy-redis", "optout")
CLI = [sys.executable, "-m", "crawler.cli"]


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


# -- one crawl ---------------------------------------------------------------------------------------------------


def peer_worker(prefix: str, seeds: str, out: str, gc_freeze: bool) -> None:
    """One plain scrapy-redis worker (this process): the compliant spider, Scrapy's RobotsTxtMiddleware."""
    from scrapy.crawler import CrawlerProcess
    from scrapy.settings import Settings

    from crawler import settings as project
    from crawler.spiders.compliant import CompliantSpider

    settings = Settings()
    settings.setmodule(project, priority="project")
    extensions: dict[str, int] = {"crawler.fleet.FleetIdle": 510}  # the same stop rule as the fleet's
    if gc_freeze:
        extensions["middlewares.gcfreeze.GcFreeze"] = 0
    settings.setdict(
        {
            "ADDONS": {},
            "ROBOTSTXT_OBEY": True,
            "EXTENSIONS": extensions,
            "SCHEDULER": "scrapy_redis.scheduler.Scheduler",
            "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
            "SCHEDULER_PERSIST": True,
            "SCHEDULER_QUEUE_KEY": f"{prefix}crawl:requests",
            "SCHEDULER_DUPEFILTER_KEY": f"{prefix}crawl:dupefilter",
            "REDIS_URL": REDIS_URL,
            "OPTOUT_CRAWL_ID": f"{prefix}crawl",
            "OPTOUT_FLEET_GRACE": 1,
            "FEEDS": {f"{out}/items.jsonl": {"format": "jsonlines"}},
            "LOG_FILE": f"{out}/crawl.log",
            "LOG_LEVEL": "INFO",
        },
        priority="cmdline",
    )
    process = CrawlerProcess(settings)
    process.crawl(CompliantSpider, seeds_file=seeds, depth=0, sitemaps=False)
    process.start()


def run_workers(cmds: list[list[str]], workdir: Path, env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Start every worker at once; (wall seconds, CPU seconds of all, peak RSS MB of the largest)."""
    started = time.perf_counter()
    procs = []
    for i, cmd in enumerate(cmds):
        err = open(workdir / f"w{i}.err", "w+")  # noqa: SIM115 - closed below, after the worker exits
        procs.append((subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True), err))
    cpu, rss = 0.0, 0.0
    for proc, err in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu += usage.ru_utime + usage.ru_stime
        rss = max(rss, usage.ru_maxrss / 1024)
        err.seek(0)
        text = err.read()
        err.close()
        if proc.returncode != 0:
            raise SystemExit(f"a worker failed ({proc.returncode}): {text[-2000:]}")
    return time.perf_counter() - started, cpu, rss


def crawl_peer(workers: int, seeds: Path, workdir: Path, prefix: str, gc_freeze: bool) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--peer-worker", prefix, str(seeds)]
    cmds = [[*cmd, str(workdir / f"w{i}"), "freeze" if gc_freeze else "default"] for i in range(workers)]
    for i in range(workers):
        (workdir / f"w{i}").mkdir()
    wall, cpu, rss = run_workers(cmds, workdir)
    return {"wall": wall, "cpu": cpu, "maxrss_mb": rss, "records": 0}


def crawl_fleet(workers: int, seeds: Path, workdir: Path, prefix: str, gc_freeze: bool) -> dict[str, float]:
    """``optout crawl --distributed`` with ``workers`` processes on a fresh registry, checked afterwards."""
    from optout_registry import Registry

    with fresh_pg_schema() as registry:
        key = workdir / "registry.key"
        env = {**os.environ, "OPTOUT_REGISTRY_KEY": str(key)}
        subprocess.run([*CLI, "registry", "key", "--registry", registry], env=env, check=True, capture_output=True)
        args = ["--redis", REDIS_URL, "--registry", registry, "--crawl-id", f"{prefix}crawl"]
        args += ["--seeds-file", str(seeds), "--depth", "0", "--no-sitemaps", "-s", f"OPTOUT_CACHE_PREFIX={prefix}"]
        args += ["-s", "OPTOUT_FLEET_GRACE=1", "-s", f"OPTOUT_GC_FREEZE={gc_freeze}"]
        cmds = [[*CLI, "crawl", "--distributed", *args, "--out", str(workdir / f"w{i}")] for i in range(workers)]
        wall, cpu, rss = run_workers(cmds, workdir, env)
        subprocess.run(
            [*CLI, "registry", "checkpoint", "--registry", registry], env=env, check=True, capture_output=True
        )
        check = subprocess.run([*CLI, "registry", "check", "--registry", registry], env=env, capture_output=True)
        if check.returncode != 0:
            raise SystemExit(f"the registry does not verify: {check.stdout!r} {check.stderr!r}")
        with Registry.open(registry, key=key) as reg:
            records = reg.size
    return {"wall": wall, "cpu": cpu, "maxrss_mb": rss, "records": records}


def measure(side: str, workers: int, origins: int, pages: int, gc_freeze: bool) -> dict[str, Any]:
    """One crawl of a fresh copy of the web by ``workers`` workers of ``side``; what the server saw."""
    import redis

    parent, child = multiprocessing.Pipe()
    stop = multiprocessing.Event()
    prefix = f"optout-bench-{uuid.uuid4().hex[:8]}:"
    with tempfile.TemporaryDirectory(prefix="optout-bench-fleet-") as tmp:
        counts_path = str(Path(tmp) / "hits.json")
        server = multiprocessing.Process(target=serve, args=(origins, pages, child, counts_path, stop), daemon=True)
        server.start()
        ports = parent.recv()
        seeds = Path(tmp) / "seeds.txt"
        seeds.write_text("".join(f"http://127.0.0.1:{p}/\n" for p in ports))
        run = crawl_fleet if side == "optout" else crawl_peer
        try:
            result = run(workers, seeds, Path(tmp), prefix, gc_freeze)
        finally:
            stop.set()
            server.join(10)
            client = redis.Redis.from_url(REDIS_URL)
            stale = list(client.scan_iter(f"{prefix}*"))
            if stale:
                client.delete(*stale)
        hits = Counter(json.loads(Path(counts_path).read_text()))
    robots = [hits.get(f"{p} /robots.txt", 0) for p in ports]
    page_hits = {k: v for k, v in hits.items() if is_page(k.split(" ", 1)[1])}
    fetched = sum(page_hits.values())
    return {
        **result,
        "items": fetched,
        "pps": fetched / result["wall"],
        "cpu_ms": 1000 * result["cpu"] / max(fetched, 1),
        "robots_per_origin": (min(robots), max(robots)),
        "pages_fetched_twice": sum(1 for v in page_hits.values() if v > 1),
        "private_fetched": sum(v for k, v in hits.items() if "/private/" in k),
    }


def crawl_table(args: argparse.Namespace) -> None:
    gc_freeze = args.gc == "freeze"
    print(
        f"\n{args.origins} origins x {args.pages} pages, loopback, Redis + PostgreSQL, {os.cpu_count()} CPUs; "
        f"{args.rounds} rounds a fleet size, alternating; gc.freeze: {'both sides' if gc_freeze else 'neither side'}"
    )
    for workers in (int(n) for n in args.workers.split(",")):

        def crawl(side: str, workers: int = workers) -> dict[str, Any]:
            return measure(side, workers, args.origins, args.pages, gc_freeze)

        runs = alternate(args.rounds, SIDES, crawl)
        print(f"\n{workers} worker(s), {args.rounds} rounds alternating")
        table(runs)
        print("  median (min–max):")
        for side, rs in runs.items():
            lo = min(r["robots_per_origin"][0] for r in rs)
            hi = max(r["robots_per_origin"][1] for r in rs)
            twice, private = sum(r["pages_fetched_twice"] for r in rs), sum(r["private_fetched"] for r in rs)
            print(
                f"  {side:<13} pages/s {spread([r['pps'] for r in rs]):<16} "
                f"CPU ms/page {spread([r['cpu_ms'] for r in rs], '.2f'):<18} robots.txt per origin "
                f"{lo if lo == hi else f'{lo}..{hi}'}, in all rounds: pages fetched twice {twice}, "
                f"disallowed fetched {private}"
            )
        for key, what in (("pps", "pages/s"), ("cpu_ms", "CPU per page")):
            ours, peer = [r[key] for r in runs["optout"]], [r[key] for r in runs["scrapy-redis"]]
            print(f"  optout / scrapy-redis {what + ':':<14}{ratio(ours, peer)}")


# -- the registry's sequencing ceiling ---------------------------------------------------------------------------


def _appender(side: str, registry: str, key: str, batch: int, seconds: float, go: Any, out: Any) -> None:
    from optout_registry import Registry
    from tests.support.registry import make_records

    records = make_records(batch)
    done = 0
    if side == "optout":
        with Registry.open(registry, key=key) as reg:
            go.wait()
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                reg.append(records)  # validation, JCS and the sequencing transaction: what the recorder calls
                done += 1
    else:
        import psycopg

        with psycopg.connect(registry) as conn:
            go.wait()
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                with conn.cursor() as cur, cur.copy("COPY record(body) FROM STDIN") as copy:
                    for r in records:
                        copy.write_row((json.dumps(r),))
                conn.commit()
                done += 1
    out.send(done)


def registry_ceiling(side: str, appenders: int, batch: int, seconds: float) -> float:
    """Concurrent append transactions per second on one PostgreSQL database."""
    import psycopg

    with fresh_pg_schema() as registry, tempfile.TemporaryDirectory() as tmp:
        key = str(Path(tmp) / "k")
        if side == "optout":
            subprocess.run([*CLI, "registry", "key", "--registry", registry, "--key", key], cwd=ROOT, check=True,
                           capture_output=True)  # fmt: skip
        else:
            with psycopg.connect(registry, autocommit=True) as conn:
                conn.execute("CREATE TABLE record(idx bigserial PRIMARY KEY, body text NOT NULL)")
        go = multiprocessing.Barrier(appenders)
        pipes = [multiprocessing.Pipe() for _ in range(appenders)]
        procs = [
            multiprocessing.Process(target=_appender, args=(side, registry, key, batch, seconds, go, child))
            for _, child in pipes
        ]
        for proc in procs:
            proc.start()
        batches = sum(parent.recv() for parent, _ in pipes)
        for proc in procs:
            proc.join()
    return batches / seconds


def sequencing_table(args: argparse.Namespace) -> None:
    from tests.support.registry import pg_available

    reason = pg_available()
    if reason:
        print(f"\nregistry sequencing skipped: {reason}")
        return
    sides = ("pg-json", "optout")
    tx = alternate(args.rounds, sides, lambda side: registry_ceiling(side, args.appenders, args.batch, args.seconds))
    print(
        f"\nappends on one PostgreSQL: {args.appenders} appenders x batches of {args.batch} records, "
        f"{args.seconds:.0f}s a round, {args.rounds} rounds alternating: transactions/s median (min–max)"
    )
    for side in sides:
        records = [t * args.batch for t in tx[side]]
        print(f"  {side:<8} {spread(tx[side]):>24} transactions/s  {spread(records):>30} records/s")
    print(f"  optout / pg-json: {ratio(tx['optout'], tx['pg-json'])}")


# -- Redis memory ------------------------------------------------------------------------------------------------


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
    ap.add_argument("--rounds", type=int, default=5, help="rounds of each side (default 5)")
    ap.add_argument("--origins", type=int, default=20)
    ap.add_argument("--pages", type=int, default=100, help="pages per origin")
    ap.add_argument("--workers", default="2", help="fleet sizes, e.g. 1,2,4 (default 2)")
    ap.add_argument("--gc", choices=("freeze", "default"), default="freeze", help="GC settings of both sides")
    ap.add_argument("--appenders", type=int, default=8, help="concurrent registry appenders")
    ap.add_argument("--batch", type=int, default=50, help="records per append transaction")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds of appending a round")
    ap.add_argument("--registry-only", action="store_true", help="skip the crawl table")
    ap.add_argument("--quick", action="store_true", help="10 origins x 50 pages, 2 s of appending")
    args = ap.parse_args()
    if args.quick:
        args.origins, args.pages, args.seconds = 10, 50, 2.0
    print(command_line())
    if not args.registry_only:
        crawl_table(args)
    sequencing_table(args)
    mem = redis_memory_per_origin()
    print(
        f"\nRedis memory per cached origin: {mem['bytes_per_origin']:,.0f} bytes (robots.txt + tdmrep.json 404 + "
        f"ai.txt 404 + Crawl-delay clock), over {mem['origins']} real-world-shaped robots.txt files "
        f"(median {mem['robots_median']:,.0f} B, mean {mem['robots_mean']:,.0f} B)"
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--peer-worker":
        peer_worker(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "freeze")
    else:
        main()
