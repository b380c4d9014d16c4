"""``optout recheck``: purge lists for what a corpus took in before its sources opted out.

A page that was allowed when it was crawled or filtered can be reserved later: the site adds a ``Disallow`` for
the crawler's token, a ``tdmrep.json`` reservation, an ``ai.txt`` refusal. Honouring later opt-outs going forward
means finding those pages in what was already collected. ``optout recheck`` reads earlier answers (the
``decisions.jsonl`` of ``optout filter``, the ``items.jsonl`` or ``decisions.jsonl`` of ``optout crawl``, the
answer lines of ``optout check --urls``), keeps the entries that were allowed then, asks each origin's site-level
policy today, by the batch checker's engine (:meth:`crawler.batch.SharedChecker.site_level`: robots.txt first,
the other policy files under its rules and Crawl-delay, ``--cache`` shared with crawls), and writes into ``--out``:

* ``purge.jsonl``: one line per entry allowed then and reserved now: its corpus id (``id``, and which field it
  came from: a WARC-Record-ID, an item's ``id``, a check row, else the URL), the URL, when it was allowed, the
  new reservations with their evidence (URL, SHA-256, date of the policy file) and ``reserved_since``, the date
  the reservation was first seen (the fetch date of the policy file carrying it: with ``--cache``, the copy the
  crawler already held);
* ``purge-ids.parquet``: the ids and URLs alone, for a pipeline's anti-join;
* ``unresolved.jsonl``: entries whose site could not be asked (robots.txt unreachable, a policy file failing):
  not purged on a guess, listed to be rechecked (exit status 1);
* ``summary.json``.

Page-level signals are not looked at again: the page is not fetched (a recheck must not crawl the corpus once
more); the site-level files are what a site changes to opt out later.

With ``--registry``, each purged entry is recorded (decision ``purged``, REGISTRY.md §6.2), evidence by SHA-256.

The run is resumable and bounded like ``optout check --urls --out`` (crawler/batchstate.py): entries are read and
answered ``--batch`` rows at a time, and each batch's purge lines are committed to ``DIR/recheck-state.db`` with
the count of rows done; a run killed at any moment and started again with the same command answers the
uncommitted rows again (policy files from the state file's cache, registry records not written twice) and the
outputs are written from the state file at the end, so no entry appears twice.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import SimpleQueue
from typing import IO, Any

from crawler.batch import Answer, Pool, Scheduler, SharedChecker, SyncStore, checked, widen_pools
from crawler.batchio import InputError, open_text
from crawler.batchrun import open_recorder, wait_recorded
from crawler.batchstate import BatchState, StateError
from crawler.check import UsageError
from crawler.outfiles import utc
from crawler.warcfilter import site_source
from middlewares.engine import SitePolicy
from middlewares.policy import Decision, Policy
from middlewares.recording import evidence_for

PURGE = "purge.jsonl"
PURGE_IDS = "purge-ids.parquet"
UNRESOLVED = "unresolved.jsonl"
SUMMARY = "summary.json"
STATE = "recheck-state.db"
PURGED = "purged"  # the registry's decision for what is removed from a corpus after the fact (REGISTRY.md §6.2)
NOT_ASKED = ("fetch",)  # reservations that say the site could not be asked, not that it reserved anything
ID_FIELDS = ("warc_record_id", "id", "doc_id", "item_id")


class RecheckError(ValueError):
    """A usage error: one line, exit status 2."""


def add_recheck_command(sub: Any, add_policy_args: Callable[[argparse.ArgumentParser], None]) -> None:
    from optout_registry import cliargs

    p = sub.add_parser(
        "recheck",
        help="purge list: earlier allowed entries whose sites reserve them now (purge.jsonl, purge-ids.parquet)",
        description="Read earlier answers (optout filter's or optout crawl's decisions.jsonl, a crawl's "
        "items.jsonl, optout check --urls answer lines; plain or .gz), ask the sites of the entries that were "
        "allowed then for their site-level policy today, and write those reserved now to DIR/purge.jsonl and "
        "DIR/purge-ids.parquet. Run the same command again to resume (exit 0 done, 1 some entries could not be "
        "rechecked, 2 error).",
    )
    p.add_argument("decisions", nargs="+", metavar="DECISIONS", help="JSON Lines files of earlier answers")
    p.add_argument("--out", required=True, metavar="DIR", type=cliargs.non_empty, help="output folder (and state)")
    add_policy_args(p)
    p.add_argument("--cache", metavar="URL", help="persistent policy cache shared with optout crawl (sqlite:///…)")
    p.add_argument("--registry", metavar="URL", help="record each purged entry (decision purged): sqlite:///path or …")
    p.add_argument("--operator", type=cliargs.non_empty, default="localhost", help="written into registry records")
    p.add_argument(
        "--concurrency",
        type=cliargs.integer(1, 1024, "a number of origins at once"),
        default=32,
        help="origins asked at once (default 32)",
    )
    p.add_argument(
        "--batch",
        type=cliargs.integer(1, 1_000_000, "a number of rows"),
        default=5000,
        help="rows answered and committed at a time (default 5000)",
    )
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")


@dataclass
class Entry:
    """One earlier answer that allowed its URL: what to ask about, and how a corpus knows it."""

    url: str
    origin: str
    corpus_id: str
    id_field: str
    allowed_at: str | None
    source: str  # file:line


def _when(value: object) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return utc(float(value))
    return str(value) if value else None


def entry_of(data: object) -> tuple[str, str, str, str | None] | None:
    """(URL, corpus id, id field, allowed at) of an earlier answer that allowed its URL; None for one that did
    not (or is not an answer). Raises ValueError when a line says it was allowed but names no URL.

    The kinds: optout filter's lines (``warc_record_id``, ``allowed``, ``warc_date``); optout crawl's decisions
    (``outcome`` ``stored``, ``final_url``, ``at``) and items (``evidence``, ``fetched_at``: every item was
    stored); optout check's answers (``allowed``, ``row``)."""
    if not isinstance(data, dict):
        return None
    if "outcome" in data:
        allowed = data.get("outcome") == "stored"
        url = data.get("final_url") or data.get("url")
        when = data.get("at")
    elif "allowed" in data:
        allowed = data.get("allowed") is True and not data.get("skipped")
        url = data.get("url")
        when = data.get("warc_date") or data.get("fetched_at")
    elif "evidence" in data:
        allowed = True
        url = data.get("url")
        when = data.get("fetched_at")
    else:
        return None
    if not allowed:
        return None
    if not isinstance(url, str) or not url:
        raise ValueError("an allowed entry without a URL")
    for name in ID_FIELDS:
        value = data.get(name)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return url, str(value), name, _when(when)
    if isinstance(data.get("row"), int):
        return url, str(data["row"]), "row", _when(when)
    return url, url, "url", _when(when)


