"""Crash tests: a writer process appends in batches and prints what was acknowledged; we ``kill -9`` it (at a random
moment, or deterministically between INSERT and COMMIT), reopen, and check that no acknowledged record is lost,
indices stay contiguous and the last signed root is reproduced from the stored tiles."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from optout_registry.record import canonical
from optout_registry.registry import Registry
from tests.support.registry import make_record, pg_schema_url

ROOT = Path(__file__).resolve().parent.parent

# argv: url key batch mode. Mode "append" appends batches forever, "integrate" calls checkpoint() forever; with
# ":K" appended the process SIGKILLs itself at its K-th signature, i.e. inside a transaction (after the entries /
# tiles were written, before COMMIT): SQLite signs in every append batch, PostgreSQL only when integrating.
WRITER = r"""
import os, signal, sys, time
from optout_registry.registry import Registry
from tests.support.registry import make_records
url, key, batch, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
reg = Registry.open(url, key=key, batch_size=batch)
mode, _, limit = mode.partition(":")
if limit:
    calls = [0]; sign = reg._sign
    def dying_sign(size, root):
        calls[0] += 1
        if calls[0] >= int(limit):
            os.kill(os.getpid(), signal.SIGKILL)
        return sign(size, root)
    reg._sign = dying_sign
if mode == "integrate":
    while True:
        reg.checkpoint()
        latest = reg.latest()
        print("cp", latest[0], latest[1].hex(), flush=True)
        time.sleep(0.01)
nxt = reg.stats()["entries"]
while True:
    got = reg.append(make_records(batch, nxt))
    assert got == list(range(nxt, nxt + batch)), (got[:3], nxt)
    nxt += batch
    latest = reg.latest() or (-1, b"")  # PostgreSQL: appends are not signed until integrated
    print("ack", got[-1], latest[0], latest[1].hex() or "-", flush=True)
"""


def _spawn(url: str, key: Path, batch: int, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(key), str(batch), mode],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_until(proc: subprocess.Popen[str], prefix: str, count: int, timeout: float = 30) -> list[list[str]]:
    """Lines starting with ``prefix`` until ``count`` were seen (or the process ended)."""
    assert proc.stdout is not None
    seen: list[list[str]] = []
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(prefix):
            seen.append(line.split())
    return seen


def _kill(proc: subprocess.Popen[str]) -> list[list[str]]:
    """SIGKILL, then collect any acknowledgements printed before death (they count: the caller saw them)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, err[-2000:])
    return [line.split() for line in out.splitlines() if line.strip()]


def _assert_recovered(url: str, key: Path, acks: list[list[str]], *, full: bool = True) -> int:
    """Reopen (start-up self-check runs), integrate, and check every acknowledged record and signed root."""
    with Registry.open(url, key=key) as reg:
        reg.checkpoint()  # PostgreSQL: integrate whatever was sequenced; SQLite: no-op
        size = reg.size
        last_acked = max((int(a[1]) for a in acks if a[0] == "ack"), default=-1)
        assert size >= last_acked + 1, (size, last_acked)
        assert reg.stats()["entries"] == size and reg.stats()["pending"] == 0
        for i in sorted({0, last_acked, *random.sample(range(last_acked + 1), min(50, last_acked + 1))} - {-1}):
            assert reg.leaf(i) == canonical(make_record(i)), i
        signed = {int(a[2] if a[0] == "ack" else a[1]): a[-1] for a in acks}
        for signed_size, signed_root in signed.items():  # every root a process saw signed is still the one
            if signed_size < 0:
                continue
            row = reg._store.checkpoint_at(signed_size)
            assert row is not None and row[1].hex() == signed_root
            assert reg.reader(signed_size).root().hex() == signed_root
        report = reg.self_check(full=full)
        assert report.ok, report.problems
        return size


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "r.db")
    else:
        yield from pg_schema_url()


def test_kill_writer_at_random_moments(url: str, tmp_path: Path) -> None:
    key = tmp_path / "log.key"
    rng = random.Random(1234)
    acks: list[list[str]] = []
    size = 0
    for round_ in range(3):
        proc = _spawn(url, key, 100, "append")
        # PostgreSQL: an integrator runs alongside and dies at the same moment.
        integrator = _spawn(url, key, 100, "integrate") if url.startswith("postgresql") else None
        acks += _read_until(proc, "ack", rng.randint(2, 4))
        time.sleep(rng.uniform(0, 0.03))  # land somewhere inside the next batch
        acks += [a for a in _kill(proc) if a[0] == "ack"]
        if integrator is not None:
            acks += [a for a in _kill(integrator) if a[0] == "cp"]
        assert acks, "writer never acknowledged anything"
        size = _assert_recovered(url, key, acks, full=round_ == 2)
    with Registry.open(url, key=key) as reg:  # and the log carries on where it stopped
        assert reg.append([make_record(size)]) == [size]


def test_kill_writer_between_insert_and_commit(url: str, tmp_path: Path) -> None:
    key = tmp_path / "log.key"
    proc = _spawn(url, key, 150, "append:3")
    # SQLite signs inside each batch's transaction: batches 1-2 commit, batch 3 dies holding its write lock.
    # PostgreSQL sequencing never signs, so this writer just runs; it is killed below like any other.
    acks = _read_until(proc, "ack", 2)
    acks += [a for a in _kill(proc) if a[0] == "ack"]
    size = _assert_recovered(url, key, acks)
    if url.startswith("postgresql"):
        assert size >= 300
    else:
        assert size == 300  # the third batch was never committed, and nothing of it remains


def test_kill_integrator_mid_transaction(tmp_path: Path) -> None:
    """PostgreSQL: the integrator dies while holding the advisory lock inside its transaction (after writing tiles,
    while signing). The lock dies with the session, the transaction rolls back, the next integrator takes over."""
    gen = pg_schema_url()
    url = next(gen)
    try:
        key = tmp_path / "log.key"
        with Registry.open(url, key=key) as reg:
            reg.append([make_record(i) for i in range(700)])
            reg.checkpoint()
            reg.append([make_record(i) for i in range(700, 1000)])
        proc = _spawn(url, key, 100, "integrate:1")
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        with Registry.open(url, key=key) as reg:
            assert reg.size == 700  # the killed integration left no trace
            assert reg.stats()["pending"] == 300
        _assert_recovered(url, key, [])
    finally:
        for _ in gen:
            pass
