"""Registry facade over SQLite: append/checkpoint/prove/records, keys, URLs, bad input, append-only triggers."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from optout_registry.merkle import leaf_hash, root, verify_consistency, verify_inclusion
from optout_registry.note import Verifier, open_checkpoint
from optout_registry.proof import parse_proof
from optout_registry.record import canonical
from optout_registry.registry import (
    IntegrityError,
    InvalidRecord,
    Registry,
    RegistryError,
    parse_url,
)
from tests.support.registry import ROBOTS, make_record, make_records


@pytest.fixture
def reg(tmp_path: Path):
    r = Registry.open(tmp_path / "r.db", batch_size=100)
    yield r
    r.close()


def _state(reg: Registry) -> tuple[int, bytes, int, int]:
    latest = reg.latest()
    assert latest is not None
    return latest[0], latest[1], reg.stats()["entries"], reg.stats()["checkpoints"]


def test_indices_contiguous_across_calls_and_batches(reg: Registry) -> None:
    first = reg.append(make_records(250))  # 3 transactions of <= 100
    second = reg.append(make_records(7, 250))
    assert first == list(range(250)) and second == list(range(250, 257))
    assert reg.size == 257
    assert reg.stats()["checkpoints"] == 4  # one signed checkpoint per batch
    assert reg.append([]) == []


def test_checkpoint_is_signed_and_commits_to_the_leaves(reg: Registry) -> None:
    records = make_records(300)
    reg.append(records)
    cp = open_checkpoint(reg.checkpoint(), Verifier.from_vkey(reg.vkey), origin=reg.origin)
    leaves = [reg.leaf(i) for i in range(300)]
    assert cp.size == 300
    assert cp.root == root([leaf_hash(x) for x in leaves])
    assert leaves[12] == canonical(records[12])


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 600])
def test_every_proof_verifies_around_tile_boundaries(tmp_path: Path, size: int) -> None:
    with Registry.open(tmp_path / "r.db", batch_size=97) as reg:
        reg.append(make_records(size))
        cp = open_checkpoint(reg.checkpoint(), Verifier.from_vkey(reg.vkey))
        for i in sorted({0, 1, size // 2, size - 2, size - 1} & set(range(size))):
            index, proof, note = parse_proof(reg.prove(i))
            assert index == i and note == reg.checkpoint()
            verify_inclusion(i, cp.size, leaf_hash(reg.leaf(i)), proof, cp.root)


def test_old_checkpoints_stay_provable_and_consistent(reg: Registry) -> None:
    reg.append(make_records(130))
    old = open_checkpoint(reg.checkpoint(), Verifier.from_vkey(reg.vkey))
    reg.append(make_records(400, 130))
    new = open_checkpoint(reg.checkpoint(), Verifier.from_vkey(reg.vkey))
    # Partial tiles grew since size 130; proofs for the old size must still come out right.
    verify_inclusion(129, 130, leaf_hash(reg.leaf(129)), reg.inclusion_proof(129, size=130), old.root)
    verify_consistency(130, new.size, old.root, new.root, reg.consistency_proof(130))


def test_records_query_by_site_and_time(reg: Registry) -> None:
    reg.append(make_records(40) + make_records(10, 40, site="other.org"))
    assert [e.index for e in reg.records(site="other.org")] == list(range(40, 50))
    # A host or URL is reduced to the registrable domain rights holders query by.
    assert len(list(reg.records(site="https://news.example.net/x"))) == 40
    days = {
        e.record["observed_at"][:10] for e in reg.records(site="example.net", since="2026-11-03", until="2026-11-04")
    }
    assert days == {"2026-11-03", "2026-11-04"}
    assert list(reg.records(site="nobody.example")) == []
    # The index is derived lazily: records appended later show up.
    reg.append(make_records(3, 50, site="other.org"))
    assert [e.index for e in reg.records(site="other.org")][-3:] == [50, 51, 52]
    with pytest.raises(RegistryError, match="not a date"):
        list(reg.records(since="yesterday"))
    with pytest.raises(RegistryError, match="out of range"):  # valid RFC 3339, but before year 1 in UTC
        list(reg.records(until="0001-01-01T00:00:00+01:00"))


def test_evidence_is_stored_once_by_sha256(reg: Registry) -> None:
    reg.append(make_records(5), evidence=[ROBOTS])
    reg.append(make_records(5, 5), evidence=[ROBOTS, ROBOTS])
    digest = make_record(0)["evidence"]["sha256"]
    assert reg.evidence(digest) == ROBOTS
    assert reg.stats()["evidence_blobs"] == 1
    assert reg.add_evidence(b"x") == "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
    with pytest.raises(InvalidRecord, match="hashes to"):
        reg.append(make_records(1, 10), evidence={"00" * 32: b"other"})
    assert reg.size == 10


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("decision"), "decision"),
        (lambda r: r.__setitem__("v", 1.0), "float"),
        (lambda r: r["rule"].__setitem__("line", 2**60), "outside"),
        (lambda r: r["rule"].__setitem__("line", 1.5), "float"),
        (lambda r: r.__setitem__("observed_at", "yesterday"), "observed_at"),
    ],
)
def test_bad_records_are_refused_and_nothing_changes(reg: Registry, mutate, message: str) -> None:
    reg.append(make_records(20), evidence=[ROBOTS])
    before = _state(reg)
    batch = make_records(5, 20)
    mutate(batch[3])
    with pytest.raises(InvalidRecord, match=message) as info:
        reg.append(batch, evidence=[b"new evidence"])
    assert "record #3" in str(info.value) and "nothing was stored" in str(info.value)
    assert _state(reg) == before
    assert reg.stats()["evidence_blobs"] == 1
    assert reg.append(make_records(1, 20)) == [20]  # the registry still works, indices unchanged


def test_non_mapping_record_refused(reg: Registry) -> None:
    with pytest.raises(InvalidRecord, match="record #0"):
        reg.append(["not a record"])  # type: ignore[list-item]


def test_append_only_triggers(reg: Registry) -> None:
    reg.append(make_records(300), evidence=[ROBOTS])
    conn = sqlite3.connect(reg.location)
    for sql in (
        "UPDATE entry SET leaf = x'00' WHERE idx = 1",
        "DELETE FROM entry WHERE idx = 299",
        "UPDATE checkpoint SET note = 'x'",
        "DELETE FROM checkpoint",
        "DELETE FROM evidence",
        "UPDATE tile SET data = zeroblob(8192) WHERE level = 0 AND n = 0",  # full tile: immutable
        "UPDATE tile SET data = zeroblob(32 * 50) WHERE level = 0 AND n = 1",  # partial: may only be extended
        "DELETE FROM tile",
    ):
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(sql)
    conn.close()
    assert reg.self_check(full=True).ok


def test_key_file_created_0600_and_reused(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with Registry.open(db) as reg:
        vkey = reg.vkey
        reg.append(make_records(3))
    key = tmp_path / "r.db.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("PRIVATE+KEY+")
    with Registry.open(f"sqlite://{db}") as reg:
        assert reg.vkey == vkey
        reg.append(make_records(1, 3))
        Verifier.from_vkey(vkey)  # parses
        open_checkpoint(reg.checkpoint(), Verifier.from_vkey(vkey))


def test_wrong_or_missing_key_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with Registry.open(db, origin="example.org/registry") as reg:
        reg.append(make_records(2))
    (tmp_path / "r.db.key").rename(tmp_path / "moved.key")
    with Registry.open(db) as reg, pytest.raises(RegistryError, match="--key"):
        reg.append(make_records(1, 2))
    other = tmp_path / "other.key"
    from optout_registry.note import Signer

    other.write_text(Signer.generate("example.org/registry").private_key_text())
    with Registry.open(db, key=other) as reg, pytest.raises(RegistryError, match="not this registry's key"):
        reg.append(make_records(1, 2))
    with Registry.open(db, key=tmp_path / "moved.key") as reg:
        assert reg.append(make_records(1, 2)) == [2]
    with pytest.raises(RegistryError, match="origin"):
        Registry.open(db, origin="example.org/another")


def test_explicit_key_and_origin_for_a_new_registry(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "log.key"
    with Registry.open(tmp_path / "r.db", key=key, origin="crawler.example/log-2026") as reg:
        assert reg.vkey.startswith("crawler.example/log-2026+")
        reg.append(make_records(1))
    assert key.exists() and not (tmp_path / "r.db.key").exists()


def test_key_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTOUT_REGISTRY_KEY", str(tmp_path / "env.key"))
    monkeypatch.setenv("OPTOUT_REGISTRY_URL", str(tmp_path / "env.db"))
    with Registry.open() as reg:
        reg.append(make_records(1))
        assert reg.location == str(tmp_path / "env.db")
    assert (tmp_path / "env.key").exists()


def test_url_parsing() -> None:
    assert parse_url("sqlite:///var/lib/r.db") == ("sqlite", "/var/lib/r.db", {})
    assert parse_url("sqlite:rel/r.db?synchronous=normal") == ("sqlite", "rel/r.db", {"synchronous": "normal"})
    assert parse_url("./optout-registry.db") == ("sqlite", "./optout-registry.db", {})
    assert parse_url("postgresql://u@h/db")[0] == "postgresql"
    for bad in ("mysql://x/y", "", "sqlite://host/x.db", "sqlite:///"):
        with pytest.raises(RegistryError):
            parse_url(bad)


def test_url_options(tmp_path: Path) -> None:
    with Registry.open(f"sqlite://{tmp_path}/a.db?synchronous=normal") as reg:
        assert reg.append(make_records(1)) == [0]
    with pytest.raises(RegistryError, match="unknown sqlite URL option"):
        Registry.open(f"sqlite://{tmp_path}/a.db?journal=off")
    with pytest.raises(RegistryError, match="synchronous"):
        Registry.open(f"sqlite://{tmp_path}/a.db?synchronous=maybe")


def test_open_without_create_and_garbage_file(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="no registry"):
        Registry.open(tmp_path / "missing.db", create=False)
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(RegistryError, match="cannot open"):
        Registry.open(junk)


def test_empty_registry_checkpoint_and_self_check(reg: Registry) -> None:
    cp = open_checkpoint(reg.checkpoint(), Verifier.from_vkey(reg.vkey))
    assert cp.size == 0 and cp.root == root([])
    assert reg.self_check(full=True).ok
    with pytest.raises(RegistryError, match="not in the log"):
        reg.inclusion_proof(0)


def test_stats(reg: Registry) -> None:
    reg.append(make_records(10), evidence=[ROBOTS])
    stats = reg.stats()
    assert stats["backend"] == "sqlite" and stats["tree_size"] == 10 and stats["entries"] == 10
    assert stats["pending"] == 0 and stats["evidence_bytes"] == len(ROBOTS) and stats["file_bytes"] > 0


def test_two_writers_on_one_file_stay_consistent(tmp_path: Path) -> None:
    """Two Registry objects (as two processes would) interleave batches; BEGIN IMMEDIATE serialises them."""
    db = tmp_path / "r.db"
    a = Registry.open(db)
    b = Registry.open(db)
    try:
        got = a.append(make_records(10)) + b.append(make_records(10, 10)) + a.append(make_records(5, 20))
        assert got == list(range(25))
        assert a.self_check(full=True).ok and b.size == 25
    finally:
        a.close()
        b.close()


def test_start_up_check_refuses_a_damaged_registry(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with Registry.open(db) as reg:
        reg.append(make_records(10))
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER entry_no_delete")
    conn.execute("DELETE FROM entry WHERE idx = 4")
    conn.commit()
    conn.close()
    with pytest.raises(IntegrityError, match="9 entries stored but the log says 10"):
        Registry.open(db)
