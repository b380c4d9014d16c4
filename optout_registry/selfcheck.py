"""The registry's self-checks: the quick start-up check and ``optout registry check --full`` (REGISTRY.md §6.6).

Apart from the facade because they read the store behind the API's back on purpose: they recompute what the
log's signed checkpoints and sites notes commit to from the stored tiles, entries and site index, and report every
difference in one line. Quick (start-up, every ``Registry.open``): the latest checkpoint verifies with the recorded
vkey; the root recomputed from the tiles equals it; the entry count equals the tree size (plus pending entries in
PostgreSQL); the last level-0 tile matches the hashes of the newest entries; the site index adds up. Full: also
re-hashes every entry into a fresh tree, compares every stored tile with it, checks every stored checkpoint's
signature and root, replays the per-site index (:class:`_SiteReplay`) and re-hashes every evidence blob. The
database owner can defeat any local check by rewriting everything and re-signing; only checkpoints kept by others
(exports, anchors) catch that.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from optout_registry.keys import vkey_verifier
from optout_registry.merkle import leaf_hash
from optout_registry.note import NoteError, Verifier, open_checkpoint, open_note
from optout_registry.record import RecordError, parse_leaf
from optout_registry.recordfields import evidence_refs
from optout_registry.sitemap import (
    SiteMap,
    fold,
    frontier_append,
    frontier_pack,
    parse_sites_note,
    run_hash,
    site_of_record,
)
from optout_registry.storeapi import Store
from optout_registry.tiles import TileBuilder, TileReader

FULL_TILE_BYTES = 8192


@dataclass
class CheckReport:
    """Outcome of a self-check: ``problems`` empty means every check passed; ``lines`` says what was checked."""

    ok: bool = True
    size: int = 0
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def fail(self, problem: str) -> None:
        """Record a problem (the first 50 are listed) and mark the check failed."""
        self.ok = False
        if len(self.problems) < 50:
            self.problems.append(problem)
        elif len(self.problems) == 50:
            self.problems.append("… further problems not listed")


def run_self_check(store: Store, origin: str, full: bool = False) -> CheckReport:
    """Check the log in ``store`` (of ``origin``) against its own signed checkpoints, quick or ``full``. The caller
    holds a snapshot (``store.snapshot()``) so an appender cannot move the log between two reads."""
    return _SelfCheck(store, origin).run(full)


class _SelfCheck:
    """One run of the checks over one store; the methods are the checks, each failing into the report."""

    def __init__(self, store: Store, origin: str) -> None:
        self.store = store
        self.origin = origin

    def run(self, full: bool) -> CheckReport:
        """The checks of :func:`run_self_check`, on a snapshot the caller holds."""
        rep = CheckReport()
        store = self.store
        latest = store.latest_checkpoint()
        vkey = store.get_meta("vkey")
        sequenced = store.sequenced()
        count = store.entry_count()
        if latest is None:
            integrated = 0
            if self.store.kind == "sqlite" and count:
                rep.fail(f"{count} entries are stored but no signed checkpoint covers them")
            if store.read_tile(0, 0) is not None:
                rep.fail("tiles are stored but no signed checkpoint covers them")
            rep.lines.append("no checkpoint yet (empty log)")
        else:
            size, root, note = latest
            integrated = size
            rep.size = size
            if vkey is None:
                rep.fail("checkpoints exist but no verifier key is recorded in the registry")
            else:
                try:
                    cp = open_checkpoint(note, vkey_verifier(vkey), origin=self.origin)
                    if cp.size != size or cp.root != root:
                        rep.fail(f"checkpoint row {size} does not match its signed note (size {cp.size})")
                    else:
                        rep.lines.append(f"latest checkpoint (size {size}) is signed by {vkey.split('+')[0]}")
                except (NoteError, ValueError) as exc:
                    rep.fail(f"latest checkpoint (size {size}) does not verify with the registry key: {exc}")
            try:
                tree_root = TileReader(size, store.read_tile, cache_tiles=1024).root()
                if tree_root != root:
                    rep.fail(
                        f"root recomputed from tiles ({tree_root.hex()[:16]}…) differs from the last signed "
                        f"checkpoint (size {size}, root {root.hex()[:16]}…)"
                    )
                else:
                    rep.lines.append("root recomputed from tiles equals the latest checkpoint")
            except (LookupError, ValueError) as exc:
                rep.fail(f"cannot recompute the root from tiles at size {size}: {exc}")
            if self.store.kind == "postgresql":
                isize, iroot, _nxt = store.coordination()  # type: ignore[attr-defined]
                if isize != size or iroot != root:
                    rep.fail(f"integrator head (size {isize}) differs from the latest checkpoint (size {size})")
            self._check_right_edge(size, rep)
        expected = sequenced if self.store.kind == "postgresql" else integrated
        if self.store.kind == "sqlite" and sequenced != integrated:
            rep.fail(f"entries run to index {sequenced - 1} but the last signed checkpoint covers {integrated}")
        if count != expected:
            rep.fail(f"{count} entries stored but the log says {expected} (rows deleted or inserted)")
        elif expected:
            rep.lines.append(f"{count} entries stored, indices contiguous")
        self._check_site_totals(integrated, rep)
        if full:
            self._full_check(rep, vkey)
        return rep

    def _check_site_totals(self, size: int, rep: CheckReport) -> None:
        """Cheap: the site trees cover a prefix of the signed log (all of it, once caught up), and both their counts
        and the indices the site runs list add up to that prefix.

        Every valid record names a site, so a deleted, shortened or added site_run row, or a site tree rolled
        back, shows here at start-up (check --full then says which site)."""
        upto = self.store.sites_upto()
        total, rows = self.store.site_totals()
        if upto > size:
            rep.fail(f"site trees cover {upto} entries but the latest checkpoint covers only {size}")
        if total != upto or rows != upto:
            rep.fail(
                f"site index lists {rows} entries and the site trees count {total}, but they cover {upto} "
                "entries (site index rows deleted or added)"
            )
        elif upto:
            rep.lines.append(f"site index and site trees cover the first {upto} of {size} entries")

    def _check_right_edge(self, size: int, rep: CheckReport) -> None:
        """The newest entries (up to one level-0 tile) must hash to what the tiles hold: cheap, catches a lot."""

        if size == 0:
            return
        n = (size - 1) // 256
        stored = self.store.read_tile(0, n)
        want = [leaf_hash(leaf) for _, leaf in self.store.leaves(n * 256, size)]
        if stored is None or stored[: len(want) * 32] != b"".join(want) or len(want) != size - n * 256:
            rep.fail(f"the newest entries ({n * 256}..{size - 1}) do not hash to the stored tile 0/{n}")

    def _full_check(self, rep: CheckReport, vkey: str | None) -> None:

        store = self.store
        cps = store.checkpoints()
        verifier = vkey_verifier(vkey) if vkey else None
        for size, root, note in cps:
            if verifier is None:
                break
            try:
                cp = open_checkpoint(note, verifier, origin=self.origin)
                if cp.size != size or cp.root != root:
                    rep.fail(f"checkpoint row {size} does not match its signed note")
            except (NoteError, ValueError) as exc:
                rep.fail(f"checkpoint {size} does not verify: {exc}")
        size = rep.size
        roots = {s: r for s, r, _ in cps if s <= size}
        builder = TileBuilder(0, lambda level, n: None)
        partial: dict[tuple[int, int], bytes] = {}
        full_seen: set[tuple[int, int]] = set()
        bad_tiles = 0
        pending: list[bytes] = []
        stops = sorted(s for s in roots if s > 0)
        stop_i = 0
        non_canonical = 0

        def flush() -> None:
            nonlocal bad_tiles
            for (level, n), data in builder.add(pending).items():
                if len(data) == FULL_TILE_BYTES:
                    partial.pop((level, n), None)
                    full_seen.add((level, n))
                    if store.read_tile(level, n) != data:
                        bad_tiles += 1
                        rep.fail(f"stored tile {level}/{n} differs from the tile recomputed from the entries")
                else:
                    partial[(level, n)] = data
            pending.clear()

        sites = _SiteReplay(self, rep, {s: r for s, r, _ in cps}, verifier)
        expect = 0
        for idx, leaf in store.leaves(0, size):
            if idx != expect:
                rep.fail(f"entry {expect} is missing")
                break
            expect += 1
            record = None
            try:
                record = parse_leaf(leaf)
            except (RecordError, ValueError) as exc:
                non_canonical += 1
                if non_canonical <= 3:
                    rep.fail(f"entry {idx} is not a valid canonical record: {exc}")
            pending.append(leaf_hash(leaf))
            sites.add(idx, record, pending[-1])
            if len(pending) >= 65_536 or (stop_i < len(stops) and expect == stops[stop_i]):
                flush()
                while stop_i < len(stops) and stops[stop_i] <= expect:
                    if stops[stop_i] == expect and builder.root() != roots[expect]:
                        rep.fail(f"signed checkpoint {expect} does not match the entries (root differs)")
                    stop_i += 1
        flush()
        if expect == size:
            for (level, n), data in partial.items():
                if store.read_tile(level, n) != data:
                    rep.fail(f"stored partial tile {level}/{n} differs from the tile recomputed from the entries")
            stored_keys = store.tile_keys()
            extra = stored_keys - full_seen - set(partial)
            if extra:
                rep.fail(f"{len(extra)} stored tile(s) are not part of the tree, e.g. {sorted(extra)[0]}")
            if builder.root() != roots.get(size, builder.root()):
                rep.fail(f"entries do not hash to the root of the latest checkpoint (size {size})")
            else:
                rep.lines.append(f"all {size} entries re-hashed; every tile and {len(roots)} checkpoint(s) match")
        if expect == size:
            sites.finish(size)
        blobs = 0
        stored_refs: set[str] = set()
        for sha, body in store.iter_evidence():
            blobs += 1
            stored_refs.add(sha.hex())
            if hashlib.sha256(body).digest() != sha:
                rep.fail(f"evidence {sha.hex()} does not hash to its key")
        rep.lines.append(f"{blobs} evidence blob(s) re-hashed")
        written = store.evidence_written()
        if written is not None and written != blobs:
            rep.fail(f"{blobs} evidence row(s) stored but {written} were written (evidence rows deleted or added)")
        absent = sites.evidence_refs - stored_refs
        if absent:
            rep.lines.append(
                f"{len(absent)} evidence blob(s) referenced by records were never stored (exports list them as "
                f"missing), e.g. {sorted(absent)[0]}"
            )


class _SiteReplay:
    """check --full's recomputation of the per-site index from the entries alone (docs/completeness.md, "How an
    auditor recomputes it"): site trees in log order, a run per site and checkpoint, the site map at every signed
    sites note, and the stored site_tree and site_run rows compared with the result."""

    def __init__(
        self, checker: _SelfCheck, rep: CheckReport, roots: dict[int, bytes], verifier: Verifier | None
    ) -> None:
        self.checker, self.rep, self.roots, self.verifier = checker, rep, roots, verifier
        self.trees: dict[str, tuple[int, int, list[bytes]]] = {}  # (count, runs, frontier)
        self.pending: dict[str, list[tuple[int, bytes]]] = {}  # each site's entries since the last checkpoint
        self.site_map = SiteMap()  # as of the last note checked, plus the sites touched since
        self.touched: set[str] = set()
        self.runs: dict[str, list[list[int]]] = {}  # each site's runs below upto, as log indices
        self.notes = {size: (map_root, n, note) for size, map_root, n, note in checker.store.site_notes()}
        self.evidence_refs: set[str] = set()
        self.upto = checker.store.sites_upto()  # the stored trees and index are compared at this size
        self.at_upto: dict[str, tuple[int, int, list[bytes]]] = {}
        if 0 in self.notes:
            self._check_note(0)

    def add(self, idx: int, record: dict[str, Any] | None, lh: bytes) -> None:

        if record is not None:
            self.evidence_refs.update(evidence_refs(record))
            site = site_of_record(record)
            if site is not None:
                self.pending.setdefault(site, []).append((idx, lh))
        if idx + 1 in self.roots:
            self._close_runs(idx + 1)
        if idx + 1 in self.notes:
            self._check_note(idx + 1)
        if idx + 1 == self.upto:
            self.at_upto = {s: (c, r, list(f)) for s, (c, r, f) in self.trees.items()}

    def _close_runs(self, size: int) -> None:
        """Checkpoint ``size``: each site's entries since the previous checkpoint become one leaf of its tree."""
        for site, run in self.pending.items():
            count, runs, frontier = self.trees.get(site, (0, 0, []))
            frontier_append(frontier, runs, run_hash(run))
            self.trees[site] = (count + len(run), runs + 1, frontier)
            self.touched.add(site)
            if size <= self.upto:
                self.runs.setdefault(site, []).append([idx for idx, _ in run])
        self.pending.clear()

    def _check_note(self, size: int) -> None:

        map_root, n, note = self.notes[size]
        site_map = self.site_map  # every checkpoint has a note: the map is advanced by what changed since the last
        site_map.update({s: (self.trees[s][0], fold(self.trees[s][2])) for s in self.touched})
        self.touched.clear()
        if site_map.root != map_root or site_map.count != n:
            self.rep.fail(f"sites note of checkpoint {size}: the site map recomputed from the entries differs")
        if self.verifier is None:
            return
        try:
            origin, nsize, log_root, nmap, nsites = parse_sites_note(open_note(note, self.verifier))
        except (NoteError, ValueError) as exc:
            self.rep.fail(f"sites note of checkpoint {size} does not verify: {exc}")
            return
        if (origin, nsize, nmap, nsites) != (self.checker.origin, size, map_root, n) or log_root != self.roots.get(
            size
        ):
            self.rep.fail(f"sites note of checkpoint {size} does not match its row or the checkpoint's root")

    def finish(self, size: int) -> None:

        store, rep = self.checker.store, self.rep
        stored = store.site_trees()
        bad = 0
        if self.upto > size:
            return  # reported by the quick check
        for site in sorted(set(stored) | set(self.at_upto)):
            count, runs, frontier = self.at_upto.get(site, (0, 0, []))
            if stored.get(site) != (count, runs, frontier_pack(frontier)):
                bad += 1
                have = stored.get(site, (0, 0, b""))[0]
                rep.fail(f"site tree of {site}: stored count {have}, the entries give {count} (or the root differs)")
        got: dict[str, list[list[int]]] = {}
        for site, run in store.iter_site_runs():
            got.setdefault(site, []).append(run)
        for site in sorted(set(got) | set(self.runs)):
            want_runs, have_runs = self.runs.get(site, []), got.get(site, [])
            if want_runs != have_runs:
                bad += 1
                want = [idx for run in want_runs for idx in run]
                have_idx = [idx for run in have_runs for idx in run]
                lost = sorted(set(want) - set(have_idx))
                extra = sorted(set(have_idx) - set(want))
                detail = f"{len(lost)} missing (e.g. {lost[:5]})" if lost else ""
                detail += (", " if lost and extra else "") + (f"{len(extra)} extra (e.g. {extra[:5]})" if extra else "")
                what = detail or ("runs cut elsewhere than at the checkpoints" if want == have_idx else "order differs")
                rep.fail(f"site index of {site}: {what} compared with the entries")
        if not bad:
            rep.lines.append(
                f"site index recomputed from the entries: {len(self.trees)} site(s), stored index and trees (first "
                f"{self.upto} entries) and {len(self.notes)} sites note(s) match"
            )
