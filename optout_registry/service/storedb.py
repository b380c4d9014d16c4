"""The service database's tables (for SQLite and for PostgreSQL) and the small connection pool the store uses.

The tables are described in store.py, which is the only module that reads or writes them; here are their
definitions, kept side by side so the two dialects stay in step, and the plumbing beneath the store.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS svc_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS svc_index(site TEXT NOT NULL, idx INTEGER NOT NULL, ts INTEGER NOT NULL,
                                     mechanism TEXT NOT NULL, decision TEXT NOT NULL,
                                     PRIMARY KEY(site, idx)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS svc_index_site_ts ON svc_index(site, ts);
CREATE TABLE IF NOT EXISTS svc_challenge(id TEXT PRIMARY KEY, domain TEXT NOT NULL, method TEXT NOT NULL,
                                         token TEXT NOT NULL, secret_sha256 TEXT NOT NULL, created INTEGER NOT NULL,
                                         expires INTEGER NOT NULL, used INTEGER NOT NULL DEFAULT 0,
                                         attempts INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS svc_complaint(seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, received_at TEXT NOT NULL,
                                         domain TEXT NOT NULL, verified INTEGER NOT NULL, body TEXT NOT NULL,
                                         prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS svc_complaint_domain ON svc_complaint(domain, seq);
CREATE TRIGGER IF NOT EXISTS svc_complaint_no_update BEFORE UPDATE ON svc_complaint
    BEGIN SELECT RAISE(ABORT, 'complaints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS svc_complaint_no_delete BEFORE DELETE ON svc_complaint
    BEGIN SELECT RAISE(ABORT, 'complaints are append-only'); END;
"""

PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS svc_meta(key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS svc_index(site text NOT NULL, idx bigint NOT NULL, ts bigint NOT NULL,
                                     mechanism text NOT NULL, decision text NOT NULL, PRIMARY KEY(site, idx));
CREATE INDEX IF NOT EXISTS svc_index_site_ts ON svc_index(site, ts);
CREATE TABLE IF NOT EXISTS svc_challenge(id text PRIMARY KEY, domain text NOT NULL, method text NOT NULL,
                                         token text NOT NULL, secret_sha256 text NOT NULL, created bigint NOT NULL,
                                         expires bigint NOT NULL, used int NOT NULL DEFAULT 0,
                                         attempts int NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS svc_complaint(seq bigint PRIMARY KEY, id text NOT NULL UNIQUE, received_at text NOT NULL,
                                         domain text NOT NULL, verified int NOT NULL, body text NOT NULL,
                                         prev_hash text NOT NULL, hash text NOT NULL);
CREATE INDEX IF NOT EXISTS svc_complaint_domain ON svc_complaint(domain, seq);
CREATE OR REPLACE FUNCTION svc_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$;
CREATE OR REPLACE TRIGGER svc_complaint_append_only BEFORE UPDATE OR DELETE ON svc_complaint
  FOR EACH ROW EXECUTE FUNCTION svc_append_only();
CREATE OR REPLACE TRIGGER svc_complaint_no_truncate BEFORE TRUNCATE ON svc_complaint
  FOR EACH STATEMENT EXECUTE FUNCTION svc_append_only();
"""


class Pool:
    """A tiny fixed-size connection pool: sqlite3 and psycopg connections must not be used by two threads at once."""

    def __init__(self, factory: Callable[[], Any], size: int) -> None:
        self._factory = factory
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._sem = threading.BoundedSemaphore(size)
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def adopt(self, c: Any) -> None:
        """Take a connection opened outside the pool (to report a connection error at once) as an idle one."""
        with self._lock:
            self._all.append(c)
        self._idle.put(c)

    @contextlib.contextmanager
    def conn(self) -> Iterator[Any]:
        """Borrow a connection (opening one if none is idle and fewer than ``size`` are out); a connection whose
        block raised is rolled back and not handed out again."""
        self._sem.acquire()
        try:
            try:
                c = self._idle.get_nowait()
            except queue.Empty:
                c = self._factory()
                with self._lock:
                    self._all.append(c)
            try:
                yield c
            except BaseException:
                # A broken connection (or one left inside a transaction) is not handed to the next caller.
                with contextlib.suppress(Exception):
                    if getattr(c, "in_transaction", False):
                        c.execute("ROLLBACK")
                raise
            self._idle.put(c)
        finally:
            self._sem.release()

    def close(self) -> None:
        """Close every connection the pool opened."""
        with self._lock:
            for c in self._all:
                with contextlib.suppress(Exception):
                    c.close()
            self._all.clear()
