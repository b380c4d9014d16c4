"""Benchmark: registry appends through the public API (``Registry.append``), the record path before issue 18 and
its rfc8785 peer, and what a team would write without a verifiable log, side by side (issue 18: >= 100k records/s
end to end into SQLite in batches of 10,000; >= 20k records/s with 4 concurrent PostgreSQL appenders).

Records are built before timing (building them is the crawler's job, not the registry's). Each round appends the
same records to a fresh store, timed with time.perf_counter, on every side in turn:

  SQLite (synchronous=FULL, WAL, one transaction per ``--batch`` records on every side, default 10,000)
    optout           Registry.append(records): schema check (msgspec) + JCS (msgspec, sorted keys), leaf hashes,
                     tiles, per-site index, entries, one signed checkpoint per transaction -- the call a user makes
    optout-noindex   the same call given no sites (a bench-only patch), so no per-site index is written. The issue's
                     gates: >= 100k records/s here, and the index costing <= 20 % of it (optout / optout-noindex
                     >= 0.8, the ratio of the medians)
    optout-previous  the same call with the record path before issue 18 (hand-written recursive validation, stdlib
                     json with sorted keys), kept in tests/test_canonical_reference.py
    optout-rfc8785   the same call with the previous validation and the ``rfc8785`` reference writer
    sqlite-json      the obvious alternative: json.dumps each record, INSERT it into a plain table, COMMIT
    jsonl-fsync      the other obvious one: json.dumps each record into an append-only JSON Lines file, fsync per batch
  PostgreSQL (4 appender processes at once, each ``append`` of ``--batch`` records one transaction)
    optout           Registry.append in each process (schema + JCS + COPY under the seq_coord row lock), then one
                     Registry.checkpoint() (the single integrator: read the entries, hash, tiles, site index, sign,
                     compare-and-swap the head); both timed
    optout-previous  the same with the previous record path
    pg-json          4 processes COPYing json.dumps of each record into a plain table

The sides run one at a time, alternating (peers.py), and the medians of ``--rounds`` rounds (min–max) and the
ratios to each peer are printed. The other optout sides swap the record path by replacing ``canonical`` in record.py
and registry.py for their round. PostgreSQL is skipped (with the reason printed) if the server
does not answer.

Run: python bench/bench_registry.py [--rounds 5] [--records 200000] [--batch 10000] [--pg-records 100000]
     [--appenders 4] [--pg-url URL] [--quick]   (the default run: 4 to 8 minutes, depending on what else runs)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.peers import alternate, command_line, fresh_pg_schema, ratio, spread
from optout_registry import record
from optout_registry.record import new_record
from optout_registry.registry import Registry
from tests.test_canonical_reference import previous_canonical, reference_canonical

GATE = 100_000
PG_GATE = 20_000
BATCH = 10_000
# The record path each "optout" side runs Registry.append with.
PATHS: dict[str, Callable[[Any], bytes]] = {
    "optout": record.canonical,
    "optout-previous": previous_canonical,
    "optout-rfc8785": reference_canonical,
}


@contextmanager
def record_path(side: str) -> Iterator[None]:
    """Run Registry.append with ``side``'s record path: ``canonical`` replaced in record.py and wherever the
    registry module holds its own reference to it."""
    from optout_registry import registry

    modules = [m for m in (record, registry) if getattr(m, "canonical", None) is PATHS["optout"]]
    for module in modules:
        module.canonical = PATHS[side]  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in modules:
            module.canonical = PATHS["optout"]  # type: ignore[attr-defined]


@contextmanager
def index_disabled(side: str) -> Iterator[None]:
    """For a "without-index" side only (any other name runs the code as it is): SQLite's appends are given no
    sites and PostgreSQL's integrator skips its site-tree work and the sites note (bench-only patches, undone on
    exit)."""
    from optout_registry.store_postgres import PostgresStore

    if side != "without-index":
        yield
        return
    saved = [(PostgresStore, name, getattr(PostgresStore, name)) for name in ("_write_sites", "_catch_up_sites")]
    saved += [(Registry, name, Registry.__dict__[name]) for name in ("_sites_of", "_sign_sites")]
    for owner, name, _ in saved[:2]:
        setattr(owner, name, lambda self, *a, **k: None)
    Registry._sites_of = staticmethod(lambda records: None)  # type: ignore[method-assign,assignment]
    Registry._sign_sites = None  # type: ignore[assignment,method-assign]  # no sites note: it signs the site map
    try:
        yield
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


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


SQLITE_SIDES = [*PATHS, "optout-noindex", "sqlite-json", "jsonl-fsync"]


def bench_sqlite(records: list[dict[str, Any]], rounds: int, batch: int) -> None:
    n = len(records)
    for side in PATHS:  # every path writes the same leaves (the tests prove it; a bench must not time a wrong one)
        with record_path(side):
            assert [record.canonical(r) for r in records[:100]] == [PATHS["optout-rfc8785"](r) for r in records[:100]]

    alone: dict[str, list[float]] = {side: [] for side in PATHS}

    def run(side: str) -> float:
        with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
            if side in PATHS:  # the record path alone first, next to its append (shares come from one round)
                alone[side].append(n / _time_path(PATHS[side], records))
                with record_path(side):
                    return n / sqlite_optout(records, Path(tmp), batch)
            if side == "optout-noindex":
                with index_disabled("without-index"):
                    return n / sqlite_optout(records, Path(tmp), batch)
            return n / (sqlite_json if side == "sqlite-json" else jsonl_fsync)(records, Path(tmp), batch)

    rates = alternate(rounds, SQLITE_SIDES, run)
    print(
        f"\nSQLite, {n:,} records a round, {batch:,} a transaction, {rounds} rounds alternating: "
        "records/s median (min–max)"
    )
    for side, values in rates.items():
        print(f"  {side:<17}{spread(values):>28}")
    for peer in SQLITE_SIDES[1:]:
        print(f"  optout / {peer:<16} {ratio(rates['optout'], rates[peer])}")
    bare, full = statistics.median(rates["optout-noindex"]), statistics.median(rates["optout"])
    print(
        f"  gate >= {GATE:,} records/s on Registry.append without the per-site index (median of the rounds): "
        f"{'PASS' if bare >= GATE else 'FAIL'} ({bare:,.0f}/s)\n"
        f"  gate: the per-site index costs <= 20 % of that (issue 18), optout / optout-noindex {full / bare:.3f} "
        f"(the ratio of the medians, as above): {'PASS' if full >= 0.8 * bare else 'FAIL'} ({full:,.0f}/s with it)"
    )
    print("  the record path alone (validation + JCS; one pass over the records just before each append round):")
    for side, values in alone.items():
        shares = [a / b for a, b in zip(rates[side], values, strict=True)]
        print(
            f"    {side:<17}{spread(values):>28}   share of its Registry.append time: median "
            f"{statistics.median(shares):.0%} ({min(shares):.0%}–{max(shares):.0%})"
        )


def _time_path(path: Callable[[Any], bytes], records: list[dict[str, Any]]) -> float:
    t = time.perf_counter()
    for r in records:
        path(r)
    return time.perf_counter() - t


# -- PostgreSQL: concurrent appenders ------------------------------------------------------------------------------


def _pg_appender(
    side: str, url: str, key: str, records: list[dict[str, Any]], batch: int, start: Any, done: Any
) -> None:
    """One appender process: connect, wait for the others, append its share, report when it finished."""
    if side == "pg-json":
        import psycopg

        with psycopg.connect(url) as conn:
            start.wait()
            for chunk in batches(records, batch):
                with conn.cursor() as cur, cur.copy("COPY record(body) FROM STDIN") as copy:
                    for r in chunk:
                        copy.write_row((json.dumps(r),))
                conn.commit()
            done.put(time.perf_counter())
        return
    with record_path(side), Registry.open(url, key=Path(key), batch_size=batch) as reg:
        start.wait()
        for chunk in batches(records, batch):
            reg.append(chunk)
        done.put(time.perf_counter())


def pg_concurrent(side: str, url: str, records: list[dict[str, Any]], appenders: int, batch: int) -> dict[str, float]:
    """``appenders`` processes append a share of ``records`` each at once; then one integrator (optout sides).
    Sequencing rate = all records / (last appender done - all started)."""
    ctx = multiprocessing.get_context("fork")  # the children inherit the built records
    start, done = ctx.Barrier(appenders + 1), ctx.Queue()
    n = len(records)
    with tempfile.TemporaryDirectory() as tmp:
        key = str(Path(tmp) / "k")
        if side == "pg-json":
            import psycopg

            with psycopg.connect(url) as conn:
                conn.execute("CREATE TABLE record(idx bigserial PRIMARY KEY, body text NOT NULL)")
        else:
            with Registry.open(url, key=Path(key), batch_size=batch) as reg:
                reg.checkpoint()  # key, tables and the empty tree's checkpoint outside the timed part
        share = -(-n // appenders)
        procs = [
            ctx.Process(
                target=_pg_appender, args=(side, url, key, records[i * share : (i + 1) * share], batch, start, done)
            )
            for i in range(appenders)
        ]
        for proc in procs:
            proc.start()
        start.wait()
        t0 = time.perf_counter()
        ends = [done.get(timeout=600) for _ in procs]
        for proc in procs:
            proc.join()
            if proc.exitcode:
                raise RuntimeError(f"{side}: an appender process failed (exit code {proc.exitcode})")
        seq = max(ends) - t0
        if side == "pg-json":
            return {"sequence": n / seq, "total": n / seq}
        with Registry.open(url, key=Path(key), batch_size=batch) as reg:
            t = time.perf_counter()
            reg.checkpoint()
            integ = time.perf_counter() - t
            assert reg.size == n
    return {"sequence": n / seq, "integrate": n / integ, "total": n / (seq + integ)}


def bench_postgres(records: list[dict[str, Any]], rounds: int, appenders: int, batch: int) -> None:
    from tests.support.registry import pg_available

    reason = pg_available()
    if reason:
        print(f"\nPostgreSQL skipped: {reason}")
        return
    sides = ["optout", "optout-previous", "pg-json"]

    def run(side: str) -> dict[str, float]:
        with fresh_pg_schema() as schema_url:
            return pg_concurrent(side, schema_url, records, appenders, batch)

    results = alternate(rounds, sides, run)
    print(
        f"\nPostgreSQL, {len(records):,} records a round from {appenders} appender processes at once, {batch:,} an "
        f"append, {rounds} rounds alternating: records/s median (min–max)"
    )
    for side in sides:
        for part, what in (("sequence", "appends"), ("integrate", "integrator"), ("total", "both")):
            if part in results[side][0] and (side != "pg-json" or part == "total"):
                label = f"{side} {what}" if side != "pg-json" else "pg-json (COPY of json.dumps)"
                print(f"  {label:<28}{spread([r[part] for r in results[side]]):>28}")
    seq = [r["sequence"] for r in results["optout"]]
    print(
        f"  optout appends / optout-previous appends  {ratio(seq, [r['sequence'] for r in results['optout-previous']])}"
    )
    print(f"  optout appends / pg-json                  {ratio(seq, [r['total'] for r in results['pg-json']])}")
    median = statistics.median(seq)
    print(
        f"  gate >= {PG_GATE:,} records/s with {appenders} concurrent appenders (Registry.append, median): "
        f"{'PASS' if median >= PG_GATE else 'FAIL'} ({median:,.0f}/s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every side (default 5)")
    parser.add_argument("--records", type=int, default=200_000, help="SQLite records a round (default 200k)")
    parser.add_argument("--pg-records", type=int, default=100_000, help="PostgreSQL records a round (default 100k)")
    parser.add_argument("--appenders", type=int, default=4, help="concurrent PostgreSQL appenders (default 4)")
    parser.add_argument("--pg-url", default=os.environ.get("OPTOUT_TEST_PG_URL"), help="default: the tests' server")
    parser.add_argument("--batch", type=int, default=BATCH, help=f"records an append call (default {BATCH:,})")
    parser.add_argument("--quick", action="store_true", help="20k / 20k records")
    args = parser.parse_args()
    if args.pg_url:
        os.environ["OPTOUT_TEST_PG_URL"] = args.pg_url  # read by tests.support.registry
    n, pg_n = (20_000, 20_000) if args.quick else (args.records, args.pg_records)
    print(command_line())
    records = build_records(max(n, pg_n))
    bench_sqlite(records[:n], args.rounds, args.batch)
    bench_postgres(records[:pg_n], args.rounds, args.appenders, args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
