"""One ``optout check --urls`` run: read the input in chunks, hand rows to the concurrent engine (crawler/batch.py),
write the answers in input order (or as they come with ``--unordered``), keep them in ``--out STATE``, record
reservations in ``--registry``, show progress on a terminal and a summary at the end.

Memory stays bounded: at most ``window`` rows are between the reader and the outputs at any time; when an origin
is slow, reading waits for it rather than piling rows up.
"""

from __future__ import annotations

import bisect
import json
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue
from typing import IO, Any

from crawler.batch import Answer, Pool, Scheduler, SharedChecker, SyncStore, checked, fast_origin, widen_pools
from crawler.batchio import Chunk, InputError, Note, Reader, Writer
from crawler.batchstate import BatchState
from crawler.check import UsageError
from middlewares.engine import origin_of
from middlewares.policy import Policy
from middlewares.protocols.blocklist import Blocklist

COMMIT_EVERY = 0.5  # seconds between two commits of --out STATE
_encode = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(..., ensure_ascii=False) without a new encoder


@dataclass
class BatchOptions:
    path: str
    column: str = "url"
    format: str | None = None
    site_level: bool = False
    annotate: str | None = None
    keep_allowed: str | None = None
    state: str | None = None
    cache: str | None = None
    registry: str | None = None
    operator: str = "localhost"
    unordered: bool = False
    concurrency: int = 64
    per_origin: int = 1
    timeout: float = 10.0
    json_lines: bool = True  # answers on stdout
    window: int = 50_000  # rows between reading and writing, at most

    def command(self, policy: Policy) -> dict[str, Any]:
        """What must not change between a run and its resumption."""
        return {
            "input": self.path,
            "column": self.column,
            "format": self.format,
            "site_level": self.site_level,
            "purpose": policy.purpose.value,
            "agent": policy.agent,
            "mode": policy.mode.value,
            "disabled": sorted(policy.disabled),
            "cross_token": policy.cross_token,
        }


@dataclass
class Summary:
    rows: int = 0
    urls: int = 0
    allowed: int = 0
    reserved: int = 0
    errors: int = 0
    resumed: int = 0  # answers taken from --out STATE
    by_protocol: Counter[str] = field(default_factory=Counter)
    origins: set[str] = field(default_factory=set)
    requests: int = 0
    from_store: int = 0
    records: int = 0
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    interrupted: bool = False

    def rate(self) -> float:
        return self.rows / max(self.seconds or time.monotonic() - self.started, 1e-6)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "urls": self.urls,
            "origins": len(self.origins),
            "allowed": self.allowed,
            "reserved": self.reserved,
            "reserved_by_protocol": dict(self.by_protocol.most_common()),
            "errors": self.errors,
            "resumed": self.resumed,
            "requests": self.requests,
            "policy_files_from_cache": self.from_store,
            "records": self.records,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rate(), 1),
            "interrupted": self.interrupted,
        }


def note_of(answer: dict[str, Any]) -> Note:
    """The three columns --annotate adds, from an answer line."""
    reservations = answer.get("reservations") or []
    protocols = list(dict.fromkeys(str(r.get("protocol")) for r in reservations))
    if answer.get("allowed"):
        reason = "allowed at site level; page-level signals not evaluated" if answer.get("not_evaluated") else ""
    elif reservations:
        first = reservations[0]
        reason = f"{first.get('protocol')}: {first.get('rule')}"
        if len(reservations) > 1:
            reason += f" (and {len(reservations) - 1} more)"
    else:
        errors = answer.get("errors") or ["not checked"]
        reason = str(errors[0])
    return Note(bool(answer.get("allowed")), protocols, reason[:500])


