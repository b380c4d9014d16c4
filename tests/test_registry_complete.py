"""Per-site completeness, the signed bundle and ``check --full`` (issue 18 parts 1-3, docs/completeness.md).

Every tamper the issue lists is played here, on an export and on the database (SQLite and PostgreSQL: the
PostgreSQL cases skip only when the server is absent, and OPTOUT_REQUIRE_SERVICES=1 turns that skip into a
failure), and each must be refused with a message saying what failed. The log: 17 records of example.net spread
between other.org records, with evidence stored, then 3 more example.net records after a second checkpoint.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.cli import main
from optout_registry import sitemap
from optout_registry.export import export_bundle
from optout_registry.keys import vkey_verifier
from optout_registry.merkle import EMPTY_ROOT, VerificationError
from optout_registry.note import Signer, open_note
from optout_registry.registry import IntegrityError, Registry
from optout_registry.store_common import advance_sites, pack_run, run_indices, site_roots
from optout_registry.verify import verify_export
from tests.support.registry import ROBOTS, Raw, make_records, pg_schema_url

SITE = "example.net"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "r.db")
    else:
        yield from pg_schema_url()


def _log() -> list[dict[str, object]]:
    """17 example.net records (indices 0-4, 10-19, 28-29 in the log), the rest other.org."""
    return (
        make_records(5)
        + make_records(5, 100, site="other.org")
        + make_records(10, 5)
        + make_records(8, 110, site="other.org")
        + make_records(2, 15)
    )


@pytest.fixture
def reg_url(url: str, tmp_path: Path) -> tuple[str, Path, str]:
    key = tmp_path / "log.key"
    with Registry.open(url, key=key, origin="crawler.example/log", batch_size=7) as reg:
        reg.append(_log(), evidence=[ROBOTS])
        reg.checkpoint()
        assert reg.index_sites() == 30  # appends keep it up to date (SQLite's transaction, PostgreSQL's integrator)
        vkey = reg.vkey
    return url, key, vkey


def _export(url: str, key: Path, out: Path, site: str = SITE, **kw: str) -> Path:
    with Registry.open(url, key=key) as reg:
        export_bundle(reg, site, out, **kw)
    return out


def _problems(out: Path, vkey: str, **kw: object) -> list[str]:
    report = verify_export(out, vkey, **kw)  # type: ignore[arg-type]
    assert report.ok == (not report.problems)
    return report.problems


def _assert_fails(out: Path, vkey: str, *patterns: str, **kw: object) -> list[str]:
    problems = _problems(out, vkey, **kw)
    assert problems, "expected the export to be refused"
    for pattern in patterns:
        assert any(pattern in p for p in problems), (pattern, problems)
    return problems


def _resign(out: Path, key: Path, **changes: object) -> None:
    """Recompute manifest.json over the files present and sign it with the log key: the operator's forgery,
    which the signature cannot catch, so the completeness proof must."""
    manifest = json.loads((out / "manifest.json").read_bytes())
    files = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if p.is_file() and rel not in ("manifest.json", "manifest.note"):
            files[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    manifest["files"] = files
    manifest["records"] = sorted(int(p.stem) for p in (out / "records").glob("*.json"))
    manifest.update(changes)
    data = rfc8785.dumps(manifest)
    (out / "manifest.json").write_bytes(data)
    signer = Signer.from_private_key_text(key.read_text())
    cp = (out / "checkpoint.txt").read_text().split("\n")
    (out / "manifest.note").write_text(signer.sign_note(sitemap.manifest_note_body(cp[0], int(cp[1]), data)))


def _full(url: str, key: Path) -> list[str]:
    with Registry.open(url, key=key, check=False) as reg:
        report = reg.self_check(full=True)
    assert not report.ok
    return report.problems


def _note_sizes(reg: Registry) -> list[int]:
    return [size for size, _, _, _ in reg._store.site_notes()]


def _checkpoint_sizes(reg: Registry) -> list[int]:
    return [size for size, _, _ in reg._store.checkpoints()]


def _mth(hashes: list[bytes]) -> bytes:
    """RFC 6962's Merkle tree hash over leaf hashes, read literally."""
    if len(hashes) <= 1:
        return hashes[0] if hashes else hashlib.sha256(b"").digest()
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _mth(hashes[:k]) + _mth(hashes[k:])).digest()


def _site_runs_by_definition(
    entries: list[tuple[str | None, bytes]], checkpoints: list[int], size: int
) -> dict[str, list[list[tuple[int, bytes]]]]:
    """docs/completeness.md read literally: each site's (index, leaf hash) entries below ``size`` (a checkpoint),
    cut into one run per checkpoint that added some."""
    runs: dict[str, list[list[tuple[int, bytes]]]] = {}
    bounds = [0, *sorted(c for c in set(checkpoints) if 0 < c <= size)]
    for lo, hi in itertools.pairwise(bounds):
        segment: dict[str, list[tuple[int, bytes]]] = {}
        for i in range(lo, hi):
            site, lh = entries[i]
            if site is not None:
                segment.setdefault(site, []).append((i, lh))
        for site, run in segment.items():
            runs.setdefault(site, []).append(run)
    return runs


def _trees_by_definition(
    entries: list[tuple[str | None, bytes]], checkpoints: list[int], size: int
) -> dict[str, tuple[int, bytes]]:
    """{site: (count, root)}: a run's leaf is SHA-256(0x03 || uint64be(index) || leaf hash || …), the site tree
    RFC 6962's over a site's runs. The oracle for the stores, the catch-up and check --full."""

    def run_leaf(run: list[tuple[int, bytes]]) -> bytes:
        return hashlib.sha256(b"\x03" + b"".join(i.to_bytes(8, "big") + lh for i, lh in run)).digest()

    return {
        site: (sum(len(run) for run in runs), _mth([run_leaf(run) for run in runs]))
        for site, runs in _site_runs_by_definition(entries, checkpoints, size).items()
    }


