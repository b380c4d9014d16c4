"""``--out STATE``: what a batch check has answered, in SQLite, so a stopped run resumes with the same command.

One row per answered input row (its index and its answer line), committed every fraction of a second: a run
killed at any moment loses at most the rows answered since the last commit, and those are simply answered again
(their policy files come from the store, not from the origins). The policy files themselves are kept in the same
file, in the table ``optout crawl``'s persistent cache uses (middlewares/sitecache.py), unless ``--cache`` names
another store.

The file also remembers the command that made it (input, column, policy, mode): resuming with another command
would mix answers to different questions, so it is refused in one line.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class StateError(ValueError):
    """The state file cannot be used (one line for the user)."""


class BatchState:
    def __init__(self, path: str, command: dict[str, Any]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path), timeout=30, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self.db.execute("CREATE TABLE IF NOT EXISTS answer(row INTEGER PRIMARY KEY, line TEXT NOT NULL)")
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot use {path} as the state file: {exc}") from None
        wanted = json.dumps(command, sort_keys=True)
        found = self.get("command")
        if found is None:
            self.set("command", wanted)
        elif found != wanted:
            before = json.loads(found)
            differs = sorted(k for k in set(before) | set(command) if before.get(k) != command.get(k))
            raise StateError(
                f"{path} holds the answers of another command (it differs in: {', '.join(differs)}); "
                "run the same command to resume, or give another --out"
            )
        self.runs = int(self.get("runs") or 0) + 1
        self.set("runs", str(self.runs))
        self.answered = self.db.execute("SELECT COUNT(*) FROM answer").fetchone()[0]
        self._pending: list[tuple[int, str]] = []

    def get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def known(self, start: int, stop: int) -> dict[int, str]:
        """Answer lines of rows ``start`` to ``stop - 1`` from earlier runs."""
        if not self.answered:
            return {}
        rows = self.db.execute("SELECT row, line FROM answer WHERE row >= ? AND row < ?", (start, stop))
        return dict(rows.fetchall())

    def add(self, rows: Iterable[tuple[int, str]]) -> None:
        self._pending.extend(rows)

    def commit(self) -> int:
        """Write the answers added since the last commit in one transaction; returns how many."""
        pending, self._pending = self._pending, []
        if pending:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO answer VALUES (?, ?)", pending)
            self.db.execute("COMMIT")
        return len(pending)

    def lines(self) -> Iterator[tuple[int, str]]:
        yield from self.db.execute("SELECT row, line FROM answer ORDER BY row")

    def close(self) -> None:
        self.db.close()
