"""Load test of the rights-holder service: one site's records pages from a 10-million-entry registry.

    python bench/bench_service.py [--records 10000000] [--sites 10000] [--duration 15] [--connections 8]

1. Builds (once; cached under /tmp/optout-bench-service-<N>) a SQLite registry of N valid, canonical records
   spread over ``--sites`` sites, through a bulk path that appending record by record could not match: leaves
   rendered from a template (each is checked to be canonical for a sample), one TileBuilder pass for the tiles,
   one signed checkpoint, and the service's per-site index written in (site, idx) order. The result is an
   ordinary registry: ``optout registry check`` accepts it and the service opens it unchanged.
2. Starts ``optout serve`` on 127.0.0.1 (a separate process, so the client's CPU is not the server's; the
   read rate limit is raised so one client may send hundreds of requests a second, the limiter still runs).
3. Mints a holder token for each queried site (with the service's own key, as ownership verification would),
   then keeps ``--connections`` keep-alive HTTP/1.1 connections busy for ``--duration`` seconds with requests
   for random sites' records pages (limit 50, a random cursor inside the site), and prints requests/s, latency
   percentiles, errors and a correctness check (every record returned belongs to the site asked for).

Loopback only, bounded in time and count; it stops by itself. Target on the 2-core machine: >= 500 req/s with
p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
ROBOTS = b"User-agent: ExampleBot\nDisallow: /\n"
ROBOTS_SHA = hashlib.sha256(ROBOTS).hexdigest()
MECHANISMS = ("robots.txt", "tdmrep.wellknown", "x-robots-tag", "content-signal", "meta-robots")
DECISIONS = ("not_fetched", "fetched_not_stored", "excluded_from_corpus")
STEP_US = 3_000_000  # record i is observed 3*i seconds after T0: 10M records span ~347 days
CHUNK = 200_000


def site_name(s: int) -> str:
    return f"site{s:05d}.com"


def observed(i: int) -> tuple[str, int]:
    when = T0 + timedelta(microseconds=i * STEP_US)
    us = int((when - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds()) * 1_000_000
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), us


def leaf_for(i: int, sites: int) -> bytes:
    """Record i as canonical JCS bytes (keys sorted, no whitespace), without the per-record validation cost."""
    s = site_name(i % sites)
    at, _ = observed(i)
    return (
        '{"crawler":{"agent_token":"ExampleBot","node":"bench","operator":"example-crawler.com",'  # noqa: UP031
        '"software":"optout/0.1"},"decision":"%s","evidence":{"fetched_at":"%s","length":%d,"sha256":"%s",'
        '"status":200,"url":"https://www.%s/robots.txt"},"id":"%08x-0000-4000-8000-%012x","mechanism":"%s",'
        '"observed_at":"%s","purposes":["AI_TRAIN","TDM"],"rule":{"directive":"Disallow","group":"ExampleBot",'
        '"line":2,"pattern":"/"},"salt":"%021dA","target":{"host":"www.%s","site":"%s",'
        '"url":"https://www.%s/articles/%d.html"},"type":"optout.honoured","v":1}'
        % (
            DECISIONS[i % len(DECISIONS)],
            at,
            len(ROBOTS),
            ROBOTS_SHA,
            s,
            i,
            i,
            MECHANISMS[i % len(MECHANISMS)],
            at,
            i,
            s,
            s,
            s,
            i,
        )
    ).encode("ascii")


def build(cache: Path, n: int, sites: int) -> str:
    """Create the cached registry unless a complete one is there; return its URL."""
    from optout_registry.merkle import leaf_hash
    from optout_registry.note import Checkpoint
    from optout_registry.record import parse_leaf
    from optout_registry.registry import Registry
    from optout_registry.service.store import ServiceStore
    from optout_registry.tiles import TileBuilder

    done = cache / "complete.json"
    url = f"sqlite:///{cache / 'registry.db'}"
    if done.exists() and json.loads(done.read_text()) == {"records": n, "sites": sites}:
        print(f"using cached registry {cache} ({n:,} records, {sites:,} sites)")
        return url
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    for i in (0, 1, n // 2, n - 1):
        parse_leaf(leaf_for(i, sites))  # the template really yields valid canonical records
    started = time.monotonic()
    with Registry.open(url, origin="bench.example/optout-registry") as reg:
        signer = reg._signer()
        origin = reg.origin
    db = sqlite3.connect(cache / "registry.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-200000")
    builder = TileBuilder(0, lambda level, k: None)
    tiles: dict[tuple[int, int], bytes] = {}
    db.execute("BEGIN")
    db.execute("INSERT OR IGNORE INTO evidence(sha256, body) VALUES (?, ?)", (bytes.fromhex(ROBOTS_SHA), ROBOTS))
    for start in range(0, n, CHUNK):
        end = min(n, start + CHUNK)
        leaves = [leaf_for(i, sites) for i in range(start, end)]
        db.executemany("INSERT INTO entry(idx, leaf) VALUES (?, ?)", zip(range(start, end), leaves, strict=True))
        tiles.update(builder.add([leaf_hash(leaf) for leaf in leaves]))
        full = [(lv, k, d) for (lv, k), d in tiles.items() if len(d) == 8192]
        db.executemany("INSERT INTO tile(level, n, data) VALUES (?, ?, ?)", full)
        for lv, k, _ in full:
            del tiles[(lv, k)]
        if (end // CHUNK) % 10 == 0 or end == n:
            print(f"  entries {end:,}/{n:,} ({time.monotonic() - started:.0f}s)", flush=True)
    db.executemany("INSERT INTO tile(level, n, data) VALUES (?, ?, ?)", [(lv, k, d) for (lv, k), d in tiles.items()])
    root = builder.root()
    note = signer.sign(Checkpoint(origin, n, root))
    db.execute(
        "INSERT INTO checkpoint(size, root, note, created_at) VALUES (?, ?, ?, ?)",
        (n, root, note, datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
    )
    db.execute("COMMIT")
    db.execute("PRAGMA journal_mode=WAL")
    db.close()

    store = ServiceStore(url)  # creates the service database and its schema
    store.bind(origin)
    store.close()
    svc = sqlite3.connect(cache / "registry.db.service.db", isolation_level=None)
    svc.execute("PRAGMA synchronous=OFF")
    svc.execute("BEGIN")

    def rows():  # (site, idx) order: B-tree appends, not random inserts
        for s in range(sites):
            name = site_name(s)
            for i in range(s, n, sites):
                yield name, i, observed(i)[1], MECHANISMS[i % len(MECHANISMS)], DECISIONS[i % len(DECISIONS)]

    svc.executemany("INSERT INTO svc_index(site, idx, ts, mechanism, decision) VALUES (?, ?, ?, ?, ?)", rows())
    svc.execute("INSERT OR REPLACE INTO svc_meta(key, value) VALUES ('indexed_upto', ?)", (str(n),))
    svc.execute("COMMIT")
    svc.close()
    done.write_text(json.dumps({"records": n, "sites": sites}))
    print(f"built {n:,} records in {time.monotonic() - started:.0f}s: {cache}")
    return url


async def load(
    port: int, paths: list[tuple[str, str, str]], duration: float, conns: int, warmup: float
) -> tuple[list[float], int, int, int]:
    """Keep-alive HTTP/1.1 clients; returns (latencies of the measured window, errors, bytes, wrong-site records)."""
    latencies: list[float] = []
    errors = wrong = 0
    nbytes = 0
    start = time.monotonic()
    measure_from = start + warmup
    stop = measure_from + duration
    rng = random.Random(7)

    async def worker() -> None:
        nonlocal errors, nbytes, wrong
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        checked = 0
        while time.monotonic() < stop:
            path, site, token = paths[rng.randrange(len(paths))]
            req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
            t = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            dt = time.perf_counter() - t
            if time.monotonic() >= measure_from:
                latencies.append(dt)
                nbytes += len(head) + length
                if not head.startswith(b"HTTP/1.1 200"):
                    errors += 1
                elif checked < 20:  # spot-check content on some responses of every connection
                    checked += 1
                    page = json.loads(body)
                    wrong += sum(1 for r in page["records"] if r["record"]["target"]["site"] != site)
                    wrong += 0 if len(page["records"]) == 50 else 1
        writer.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    return latencies, errors, nbytes, wrong


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--sites", type=int, default=10_000)
    ap.add_argument("--duration", type=float, default=15.0, help="measured seconds (default 15)")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2, help="server worker processes (default 2, one per core)")
    ap.add_argument("--cache", default=None, help="default /tmp/optout-bench-service-<records>")
    args = ap.parse_args()
    cache = Path(args.cache or f"/tmp/optout-bench-service-{args.records}")
    url = build(cache, args.records, args.sites)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "crawler.cli",
        "serve",
        "--registry",
        url,
        "--port",
        str(port),
        "--rate-limit",
        "100000",
        "--burst",
        "100000",
        "--workers",
        str(args.workers),
    ]
    server = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() - t0 > 300:
                    print(server.stderr.read() if server.stderr else "", file=sys.stderr)
                    return 2
                time.sleep(0.2)
        print(f"server up after {time.monotonic() - t0:.1f}s (start-up self-check of the registry included)")
        from optout_registry.service.ownership import TokenSigner

        svc = sqlite3.connect(cache / "registry.db.service.db")
        secret = svc.execute("SELECT value FROM svc_meta WHERE key = 'token_secret'").fetchone()[0]
        svc.close()
        signer = TokenSigner(bytes.fromhex(secret))
        rng = random.Random(1)
        per_site = args.records // args.sites
        paths = []
        for _ in range(2000):
            s = rng.randrange(args.sites)
            name = site_name(s)
            token = signer.issue(name, 3600)[0]
            k = rng.randrange(max(1, per_site - 60))
            cursor = "" if k == 0 else f"&cursor={s + k * args.sites}"
            paths.append((f"/api/v1/sites/{name}/records?limit=50{cursor}", name, token))
        load_before = os.getloadavg()[0]
        lat, errors, nbytes, wrong = asyncio.run(load(port, paths, args.duration, args.connections, args.warmup))
        load_after = os.getloadavg()[0]
    finally:
        server.terminate()
        server.wait(timeout=30)
    lat.sort()
    n = len(lat)

    def pct(p: float) -> float:
        return lat[min(n - 1, int(p * n))] * 1000

    rps = n / args.duration
    print(
        f"records pages of one site from a {args.records:,}-record registry ({args.sites:,} sites, "
        f"~{args.records // args.sites:,} records each), 50 records per page, {args.connections} connections, "
        f"{args.workers} server worker(s), {args.duration:.0f}s measured:"
    )
    print(
        f"  {n:,} requests  {rps:,.0f} req/s  p50 {pct(0.50):.1f} ms  p90 {pct(0.90):.1f} ms  "
        f"p99 {pct(0.99):.1f} ms  max {lat[-1] * 1000:.1f} ms  mean {statistics.fmean(lat) * 1000:.1f} ms"
    )
    print(f"  {nbytes / args.duration / 1e6:.1f} MB/s, errors {errors}, wrong-site or short pages {wrong}")
    print(
        f"  machine: {os.cpu_count()} cores, 1-minute load average {load_before:.1f} before / {load_after:.1f} after "
        "(server + this client alone account for about 2; more means other work shared the cores)"
    )
    ok = rps >= 500 and pct(0.99) < 50 and errors == 0 and wrong == 0
    print(f"  target >= 500 req/s with p99 < 50 ms: {'met' if ok else 'NOT met'}")
    return 0 if errors == 0 and wrong == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
