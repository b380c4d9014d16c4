"""Load test of the rights-holder service against a minimal Starlette endpoint serving the same pages from the same
store: one site's records pages from a registry of ``--records`` entries.

    python bench/bench_service.py [--records 1000000] [--sites 10000] [--rounds 5] [--duration 5]
                                  [--connections 8] [--workers 2]

1. Builds (once; cached under /tmp/optout-bench-service-<N>) a SQLite registry of N valid, canonical records
   spread over ``--sites`` sites, through a bulk path that appending record by record could not match: leaves
   rendered from a template (each is checked to be canonical for a sample), one TileBuilder pass for the tiles,
   one signed checkpoint, and the service's per-site index written in (site, idx) order. The result is an
   ordinary registry: ``optout registry check`` accepts it and the service opens it unchanged. (10 million
   records took 11 minutes to build the first time on the shared 2-core machine, a million about one; later
   runs reuse them.)
2. Starts two servers on 127.0.0.1, each a separate process with ``--workers`` uvicorn workers:
     optout     ``optout serve`` (FastAPI; the guard, the read rate limiter -- raised so that one client may send
                hundreds of requests a second, but still running --, the token check, the checkpoint and index
                bounds, every leaf re-checked against the site asked for);
     starlette  the peer (``peer_app`` below): one plain Starlette route on the same uvicorn that checks the same
                bearer token (the service's HMAC), reads the page's indices from the same svc_index table and the
                leaves from the same registry file, and answers the same JSON -- the least a team could serve.
3. Mints a holder token for each queried site (with the service's own key, as ownership verification would),
   then, one server at a time, alternating (bench/peers.py), keeps ``--connections`` keep-alive HTTP/1.1
   connections busy for ``--duration`` seconds (after ``--warmup``) with the same sequence of requests for random
   sites' records pages (limit 50, a random cursor inside the site), and prints, per side, the medians of the
   rounds (min–max) of requests/s and latency percentiles, errors and a correctness check (every record returned
   belongs to the site asked for, 50 a page), and the ratios of optout to the peer.

Loopback only, bounded in time and count; it stops by itself. Target on the 2-core machine: >= 500 req/s with
p99 < 50 ms (medians of the rounds).
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peers import alternate, command_line, ratio, spread  # noqa: E402

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


def peer_app() -> Any:
    """The peer (uvicorn factory): ``GET /api/v1/sites/{domain}/records?limit=&cursor=`` from the registry file in
    $BENCH_PEER_REGISTRY and its service index beside it, one SQLite connection of each per worker process."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from optout_registry.service.ownership import TokenSigner

    db = Path(os.environ["BENCH_PEER_REGISTRY"])
    entries = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, check_same_thread=False)
    index = sqlite3.connect(
        f"{db.with_name(db.name + '.service.db').as_uri()}?mode=ro", uri=True, check_same_thread=False
    )
    secret = index.execute("SELECT value FROM svc_meta WHERE key = 'token_secret'").fetchone()[0]
    signer = TokenSigner(bytes.fromhex(secret))

    async def records(request: Request) -> Response:
        site = request.path_params["domain"]
        grant = signer.check(request.headers.get("authorization", "").removeprefix("Bearer "))
        if grant is None or grant.domain != site:
            return Response(status_code=401)
        limit = min(500, int(request.query_params.get("limit", 50)))
        cursor = int(request.query_params.get("cursor", -1))
        sql = "SELECT idx FROM svc_index WHERE site = ? AND idx > ? ORDER BY idx LIMIT ?"
        idxs = [row[0] for row in index.execute(sql, (site, cursor, limit + 1))]
        more, idxs = len(idxs) > limit, idxs[:limit]
        rows = entries.execute(f"SELECT idx, leaf FROM entry WHERE idx IN ({','.join('?' * len(idxs))})", idxs)
        leaves = dict(rows.fetchall())
        items = b",".join(b'{"index":%d,"record":%s}' % (i, leaves[i]) for i in idxs)
        nxt = str(idxs[-1]).encode() if more else b"null"
        body = b'{"site":%s,"next_cursor":%s,"records":[%s]}' % (json.dumps(site).encode(), nxt, items)
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/api/v1/sites/{domain}/records", records)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_servers(url: str, workers: int) -> dict[str, tuple[subprocess.Popen[str], int]]:
    """Both servers, each on a port of its own, one after the other (the peer reads the token key the service
    makes at its first start); a server that does not come up ends the script."""
    ours = [sys.executable, "-m", "crawler.cli", "serve", "--registry", url]
    ours += ["--rate-limit", "100000", "--burst", "100000", "--workers", str(workers), "--port"]
    peer = [sys.executable, "-m", "uvicorn", "bench_service:peer_app", "--factory", "--app-dir", str(ROOT / "bench")]
    peer += ["--host", "127.0.0.1", "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    peer += ["--no-server-header", "--port"]
    env = {**os.environ, "BENCH_PEER_REGISTRY": url.removeprefix("sqlite:///")}
    servers: dict[str, tuple[subprocess.Popen[str], int]] = {}
    for name, cmd in (("optout", ours), ("starlette", peer)):
        port = free_port()
        server = subprocess.Popen([*cmd, str(port)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        servers[name] = (server, port)
        t0 = time.monotonic()
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() - t0 > 300:
                    stop_servers(servers)
                    sys.exit(f"{name} server did not start: {server.stderr.read() if server.stderr else ''}")
                time.sleep(0.2)
        print(f"{name} server up after {time.monotonic() - t0:.1f}s")
    return servers


def stop_servers(servers: dict[str, tuple[subprocess.Popen[str], int]]) -> None:
    for server, _ in servers.values():
        server.terminate()
    for server, _ in servers.values():
        server.wait(timeout=30)


def holder_paths(cache: Path, records: int, sites: int) -> list[tuple[str, str, str]]:
    """2,000 (path, site, holder token) of records pages, tokens minted with the key the service made."""
    from optout_registry.service.ownership import TokenSigner

    svc = sqlite3.connect(cache / "registry.db.service.db")
    secret = svc.execute("SELECT value FROM svc_meta WHERE key = 'token_secret'").fetchone()[0]
    svc.close()
    signer = TokenSigner(bytes.fromhex(secret))
    rng = random.Random(1)
    per_site = records // sites
    paths = []
    for _ in range(2000):
        s = rng.randrange(sites)
        name = site_name(s)
        token = signer.issue(name, 3600)[0]
        k = rng.randrange(max(1, per_site - 60))
        cursor = "" if k == 0 else f"&cursor={s + k * sites}"
        paths.append((f"/api/v1/sites/{name}/records?limit=50{cursor}", name, token))
    return paths


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000, help="default 1M (the README: 10M)")
    ap.add_argument("--sites", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5, help="measured windows of each server (default 5)")
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds a window (default 5)")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each window")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2, help="worker processes of each server (default 2, one a core)")
    ap.add_argument("--cache", default=None, help="default /tmp/optout-bench-service-<records>")
    args = ap.parse_args()
    print(command_line())
    cache = Path(args.cache or f"/tmp/optout-bench-service-{args.records}")
    url = build(cache, args.records, args.sites)

    servers = start_servers(url, args.workers)
    load_before = os.getloadavg()[0]

    def window(side: str) -> dict[str, float]:
        lat, errors, nbytes, wrong = asyncio.run(
            load(servers[side][1], paths, args.duration, args.connections, args.warmup)
        )
        lat.sort()
        n = len(lat)
        return {
            "rps": n / args.duration,
            "p50": lat[n // 2] * 1000,
            "p99": lat[min(n - 1, int(0.99 * n))] * 1000,
            "mbps": nbytes / args.duration / 1e6,
            "errors": errors,
            "wrong": wrong,
        }

    try:
        paths = holder_paths(cache, args.records, args.sites)
        runs = alternate(args.rounds, list(servers), window)
    finally:
        stop_servers(servers)
    load_after = os.getloadavg()[0]
    print(
        f"\nrecords pages of one site from a {args.records:,}-record registry ({args.sites:,} sites, "
        f"~{args.records // args.sites:,} records each), 50 records a page, {args.connections} connections, "
        f"{args.workers} server worker(s) each, {args.rounds} windows of {args.duration:.0f}s each, alternating: "
        "median (min–max)"
    )
    print(f"  {'server':<11}{'req/s':>24}{'p50 ms':>22}{'p99 ms':>22}{'MB/s':>8}{'errors':>8}{'wrong':>7}")
    for side, rs in runs.items():
        print(
            f"  {side:<11}{spread([r['rps'] for r in rs]):>24}{spread([r['p50'] for r in rs], '.1f'):>22}"
            f"{spread([r['p99'] for r in rs], '.1f'):>22}{statistics.median(r['mbps'] for r in rs):>8.1f}"
            f"{sum(r['errors'] for r in rs):>8}{sum(r['wrong'] for r in rs):>7}"
        )
    ours, peer = runs["optout"], runs["starlette"]
    print(f"  optout / starlette req/s: {ratio([r['rps'] for r in ours], [r['rps'] for r in peer])}")
    print(f"  optout / starlette p99:   {ratio([r['p99'] for r in ours], [r['p99'] for r in peer])}")
    print(
        f"  machine: {os.cpu_count()} cores, 1-minute load average {load_before:.1f} before / {load_after:.1f} after "
        "(the server measured + this client alone account for about 2; more means other work shared the cores)"
    )
    rps, p99 = statistics.median(r["rps"] for r in ours), statistics.median(r["p99"] for r in ours)
    print(f"  target >= 500 req/s with p99 < 50 ms: {'met' if rps >= 500 and p99 < 50 else 'NOT met'}")
    failed = any(r["errors"] or r["wrong"] for rs in runs.values() for r in rs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