def _entries_of(leaves: list[bytes]) -> list[tuple[str | None, bytes]]:
    return [(json.loads(leaf)["target"]["site"], hashlib.sha256(b"\0" + leaf).digest()) for leaf in leaves]


# -- a valid export, and the completeness it shows -------------------------------------------------------------


def test_export_is_complete_and_verifies(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    url, key, vkey = reg_url
    out = _export(url, key, tmp_path / "out")
    report = verify_export(out, vkey)
    assert report.ok, report.problems
    assert report.records == 17
    text = report.text()
    assert "example.net has 17 record(s)" in text and "complete: the bundle holds all 17 record(s)" in text
    assert "manifest.note: manifest.json is signed by the pinned key" in text
    proof = json.loads((out / "site-proof.json").read_bytes())
    assert [i for i, _ in proof["entries"]] == [*range(5), *range(10, 20), 28, 29]
    with Registry.open(url, key=key) as reg:
        full = reg.self_check(full=True)
    assert full.ok, full.problems
    assert any("site index recomputed from the entries: 2 site(s)" in line for line in full.lines)


def test_every_checkpoint_signs_its_sites_note(reg_url: tuple[str, Path, str]) -> None:
    """Each checkpoint commits to the site map when it is signed, not when an export first asks: its sites note
    is stored in the same transaction, verifies under the log key, names that checkpoint's size and root, and
    commits to the map of the site trees at that size (rebuilt here from the entries, from scratch)."""
    url, key, vkey = reg_url
    verifier = vkey_verifier(vkey)
    with Registry.open(url, key=key) as reg:
        roots = {size: root for size, root, _ in reg._store.checkpoints()}
        notes = reg._store.site_notes()
        assert [size for size, _, _, _ in notes] == sorted(roots)
        assert sorted(roots)[-3:] == [21, 28, 30] if reg.backend == "sqlite" else sorted(roots)[-1] == 30
        leaves = [reg.leaf(i) for i in range(30)]
    for size, map_root, nsites, note in notes:
        want = sitemap.SiteMap(_trees_by_definition(_entries_of(leaves), sorted(roots), size))
        assert (map_root, nsites) == (want.root, want.count), size
        assert sitemap.parse_sites_note(open_note(note, verifier)) == (
            "crawler.example/log",
            size,
            roots[size],
            want.root,
            want.count,
        )


def test_absent_site_has_a_proof_of_absence(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    url, key, vkey = reg_url
    out = _export(url, key, tmp_path / "out", site="nobody.org")
    report = verify_export(out, vkey)
    assert report.ok and report.records == 0, report.problems
    doc = json.loads((out / "site-proof.json").read_bytes())
    assert doc["count"] == 0 and doc["absent_neighbour"]["site"] in {SITE, "other.org"}
    # The neighbour's real count is signed: claiming it has none (or another site as the neighbour) fails.
    doc["absent_neighbour"]["count"] += 1
    (out / "site-proof.json").write_bytes(rfc8785.dumps(doc))
    _resign(out, key)
    _assert_fails(out, vkey, "does not lead to the signed site map")


def test_date_range_export_lists_what_it_leaves_out(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    url, key, vkey = reg_url
    out = _export(url, key, tmp_path / "out", since="2026-11-05", until="2026-11-10")
    report = verify_export(out, vkey)
    assert report.ok, report.problems
    assert 0 < report.records < 17
    assert any(
        f"{17 - report.records} record(s) of example.net fall outside the queried time range" in line
        for line in report.lines
    )


# -- tampering with an export ----------------------------------------------------------------------------------


def test_deleted_record_is_missing(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    url, key, vkey = reg_url
    out = _export(url, key, tmp_path / "out")
    (out / "records/12.json").unlink()
    (out / "proofs/12.tlog-proof").unlink()
    # A third party cannot re-sign the manifest…
    _assert_fails(out, vkey, "records/12.json: listed in manifest.json but missing")
    # …and the operator who can is caught by the site tree.
    _resign(out, key)
    problems = _assert_fails(out, vkey, "17 records of example.net up to the checkpoint, the bundle has 16")
    assert any("missing records/12.json" in p for p in problems)


def test_dropped_tail_record(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    url, key, vkey = reg_url
    out = _export(url, key, tmp_path / "out")
    (out / "records/29.json").unlink()
    (out / "proofs/29.tlog-proof").unlink()
    _resign(out, key)
    _assert_fails(out, vkey, "the bundle has 16: missing records/29.json")
    # Forging the site proof to a 16-record tree does not help: it no longer leads to the signed site map.
    doc = json.loads((out / "site-proof.json").read_bytes())
    doc["entries"] = doc["entries"][:-1]
    doc["runs"] = [*doc["runs"][:-1], doc["runs"][-1] - 1] if doc["runs"][-1] > 1 else doc["runs"][:-1]
    count, root = sitemap.tree_root([(i, base64.b64decode(h)) for i, h in doc["entries"]], doc["runs"])
    doc["count"], doc["root"] = count, __import__("base64").b64encode(root).decode()
    (out / "site-proof.json").write_bytes(rfc8785.dumps(doc))
    _resign(out, key)
    _assert_fails(out, vkey, "site proof: (16, root) of example.net does not lead to the signed site map")


def test_modified_record(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    url, key, vkey = reg_url
    out = _export(url, key, tmp_path / "out")
    leaf = json.loads((out / "records/3.json").read_bytes())
    leaf["decision"] = "purged"
    (out / "records/3.json").write_bytes(rfc8785.dumps(leaf))
    _assert_fails(out, vkey, "records/3.json: SHA-256", "records/3.json: differs from entry 3 of the signed site tree")
    _resign(out, key)
    _assert_fails(out, vkey, "proofs/3.tlog-proof: inclusion", "records/3.json: differs from entry 3")


def test_reordered_records(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    url, key, vkey = reg_url
    out = _export(url, key, tmp_path / "out")
    a, b = (out / "records/10.json").read_bytes(), (out / "records/11.json").read_bytes()
    (out / "records/10.json").write_bytes(b)
    (out / "records/11.json").write_bytes(a)
    _resign(out, key)
    _assert_fails(
        out, vkey, "records/10.json: differs from entry 10", "records/11.json: differs from entry 11", "inclusion"
    )


def test_foreign_record_added(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    url, key, vkey = reg_url
    out = _export(url, key, tmp_path / "out")
    other = _export(url, key, tmp_path / "other", site="other.org")
    shutil.copy(other / "records/7.json", out / "records/7.json")  # a genuine record with a valid proof
    shutil.copy(other / "proofs/7.tlog-proof", out / "proofs/7.tlog-proof")
    _assert_fails(out, vkey, "records/7.json: present but not listed in manifest.json")
    _resign(out, key)
    _assert_fails(
        out,
        vkey,
        "records/7.json: a record of other.org, not of the queried site example.net",
        "records/7.json: a record of other.org (the signed site tree of example.net does not list it)",
    )


def test_edited_manifest(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    url, key, vkey = reg_url
    out = _export(url, key, tmp_path / "out")
    manifest = json.loads((out / "manifest.json").read_bytes())
    manifest["query"]["until"] = "2026-11-03"  # would excuse the records it leaves out
    (out / "manifest.json").write_bytes(rfc8785.dumps(manifest))
    _assert_fails(out, vkey, "manifest.json: edited after it was signed")
    (out / "manifest.note").unlink()
    _assert_fails(out, vkey, "manifest.note is missing: the manifest (query, file list, digests) is not signed")


def test_sites_note_of_another_checkpoint_or_key(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    url, key, vkey = reg_url
    old = _export(url, key, tmp_path / "old")
    with Registry.open(url, key=key) as reg:
        reg.append(make_records(1, 40))
    out = _export(url, key, tmp_path / "out")
    shutil.copy(old / "sites.txt", out / "sites.txt")
    _resign(out, key)
    _assert_fails(out, vkey, "sites.txt: signed for another checkpoint than checkpoint.txt")
    forged = Signer.generate("crawler.example/log").sign_note((old / "sites.txt").read_text().split("\n\n")[0] + "\n")
    (out / "sites.txt").write_text(forged)
    _resign(out, key)
    _assert_fails(out, vkey, "no signature from the pinned key")


def test_evidence_deleted_and_listed_as_missing(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    url, key, vkey = reg_url
    out = _export(url, key, tmp_path / "out")
    sha = hashlib.sha256(ROBOTS).hexdigest()
    (out / f"evidence/{sha}").unlink()
    _assert_fails(out, vkey, f"evidence/{sha}: listed in manifest.json but missing")
    _resign(out, key, missing_evidence=[{"sha256": sha, "reason": "lost"}])
    _assert_fails(out, vkey, f"evidence {sha} is missing (lost); pass --allow-missing-evidence to accept it")
    report = verify_export(out, vkey, allow_missing_evidence=True)
    assert report.ok, report.problems
    assert any(f"evidence {sha} is missing (lost); accepted" in line for line in report.lines)


def test_evidence_the_operator_never_stored(url: str, tmp_path: Path) -> None:
    key = tmp_path / "log.key"
    with Registry.open(url, key=key) as reg:
        reg.append(make_records(3))  # no evidence bodies
        vkey = reg.vkey
        result = export_bundle(reg, SITE, tmp_path / "out")
        assert result.missing_evidence == [hashlib.sha256(ROBOTS).hexdigest()]
        full = reg.self_check(full=True)
    assert full.ok and any("referenced by records were never stored" in line for line in full.lines)
    _assert_fails(result.out, vkey, "the operator did not store this evidence body); pass --allow-missing-evidence")
    assert verify_export(result.out, vkey, allow_missing_evidence=True).ok


# -- two checkpoints of the same site ---------------------------------------------------------------------------


def test_completeness_across_two_checkpoints(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    url, key, vkey = reg_url
    first = _export(url, key, tmp_path / "first")
    with Registry.open(url, key=key) as reg:
        reg.append(make_records(3, 17) + make_records(2, 120, site="other.org"))
        reg.checkpoint()
    second = _export(url, key, tmp_path / "second", previous=(first / "checkpoint.txt").read_text())
    report = verify_export(
        second, vkey, previous_export=first, previous_checkpoint=(first / "checkpoint.txt").read_text()
    )
    assert report.ok, report.problems
    assert report.records == 20
    assert any(
        "previous export: 17 -> 20 records of example.net, earlier ones unchanged" in line for line in report.lines
    )
    # The earlier site tree is a prefix of the later one (the count never decreases, earlier records never change).
    old = json.loads((first / "site-proof.json").read_bytes())["entries"]
    new = json.loads((second / "site-proof.json").read_bytes())["entries"]
    assert new[: len(old)] == old
    # Swapped around, the count decreased: refused.
    _assert_fails(first, vkey, "the count decreased", previous_export=second)


def test_previous_export_whose_records_changed_is_refused(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    """A holder's earlier export whose site tree differs from the start of the new one: the log rewrote history
    (played here by handing the verifier another site's earlier export as if it were example.net's)."""
    url, key, vkey = reg_url
    first = _export(url, key, tmp_path / "first", site="other.org")
    manifest = json.loads((first / "manifest.json").read_bytes())
    assert manifest["query"]["site"] == "other.org"
    with Registry.open(url, key=key) as reg:
        reg.append(make_records(1, 17))
    second = _export(url, key, tmp_path / "second")
    _assert_fails(second, vkey, "previous export", previous_export=first)


# -- tampering with the database --------------------------------------------------------------------------------


def test_site_index_rows_deleted(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    url, key, _ = reg_url
    raw = Raw(url)
    raw.set_site_indices(SITE, [idx for idx in raw.site_indices(SITE) if idx >= 5])
    raw.close()
    with pytest.raises(IntegrityError, match="site index lists 25 entries and the site trees count 30"):
        Registry.open(url, key=key)
    problems = _full(url, key)
    assert any("site index of example.net: 5 missing (e.g. [0, 1, 2, 3, 4])" in p for p in problems), problems
    with Registry.open(url, key=key, check=False) as reg, pytest.raises(IntegrityError, match="lists 12 entries"):
        export_bundle(reg, SITE, tmp_path / "out")  # never a silent 12-of-17 export
    assert not (tmp_path / "out").exists()


def test_site_index_row_of_another_site_added(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    url, key, _ = reg_url
    raw = Raw(url)
    # entry 7 is other.org's
    raw.tamper("INSERT INTO site_run(site, first, idxs) VALUES ('example.net', 7, ?)", (pack_run([7]),))
    raw.close()
    with pytest.raises(IntegrityError, match="site index lists 31 entries"):
        Registry.open(url, key=key)
    assert any("site index of example.net: 1 extra (e.g. [7])" in p for p in _full(url, key))


def test_site_index_rewritten_consistently_with_its_tree(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    """The attacker drops example.net's last record from its runs and rewrites its site tree to match: the
    counts agree, but the totals no longer cover the log, and the entries give another tree."""
    url, key, _ = reg_url
    raw = Raw(url)
    kept = [idx for idx in raw.site_indices(SITE) if idx != 29]
    raw.set_site_indices(SITE, kept)
    rows = [(idx, raw.q("SELECT leaf FROM entry WHERE idx = ?", (idx,))[0][0]) for idx in kept]
    hashes = [(int(i), hashlib.sha256(b"\x00" + bytes(leaf)).digest()) for i, leaf in rows]
    raw.tamper(  # set_site_indices wrote them as one run: the tree of that one run
        "UPDATE site_tree SET count = ?, runs = 1, frontier = ? WHERE site = 'example.net'",
        (len(hashes), sitemap.run_hash(hashes)),
    )
    raw.close()
    with pytest.raises(IntegrityError, match="site index lists 29 entries and the site trees count 29"):
        Registry.open(url, key=key)
    problems = _full(url, key)
    assert any("site tree of example.net: stored count 16, the entries give 17" in p for p in problems), problems


def test_site_index_rewritten_after_a_sites_note_was_signed(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    """Even a rewrite that keeps every count right (one record moved to other.org's tree) contradicts the sites
    note signed for an earlier export, and the recomputation from the entries."""
    url, key, _ = reg_url
    _export(url, key, tmp_path / "first")  # the sites note was signed with the checkpoint; the export carries it
    raw = Raw(url)
    raw.set_site_indices(SITE, [idx for idx in raw.site_indices(SITE) if idx != 29])
    raw.tamper("INSERT INTO site_run(site, first, idxs) VALUES ('other.org', 29, ?)", (pack_run([29]),))
    raw.close()
    problems = _full(url, key)
    assert any("site index of example.net: 1 missing (e.g. [29])" in p for p in problems), problems
    assert any("site index of other.org: 1 extra (e.g. [29])" in p for p in problems), problems


def test_site_tree_or_sites_note_rewritten(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    url, key, _ = reg_url
    _export(url, key, tmp_path / "first")
    raw = Raw(url)
    runs = raw.q("SELECT runs FROM site_tree WHERE site = 'other.org'")[0][0]
    raw.tamper("UPDATE site_tree SET frontier = ? WHERE site = 'other.org'", (b"\x07" * 32 * int(runs).bit_count(),))
    raw.close()
    with Registry.open(url, key=key, check=False) as reg, pytest.raises(IntegrityError, match="another site map"):
        export_bundle(reg, SITE, tmp_path / "out")
    problems = _full(url, key)
    assert any("site tree of other.org" in p for p in problems), problems
    raw = Raw(url)
    raw.tamper("UPDATE site_note SET map_root = ?", (EMPTY_ROOT,))
    raw.close()
    problems = _full(url, key)
    assert any("the site map recomputed from the entries differs" in p for p in problems), problems


def test_runs_cut_elsewhere(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    """The same records of a site, cut into other runs than the checkpoints cut them, give another site tree: in
    an export's site-proof.json (even re-signed by the operator) and in the stored site_run rows."""
    url, key, vkey = reg_url
    out = _export(url, key, tmp_path / "out")
    doc = json.loads((out / "site-proof.json").read_bytes())
    assert sum(doc["runs"]) == 17
    doc["runs"] = [17] if len(doc["runs"]) > 1 else [10, 7]  # PostgreSQL integrated the log at once: one run
    (out / "site-proof.json").write_bytes(rfc8785.dumps(doc))
    _resign(out, key)
    _assert_fails(out, vkey, "the listed entries of example.net do not hash to its signed site-tree root")
    raw = Raw(url)
    indices = raw.site_indices(SITE)
    raw.set_site_indices(SITE, indices)  # every index kept, as one run
    if raw.kind == "postgresql":  # where that was the one run: two
        raw.set_site_indices(SITE, indices[:10])
        raw.tamper(
            "INSERT INTO site_run(site, first, idxs) VALUES (?, ?, ?)", (SITE, indices[10], pack_run(indices[10:]))
        )
    raw.close()
    assert any("site index of example.net: runs cut elsewhere than at the checkpoints" in p for p in _full(url, key))
    with Registry.open(url, key=key, check=False) as reg, pytest.raises(IntegrityError, match="do not hash to its"):
        export_bundle(reg, SITE, tmp_path / "again")


def test_malformed_run_lengths_are_one_line_problems(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    url, key, vkey = reg_url
    out = _export(url, key, tmp_path / "out")
    doc = json.loads((out / "site-proof.json").read_bytes())
    for runs, message in (
        ([0, 17], "run lengths must be positive and add up to the 17 entries"),
        ([16], "run lengths must be positive and add up to the 17 entries"),
        (["17"], "run lengths must be positive"),
        (17, "'runs' must be a list of run lengths"),
    ):
        doc["runs"] = runs
        (out / "site-proof.json").write_bytes(rfc8785.dumps(doc))
        _resign(out, key)
        problems = _assert_fails(out, vkey, message)
        assert all("\n" not in p for p in problems)


def test_evidence_rows_deleted(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    url, key, vkey = reg_url
    raw = Raw(url)
    raw.tamper("DELETE FROM evidence")
    raw.close()
    problems = _full(url, key)
    assert any("0 evidence row(s) stored but 1 were written (evidence rows deleted" in p for p in problems)
    out = _export(url, key, tmp_path / "out")  # the export lists it as missing, and the holder sees it
    _assert_fails(out, vkey, "is missing (the operator did not store this evidence body)")


def test_evidence_row_modified(reg_url: tuple[str, Path, str]) -> None:
    url, key, _ = reg_url
    raw = Raw(url)
    raw.tamper("UPDATE evidence SET body = ?", (b"User-agent: *\nAllow: /\n",))
    raw.close()
    assert any("does not hash to its key" in p for p in _full(url, key))


def test_dropped_tail_entry(reg_url: tuple[str, Path, str]) -> None:
    url, key, _ = reg_url
    raw = Raw(url)
    raw.tamper("DELETE FROM entry WHERE idx = 29")
    raw.close()
    with pytest.raises(IntegrityError, match="29 entries stored but the log says 30"):
        Registry.open(url, key=key)
    assert any("29 entries stored" in p for p in _full(url, key))


def test_check_full_cli_names_the_site(reg_url: tuple[str, Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    url, key, _ = reg_url
    raw = Raw(url)
    raw.set_site_indices(SITE, [idx for idx in raw.site_indices(SITE) if idx >= 5])
    raw.close()
    code = main(["registry", "check", "--full", "--registry", url, "--key", str(key)])
    _, err = capsys.readouterr()
    assert code == 1
    assert "optout registry check: not valid: site index of example.net: 5 missing" in err


def test_verify_cli_allow_missing_evidence(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "log.key"
    with Registry.open(url, key=key) as reg:
        reg.append(make_records(2))
        vkey = reg.vkey
        out = export_bundle(reg, SITE, tmp_path / "out").out
    assert main(["registry", "verify", str(out), "--vkey", vkey]) == 1
    _, err = capsys.readouterr()
    assert "pass --allow-missing-evidence" in err
    assert main(["registry", "verify", str(out), "--vkey", vkey, "--allow-missing-evidence"]) == 0
    text, _ = capsys.readouterr()
    assert "the operator did not store this evidence body); accepted (--allow-missing-evidence)" in text


# -- the site map on its own ----------------------------------------------------------------------------------


def test_site_map_proofs_bind_count_root_and_site() -> None:
    trees = {f"s{i}.example": (i + 1, hashlib.sha256(bytes([i])).digest()) for i in range(50)}
    site_map = sitemap.SiteMap(trees)
    for site, (count, root) in trees.items():
        proof = site_map.prove(site)
        sitemap.verify_site(site, count, root, proof, site_map.root)
        for bad in ((count + 1, root), (count, EMPTY_ROOT)):
            with pytest.raises(VerificationError):
                sitemap.verify_site(site, *bad, proof, site_map.root)
        with pytest.raises(VerificationError):  # present: no proof of absence for it from any neighbour
            other = "s0.example" if site != "s0.example" else "s1.example"
            sitemap.verify_site(
                site, 0, EMPTY_ROOT, sitemap.MapProof(site_map.prove(other).path, (other, *trees[other])), site_map.root
            )
    absent = site_map.prove("absent.example")
    assert absent.neighbour is not None
    sitemap.verify_site("absent.example", 0, EMPTY_ROOT, absent, site_map.root)
    empty = sitemap.SiteMap({})
    assert empty.root == sitemap.EMPTY_MAP
    sitemap.verify_site("any.example", 0, EMPTY_ROOT, empty.prove("any.example"), empty.root)


# -- PostgreSQL: several nodes appending at once --------------------------------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from pg_schema_url()


def _map_root_by_definition(sites: dict[str, tuple[int, bytes]]) -> bytes:
    """docs/completeness.md's definition, read literally: one site is its leaf; several branch at the first bit
    where their keys differ; none is SHA-256(""). The oracle for the incremental map."""

    def key(site: str) -> str:
        return format(int.from_bytes(hashlib.sha256(site.encode()).digest(), "big"), "0256b")

    def h(group: list[str]) -> bytes:
        if len(group) == 1:
            count, root = sites[group[0]]
            return sitemap.site_leaf(group[0], count, root)
        keys = [key(s) for s in group]
        d = next(i for i in range(256) if len({k[i] for k in keys}) > 1)
        left = [s for s, k in zip(group, keys, strict=True) if k[d] == "0"]
        right = [s for s, k in zip(group, keys, strict=True) if k[d] == "1"]
        return hashlib.sha256(b"\x05" + bytes([d]) + h(left) + h(right)).digest()

    return h(sorted(sites)) if sites else hashlib.sha256(b"").digest()


_site_names = st.sampled_from([f"s{i}.example" for i in range(40)])
_batches = st.lists(
    st.dictionaries(
        _site_names, st.tuples(st.integers(1, 2**64 - 1), st.binary(min_size=32, max_size=32)), max_size=12
    ),
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(_batches, st.lists(st.booleans(), max_size=8))
def test_site_map_updated_batch_by_batch_equals_the_definition(
    batches: list[dict[str, tuple[int, bytes]]], read_root: list[bool]
) -> None:
    """A writer's map advanced one batch at a time (new sites, changed ones, the root read or not in between)
    equals the map built from scratch and the literal definition, and its proofs verify against it."""
    incremental, current = sitemap.SiteMap(), {}
    for n, batch in enumerate(batches):
        incremental.update(batch)
        current.update(batch)
        if n < len(read_root) and read_root[n]:
            assert incremental.root == sitemap.SiteMap(current).root
    assert incremental.root == sitemap.SiteMap(current).root == _map_root_by_definition(current)
    assert incremental.count == len(current)
    for site in [*current, "absent.example"]:
        count, root = current.get(site, (0, EMPTY_ROOT))
        sitemap.verify_site(site, count, root, incremental.prove(site), incremental.root)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(["a.example", "b.example", "c.example", None]), min_size=1, max_size=60),
    st.sets(st.integers(1, 59)),
    st.sets(st.integers(1, 59)),
)
def test_site_trees_advanced_in_batches_equal_the_definition(
    sites: list[str | None], checkpoint_at: set[int], batch_end_at: set[int]
) -> None:
    """advance_sites, called batch by batch (a batch ends at a checkpoint and may span several, as a catch-up
    does), gives the trees and the runs of the literal definition: a leaf per site and checkpoint."""
    n = len(sites)
    entries = [(site, hashlib.sha256(str(i).encode()).digest()) for i, site in enumerate(sites)]
    checkpoints = sorted({c for c in checkpoint_at if c < n} | {n})
    ends = sorted({c for c in batch_end_at if c in checkpoints} | {n})
    state: dict[str, tuple[int, int, list[bytes]]] = {}
    stored_runs: dict[str, list[list[int]]] = {}
    roots: dict[str, tuple[int, bytes]] = {}
    for lo, hi in itertools.pairwise([0, *ends]):
        cuts = [c for c in checkpoints if lo < c < hi]
        _, run_rows, changed = advance_sites(lambda _: state, lo, sites[lo:hi], [lh for _, lh in entries[lo:hi]], cuts)
        for site, first, packed in sorted(run_rows, key=lambda row: row[1]):
            indices = run_indices(first, packed)
            stored_runs.setdefault(site, []).append(indices)
        roots.update(changed)
    assert roots == _trees_by_definition(entries, checkpoints, n)
    want = _site_runs_by_definition(entries, checkpoints, n)
    assert stored_runs == {site: [[i for i, _ in run] for run in runs] for site, runs in want.items()}
    for site, runs in want.items():  # the verifier's recomputation from an export's entries and run lengths
        flat = [entry for run in runs for entry in run]
        assert sitemap.tree_root(flat, [len(run) for run in runs]) == roots[site]


def test_concurrent_postgres_appenders_keep_every_site_complete(pg_url: str, tmp_path: Path) -> None:
    url = pg_url
    key = tmp_path / "log.key"
    with Registry.open(url, key=key, origin="crawler.example/log") as reg:
        reg.checkpoint()
        vkey = reg.vkey
    sites = [f"site{n}.org" for n in range(4)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def node(n: int) -> None:
        try:
            with Registry.open(url, key=tmp_path / "absent.key") as reg:  # appending nodes hold no key
                for batch in range(5):
                    mixed = make_records(20, 100 * batch, site=sites[n]) + make_records(
                        5, 1000 * n + 10 * batch, site="shared.org"
                    )
                    reg.append(mixed)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def integrator() -> None:
        try:
            with Registry.open(url, key=key) as reg:
                while not stop.is_set():
                    reg.integrate(wait=True)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=node, args=(n,)) for n in range(4)]
    integ = threading.Thread(target=integrator)
    integ.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    integ.join()
    assert not errors, errors
    with Registry.open(url, key=key) as reg:
        reg.checkpoint()
        assert reg.size == 4 * 5 * 25
        full = reg.self_check(full=True)  # recomputes the map of every sites note from the entries
        assert full.ok, full.problems
        assert _note_sizes(reg) == _checkpoint_sizes(reg) and len(_note_sizes(reg)) > 2
        for site, want in [*((s, 100) for s in sites), ("shared.org", 100)]:
            out = export_bundle(reg, site, tmp_path / site).out
            report = verify_export(out, vkey, allow_missing_evidence=True)
            assert report.ok, (site, report.problems)
            assert report.records == want
            entries = json.loads((out / "site-proof.json").read_bytes())["entries"]
            assert [i for i, _ in entries] == sorted(i for i, _ in entries)  # log order


# -- SQLite keeps the index in the append transaction ------------------------------------------------------------


def test_sqlite_append_keeps_the_site_index_as_runs(tmp_path: Path) -> None:
    with Registry.open(tmp_path / "r.db", batch_size=10) as reg:
        reg.append(make_records(25) + make_records(5, site="other.org"))
        assert reg._store.sites_upto() == 30 and reg._store.site_totals() == (30, 30)  # no catch-up needed
        raw = Raw(str(tmp_path / "r.db"))
        # one row per site and batch: [0-9], [10-19], [20-24] of example.net and [25-29] of other.org
        assert raw.q("SELECT site, first, length(idxs) FROM site_run ORDER BY first") == [
            (SITE, 0, 80),
            (SITE, 10, 80),
            (SITE, 20, 40),
            ("other.org", 25, 40),
        ]
        raw.close()
        assert [e.index for e in reg.records(site=SITE)] == list(range(25))
        assert reg.self_check(full=True).ok


def _as_per_entry_export(out: Path, key: Path, leaves: list[bytes]) -> None:
    """Rewrite an export as the version whose site trees had a leaf per entry made it: site-proof.json without
    run lengths, with that version's root and map path, and sites.txt signed for that version's map."""
    signer = Signer.from_private_key_text(key.read_text())
    origin, size, log_root = (out / "checkpoint.txt").read_text().split("\n")[:3]
    trees = _trees_by_definition(_entries_of(leaves), list(range(1, int(size) + 1)), int(size))  # a run per entry
    site_map = sitemap.SiteMap(trees)
    doc = json.loads((out / "site-proof.json").read_bytes())
    del doc["runs"]
    doc["root"] = base64.b64encode(trees[SITE][1]).decode()
    doc["map_path"] = [[d, base64.b64encode(h).decode()] for d, h in site_map.prove(SITE).path]
    (out / "site-proof.json").write_bytes(rfc8785.dumps(doc))
    body = sitemap.sites_note_body(origin, int(size), base64.b64decode(log_root), site_map.root, site_map.count)
    (out / "sites.txt").write_text(signer.sign_note(body))
    _resign(out, key)


@pytest.mark.parametrize("layout", ["site_run", "site_index"])
def test_per_entry_index_of_an_earlier_version_is_rebuilt(url: str, tmp_path: Path, layout: str) -> None:
    """A registry written by a version whose site trees had a leaf per entry (site_tree without a runs column;
    the oldest also one site_index row per entry instead of site_run): on open the derived index is dropped and
    rebuilt from the entries with a leaf per run, the sites notes it signed are kept in site_note_v1, and an
    export it made still verifies, alone and as the previous export of a new one."""
    key = tmp_path / "log.key"
    with Registry.open(url, key=key, batch_size=10) as reg:
        reg.append(make_records(25) + make_records(5, site="other.org"))
        vkey = reg.vkey
        leaves = [reg.leaf(i) for i in range(30)]
    first = _export(url, key, tmp_path / "first")
    _as_per_entry_export(first, key, leaves)
    report = verify_export(first, vkey, allow_missing_evidence=True)
    assert report.ok and report.records == 25, report.problems
    raw = Raw(url)
    notes = raw.q("SELECT size, note FROM site_note ORDER BY size")
    raw.conn.execute("DROP TABLE site_tree")
    blob = "bytea" if raw.kind == "postgresql" else "BLOB"
    raw.conn.execute(f"CREATE TABLE site_tree(site TEXT PRIMARY KEY, count INTEGER NOT NULL, frontier {blob} NOT NULL)")
    if layout == "site_index":
        rows = [(site, idx) for site in (SITE, "other.org") for idx in raw.site_indices(site)]
        raw.conn.execute("DROP TABLE site_run")
        raw.conn.execute("CREATE TABLE site_index(site TEXT NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY(site, idx))")
        for row in rows:
            raw.q("INSERT INTO site_index(site, idx) VALUES (?, ?)", row)
    raw.close()
    with Registry.open(url, key=key, batch_size=10) as reg:
        assert reg._store.sites_upto() == 0  # dropped with the old tables, to be rebuilt
        reg.append(make_records(3, 25))  # appended while behind: left for the catch-up, in log order
        assert reg._store.sites_upto() == 0
        reg.checkpoint()  # PostgreSQL: the integrator catches the index up before it integrates the new entries
        if raw.kind == "sqlite":
            reg._store.ensure_sites(chunk=7)  # several transactions, each ending at a checkpoint
        assert reg.index_sites() == 33 and reg._store.site_totals() == (33, 33)
        assert reg.self_check(full=True).ok
        checkpoints = _checkpoint_sizes(reg)
        leaves = [reg.leaf(i) for i in range(33)]
        trees = reg._store.site_trees()
    want = _trees_by_definition(_entries_of(leaves), checkpoints, 33)
    assert {site: (count, root) for site, (count, root) in site_roots(trees).items()} == want
    second = _export(url, key, tmp_path / "second")
    report = verify_export(second, vkey, previous_export=first, allow_missing_evidence=True)
    assert report.ok, report.problems
    assert "previous export: 25 -> 28 records of example.net, earlier ones unchanged" in report.lines
    raw = Raw(url)
    assert raw.q("SELECT size, note FROM site_note_v1 ORDER BY size") == notes  # kept as they were signed
    tables = raw.q("SELECT to_regclass('site_index')" if raw.kind == "postgresql" else "SELECT name FROM sqlite_master")
    raw.close()
    assert "site_index" not in str(tables)


def test_damaged_site_run_is_named(reg_url: tuple[str, Path, str], tmp_path: Path) -> None:
    url, key, _ = reg_url
    raw = Raw(url)
    raw.tamper("UPDATE site_run SET idxs = substr(idxs, 1, 12) WHERE site = 'example.net' AND first = 0")
    raw.close()
    with Registry.open(url, key=key, check=False) as reg, pytest.raises(IntegrityError, match="site_run at 0 holds 12"):
        export_bundle(reg, SITE, tmp_path / "out")
    problems = _full(url, key)
    assert any("site index of example.net" in p and "missing" in p for p in problems), problems


def test_sqlite_index_built_after_an_entry_was_rewritten(tmp_path: Path) -> None:
    """The site trees hold the hash of the entry as it was logged, so after the entry was rewritten the export
    refuses."""
    url, key = str(tmp_path / "r.db"), tmp_path / "log.key"
    with Registry.open(url, key=key) as reg:
        reg.append(make_records(6) + make_records(300, 6, site="other.org"))  # entry 2 is not in the last tile
    raw = Raw(url)
    leaf = raw.q("SELECT leaf FROM entry WHERE idx = 2")[0][0]
    raw.tamper("UPDATE entry SET leaf = ? WHERE idx = 2", (bytes(leaf).replace(b"/2026/2.html", b"/2026/9.html"),))
    raw.close()
    with pytest.raises(IntegrityError, match="do not hash to its site tree"):
        _export(url, key, tmp_path / "out")


def test_module_verifier_cli_previous_export_and_missing_evidence(url: str, tmp_path: Path) -> None:
    """``python -m optout_registry.verify`` (the standalone verifier) with --previous-export and
    --allow-missing-evidence, in a real process."""
    import subprocess
    import sys

    key = tmp_path / "log.key"
    with Registry.open(url, key=key) as reg:
        reg.append(make_records(3))
        vkey = reg.vkey
        first = export_bundle(reg, SITE, tmp_path / "first").out
        reg.append(make_records(2, 3))
        second = export_bundle(reg, SITE, tmp_path / "second").out

    def verify(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "optout_registry.verify", *args, "--vkey", vkey]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)

    done = verify(str(second), "--previous-export", str(first))
    assert done.returncode == 1 and "pass --allow-missing-evidence" in done.stdout
    done = verify(str(second), "--previous-export", str(first), "--allow-missing-evidence")
    assert done.returncode == 0, done.stdout
    assert "previous export: 3 -> 5 records of example.net, earlier ones unchanged" in done.stdout
    done = verify(str(first), "--previous-export", str(second), "--allow-missing-evidence")
    assert done.returncode == 1 and "the count decreased" in done.stdout


def test_site_keys_taken_at_append_equal_those_read_from_the_leaves(url: str, tmp_path: Path) -> None:
    """SQLite takes each record's site key from the dict as it appends; check --full recomputes the index from
    the leaf bytes. Mixed case and non-ASCII sites must land in the same trees either way."""
    sites = ["Example.NET", "example.net", "BÜCHER.example", "bücher.example", "ÉCOLE.example"]
    records = []
    for n, site in enumerate(sites):
        for rec in make_records(3, 10 * n):
            rec["target"]["site"] = site  # as a caller logged it
            records.append(rec)
    with Registry.open(url, key=tmp_path / "log.key") as reg:
        reg.append(records)
        reg.checkpoint()
        assert reg.self_check(full=True).ok
        trees = reg._store.site_trees()
    assert {site: count for site, (count, _, _) in trees.items()} == {
        "example.net": 6,
        "bÜcher.example": 3,  # only ASCII letters are lower-cased (docs/completeness.md, "The site key")
        "bücher.example": 3,
        "École.example": 3,
    }


def test_sqlite_site_map_is_not_reused_after_a_batch_that_did_not_advance_it(tmp_path: Path) -> None:
    """A batch indexed without a sites note (a direct store call) moves the site trees but not the writer's kept
    map; the next note must then come from the map rebuilt from the stored trees, not the stale one."""
    from optout_registry.merkle import leaf_hashes
    from optout_registry.record import canonical

    with Registry.open(tmp_path / "r.db", key=tmp_path / "log.key", batch_size=5) as reg:
        reg.append(make_records(5))
        store = reg._store
        leaves = [canonical(r) for r in make_records(3, 5, site="other.org")]
        store.append(leaves, leaf_hashes(leaves), [], reg._sign, ["other.org"] * 3)  # no sign_sites
        reg.append(make_records(2, 8))
        assert [size for size, _, _, _ in store.site_notes()] == [5, 10]
        report = reg.self_check(full=True)
        assert report.ok, report.problems


def test_sqlite_tree_cache_follows_other_writers_and_rollbacks(tmp_path: Path) -> None:
    """Each SQLite store keeps the site trees it advanced in memory between batches. Another writer on the same
    file, or a batch that rolls back after advancing them, must make it read them again: the trees then still
    equal check --full's recomputation from the entries."""
    path, key = tmp_path / "r.db", tmp_path / "log.key"
    with Registry.open(path, key=key, batch_size=4) as one, Registry.open(path, key=key, batch_size=4) as two:
        one.append(make_records(6))
        two.append(make_records(5, 6) + make_records(3, site="other.org"))  # moves example.net past one's cache
        one.append(make_records(4, 11))

        def refuse(size: int, root: bytes) -> str:
            raise RuntimeError("signing failed")

        one._sign = refuse  # type: ignore[method-assign]  # the batch advances the cached trees, then rolls back
        with pytest.raises(RuntimeError, match="signing failed"):
            one.append(make_records(2, 15))
        del one._sign
        one.append(make_records(2, 15) + make_records(1, 3, site="other.org"))
        two.append(make_records(3, 17))
        assert one.self_check(full=True).ok  # which recomputes the site map at every sites note
        trees = one._store.site_trees()
        # the site map each writer keeps between batches followed too: every checkpoint has its sites note
        assert _note_sizes(one) == _checkpoint_sizes(one) == [4, 6, 10, 14, 18, 21, 24]
    assert {site: count for site, (count, _, _) in trees.items()} == {"example.net": 20, "other.org": 4}
