"""Shared helpers for the registry storage tests: deterministic records, a PostgreSQL schema per test, and raw
database access that bypasses the append-only triggers (to play the attacker in tamper tests)."""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from optout_registry.store_common import pack_run, run_indices

PG_BASE = os.environ.get("OPTOUT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
ROBOTS = b"User-agent: ExampleBot\nDisallow: /2026/\n"


def make_record(i: int, site: str = "example.net") -> dict[str, Any]:
    """Record number ``i``: fully deterministic (id, salt, time), so a test can recompute what index i holds."""
    return copy.deepcopy(_make_record(i, site))


@functools.lru_cache(maxsize=20_000)
def _make_record(i: int, site: str) -> dict[str, Any]:
    from optout_registry.record import evidence_ref, new_record

    when = T0 + timedelta(days=i % 30, seconds=i)
    return new_record(
        url=f"https://news.{site}/2026/{i}.html",
        mechanism="robots.txt",
        purposes=["train-ai"],
        rule={"group": "ExampleBot", "directive": "Disallow", "pattern": "/2026/", "line": 2},
        decision="not_fetched",
        agent_token="ExampleBot",
        operator="example-crawler.com",
        node="node-1",
        evidence=evidence_ref(f"https://news.{site}/robots.txt", 200, ROBOTS, when),
        observed_at=when,
        record_id=str(uuid.UUID(bytes=hashlib.sha256(f"id{i}{site}".encode()).digest()[:16], version=4)),
        salt=hashlib.sha256(f"salt{i}{site}".encode()).digest()[:16],
    )


def make_records(n: int, start: int = 0, site: str = "example.net") -> list[dict[str, Any]]:
    return [make_record(i, site) for i in range(start, start + n)]


def pg_available() -> str | None:
    """None if the test PostgreSQL server answers, else the reason it does not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(PG_BASE, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"no PostgreSQL at {PG_BASE}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return None


def pg_schema_url() -> Iterator[str]:
    """Yield the URL of a fresh schema (search_path set through libpq options); drop it afterwards."""
    import pytest  # here, not at import time: crash-test writer subprocesses import this module too

    reason = pg_available()
    if reason:
        print(f"SKIP PostgreSQL registry tests: {reason}")
        pytest.skip(reason)
    import psycopg

    schema = f"optout_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_BASE}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


class Raw:
    """Direct SQL on a registry's database with the append-only triggers out of the way (the attacker's view)."""

    def __init__(self, url: str) -> None:
        from optout_registry.registry import parse_url

        self.kind, target, _ = parse_url(url)
        self.url = target
        if self.kind == "sqlite":
            self.conn: Any = sqlite3.connect(target, isolation_level=None)
        else:
            import psycopg

            self.conn = psycopg.connect(target, autocommit=True)
            self.conn.execute("SET session_replication_role = replica")  # disables triggers for this session

    def q(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.kind == "postgresql":
            sql = sql.replace("?", "%s")
        cur = self.conn.execute(sql, params)
        try:
            return [tuple(r) for r in cur.fetchall()]
        except Exception:
            return []

    def site_indices(self, site: str) -> list[int]:
        """The log indices a site's runs list, as stored."""
        rows = self.q("SELECT first, idxs FROM site_run WHERE site = ? ORDER BY first", (site,))
        return [idx for first, blob in rows for idx in run_indices(int(first), bytes(blob))]

    def set_site_indices(self, site: str, indices: list[int]) -> None:
        """Rewrite a site's runs so that they list exactly ``indices`` (the attacker's edit of the index)."""
        self.tamper("DELETE FROM site_run WHERE site = ?", (site,))
        if indices:
            self.tamper(
                "INSERT INTO site_run(site, first, idxs) VALUES (?, ?, ?)", (site, indices[0], pack_run(indices))
            )

    def tamper(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """Run a statement the triggers would refuse (SQLite: drop the triggers for the duration)."""
        if self.kind == "sqlite":
            triggers = self.conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
            for name, _ in triggers:
                self.conn.execute(f"DROP TRIGGER {name}")
            try:
                self.conn.execute(sql, params)
            finally:
                for _, ddl in triggers:
                    self.conn.execute(ddl)
        else:
            self.conn.execute(sql.replace("?", "%s"), params)

    def close(self) -> None:
        self.conn.close()


def spec_sample() -> dict[str, Any]:
    """The sample record of REGISTRY.md §8, whose exact leaf bytes and leaf hash the spec publishes."""
    return {
        "v": 1,
        "type": "optout.honoured",
        "id": "0192f3a4-5b6c-7d8e-9f00-112233445566",
        "salt": "q83vEjRWeJCrze8SNFZ4kA",
        "observed_at": "2026-11-22T23:59:59.123456Z",
        "crawler": {"operator": "example-crawler.com", "agent_token": "ExampleBot", "node": "node-7"},
        "target": {"url": "https://news.example.net/2026/11/article.html", "site": "example.net"},
        "mechanism": "robots.txt",
        "purposes": ["AI_TRAIN", "TDM"],
        "rule": {"group": "ExampleBot", "directive": "Disallow", "pattern": "/2026/", "line": 4},
        "decision": "not_fetched",
        "evidence": {
            "url": "https://news.example.net/robots.txt",
            "fetched_at": "2026-11-22T23:40:02Z",
            "status": 200,
            "sha256": "e2f2df61401cb6e1b79a4b048190dcddef22ccb60941cc1ed0a78c7cc7d103dc",
            "length": 41,
        },
    }
