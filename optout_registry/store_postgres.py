"""PostgreSQL storage for many crawler nodes appending to one registry (REGISTRY.md §6.4/§6.5).

The write side copies Tessera's protocol. *Sequencing*: each node, in one short transaction, locks the single
``seq_coord`` row (``SELECT … FOR UPDATE``), inserts its batch at ``next, next+1, …`` and advances ``next``; the
row lock serialises nodes only for that one multi-row insert, and because the entries and the new ``next`` commit
together, indices are contiguous and an index handed back to a caller is durable. *Integration*: one integrator at
a time (``pg_try_advisory_lock``, keyed by schema so separate registries in one database do not contend) reads the
entries ``[int_coord.size, seq_coord.next)``, recomputes their leaf hashes from the stored bytes (nodes are not
trusted to hash), rewrites the touched tiles, signs a checkpoint and commits with a compare-and-swap
``UPDATE int_coord … WHERE size = <old size>``. The advisory lock keeps integrators from wasting work; the CAS is
what makes divergent heads impossible even if two integrators ran at once (Sunlight's idea): the loser's
transaction, tiles and checkpoint included, rolls back.

Nodes that only append need no signing key; only the integrator does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from optout_registry.errors import ForkError, IntegrityError, RegistryError
from optout_registry.merkle import leaf_hashes
from optout_registry.messages import first_line as _first_line
from optout_registry.messages import redact_url as _redact
from optout_registry.sitemap import EMPTY_MAP
from optout_registry.store_common import CheckpointReads, SiteMapCache, advance_sites, leaf_site
from optout_registry.storeapi import SignFn, SitesSignFn
from optout_registry.tiles import TileBuilder

SCHEMA_VERSION = "1"
INTEGRATE_CHUNK = 65_536

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS entry(idx bigint PRIMARY KEY, leaf bytea NOT NULL);
CREATE TABLE IF NOT EXISTS tile(level int NOT NULL, n bigint NOT NULL, data bytea NOT NULL, PRIMARY KEY(level, n));
CREATE TABLE IF NOT EXISTS checkpoint(size bigint PRIMARY KEY, root bytea NOT NULL, note text NOT NULL,
                                      created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS anchor(size bigint NOT NULL REFERENCES checkpoint(size), tsa text NOT NULL,
                                  tsr bytea NOT NULL, gen_time text NOT NULL, PRIMARY KEY(size, tsa));
CREATE TABLE IF NOT EXISTS evidence(sha256 bytea PRIMARY KEY, body bytea NOT NULL);
CREATE TABLE IF NOT EXISTS seq_coord(id int PRIMARY KEY CHECK (id = 1), next bigint NOT NULL);
CREATE TABLE IF NOT EXISTS int_coord(id int PRIMARY KEY CHECK (id = 1), size bigint NOT NULL, root bytea NOT NULL);
INSERT INTO seq_coord(id, next) VALUES (1, 0) ON CONFLICT DO NOTHING;
INSERT INTO int_coord(id, size, root) VALUES (1, 0, sha256(''::bytea)) ON CONFLICT DO NOTHING;
CREATE OR REPLACE FUNCTION optout_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$;
CREATE OR REPLACE FUNCTION optout_tile_extend_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF length(OLD.data) >= 8192 OR length(NEW.data) < length(OLD.data)
     OR substring(NEW.data FROM 1 FOR length(OLD.data)) <> OLD.data THEN
    RAISE EXCEPTION 'tile: only a partial tile may be extended';
  END IF;
  RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER entry_append_only BEFORE UPDATE OR DELETE ON entry
  FOR EACH ROW EXECUTE FUNCTION optout_append_only();
CREATE OR REPLACE TRIGGER entry_no_truncate BEFORE TRUNCATE ON entry
  FOR EACH STATEMENT EXECUTE FUNCTION optout_append_only();
CREATE OR REPLACE TRIGGER checkpoint_append_only BEFORE UPDATE OR DELETE ON checkpoint
  FOR EACH ROW EXECUTE FUNCTION optout_append_only();
CREATE OR REPLACE TRIGGER checkpoint_no_truncate BEFORE TRUNCATE ON checkpoint
  FOR EACH STATEMENT EXECUTE FUNCTION optout_append_only();
CREATE OR REPLACE TRIGGER anchor_append_only BEFORE UPDATE OR DELETE ON anchor
  FOR EACH ROW EXECUTE FUNCTION optout_append_only();
CREATE OR REPLACE TRIGGER evidence_append_only BEFORE UPDATE OR DELETE ON evidence
  FOR EACH ROW EXECUTE FUNCTION optout_append_only();
CREATE OR REPLACE TRIGGER tile_extend_only BEFORE UPDATE ON tile
  FOR EACH ROW EXECUTE FUNCTION optout_tile_extend_only();
CREATE OR REPLACE TRIGGER tile_no_delete BEFORE DELETE ON tile
  FOR EACH ROW EXECUTE FUNCTION optout_append_only();
"""