@dataclass
class Summary:
    rows: int = 0
    allowed_then: int = 0
    purged: int = 0
    unresolved: int = 0
    duplicates: int = 0
    bad_lines: int = 0
    resumed_rows: int = 0
    by_protocol: Counter[str] = field(default_factory=Counter)
    origins: set[str] = field(default_factory=set)
    requests: int = 0
    from_cache: int = 0
    registry_records: int = 0
    registry_errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def to_json(self, policy: Policy) -> dict[str, Any]:
        return {
            "purpose": policy.purpose.value,
            "agent": policy.agent,
            "mode": policy.mode.value,
            "site_policy": "live",
            "rows": self.rows,
            "resumed_rows": self.resumed_rows,
            "allowed_then": self.allowed_then,
            "purge": self.purged,
            "duplicates": self.duplicates,
            "unresolved": self.unresolved,
            "bad_lines": self.bad_lines,
            "reserved_by_protocol": dict(self.by_protocol.most_common()),
            "origins": len(self.origins),
            "policy_requests": self.requests,
            "policy_from_cache": self.from_cache,
            "registry_records": self.registry_records,
            "registry_errors": self.registry_errors,
            "problems": self.problems[:100],
            "seconds": round(time.monotonic() - self.started, 3),
        }


class RecheckRun:
    def __init__(
        self,
        inputs: list[str],
        out: Path,
        policy: Policy,
        *,
        user_agent: str,
        blocklist: Any = None,
        cache: str | None = None,
        registry: str | None = None,
        operator: str = "localhost",
        concurrency: int = 32,
        batch: int = 5000,
        timeout: float = 10.0,
        err: IO[str] | None = None,
    ) -> None:
        self.inputs = inputs
        self.out = out
        self.policy = policy
        self.user_agent = user_agent
        self.blocklist = blocklist
        self.cache = cache
        self.registry = registry
        self.operator = operator
        self.concurrency = concurrency
        self.batch = batch
        self.timeout = timeout
        self.err = err if err is not None else sys.stderr
        self.summary = Summary()
        self.purged_ids: set[str] = set()  # ids on the purge list (one line, one record each)
        self.results: SimpleQueue[tuple[int, Answer | BaseException]] = SimpleQueue()

    def command(self) -> dict[str, Any]:
        """What must not change between a run and its resumption."""
        policy = self.policy
        return {
            "inputs": [str(Path(p).resolve()) for p in self.inputs],
            "purpose": policy.purpose.value,
            "agent": policy.agent,
            "mode": policy.mode.value,
            "disabled": sorted(policy.disabled),
            "cross_token": policy.cross_token,
        }

    def run(self) -> Summary:
        from crawler.fetcher import RequestsFetcher
        from middlewares.sitecache import open_store

        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RecheckError(f"cannot create {self.out}: {exc.strerror or exc}") from None
        try:
            state = BatchState(str(self.out / STATE), self.command())
        except StateError as exc:
            raise RecheckError(str(exc)) from None
        store = None
        recorder = None
        fetcher = RequestsFetcher(self.user_agent, timeout=self.timeout)
        scheduler = Scheduler(1, take_all=True)
        try:
            try:
                opened = open_store(self.cache or f"sqlite:///{self.out / STATE}")
            except ValueError as exc:
                raise RecheckError(str(exc).replace("OPTOUT_CACHE_URL", "--cache")) from None
            store = SyncStore(opened) if opened is not None else None
            widen_pools(fetcher, max(256, 4 * self.concurrency), 1)
            checker = SharedChecker(self.policy, fetcher, self.blocklist, store=store)
            if self.registry:
                try:
                    recorder = open_recorder(self.registry, state, self.policy, self.operator)
                except InputError as exc:
                    raise RecheckError(str(exc)) from None
            for _row, line in state.lines():
                data = json.loads(line)
                if data.get("recheck") == "purge":
                    self.purged_ids.add(data["id"])
            Pool(checker, scheduler, checker.site_level, lambda row, a: self.results.put((row, a)), self.concurrency)
            done = int(state.get("done") or 0)
            self.summary.resumed_rows = done
            batch: list[tuple[int, Entry]] = []
            row = -1
            for row, entry in self._entries():
                if row < done:
                    continue
                if entry is not None:
                    batch.append((row, entry))
                if len(batch) >= self.batch:
                    self._answer(batch, checker, scheduler, state, recorder, row + 1)
                    batch = []
            self._answer(batch, checker, scheduler, state, recorder, row + 1)
            self.summary.requests = checker.requests
            self.summary.from_cache = checker.from_store
        finally:
            scheduler.close()
            if recorder is not None:
                recorder.close()
                self.summary.registry_errors = list(recorder.errors)
            if store is not None:
                store.close()
            fetcher.close()
        try:
            self._write_outputs(state)
        finally:
            state.close()
        return self.summary

    def _entries(self) -> Iterator[tuple[int, Entry | None]]:
        """Every input line in order, numbered across the files; None for a line that is not an allowed entry."""
        summary = self.summary
        row = 0
        for path in self.inputs:
            try:
                with open_text(path) as lines:
                    for number, text in enumerate(lines, 1):
                        entry: Entry | None = None
                        if text.strip():
                            summary.rows += 1
                            try:
                                found = entry_of(json.loads(text))
                                if found is not None:
                                    url, origin = checked(found[0])
                                    entry = Entry(url, origin, found[1], found[2], found[3], f"{path}:{number}")
                                    summary.allowed_then += 1
                            except (ValueError, UsageError) as exc:
                                self._problem(f"{path}:{number}: {str(exc)[:200]}")
                                summary.bad_lines += 1
                        yield row, entry
                        row += 1
            except (InputError, OSError, EOFError, UnicodeDecodeError) as exc:  # a damaged .gz: what was read counts
                self._problem(f"cannot read {path} on: {exc}")

    def _problem(self, text: str) -> None:
        if len(self.summary.problems) < 20:
            print(f"optout recheck: {text}", file=self.err)
        self.summary.problems.append(text)

    def _answer(
        self,
        batch: list[tuple[int, Entry]],
        checker: SharedChecker,
        scheduler: Scheduler,
        state: BatchState,
        recorder: Any,
        done: int,
    ) -> None:
        """Answer one batch of entries, then commit its lines and the rows it covers in the state file."""
        entries = dict(batch)
        outstanding = 0
        answers: dict[int, Answer | BaseException] = {}
        for row, entry in batch:
            self.summary.origins.add(entry.origin)
            if entry.origin in checker.sites:  # pure computation from here on
                answers[row] = checker.site_level(entry.url, entry.origin)
            else:
                scheduler.add(entry.origin, row, entry.url)
                outstanding += 1
        while outstanding:
            row, answer = self.results.get()
            answers[row] = answer
            outstanding -= 1
        for row in sorted(answers):
            line = self._line(entries[row], answers[row], recorder)
            if line is not None:
                state.add(((row, json.dumps(line, ensure_ascii=False)),))
        if recorder is not None:
            wait_recorded(recorder)
        state.commit()
        state.set("done", str(done))

    def _line(self, entry: Entry, answer: Answer | BaseException, recorder: Any) -> dict[str, Any] | None:
        policy = self.policy
        base = {
            "id": entry.corpus_id,
            "id_field": entry.id_field,
            "url": entry.url,
            "allowed_at": entry.allowed_at,
            "from": entry.source,
        }
        if isinstance(answer, BaseException):
            self.summary.unresolved += 1
            return {"recheck": "unresolved", **base, "errors": [f"internal error: {type(answer).__name__}"]}
        decision = answer.decision
        if decision.allowed:
            return None
        # A file that could not be fetched says nothing about the site's wishes (robots.txt unreachable
        # disallows everything): what rests on it is not purged on a guess, but listed for a later recheck.
        failed = {s.source for s in decision.reservations if s.protocol in NOT_ASKED}
        reserved = [s for s in decision.reservations if s.protocol not in NOT_ASKED and s.source not in failed]
        if not reserved:
            self.summary.unresolved += 1
            return {"recheck": "unresolved", **base, "errors": decision.errors or ["the site could not be asked"]}
        if entry.corpus_id in self.purged_ids:
            self.summary.duplicates += 1
            return None
        self.purged_ids.add(entry.corpus_id)
        self.summary.purged += 1
        self.summary.by_protocol.update({s.protocol for s in reserved})
        evidence = evidence_of(decision, answer.site)
        seen = [e["fetched_at"] for e in evidence if e.get("fetched_at")]
        if recorder is not None:
            self.summary.registry_records += recorder.record(decision, PURGED, site=answer.site)
        return {
            "recheck": "purge",
            **base,
            "reserved_since": min(seen) if seen else utc(time.time()),
            "checked_at": utc(time.time()),
            "purpose": policy.purpose.value,
            "agent": policy.agent,
            "mode": policy.mode.value,
            "reservations": decision.to_json()["reservations"],
            "evidence": evidence,
            "site_policy": site_source(answer.site),
        }

    def _write_outputs(self, state: BatchState) -> None:
        """purge.jsonl, unresolved.jsonl and purge-ids.parquet from the state file (in input order), each written
        whole through a temporary file, then summary.json."""
        ids: list[str] = []
        urls: list[str] = []
        self.summary.by_protocol.clear()
        tmp = {name: self.out / f".{name}.tmp" for name in (PURGE, UNRESOLVED)}
        with tmp[PURGE].open("w", encoding="utf-8") as purge, tmp[UNRESOLVED].open("w", encoding="utf-8") as other:
            for _row, line in state.lines():
                data = json.loads(line)
                kind = data.pop("recheck")
                text = json.dumps(data, ensure_ascii=False) + "\n"
                if kind == "purge":
                    purge.write(text)
                    ids.append(data["id"])
                    urls.append(data["url"])
                    self.summary.by_protocol.update({r["protocol"] for r in data["reservations"]})
                else:
                    other.write(text)
        for name, path in tmp.items():
            os.replace(path, self.out / name)
        self.summary.purged = len(ids)
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            self._problem(f"{PURGE_IDS} not written: it needs pyarrow (pip install 'optout[corpus]')")
        else:
            table = pa.table({"id": pa.array(ids, pa.string()), "url": pa.array(urls, pa.string())})
            part = self.out / f".{PURGE_IDS}.tmp"
            pq.write_table(table, part)
            os.replace(part, self.out / PURGE_IDS)
        self.summary.unresolved = sum(1 for _ in (self.out / UNRESOLVED).open(encoding="utf-8"))
        data = self.summary.to_json(self.policy)
        (self.out / SUMMARY).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def evidence_of(decision: Decision, site: SitePolicy | None) -> list[dict[str, Any]]:
    """The policy files the reservations rest on (the bytes the registry hashes), once each."""
    import hashlib

    found: dict[str, dict[str, Any]] = {}
    for signal in decision.reservations:
        evidence = evidence_for(signal, site, None)
        if evidence is None or evidence.url in found:
            continue
        found[evidence.url] = {
            "url": evidence.url,
            "status": evidence.status,
            "sha256": hashlib.sha256(evidence.body).hexdigest(),
            "fetched_at": utc(evidence.fetched_at) if evidence.fetched_at else None,
        }
    return list(found.values())


