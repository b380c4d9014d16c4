"""PostgreSQL backend: the multi-node protocol of REGISTRY.md §6.5 against a real server (skipped, with the reason
printed, only when no server answers). Each test gets its own schema."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from optout_registry.merkle import leaf_hash, verify_inclusion
from optout_registry.note import Verifier, open_checkpoint
from optout_registry.proof import parse_proof
from optout_registry.record import canonical
from optout_registry.registry import ForkError, InvalidRecord, Registry, RegistryError
from tests.support.registry import PG_BASE, ROBOTS, Raw, make_record, make_records, pg_schema_url

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def url() -> Iterator[str]:
    yield from pg_schema_url()


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return tmp_path / "log.key"


def test_sequence_then_integrate(url: str, key: Path) -> None:
    with Registry.open(url, key=key, batch_size=64) as reg:
        assert reg.append(make_records(150), evidence=[ROBOTS]) == list(range(150))
        assert reg.size == 0 and reg.stats()["pending"] == 150  # sequenced, durable, not yet in the tree
        note = reg.checkpoint()
        cp = open_checkpoint(note, Verifier.from_vkey(reg.vkey), origin=reg.origin)
        assert cp.size == 150 and reg.stats()["pending"] == 0
        index, proof, embedded = parse_proof(reg.prove(149))
        assert embedded == note
        verify_inclusion(index, cp.size, leaf_hash(canonical(make_record(149))), proof, cp.root)
        # prove() integrates on demand
        reg.append(make_records(10, 150))
        assert parse_proof(reg.prove(155))[0] == 155 and reg.size == 160
        assert [e.index for e in reg.records(site="example.net", since="2026-11-02", until="2026-11-02")] == [
            1,
            31,
            61,
            91,
            121,
            151,
        ]
        assert reg.evidence(make_record(0)["evidence"]["sha256"]) == ROBOTS
        assert reg.self_check(full=True).ok


def test_many_processes_append_one_consistent_log(url: str, key: Path) -> None:
    """3 appender processes (8 batches of 30 each) and 1 integrator process run at once on one schema; a start
    barrier makes the appenders really overlap."""
    with Registry.open(url, key=key) as reg:
        reg.checkpoint()  # records the vkey, so the integrator and the appenders agree on it
    appender = r"""
import json, sys
from optout_registry.registry import Registry
from tests.support.registry import make_records
url, node = sys.argv[1], int(sys.argv[2])
batches = [(node * 1000 + b * 30, make_records(30, node * 1000 + b * 30)) for b in range(8)]
with Registry.open(url, key=sys.argv[3] + ".absent") as reg:   # appending nodes need no private key
    print("ready", flush=True)
    sys.stdin.readline()
    for first_k, records in batches:
        got = reg.append(records)
        print(json.dumps([got, first_k]), flush=True)
"""
    integrator = r"""
import sys, time
from optout_registry.registry import Registry
with Registry.open(sys.argv[1], key=sys.argv[2]) as reg:
    deadline = time.monotonic() + 30
    while reg.size < 720 and time.monotonic() < deadline:
        reg.checkpoint()
        time.sleep(0.01)
    print(reg.size)