# Per-site completeness (docs/completeness.md); run on every open, so a registry made before it gains it too.
_SITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS site_tree(site text PRIMARY KEY, count bigint NOT NULL, runs bigint NOT NULL,
                                     frontier bytea NOT NULL);
CREATE TABLE IF NOT EXISTS site_note(size bigint PRIMARY KEY, map_root bytea NOT NULL, sites bigint NOT NULL,
                                     note text NOT NULL);
INSERT INTO meta(key, value) SELECT 'evidence_rows', count(*)::text FROM evidence ON CONFLICT DO NOTHING;
CREATE OR REPLACE FUNCTION optout_count_evidence() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'evidence_rows'; RETURN NULL; END $$;
CREATE OR REPLACE TRIGGER evidence_counted AFTER INSERT ON evidence
  FOR EACH ROW EXECUTE FUNCTION optout_count_evidence();
CREATE OR REPLACE TRIGGER site_note_append_only BEFORE UPDATE OR DELETE ON site_note
  FOR EACH ROW EXECUTE FUNCTION optout_append_only();
CREATE TABLE IF NOT EXISTS site_run(site text NOT NULL, first bigint NOT NULL, idxs bytea NOT NULL,
                                    PRIMARY KEY(site, first));
CREATE OR REPLACE TRIGGER site_run_append_only BEFORE UPDATE OR DELETE ON site_run
  FOR EACH ROW EXECUTE FUNCTION optout_append_only();
"""

# A registry written before runs were cut at integrations (site trees with a leaf per entry, and before that one
# site_index row per entry) drops that derived index before _SITE_SCHEMA recreates it; it is rebuilt from the
# entries at the next integration. Its signed sites notes commit to the per-entry trees, so they move to
# site_note_v1, kept as they were signed.
_DROP_ENTRY_INDEX = """
DROP TABLE IF EXISTS site_index;
DROP TABLE IF EXISTS site_run;
DROP TABLE IF EXISTS site_tree;
DELETE FROM meta WHERE key = 'sites_upto';
DO $$ BEGIN
  IF to_regclass('site_note') IS NOT NULL THEN
    ALTER TABLE site_note RENAME TO site_note_v1;
  END IF;
