"""SQLite storage for the registry (REGISTRY.md §6.4/§6.5, single node).

One file in WAL mode, one writer at a time. Every batch is one ``BEGIN IMMEDIATE … COMMIT`` that inserts the
entries, rewrites the touched tiles and inserts a signed checkpoint for the new size, so the database can never hold
entries that the latest signed checkpoint does not cover, nor a checkpoint whose tiles are missing: a crash (even
``kill -9``) either loses the whole uncommitted batch or nothing. Callers get their indices only after COMMIT, so an
acknowledged record is durable (``synchronous=FULL`` by default, so that also holds across power loss).

Triggers refuse UPDATE/DELETE on entries, checkpoints, anchors and evidence, and allow a tile to be rewritten only
by extending a partial tile. They guard against accidents, not against the file's owner; security comes from the
signed checkpoints that rights holders keep.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from optout_registry.errors import IntegrityError, RegistryError
from optout_registry.merkle import root as merkle_root
from optout_registry.sitemap import EMPTY_MAP
from optout_registry.store_common import (
    CheckpointReads,
    SiteMapCache,
    SiteTree,
    advance_sites,
    leaf_site,
    tile_leaf_hashes,
)
from optout_registry.storeapi import SignFn, SitesSignFn
from optout_registry.tiles import TileBuilder

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS entry(idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS tile(level INTEGER NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL,
                                PRIMARY KEY(level, n)) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoint(size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL,
                                      created_at TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS anchor(size INTEGER NOT NULL REFERENCES checkpoint(size), tsa TEXT NOT NULL,
                                  tsr BLOB NOT NULL, gen_time TEXT NOT NULL, PRIMARY KEY(size, tsa)) STRICT;
CREATE TABLE IF NOT EXISTS evidence(sha256 BLOB PRIMARY KEY, body BLOB NOT NULL) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS site_run(site TEXT NOT NULL, first INTEGER NOT NULL, idxs BLOB NOT NULL,
                                    PRIMARY KEY(site, first)) STRICT, WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS entry_no_update BEFORE UPDATE ON entry
    BEGIN SELECT RAISE(ABORT, 'entry is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entry_no_delete BEFORE DELETE ON entry
    BEGIN SELECT RAISE(ABORT, 'entry is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoint_no_update BEFORE UPDATE ON checkpoint
    BEGIN SELECT RAISE(ABORT, 'checkpoint is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoint_no_delete BEFORE DELETE ON checkpoint
    BEGIN SELECT RAISE(ABORT, 'checkpoint is append-only'); END;
CREATE TRIGGER IF NOT EXISTS anchor_no_update BEFORE UPDATE ON anchor
    BEGIN SELECT RAISE(ABORT, 'anchor is append-only'); END;
CREATE TRIGGER IF NOT EXISTS anchor_no_delete BEFORE DELETE ON anchor
    BEGIN SELECT RAISE(ABORT, 'anchor is append-only'); END;
CREATE TRIGGER IF NOT EXISTS evidence_no_update BEFORE UPDATE ON evidence
    BEGIN SELECT RAISE(ABORT, 'evidence is append-only'); END;
CREATE TRIGGER IF NOT EXISTS evidence_no_delete BEFORE DELETE ON evidence
    BEGIN SELECT RAISE(ABORT, 'evidence is append-only'); END;
CREATE TRIGGER IF NOT EXISTS tile_extend_only BEFORE UPDATE ON tile
    WHEN length(OLD.data) >= 8192 OR length(NEW.data) < length(OLD.data)
         OR substr(NEW.data, 1, length(OLD.data)) IS NOT OLD.data
    BEGIN SELECT RAISE(ABORT, 'tile: only a partial tile may be extended'); END;
CREATE TRIGGER IF NOT EXISTS tile_no_delete BEFORE DELETE ON tile
    BEGIN SELECT RAISE(ABORT, 'tile is append-only'); END;
CREATE TABLE IF NOT EXISTS site_tree(site TEXT PRIMARY KEY, count INTEGER NOT NULL, runs INTEGER NOT NULL,
                                     frontier BLOB NOT NULL) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS site_note(size INTEGER PRIMARY KEY, map_root BLOB NOT NULL, sites INTEGER NOT NULL,
                                     note TEXT NOT NULL) STRICT;
CREATE TRIGGER IF NOT EXISTS site_run_no_change BEFORE UPDATE ON site_run
    BEGIN SELECT RAISE(ABORT, 'site_run is append-only'); END;
CREATE TRIGGER IF NOT EXISTS site_run_no_delete BEFORE DELETE ON site_run
    BEGIN SELECT RAISE(ABORT, 'site_run is append-only'); END;
CREATE TRIGGER IF NOT EXISTS site_note_no_update BEFORE UPDATE ON site_note
    BEGIN SELECT RAISE(ABORT, 'site_note is append-only'); END;
CREATE TRIGGER IF NOT EXISTS site_note_no_delete BEFORE DELETE ON site_note
    BEGIN SELECT RAISE(ABORT, 'site_note is append-only'); END;
INSERT OR IGNORE INTO meta(key, value) SELECT 'evidence_rows', count(*) FROM evidence;
CREATE TRIGGER IF NOT EXISTS evidence_counted AFTER INSERT ON evidence
    BEGIN UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'evidence_rows'; END;
"""

