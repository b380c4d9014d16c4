"""``optout recheck`` (issue 17, item 3): after a first pass (``optout filter`` of a WARC, ``optout check --urls``),
sites add a ``Disallow`` and a tdmrep.json reservation; the recheck lists exactly the entries that were allowed then
and are reserved now, with the new evidence, records each in the registry once, resumes after a kill without
duplicates, and its Parquet id list anti-joins the corpus correctly."""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from crawler.cli import main
from crawler.fixtureweb import FixtureWeb, Route, page
from tests.support.batch import cli, fast_web
from tests.support.run import ROOT

warcio = pytest.importorskip("warcio")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
from warcio.warcwriter import WARCWriter  # noqa: E402

from tests.support.warc import DATE, capture  # noqa: E402

AGENT = "OptOutBot"
TEXT = "text/plain"
OPEN = "User-agent: *\nAllow: /\n"
DISALLOW = f"User-agent: {AGENT}\nDisallow: /news/\n\nUser-agent: *\nAllow: /\n"
TDMREP = json.dumps([{"location": "/docs/*", "tdm-reservation": 1}])
POLICY = ("/robots.txt", "/.well-known/tdmrep.json", "/ai.txt")

web = pytest.fixture(fast_web, name="web")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def registry_records(url: str) -> list[dict]:
    from optout_registry import Registry

    reg = Registry.open(url)
    try:
        return [e.record for e in reg.records(size=reg.appended)]
    finally:
        reg.close()


def test_recheck_lists_exactly_what_sites_reserved_after_the_first_pass(web: FixtureWeb, tmp_path: Path) -> None:
    robots = web.site("robots", {"/robots.txt": Route(body=OPEN, content_type=TEXT)})
    tdm = web.site("tdm", {"/robots.txt": Route(body=OPEN, content_type=TEXT)})
    still = web.site("still", {"/robots.txt": Route(body=OPEN, content_type=TEXT)})
    # URL -> (headers of the archived response); a page excluded in the first pass by its own header
    urls = {
        f"{robots}/news/1": [],
        f"{robots}/news/2": [],
        f"{robots}/news/old": [("X-Robots-Tag", "noai")],
        f"{robots}/about": [],
        f"{tdm}/docs/a": [],
        f"{tdm}/blog/b": [],
        f"{still}/news/1": [],
        f"{still}/docs/a": [],
    }
    warc = tmp_path / "crawl.warc.gz"
    with warc.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        ids = {url: capture(writer, url, page(url).encode(), headers) for url, headers in urls.items()}
    first = tmp_path / "first"
    assert main(["filter", str(warc), "--out", str(first), "--agent", AGENT, "--timeout", "3"]) == 0
    before = {d["url"]: d for d in lines(first / "decisions.jsonl")}
    assert [u for u, d in before.items() if not d["allowed"]] == [f"{robots}/news/old"]
    # the same URLs through optout check --urls, the first pass of a URL-list corpus
    url_list = tmp_path / "urls.txt"
    url_list.write_text("\n".join(urls) + "\n")
    checked = cli("check", "--urls", str(url_list), "--site-level", "--agent", AGENT, "--timeout", "3")
    assert checked.returncode == 0, checked.stderr
    check_out = tmp_path / "check.jsonl"
    check_out.write_text(checked.stdout)

    # later: one site disallows /news/ for the agent, another reserves /docs/ in tdmrep.json
    web.site("robots", {"/robots.txt": Route(body=DISALLOW, content_type=TEXT)})
    web.site("tdm", {"/.well-known/tdmrep.json": Route(body=TDMREP, content_type="application/json")})
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    out = tmp_path / "recheck"
    args = ["recheck", str(first / "decisions.jsonl"), str(check_out), "--out", str(out), "--agent", AGENT]
    args += ["--registry", registry, "--timeout", "3"]
    asked_from = len(web.log)
    assert main(args) == 0

    newly = {f"{robots}/news/1": "robots", f"{robots}/news/2": "robots", f"{tdm}/docs/a": "tdmrep"}
    purge = lines(out / "purge.jsonl")
    warc_lines = [p for p in purge if p["id_field"] == "warc_record_id"]
    check_lines = [p for p in purge if p["id_field"] == "row"]
    assert {p["url"]: p["id"] for p in warc_lines} == {u: ids[u] for u in newly}
    # a site-level check did not read news/old's X-Robots-Tag: allowed then, so on the list now
    check_newly = {**newly, f"{robots}/news/old": "robots"}
    assert sorted(p["url"] for p in check_lines) == sorted(check_newly)
    assert {p["id"] for p in check_lines} == {str(list(urls).index(u)) for u in check_newly}
    for p in purge:
        assert [r["protocol"] for r in p["reservations"]] == [check_newly[p["url"]]], p
        assert p["allowed_at"] == (DATE if p["id_field"] == "warc_record_id" else None)
        served = DISALLOW if check_newly[p["url"]] == "robots" else TDMREP
        assert [e["sha256"] for e in p["evidence"]] == [hashlib.sha256(served.encode()).hexdigest()]
        assert p["reserved_since"] == p["evidence"][0]["fetched_at"]
        assert p["site_policy"]["source"] == "live"
    # today's site policies asked live, robots.txt first, each file once per origin
    for name in ("robots", "tdm", "still"):
        paths = [h.path for h in web.log[asked_from:] if h.site == name]
        assert paths and paths[0] == "/robots.txt" and sorted(paths) == sorted(set(paths)) <= sorted(POLICY), paths
    assert not (out / "unresolved.jsonl").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["purge"] == 7 and summary["reserved_by_protocol"] == {"robots": 5, "tdmrep": 2}

    # the Parquet id list anti-joins the corpus: what was kept then, minus what is reserved now
    kept_then = pa.table({"id": [d["warc_record_id"] for d in before.values() if d["allowed"]]})
    purge_ids = pq.read_table(out / "purge-ids.parquet")
    assert purge_ids.schema.field("id").type == pa.string()
    remaining = kept_then.join(purge_ids, keys="id", join_type="left anti")
    assert sorted(remaining.column("id").to_pylist()) == sorted(
        ids[u] for u in urls if u not in newly and u != f"{robots}/news/old"
    )

    # one registry record per purged entry and reservation, decision "purged", evidence the new files
    records = registry_records(registry)
    assert sorted(r["target"]["url"] for r in records) == sorted([*newly, *check_newly])
    assert {r["decision"] for r in records} == {"purged"}
    assert {r["mechanism"] for r in records} == {"robots.txt", "tdmrep.wellknown"}

    # the same command again: nothing new, nothing twice
    text = (out / "purge.jsonl").read_text()
    assert main(args) == 0
    assert (out / "purge.jsonl").read_text() == text
    assert len(registry_records(registry)) == len(records)


