"""Tamper tests on real registries (SQLite and PostgreSQL): the attacker edits the database behind the registry's
back (triggers disabled) and the start-up self-check, the full check or the offline verifier must fail and say why.

Layout of the log used here: 0..9 and 590..599 example.net, the rest other.org (so three level-0 tiles, and small
exports), with signed checkpoints at (at least) sizes 300, 500 and 600. The holder of example.net keeps the size-600
checkpoint.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from optout_registry.export import export_bundle
from optout_registry.registry import IntegrityError, Registry
from optout_registry.tiles import tile_width
from optout_registry.verify import verify_export
from tests.support.registry import ROBOTS, Raw, make_records, pg_schema_url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "r.db")
    else:
        yield from pg_schema_url()


@pytest.fixture
def setup(url: str, tmp_path: Path) -> tuple[str, Path, str, str]:
    """Build the log; return (url, key file, vkey, the holder's size-600 checkpoint)."""
    key = tmp_path / "log.key"
    with Registry.open(url, key=key, origin="crawler.example/log", batch_size=100) as reg:
        records = _log()
        reg.append(records[:300], evidence=[ROBOTS])
        reg.checkpoint()
        reg.append(records[300:500])
        reg.checkpoint()
        reg.append(records[500:])
        note = reg.checkpoint()
        reg.index_sites()  # as an earlier export would have (SQLite builds the site index on demand)
        vkey = reg.vkey
    return url, key, vkey, note


def _log() -> list[dict[str, object]]:
    return make_records(10) + make_records(580, 10, site="other.org") + make_records(10, 590)


def _export(url: str, key: Path, out: Path, site: str = "example.net", previous: str | None = None) -> Path:
    with Registry.open(url, key=key) as reg:
        export_bundle(reg, site, out, previous=previous)
    return out


def _full_check(url: str, key: Path) -> list[str]:
    with Registry.open(url, key=key, check=False) as reg:
        report = reg.self_check(full=True)
    assert not report.ok
    return report.problems


def test_untampered_export_verifies(setup: tuple[str, Path, str, str], tmp_path: Path) -> None:
    url, key, vkey, note = setup
    out = _export(url, key, tmp_path / "out")
    report = verify_export(out, vkey, previous_checkpoint=note)
    assert report.ok, report.problems
    assert report.records == 20
    with Registry.open(url, key=key) as reg:
        assert reg.self_check(full=True).ok


def test_changed_byte_in_a_stored_record(setup: tuple[str, Path, str, str], tmp_path: Path) -> None:
    url, key, _vkey, _note = setup
    raw = Raw(url)
    leaf = raw.q("SELECT leaf FROM entry WHERE idx = 5")[0][0]
    forged = bytes(leaf).replace(b"/2026/5.html", b"/2026/6.html")  # still valid canonical JSON
    assert forged != bytes(leaf)
    raw.tamper("UPDATE entry SET leaf = ? WHERE idx = 5", (forged,))
    raw.close()
    # The export re-hashes the site's records into its site tree before writing anything, so it refuses.
    with pytest.raises(IntegrityError, match="do not hash to its site tree"):
        _export(url, key, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    problems = _full_check(url, key)
    assert any("tile 0/0" in p for p in problems)
    assert any("site tree of example.net" in p for p in problems), problems


def test_deleted_row(setup: tuple[str, Path, str, str]) -> None:
    url, key, _, _ = setup
    raw = Raw(url)
    raw.tamper("DELETE FROM entry WHERE idx = 50")
    raw.close()
    with pytest.raises(IntegrityError, match="599 entries stored but the log says 600"):
        Registry.open(url, key=key)
    assert any("599 entries" in p for p in _full_check(url, key))


def test_reordered_rows(setup: tuple[str, Path, str, str], tmp_path: Path) -> None:
    url, key, _vkey, _ = setup
    raw = Raw(url)
    a = raw.q("SELECT leaf FROM entry WHERE idx = 3")[0][0]
    b = raw.q("SELECT leaf FROM entry WHERE idx = 4")[0][0]
    raw.tamper("UPDATE entry SET leaf = ? WHERE idx = 3", (b,))
    raw.tamper("UPDATE entry SET leaf = ? WHERE idx = 4", (a,))
    raw.close()
    with pytest.raises(IntegrityError, match="do not hash to its site tree"):
        _export(url, key, tmp_path / "out")
    problems = _full_check(url, key)
    assert any("tile 0/0" in p for p in problems)
    assert any("site tree of example.net" in p for p in problems), problems


def test_truncated_entries(setup: tuple[str, Path, str, str]) -> None:
    url, key, _, _ = setup
    raw = Raw(url)
    raw.tamper("DELETE FROM entry WHERE idx >= 500")
    raw.close()
    with pytest.raises(IntegrityError, match="500 entries stored but the log says 600"):
        Registry.open(url, key=key)


def test_consistent_rollback_is_caught_by_the_holders_checkpoint(
    setup: tuple[str, Path, str, str], tmp_path: Path
) -> None:
    """The attacker rolls the whole database back to size 500 (entries, tiles, checkpoints, heads): locally that
    is a valid, smaller log, so only a checkpoint someone else kept can expose it."""
    url, key, vkey, note = setup
    raw = Raw(url)
    raw.tamper("DELETE FROM entry WHERE idx >= 500")
    raw.tamper("DELETE FROM checkpoint WHERE size > 500")
    for level, n, data in raw.q("SELECT level, n, data FROM tile"):
        width = tile_width(level, n, 500)
        if width == 0:
            raw.tamper("DELETE FROM tile WHERE level = ? AND n = ?", (level, n))
        else:
            raw.tamper("UPDATE tile SET data = ? WHERE level = ? AND n = ?", (bytes(data)[: width * 32], level, n))
    if raw.kind == "postgresql":
        root = raw.q("SELECT root FROM checkpoint WHERE size = 500")[0][0]
        raw.tamper("UPDATE int_coord SET size = 500, root = ?", (root,))
        raw.tamper("UPDATE seq_coord SET next = 500")
    # …and the derived site index, which the registry rebuilds from the entries on the next open.
    for table in ("site_tree", "site_run", "site_note"):
        raw.tamper(f"DELETE FROM {table}")
    raw.tamper("DELETE FROM meta WHERE key = 'sites_upto'")
    raw.close()
    with Registry.open(url, key=key) as reg:  # a consistent prefix: start-up check passes
        assert reg.size == 500
    out = _export(url, key, tmp_path / "out")
    assert verify_export(out, vkey).ok  # on its own the export looks fine…
    report = verify_export(out, vkey, previous_checkpoint=note)  # …but the holder kept size 600
    assert not report.ok
    assert any("previous checkpoint" in p and "newer" in p for p in report.problems), report.problems


def test_replaced_partial_tile(setup: tuple[str, Path, str, str]) -> None:
    url, key, _, _ = setup
    raw = Raw(url)
    data = bytes(raw.q("SELECT data FROM tile WHERE level = 0 AND n = 2")[0][0])
    raw.tamper("UPDATE tile SET data = ? WHERE level = 0 AND n = 2", (os.urandom(len(data)),))
    raw.close()
    with pytest.raises(IntegrityError, match="root recomputed from tiles"):
        Registry.open(url, key=key)


def test_replaced_full_tile(setup: tuple[str, Path, str, str], tmp_path: Path) -> None:
    """A full level-0 tile is not needed to recompute the root (level 1 covers it), so the quick check passes;
    the proofs built from it and the full check do not."""
    url, key, vkey, _ = setup
    raw = Raw(url)
    raw.tamper("UPDATE tile SET data = ? WHERE level = 0 AND n = 0", (os.urandom(8192),))
    raw.close()
    report = verify_export(_export(url, key, tmp_path / "out"), vkey)
    assert not report.ok and sum("proofs/" in p for p in report.problems) == 10  # records 0..9 sit in tile 0/0
    assert any("stored tile 0/0 differs" in p for p in _full_check(url, key))


def test_forked_checkpoint_row(setup: tuple[str, Path, str, str]) -> None:
    """A second checkpoint for size 600 with another root, signed with the real key, swapped into the database."""
    url, key, _, _ = setup
    from optout_registry.note import Checkpoint
    from optout_registry.registry import read_private_key

    signer = read_private_key(key)
    forged_root = bytes(32)
    forged = signer.sign(Checkpoint("crawler.example/log", 600, forged_root))
    raw = Raw(url)
    raw.tamper("UPDATE checkpoint SET root = ?, note = ? WHERE size = 600", (forged_root, forged))
    if raw.kind == "postgresql":
        raw.tamper("UPDATE int_coord SET root = ?", (forged_root,))
    raw.close()
    with pytest.raises(IntegrityError, match="root recomputed from tiles"):
        Registry.open(url, key=key)


def test_rewritten_history_is_a_detectable_fork(setup: tuple[str, Path, str, str], tmp_path: Path) -> None:
    """The operator rebuilds the log with record 5 changed and re-signs it with the same key: a self-consistent
    log whose export verifies alone, but the holder's kept checkpoint proves the fork."""
    _url, key, vkey, note = setup
    fork_key = tmp_path / "fork.key"
    shutil.copy(key, fork_key)
    records = _log()
    records[5]["decision"] = "purged"
    with Registry.open(tmp_path / "fork.db", key=fork_key) as fork:
        fork.append(records, evidence=[ROBOTS])
        assert fork.vkey == vkey and fork.size == 600
        export_bundle(fork, "example.net", tmp_path / "out")
    assert verify_export(tmp_path / "out", vkey).ok
    report = verify_export(tmp_path / "out", vkey, previous_checkpoint=note)
    assert not report.ok
    assert any("FORK" in p for p in report.problems), report.problems
    # And the operator's tool refuses to produce an export "consistent" with a checkpoint it contradicts.
    with (
        Registry.open(tmp_path / "fork.db", key=fork_key) as fork,
        pytest.raises(IntegrityError, match="different root"),
    ):
        export_bundle(fork, "example.net", tmp_path / "out2", previous=note)


def test_corrupted_exports_are_reported_never_crash(tmp_path: Path) -> None:
    """Backend-independent: damage a good bundle in many ways; the verifier reports each, never raises."""
    with Registry.open(tmp_path / "r.db") as reg:
        reg.append(make_records(300) + make_records(10, 300, site="other.org"), evidence=[ROBOTS])
        note = reg.checkpoint()
        vkey = reg.vkey
        export_bundle(reg, "other.org", tmp_path / "good")
    good = tmp_path / "good"
    assert verify_export(good, vkey).ok

    def mutated(name: str, change) -> Path:
        d = tmp_path / name
        shutil.copytree(good, d)
        change(d)
        return d

    cases = {
        "truncated-proof": lambda d: (d / "proofs/300.tlog-proof").write_bytes(
            (d / "proofs/300.tlog-proof").read_bytes()[:40]
        ),
        "garbage-manifest": lambda d: (d / "manifest.json").write_bytes(os.urandom(300)),
        "no-checkpoint": lambda d: (d / "checkpoint.txt").unlink(),
        "random-record": lambda d: (d / "records/301.json").write_bytes(os.urandom(100)),
        "binary-checkpoint": lambda d: (d / "checkpoint.txt").write_bytes(b"\xff\x00" * 50),
        "extra-file": lambda d: (d / "records/999.json").write_text("{}"),
        "swapped-proofs": lambda d: (d / "proofs/302.tlog-proof").write_bytes(
            (d / "proofs/303.tlog-proof").read_bytes()
        ),
        "empty-dir": lambda d: [shutil.rmtree(p) if p.is_dir() else p.unlink() for p in list(d.iterdir())],
        "deep-json-record": lambda d: (d / "records/304.json").write_text("[" * 100_000),
        "evidence-changed": lambda d: [p.write_bytes(b"changed") for p in (d / "evidence").iterdir()],
    }
    for name, change in cases.items():
        report = verify_export(mutated(name, change), vkey, previous_checkpoint=note)
        assert not report.ok, name
        assert report.problems and all(isinstance(p, str) for p in report.problems), name
        assert not any("verifier stopped early" in p for p in report.problems), (name, report.problems)
