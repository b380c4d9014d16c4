"""Turning honoured opt-outs into registry records, written off the reactor thread in batches.

One record per reservation signal that changed what the crawler did (not fetched, fetched but dropped, or
excluded downstream), with the evidence it rested on (the robots.txt body, the response header block, the
tdmrep.json file, the HTML head) stored once by SHA-256. The crawl never waits on the disk, nor on building
records: the reactor thread queues references to what was decided, and a writer thread builds the records and
appends them to the registry every half second or every few hundred records.

If the registry cannot be written, records are not silently lost: the batch is kept, retried at close, and as a
last resort written to a JSON Lines spill file next to the registry, with an error in the log.

A crawl that resumes after being killed fetches again the requests that were not finished, and decides them again:
``resume`` makes the writer skip a record when the interrupted run already wrote the same decision, so each
decision is in the registry once (crawler/jobqueue.py says which requests come back and from which index).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from middlewares.engine import Fetched, SitePolicy
from middlewares.policy import Decision
from middlewares.protocols.signals import Signal
from optout_registry import suffixes
from optout_registry.vocabulary import mechanism_of

logger = logging.getLogger(__name__)

NOT_FETCHED = "not_fetched"
FETCHED_NOT_STORED = "fetched_not_stored"
EXCLUDED = "excluded_from_corpus"

MAX_EVIDENCE = 4 * 1024 * 1024


def mechanism(signal: Signal) -> str:
    """The registry's mechanism name (REGISTRY.md §6.2) for a signal, from the one table of ids
    (optout_registry/vocabulary.py, which also maps it back to the protocol id people read)."""
    return mechanism_of(signal.protocol, signal.where)


def header_block(fetched: Fetched) -> bytes:
    """The response status and headers as bytes, the evidence for header-borne signals."""
    lines = [f"HTTP {fetched.status}"] + [f"{k}: {v}" for k, vs in sorted(fetched.headers.items()) for v in vs]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "replace")


@dataclass
class Evidence:
    """The bytes a decision rests on, as fetched (at most ``MAX_EVIDENCE``): what the registry stores and hashes so that
    the record can be checked later."""

    url: str
    status: int
    body: bytes
    fetched_at: float


def evidence_for(signal: Signal, site: SitePolicy | None, response: Fetched | None) -> Evidence | None:
    """The bytes a signal rests on: the site file it came from, or the response's headers, head or body."""
    if site is not None and signal.source in site.files:
        f = site.files[signal.source]
        body = f.body if f.status is not None else f.error.encode()
        return Evidence(f.url, f.status or 0, body[:MAX_EVIDENCE], f.fetched_at)
    if response is None:
        return None
    url = response.final_url or response.url
    if signal.where in ("header", "status", "url") or response.status is None:
        return Evidence(url, response.status or 0, header_block(response), response.fetched_at)
    body = response.body
    if signal.where in ("html-meta", "html-link"):
        end = body.lower().find(b"</head")
        body = body if end < 0 else body[:end]
    return Evidence(url, response.status or 0, body[:MAX_EVIDENCE], response.fetched_at)


# What the reactor thread hands to the writer: the decision, the action taken, the signals to record, the site
# policy and response their evidence comes from, and the time it happened (Unix seconds). References only.
Honoured = tuple[Decision, str, Sequence[Signal], SitePolicy | None, Fetched | None, float]