"""

    def spawn(script: str, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", script, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    procs = [spawn(appender, url, str(node), str(key)) for node in range(3)]
    integ = spawn(integrator, url, str(key))
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == "ready\n", p.stderr.read() if p.stderr else ""
    for p in procs:  # go!
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    batches = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err[-2000:]
        batches += [json.loads(line) for line in out.splitlines()]
    out, err = integ.communicate(timeout=60)
    assert integ.returncode == 0 and out.strip() == "720", err[-2000:]
    indices = sorted(i for got, _ in batches for i in got)
    assert indices == list(range(720))  # disjoint, contiguous, nothing lost
    with Registry.open(url, key=key) as reg:
        for got, first_k in batches:
            assert got == list(range(got[0], got[0] + 30))  # one batch = one contiguous run
            for j in (0, 29):
                assert reg.leaf(got[j]) == canonical(make_record(first_k + j))
        assert reg.size == 720
        report = reg.self_check(full=True)  # every intermediate checkpoint matches the entries
        assert report.ok, report.problems


def test_compare_and_swap_refuses_a_stale_integrator(url: str, key: Path) -> None:
    """While an integration is in flight, someone else moves the tree head: the CAS makes the whole transaction
    (tiles, checkpoint) roll back instead of publishing a second head."""
    with Registry.open(url, key=key) as reg:
        reg.append(make_records(300))
        reg.checkpoint()
        reg.append(make_records(50, 300))
        raw = Raw(url)
        before = raw.q("SELECT level, n, data FROM tile ORDER BY level, n")
        real_sign = reg._sign

        def sign_while_head_moves(size: int, root: bytes) -> str:
            raw.tamper("UPDATE int_coord SET size = size + 1")  # another integrator won the race
            return real_sign(size, root)

        reg._sign = sign_while_head_moves  # type: ignore[method-assign]
        with pytest.raises(ForkError, match="moved the tree head"):
            reg.integrate()
        reg._sign = real_sign  # type: ignore[method-assign]
        assert raw.q("SELECT max(size) FROM checkpoint")[0][0] == 300  # no checkpoint for 350 was published
        assert raw.q("SELECT level, n, data FROM tile ORDER BY level, n") == before  # tiles untouched
        raw.tamper("UPDATE int_coord SET size = 300")
        raw.close()
        reg.integrate()
        assert reg.size == 350 and reg.self_check(full=True).ok


def test_integrators_racing_without_the_lock_never_diverge(url: str, key: Path) -> None:
    """Two integrators with the advisory lock switched off, racing while entries arrive: some attempts fail, but
    every checkpoint that was committed matches the entries (the full check re-derives each one)."""
    with Registry.open(url, key=key) as reg:
        reg.checkpoint()
    errors: list[str] = []
    stop = threading.Event()

    def integrate_forever() -> None:
        with Registry.open(url, key=key) as reg:
            while not stop.is_set():
                try:
                    reg._store.integrate(reg._sign, use_lock=False)  # type: ignore[attr-defined]
                except RegistryError as exc:
                    errors.append(type(exc).__name__)

    threads = [threading.Thread(target=integrate_forever) for _ in range(2)]
    for t in threads:
        t.start()
    with Registry.open(url, key=key) as writer:
        for b in range(10):
            writer.append(make_records(40, b * 40))
    stop.set()
    for t in threads:
        t.join(timeout=30)
    print(f"racing integrators: {len(errors)} refused attempt(s): {sorted(set(errors))}")
    with Registry.open(url, key=key) as reg:
        reg.checkpoint()
        assert reg.size == 400
        report = reg.self_check(full=True)
        assert report.ok, report.problems


def test_advisory_lock_lets_one_integrator_run(url: str, key: Path) -> None:
    import psycopg

    with Registry.open(url, key=key) as reg:
        reg.append(make_records(5))
        lock_key = reg._store._lock_key  # type: ignore[attr-defined]
        with psycopg.connect(url, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s)", (lock_key,))
            assert reg.integrate(wait=False) is False and reg.size == 0
            other.execute("SELECT pg_advisory_unlock(%s)", (lock_key,))
        assert reg.integrate(wait=False) is True and reg.size == 5


def test_appenders_sharing_evidence_do_not_deadlock(url: str, key: Path) -> None:
    """Another node has inserted evidence X and not committed; this node appends new evidence Y; then the other
    node inserts Y too. Each new blob bumps one counter row, so if this node had inserted Y before waiting for the
    counter, the two would wait on each other and PostgreSQL would abort one (seen with four crawl workers)."""
    import hashlib

    import psycopg

    x, y = b"robots.txt body X", b"robots.txt body Y"
    insert = "INSERT INTO evidence(sha256, body) VALUES (%s, %s) ON CONFLICT DO NOTHING"
    with Registry.open(url, key=key) as reg:
        reg.checkpoint()
        outcome: list[object] = []
        with psycopg.connect(url) as other:
            other.execute("SET deadlock_timeout = '100ms'")
            other.execute(insert, (hashlib.sha256(x).digest(), x))  # the other node's open transaction
            appender = threading.Thread(target=lambda: outcome.append(_append_or_error(reg, [y])))
            appender.start()
            _wait_until_blocked(url, reg._store._conn.info.backend_pid)  # type: ignore[attr-defined]
            other.execute(insert, (hashlib.sha256(y).digest(), y))  # aborted here if the two deadlocked
            other.commit()
            appender.join(10)
        assert outcome == [[0]]
        assert reg.evidence(hashlib.sha256(y).hexdigest()) == y
        assert reg.stats()["evidence_blobs"] == 2 and reg._store.evidence_written() == 2  # type: ignore[attr-defined]


def _append_or_error(reg: Registry, evidence: list[bytes]) -> object:
    try:
        return reg.append(make_records(1), evidence=evidence)
    except RegistryError as exc:
        return exc


def _wait_until_blocked(url: str, pid: int) -> None:
    """Until backend ``pid`` waits for a lock (the appender has got as far as it can)."""
    import time

    import psycopg

    deadline = time.monotonic() + 10
    with psycopg.connect(url, autocommit=True) as probe:
        while time.monotonic() < deadline:
            if probe.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted", (pid,)).fetchone()[0]:  # type: ignore[index]
                return
            time.sleep(0.02)
    raise AssertionError("the appender never waited for the other node")


def test_appending_node_without_key_cannot_sign(url: str, key: Path, tmp_path: Path) -> None:
    with Registry.open(url, key=key) as reg:
        vkey = reg.vkey
        reg.checkpoint()
    with Registry.open(url, key=tmp_path / "missing.key") as node:
        assert node.vkey == vkey  # read from the registry, no private key needed
        assert node.append(make_records(3)) == [0, 1, 2]
        with pytest.raises(RegistryError, match="private key is not at"):
            node.checkpoint()
        # nor export: a bundle's manifest is signed with the log key (docs/completeness.md)
        from optout_registry.export import export_bundle

        with pytest.raises(RegistryError, match="manifest is signed with the log key"):
            export_bundle(node, "example.net", tmp_path / "bundle")
        assert not (tmp_path / "bundle").exists()
    assert not (tmp_path / "missing.key").exists()  # no second key was generated


def test_bad_input_sequences_nothing(url: str, key: Path) -> None:
    with Registry.open(url, key=key) as reg:
        reg.append(make_records(4))
        batch = make_records(3, 4)
        batch[1]["purposes"] = [1.5]
        with pytest.raises(InvalidRecord, match="record #1"):
            reg.append(batch)
        assert reg.stats()["entries"] == 4 and reg.append(make_records(1, 4)) == [4]


def test_triggers_refuse_rewrites(url: str, key: Path) -> None:
    import psycopg

    with Registry.open(url, key=key) as reg:
        reg.append(make_records(300))
        reg.checkpoint()
    with psycopg.connect(url, autocommit=True) as conn:
        for sql in (
            "UPDATE entry SET leaf = '\\x00' WHERE idx = 1",
            "DELETE FROM entry WHERE idx = 1",
            "TRUNCATE entry CASCADE",
            "DELETE FROM checkpoint",
            "UPDATE tile SET data = data WHERE level = 0 AND n = 0",  # full tile
            "UPDATE tile SET data = substring(data FROM 1 FOR 32) WHERE level = 0 AND n = 1",  # shrink partial
            "DELETE FROM tile",
        ):
            with pytest.raises(psycopg.errors.RaiseException):
                conn.execute(sql)


def test_missing_schema_and_unreachable_server() -> None:
    with pytest.raises(RegistryError, match="no schema"):
        Registry.open(f"{PG_BASE}?options=-csearch_path%3Dno_such_schema_x")
    with pytest.raises(RegistryError, match="cannot connect"):
        Registry.open("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2")


def test_opening_while_other_nodes_append_and_integrate_is_no_false_alarm(url: str, key: Path) -> None:
    """A fleet worker opening the registry runs the start-up self-check while other workers sequence and the
    integrator signs: the check must see one moment of the log, not counts from before and after a commit."""
    with Registry.open(url, key=key) as reg:
        reg.checkpoint()
    leaves = [canonical(r) for r in make_records(20)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def append_forever() -> None:
        with Registry.open(url, key=key) as node:
            while not stop.is_set():
                node._store.append(leaves, [], [], node._sign)

    def integrate_forever() -> None:
        with Registry.open(url, key=key) as node:
            while not stop.is_set():
                node.integrate(wait=True)

    threads = [threading.Thread(target=f) for f in (append_forever, append_forever, integrate_forever)]
    for t in threads:
        t.start()
    try:
        for _ in range(40):
            try:
                Registry.open(url, key=key).close()
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