class Progress:
    """A bar with rate and ETA on a terminal (stderr); nothing elsewhere."""

    def __init__(self, stream: IO[str], total: int | None) -> None:
        self.bar: Any = None
        if not stream.isatty():
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("checking"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:,.0f} URLs/s · {task.fields[reserved]:,} reserved"),
            TimeRemainingColumn(),
            console=Console(file=stream),
            transient=True,
        )
        self.task = self.bar.add_task("check", total=total, rate=0.0, reserved=0)
        self.bar.start()
        self.last = 0.0

    def update(self, summary: Summary, force: bool = False) -> None:
        if self.bar is None:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.2:
            return
        self.last = now
        self.bar.update(self.task, completed=summary.rows, rate=summary.rate(), reserved=summary.reserved)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def open_recorder(registry: str, state: BatchState | None, policy: Policy, operator: str) -> Any:
    """The registry recorder of a resumable run (``optout check --urls --out``, ``optout recheck``): a run that
    resumes ``state`` skips the records its killed predecessor already appended for the rows it answers again."""
    from middlewares.recording import Recorder

    if state is not None and state.get("registry_index") is not None:
        # A killed run signed no checkpoint: cover what it appended, so the records it wrote for rows it had
        # not committed are seen (and not written twice) when those rows are answered again.
        from optout_registry import Registry

        try:
            opened = Registry.open(registry)
            try:
                opened.checkpoint()
            finally:
                opened.close()
        except Exception as exc:
            raise InputError(f"cannot open registry {registry}: {exc}") from None
    recorder = Recorder(registry, agent=policy.agent, operator=operator)
    deadline = time.monotonic() + 60
    while recorder.next_index is None and not recorder.errors and time.monotonic() < deadline:
        time.sleep(0.01)
    if recorder.errors:
        recorder.close()
        raise InputError(recorder.errors[0])
    if state is not None:
        since = state.get("registry_index")
        if since is not None:  # records after it may belong to rows this run answers again
            recorder.resume(int(since))
        else:
            state.set("registry_index", str(recorder.next_index))
    return recorder


def wait_recorded(recorder: Any) -> None:
    """Wait (a minute at most) until the records queued so far are written: a row is committed to the state only
    once its records are in the registry."""
    target = recorder.queued
    deadline = time.monotonic() + 60
    while recorder.handled < target and time.monotonic() < deadline:
        time.sleep(0.005)


