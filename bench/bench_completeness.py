"""Benchmark: what per-site completeness (docs/completeness.md) costs, and what a site's proof weighs.

Three parts, each printing the command that produced it:

``--index-cost`` (default on): the per-site index's own cost, with and without it in the same run, alternating
rounds (peers.py). Records: bench_registry.build_records (1,000 sites).

* SQLite: the append transaction keeps the site trees and runs. "with-index" times ``Registry.append`` as it is;
  "without-index" is the same code with the records' sites not taken (``Registry._sites_of`` returns None, a
  bench-only patch for that side), so no site tree or run is written. Also printed: the rate at which
  ``index_sites()`` rebuilds the whole index from the stored entries (what a registry written before the index
  existed pays once).
* PostgreSQL (``--pg``): 4 nodes append at once and one integrator integrates, timed until everything is signed.
  The integrator writes the site trees in its transaction; "without-index" is the same code with the store's
  ``_write_sites`` / ``_catch_up_sites`` replaced by no-ops for that side only (a bench-only patch).

``--proof``: a 10,000-record site export from a ``--log-size`` (default 10,000,000) record log, verified with
``verify_export``. Building 10 M real records does not fit this machine's time budget, so the log is an RFC 6962
tree whose other leaves are one repeated filler leaf (its perfect subtrees are then computed once per level) and
the site map holds ``--sites`` synthetic sites; the site's 10,000 records, their inclusion proofs, checkpoint,
sites.txt, site-proof.json and the signed manifest are real and are what the verifier checks. Printed: bundle
bytes by part, the map path length, and verification time (median of ``--rounds``).

``--map``: the site map every checkpoint's sites note signs. The writer keeps it between batches and updates the
sites a batch touched (``SiteMap.update``, then its root), against rebuilding it from scratch from every site's
(count, root), which a note per checkpoint would cost without the trie; 1,000 and 200,000 sites, medians of
``--rounds``; the first build and the bytes a site takes in memory.

Run: python bench/bench_completeness.py [--records 200000] [--batch 10000] [--rounds 5] [--pg] [--proof] [--map]
     [--log-size 10000000] [--sites 1000000] [--no-index-cost]
"""

from __future__ import annotations

import argparse
import base64
import bisect
import hashlib
import itertools
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_registry import batches, build_records, index_disabled
from bench.peers import alternate, command_line, fresh_pg_schema, ratio, spread
from optout_registry.registry import Registry

SIDES = ["with-index", "without-index"]
INDEX_RATES: list[float] = []  # records/s of index_sites() alone, one per "with-index" round


def sqlite_round(records: list[dict[str, Any]], batch: int, side: str) -> float:
    with (
        tempfile.TemporaryDirectory(prefix="bench-complete-") as tmp,
        Registry.open(Path(tmp) / "r.db", batch_size=batch, check=False) as reg,
    ):
        reg.vkey  # noqa: B018 - generate the key outside the timed part
        with index_disabled(side):
            t = time.perf_counter()
            for chunk in batches(records, batch):
                reg.append(chunk)
            seconds = time.perf_counter() - t
        assert reg.size == len(records)
        assert reg._store.sites_upto() == (len(records) if side == "with-index" else 0)
        if side == "without-index":  # the rebuild from the stored entries, timed apart
            t = time.perf_counter()
            assert reg.index_sites() == len(records)
            INDEX_RATES.append(len(records) / (time.perf_counter() - t))
    return len(records) / seconds


def pg_round(records: list[dict[str, Any]], batch: int, side: str, nodes: int = 4) -> float:
    """``nodes`` threads append their share at once (one connection each) while one integrator integrates; the
    clock stops when everything is integrated and signed."""
    with fresh_pg_schema() as url, tempfile.TemporaryDirectory() as tmp, index_disabled(side):
        key = Path(tmp) / "k"
        with Registry.open(url, key=key, check=False) as reg:
            reg.checkpoint()
        share = [records[n::nodes] for n in range(nodes)]
        done = threading.Event()

        def node(part: list[dict[str, Any]]) -> None:
            with Registry.open(url, key=key, check=False) as reg:
                for chunk in batches(part, batch):
                    reg.append(chunk)

        def integrator() -> None:
            with Registry.open(url, key=key, check=False) as reg:
                while not done.is_set():
                    reg.integrate()
                    time.sleep(0.05)

        workers = [threading.Thread(target=node, args=(part,)) for part in share]
        integ = threading.Thread(target=integrator)
        t = time.perf_counter()
        integ.start()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        done.set()
        integ.join()
        with Registry.open(url, key=key, check=False) as reg:
            reg.checkpoint()
            seconds = time.perf_counter() - t
            assert reg.size == len(records)
    return len(records) / seconds


