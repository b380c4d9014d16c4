"""End-to-end: `optout crawl` (the real CLI, in a subprocess) against loopback fixture sites.

The main test crawls the demo's fixture web (crawler/demo.py, the single source of the cases) and checks the run
folder against the fixture's expectations: exactly the allowed pages in items.jsonl, one registry record per
honoured opt-out, a site export that verifies, and a report whose numbers are those of summary.json. The others
cover Ctrl-C and resume, scope and limits, and bad input: invalid and unreachable seeds, a full disk, a read-only
folder and a damaged JOBDIR, each with a one-line message, a non-zero exit and nothing already written lost.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from crawler.demo import HOSTS, build_web, case_url
from crawler.fixtureweb import FixtureWeb, Route, page
from tests.support.run import ROOT, run_cli

TEXT = "text/plain"


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def registry_records(out: Path) -> list[dict[str, Any]]:
    from optout_registry import Registry

    with Registry.open(f"sqlite:///{out / 'registry.db'}", create=False) as reg:
        return [entry.record for entry in reg.records()]


def report_numbers(html: str) -> dict[str, str]:
    """Every number the report shows with the summary.json key it comes from (data-key attributes)."""
    return {k: v.replace(",", "") for k, v in re.findall(r'data-key="([^"]+)">([^<]*)<', html)}


def lookup(summary: dict[str, Any], key: str) -> Any:
    value: Any = summary
    for part in key.split("."):
        value = value[part]
    return value


def summary_sites(out: Path) -> int:
    return int(json.loads((out / "summary.json").read_text())["sites"])


def crawl_cmd(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return run_cli("crawl", *args, timeout=timeout)


def test_crawl_fixture_web_end_to_end(web: FixtureWeb, tmp_path: Path) -> None:
    cases = build_web(web)
    out = tmp_path / "run"
    blocklist = tmp_path / "blocklist.txt"
    blocklist.write_text(f"# never fetch\n{HOSTS['blocked']}\n")
    seeds = [case_url(web, c) for c in cases if c.seed]
    # the sites' .test names resolve to loopback through the crawl's resolver, given as -s settings
    named = [arg for k, v in web.crawl_settings().items() for arg in ("-s", f"{k}={json.dumps(v)}")]
    proc = crawl_cmd(
        *seeds, "--out", str(out), "--agent", "OptOutBot", "--blocklist", str(blocklist), "--depth", "2", *named
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr

    # items.jsonl: exactly the pages the fixture web allows (seeds and the pages found by link and sitemap)
    items = lines(out / "items.jsonl")
    allowed = {case_url(web, c) for c in cases if c.expect_allowed}
    assert sorted(i["url"] for i in items) == sorted(allowed)
    for item in items:
        assert item["optout"]["allowed"] is True and item["optout"]["purpose"] == "train-ai"
        evidence = item["evidence"]
        assert re.fullmatch(r"[0-9a-f]{64}", evidence["response"]["sha256"])
        assert {f["url"].rsplit("/", 1)[-1] for f in evidence["policy_files"]} >= {"robots.txt", "tdmrep.json"}
        if item["content_type"] == "text/html":
            assert item["title"] and item["text"] and isinstance(item["links"], list)
    home = next(i for i in items if i["url"] == case_url(web, cases[0]))
    assert case_url(web, cases[2]) in home["links"]  # "/linked" was found on the home page

    # what was refused was refused for the expected reason; what may not be fetched never was
    decisions = {d["url"]: d for d in lines(out / "decisions.jsonl")}
    for case in cases:
        if not case.expect_allowed:
            got = {r["protocol"] for r in decisions[case_url(web, case)]["reservations"]}
            assert set(case.expect_protocols) <= got, (case, got)
    assert not web.hits("robots", "/private/report") and not web.hits("down", "/")
    assert not web.hits("blocked")
    assert {h.host.rpartition(":")[0] for h in web.hits()} == {HOSTS[s] for s in web.servers if s != "blocked"}
    assert all(h.host.rpartition(":")[0] == HOSTS[h.site] for h in web.hits())  # each site asked by its own name
    assert summary_sites(out) == 12

    # one registry record per honoured opt-out, with the same URL and protocol
    refused = [d for d in decisions.values() if d["outcome"] in ("not_fetched", "fetched_not_stored")]
    honoured = Counter((d.get("final_url") or d["url"], r["protocol"]) for d in refused for r in d["reservations"])
    records = registry_records(out)
    assert Counter((r["target"]["url"], r["rule"]["protocol"]) for r in records) == honoured
    assert {r["decision"] for r in records} == {"not_fetched", "fetched_not_stored"}

    # the summary and the report agree, and both agree with the files
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pages"]["stored"] == len(items)
    assert summary["honoured"]["total"] == sum(honoured.values()) == summary["registry"]["records"]
    assert summary["honoured"]["by_protocol"] == dict(Counter(p for _, p in honoured.elements()))
    report = (out / "report.html").read_text()
    shown = report_numbers(report)
    assert {"pages.stored", "pages.refused", "honoured.total", "origins", "registry.records"} <= set(shown)
    for key, value in shown.items():
        expected = summary["pages"]["http_errors"] + summary["pages"]["errors"] if key == "pages.failed" else None
        assert value == str(expected if expected is not None else lookup(summary, key)), key
    for protocol, count in summary["honoured"]["by_protocol"].items():
        assert f'data-protocol="{protocol}" data-count="{count}"' in report
    assert summary["registry"]["checkpoint"] in report.replace("&#x27;", "'").replace("&quot;", '"') or (
        summary["registry"]["checkpoint"].splitlines()[0] in report
    )
    # evidence links resolve to files next to the report, with the bytes the records hash
    links = re.findall(r'href="(evidence/[0-9a-f]{64}\.\w+)"', report)
    assert links
    import hashlib

    for link in set(links):
        assert hashlib.sha256((out / link).read_bytes()).hexdigest() == Path(link).stem

    # a rights holder's export of one site verifies offline against the registry's key
    registry = f"sqlite:///{out / 'registry.db'}"
    bundle = tmp_path / "bundle"
    exported = run_cli(
        "registry", "export", "--registry", registry, "--site", "photo-gallery.test", "--out", str(bundle)
    )
    assert exported.returncode == 0, exported.stderr
    vkey = run_cli("registry", "key", "--registry", registry).stdout.strip()
    verified = run_cli("registry", "verify", str(bundle), "--vkey", vkey)
    assert verified.returncode == 0 and "VALID" in verified.stdout, verified.stdout + verified.stderr


def _wait_for_items(out: Path, count: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        path = out / "items.jsonl"
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} items after {timeout}s")


def _slow_site(web: FixtureWeb, pages: int = 30, delay: float = 0.15) -> str:
    links = "".join(f'<a href="/p/{i}">{i}</a>' for i in range(pages))
    routes: dict[str, Route | str] = {"/": page("home", links)}
    routes.update({f"/p/{i}": Route(body=page(f"page {i}", "<p>text</p>"), delay=delay) for i in range(pages)})
    return web.site("s", routes)


def _interrupted_run(web: FixtureWeb, out: Path) -> list[str]:
    """Start a crawl of a slow site, press Ctrl-C after a few items; returns the command line."""
    base = _slow_site(web)
    cmd = [sys.executable, "-m", "crawler.cli", "crawl", base + "/", "--out", str(out), "--concurrency", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_items(out, 4)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "resume" in stderr
    return cmd


def test_ctrl_c_keeps_everything_and_the_same_command_resumes(web: FixtureWeb, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = _interrupted_run(web, out)
    first = lines(out / "items.jsonl")  # every line whole
    assert 4 <= len(first) < 31
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finish_reason"] == "shutdown" and summary["pages"]["stored"] == len(first)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr
    urls = [i["url"] for i in lines(out / "items.jsonl")]
    assert len(urls) == len(set(urls)) == 31  # the home page and 30 pages, none twice
    assert [i["url"] for i in lines(out / "items.jsonl")[: len(first)]] == [i["url"] for i in first]
    fetched = Counter(h.path for h in web.hits("s") if h.path.startswith("/p/"))
    assert len(fetched) == 30 and max(fetched.values()) == 1  # resumed, not restarted
    run = json.loads((out / "run.json").read_text())
    assert [r["reason"] for r in run["runs"]] == ["shutdown", "finished"]
    assert json.loads((out / "summary.json").read_text())["pages"]["stored"] == 31
    # once complete, the same command says so and changes nothing
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert again.returncode == 0 and "nothing new to crawl" in again.stderr, again.stderr
    assert len(lines(out / "items.jsonl")) == 31


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("garbage", "requests.db is damaged"),
        ("cut in half", "requests.db is damaged"),
        ("earlier version", "queue files of an earlier version"),
    ],
)
def test_damaged_jobdir_is_refused_and_nothing_is_lost(
    tmp_path: Path, damage: str, message: str, interrupted: Path
) -> None:
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    journal = out / "job" / "requests.db"
    data = journal.read_bytes()
    if damage == "garbage":
        journal.write_bytes(b"\x80\x04garbage{" * 100)
    elif damage == "cut in half":
        journal.write_bytes(data[: len(data) // 2])
    else:
        journal.unlink()
        (out / "job" / "requests.queue").mkdir()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    proc = crawl_cmd("http://127.0.0.1:9/", "--out", str(out), timeout=30)
    assert proc.returncode == 2
    assert message in proc.stderr and "Move" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()[-1]) > 0
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One crawl stopped with Ctrl-C, leaving requests in its journal (copied by the tests that damage it)."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    with FixtureWeb() as web:
        _interrupted_run(web, out)
    with closing(sqlite3.connect(out / "job" / "requests.db")) as db:
        assert db.execute("SELECT count(*) FROM request WHERE data IS NOT NULL").fetchone()[0] > 0
    yield out


def test_scope_depth_and_page_limit(web: FixtureWeb, tmp_path: Path) -> None:
    other = web.site("other", {"/": page("elsewhere")}).replace("127.0.0.1", "localhost")
    chain = {f"/d{i}": page(f"depth {i}", f'<a href="/d{i + 1}">next</a>') for i in range(1, 6)}
    base = web.site("s", {"/": page("home", f'<a href="/d1">in</a> <a href="{other}/">out</a>'), **chain})
    proc = crawl_cmd(base + "/", "--out", str(tmp_path / "a"), "--depth", "2")
    assert proc.returncode == 0, proc.stderr
    assert sorted(i["url"] for i in lines(tmp_path / "a" / "items.jsonl")) == [base + "/", base + "/d1", base + "/d2"]
    assert not web.hits("other")  # another site: out of scope
    proc = crawl_cmd(base + "/", "--out", str(tmp_path / "b"), "--depth", "0", "--max-pages", "3")
    assert proc.returncode == 0, proc.stderr
    assert len(lines(tmp_path / "b" / "items.jsonl")) == 3
    proc = crawl_cmd(
        base + "/",
        "--out",
        str(tmp_path / "c"),
        "--depth",
        "1",
        "--allowed-domain",
        "localhost",
        "--allowed-domain",
        "127.0.0.1",
    )
    assert proc.returncode == 0, proc.stderr
    assert {i["url"] for i in lines(tmp_path / "c" / "items.jsonl")} == {base + "/", base + "/d1", other + "/"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not a url"], "invalid seed URL"),
        (["ftp://example.com/"], "invalid seed URL"),
        (["http://example.com:99999/"], "invalid seed URL"),
        ([], "no seeds"),
        (["http://127.0.0.1:9/", "--purpose", "resell"], "unknown purpose"),
        (["http://127.0.0.1:9/", "--blocklist", "/nonexistent/list.txt"], "cannot read"),
        (["http://127.0.0.1:9/", "--depth", "-1"], "--depth"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "run"
    proc = crawl_cmd(*args, "--out", str(out), timeout=30)
    assert proc.returncode == 2, proc.stderr
    error = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(error) == 1 and message in error[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()  # nothing written for a command that could not run


def test_unreachable_seed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = crawl_cmd("http://127.0.0.1:9/", "--out", str(out), "--timeout", "3", timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "could not be crawled" in proc.stderr and "127.0.0.1:9" in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["unreachable_seeds"]) == ["http://127.0.0.1:9/"]
    # robots.txt could not be fetched: nothing was, and that is an opt-out honoured (fail closed) and recorded
    assert {r["rule"]["protocol"] for r in registry_records(out)} == {"fetch", "robots"}


def _many_pages(web: FixtureWeb, n: int = 40) -> str:
    """Pages of ~8 KB of text each: enough to fill a small disk quickly."""
    text = "<p>" + "lorem ipsum dolor sit amet " * 300 + "</p>"
    links = "".join(f'<a href="/p/{i}">{i}</a>' for i in range(n))
    return web.site("s", {"/": page("home", links), **{f"/p/{i}": page(f"p{i}", text) for i in range(n)}})


@contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_full_tmpfs_keeps_whole_lines(web: FixtureWeb, tmp_path: Path) -> None:
    base = _many_pages(web)
    with tmpfs(tmp_path / "small", "size=192k") as small:
        out = small / "run"
        registry = f"sqlite:///{tmp_path / 'registry.db'}"
        proc = crawl_cmd(base + "/", "--out", str(out), "--registry", registry)
        assert proc.returncode == 1, proc.stderr
        assert "No space left on device" in proc.stderr and "Traceback" not in proc.stderr
        items = lines(out / "items.jsonl")  # whole lines only: a cut line was taken back
        assert items and all(i["optout"]["allowed"] for i in items)
        assert all(lines(out / "decisions.jsonl"))


def test_read_only_folder(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
        proc = crawl_cmd("http://127.0.0.1:9/", "--out", str(ro / "run"), timeout=30)
        assert proc.returncode == 2
        assert "Read-only file system" in proc.stderr and "Traceback" not in proc.stderr


def test_scrapy_crawl_compliant_writes_the_same_files(web: FixtureWeb, tmp_path: Path) -> None:
    base = web.site(
        "s",
        {
            "/robots.txt": Route(body="User-agent: *\nDisallow: /private\n", content_type=TEXT),
            "/": page("home", '<a href="/private">p</a> <a href="/open">o</a>'),
            "/open": page("open"),
        },
    )
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "SCRAPY_SETTINGS_MODULE"}
    proc = subprocess.run(
        [
            sys.executable, "-m", "scrapy", "crawl", "compliant", "-a", f"seeds={base}/",
            "-s", f"OPTOUT_OUT_DIR={out}", "-s", f"OPTOUT_REGISTRY_URL=sqlite:///{out / 'registry.db'}",
            "-s", "LOG_LEVEL=WARNING",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=90, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(i["url"] for i in lines(out / "items.jsonl")) == [base + "/", base + "/open"]
    assert not web.hits("s", "/private")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["honoured"]["by_protocol"] == {"robots": 1} and (out / "report.html").exists()


def test_a_folder_keeps_one_purpose(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    run = {"purpose": "train-ai", "agent": "OptOutBot", "mode": "conservative", "runs": [{"reason": "finished"}]}
    (out / "run.json").write_text(json.dumps(run))
    proc = crawl_cmd("http://127.0.0.1:9/", "--out", str(out), "--purpose", "search", timeout=30)
    assert proc.returncode == 2 and "holds a crawl with purpose 'train-ai', not 'search'" in proc.stderr
    assert not (out / "items.jsonl").exists() or not (out / "items.jsonl").read_bytes()
