"""`optout demo`, the README's main-job command, run as a user runs it: a subprocess, no network."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.support.run import run_cli


def test_demo_crawls_verifies_and_prints_the_paths(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    started = time.monotonic()
    proc = run_cli("demo", "--out", str(out), timeout=120)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert took < 30, took  # a few seconds on a laptop; generous for a loaded CI machine
    text = proc.stdout
    assert "UNEXPECTED" not in text and "problem" not in text
    for kind in ("robots", "tdmrep", "content-usage", "content-signal", "robots-tag", "ai-txt", "rsl", "iptc"):
        assert kind in text, kind
    assert "access" in text and "blocklist" in text and "fetch" in text
    assert "self-check (full): ok" in text and "VALID" in text
    for name in (
        "report.html", "items.jsonl", "decisions.jsonl", "summary.json", "run.json", "crawl.log", "registry.db",
        "registry.db.key", "evidence", "job",
    ):  # fmt: skip
        assert str(out / name) in text and (out / name).exists(), name
    assert (out / "bundle-photo-gallery.test" / "manifest.json").exists()
    assert (out / "disclosure" / "index.html").exists() and (out / "disclosure" / "crawler.json").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pages"]["stored"] == 6 and summary["honoured"]["total"] == summary["registry"]["records"]
    report = (out / "report.html").read_text()
    assert "publisher" in report and "cloudflare" in report  # the fixture sites' names label their origins
    # next steps: what to open, how to try the service on this registry, how to check one's own URL
    assert (out / "report.html").resolve().as_uri() in text
    assert f"optout serve --registry sqlite:///{(out / 'registry.db').resolve()}" in text
    assert "optout check https://" in text
    # ... and the AI Act public summary of this crawl: the printed command runs as printed
    [line] = [ln for ln in text.splitlines() if "optout summary " in ln]
    summarised = run_cli(*line.split("optout ", 1)[1].split(), timeout=120)
    assert summarised.returncode == 0, summarised.stdout + summarised.stderr
    assert (tmp_path / "summary" / "summary.json").exists()


def test_demo_is_twelve_sites_each_exportable(tmp_path: Path) -> None:
    """Every fixture site has a host name of its own: the summary, the report and the registry count twelve sites,
    and a rights holder's export of one of them verifies with the published key."""
    from crawler.demo import HOSTS

    out = tmp_path / "demo"
    proc = run_cli("demo", "--out", str(out), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "12 sites crawled (12 origins); the registry holds" in proc.stdout and "about 12 of them" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sites"] == 12 and summary["origins"] == 12
    assert sorted(summary["registry"]["by_site"]) == sorted(HOSTS.values())
    report = (out / "report.html").read_text()
    for host in HOSTS.values():
        assert f'data-find="http://{host}:' in report, host  # one row per site, by its own name
    registry = f"sqlite:///{(out / 'registry.db').resolve()}"
    vkey = run_cli("registry", "key", "--registry", registry).stdout.strip()
    for site in ("book-publisher.test", "magazine.test"):
        bundle = tmp_path / f"export-{site}"
        exported = run_cli("registry", "export", "--registry", registry, "--site", site, "--out", str(bundle))
        assert exported.returncode == 0, exported.stderr
        verified = run_cli("registry", "verify", str(bundle), "--vkey", vkey)
        assert verified.returncode == 0 and "VALID" in verified.stdout, verified.stdout + verified.stderr
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert manifest["query"]["site"] == site


def test_demo_starts_afresh_and_removes_only_its_own_files(tmp_path: Path) -> None:
    from crawler.demo import DEMO_DIRS, DEMO_FILES, clean

    for name in DEMO_FILES:
        (tmp_path / name).write_text("old")
    for name in (*DEMO_DIRS, "bundle-photo-gallery.test"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x").write_text("old")
    (tmp_path / "notes.txt").write_text("mine")
    clean(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_demo_reports_an_unwritable_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_cli("demo", "--out", str(blocker / "demo"), timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("optout demo: error: cannot write to") and "Traceback" not in proc.stderr


def test_demo_flags_an_answer_that_differs(tmp_path: Path) -> None:
    """run_demo exits 1 when any outcome is not what its case expects; this is the comparison it uses."""
    from crawler.demo import build_web, case_url, outcomes
    from crawler.fixtureweb import FixtureWeb

    with FixtureWeb() as web:
        cases = build_web(web)
        open_case = next(c for c in cases if c.expect_allowed)
        reserved = next(c for c in cases if c.expect_protocols == ("tdmrep",))
        # an allowed page refused, and a reserved page refused for the wrong reason
        robots, rsl = [{"protocol": "robots", "rule": "x"}], [{"protocol": "rsl", "rule": "y"}]
        lines = [
            {"url": case_url(web, open_case), "outcome": "not_fetched", "reservations": robots},
            {"url": case_url(web, reserved), "outcome": "fetched_not_stored", "reservations": rsl},
        ]
        (tmp_path / "decisions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        (tmp_path / "items.jsonl").write_text("")
        found = {o.case.path: o for o in outcomes(web, cases, tmp_path) if o.case in (open_case, reserved)}
    assert not found[open_case.path].ok and not found[reserved.path].ok