def bench_index_cost(n: int, batch: int, rounds: int, pg: bool) -> None:
    records = build_records(n)
    rates = alternate(rounds, SIDES, lambda side: sqlite_round(records, batch, side))
    print(f"\nSQLite Registry.append, {n:,} records ({batch:,} a call), {rounds} rounds: records/s median (min–max)")
    for side, values in rates.items():
        print(f"  {side:<15}{spread(values):>28}")
    print(f"  with / without  {ratio(rates['with-index'], rates['without-index'])}")
    print(f"  index_sites() rebuilding it from the stored entries: {spread(INDEX_RATES)} records/s")
    if not pg:
        return
    from tests.support.registry import pg_available

    reason = pg_available()
    if reason:
        print(f"\nPostgreSQL skipped: {reason}")
        return
    pg_n = min(n, 100_000)
    pg_batch = min(batch, 5_000)
    rates = alternate(rounds, SIDES, lambda side: pg_round(records[:pg_n], pg_batch, side))
    print(
        f"\nPostgreSQL, 4 nodes appending {pg_n:,} records ({pg_batch:,} a call) + 1 integrator, until signed, "
        f"{rounds} rounds: records/s median (min–max)"
    )
    for side, values in rates.items():
        print(f"  {side:<15}{spread(values):>28}")
    print(f"  with / without  {ratio(rates['with-index'], rates['without-index'])}")