def test_kill_9_and_resume_lists_every_entry_once(web: FixtureWeb, tmp_path: Path) -> None:
    origins, per_origin = 24, 20
    names = [f"s{i}" for i in range(origins)]
    for i, name in enumerate(names):  # every third origin disallows everything for the agent now
        body = f"User-agent: {AGENT}\nDisallow: /\n" if i % 3 == 0 else OPEN
        web.site(name, {"/robots.txt": Route(body=body, content_type=TEXT, delay=0.15)})
    src = tmp_path / "decisions.jsonl.gz"
    entries = [
        {"url": f"{web.origin(name)}/p{n}", "allowed": True, "warc_record_id": f"<urn:uuid:{name}-{n}>"}
        for name in names
        for n in range(per_origin)
    ]
    with gzip.open(src, "wt") as f:
        f.write("".join(json.dumps(e) + "\n" for e in entries))
    out = tmp_path / "out"
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    args = ["recheck", str(src), "--out", str(out), "--agent", AGENT, "--registry", registry]
    args += ["--batch", str(2 * per_origin), "--concurrency", "1"]

    first = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    state = out / "recheck-state.db"

    def done() -> int:
        try:
            db = sqlite3.connect(state)
            try:
                row = db.execute("SELECT value FROM meta WHERE key = 'done'").fetchone()
            finally:
                db.close()
        except sqlite3.Error:
            return 0
        return int(row[0]) if row else 0

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and done() < 4 * per_origin:
        time.sleep(0.02)
    first.kill()
    first.wait()
    stopped = done()
    killed_at = time.time()
    assert 4 * per_origin <= stopped < len(entries), stopped
    assert not (out / "purge.jsonl").exists()

    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert f"{stopped:,} rows from the state file" in proc.stderr
    purge = lines(out / "purge.jsonl")
    expected = [e["warc_record_id"] for i, e in enumerate(entries) if (i // per_origin) % 3 == 0]
    assert [p["id"] for p in purge] == expected
    # robots.txt once per origin over both runs for the rows the killed run had committed (their answers are in
    # the state file, its policy files in the state file's cache), and once after the kill for any other origin
    # (one whose request the kill cut off may have been asked before)
    for i, name in enumerate(names):
        hits = [h for h in web.hits(name) if h.path == "/robots.txt"]
        if (i + 1) * per_origin <= stopped:
            assert len(hits) == 1, name
        else:
            assert len([h for h in hits if h.time > killed_at]) <= 1, name
    records = registry_records(registry)
    assert Counter(r["target"]["url"] for r in records) == Counter(p["url"] for p in purge)


def test_unreachable_sites_are_not_purged_but_listed(web: FixtureWeb, tmp_path: Path) -> None:
    down = web.site("down", {"/robots.txt": Route(500, "oops", content_type=TEXT)})
    src = tmp_path / "items.jsonl"
    items = [  # optout crawl's items: every one was stored
        {"url": f"{down}/a", "fetched_at": "2025-01-01T00:00:00Z", "evidence": {}},
        {"url": "not a url", "fetched_at": "2025-01-01T00:00:00Z", "evidence": {}},
    ]
    src.write_text("".join(json.dumps(i) + "\n" for i in items) + "{broken\n")
    out = tmp_path / "out"
    from crawler.cli import build_parser, make_policy, read_blocklist
    from crawler.identity import user_agent_for
    from crawler.recheck import run_recheck

    parsed = build_parser().parse_args(["recheck", str(src), "--out", str(out), "--timeout", "2"])
    policy = make_policy(parsed)
    status = run_recheck(parsed, policy, read_blocklist(None), user_agent_for(policy.agent))
    assert status == 1
    assert not (out / "purge.jsonl").read_text()
    unresolved = lines(out / "unresolved.jsonl")
    assert [u["url"] for u in unresolved] == [f"{down}/a"] and unresolved[0]["id_field"] == "url"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bad_lines"] == 2 and summary["unresolved"] == 1 and summary["purge"] == 0


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recheck", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err
    src = tmp_path / "d.jsonl"
    src.write_text("")
    assert main(["recheck", str(src), "--out", str(tmp_path / "o")]) == 0
    other = tmp_path / "e.jsonl"
    other.write_text("")
    assert main(["recheck", str(other), "--out", str(tmp_path / "o")]) == 2  # another command, same state
    err = capsys.readouterr().err
    assert "another command" in err and "Traceback" not in err
