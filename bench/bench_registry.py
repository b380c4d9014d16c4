"""Benchmark: registry appends through the public API (``Registry.append``), against what a team would write
without a verifiable log, side by side (REGISTRY.md §6.10 design gate: >= 50k records/s single core into SQLite).

Records are built before timing (building them is the crawler's job, not the registry's). Each round appends the
same records to a fresh store, timed with time.perf_counter, on every side in turn:

  SQLite (synchronous=FULL, WAL, one transaction per ``--batch`` records on every side, default 20,000)
    optout        Registry.append(records): schema validation + JCS (record.canonical), leaf hashes, tiles,
                  entries, one signed checkpoint per transaction -- the call a user makes; the gate is judged here
    sqlite-json   the obvious alternative: json.dumps each record, INSERT it into a plain table, COMMIT
    jsonl-fsync   the other obvious one: json.dumps each record into an append-only JSON Lines file, fsync per batch
  PostgreSQL (one transaction per batch of 5,000 records on both sides)
    optout        Registry.append (validation + COPY under the seq_coord row lock), then Registry.checkpoint()
                  (integrate: read the entries, hash, tiles, sign, compare-and-swap the head); both timed
    pg-json       json.dumps each record and COPY it into a plain table

The sides run one at a time, alternating (peers.py), and the medians of ``--rounds`` rounds (min–max) and the
ratios to each peer are printed. PostgreSQL is skipped (with the reason printed) if the server does not answer.

Run: python bench/bench_registry.py [--rounds 5] [--records 100000] [--batch 20000] [--pg-records 50000]
     [--pg-url URL] [--quick]   (the default run: 1 to 3 minutes, depending on what else runs)
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.peers import alternate, command_line, fresh_pg_schema, ratio, spread
from optout_registry.record import canonical, new_record
from optout_registry.registry import DEFAULT_BATCH, Registry

GATE = 50_000
PG_BATCH = 5_000


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


def batches(records: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [records[start : start + size] for start in range(0, len(records), size)]


# -- SQLite ------------------------------------------------------------------------------------------------------


def sqlite_optout(records: list[dict[str, Any]], tmp: Path, batch: int) -> float:
    with Registry.open(tmp / "registry.db", batch_size=batch) as reg:
        reg.vkey  # noqa: B018 - generate the signing key outside the timed part
        t = time.perf_counter()
        for chunk in batches(records, batch):
            reg.append(chunk)
        seconds = time.perf_counter() - t
        assert reg.size == len(records)
    return seconds


def sqlite_json(records: list[dict[str, Any]], tmp: Path, batch: int) -> float:
    conn = sqlite3.connect(tmp / "plain.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE record(idx INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    t = time.perf_counter()
    for chunk in batches(records, batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO record(body) VALUES (?)", [(json.dumps(r),) for r in chunk])
        conn.execute("COMMIT")
    seconds = time.perf_counter() - t
    assert conn.execute("SELECT count(*) FROM record").fetchone()[0] == len(records)
    conn.close()
    return seconds


def jsonl_fsync(records: list[dict[str, Any]], tmp: Path, batch: int) -> float:
    t = time.perf_counter()
    with open(tmp / "records.jsonl", "a", encoding="utf-8") as f:
        for chunk in batches(records, batch):
            f.write("".join(json.dumps(r) + "\n" for r in chunk))
            f.flush()
            os.fsync(f.fileno())
    return time.perf_counter() - t


SQLITE_SIDES = {"optout": sqlite_optout, "sqlite-json": sqlite_json, "jsonl-fsync": jsonl_fsync}


def bench_sqlite(records: list[dict[str, Any]], rounds: int, batch: int) -> None:
    n = len(records)

    def run(side: str) -> float:
        with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
            return n / SQLITE_SIDES[side](records, Path(tmp), batch)

    rates = alternate(rounds, list(SQLITE_SIDES), run)
    print(
        f"\nSQLite, {n:,} records a round, {batch:,} a transaction, {rounds} rounds alternating: "
        "records/s median (min–max)"
    )
    for side, values in rates.items():
        print(f"  {side:<14}{spread(values):>28}")
    for peer in ("sqlite-json", "jsonl-fsync"):
        print(f"  optout / {peer:<12}  {ratio(rates['optout'], rates[peer])}")
    median = statistics.median(rates["optout"])
    print(
        f"  gate >= {GATE:,} records/s on Registry.append (median of the rounds): "
        f"{'PASS' if median >= GATE else 'FAIL'} ({median:,.0f}/s)"
    )
    t = time.perf_counter()
    for r in records:
        canonical(r)
    canon = time.perf_counter() - t
    print(
        f"  of Registry.append's time, validation + JCS (record.canonical) alone: {n / canon:,.0f} records/s, "
        f"{canon * median / n:.0%} of it (one pass, for the breakdown)"
    )


# -- PostgreSQL --------------------------------------------------------------------------------------------------


def pg_optout(url: str, records: list[dict[str, Any]]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, Registry.open(url, key=Path(tmp) / "k", batch_size=PG_BATCH) as reg:
        reg.checkpoint()  # creates the key and the empty tree's checkpoint outside the timed part
        t = time.perf_counter()
        reg.append(records)
        seq = time.perf_counter() - t
        t = time.perf_counter()
        reg.checkpoint()
        integ = time.perf_counter() - t
        assert reg.size == len(records)
    n = len(records)
    return {"sequence": n / seq, "integrate": n / integ, "total": n / (seq + integ)}


def pg_json(url: str, records: list[dict[str, Any]]) -> dict[str, float]:
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE record(idx bigserial PRIMARY KEY, body text NOT NULL)")
        conn.commit()
        t = time.perf_counter()
        for chunk in batches(records, PG_BATCH):
            with conn.cursor() as cur, cur.copy("COPY record(body) FROM STDIN") as copy:
                for r in chunk:
                    copy.write_row((json.dumps(r),))
            conn.commit()
        seconds = time.perf_counter() - t
        assert conn.execute("SELECT count(*) FROM record").fetchone()[0] == len(records)  # type: ignore[index]
    return {"total": len(records) / seconds}


def bench_postgres(records: list[dict[str, Any]], rounds: int) -> None:
    from tests.registry_helpers import pg_available

    reason = pg_available()
    if reason:
        print(f"\nPostgreSQL skipped: {reason}")
        return
    sides = {"optout": pg_optout, "pg-json": pg_json}

    def run(side: str) -> dict[str, float]:
        with fresh_pg_schema() as schema_url:
            return sides[side](schema_url, records)

    results = alternate(rounds, list(sides), run)
    ours, peer = results["optout"], [r["total"] for r in results["pg-json"]]
    print(f"\nPostgreSQL, {len(records):,} records a round, {rounds} rounds alternating: records/s median (min–max)")
    print(f"  optout sequence (Registry.append)       {spread([r['sequence'] for r in ours]):>28}")
    print(f"  optout integrate (Registry.checkpoint)  {spread([r['integrate'] for r in ours]):>28}")
    print(f"  optout both                             {spread([r['total'] for r in ours]):>28}")
    print(f"  pg-json (COPY of json.dumps)            {spread(peer):>28}")
    print(f"  optout sequence / pg-json  {ratio([r['sequence'] for r in ours], peer)}")
    print(f"  optout both / pg-json      {ratio([r['total'] for r in ours], peer)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every side (default 5)")
    parser.add_argument("--records", type=int, default=100_000, help="SQLite records a round (default 100k)")
    parser.add_argument("--pg-records", type=int, default=50_000, help="PostgreSQL records a round (default 50k)")
    parser.add_argument("--pg-url", default=os.environ.get("OPTOUT_TEST_PG_URL"), help="default: the tests' server")
    parser.add_argument(
        "--batch", type=int, default=DEFAULT_BATCH, help=f"SQLite records a transaction (default {DEFAULT_BATCH:,})"
    )
    parser.add_argument("--quick", action="store_true", help="20k / 10k records")
    args = parser.parse_args()
    if args.pg_url:
        os.environ["OPTOUT_TEST_PG_URL"] = args.pg_url  # read by tests.registry_helpers
    n, pg_n = (20_000, 10_000) if args.quick else (args.records, args.pg_records)
    print(command_line())
    records = build_records(max(n, pg_n))
    bench_sqlite(records[:n], args.rounds, args.batch)
    bench_postgres(records[:pg_n], args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