# A registry written before runs were cut at checkpoints (site trees with a leaf per entry, and before that one
# site_index row per entry) drops that derived index and rebuilds it from the entries (ensure_sites). Its signed
# sites notes commit to the per-entry trees, so they move to site_note_v1, kept as they were signed; the latest
# checkpoint's note is signed again for the rebuilt trees when an export first needs it.
_DROP_ENTRY_INDEX = (
    "DROP TABLE IF EXISTS site_index",
    "DROP TABLE IF EXISTS site_run",
    "DROP TABLE IF EXISTS site_tree",
    "DELETE FROM meta WHERE key = 'sites_upto'",
)
_KEEP_V1_NOTES = ("CREATE TABLE IF NOT EXISTS site_note_v1 AS SELECT * FROM site_note", "DROP TABLE site_note")

_TREES_CACHED = 200_000  # site trees kept in memory between batches (a frontier is ~20 hashes at most)

_UPSERT_TILE = ("INSERT INTO tile(level, n, data)", " ON CONFLICT(level, n) DO UPDATE SET data = excluded.data")
_UPSERT_SITE = (
    "INSERT INTO site_tree(site, count, runs, frontier)",
    " ON CONFLICT(site) DO UPDATE SET count = excluded.count, runs = excluded.runs, frontier = excluded.frontier",
)
_INSERT_EVIDENCE = ("INSERT OR IGNORE INTO evidence(sha256, body)", "")
_ROWS_A_STATEMENT = 500
_SET_SITES_UPTO = (
    "INSERT INTO meta(key, value) VALUES ('sites_upto', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
)