END $$;
"""

_UPSERT_SITE = (
    "INSERT INTO site_tree(site, count, runs, frontier) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (site) DO UPDATE SET count = EXCLUDED.count, runs = EXCLUDED.runs, frontier = EXCLUDED.frontier"
)

_UPSERT_TILE = (
    "INSERT INTO tile(level, n, data) VALUES (%s, %s, %s) ON CONFLICT (level, n) DO UPDATE SET data = EXCLUDED.data"
)


class PostgresStore(CheckpointReads):
    _param = "%s"

    """The PostgreSQL backend: one connection per process, guarded by a lock (psycopg connections are not shared)."""

    kind = "postgresql"
    integrates_on_append = False

    def __init__(self, url: str, *, create: bool = True, connect_timeout: int = 10) -> None:
        try:
            import psycopg
        except ImportError:
            raise RegistryError("PostgreSQL registries need psycopg: pip install 'optout-toolkit[postgres]'") from None
        self._psycopg = psycopg
        self.location = _redact(url)
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=connect_timeout)
        except psycopg.Error as exc:
            raise RegistryError(f"cannot connect to {self.location}: {_first_line(exc)}") from None
        self._lock = threading.RLock()
        self._builder: TileBuilder | None = None  # the TileBuilder at int_coord.size, or None to rebuild
        self._maps = SiteMapCache()  # the integrator's site map as of its last integration
        try:
            schema = self._one("SELECT current_schema()")
            if schema is None:
                raise RegistryError(
                    f"{self.location}: no schema to create tables in (check search_path / the schema exists)"
                )
            self.schema = str(schema)
            self._lock_key = self._one("SELECT hashtext(%s)", (f"optout-registry-integrator:{self.schema}",))
            exists = self._one("SELECT to_regclass('int_coord') IS NOT NULL")
            if not exists and not create:
                raise RegistryError(f"no registry in schema {self.schema!r} at {self.location}")
            if not exists:
                with self._conn.transaction():
                    # Several nodes may start at once; DDL "IF NOT EXISTS" is not race-free, so serialise it.
                    self._conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"optout-registry-init:{self.schema}",)
                    )
                    if not self._one("SELECT to_regclass('int_coord') IS NOT NULL"):
                        self._conn.execute(_SCHEMA)
            if not self._site_runs_exist():
                with self._conn.transaction():
                    self._conn.execute(
                        "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"optout-registry-init:{self.schema}",)
                    )
                    # An advisory lock does not refresh the catalog cache; taking a table lock does, so the
                    # check below sees tables another node created while we waited.
                    self._conn.execute("LOCK TABLE meta IN SHARE ROW EXCLUSIVE MODE")
                    if not self._site_runs_exist():
                        if self._one("SELECT to_regclass('site_tree') IS NOT NULL"):
                            self._conn.execute(_DROP_ENTRY_INDEX)
                        self._conn.execute(_SITE_SCHEMA)
            self.set_meta_default("schema", SCHEMA_VERSION)
        except psycopg.Error as exc:
            self._conn.close()
            raise RegistryError(f"cannot initialise registry at {self.location}: {_first_line(exc)}") from None
        except BaseException:
            self._conn.close()
            raise

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one moment of the log: workers may be sequencing and an integrator signing while a
        self-check compares counts, and separate statements would see them half-way (a false alarm)."""
        with self._lock, self._conn.transaction():
            self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        with self._lock:
            row = self._conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    # -- meta ---------------------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        value = self._one("SELECT value FROM meta WHERE key = %s", (key,))
        return None if value is None else str(value)

    def set_meta_default(self, key: str, value: str) -> str:
        with self._lock:
            self._conn.execute("INSERT INTO meta(key, value) VALUES (%s, %s) ON CONFLICT DO NOTHING", (key, value))
            return self.get_meta(key) or value

    # -- sequencing ---------------------------------------------------------------------------------------------

    def append(
        self,
        leaves: list[bytes],
        leaf_hashes: list[bytes],
        evidence: list[tuple[bytes, bytes]],
        sign: SignFn,
        sites: list[str | None] | None = None,
        sign_sites: SitesSignFn | None = None,
    ) -> int:
        """Sequence one batch: contiguous indices, durable on return. Not integrated (no checkpoint) yet."""
        # The integrator recomputes hashes and sites from the stored bytes; nodes neither sign nor are trusted.
        del leaf_hashes, sign, sites, sign_sites
        psycopg = self._psycopg
        with self._lock:
            try:
                with self._conn.transaction():
                    if evidence:
                        self._insert_evidence(evidence)
                    first = self._conn.execute("SELECT next FROM seq_coord WHERE id = 1 FOR UPDATE").fetchone()[0]
                    with self._conn.cursor() as cur, cur.copy("COPY entry(idx, leaf) FROM STDIN") as copy:
                        for i, leaf in enumerate(leaves):
                            copy.write_row((first + i, leaf))
                    self._conn.execute("UPDATE seq_coord SET next = %s WHERE id = 1", (first + len(leaves),))
            except psycopg.errors.UniqueViolation as exc:
                raise IntegrityError(f"sequencing refused: {_first_line(exc)}") from None
            except psycopg.Error as exc:
                raise RegistryError(f"append failed: {_first_line(exc)}") from None
            return int(first)

    def put_evidence(self, rows: list[tuple[bytes, bytes]]) -> None:
        with self._lock, self._conn.transaction():
            self._insert_evidence(rows)

    def _insert_evidence(self, rows: list[tuple[bytes, bytes]]) -> None:
        """Insert evidence blobs inside the caller's transaction, locking the evidence counter row first.

        Each new blob's trigger updates that one counter row. Without the lock up front, node A could insert blob X
        (and so hold the counter), node B insert blob Y and wait for the counter, and A then wait for B's
        uncommitted Y: a deadlock PostgreSQL breaks by aborting one append (seen with four crawl workers). Taken
        first, the counter serialises evidence writers before either holds a blob; they were serialised on it
        anyway from their first new blob on."""
        self._conn.execute("SELECT 1 FROM meta WHERE key = 'evidence_rows' FOR UPDATE")
        with self._conn.cursor() as cur:
            cur.executemany("INSERT INTO evidence(sha256, body) VALUES (%s, %s) ON CONFLICT DO NOTHING", rows)

    # -- integration --------------------------------------------------------------------------------------------

    def integrate(
        self, sign: SignFn, wait: bool = True, sign_sites: SitesSignFn | None = None, use_lock: bool = True
    ) -> bool:
        """Integrate every sequenced entry. Returns False if another integrator holds the lock and wait is False.
        ``sign_sites`` signs each new checkpoint's sites note in its transaction.

        ``use_lock=False`` exists for tests that prove the compare-and-swap alone prevents forks.
        """
        psycopg = self._psycopg
        with self._lock:
            if use_lock and not self._acquire(wait):
                return False
            try:
                while self._integrate_chunk(sign, sign_sites):
                    pass
            except psycopg.Error as exc:
                self._builder = None
                self._maps.drop()
                raise RegistryError(f"integration failed: {_first_line(exc)}") from None
            except BaseException:
                self._builder = None
                self._maps.drop()
                raise
            finally:
                if use_lock:
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._lock_key,))
            return True

    def _acquire(self, wait: bool) -> bool:
        deadline = time.monotonic() + 120
        while True:
            if self._one("SELECT pg_try_advisory_lock(%s)", (self._lock_key,)):
                return True
            if not wait:
                return False
            if time.monotonic() > deadline:
                raise RegistryError("timed out waiting for the other integrator to finish")
            time.sleep(0.02)

    def _site_runs_exist(self) -> bool:
        """Whether the site index is the current one: site trees with a leaf per run (docs/completeness.md)."""
        sql = (
            "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = 'site_tree' AND column_name = 'runs'"
        )
        return self._one(sql) is not None

    def _integrate_chunk(self, sign: SignFn, sign_sites: SitesSignFn | None) -> bool:
        """One transaction: up to INTEGRATE_CHUNK entries. Returns True if more may remain."""
        conn = self._conn
        with conn.transaction():
            size, _old_root = conn.execute("SELECT size, root FROM int_coord WHERE id = 1").fetchone()
            size = int(size)
            # Read after int_coord: every entry below this `next` committed together with it.
            nxt = int(conn.execute("SELECT next FROM seq_coord WHERE id = 1").fetchone()[0])
            if nxt < size:
                raise IntegrityError(f"sequencer is at {nxt} but {size} entries are integrated")
            if self._builder is None or self._builder.size != size:
                self._builder = TileBuilder(size, self.read_tile)
            if nxt == size:
                self._catch_up_sites(size)
                if conn.execute("SELECT 1 FROM checkpoint WHERE size = %s", (size,)).fetchone() is None:
                    root = self._builder.root()
                    self._insert_checkpoint(size, root, sign(size, root))
                    if sign_sites is not None and size == 0:
                        self.add_site_note(0, EMPTY_MAP, 0, sign_sites(0, root, EMPTY_MAP, 0))
                return False
            end = min(nxt, size + INTEGRATE_CHUNK)
            rows = conn.execute(
                "SELECT idx, leaf FROM entry WHERE idx >= %s AND idx < %s ORDER BY idx", (size, end)
            ).fetchall()
            if len(rows) != end - size or (rows and (rows[0][0] != size or rows[-1][0] != end - 1)):
                raise IntegrityError(f"entries {size}..{end - 1} are not contiguous ({len(rows)} found)")
            leaves = [bytes(leaf) for _, leaf in rows]
            hashes = leaf_hashes(leaves)
            touched = self._builder.add(hashes)
            with conn.cursor() as cur:
                cur.executemany(_UPSERT_TILE, [(lv, n, data) for (lv, n), data in touched.items()])
            # The site trees advance in the same transaction as the tree head: they follow log order exactly.
            self._catch_up_sites(size)
            roots = self._write_sites(size, [leaf_site(leaf) for leaf in leaves], hashes, end)
            root = self._builder.root()
            self._insert_checkpoint(end, root, sign(end, root))
            if sign_sites is not None:
                site_map = self._maps.advance(size, roots, self.site_trees)
                self.add_site_note(
                    end, site_map.root, site_map.count, sign_sites(end, root, site_map.root, site_map.count)
                )
            cur = conn.execute(
                "UPDATE int_coord SET size = %s, root = %s WHERE id = 1 AND size = %s", (end, root, size)
            )
            if cur.rowcount != 1:
                raise ForkError(f"another integrator moved the tree head from {size}; this integration was discarded")
        self._maps.committed(end)
        return end < nxt

    def _insert_checkpoint(self, size: int, root: bytes, note: str) -> None:
        self._conn.execute("INSERT INTO checkpoint(size, root, note) VALUES (%s, %s, %s)", (size, root, note))

    def ensure_checkpoint(self, sign: SignFn, sign_sites: SitesSignFn | None = None) -> None:
        self.integrate(sign, sign_sites=sign_sites)

    def add_anchor(self, size: int, tsa: str, tsr: bytes, gen_time: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO anchor(size, tsa, tsr, gen_time) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (size, tsa, tsr, gen_time),
            )

    def anchors(self, size: int | None = None) -> list[tuple[int, str, bytes, str]]:
        with self._lock:
            if size is None:
                rows = self._conn.execute("SELECT size, tsa, tsr, gen_time FROM anchor ORDER BY size, tsa").fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT size, tsa, tsr, gen_time FROM anchor WHERE size = %s ORDER BY tsa", (size,)
                ).fetchall()
        return [(int(s), str(t), bytes(r), str(g)) for s, t, r, g in rows]

    # -- read path ----------------------------------------------------------------------------------------------

    def coordination(self) -> tuple[int, bytes, int]:
        """(integrated size, integrated root, next index to sequence)."""
        with self._lock:
            size, root = self._conn.execute("SELECT size, root FROM int_coord WHERE id = 1").fetchone()
            nxt = self._conn.execute("SELECT next FROM seq_coord WHERE id = 1").fetchone()[0]
        return int(size), bytes(root), int(nxt)

    def read_tile(self, level: int, n: int) -> bytes | None:
        data = self._one("SELECT data FROM tile WHERE level = %s AND n = %s", (level, n))
        return None if data is None else bytes(data)

    def sequenced(self) -> int:
        return int(self._one("SELECT next FROM seq_coord WHERE id = 1"))

    def entry_count(self) -> int:
        return int(self._one("SELECT count(*) FROM entry"))

    def leaf(self, idx: int) -> bytes | None:
        data = self._one("SELECT leaf FROM entry WHERE idx = %s", (idx,))
        return None if data is None else bytes(data)

    def leaves(self, start: int, end: int, chunk: int = 50_000) -> Iterator[tuple[int, bytes]]:
        pos = start
        while pos < end:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT idx, leaf FROM entry WHERE idx >= %s AND idx < %s ORDER BY idx",
                    (pos, min(end, pos + chunk)),
                ).fetchall()
            for idx, leaf in rows:
                yield int(idx), bytes(leaf)
            pos += chunk

    def evidence(self, sha: bytes) -> bytes | None:
        body = self._one("SELECT body FROM evidence WHERE sha256 = %s", (sha,))
        return None if body is None else bytes(body)

    # -- per-site trees (docs/completeness.md), written by the integrator -------------------------------------

    def _write_sites(
        self, first: int, sites: list[str | None], leaf_hashes: list[bytes], new_size: int, cuts: Sequence[int] = ()
    ) -> dict[str, tuple[int, bytes]]:
        tree_rows, run_rows, roots = advance_sites(self.load_site_trees, first, sites, leaf_hashes, cuts)
        conn = self._conn
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO site_run(site, first, idxs) VALUES (%s, %s, %s)", run_rows)
            cur.executemany(_UPSERT_SITE, tree_rows)
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('sites_upto', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (str(new_size),),
        )
        return roots

    def _catch_up_sites(self, size: int) -> None:
        """Bring the site trees up to ``size`` from the stored entries (a registry made before they existed)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'sites_upto'").fetchone()
        done = int(row[0]) if row else 0
        if done > size:
            raise IntegrityError(f"the site index covers {done} entries but the log holds {size}")
        if done < size:
            self._maps.drop()
        while done < size:
            end, cuts = self.catch_up_span(done, size, INTEGRATE_CHUNK)
            rows = list(self.leaves(done, end))
            sites = [leaf_site(leaf) for _, leaf in rows]
            self._write_sites(done, sites, leaf_hashes(leaf for _, leaf in rows), end, cuts)
            done = end

    def sites_upto(self) -> int:
        return int(self.get_meta("sites_upto") or 0)

    def ensure_sites(self) -> None:
        """Catch the site trees up with the integrated log (once, for a registry made before they existed), under
        the integrator's lock so it never races an integration."""
        with self._lock:
            if self.sites_upto() >= self.coordination()[0]:
                return
            self._acquire(wait=True)
            try:
                with self._conn.transaction():
                    size = int(self._conn.execute("SELECT size FROM int_coord WHERE id = 1").fetchone()[0])
                    self._catch_up_sites(size)
            finally:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._lock_key,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
