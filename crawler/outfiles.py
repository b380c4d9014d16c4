"""The output folder of a crawl: the names of its files and the primitives that write them so that a kill,
a full disk or a power cut leaves whole lines and whole files (JSON Lines cut back to the last whole line, files
replaced by rename). Used by the crawl, the report, the disclosure, the key directory and ``optout summary``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


ITEMS = "items.jsonl"
DECISIONS = "decisions.jsonl"
REGISTRY = "registry.db"
CACHE = "policy-cache.db"
JOB = "job"
LOG = "crawl.log"
RUN = "run.json"
SUMMARY = "summary.json"
REPORT = "report.html"
EVIDENCE = "evidence"
SUMMARY_FORMAT = "optout-crawl-summary/v1"


def utc(ts: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if ts is None else ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` whole or not at all: a full disk leaves the previous version in place."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# json.dumps(obj, ensure_ascii=False, default=str) without building an encoder for every line
_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode


class JsonLines:
    """An append-only JSON Lines file, written straight to the file (no buffer to lose) one whole line at a
    time. A write that fails half-way (full disk) is cut back to the last whole line before the error is raised,
    and a line cut short by a crash is removed when the file is opened again: every line in it is always whole."""

    def __init__(self, path: Path) -> None:
        self.path = path
        repair_tail(path)
        self.file = path.open("ab", buffering=0)
        self.offset = self.file.seek(0, os.SEEK_END)
        self.synced = self.offset

    def sync(self) -> int:
        """Flush what was written to the disk (a power cut keeps it) and return the file's size."""
        if self.synced != self.offset:
            os.fdatasync(self.file.fileno())
            self.synced = self.offset
        return self.offset

    def write(self, obj: Any) -> None:
        data = memoryview((_encode(obj) + "\n").encode("utf-8"))
        start = self.offset
        try:
            while data:
                written = self.file.write(data) or 0
                data = data[written:]
                self.offset += written
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self.file.fileno(), start)
                self.offset = start
            raise

    def close(self) -> None:
        try:
            os.fsync(self.file.fileno())
        finally:
            self.file.close()


def cut_back(path: Path, size: int) -> None:
    """Cut a file back to the size the journal committed: what follows belongs to requests that are fetched again.
    A file shorter than that lost lines the journal counts as written; that is reported, and the crawl goes on."""
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        actual = 0
    if actual > size:
        with path.open("rb+") as f:
            f.truncate(size)
    elif actual < size:
        logger.error("optout crawl: %s is %d bytes, shorter than the %d its journal committed", path, actual, size)


def repair_tail(path: Path) -> None:
    """Cut a trailing partial line (no newline at the end) off a JSON Lines file."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        return
    with path.open("rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        pos = size
        while pos > 0:
            step = min(65536, pos)
            f.seek(pos - step)
            chunk = f.read(step)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                f.truncate(pos - step + cut + 1)
                return
            pos -= step
        f.truncate(0)


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue
    except FileNotFoundError:
        return


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0
