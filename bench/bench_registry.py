"""Benchmark: registry append throughput into SQLite and PostgreSQL (REGISTRY.md §6.10 design gate: >= 50k
records/s single core into SQLite).

Records are built before timing (building them is the crawler's job, not the registry's). It measures, with
time.perf_counter, on a fresh registry each time:

  sqlite  end-to-end   Registry.append(records): schema validation + JCS (record.canonical), leaf hashes, tiles,
                       entries, one signed checkpoint per 20k-record transaction, synchronous=FULL commits
  sqlite  storage      the same write path fed pre-canonicalised leaves (what a sequencer does when producer
                       processes canonicalise and hash, REGISTRY.md §6.5 step 3) -- the part the gate is about
  postgres sequence    Registry.append (validation + COPY under the seq_coord row lock), many batches
  postgres integrate   checkpoint(): read entries, re-hash, tiles, sign, compare-and-swap the head

PostgreSQL is skipped (with the reason printed) if the server does not answer.

Run: python bench/bench_registry.py [--records N] [--pg-records N] [--pg-url URL] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from optout_registry.merkle import leaf_hash
from optout_registry.record import canonical, new_record
from optout_registry.registry import Registry

GATE = 50_000
PG_DEFAULT = os.environ.get("OPTOUT_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def build_records(n: int) -> list[dict[str, Any]]:
    """Realistic records: ~600 bytes of JCS each, 1,000 sites, robots.txt evidence reference."""
    from datetime import datetime, timezone

    from optout_registry.record import evidence_ref

    body = b"User-agent: ExampleBot\nDisallow: /2026/\n"
    when = datetime(2026, 11, 22, 23, 59, 59, tzinfo=timezone.utc)
    ev = evidence_ref("https://news.example.net/robots.txt", 200, body, when)
    base = new_record(
        url="https://news.example.net/2026/11/article.html",
        mechanism="robots.txt",
        purposes=["train-ai"],
        rule={"group": "ExampleBot", "directive": "Disallow", "pattern": "/2026/", "line": 4},
        decision="not_fetched",
        agent_token="ExampleBot",
        operator="example-crawler.com",
        node="node-7",
        evidence=ev,
        observed_at=when,
    )
    out = []
    for i in range(n):
        site = f"site{i % 1000}.example"
        rec = {**base, "id": str(uuid.UUID(int=i, version=4)), "target": dict(base["target"])}
        rec["target"].update(url=f"https://www.{site}/2026/{i}.html", site=site, host=f"www.{site}")
        out.append(rec)
    return out


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>10,.0f} records/s  ({n:,} in {seconds:.2f} s)"


def bench_sqlite(records: list[dict[str, Any]], leaves: list[bytes]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        with Registry.open(Path(tmp) / "e2e.db") as reg:
            reg.vkey  # noqa: B018 - generate the key outside the timed part
            t = time.perf_counter()
            reg.append(records)
            e2e = time.perf_counter() - t
        with Registry.open(Path(tmp) / "storage.db") as reg:
            store, sign = reg._store, reg._sign
            reg.vkey  # noqa: B018
            t = time.perf_counter()
            for start in range(0, len(leaves), reg.batch_size):
                chunk = leaves[start : start + reg.batch_size]
                store.append(chunk, [leaf_hash(leaf) for leaf in chunk], [], sign)
            storage = time.perf_counter() - t
            assert reg.size == len(leaves) and reg.self_check().ok
    return e2e, storage


def bench_postgres(url: str, records: list[dict[str, Any]]) -> tuple[float, float] | str:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            schema = f"optout_bench_{uuid.uuid4().hex[:8]}"
            conn.execute(f"CREATE SCHEMA {schema}")
    except Exception as exc:
        return f"skipped: no PostgreSQL at {url} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    sep = "&" if "?" in url else "?"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            schema_url = f"{url}{sep}options={quote(f'-csearch_path={schema}')}"
            with Registry.open(schema_url, key=Path(tmp) / "k", batch_size=5_000) as reg:
                reg.checkpoint()
                t = time.perf_counter()
                reg.append(records)
                seq = time.perf_counter() - t
                t = time.perf_counter()
                reg.checkpoint()
                integ = time.perf_counter() - t
                assert reg.size == len(records)
        return seq, integ
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000, help="SQLite records (default 200k)")
    parser.add_argument("--pg-records", type=int, default=50_000, help="PostgreSQL records (default 50k)")
    parser.add_argument("--pg-url", default=PG_DEFAULT)
    parser.add_argument("--quick", action="store_true", help="20k / 10k records")
    args = parser.parse_args()
    n, pg_n = (20_000, 10_000) if args.quick else (args.records, args.pg_records)

    records = build_records(max(n, pg_n))
    t = time.perf_counter()
    leaves = [canonical(r) for r in records[:n]]
    canon = time.perf_counter() - t
    print(f"record.canonical (validate + JCS)  {rate(n, canon)}")
    e2e, storage = bench_sqlite(records[:n], leaves)
    print(f"sqlite   end-to-end append         {rate(n, e2e)}")
    print(
        f"sqlite   storage path (pre-JCS)    {rate(n, storage)}   gate {GATE:,}/s: "
        f"{'PASS' if n / storage >= GATE else 'FAIL'}"
    )
    result = bench_postgres(args.pg_url, records[:pg_n])
    if isinstance(result, str):
        print(f"postgres {result}")
    else:
        seq, integ = result
        print(f"postgres sequence (append)         {rate(pg_n, seq)}")
        print(f"postgres integrate (checkpoint)    {rate(pg_n, integ)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