def run_recheck(args: argparse.Namespace, policy: Policy, blocklist: Any, user_agent: str) -> int:
    """The command: 0 done, 1 when some entries could not be rechecked (unresolved, bad lines, registry), 2 on a
    usage error."""
    for path in args.decisions:
        if not Path(path).is_file():
            raise RecheckError(f"no such file: {path}")
    run = RecheckRun(
        list(args.decisions),
        Path(args.out),
        policy,
        user_agent=user_agent,
        blocklist=blocklist,
        cache=args.cache,
        registry=args.registry,
        operator=args.operator,
        concurrency=args.concurrency,
        batch=args.batch,
        timeout=args.timeout,
    )
    summary = run.run()
    print(
        f"optout recheck: {summary.allowed_then:,} entries allowed then, {summary.purged:,} reserved now → "
        f"{Path(args.out) / PURGE}; {summary.unresolved:,} unresolved, {len(summary.origins):,} origins"
        + (f", {summary.resumed_rows:,} rows from the state file" if summary.resumed_rows else ""),
        file=sys.stderr,
    )
    for problem in summary.registry_errors:
        print(f"optout recheck: registry: {problem}", file=sys.stderr)
    return 1 if summary.unresolved or summary.bad_lines or summary.registry_errors or summary.problems else 0
