"""The recorder: the reactor thread only hands over references, the writer thread builds, validates and logs the
records, and nothing is lost at close (including records that fail validation, which are counted, not raised)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from middlewares.engine import Fetched, SitePolicy, response_signals
from middlewares.policy import Decision, Policy
from middlewares.recording import FETCHED_NOT_STORED, NOT_FETCHED, Recorder, header_block, spill_path
from optout_registry import Registry

ROBOTS = b"User-agent: *\nDisallow: /private/\n"
ORIGIN = "https://news.example.org"
POLICY = Policy.build(purpose="train-ai", agent="ExampleBot", mode="conservative")


def site() -> SitePolicy:
    robots = Fetched(ORIGIN + "/robots.txt", 200, {"content-type": ["text/plain"]}, ROBOTS, fetched_at=1_790_000_000.5)
    return SitePolicy.from_robots(ORIGIN, robots, POLICY)


def refused(path: str, where: SitePolicy) -> Decision:
    url = ORIGIN + path
    return POLICY.decide(url, where.access_signals(url, POLICY))


def recorder(tmp_path: Path, **options: Any) -> Recorder:
    return Recorder(f"sqlite:///{tmp_path / 'registry.db'}", agent="ExampleBot", operator="crawler.test", **options)


def logged(tmp_path: Path) -> list[dict[str, Any]]:
    with Registry.open(f"sqlite:///{tmp_path / 'registry.db'}") as registry:
        return [entry.record for entry in registry.records()]


def test_records_are_built_on_the_writer_thread_with_the_same_content(tmp_path: Path, monkeypatch: Any) -> None:
    import optout_registry.record as record_module

    threads: list[str] = []
    real = record_module.new_record

    def spy(**kwargs: Any) -> dict[str, Any]:
        threads.append(threading.current_thread().name)
        return real(**kwargs)

    monkeypatch.setattr(record_module, "new_record", spy)
    where = site()
    decision = refused("/private/1", where)
    rec = recorder(tmp_path)
    before = time.time()
    assert rec.record(decision, NOT_FETCHED, site=where) == 1
    after = time.time()
    rec.close()

    assert threads == ["optout-registry-writer"]
    assert (rec.written, rec.failed, rec.errors) == (1, 0, [])
    [record] = logged(tmp_path)
    assert record["target"] == {"url": ORIGIN + "/private/1", "site": "example.org", "host": "news.example.org"}
    assert record["mechanism"] == "robots.txt"
    assert record["purposes"] == ["AI_TRAIN", "AI_INPUT", "SEARCH", "TDM"]  # robots.txt disallows every use
    assert record["decision"] == NOT_FETCHED
    assert record["crawler"] == {
        "operator": "crawler.test",
        "agent_token": "ExampleBot",
        "node": "",
        "software": "optout/0.1",
    }
    assert record["rule"]["protocol"] == "robots" and record["rule"]["source"] == ORIGIN + "/robots.txt"
    assert record["rule"]["mode"] == "conservative" and "/private/" in record["rule"]["rule"]
    assert record["evidence"] == {
        "url": ORIGIN + "/robots.txt",
        "status": 200,
        "fetched_at": "2026-09-21T14:13:20.500000Z",
        "sha256": hashlib.sha256(ROBOTS).hexdigest(),
        "length": len(ROBOTS),
    }
    # The time of the decision, taken on the reactor thread, not whenever the writer got round to it.
    observed = datetime.strptime(record["observed_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert before - 0.001 <= observed.timestamp() <= after + 0.001
    with Registry.open(f"sqlite:///{tmp_path / 'registry.db'}") as registry:
        assert registry.evidence(hashlib.sha256(ROBOTS).hexdigest()) == ROBOTS


def test_response_evidence_is_the_header_block(tmp_path: Path) -> None:
    page = Fetched(
        ORIGIN + "/a",
        200,
        {"content-type": ["text/html"], "tdm-reservation": ["1"]},
        b"<html><head><title>a</title></head><body>text</body></html>",
        final_url=ORIGIN + "/a",
    )
    facts = response_signals(page, POLICY)
    decision = POLICY.decide(page.url, facts.signals)
    assert not decision.allowed
    rec = recorder(tmp_path)
    assert rec.record(decision, FETCHED_NOT_STORED, response=page) == 1
    rec.close()
    [record] = logged(tmp_path)
    assert record["mechanism"] == "tdmrep.header" and record["decision"] == FETCHED_NOT_STORED
    block = header_block(page)
    assert record["evidence"]["sha256"] == hashlib.sha256(block).hexdigest()


def test_a_record_that_does_not_validate_is_counted_and_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    where = site()
    bad = refused("/private/2", where)
    bad.url = "not a url"  # what new_record refuses (RecordError), as a crawl could only hit by a bug upstream
    rec = recorder(tmp_path)
    with caplog.at_level(logging.ERROR, logger="middlewares.recording"):
        assert rec.record(bad, NOT_FETCHED, site=where) == 1  # handed over: the reactor thread never validates
        assert rec.record(refused("/private/3", where), NOT_FETCHED, site=where) == 1
        rec.close()
    assert (rec.written, rec.failed) == (1, 1)
    assert "could not build a registry record for not a url" in caplog.text
    assert [r["target"]["url"] for r in logged(tmp_path)] == [ORIGIN + "/private/3"]


def test_an_unexpected_error_in_one_record_does_not_stop_the_writer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    where = site()
    broken = refused("/private/6", where)
    rec = recorder(tmp_path)
    with caplog.at_level(logging.ERROR, logger="middlewares.recording"):
        rec.record(broken, NOT_FETCHED, signals=[object()])  # type: ignore[list-item]  # not a Signal: a bug
        rec.record(refused("/private/7", where), NOT_FETCHED, site=where)
        rec.close()
    assert (rec.written, rec.failed) == (1, 1)
    assert "could not build a registry record for " + ORIGIN + "/private/6" in caplog.text
    assert [r["target"]["url"] for r in logged(tmp_path)] == [ORIGIN + "/private/7"]


def test_nothing_is_lost_at_close(tmp_path: Path) -> None:
    where = site()
    rec = recorder(tmp_path, batch=50, interval=5.0)
    decisions = [refused(f"/private/{i}", where) for i in range(230)]
    assert sum(rec.record(d, NOT_FETCHED, site=where) for d in decisions) == 230
    rec.close()
    assert (rec.written, rec.failed, rec.errors) == (230, 0, [])
    assert sorted(r["target"]["url"] for r in logged(tmp_path)) == sorted(d.url for d in decisions)
    assert rec.checkpoint is not None and "\n230\n" in rec.checkpoint


def test_records_are_spilled_when_the_registry_cannot_be_opened(tmp_path: Path, monkeypatch: Any) -> None:
    from optout_registry import registry as registry_module

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk on fire")

    monkeypatch.setattr(registry_module.Registry, "open", classmethod(refuse))
    rec = recorder(tmp_path)
    where = site()
    rec.record(refused("/private/5", where), NOT_FETCHED, site=where)
    rec.close()
    lines = spill_path(rec.registry_url).read_text().splitlines()
    assert [json.loads(line)["target"]["url"] for line in lines] == [ORIGIN + "/private/5"]


def test_an_append_that_fails_once_is_retried_and_is_no_error(
    tmp_path: Path, monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A shared registry can refuse one transaction (PostgreSQL breaking a deadlock between workers); the records
    stay in hand, the next write stores them, and the crawl has nothing to report as an error."""
    from optout_registry import registry as registry_module

    real = registry_module.Registry.append
    calls: list[int] = []

    def flaky(self: Any, records: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(records))
        if len(calls) == 1:
            raise registry_module.RegistryError("append failed: deadlock detected")
        return real(self, records, *args, **kwargs)

    monkeypatch.setattr(registry_module.Registry, "append", flaky)
    caplog.set_level(logging.INFO, logger="middlewares.recording")
    where = site()
    rec = recorder(tmp_path, batch=5, interval=5.0)
    for i in range(5):
        rec.record(refused(f"/private/{i}", where), NOT_FETCHED, site=where)
    rec.close()
    assert calls == [5, 5]
    assert (rec.written, rec.retried, rec.spilled, rec.errors) == (5, 1, 0, [])
    assert "deadlock detected" in caplog.text and "succeeded on retry" in caplog.text
    assert len(logged(tmp_path)) == 5 and not spill_path(rec.registry_url).exists()


