"""The JOBDIR of ``optout crawl``: a request journal in SQLite, so that a crawl stopped in any way (Ctrl-C, SIGTERM,
kill -9, a power cut) resumes with the same command, fetching again only what was in flight.

Scrapy's own JOBDIR cannot survive a kill: its queue files get their header, its pending requests their place on
disk and its spider state its file only when the spider closes, and a request popped from the queue is gone from
it even if the process dies before the page is stored. Here every request Scrapy schedules is a row of
``job/requests.db`` (``JournalScheduler`` replaces Scrapy's scheduler and dupefilter):

- a scheduled request is inserted at once, with its fingerprint (the dupefilter) and its pickled form;
- a request taken by the engine stays in the table until Scrapy has finished with it (downloaded and parsed, or
  refused, or failed, or redirected: it has left the engine's in-progress set), then its row is marked done;
- what the request produced for the output files is held back until then (``defer``), and written in one go;
- every ``OPTOUT_JOURNAL_INTERVAL`` seconds one transaction commits the done rows together with the sizes of the
  output files (flushed to disk first) and the spider's state, but only once the registry has written every
  record queued before those requests finished (``Recorder.handled``): a request is never marked done while its
  opt-out could still be lost.

On resume the output files are cut back to the committed sizes (which also drops a line torn by the kill) and the
rows not marked done are queued again, so each output line belongs to exactly one done row. Registry records
cannot be cut back; records of requests that were not done yet are found again from the committed
``registry_since`` index and are not written twice (``Recorder.resume``).

``RequestDiskQueue`` (crawler/diskqueue.py, importable from here as before) is Scrapy's ``PickleLifoDiskQueue`` for
plain ``scrapy crawl`` with a JOBDIR: same files, cheaper per request. Both serialise requests through
``CallbackNames``.
"""

from __future__ import annotations

import json
import logging
import pickle
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from scrapy.core.scheduler import BaseScheduler
from scrapy.utils.job import job_dir
from scrapy.utils.request import request_from_dict

from crawler.diskqueue import CallbackNames, RequestDiskQueue  # RequestDiskQueue: importable from here as before
from middlewares.defaults import default
from middlewares.percrawler import PerCrawler
from middlewares.recording import Recorder
from middlewares.scrapyinternals import in_progress as in_progress_of
from middlewares.state import OptOutState

__all__ = [
    "FORMAT",
    "JOURNAL",
    "Journal",
    "JournalError",
    "JournalScheduler",
    "Outputs",
    "RequestDiskQueue",
    "check_journal",
    "committed_positions",
    "register_outputs",
]

logger = logging.getLogger(__name__)


class Outputs(Protocol):
    """What the journal commits beside the requests: the sizes of the run's output files (crawler.runfiles.RunFiles)."""

    def positions(self) -> dict[str, int] | None: ...


_OUTPUTS: PerCrawler[Outputs] = PerCrawler()
_JOURNALS: PerCrawler[JournalScheduler] = PerCrawler()  # the journal of each running crawl


def register_outputs(crawler: Any, files: Outputs) -> None:
    """Have the crawler's journal commit ``files``' sizes with the requests they cover (the journal cannot import
    crawler.crawl, which imports it)."""
    _OUTPUTS.set(crawler, files)


JOURNAL = "requests.db"
FORMAT = "optout-journal/v1"

Action = Callable[[], bool]


# -- the journal ----------------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS request (
    id INTEGER PRIMARY KEY,   -- order of arrival
    fp BLOB NOT NULL,         -- request fingerprint: the dupefilter is every row
    slot TEXT NOT NULL,       -- download slot, for the order of the queue
    priority INTEGER NOT NULL,
    start INTEGER NOT NULL,   -- 1 for a start request (first in, first out; after the others of its priority)
    data BLOB                 -- the pickled request; NULL once done
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


class JournalError(Exception):
    """The journal cannot be used (damaged, or written by something else); one line for the user."""


