"""The query service's own storage: a per-site index, ownership challenges and the complaints log.

Why a separate store and not more tables in the registry: the registry is evidence and stays exactly what the
crawler wrote; everything here is either *derived* (the index, rebuildable from the log at any time and never
trusted — every row it yields is re-checked against the leaf before it is served) or *the service's own records*
(challenges, complaints). For SQLite the service keeps a file beside the registry (``<registry>.service.db``);
for PostgreSQL it adds ``svc_*`` tables to the registry's schema, so many service processes share them.

The index row ``(site, idx, ts, mechanism, decision)`` with primary key ``(site, idx)`` makes a records page a
range scan of ``limit`` rows whatever the size of the log or of the site (keyset paging on ``idx``), and
``(site, ts)`` serves date filters and the per-day charts. ``ts`` is observed_at in integer microseconds: the
record schema allows 0–6 fractional digits, so the strings do not sort in time order.

Complaints are append-only three ways: the server alone assigns the sequence number and id (a request cannot
name a row), rows are only ever INSERTed (triggers refuse UPDATE and DELETE), and each row carries
``hash = SHA-256(prev_hash || "\\n" || JCS(complaint))``, a chain whose head is handed back as a receipt, so a
complainant can later show that their complaint was received and was not altered.

The tables' definitions, in both dialects, and the connection pool beneath this store are in storedb.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import rfc8785

from optout_registry.errors import RegistryError
from optout_registry.registry import parse_url
from optout_registry.service.storedb import PG_SCHEMA, SQLITE_SCHEMA, Pool
from optout_registry.vocabulary import from_mechanism

GENESIS = "0" * 64
INDEX_CHUNK = 20_000

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def micros(dt: datetime) -> int:
    """Integer microseconds since the epoch (exact, unlike float timestamps)."""
    delta = dt.astimezone(timezone.utc) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def observed_micros(text: str) -> int:
    """observed_at ('YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z', enforced by the record schema) in epoch microseconds."""
    return micros(datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text))


def index_row(idx: int, leaf: bytes) -> tuple[str, int, int, str, str] | None:
    """The index row of one leaf, or None if it names no site. Plain json: hits are re-checked when served."""
    try:
        rec = json.loads(leaf)
        site = rec["target"]["site"].lower()
        ts = observed_micros(rec["observed_at"])
        return site, idx, ts, str(rec.get("mechanism", "")), str(rec.get("decision", ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class Challenge:
    """An ownership challenge as stored: the secret only as its SHA-256, with its expiry and attempts."""

    id: str
    domain: str
    method: str
    token: str
    secret_sha256: str
    created: int
    expires: int
    used: bool
    attempts: int


@dataclass(frozen=True)
class Complaint:
    """A complaint as logged, with its links in the hash chain."""

    seq: int
    id: str
    received_at: str
    domain: str
    verified: bool
    body: dict[str, Any]
    prev_hash: str
    hash: str

    def public(self) -> dict[str, Any]:
        """The complaint as the API shows it (models.ComplaintOut)."""
        return {
            "seq": self.seq,
            "id": self.id,
            "received_at": self.received_at,
            "domain": self.domain,
            "verified_holder": self.verified,
            "submission": self.body.get("submission", {}),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def chain_hash(prev_hash: str, body: dict[str, Any]) -> str:
    """Link of the complaints chain: SHA-256 over the previous link and the complaint's canonical (JCS) bytes."""
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + rfc8785.dumps(body)).hexdigest()


