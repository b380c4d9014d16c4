"""Read queries both registry stores answer with the same SQL (only the parameter marker differs)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any


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

    def iter_evidence(self) -> Iterator[tuple[bytes, bytes]]:
        with self._lock:
            rows = self._conn.execute("SELECT sha256, body FROM evidence").fetchall()
        for sha, body in rows:
            yield bytes(sha), bytes(body)