def _insert_rows(conn: sqlite3.Connection, sql: tuple[str, str], rows: Sequence[tuple[Any, ...]]) -> None:
    """``INSERT … VALUES (?, …), (?, …), … ON CONFLICT …`` with up to 500 rows a statement, where executemany
    would step once per row.

    Why: sqlite3 releases the GIL around every step. A crawl's registry writer thread appends while the reactor
    thread runs, and each step then waited for the reactor thread to hand the GIL back (up to the 5 ms switch
    interval), so a batch of 50 records handed the GIL back and forth some 60 times. Fewer steps cost a single
    thread nothing either (bench_registry.py)."""
    if not rows:
        return
    head, tail = sql
    row = "(" + ", ".join("?" * len(rows[0])) + ")"
    for i in range(0, len(rows), _ROWS_A_STATEMENT):
        chunk = rows[i : i + _ROWS_A_STATEMENT]
        conn.execute(f"{head} VALUES {', '.join([row] * len(chunk))}{tail}", list(itertools.chain.from_iterable(chunk)))


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SqliteStore(CheckpointReads):
    _param = "?"

    """The SQLite backend. Thread-safe through one lock: SQLite allows one writer anyway."""

    kind = "sqlite"
    integrates_on_append = True

    def __init__(self, path: Path, *, synchronous: str = "FULL", create: bool = True, timeout: float = 30.0) -> None:
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise RegistryError(f"synchronous must be off, normal, full or extra, not {synchronous!r}")
        self.path = path
        self.location = str(path.absolute())  # what is opened, whatever folder the command ran in
        if not create and not path.exists():
            hint = ""
            if path.is_absolute() and Path(path.name).exists():
                hint = f"; sqlite://{path} is an absolute path, sqlite:{path.name} one relative to this folder"
            raise RegistryError(
                f"no registry at {path} (it is created by the first append, or by `registry key`){hint}"
            )
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves so a batch is exactly one transaction.
            self._conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            # A batch of 10,000 records writes ~5 MB, past the default 1,000-page (4 MB) threshold, so every
            # commit also copied the WAL into the database and synced it; 32 MB between checkpoints measured
            # ~3.5 % more appends per second (bench_registry's records) for a larger WAL file.
            self._conn.execute("PRAGMA wal_autocheckpoint=8192")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            if create or not self._has_column("site_tree", "runs"):
                self._upgrade()
            self._conn.execute("SELECT 1 FROM entry LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            raise RegistryError(f"cannot open SQLite registry {path}: {exc}") from None
        self._lock = threading.RLock()
        self._builder: TileBuilder | None = None  # the TileBuilder at the latest checkpoint size, or None to rebuild
        # Site trees touched lately, (count, runs, frontier) as of log size _trees_at (-1: nothing known): a batch reads
        # the trees it advances from here instead of selecting and unpacking them again.
        self._trees: dict[str, SiteTree] = {}
        self._trees_at = -1
        self._maps = SiteMapCache()  # the site map as of the last batch, for the next checkpoint's sites note
        self.set_meta_default("schema", SCHEMA_VERSION)

    def _has_table(self, name: str) -> bool:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return self._conn.execute(sql, (name,)).fetchone() is not None

    def _has_column(self, table: str, column: str) -> bool:
        sql = "SELECT 1 FROM pragma_table_info(?) WHERE name = ?"
        return self._conn.execute(sql, (table, column)).fetchone() is not None

    def _upgrade(self) -> None:
        """Drop a per-entry site index in one transaction (several processes may open the file at once), then
        create what is missing: a new file in one transaction (one sync rather than one per statement saves
        ~100 ms), an existing one statement by statement (``IF NOT EXISTS`` writes nothing when nothing is
        missing, where an empty write transaction would still sync)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            if self._has_table("site_tree") and not self._has_column("site_tree", "runs"):
                for statement in _DROP_ENTRY_INDEX + (_KEEP_V1_NOTES if self._has_table("site_note") else ()):
                    self._conn.execute(statement)
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        new_file = not self._has_table("entry")
        self._conn.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}\nCOMMIT;" if new_file else _SCHEMA)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one moment of the log (a WAL read transaction), even with another process appending."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield
            finally:
                self._conn.execute("COMMIT")

    # -- meta ---------------------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta_default(self, key: str, value: str) -> str:
        """Store ``value`` unless the key is already set; return what is stored (first writer wins)."""
        with self._lock:
            self._conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)", (key, value))
            return self.get_meta(key) or value

    # -- write path ---------------------------------------------------------------------------------------------

    def append(
        self,
        leaves: list[bytes],
        leaf_hashes: list[bytes],
        evidence: list[tuple[bytes, bytes]],
        sign: SignFn,
        sites: list[str | None] | None = None,
        sign_sites: SitesSignFn | None = None,
    ) -> int:
        """Append one batch in one transaction and return the index of its first entry.

        ``sites`` (each leaf's site key) advance the site trees and runs in the same transaction, so the signed
        checkpoint and the site index never disagree, and ``sign_sites`` signs the checkpoint's sites note there
        too. When the index is behind the log (a registry written before it, or a caller that gave no sites) it
        is left for ``ensure_sites`` to catch up in log order, and that checkpoint has no sites note.
        """
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                size = self._size_locked()
                if self._builder is None or self._builder.size != size:
                    # Someone else (another process) appended since we last did, or a batch was rolled back.
                    self._builder = TileBuilder(size, self.read_tile)
                _insert_rows(conn, _INSERT_EVIDENCE, evidence)
                _insert_rows(
                    conn,
                    ("INSERT INTO entry(idx, leaf)", ""),
                    list(zip(range(size, size + len(leaves)), leaves, strict=True)),
                )
                touched = self._builder.add(leaf_hashes)
                _insert_rows(conn, _UPSERT_TILE, [(lv, n, data) for (lv, n), data in touched.items()])
                new_size = size + len(leaves)
                indexed = False
                root = self._builder.root()
                if sites is not None and self._sites_upto_locked() == size:
                    roots = self._write_sites(size, sites, leaf_hashes, new_size)
                    indexed = True
                    if sign_sites is not None:
                        site_map = self._maps.advance(size, roots, self.site_trees)
                        self.add_site_note(
                            new_size,
                            site_map.root,
                            site_map.count,
                            sign_sites(new_size, root, site_map.root, site_map.count),
                        )
                note = sign(new_size, root)
                conn.execute(
                    "INSERT INTO checkpoint(size, root, note, created_at) VALUES (?, ?, ?, ?)",
                    (new_size, root, note, _now()),
                )
                conn.execute("COMMIT")
                if indexed:
                    self._trees_at = new_size
                    self._maps.committed(new_size)
            except BaseException as exc:
                self._builder = None
                self._trees_at = -1
                self._maps.drop()
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.IntegrityError):
                    raise IntegrityError(f"append refused by the database: {exc}") from None
                if isinstance(exc, sqlite3.DatabaseError):
                    raise RegistryError(f"append failed: {exc}") from None
                raise
            return size

    def put_evidence(self, rows: list[tuple[bytes, bytes]]) -> None:
        """Store evidence bodies outside any batch (content-addressed, so a repeat is a no-op)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                _insert_rows(self._conn, _INSERT_EVIDENCE, rows)
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def ensure_checkpoint(self, sign: SignFn, sign_sites: SitesSignFn | None = None) -> None:
        """Sign a checkpoint for the current size if none exists (only possible for the empty log), with its
        sites note (the empty map)."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("SELECT 1 FROM checkpoint LIMIT 1").fetchone() is None:
                    if conn.execute("SELECT 1 FROM entry LIMIT 1").fetchone() is not None:
                        raise IntegrityError("entries exist but no checkpoint covers them")
                    empty = merkle_root([])
                    conn.execute(
                        "INSERT INTO checkpoint(size, root, note, created_at) VALUES (0, ?, ?, ?)",
                        (empty, sign(0, empty), _now()),
                    )
                    if sign_sites is not None:
                        self.add_site_note(0, EMPTY_MAP, 0, sign_sites(0, empty, EMPTY_MAP, 0))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def integrate(self, sign: SignFn, wait: bool = True, sign_sites: SitesSignFn | None = None) -> bool:
        """Nothing to do: SQLite integrates in the append transaction. Present so both backends look alike."""
        if self.latest_checkpoint() is None:  # only an empty log has none; don't take the write lock otherwise
            self.ensure_checkpoint(sign, sign_sites)
        return True

    def add_anchor(self, size: int, tsa: str, tsr: bytes, gen_time: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR IGNORE INTO anchor(size, tsa, tsr, gen_time) VALUES (?, ?, ?, ?)", (size, tsa, tsr, gen_time)
            )

    def anchors(self, size: int | None = None) -> list[tuple[int, str, bytes, str]]:
        with self._lock:
            if size is None:
                rows = self._conn.execute("SELECT size, tsa, tsr, gen_time FROM anchor ORDER BY size, tsa").fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT size, tsa, tsr, gen_time FROM anchor WHERE size = ? ORDER BY tsa", (size,)
                ).fetchall()
        return [(int(s), str(t), bytes(r), str(g)) for s, t, r, g in rows]

    # -- read path ----------------------------------------------------------------------------------------------

    def _size_locked(self) -> int:
        row = self._conn.execute("SELECT max(size) FROM checkpoint").fetchone()
        return 0 if row[0] is None else int(row[0])

    def read_tile(self, level: int, n: int) -> bytes | None:
        with self._lock:
            row = self._conn.execute("SELECT data FROM tile WHERE level = ? AND n = ?", (level, n)).fetchone()
        return None if row is None else bytes(row[0])

    def sequenced(self) -> int:
        """Entries stored (in SQLite every stored entry is integrated)."""
        with self._lock:
            row = self._conn.execute("SELECT max(idx) FROM entry").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def entry_count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM entry").fetchone()[0])

    def leaf(self, idx: int) -> bytes | None:
        with self._lock:
            row = self._conn.execute("SELECT leaf FROM entry WHERE idx = ?", (idx,)).fetchone()
        return None if row is None else bytes(row[0])

    def leaves(self, start: int, end: int, chunk: int = 50_000) -> Iterator[tuple[int, bytes]]:
        """Entries with start <= idx < end in index order, fetched in chunks so memory stays bounded."""
        pos = start
        while pos < end:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT idx, leaf FROM entry WHERE idx >= ? AND idx < ? ORDER BY idx", (pos, min(end, pos + chunk))
                ).fetchall()
            for idx, leaf in rows:
                yield int(idx), bytes(leaf)
            pos += chunk

    def evidence(self, sha: bytes) -> bytes | None:
        with self._lock:
            row = self._conn.execute("SELECT body FROM evidence WHERE sha256 = ?", (sha,)).fetchone()
        return None if row is None else bytes(row[0])

    # -- per-site trees (docs/completeness.md), written in the append transaction -------------------------------

    def _write_sites(
        self, first: int, sites: list[str | None], leaf_hashes: list[bytes], new_size: int, cuts: Sequence[int] = ()
    ) -> dict[str, tuple[int, bytes]]:
        if self._trees_at != first or len(self._trees) > _TREES_CACHED:  # another writer, a rollback, or too many
            self._trees.clear()
        tree_rows, run_rows, roots = advance_sites(self._cached_trees, first, sites, leaf_hashes, cuts)
        conn = self._conn
        _insert_rows(conn, ("INSERT INTO site_run(site, first, idxs)", ""), run_rows)
        _insert_rows(conn, _UPSERT_SITE, tree_rows)
        conn.execute(_SET_SITES_UPTO, (str(new_size),))
        return roots

    def _cached_trees(self, sites: list[str]) -> dict[str, SiteTree]:
        missing = [site for site in sites if site not in self._trees]
        if missing:
            self._trees.update(self.load_site_trees(missing))
        return self._trees

    def _sites_upto_locked(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'sites_upto'").fetchone()
        return int(row[0]) if row else 0

    def sites_upto(self) -> int:
        with self._lock:
            return self._sites_upto_locked()

    def ensure_sites(self, chunk: int = 100_000) -> None:
        """Bring the site trees and runs up to the latest checkpoint from the stored entries, about ``chunk``
        entries a transaction, each ending at a checkpoint (appenders wait for one at most). Sites are read from
        the leaf bytes, leaf hashes from the level-0 tiles the signed root is made of (a tile that disagrees with
        its entry makes that record fail the holder's check, and check --full names the tile)."""
        while True:
            with self._lock:
                conn = self._conn
                conn.execute("BEGIN IMMEDIATE")
                try:
                    size = self._size_locked()
                    done = self._sites_upto_locked()
                    if done > size:
                        raise IntegrityError(f"the site index covers {done} entries but the log holds {size}")
                    if done < size:
                        end, cuts = self.catch_up_span(done, size, chunk)
                        sites = [leaf_site(leaf) for _, leaf in self.leaves(done, end)]
                        self._write_sites(done, sites, tile_leaf_hashes(self.read_tile, done, end), end, cuts)
                    conn.execute("COMMIT")
                    if done < size:
                        self._trees_at = end
                except BaseException:
                    self._trees_at = -1
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            if done >= size or end >= size:
                return

    def close(self) -> None:
        with self._lock:
            self._conn.close()
