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
    RUN_PREFIX,
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

    def catch_up_span(self, done: int, size: int, chunk: int) -> tuple[int, list[int]]:
        """Where a catch-up of the site trees from ``done`` towards checkpoint ``size`` ends, and the checkpoint
        sizes strictly inside that span: it ends at a checkpoint (runs are cut there), the last one within
        ``chunk`` entries, or the next one when a single checkpoint added more."""
        p = self._param
        sql = f"SELECT size FROM checkpoint WHERE size > {p} AND size <= {p} ORDER BY size"
        with self._lock:
            sizes = [int(row[0]) for row in self._conn.execute(sql, (done, size)).fetchall()]
        if not sizes or sizes[-1] != size:
            raise IntegrityError(f"no checkpoint at size {size}, which the site trees are brought up to")
        within = [n for n in sizes if n <= done + chunk] or sizes[:1]
        return within[-1], within[:-1]

    def evidence_stats(self) -> tuple[int, int]:
        with self._lock:
            count, size = self._conn.execute("SELECT count(*), coalesce(sum(length(body)), 0) FROM evidence").fetchone()
        return int(count), int(size)

    # -- per-site completeness (docs/completeness.md) -------------------------------------------------------------

    def site_trees(self) -> dict[str, SiteTreeRow]:
        """Every site's (count, runs, packed frontier): the input of the site map."""
        with self._lock:
            rows = self._conn.execute("SELECT site, count, runs, frontier FROM site_tree").fetchall()
        return {str(s): (int(c), int(r), bytes(f)) for s, c, r, f in rows}

    def load_site_trees(self, sites: list[str]) -> dict[str, SiteTree]:
        """(count, runs, frontier) of the given sites that have a tree, in chunks (SQLite limits the number of
        parameters); ValueError when a stored frontier does not fit its number of runs."""
        out: dict[str, SiteTree] = {}
        for i in range(0, len(sites), 500):
            chunk = sites[i : i + 500]
            marks = ", ".join([self._param] * len(chunk))
            sql = f"SELECT site, count, runs, frontier FROM site_tree WHERE site IN ({marks})"
            for s, c, r, f in self._conn.execute(sql, chunk).fetchall():
                out[str(s)] = (int(c), int(r), frontier_unpack(bytes(f), int(r)))
        return out

    def site_runs(self, site: str, upto: int) -> list[list[int]]:
        """The log indices of ``site``'s runs that start below ``upto`` (a checkpoint size, which no run spans),
        in log order."""
        sql = f"SELECT first, idxs FROM site_run WHERE site = {self._param} AND first < {self._param} ORDER BY first"
        with self._lock:
            rows = self._conn.execute(sql, (site, upto)).fetchall()
        try:
            return [run_indices(int(first), bytes(blob)) for first, blob in rows]
        except ValueError as exc:
            raise IntegrityError(f"site index of {site} is damaged: {exc}") from None

    def iter_site_runs(self) -> Iterator[tuple[str, list[int]]]:
        """Every (site, indices of one run), ordered by site then run (for check --full, which compares them with
        the entries); a run whose bytes are damaged is listed as empty, so the comparison names it."""
        with self._lock:
            rows = self._conn.execute("SELECT site, first, idxs FROM site_run ORDER BY site, first").fetchall()
        for site, first, blob in rows:
            try:
                indices = run_indices(int(first), bytes(blob))
            except ValueError:
                indices = []
            yield str(site), indices

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


SiteTree = tuple[int, int, list[bytes]]
"""A site tree as the writer advances it: (entries, runs, frontier), the frontier one hash per set bit of runs."""
SiteTreeRow = tuple[int, int, bytes]
"""A site tree as stored: (entries, runs, packed frontier)."""


def advance_sites(
    load: Callable[[list[str]], dict[str, SiteTree]],
    first: int,
    sites: Sequence[str | None],
    leaf_hashes: Sequence[bytes],
    cuts: Sequence[int] = (),
) -> tuple[list[tuple[str, int, int, bytes]], list[tuple[str, int, bytes]], dict[str, tuple[int, bytes]]]:
    """Append entries ``first, first+1, …`` to their sites' trees (docs/completeness.md), one run per site and
    checkpoint: ``cuts`` are the checkpoint sizes strictly inside the batch (a catch-up spans several), and a run
    never spans one.

    ``load`` returns the (count, runs, frontier) of the sites asked for (absent = new site) in a dict that this
    updates: each touched site's frontier list is advanced in place and its new state stored back, so a caller
    may keep the dict as a cache across batches (and must drop it when the transaction does not commit). Returns
    the site_tree rows to upsert, (site, count, runs, packed frontier), one site_run row per run, (site, its first
    index, its indices packed by ``pack_run``), and each touched site's new (count, root), what the site map is
    updated with. The hashing is one SHA-256 per run over its entries (``RUN_PREFIX``, then each index and leaf
    hash) plus, on average, one node hash: per site and batch, not per record. Leaf hashes here are SHA-256
    digests (merkle.leaf_hashes or the tiles), so the run input needs no length checks.
    """
    sha256 = hashlib.sha256
    bounds = [first, *cuts, first + len(sites)]
    segments: list[dict[str, list[int]]] = []
    for lo, hi in itertools.pairwise(bounds):
        by_site: dict[str, list[int]] = {}
        for i in range(lo - first, hi - first):
            site = sites[i]
            if site is not None:
                got = by_site.get(site)
                if got is None:
                    by_site[site] = [i]
                else:
                    got.append(i)
        segments.append(by_site)
    touched = sorted(set().union(*segments))
    state = load(touched) if touched else {}
    run_rows: list[tuple[str, int, bytes]] = []
    for by_site in segments:
        for site in sorted(by_site):
            offsets = by_site[site]
            count, runs, frontier = state.get(site) or (0, 0, [])
            packed = pack_run([first + o for o in offsets])
            h = sha256(
                RUN_PREFIX + b"".join([packed[8 * j : 8 * j + 8] + leaf_hashes[o] for j, o in enumerate(offsets)])
            ).digest()
            c = runs
            while c & 1:  # sitemap.frontier_append with merkle.node_hash inlined: once per site and batch
                h = sha256(NODE_PREFIX + frontier.pop() + h).digest()
                c >>= 1
            frontier.append(h)
            state[site] = (count + len(offsets), runs + 1, frontier)
            run_rows.append((site, first + offsets[0], packed))
    tree_rows: list[tuple[str, int, int, bytes]] = []
    roots: dict[str, tuple[int, bytes]] = {}
    for site in touched:
        count, runs, frontier = state[site]
        tree_rows.append((site, count, runs, frontier_pack(frontier)))
        roots[site] = (count, fold(frontier))
    return tree_rows, run_rows, roots


def site_roots(stored: dict[str, SiteTreeRow]) -> dict[str, tuple[int, bytes]]:
    """{site: (count, site-tree root)} from stored (count, runs, packed frontier) rows: the site map's input."""
    roots: dict[str, tuple[int, bytes]] = {}
    for site, (count, runs, packed) in stored.items():
        try:
            roots[site] = (count, fold(frontier_unpack(packed, runs)))
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
        self, first: int, changed: dict[str, tuple[int, bytes]], stored: Callable[[], dict[str, SiteTreeRow]]
    ) -> SiteMap:
        """The map after the batch that starts at log index ``first`` set ``changed``; ``stored()`` reads every
        site's (count, runs, packed frontier) in the batch's transaction."""
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
