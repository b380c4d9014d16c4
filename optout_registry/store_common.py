"""Read queries both registry stores answer with the same SQL (only the parameter marker differs)."""

from __future__ import annotations

import hashlib
import itertools
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from optout_registry.errors import IntegrityError
from optout_registry.merkle import NODE_PREFIX
from optout_registry.sitemap import (
    ENTRY_PREFIX,
    HASH_INPUT,
    SiteMap,
    fold,
    frontier_pack,
    frontier_unpack,
    site_key,
    site_of_record,
)


class CheckpointReads:
    """Tile keys, checkpoint rows and evidence listings. A store sets ``_conn``, ``_lock`` and ``_param``."""

    _conn: Any
    _lock: threading.RLock
    _param: str

    def tile_keys(self) -> set[tuple[int, int]]:
        with self._lock:
            rows = self._conn.execute("SELECT level, n FROM tile").fetchall()
        return {(int(level), int(n)) for level, n in rows}

    def latest_checkpoint(self) -> tuple[int, bytes, str] | None:
        with self._lock:
            row = self._conn.execute("SELECT size, root, note FROM checkpoint ORDER BY size DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]), str(row[2]))

    def checkpoint_at(self, size: int) -> tuple[int, bytes, str] | None:
        sql = f"SELECT size, root, note FROM checkpoint WHERE size = {self._param}"
        with self._lock:
            row = self._conn.execute(sql, (size,)).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]), str(row[2]))

    def checkpoints(self) -> list[tuple[int, bytes, str]]:
        with self._lock:
            rows = self._conn.execute("SELECT size, root, note FROM checkpoint ORDER BY size").fetchall()
        return [(int(s), bytes(r), str(n)) for s, r, n in rows]

    def evidence_stats(self) -> tuple[int, int]:
        with self._lock:
            count, size = self._conn.execute("SELECT count(*), coalesce(sum(length(body)), 0) FROM evidence").fetchone()
        return int(count), int(size)

    # -- per-site completeness (docs/completeness.md) -------------------------------------------------------------

    def site_trees(self) -> dict[str, tuple[int, bytes]]:
        """Every site's (count, packed frontier): the input of the site map."""
        with self._lock:
            rows = self._conn.execute("SELECT site, count, frontier FROM site_tree").fetchall()
        return {str(s): (int(c), bytes(f)) for s, c, f in rows}

    def load_site_trees(self, sites: list[str]) -> dict[str, tuple[int, list[bytes]]]:
        """(count, frontier) of the given sites that have a tree, in chunks (SQLite limits the number of
        parameters); ValueError when a stored frontier does not fit its count."""
        out: dict[str, tuple[int, list[bytes]]] = {}
        for i in range(0, len(sites), 500):
            chunk = sites[i : i + 500]
            marks = ", ".join([self._param] * len(chunk))
            sql = f"SELECT site, count, frontier FROM site_tree WHERE site IN ({marks})"
            for s, c, f in self._conn.execute(sql, chunk).fetchall():
                out[str(s)] = (int(c), frontier_unpack(bytes(f), int(c)))
        return out

    def site_indices(self, site: str, upto: int) -> list[int]:
        """The log indices of ``site``'s entries below ``upto``, in log order, from its runs."""
        sql = f"SELECT first, idxs FROM site_run WHERE site = {self._param} AND first < {self._param} ORDER BY first"
        with self._lock:
            rows = self._conn.execute(sql, (site, upto)).fetchall()
        out: list[int] = []
        for first, blob in rows:
            try:
                out.extend(run_indices(int(first), bytes(blob)))
            except ValueError as exc:
                raise IntegrityError(f"site index of {site} is damaged: {exc}") from None
        return [idx for idx in out if idx < upto]

    def iter_site_index(self) -> Iterator[tuple[str, int]]:
        """Every (site, idx) the runs list, ordered by site then run (for check --full, which compares them with
        the entries); a run whose bytes are damaged is listed as no index at all, so the comparison names it."""
        with self._lock:
            rows = self._conn.execute("SELECT site, first, idxs FROM site_run ORDER BY site, first").fetchall()
        for site, first, blob in rows:
            try:
                indices = run_indices(int(first), bytes(blob))
            except ValueError:
                indices = []
            for idx in indices:
                yield str(site), idx

    def site_totals(self) -> tuple[int, int]:
        """(sum of the site trees' counts, number of indices the runs hold): both equal the entries with a site."""
        with self._lock:
            total = self._conn.execute("SELECT coalesce(sum(count), 0) FROM site_tree").fetchone()[0]
            listed = self._conn.execute("SELECT coalesce(sum(length(idxs)), 0) FROM site_run").fetchone()[0]
        return int(total), int(listed) // 8

    def site_notes(self) -> list[tuple[int, bytes, int, str]]:
        with self._lock:
            rows = self._conn.execute("SELECT size, map_root, sites, note FROM site_note ORDER BY size").fetchall()
        return [(int(s), bytes(r), int(n), str(t)) for s, r, n, t in rows]

    def site_note_at(self, size: int) -> tuple[int, bytes, int, str] | None:
        sql = f"SELECT size, map_root, sites, note FROM site_note WHERE size = {self._param}"
        with self._lock:
            row = self._conn.execute(sql, (size,)).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]), int(row[2]), str(row[3]))

    def add_site_note(self, size: int, map_root: bytes, sites: int, note: str) -> None:
        """Store the signed sites note of checkpoint ``size``; the first one stored for a size stays."""
        p = self._param
        sql = f"INSERT INTO site_note(size, map_root, sites, note) VALUES ({p}, {p}, {p}, {p}) ON CONFLICT DO NOTHING"
        with self._lock:
            self._conn.execute(sql, (size, map_root, sites, note))

    def evidence_written(self) -> int | None:
        """How many evidence rows were ever inserted (a trigger counts them), None if not counted."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'evidence_rows'").fetchone()
        return None if row is None else int(row[0])

    def iter_evidence(self) -> Iterator[tuple[bytes, bytes]]:
        with self._lock:
            rows = self._conn.execute("SELECT sha256, body FROM evidence").fetchall()
        for sha, body in rows:
            yield bytes(sha), bytes(body)


def _leaf_site_decoder() -> Callable[[bytes], str | None]:
    """A parser that reads only ``target.site`` of a leaf: msgspec skips every other member in C (about 10x
    cheaper than ``json.loads`` building the whole record), plain ``json`` where msgspec is not installed."""
    try:
        import msgspec
    except ImportError:  # pragma: no cover - msgspec is a dependency of the record schema
        import json

        def slow(leaf: bytes) -> str | None:
            try:
                obj = json.loads(leaf)
            except ValueError:
                return None
            return site_of_record(obj) if isinstance(obj, dict) else None

        return slow

    target_type = msgspec.defstruct("Target", [("site", str, "")])
    leaf_type = msgspec.defstruct("Leaf", [("target", target_type | None, None)])
    decode: Callable[[bytes], Any] = msgspec.json.Decoder(leaf_type).decode  # a type built at run time

    def fast(leaf: bytes) -> str | None:
        try:
            target = decode(leaf).target
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        return site_key(target.site) if target is not None and target.site else None

    return fast


_leaf_site: Callable[[bytes], str | None] | None = None


def leaf_site(leaf: bytes) -> str | None:
    """The site key of a stored leaf (docs/completeness.md: ``target.site``, ASCII lower-cased), or None.

    The integrator, the catch-up and the auditor read sites from the bytes that were hashed, never from what a
    node claimed.
    """
    global _leaf_site
    if _leaf_site is None:
        _leaf_site = _leaf_site_decoder()
    return _leaf_site(leaf)


def tile_leaf_hashes(read_tile: Callable[[int, int], bytes | None], start: int, end: int) -> list[bytes]:
    """Leaf hashes of entries [start, end) sliced out of the level-0 tiles (256 hashes a tile)."""
    out: list[bytes] = []
    for n in range(start // 256, (end - 1) // 256 + 1):
        data = read_tile(0, n)
        lo, hi = max(start, n * 256) - n * 256, min(end, n * 256 + 256) - n * 256
        if data is None or len(data) < hi * 32:
            raise ValueError(f"level-0 tile {n} is missing or too short for entries up to {end - 1}")
        out.extend(data[i * 32 : i * 32 + 32] for i in range(lo, hi))
    return out


def advance_sites(
    load: Callable[[list[str]], dict[str, tuple[int, list[bytes]]]],
    first: int,
    sites: Sequence[str | None],
    leaf_hashes: Sequence[bytes],
) -> tuple[list[tuple[str, int, bytes]], list[tuple[str, int, bytes]], dict[str, tuple[int, bytes]]]:
    """Append entries ``first, first+1, …`` to their sites' trees (docs/completeness.md).

    ``load`` returns the (count, frontier) of the sites asked for (absent = new site) in a dict that this updates:
    each touched site's frontier list is advanced in place and its new state stored back, so a caller may keep
    the dict as a cache across batches (and must drop it when the transaction does not commit). Returns the
    site_tree rows to upsert, (site, count, packed frontier), and one site_run row per site touched, (site, its
    first index here, its indices packed by ``pack_run``): a row per site and batch rather than per entry, because
    at 100,000 records/s an index row per entry alone cost 15 % of the append budget. The hashing is one SHA-256
    per entry plus, on average, one node hash: the frontier is the compact range. Also returns each touched
    site's new (count, root), what the site map is updated with.
    """
    sha256 = hashlib.sha256
    entry_input = HASH_INPUT
    by_site: dict[str, list[int]] = {}
    for i, site in enumerate(sites):
        if site is not None:
            got = by_site.get(site)
            if got is None:
                by_site[site] = [first + i]
            else:
                got.append(first + i)
    touched = sorted(by_site)
    state = load(touched) if by_site else {}
    tree_rows: list[tuple[str, int, bytes]] = []
    run_rows: list[tuple[str, int, bytes]] = []
    roots: dict[str, tuple[int, bytes]] = {}
    for site in touched:
        indices = by_site[site]
        count, frontier = state.get(site) or (0, [])
        for idx in indices:
            # sitemap.entry_hash and frontier_append with merkle.node_hash inlined: this runs once per logged
            # record. Leaf hashes here are SHA-256 digests (merkle.leaf_hashes), so HASH_INPUT needs no check.
            h = sha256(entry_input(ENTRY_PREFIX, idx, leaf_hashes[idx - first])).digest()
            c = count
            while c & 1:
                h = sha256(NODE_PREFIX + frontier.pop() + h).digest()
                c >>= 1
            frontier.append(h)
            count += 1
        state[site] = (count, frontier)
        tree_rows.append((site, count, frontier_pack(frontier)))
        run_rows.append((site, indices[0], pack_run(indices)))
        roots[site] = (count, fold(frontier))
    return tree_rows, run_rows, roots


def site_roots(stored: dict[str, tuple[int, bytes]]) -> dict[str, tuple[int, bytes]]:
    """{site: (count, site-tree root)} from stored (count, packed frontier) rows: the site map's input."""
    roots: dict[str, tuple[int, bytes]] = {}
    for site, (count, packed) in stored.items():
        try:
            roots[site] = (count, fold(frontier_unpack(packed, count)))
        except ValueError as exc:
            raise IntegrityError(f"site tree of {site} is damaged: {exc}") from None
    return roots