class BatchRun:
    def __init__(
        self,
        opts: BatchOptions,
        policy: Policy,
        *,
        user_agent: str,
        blocklist: Blocklist | None = None,
        out: IO[str] | None = None,
        err: IO[str] | None = None,
    ) -> None:
        from crawler.fetcher import RequestsFetcher

        self.opts = opts
        self.policy = policy
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.summary = Summary()
        self.reader = Reader(opts.path, opts.format, opts.column)
        self.writers = [
            Writer(path, self.reader, annotate=annotate)
            for path, annotate in ((opts.annotate, True), (opts.keep_allowed, False))
            if path
        ]
        self.state = BatchState(opts.state, opts.command(policy)) if opts.state else None
        self.store = self._store()
        self.fetcher = RequestsFetcher(user_agent, timeout=opts.timeout)
        widen_pools(self.fetcher, max(256, 4 * opts.concurrency), opts.per_origin)
        self.checker = SharedChecker(policy, self.fetcher, blocklist, per_origin=opts.per_origin, store=self.store)
        self.recorder = self._recorder()
        self.results: SimpleQueue[tuple[int, Answer | BaseException]] = SimpleQueue()
        self.scheduler = Scheduler(opts.per_origin, take_all=opts.site_level)
        answer = self.checker.site_level if opts.site_level else self.checker.fetched
        self.answer: Callable[[str, str], Answer] = answer
        self.pool = Pool(
            self.checker, self.scheduler, answer, lambda row, a: self.results.put((row, a)), opts.concurrency
        )
        self.outstanding = 0  # rows with the workers
        self.chunks: deque[Chunk] = deque()
        self.starts: list[int] = []  # first row of each chunk in self.chunks
        self.head = 0  # index in self.starts of self.chunks[0]
        self.missing: dict[int, int] = {}  # chunk start -> rows not answered yet
        self.done: dict[int, tuple[str, Note | None]] = {}
        self.buffer: list[str] = []
        self.bad_rows_shown = 0
        self.last_commit = time.monotonic()

    def _store(self) -> SyncStore | None:
        url = self.opts.cache or (f"sqlite:///{self.opts.state}" if self.opts.state else None)
        if not url:
            return None
        from middlewares.sitecache import open_store  # imports Scrapy and Twisted: only when there is a store

        try:
            store = open_store(url)
        except ValueError as exc:
            raise InputError(str(exc).replace("OPTOUT_CACHE_URL", "--cache")) from None
        return SyncStore(store) if store is not None else None

    def _recorder(self) -> Any:
        if not self.opts.registry:
            return None
        return open_recorder(self.opts.registry, self.state, self.policy, self.opts.operator)

    # -- the run ------------------------------------------------------------------------------------------------

    def run(self) -> Summary:
        summary = self.summary
        progress = Progress(self.err, self.reader.estimate_rows() if self.err.isatty() else None)
        complete = False
        try:
            for chunk in self.reader.chunks():
                self._submit(chunk)
                self._drain(block=False)
                while self.outstanding and self._held() > self.opts.window:
                    self._drain(block=True)
                    self._maybe_commit()
                progress.update(summary)
                self._maybe_commit()
            self.scheduler.close()
            while self.outstanding:
                self._drain(block=True)
                progress.update(summary)
                self._maybe_commit()
            self._emit()
            complete = True
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            progress.stop()
            self.scheduler.close()
            self._finish(complete)
        return summary

    def _held(self) -> int:
        return sum(self.missing.values()) + len(self.done)

    def _submit(self, chunk: Chunk) -> None:
        opts, checker, summary = self.opts, self.checker, self.summary
        known = self.state.known(chunk.start, chunk.start + len(chunk)) if self.state is not None else {}
        self.chunks.append(chunk)
        self.starts.append(chunk.start)
        self.missing[chunk.start] = len(chunk)
        sites = checker.sites
        for i, (raw, problem) in enumerate(zip(chunk.urls, chunk.problems, strict=True)):
            row = chunk.start + i
            line = known.get(row)
            if line is not None:
                summary.resumed += 1
                data = json.loads(line)
                bad = not data["url"] or any(str(e).startswith(f"row {row}: ") for e in data["errors"])
                summary.errors += bad
                self._finish_row(row, data, line, "" if bad else origin_of(data["url"]))
                continue
            if problem is None:
                assert raw is not None
                try:
                    url, origin = checked(raw)
                except UsageError as exc:
                    problem = str(exc)
            if problem is not None:
                self._bad_row(row, raw, problem)
                continue
            if opts.site_level and origin in sites:  # pure computation from here on
                self._answered(row, origin, checker.site_level(url, origin))
                continue
            self.scheduler.add(origin, row, url)
            self.outstanding += 1

    def _drain(self, block: bool) -> None:
        try:
            item = self.results.get(timeout=0.1) if block else self.results.get_nowait()
        except Empty:
            self._emit()  # rows answered by this thread (site level) are written out all the same
            return
        while True:
            row, answer = item
            self.outstanding -= 1
            if isinstance(answer, BaseException):
                self._bad_row(row, self._url_of(row), f"internal error: {type(answer).__name__}: {answer}")
            else:
                self._answered(row, fast_origin(answer.decision.url), answer)
            try:
                item = self.results.get_nowait()
            except Empty:
                break
        self._emit()

    def _url_of(self, row: int) -> str | None:
        at = bisect.bisect_right(self.starts, row, self.head) - 1
        chunk = self.chunks[at - self.head]
        return chunk.urls[row - chunk.start]

    def _answered(self, row: int, origin: str, answer: Answer) -> None:
        decision = answer.decision
        data = decision.to_json()
        data["row"] = row
        if answer.not_evaluated is not None and self.opts.site_level:
            data["not_evaluated"] = list(answer.not_evaluated)
        if self.recorder is not None and decision.reservations:
            self.summary.records += self.recorder.record(
                decision, "excluded_from_corpus", site=answer.site, response=answer.page
            )
        self._finish_row(row, data, None, origin)

    def _bad_row(self, row: int, raw: str | None, problem: str) -> None:
        self.summary.errors += 1
        text = f"row {row}: {problem}"
        if self.bad_rows_shown < 20:
            print(f"optout check: {text}", file=self.err)
        elif self.bad_rows_shown == 20:
            print("optout check: more bad rows; each has an answer line with its error", file=self.err)
        self.bad_rows_shown += 1
        policy = self.policy
        data = {
            "url": raw,
            "purpose": policy.purpose.value,
            "agent": policy.agent,
            "mode": policy.mode.value,
            "allowed": False,
            "reservations": [],
            "errors": [text],
            "row": row,
        }
        self._finish_row(row, data, None, "")

    def _finish_row(self, row: int, data: dict[str, Any], line: str | None, origin: str) -> None:
        """``origin`` is empty for a row that could not be checked."""
        summary = self.summary
        summary.rows += 1
        if origin:
            summary.urls += 1
            summary.origins.add(origin)
        if data["allowed"]:
            summary.allowed += 1
        elif data["reservations"]:
            summary.reserved += 1
            summary.by_protocol.update({r["protocol"] for r in data["reservations"]})
        if line is None:
            line = _encode(data)
            if self.state is not None:
                self.state.add(((row, line),))
        note = note_of(data) if self.writers else None
        if self.opts.unordered and self.opts.json_lines:
            self.buffer.append(line)
            line = ""
        self.done[row] = (line, note)
        at = bisect.bisect_right(self.starts, row, self.head) - 1
        self.missing[self.starts[at]] -= 1

    def _emit(self) -> None:
        """Write out every chunk whose rows are all answered, in input order."""
        while self.chunks and not self.missing[self.chunks[0].start]:
            chunk = self.chunks.popleft()
            del self.missing[chunk.start]
            self.head += 1
            rows = [self.done.pop(r) for r in range(chunk.start, chunk.start + len(chunk))]
            if self.opts.json_lines and not self.opts.unordered:
                self.buffer += [line for line, _ in rows]
            if self.writers:
                notes = [n for _, n in rows]
                for writer in self.writers:
                    writer.write(chunk, notes)  # type: ignore[arg-type]
        if self.head > 4096:  # forget the starts of written chunks now and then
            del self.starts[: self.head]
            self.head = 0
        if self.buffer:
            self.out.write("\n".join(self.buffer) + "\n")
            self.buffer.clear()

    def _maybe_commit(self, force: bool = False) -> None:
        if self.state is None or (not force and time.monotonic() - self.last_commit < COMMIT_EVERY):
            return
        self.last_commit = time.monotonic()
        recorder = self.recorder
        if recorder is not None:  # a row is committed only once its records are in the registry
            wait_recorded(recorder)
        self.out.flush()
        self.state.commit()
        if recorder is not None and recorder.next_index is not None:
            self.state.set("registry_index", str(recorder.next_index))

    def _finish(self, complete: bool) -> None:
        summary = self.summary
        try:
            self._maybe_commit(force=True)
        finally:
            self.out.flush()
            for writer in self.writers:
                if complete:
                    writer.close(complete=True)
                else:
                    writer.abort()
            if self.recorder is not None:
                self.recorder.close()
                if self.recorder.errors:
                    print(f"optout check: registry: {self.recorder.errors[0]}", file=self.err)
            if self.state is not None:
                self.state.close()
            if self.store is not None:
                self.store.close()
            self.fetcher.close()
            summary.requests = self.checker.requests
            summary.from_store = self.checker.from_store
            summary.seconds = time.monotonic() - summary.started


def print_summary(summary: Summary, err: IO[str], policy: Policy, site_level: bool) -> None:
    """The end of a run, on stderr: what was answered and how fast."""
    parts = [
        f"{summary.rows:,} rows",
        f"{len(summary.origins):,} origins",
        f"{summary.allowed:,} allowed" + (" at site level" if site_level else ""),
        f"{summary.reserved:,} reserved",
        f"{summary.errors:,} errors",
    ]
    line = "optout check: " + ", ".join(parts)
    if summary.by_protocol:
        line += " (reserved by " + ", ".join(f"{p} {n:,}" for p, n in summary.by_protocol.most_common()) + ")"
    line += f"; {summary.seconds:.1f} s, {summary.rate():,.0f} rows/s, {summary.requests:,} requests"
    if summary.resumed:
        line += f"; {summary.resumed:,} answers from the state file"
    if summary.records:
        line += f"; {summary.records:,} registry records"
    line += f" [purpose {policy.purpose.value}, agent {policy.agent}, mode {policy.mode.value}]"
    print(line, file=err)