class Recorder:
    """Takes honoured decisions on the reactor thread and turns them into registry records on a writer thread.

    The producer side only enqueues a tuple of references (:data:`Honoured`): finding the evidence bytes, hashing
    them, normalising the URL, looking up the registrable domain and validating the record (0.1 to 0.2 ms a record)
    all happen on the writer thread, so a crawl refusing many URLs does not spend reactor time on its paper trail.
    """

    def __init__(
        self,
        registry_url: str,
        *,
        agent: str,
        operator: str,
        node: str = "",
        software: str = "optout/0.1",
        batch: int = 500,
        interval: float = 0.5,
        integrate: bool = True,
    ) -> None:
        self.registry_url = registry_url
        # A fleet's workers only sequence records; one integrator signs (REGISTRY.md §6.5), so a worker needs
        # no signing key and never publishes a checkpoint of its own.
        self.integrate = integrate
        self.agent = agent
        self.operator = operator
        self.node = node
        self.software = software
        self.batch = batch
        self.interval = interval
        self.queue: queue.SimpleQueue[Honoured | None] = queue.SimpleQueue()
        self.queued = 0  # records handed to the writer so far (the reactor thread's count)
        self.written = 0
        self.failed = 0
        self.skipped = 0  # already written by an interrupted run (see resume)
        self.spilled = 0
        # A registry index that no record written from now on can come before (None until the writer knows).
        self.next_index: int | None = None
        self.errors: list[str] = []  # problems that cost records or the registry; a write that was retried is not one
        self.retried = 0  # writes that failed and were kept for the next try
        self._trouble: str | None = None  # the last failure not yet followed by a good write
        self.checkpoint: str | None = None
        self.vkey: str | None = None
        self._pending: list[tuple[dict[str, Any], bytes | None]] = []
        self._resume_from: int | None = None
        self._recorded: Counter[str] = Counter()
        self._closed = False
        # The writer gathers records for ``interval`` before it writes them; this cuts the wait short at close and
        # once a full batch is queued (``_next_flush``: the queued count that makes one, kept by the reactor thread).
        self._flush = threading.Event()
        self._next_flush = batch
        # Every record names its site (registrable domain): build the suffix trie here, before the spider opens and
        # gc.freeze() runs, rather than on the writer thread's first record, after it. The registry's modules are
        # imported here for the same reason: imported by the writer thread, they raced the freeze and were walked
        # by every full collection of the crawl.
        suffixes.warm()
        import optout_registry.registry  # noqa: F401

        self._thread = threading.Thread(target=self._run, name="optout-registry-writer", daemon=True)
        self._thread.start()

    # -- producer side (reactor thread) ------------------------------------------------------------------------

    def record(
        self,
        decision: Decision,
        action: str,
        *,
        site: SitePolicy | None = None,
        response: Fetched | None = None,
        signals: Iterable[Signal] | None = None,
    ) -> int:
        """Hand over one record per reservation (or per signal given); returns how many. Never raises: a record
        that turns out not to validate is logged and counted (``failed``) by the writer, and the crawl goes on."""
        chosen = decision.reservations if signals is None else list(signals)
        if chosen:
            self.queue.put((decision, action, chosen, site, response, time.time()))
            self.queued += len(chosen)
            if self.queued >= self._next_flush:
                self._next_flush = self.queued + self.batch
                self._flush.set()
        return len(chosen)

    @property
    def handled(self) -> int:
        """Records the writer is done with: written, refused by validation, found already written, or spilled. Once
        it reaches the ``queued`` count of some moment, every record queued before that moment is safe on disk or
        reported as an error (the crawl journal waits for that before it marks a request done)."""
        return self.written + self.failed + self.skipped + self.spilled

    def resume(self, since: int) -> None:
        """Call before the first record: records of this crawler from registry index ``since`` on belong to
        requests an interrupted run had not finished; when one of them is decided the same way again, its record
        is not written a second time."""
        self._resume_from = since

    def close(self, timeout: float = 60.0) -> None:
        """Flush everything, sign a checkpoint and close the registry (blocks: call from a thread)."""
        self.queue.put(None)
        self._flush.set()
        self._thread.join(timeout)

    # -- writer thread -------------------------------------------------------------------------------------------

    def _run(self) -> None:
        from optout_registry import Registry

        try:
            registry = Registry.open(self.registry_url)
        except Exception as exc:
            self.errors.append(f"cannot open registry {self.registry_url}: {exc}")
            logger.error("optout: cannot open registry %s: %s", self.registry_url, exc)
            self._drain_to_spill()
            return
        try:
            self.vkey = registry.vkey if self.integrate else registry.recorded_vkey()
            self.next_index = registry.appended
            while not self._closed:
                self._collect()
                if self._pending:
                    self._write(registry)
            if self._pending:
                self._write(registry)  # one more try for a batch that failed before
            if self._pending:
                self._spill()
            if self.integrate:
                self.checkpoint = registry.checkpoint()
            else:
                latest = registry.latest()
                self.checkpoint = latest[2] if latest is not None else None
        except Exception as exc:  # the writer must never die silently with records in hand
            self.errors.append(f"registry writer failed: {exc}")
            logger.error("optout: registry writer failed: %s", exc)
            self._drain_to_spill()
        finally:
            registry.close()

    def _collect(self) -> None:
        """Wait for the next batch: what is queued within ``interval`` of its first record, or sooner once a full
        batch is queued or the producer closes (then sets ``_closed``).

        Gathered for the whole interval rather than written as it comes: each write is a transaction with its own
        signed checkpoint (SQLite), and a crawl refusing a few URLs at a time would otherwise pay a signature for
        every two or three records; nor is the writer woken by every record it then waits for."""
        try:
            item = self.queue.get(timeout=self.interval)
        except queue.Empty:
            return
        self._flush.wait(self.interval)
        self._flush.clear()
        while True:
            if item is None:
                self._closed = True
                return
            self._pending += self._build(item)
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return

    def _build(self, item: Honoured) -> list[tuple[dict[str, Any], bytes | None]]:
        """The records (with their evidence bytes) for one honoured decision. A record that cannot be built is
        logged and counted, never raised: the writer must keep going for the others."""
        from optout_registry.record import PURPOSE_MAP, RecordError, evidence_ref, new_record

        decision, action, signals, site, response, observed = item
        observed_at = datetime.fromtimestamp(observed, timezone.utc)
        built = []
        for signal in signals:
            try:
                evidence = evidence_for(signal, site, response)
                purposes = sorted({p for name in signal.denied_purposes() for p in PURPOSE_MAP.get(name, ())})
                ref = None
                if evidence is not None:
                    when = datetime.fromtimestamp(evidence.fetched_at, timezone.utc)
                    ref = evidence_ref(evidence.url, evidence.status, evidence.body, when)
                rec = new_record(
                    url=decision.url,
                    mechanism=mechanism(signal),
                    purposes=purposes or list(PURPOSE_MAP[decision.purpose.value]),
                    rule={
                        "protocol": signal.protocol,
                        "where": signal.where,
                        "value": signal.value[:2000],
                        "rule": signal.rule[:2000],
                        "source": signal.source[:2000],
                        "mode": decision.mode.value,
                    },
                    decision=action,
                    agent_token=self.agent,
                    operator=self.operator,
                    node=self.node,
                    software=self.software,
                    evidence=ref,
                    observed_at=observed_at,
                )
            except RecordError as exc:
                self.failed += 1
                logger.error("optout: could not build a registry record for %s: %s", decision.url, exc)
                continue
            except Exception as exc:  # a bug in one record must not stop the writer, and with it every other record
                self.failed += 1
                logger.exception("optout: could not build a registry record for %s: %r", decision.url, exc)
                continue
            built.append((rec, evidence.body if evidence is not None else None))
        return built

    def _write(self, registry: Any) -> None:
        try:
            self._skip_recorded(registry)
        except Exception as exc:
            self._setback(f"reading the interrupted run's records failed (retrying): {exc}")
            return
        if not self._pending:
            return
        records = [r for r, _ in self._pending]
        bodies = [b for _, b in self._pending if b is not None]
        try:
            indices = registry.append(records, evidence=bodies)
        except Exception as exc:
            self._setback(f"registry append failed ({len(records)} records kept for retry): {exc}")
            return
        if self._trouble is not None:
            logger.info("optout: registry append succeeded on retry; nothing was lost")
            self._trouble = None
        if indices:
            self.next_index = indices[-1] + 1
        self.written += len(records)
        self._pending.clear()

    def _setback(self, problem: str) -> None:
        """A failed write whose records stay in hand for the next one. A warning, not an error: a registry shared
        by several workers can refuse a transaction now and then (a lock timeout, a deadlock broken by the server),
        and the next write succeeds. It becomes an error only if the records end up spilled (see ``_spill``)."""
        self.retried += 1
        self._trouble = problem
        logger.warning("optout: %s", problem)

    def _skip_recorded(self, registry: Any) -> None:
        """Drop the pending records an interrupted run already wrote (each found record matches once)."""
        if self._resume_from is not None:
            if self.integrate:
                registry.integrate()  # PostgreSQL: the interrupted run's sequenced records, into the tree
            self._recorded = Counter(record_key(e.record) for e in registry.records(start=self._resume_from))
            self._resume_from = None
            logger.info("optout: %d records of the interrupted run may come back", sum(self._recorded.values()))
        if not self._recorded:
            return
        kept = []
        for rec, body in self._pending:
            key = record_key(rec)
            if self._recorded[key] > 0:
                self._recorded[key] -= 1
                self.skipped += 1
            else:
                kept.append((rec, body))
        self._pending = kept

    def _drain_to_spill(self) -> None:
        """Keep collecting until the producer closes, then spill everything still in hand."""
        while not self._closed:
            item = self.queue.get()
            if item is None:
                self._closed = True
            else:
                self._pending += self._build(item)
        if self._pending:
            self._spill()

    def _spill(self) -> None:
        path = spill_path(self.registry_url)
        cause = f" after: {self._trouble}" if self._trouble else ""
        try:
            with path.open("a", encoding="utf-8") as out:
                for rec, _ in self._pending:
                    out.write(json.dumps(rec, sort_keys=True) + "\n")
            problem = f"{len(self._pending)} records could not be logged; kept in {path}{cause}"
            logger.error("optout: %s", problem)
        except OSError as exc:
            problem = f"{len(self._pending)} records lost: registry and spill file {path} failed: {exc}{cause}"
            logger.critical("optout: %s", problem)
        self.errors.append(problem)  # what the crawl reports, as it happened: kept in the spill file, or lost
        self.spilled += len(self._pending)
        self._pending.clear()


def record_key(record: Mapping[str, Any]) -> str:
    """What makes two records the same decision: the URL, what was done, by which crawler, under which rule. Not
    the time, id, salt or evidence fetch time, which differ when the same decision is made again."""
    parts = [record.get(k) for k in ("target", "decision", "mechanism", "crawler", "rule")]
    target = parts[0] if isinstance(parts[0], Mapping) else {}
    return json.dumps([target.get("url"), *parts[1:]], sort_keys=True, ensure_ascii=False)


def spill_path(registry_url: str) -> Path:
    """Where records the registry could not take are appended (JSON Lines) so that none is lost: beside a SQLite
    registry, else in the working directory."""
    if registry_url.startswith("sqlite:///"):
        return Path(registry_url[len("sqlite:///") :] + ".unlogged.jsonl")
    return Path("optout-registry.unlogged.jsonl")