# -- proof size and verification time -----------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build_site_export(out: Path, log_size: int, site_records: int, sites: int) -> dict[str, int]:
    """Write a real export of ``site_records`` records of example.net spread over a ``log_size`` log (see the
    module docstring for what is synthetic); return the bytes of each part."""
    import rfc8785

    from optout_registry import merkle, sitemap
    from optout_registry.note import Checkpoint, Signer
    from optout_registry.proof import format_proof
    from optout_registry.record import canonical
    from tests.support.registry import ROBOTS, make_records

    step = log_size // site_records
    positions = [i * step + step // 2 for i in range(site_records)]
    leaves = {idx: canonical(rec) for idx, rec in zip(positions, make_records(site_records), strict=True)}
    lh = {idx: merkle.leaf_hash(leaf) for idx, leaf in leaves.items()}
    filler = [merkle.leaf_hash(b"filler")]
    for _ in range(64):
        filler.append(merkle.node_hash(filler[-1], filler[-1]))
    ordered = sorted(positions)
    memo: dict[tuple[int, int], bytes] = {}

    def hash_at(level: int, n: int) -> bytes:
        """Perfect subtree hash: a filler-only subtree is filler[level]; others are hashed from their children."""
        lo, hi = n << level, (n + 1) << level
        k = bisect.bisect_left(ordered, lo)
        if k == len(ordered) or ordered[k] >= hi:
            return filler[level]
        if level == 0:
            return lh[lo]
        got = memo.get((level, n))
        if got is None:
            got = memo[(level, n)] = merkle.node_hash(hash_at(level - 1, 2 * n), hash_at(level - 1, 2 * n + 1))
        return got

    root = merkle._range_hash(0, log_size, hash_at)
    signer = Signer.generate("bench.example/log")
    note = signer.sign(Checkpoint("bench.example/log", log_size, root))
    trees = {f"site{i}.org": (1 + i % 50, hashlib.sha256(i.to_bytes(8, "big")).digest()) for i in range(sites - 1)}
    entries = [(i, lh[i]) for i in ordered]
    runs = [len(list(group)) for _, group in itertools.groupby(ordered, lambda i: i // 10_000)]  # a checkpoint per 10k
    trees["example.net"] = sitemap.tree_root(entries, runs)
    site_map = sitemap.SiteMap(trees)
    count, site_root = trees["example.net"]
    files: dict[str, bytes] = {
        "checkpoint.txt": note.encode(),
        "sites.txt": signer.sign_note(
            sitemap.sites_note_body("bench.example/log", log_size, root, site_map.root, site_map.count)
        ).encode(),
        "site-proof.json": rfc8785.dumps(
            sitemap.proof_json("example.net", count, site_root, site_map.prove("example.net"), entries, runs)
        ),
        f"evidence/{hashlib.sha256(ROBOTS).hexdigest()}": ROBOTS,
    }
    for idx in ordered:
        files[f"records/{idx}.json"] = leaves[idx]
        proof = merkle.inclusion_proof(idx, log_size, hash_at)
        files[f"proofs/{idx}.tlog-proof"] = format_proof(idx, proof, note).encode()
    manifest = {
        "format": "optout-registry-export/v2",
        "query": {"site": "example.net"},
        "generated_at": "2026-12-05T00:00:00Z",
        "checkpoint": {"origin": "bench.example/log", "size": log_size, "root": _b64(root)},
        "records": ordered,
        "missing_evidence": [],
        "files": {p: hashlib.sha256(d).hexdigest() for p, d in sorted(files.items())},
    }
    files["manifest.json"] = rfc8785.dumps(manifest)
    files["manifest.note"] = signer.sign_note(
        sitemap.manifest_note_body("bench.example/log", log_size, files["manifest.json"])
    ).encode()
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    (out / "vkey").write_text(signer.vkey())
    sizes: dict[str, int] = {}
    for rel, data in files.items():
        part = rel.split("/")[0] if "/" in rel else rel
        sizes[part] = sizes.get(part, 0) + len(data)
    sizes["map path hashes"] = len(site_map.prove("example.net").path)
    sizes["inclusion hashes (mean x100)"] = round(
        100 * statistics.mean(len(merkle.inclusion_proof(i, log_size, hash_at)) for i in ordered[:200])
    )
    return sizes


def bench_proof(log_size: int, site_records: int, sites: int, rounds: int) -> None:
    from optout_registry.verify import verify_export

    with tempfile.TemporaryDirectory(prefix="bench-proof-") as tmp:
        out = Path(tmp) / "export"
        t = time.perf_counter()
        sizes = build_site_export(out, log_size, site_records, sites)
        built = time.perf_counter() - t
        vkey = (out / "vkey").read_text()
        (out / "vkey").unlink()
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            report = verify_export(out, vkey)
            times.append(time.perf_counter() - t)
            assert report.ok and report.records == site_records, report.problems[:3]
    total = sum(v for k, v in sizes.items() if "hashes" not in k)
    print(
        f"\n{site_records:,}-record site export from a {log_size:,}-record log, site map of {sites:,} sites "
        f"(built in {built:.1f} s; filler leaves, see the docstring)"
    )
    print(f"  bundle total              {total:>12,} bytes")
    for part in ("records", "proofs", "site-proof.json", "sites.txt", "manifest.json", "manifest.note"):
        print(f"  {part:<26}{sizes.get(part, 0):>12,} bytes")
    print(f"  site map path             {sizes['map path hashes']:>12} hashes")
    print(f"  inclusion proof (mean)    {sizes['inclusion hashes (mean x100)'] / 100:>12.2f} hashes")
    print(f"  verify_export, {rounds} rounds   {spread(times, '.2f')} s")


# -- the site map each checkpoint signs -------------------------------------------------------------------------


def bench_map(rounds: int) -> None:
    """What a checkpoint's sites note costs the writer: the trie kept between batches (``SiteMap.update`` of the
    sites a batch touched, then its root) beside rebuilding the map from every site's (count, root), which is
    what signing a note per checkpoint would cost without it; also the first build and the memory a site takes."""
    import tracemalloc

    from optout_registry import sitemap

    def state(n: int, version: int) -> dict[str, tuple[int, bytes]]:
        return {f"site{i}.org": (10 + version, hashlib.sha256(f"{i}/{version}".encode()).digest()) for i in range(n)}

    print(f"\nThe site map per checkpoint, {rounds} rounds: milliseconds median (min–max)")
    for sites, touched in ((1_000, 1_000), (200_000, 1_000), (200_000, 10_000)):
        base = state(sites, 0)
        builds, updates, rebuilds = [], [], []
        for r in range(rounds):
            t = time.perf_counter()
            site_map = sitemap.SiteMap(base)
            builds.append(time.perf_counter() - t)
            after = dict(base)
            changed = dict(list(state(sites, r + 1).items())[:touched])
            after.update(changed)
            t = time.perf_counter()
            site_map.update(changed)
            got = site_map.root
            updates.append(time.perf_counter() - t)
            t = time.perf_counter()
            want = sitemap.SiteMap(after).root
            rebuilds.append(time.perf_counter() - t)
            assert got == want
        ms = [1000 * x for x in updates]
        print(f"  {sites:,} sites, {touched:,} touched by the batch:")
        print(f"    update + root (the writer)   {spread(ms, '.2f')}")
        print(f"    rebuilt from scratch         {spread([1000 * x for x in rebuilds], '.2f')}")
        print(f"    rebuilt / updated            {ratio(rebuilds, updates)}")
        print(f"    first build (once a process) {spread([1000 * x for x in builds], '.1f')}")
    tracemalloc.start()
    kept = sitemap.SiteMap(state(200_000, 0))
    print(f"  memory: {tracemalloc.get_traced_memory()[0] / kept.count:.0f} bytes a site (200,000 sites, tracemalloc)")
    tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pg", action="store_true", help="also PostgreSQL: 4 appending nodes + 1 integrator")
    parser.add_argument("--no-index-cost", action="store_true")
    parser.add_argument("--proof", action="store_true", help="proof size and verification time of a site export")
    parser.add_argument("--log-size", type=int, default=10_000_000)
    parser.add_argument("--site-records", type=int, default=10_000)
    parser.add_argument("--sites", type=int, default=1_000_000)
    parser.add_argument("--map", action="store_true", help="the site map a checkpoint signs: update vs rebuild")
    args = parser.parse_args()
    print(command_line())
    if not args.no_index_cost:
        bench_index_cost(args.records, args.batch, args.rounds, args.pg)
    if args.map:
        bench_map(args.rounds)
    if args.proof:
        bench_proof(args.log_size, args.site_records, args.sites, args.rounds)


if __name__ == "__main__":
    main()
