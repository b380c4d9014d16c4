"""``optout check --urls --out STATE`` killed with SIGKILL and run again with the same command: nothing lost,
nothing answered twice, no origin asked again for what was answered or cached, no registry record written twice."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from crawler.fixtureweb import FixtureWeb, Route, page
from tests.support.batch import AGENT, cli, fast_web
from tests.support.run import ROOT

ORIGINS, PAGES = 12, 60
POLICY = ("/robots.txt", "/.well-known/tdmrep.json", "/ai.txt")


web = pytest.fixture(fast_web, name="web")


def answered(state: Path) -> set[int]:
    db = sqlite3.connect(state)
    try:
        return {row for (row,) in db.execute("SELECT row FROM answer")}
    except sqlite3.OperationalError:  # not created yet
        return set()
    finally:
        db.close()


def test_kill_9_and_resume_loses_nothing_and_duplicates_nothing(web: FixtureWeb, tmp_path: Path) -> None:
    robots = Route(body="User-agent: *\nDisallow: /p5\n", content_type="text/plain")
    names = [f"s{i}" for i in range(ORIGINS)]
    for name in names:
        web.site(name, {"/robots.txt": robots, **{f"/p{n}": Route(body=page("p"), delay=0.01) for n in range(PAGES)}})
    urls = [f"{web.origin(name)}/p{n}" for n in range(PAGES) for name in names]
    src = tmp_path / "urls.txt"
    src.write_text("\n".join(urls) + "\n")
    state, registry = tmp_path / "state.db", f"sqlite:///{tmp_path / 'registry.db'}"
    args = ["check", "--urls", str(src), "--out", str(state), "--registry", registry, "--agent", AGENT]

    first = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if state.exists() and len(answered(state)) >= 150:
            break
    first.kill()  # SIGKILL: no clean-up of any kind
    first.wait()
    before = answered(state)
    assert 150 <= len(before) < len(urls), len(before)
    killed_at = time.time()

    proc = cli(*args)
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    # every row once, in input order, with the right answer
    assert [line["row"] for line in lines] == list(range(len(urls)))
    assert [line["url"] for line in lines] == urls
    for line in lines:
        reserved = "/p5" in line["url"]
        assert line["allowed"] is not reserved, line
        assert [r["protocol"] for r in line["reservations"]] == (["robots"] if reserved else [])
    assert f"{len(before):,} answers from the state file" in proc.stderr

    # policy files: once per origin over both runs (the second run read them from the state file)
    for name in names:
        hits = Counter(h.path for h in web.hits(name) if h.path in POLICY)
        assert hits == Counter(POLICY), (name, hits)
    # no page answered before the kill was requested again
    again = {h.site + h.path for h in web.log if h.time > killed_at and h.path not in POLICY}
    for row in before:
        name = names[row % ORIGINS]
        assert name + "/p" + urls[row].rsplit("/p", 1)[1] not in again
    # and every page the first run had not answered was requested by the second, once
    pages = Counter(h.site + h.path for h in web.log if h.time > killed_at and h.path not in POLICY)
    assert all(n == 1 for n in pages.values()), [k for k, n in pages.items() if n > 1]

    # one registry record per reservation, none twice, each an exclusion from the corpus
    from optout_registry import Registry

    reg = Registry.open(registry)
    try:
        records = [e.record for e in reg.records(size=reg.appended)]
    finally:
        reg.close()
    reserved_urls = sorted(line["url"] for line in lines if not line["allowed"])
    assert sorted(r["target"]["url"] for r in records) == reserved_urls
    assert {r["decision"] for r in records} == {"excluded_from_corpus"}
    assert {r["mechanism"] for r in records} == {"robots.txt"}
    assert all(len(r["evidence"]["sha256"]) == 64 for r in records)


def test_resume_with_another_command_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "urls.txt"
    src.write_text("http://127.0.0.1:9/a\n")
    state = tmp_path / "state.db"
    proc = cli("check", "--urls", str(src), "--out", str(state), "--site-level", "--timeout", "1")
    assert proc.returncode == 1, proc.stderr
    proc = cli("check", "--urls", str(src), "--out", str(state), "--timeout", "1")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "site_level" in proc.stderr