class Journal:
    """The SQLite side of the journal: rows of requests and a few committed facts, one writer (the reactor
    thread). WAL with ``synchronous=NORMAL``: a commit survives the process being killed; after a power cut the
    database may come back at an earlier commit, which is as consistent as the later one (the output files were
    flushed before either)."""

    def __init__(self, path: Path | str) -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(str(path), timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            found = self.get("format")
            if found is None:
                self.put("format", FORMAT.encode())
                self.db.commit()
            elif found != FORMAT.encode():
                raise JournalError(f"{path} is not an optout crawl journal ({found[:40]!r})")
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{path} is damaged ({exc})") from None

    def get(self, key: str) -> bytes | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def put(self, key: str, value: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def add(self, fp: bytes, slot: str, priority: int, start: bool, data: bytes) -> int:
        cursor = self.db.execute(
            "INSERT INTO request (fp, slot, priority, start, data) VALUES (?, ?, ?, ?, ?)",
            (fp, slot, priority, int(start), data),
        )
        return int(cursor.lastrowid or 0)

    def data(self, row: int) -> bytes:
        found = self.db.execute("SELECT data FROM request WHERE id = ?", (row,)).fetchone()
        if found is None or found[0] is None:
            raise JournalError(f"request {row} of {self.path} is missing")
        return bytes(found[0])

    def finish(self, rows: list[int]) -> None:
        # The fingerprint stays (the dupefilter); what only a pending request needs goes.
        self.db.executemany("UPDATE request SET data = NULL, slot = '' WHERE id = ?", ((r,) for r in rows))

    def pending(self) -> Iterator[tuple[int, str, int, bool]]:
        """(row, slot, priority, start) of every request not done, oldest first."""
        query = "SELECT id, slot, priority, start FROM request WHERE data IS NOT NULL ORDER BY id"
        for row, slot, priority, start in self.db.execute(query):
            yield row, slot, priority, bool(start)

    def fingerprints(self) -> Iterator[bytes]:
        for (fp,) in self.db.execute("SELECT fp FROM request"):
            yield bytes(fp)

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> None:
        self.db.close()


def check_journal(path: Path) -> str | None:
    """Why ``path`` cannot be resumed from, or None (also None when there is no journal yet)."""
    if not path.exists():
        return None
    try:
        journal = Journal(path)
    except JournalError as exc:
        return str(exc)
    try:
        problem = journal.db.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        problem = str(exc)
    finally:
        journal.close()
    return None if problem == "ok" else f"{path} is damaged ({problem})"


def committed_positions(jobdir: str | Path | None) -> dict[str, int] | None:
    """The output file sizes of the journal's last commit, or None without a journal. Read before anything is
    appended to the files, so that lines written after that commit can be cut off."""
    if not jobdir or not (Path(jobdir) / JOURNAL).exists():
        return None
    journal = Journal(Path(jobdir) / JOURNAL)
    try:
        value = journal.get("positions")
    finally:
        journal.close()
    return None if value is None else {str(k): int(v) for k, v in json.loads(value).items()}


# -- the scheduler --------------------------------------------------------------------------------------------


@dataclass
class _SlotQueue:
    """One download slot's pending rows: per priority a stack (newest first, Scrapy's depth-first order) and a
    queue of start requests (oldest first, after the others of the same priority), as Scrapy's scheduler does."""

    stacks: dict[int, list[int]] = field(default_factory=dict)
    starts: dict[int, deque[int]] = field(default_factory=dict)

    def push(self, row: int, priority: int, start: bool) -> None:
        if start:
            self.starts.setdefault(priority, deque()).append(row)
        else:
            self.stacks.setdefault(priority, []).append(row)

    def pop(self) -> int:
        best = max(max(self.stacks, default=-(2**63)), max(self.starts, default=-(2**63)))
        if best in self.stacks:
            stack = self.stacks[best]
            row = stack.pop()
            if not stack:
                del self.stacks[best]
            return row
        queue = self.starts[best]
        row = queue.popleft()
        if not queue:
            del self.starts[best]
        return row

    def __bool__(self) -> bool:
        return bool(self.stacks or self.starts)


@dataclass
class _Taken:
    """A request the engine has: its row, the registry index its records cannot come before, and the output
    writes waiting for it to finish."""

    row: int
    since: int
    actions: list[Action] = field(default_factory=list)
    finished: bool = False


@dataclass
class _Epoch:
    """What one tick found finished, committed once the registry has handled ``mark`` records."""

    rows: list[int]
    positions: dict[str, int] | None
    state: bytes
    mark: int


class JournalScheduler(BaseScheduler):
    """Scrapy's scheduler interface over the journal (see the module docstring). The order is Scrapy's default
    one (``DownloaderAwarePriorityQueue`` over LIFO queues): the download slot with the fewest active downloads
    first, taking turns among equals; within a slot the highest priority, newest first, start requests last and
    in their own order. Only row ids are kept in memory; the requests stay on disk until they are taken."""

    def __init__(self, crawler: Any, jobdir: str | None, interval: float, clock: Any = None) -> None:
        self.crawler = crawler
        self.clock = clock  # what runs the commits (twisted.internet.task.Clock in tests); None: the reactor
        self.stats = crawler.stats
        self.interval = interval
        self.path = Path(jobdir) / JOURNAL if jobdir else None
        self.journal: Journal | None = None
        self.spider: Any = None
        self._codec = CallbackNames()
        self._slots: dict[str, _SlotQueue] = {}
        self._queued = 0
        self._memory: list[Any] = []  # requests that cannot be pickled: kept in memory, lost if killed (as Scrapy)
        self._seen: set[bytes] = set()
        self._taken: dict[Any, _Taken] = {}
        self._epochs: deque[_Epoch] = deque()
        self._since = 0
        self._last_slot: str | None = None
        self._logged_duplicate = False
        self._loop: Any = None
        self._frozen = False  # the output files failed: nothing more is marked done

    @staticmethod
    def of(crawler: Any) -> JournalScheduler | None:
        """The crawler's journal once it is open (None when the crawl has none: ``scrapy crawl``, a fleet worker).
        Not ``crawler.engine.scheduler`` and isinstance: Scrapy's BaseScheduler metaclass makes every scheduler an
        instance of every scheduler class."""
        return _JOURNALS.get(crawler)

    @classmethod
    def from_crawler(cls, crawler: Any) -> JournalScheduler:
        return cls(
            crawler,
            job_dir(crawler.settings),
            crawler.settings.getfloat("OPTOUT_JOURNAL_INTERVAL", default("OPTOUT_JOURNAL_INTERVAL")),
        )

    # -- opening and closing ----------------------------------------------------------------------------------

    def open(self, spider: Any) -> None:
        self.spider = spider
        resuming = self.path is not None and self.path.exists()
        self.journal = Journal(self.path if self.path is not None else ":memory:")
        if resuming:
            self._restore(spider)
        else:
            spider.state = getattr(spider, "state", {})
            self._since = self._registry_position()
            self.journal.put("registry_since", str(self._since).encode())
            self._commit_positions(self._positions() or {})
        _JOURNALS.set(self.crawler, self)
        self._start_ticking()

    def _restore(self, spider: Any) -> None:
        """Back to the last commit: the dupefilter, the requests not done, the spider's state (Scrapy's SpiderState
        extension is off), and the registry index from which records may come back."""
        assert self.journal is not None
        self._seen = set(self.journal.fingerprints())
        for row, slot, priority, start in self.journal.pending():
            self._slots.setdefault(slot, _SlotQueue()).push(row, priority, start)
            self._queued += 1
        state = self.journal.get("state")
        spider.state = pickle.loads(state) if state is not None else getattr(spider, "state", {})
        self._since = int(self.journal.get("registry_since") or b"0")
        recorder = self._recorder()
        if recorder is not None:
            recorder.resume(self._since)
        logger.info("Resuming crawl (%d requests scheduled)", self._queued)

    def _start_ticking(self) -> None:
        from twisted.internet import task

        self._loop = task.LoopingCall(self._tick)
        if self.clock is not None:
            self._loop.clock = self.clock
        self._loop.start(self.interval, now=False).addErrback(
            lambda f: logger.error("optout: the request journal stopped: %s", f.getErrorMessage())
        )

    def close(self, reason: str) -> Any:
        """Commit what finished; Scrapy calls this once the engine has nothing in progress. Waits (a little) for
        the registry to write the last records, so that a graceful stop leaves nothing to fetch again."""
        from scrapy.utils.defer import deferred_from_coro

        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self.journal is None:
            return None
        self._tick()
        return deferred_from_coro(self._settle())

    async def _settle(self) -> None:
        from scrapy.utils.defer import maybe_deferred_to_future
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        deadline = time.monotonic() + max(10.0, 4 * self.interval)
        while self._epochs and time.monotonic() < deadline:
            await maybe_deferred_to_future(deferLater(reactor, 0.05))
            self._commit_ready()
        if self._epochs:
            waiting = sum(len(e.rows) for e in self._epochs)
            logger.warning("optout: %d finished requests still wait for their registry records", waiting)
        if self._memory:
            logger.warning("optout: %d requests that cannot be serialised are not kept for a resume", len(self._memory))
        assert self.journal is not None
        self.journal.close()
        self.journal = None

    # -- Scrapy's scheduler interface -------------------------------------------------------------------------

    def has_pending_requests(self) -> bool:
        return bool(self._queued or self._memory)

    def __len__(self) -> int:
        return self._queued + len(self._memory)

    def enqueue_request(self, request: Any) -> bool:
        assert self.journal is not None
        fp = self.crawler.request_fingerprinter.fingerprint(request)
        if not request.dont_filter and fp in self._seen:
            self._duplicate(request)
            return False
        self._seen.add(fp)
        self.stats.inc_value("scheduler/enqueued")
        try:
            data = self._codec.dumps(request, self.spider)
        except ValueError as exc:
            logger.debug("optout: cannot serialise %s (%s): kept in memory only", request, exc)
            self.stats.inc_value("scheduler/unserializable")
            self.stats.inc_value("scheduler/enqueued/memory")
            self._memory.append(request)
            return True
        slot = self.crawler.engine.downloader.get_slot_key(request)
        start = bool(request.meta.get("is_start_request"))
        row = self.journal.add(fp, slot, request.priority, start, data)
        self._slots.setdefault(slot, _SlotQueue()).push(row, request.priority, start)
        self._queued += 1
        self.stats.inc_value("scheduler/enqueued/disk")
        return True

    def next_request(self) -> Any | None:
        if self._memory:
            self.stats.inc_value("scheduler/dequeued/memory")
            self.stats.inc_value("scheduler/dequeued")
            return self._memory.pop()
        if not self._queued:
            return None
        assert self.journal is not None
        slot = self._next_slot()
        queue = self._slots[slot]
        row = queue.pop()
        if not queue:
            del self._slots[slot]
        self._queued -= 1
        request = request_from_dict(pickle.loads(self.journal.data(row)), spider=self.spider)
        self._taken[request] = _Taken(row, self._registry_position())
        self.stats.inc_value("scheduler/dequeued/disk")
        self.stats.inc_value("scheduler/dequeued")
        return request

    def _next_slot(self) -> str:
        """DownloaderAwarePriorityQueue's choice: fewest active downloads, then the next name after the last."""
        slots = self.crawler.engine.downloader.slots
        last = self._last_slot

        def rank(name: str) -> tuple[int, bool, str]:
            slot = slots.get(name)
            return (len(slot.active) if slot is not None else 0, last is not None and name <= last, name)

        self._last_slot = min(self._slots, key=rank) if len(self._slots) > 1 else next(iter(self._slots))
        return self._last_slot

    def _duplicate(self, request: Any) -> None:
        self.stats.inc_value("dupefilter/filtered")
        if not self._logged_duplicate:
            logger.debug("Filtered duplicate request: %s - no more duplicates will be shown", request)
            self._logged_duplicate = True

    # -- finishing requests -----------------------------------------------------------------------------------

    def defer(self, request: Any, action: Action) -> bool:
        """Run ``action`` (write the request's output; True if it was written) once Scrapy has finished with the
        request. False if the request is not one this journal holds: then the caller writes at once."""
        taken = self._taken.get(request)
        if taken is None or taken.finished:
            return False
        taken.actions.append(action)
        return True

    def _tick(self) -> None:
        """Find the requests Scrapy has finished with, write their output, and commit what the registry allows."""
        in_progress = in_progress_of(self.crawler.engine)
        rows = []
        for request, taken in self._taken.items():
            if taken.finished or request in in_progress:
                continue
            taken.finished = True
            written = all([action() for action in taken.actions])  # every action runs, even after a failure
            taken.actions.clear()
            rows.append(taken.row)
            self._frozen = self._frozen or not written
        positions = None if self._frozen else self._positions()
        if positions is None:
            # An output file failed: lines may be half there, so the committed sizes never move past them again
            # and nothing more is marked done. A resume cuts the files back and fetches the rest again.
            self._frozen, rows = True, []
        recorder = self._recorder()
        state = pickle.dumps(getattr(self.spider, "state", {}), protocol=4)
        self._epochs.append(_Epoch(rows, positions, state, recorder.queued if recorder is not None else 0))
        self._commit_ready()

    def _commit_ready(self) -> None:
        """One transaction: the rows of every epoch whose records are written, the newest such epoch's file sizes
        and state, and the index from which a resume looks for records of requests still open."""
        assert self.journal is not None
        recorder = self._recorder()
        handled = recorder.handled if recorder is not None else 0
        done: set[int] = set()
        latest = None
        while self._epochs and self._epochs[0].mark <= handled:
            latest = self._epochs.popleft()
            self.journal.finish(latest.rows)
            done.update(latest.rows)
        if latest is not None and latest.positions is not None:
            self._commit_positions(latest.positions)
            self.journal.put("state", latest.state)
        if done:
            self._taken = {r: t for r, t in self._taken.items() if t.row not in done}
        self._since = min((t.since for t in self._taken.values()), default=self._registry_position())
        self.journal.put("registry_since", str(self._since).encode())
        self.journal.commit()

    def _commit_positions(self, positions: dict[str, int]) -> None:
        assert self.journal is not None
        self.journal.put("positions", json.dumps(positions, sort_keys=True).encode())
        self.journal.commit()

    # -- the other parties ------------------------------------------------------------------------------------

    def _positions(self) -> dict[str, int] | None:
        """The output files' sizes, flushed to disk (crawler.runfiles.RunFiles.positions); None once they failed."""
        files = _OUTPUTS.get(self.crawler)
        return {} if files is None else files.positions()

    def _recorder(self) -> Recorder | None:
        state = OptOutState.current(self.crawler)
        return state.recorder if state is not None else None

    def _registry_position(self) -> int:
        """A registry index no record written from now on can come before."""
        recorder = self._recorder()
        position = recorder.next_index if recorder is not None else None
        return self._since if position is None else max(position, self._since)