class SiteMapCache:
    """A writer's site map between its batches, as of log size ``at``, so that signing every checkpoint's sites
    note costs what the batch changed rather than O(sites) (docs/completeness.md).

    ``advance`` is called inside the batch's transaction and ``committed`` after it commits, ``drop`` when it
    does not; a batch that did not advance the map, or another writer's batch in between, leaves ``at`` behind.
    Either way the next ``advance`` rebuilds the map from the stored site trees, which the transaction then
    already holds.
    """

    def __init__(self) -> None:
        self._map: SiteMap | None = None
        self._at = -1
        self._advanced = False

    def advance(
        self, first: int, changed: dict[str, tuple[int, bytes]], stored: Callable[[], dict[str, tuple[int, bytes]]]
    ) -> SiteMap:
        """The map after the batch that starts at log index ``first`` set ``changed``; ``stored()`` reads every
        site's (count, packed frontier) in the batch's transaction."""
        site_map = self._map
        if site_map is None or self._at != first:
            site_map = self._map = SiteMap(site_roots(stored()))
        else:
            site_map.update(changed)
        self._advanced = True
        return site_map

    def committed(self, size: int) -> None:
        """The batch ending at ``size`` committed: the map is that size's if the batch advanced it."""
        if self._advanced:
            self._at, self._advanced = size, False
        else:
            self.drop()

    def drop(self) -> None:
        self._map, self._at, self._advanced = None, -1, False


def pack_run(indices: Sequence[int]) -> bytes:
    """A site_run's indices as stored: big-endian uint64s, ascending."""
    return struct.pack(f">{len(indices)}Q", *indices)


def run_indices(first: int, blob: bytes) -> list[int]:
    """The indices of a stored site_run; ValueError when its bytes cannot be one (a length that is not a multiple
    of 8, a first index other than the row's, indices not strictly ascending)."""
    if not blob or len(blob) % 8:
        raise ValueError(f"site_run at {first} holds {len(blob)} bytes, not a whole number of indices")
    indices = list(struct.unpack(f">{len(blob) // 8}Q", blob))
    if indices[0] != first or any(a >= b for a, b in itertools.pairwise(indices)):
        raise ValueError(f"site_run at {first} does not list ascending indices starting at {first}")
    return indices