class ServiceStore:
    """Index, challenges and complaints for one registry, over SQLite or PostgreSQL.

    It also reads leaves straight from the registry's ``entry`` table (batched by index, through a small pool),
    because the hot path — a page of one site's records — must not serialise on the registry facade's single
    connection. Reads only: nothing here writes to the registry's own tables.
    """

    def __init__(self, registry_url: str, service_url: str | None = None, *, pool_size: int = 4) -> None:
        kind, target, _ = parse_url(registry_url)
        self.kind = kind
        self._pg = kind == "postgresql"
        if self._pg:
            import psycopg  # the [postgres] extra, needed only for a PostgreSQL registry

            if service_url not in (None, registry_url):
                raise RegistryError("with a PostgreSQL registry the service tables live in the registry's schema")

            def pg() -> Any:
                return psycopg.connect(target, autocommit=True, connect_timeout=10)

            try:
                first = pg()
            except psycopg.Error as exc:
                raise RegistryError(f"cannot connect to the registry database: {str(exc).splitlines()[0]}") from None
            self._pool = Pool(pg, pool_size)
            self._leaf_pool = self._pool
            self._pool.adopt(first)
            with self._pool.conn() as c, c.transaction():
                c.execute("SELECT pg_advisory_xact_lock(hashtext('optout-service-init:' || current_schema()))")
                c.execute(PG_SCHEMA)
            self.location = "postgresql"
        else:
            reg_path = Path(target)
            svc_path = (
                Path(parse_url(service_url)[1]) if service_url else reg_path.with_name(reg_path.name + ".service.db")
            )
            self.location = str(svc_path)

            def svc() -> sqlite3.Connection:
                c = sqlite3.connect(str(svc_path), timeout=30, isolation_level=None, check_same_thread=False)
                c.execute("PRAGMA journal_mode=WAL")
                c.execute("PRAGMA synchronous=NORMAL")
                c.execute("PRAGMA busy_timeout=30000")
                return c

            def leaves() -> sqlite3.Connection:
                uri = f"{reg_path.resolve().as_uri()}?mode=ro"
                c = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
                c.execute("PRAGMA busy_timeout=30000")
                c.execute("PRAGMA query_only=ON")
                return c

            svc_path.parent.mkdir(parents=True, exist_ok=True)
            self._pool = Pool(svc, pool_size)
            self._leaf_pool = Pool(leaves, pool_size)
            try:
                with self._pool.conn() as c:
                    c.executescript(SQLITE_SCHEMA)
            except sqlite3.DatabaseError as exc:  # e.g. --service-db names a file that is not SQLite
                self._pool.close()
                raise RegistryError(f"cannot open the service database {svc_path}: {exc}") from None
        self._index_lock = threading.Lock()
        self._indexed = -1  # cached svc_meta indexed_upto; -1 = unknown

    # -- plumbing -----------------------------------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._pg else sql

    def q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read on the service tables (``?`` placeholders in either dialect) and return its rows."""
        with self._pool.conn() as c:
            return [tuple(r) for r in c.execute(self._sql(sql), tuple(params)).fetchall()]

    @contextlib.contextmanager
    def _write(self, lock_name: str) -> Iterator[Any]:
        """One write transaction, serialised across processes (SQLite: BEGIN IMMEDIATE; PG: advisory lock)."""
        with self._pool.conn() as c:
            if self._pg:
                with c.transaction():
                    c.execute("SELECT pg_advisory_xact_lock(hashtext(%s || current_schema()))", (lock_name,))
                    yield c
            else:
                c.execute("BEGIN IMMEDIATE")
                try:
                    yield c
                    c.execute("COMMIT")
                except BaseException:
                    if c.in_transaction:
                        c.execute("ROLLBACK")
                    raise

    def get_meta(self, key: str) -> str | None:
        """A value of the service's own settings table, if set."""
        rows = self.q("SELECT value FROM svc_meta WHERE key = ?", (key,))
        return None if not rows else str(rows[0][0])

    def meta_default(self, key: str, value: str) -> str:
        """Store ``value`` unless ``key`` is set; return what is stored (first writer wins, across processes)."""
        conflict = "ON CONFLICT (key) DO NOTHING" if self._pg else "ON CONFLICT(key) DO NOTHING"
        with self._pool.conn() as c:
            c.execute(self._sql(f"INSERT INTO svc_meta(key, value) VALUES (?, ?) {conflict}"), (key, value))
        return self.get_meta(key) or value

    def _set_meta(self, c: Any, key: str, value: str) -> None:
        c.execute(
            self._sql(
                "INSERT INTO svc_meta(key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            ),
            (key, value),
        )

    def close(self) -> None:
        """Close every connection."""
        self._pool.close()
        if self._leaf_pool is not self._pool:
            self._leaf_pool.close()

    # -- leaves (read straight from the registry) ---------------------------------------------------------------

    def leaves(self, indices: Sequence[int]) -> dict[int, bytes]:
        """The leaves at ``indices`` (one query), by index; indices past the log are absent."""
        if not indices:
            return {}
        marks = ",".join("?" * len(indices))
        with self._leaf_pool.conn() as c:
            rows = c.execute(
                self._sql(f"SELECT idx, leaf FROM entry WHERE idx IN ({marks})"), tuple(indices)
            ).fetchall()
        return {int(i): bytes(leaf) for i, leaf in rows}

    def leaf_range(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """(index, leaf) for ``start <= index < end``, in order."""
        with self._leaf_pool.conn() as c:
            rows = c.execute(
                self._sql("SELECT idx, leaf FROM entry WHERE idx >= ? AND idx < ? ORDER BY idx"), (start, end)
            ).fetchall()
        return [(int(i), bytes(leaf)) for i, leaf in rows]

    # -- the per-site index -------------------------------------------------------------------------------------

    def bind(self, origin: str) -> None:
        """Tie this store to one log: an index built for another log (a reused file) is dropped and rebuilt."""
        stored = self.meta_default("origin", origin)
        if stored != origin:
            with self._write("optout-service-index:") as c:
                c.execute("DELETE FROM svc_index")
                self._set_meta(c, "indexed_upto", "0")
                self._set_meta(c, "origin", origin)
            self._indexed = 0

    def indexed_upto(self, fresh: bool = False) -> int:
        """How many log entries the index covers (cached; ``fresh`` re-reads it, another process may have moved it)."""
        if fresh or self._indexed < 0:
            value = self.get_meta("indexed_upto")
            self._indexed = int(value) if value else 0
        return self._indexed

    def catch_up(self, size: int, budget: int | None = None) -> int:
        """Index entries up to ``size`` (at most ``budget`` of them); return how far the index now reaches."""
        if self.indexed_upto() >= size:
            return self._indexed
        with self._index_lock:
            done = self.indexed_upto(fresh=True)
            stop = size if budget is None else min(size, done + budget)
            while done < stop:
                end = min(stop, done + INDEX_CHUNK)
                rows = [r for idx, leaf in self.leaf_range(done, end) if (r := index_row(idx, leaf))]
                with self._write("optout-service-index:") as c:
                    row = c.execute(self._sql("SELECT value FROM svc_meta WHERE key = 'indexed_upto'")).fetchone()
                    if row is not None and int(row[0]) != done:  # another process got there first
                        done = int(row[0])
                        continue
                    cols = "svc_index(site, idx, ts, mechanism, decision)"
                    if self._pg:
                        ins = f"INSERT INTO {cols} VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
                    else:
                        ins = f"INSERT OR IGNORE INTO {cols} VALUES (?, ?, ?, ?, ?)"
                    if self._pg:
                        with c.cursor() as cur:
                            cur.executemany(ins, rows)
                    else:
                        c.executemany(ins, rows)
                    self._set_meta(c, "indexed_upto", str(end))
                done = end
            self._indexed = done
            return done

    def page(
        self,
        site: str,
        upto: int,
        *,
        after: int | None,
        limit: int,
        since: int | None,
        until: int | None,
        descending: bool,
    ) -> list[int]:
        """Indices of one page of ``site``'s records below ``upto``: O(limit) rows read (keyset on idx)."""
        where = ["site = ?", "idx < ?"]
        params: list[Any] = [site, upto]
        if after is not None:
            where.append("idx < ?" if descending else "idx > ?")
            params.append(after)
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if until is not None:
            where.append("ts <= ?")
            params.append(until)
        order = "DESC" if descending else "ASC"
        sql = f"SELECT idx FROM svc_index WHERE {' AND '.join(where)} ORDER BY idx {order} LIMIT ?"
        params.append(limit)
        return [int(r[0]) for r in self.q(sql, params)]

    def count(self, site: str, upto: int, since: int | None = None, until: int | None = None) -> int:
        """How many of ``site``'s records below ``upto`` were observed between ``since`` and ``until`` (micros)."""
        where, params = ["site = ?", "idx < ?"], [site, upto]
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if until is not None:
            where.append("ts <= ?")
            params.append(until)
        return int(self.q(f"SELECT count(*) FROM svc_index WHERE {' AND '.join(where)}", params)[0][0])

    def stats(self, site: str, upto: int) -> dict[str, Any]:
        """Per-day x mechanism counts (for the charts), totals by mechanism and decision, first and last seen; the
        same counts by protocol id (optout_registry/vocabulary.py), the names people read."""
        day = 86_400_000_000
        rows = self.q(
            f"SELECT ts / {day} AS d, mechanism, decision, count(*), min(ts), max(ts) FROM svc_index "
            "WHERE site = ? AND idx < ? GROUP BY d, mechanism, decision ORDER BY d",
            (site, upto),
        )
        by_day: dict[int, dict[str, int]] = {}
        by_mechanism: dict[str, int] = {}
        by_decision: dict[str, int] = {}
        first = last = None
        for d, mech, decision, n, lo, hi in rows:
            n = int(n)
            by_day.setdefault(int(d), {})
            by_day[int(d)][mech] = by_day[int(d)].get(mech, 0) + n
            by_mechanism[mech] = by_mechanism.get(mech, 0) + n
            by_decision[decision] = by_decision.get(decision, 0) + n
            first = int(lo) if first is None else min(first, int(lo))
            last = int(hi) if last is None else max(last, int(hi))

        def iso(us: int | None) -> str | None:
            if us is None:
                return None
            return datetime.fromtimestamp(us / 1e6, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

        days = []
        for d in sorted(by_day):
            date = datetime.fromtimestamp(d * 86_400, tz=timezone.utc).strftime("%Y-%m-%d")
            per_protocol: dict[str, int] = {}
            for mech, n in by_day[d].items():
                protocol = from_mechanism(mech)[0]
                per_protocol[protocol] = per_protocol.get(protocol, 0) + n
            days.append(
                {
                    "date": date,
                    "count": sum(by_day[d].values()),
                    "by_mechanism": by_day[d],
                    "by_protocol": per_protocol,
                }
            )
        by_protocol: dict[str, int] = {}
        for mech, n in by_mechanism.items():
            protocol = from_mechanism(mech)[0]
            by_protocol[protocol] = by_protocol.get(protocol, 0) + n
        return {
            "records": sum(by_mechanism.values()),
            "first_observed": iso(first),
            "last_observed": iso(last),
            "by_mechanism": dict(sorted(by_mechanism.items())),
            "by_protocol": dict(sorted(by_protocol.items(), key=lambda kv: (-kv[1], kv[0]))),
            "by_decision": dict(sorted(by_decision.items())),
            "by_day": days,
        }

    # -- ownership challenges -----------------------------------------------------------------------------------

    def add_challenge(self, ch: Challenge) -> None:
        """Store a new challenge (unused, no attempts yet)."""
        with self._write("optout-service-challenge:") as c:
            c.execute(
                self._sql(
                    "INSERT INTO svc_challenge(id, domain, method, token, secret_sha256, created, expires, used, "
                    "attempts) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0)"
                ),
                (ch.id, ch.domain, ch.method, ch.token, ch.secret_sha256, ch.created, ch.expires),
            )

    def challenge(self, challenge_id: str) -> Challenge | None:
        """The challenge with this id, if there is one."""
        rows = self.q(
            "SELECT id, domain, method, token, secret_sha256, created, expires, used, attempts FROM svc_challenge "
            "WHERE id = ?",
            (challenge_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return Challenge(
            str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), int(r[5]), int(r[6]), bool(r[7]), int(r[8])
        )

    def note_attempt(self, challenge_id: str, max_attempts: int) -> bool:
        """Count one verification attempt; False if the challenge is used up (attempts exhausted or already used)."""
        with self._write("optout-service-challenge:") as c:
            row = c.execute(
                self._sql("SELECT used, attempts FROM svc_challenge WHERE id = ?"), (challenge_id,)
            ).fetchone()
            if row is None or int(row[0]) or int(row[1]) >= max_attempts:
                return False
            c.execute(self._sql("UPDATE svc_challenge SET attempts = attempts + 1 WHERE id = ?"), (challenge_id,))
            return True

    def use_challenge(self, challenge_id: str) -> bool:
        """Mark a challenge used, once: True only for the first caller (a verified challenge is single-use)."""
        with self._write("optout-service-challenge:") as c:
            cur = c.execute(self._sql("UPDATE svc_challenge SET used = 1 WHERE id = ? AND used = 0"), (challenge_id,))
            return bool(cur.rowcount == 1)

    def purge_challenges(self, now: int) -> None:
        """Drop challenges that expired more than a day ago (bounded table; they can never verify anyway)."""
        with self._write("optout-service-challenge:") as c:
            c.execute(self._sql("DELETE FROM svc_challenge WHERE expires < ?"), (now - 86_400,))

    # -- complaints ---------------------------------------------------------------------------------------------

    def add_complaint(self, domain: str, verified: bool, submission: dict[str, Any], received_at: str) -> Complaint:
        """Append one complaint; the server picks seq and id, so no request can address an existing row."""
        cid = secrets.token_hex(16)
        with self._write("optout-service-complaint:") as c:
            row = c.execute(self._sql("SELECT seq, hash FROM svc_complaint ORDER BY seq DESC LIMIT 1")).fetchone()
            seq, prev = (1, GENESIS) if row is None else (int(row[0]) + 1, str(row[1]))
            body = {
                "seq": seq,
                "id": cid,
                "received_at": received_at,
                "domain": domain,
                "verified_holder": verified,
                "submission": submission,
            }
            digest = chain_hash(prev, body)
            c.execute(
                self._sql(
                    "INSERT INTO svc_complaint(seq, id, received_at, domain, verified, body, prev_hash, hash) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                (seq, cid, received_at, domain, int(verified), json.dumps(body, sort_keys=True), prev, digest),
            )
        return Complaint(seq, cid, received_at, domain, verified, body, prev, digest)

    def complaints(self, domain: str | None = None, limit: int = 100, after: int = 0) -> list[Complaint]:
        """Up to ``limit`` complaints with a seq above ``after``, oldest first: about ``domain``, or all of them."""
        cols = "seq, id, received_at, domain, verified, body, prev_hash, hash"
        if domain is None:
            rows = self.q(f"SELECT {cols} FROM svc_complaint WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit))
        else:
            rows = self.q(
                f"SELECT {cols} FROM svc_complaint WHERE domain = ? AND seq > ? ORDER BY seq LIMIT ?",
                (domain, after, limit),
            )
        return [
            Complaint(int(r[0]), str(r[1]), str(r[2]), str(r[3]), bool(r[4]), json.loads(r[5]), str(r[6]), str(r[7]))
            for r in rows
        ]

    def verify_complaints_chain(self) -> tuple[bool, int]:
        """Re-derive every link of the complaints chain: (intact, number of complaints)."""
        prev, n = GENESIS, 0
        for r in self.q("SELECT seq, body, prev_hash, hash FROM svc_complaint ORDER BY seq"):
            n += 1
            body = json.loads(r[1])
            if int(r[0]) != n or str(r[2]) != prev or chain_hash(prev, body) != str(r[3]) or body.get("seq") != n:
                return False, n
            prev = str(r[3])
        return True, n