def test_an_append_that_keeps_failing_is_spilled_and_reported(tmp_path: Path, monkeypatch: Any) -> None:
    from optout_registry import registry as registry_module

    def broken(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise registry_module.RegistryError("append failed: disk full")

    monkeypatch.setattr(registry_module.Registry, "append", broken)
    where = site()
    rec = recorder(tmp_path, batch=2, interval=5.0)
    for i in range(2):
        rec.record(refused(f"/private/{i}", where), NOT_FETCHED, site=where)
    rec.close()
    assert (rec.written, rec.spilled) == (0, 2) and rec.retried >= 2
    assert len(rec.errors) == 1 and "2 records could not be logged" in rec.errors[0] and "disk full" in rec.errors[0]
    assert len(spill_path(rec.registry_url).read_text().splitlines()) == 2


def test_a_resumed_recorder_writes_each_decision_once(tmp_path: Path) -> None:
    """The records of an interrupted run's unfinished requests come back when those are decided again: each is
    found (from the index the journal committed) and not written a second time; new decisions are written."""
    where = site()
    first = recorder(tmp_path)
    for n in range(3):
        first.record(refused(f"/private/{n}", where), NOT_FETCHED, site=where)
    first.close()
    assert (first.written, first.handled, first.next_index) == (3, 3, 3)

    again = recorder(tmp_path)
    again.resume(1)  # the request of /private/0 was done: its record is before the index
    for n in (1, 2, 2, 3):  # /private/2 twice: only one of them was written before
        again.record(refused(f"/private/{n}", where), NOT_FETCHED, site=where)
    again.close()
    assert (again.skipped, again.written, again.handled, again.queued) == (2, 2, 4, 4)
    urls = Counter(r["target"]["url"] for r in logged(tmp_path))
    assert urls == Counter({ORIGIN + f"/private/{n}": 2 if n == 2 else 1 for n in range(4)})


def test_a_changed_decision_is_written_again(tmp_path: Path) -> None:
    """Only the same decision is skipped: a page refused for another reason on the second try is a new record."""
    where = site()
    first = recorder(tmp_path)
    first.record(refused("/private/1", where), NOT_FETCHED, site=where)
    first.close()
    again = recorder(tmp_path)
    again.resume(0)
    again.record(refused("/private/1", where), FETCHED_NOT_STORED, site=where)
    again.close()
    assert (again.skipped, again.written) == (0, 1)
    assert [r["decision"] for r in logged(tmp_path)] == [NOT_FETCHED, FETCHED_NOT_STORED]
