"""The crawl report in a real headless browser (Debian's chromium, driven by its chromedriver over plain W3C
WebDriver HTTP calls, so nothing is downloaded and no Python browser package is needed).

Checks that the page renders as meant, with a dozen sites and with 10,000: every number card is laid out and
equals summary.json, both charts have visible bars, the site table has every row, the filter works, nothing runs
off the page sideways, no script error is logged, and the page asks the network for nothing. Screenshots are kept
under artifacts_dir("report") (the paths are printed) to look at.

Set-up (tests/support/browser.py, shared with the service's browser test): chromium and chromium-driver are
installed with apt-get when missing and running as root; otherwise the tests are skipped with the reason.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from crawler.report import render_report
from crawler.runsummary import SiteRow
from tests.support.browser import BROKEN_WORDS_JS, Browser, artifacts_dir

PROTOCOLS = ["robots", "tdmrep", "content-usage", "content-signal", "robots-tag", "ai-txt", "rsl", "access", "fetch"]


def synthetic(out: Path, sites: int) -> dict[str, Any]:
    """A run of ``sites`` origins with records and evidence files, in the structures crawl.collect builds."""
    (out / "evidence").mkdir(parents=True, exist_ok=True)
    rows, events, honoured = [], [], Counter()
    start = 1_767_000_000.0
    for i in range(sites):
        origin = f"https://www.site{i:05d}.example"
        row = SiteRow(origin, site=f"site{i:05d}.example", stored=(i * 7) % 23)
        for j in range(i % 4):
            protocol = PROTOCOLS[(i + j) % len(PROTOCOLS)]
            rule = f"line {j + 2}: Disallow: /private/{j}/ (User-agent: OptOutBot)"
            row.protocols[protocol] += 1
            row.rules[f"{protocol}: {rule}"] += 1
            row.not_fetched += 1
            honoured[protocol] += 1
            sha = f"{i:032x}{j:032x}"
            if i < 50:  # evidence copies for the first few; the rest show the hash only
                (out / "evidence" / f"{sha}.txt").write_text(f"User-agent: *\nDisallow: /private/{j}/\n")
            row.records.append(
                {
                    "index": i * 4 + j,
                    "url": f"{origin}/private/{j}/page<{i}>",
                    "protocol": protocol,
                    "rule": rule,
                    "decision": "not_fetched",
                    "source": f"{origin}/robots.txt",
                    "evidence_sha256": sha,
                    "evidence_path": f"evidence/{sha}.txt" if i < 50 else None,
                }
            )
            events.append((start + i * 37 + j, protocol))
        row.errors = 1 if i % 97 == 0 else 0
        rows.append(row)
    total = sum(honoured.values())
    summary = {
        "purpose": "train-ai",
        "agent": "OptOutBot",
        "mode": "conservative",
        "user_agent": "Mozilla/5.0 (compatible; OptOutBot/0.1; +https://example.org/bot)",
        "runs": 2,
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T10:00:00Z",
        "finish_reason": "finished",
        "elapsed_seconds": 36000.0,
        "pages_per_second": 12.5,
        "pages": {
            "stored": sum(r.stored for r in rows),
            "refused": total,
            "not_fetched": total,
            "fetched_not_stored": 0,
            "http_errors": sum(r.errors for r in rows),
            "errors": 0,
        },
        "origins": sites,
        "honoured": {"total": total, "by_protocol": dict(honoured.most_common()), "by_decision": {}},
        "registry": {
            "url": "sqlite:///tmp/registry.db",
            "records": total,
            "tree_size": total,
            "vkey": "optout-registry.local/abc+0123abcd+AXGvkeyvkeyvkey",
            "checkpoint": f"optout-registry.local/abc\n{total}\nrootroot=\n\n— optout-registry.local/abc sig=\n",
            "by_site": {"site00001.example": 1},
        },
        "problems": [],
    }
    rows.sort(key=lambda r: (-r.refused, -r.stored, r.origin))
    (out / "report.html").write_text(render_report(summary, rows, sorted(events)), encoding="utf-8")
    return summary


CHECK = """
const keys = {};
for (const el of document.querySelectorAll('[data-key]')) {
  const r = el.getBoundingClientRect();
  keys[el.getAttribute('data-key')] = [el.textContent, r.width > 0 && r.height > 0];
}
const bars = id => Array.from(document.querySelectorAll('#' + id + ' rect.bar'))
  .filter(b => { const r = b.getBoundingClientRect(); return r.width > 0 && r.height > 0; }).length;
const rows = document.querySelectorAll('#sites .rows > .gr');
const first = rows.length ? rows[0].getBoundingClientRect() : null;
return {
  title: document.title,
  keys: keys,
  protocolBars: bars('chart-protocols'),
  timeBars: bars('chart-time'),
  rows: rows.length,
  firstRowVisible: !!first && first.width > 600 && first.height > 10,
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  checkpoint: (document.getElementById('checkpoint') || {}).textContent || '',
  network: performance.getEntriesByType('resource').map(e => e.name).filter(n => /^https?:/.test(n)),
};
"""

FILTER = """
const box = document.getElementById('site-filter');
box.value = arguments[0];
box.dispatchEvent(new Event('input'));
const shown = Array.from(document.querySelectorAll('#sites .rows > .gr')).filter(r => r.style.display !== 'none');
return [shown.length, document.getElementById('sites-shown').textContent];
"""


def _check_page(browser: Browser, summary: dict[str, Any], sites: int) -> dict[str, Any]:
    got = browser.js(CHECK)
    assert got["title"] == "optout crawl report"
    pages = summary["pages"]
    expected = {
        "pages.stored": pages["stored"],
        "pages.refused": pages["refused"],
        "pages.not_fetched": pages["not_fetched"],
        "pages.fetched_not_stored": pages["fetched_not_stored"],
        "pages.failed": pages["http_errors"] + pages["errors"],
        "honoured.total": summary["honoured"]["total"],
        "origins": summary["origins"],
        "registry.records": summary["registry"]["records"],
        "registry.tree_size": summary["registry"]["tree_size"],
    }
    for key, value in expected.items():
        text, visible = got["keys"][key]
        assert text.replace(",", "") == str(value) and visible, (key, text, visible)
    assert got["protocolBars"] == len(summary["honoured"]["by_protocol"])
    assert got["timeBars"] > 0
    assert got["rows"] == sites and got["firstRowVisible"]
    assert got["overflow"] <= 1, "the page is wider than the window"
    assert summary["registry"]["checkpoint"].splitlines()[0] in got["checkpoint"]
    assert got["network"] == []
    assert browser.console_errors() == []
    return got


def test_report_renders(browser: Browser, tmp_path: Path) -> None:
    summary = synthetic(tmp_path, 12)
    browser.open(tmp_path / "report.html")
    _check_page(browser, summary, 12)
    assert browser.js(FILTER, "site00003") == [1, "1"]
    assert browser.js(FILTER, "") == [12, "12"]
    # the first site's records open, and its evidence link points at the file beside the report
    link = browser.js(
        "const d = document.querySelector('#sites .rows details'); d.open = true;"
        "const a = d.querySelector('a'); return [a.getBoundingClientRect().height > 0, a.getAttribute('href')];"
    )
    assert link[0] and (tmp_path / link[1]).exists()
    browser.screenshot(artifacts_dir("report") / "report-12-sites.png")
    # "+N other rules" leads to the list of every rule of that site, opening it
    target = browser.js(
        "document.querySelectorAll('#sites details').forEach(d => d.open = false);"
        "const a = document.querySelector('#sites a.more'); a.click();"
        "const t = document.getElementById(a.getAttribute('href').slice(1));"
        "return [t.closest('details').open, t.nextElementSibling.querySelectorAll('li').length,"
        " a.textContent.match(/\\d+/)[0]];"
    )
    assert target[0] is True and target[1] == int(target[2]) + 1, target
    at_widths(browser, "report-12-sites")


def at_widths(browser: Browser, name: str) -> None:
    """Screenshots of the site table, its first records open, at 1400 and 800 px: no word in it is broken over two
    lines, and the page is never wider than the window."""
    browser.js("document.querySelectorAll('#sites details').forEach((d, i) => d.open = i < 3)")
    for width in (1400, 800):
        browser.cmd("POST", "/window/rect", {"width": width, "height": 1000})
        browser.js("document.getElementById('sites').scrollIntoView()")
        time.sleep(0.2)
        browser.screenshot(artifacts_dir("report") / f"{name}-table-{width}px.png")
        assert browser.js(BROKEN_WORDS_JS, "#sites, #cards, .cards") == [], width
        assert browser.js("return document.documentElement.scrollWidth - window.innerWidth") <= 1, width
    browser.cmd("POST", "/window/rect", {"width": 1300, "height": 1000})


def test_a_short_crawl_is_not_charted_over_time(browser: Browser, tmp_path: Path) -> None:
    """Opt-outs honoured within seconds get a sentence, not a chart of one-second columns."""
    summary = synthetic(tmp_path, 3)
    events = [(1_767_000_000.0 + i / 10, "robots") for i in range(12)]
    rows = [SiteRow("http://a.example", site="a.example")]
    (tmp_path / "report.html").write_text(render_report(summary, rows, events), encoding="utf-8")
    browser.open(tmp_path / "report.html")
    got = browser.js(
        "return [!!document.getElementById('chart-time'), "
        "(document.getElementById('chart-time-note') || {}).textContent || '']"
    )
    assert got[0] is False and "too short a crawl to chart" in got[1] and "12 opt-outs" in got[1], got


def test_report_with_10000_sites(browser: Browser, tmp_path: Path) -> None:
    summary = synthetic(tmp_path, 10_000)
    size = (tmp_path / "report.html").stat().st_size
    took = browser.open(tmp_path / "report.html")
    print(f"10,000-site report: {size / 1e6:.1f} MB, loaded and laid out in {took:.1f}s")
    assert took < 15
    _check_page(browser, summary, 10_000)
    started = time.monotonic()
    shown, label = browser.js(FILTER, "site0999")
    assert shown == 10 and label == "10"
    assert time.monotonic() - started < 5
    browser.js(FILTER, "")
    browser.js("window.scrollTo(0, document.getElementById('sites').offsetTop + 20000)")
    browser.screenshot(artifacts_dir("report") / "report-10000-sites-table.png")
    browser.js("window.scrollTo(0, 0)")
    browser.screenshot(artifacts_dir("report") / "report-10000-sites.png")


def test_the_demo_report(browser: Browser, tmp_path: Path) -> None:
    """The report `optout demo` writes, with its twelve named sites: every number matches summary.json, and at
    1400 and 800 px no word in the site table is broken."""
    import json

    from tests.support.run import run_cli

    out = tmp_path / "demo"
    assert run_cli("demo", "--out", str(out), timeout=120).returncode == 0
    summary = json.loads((out / "summary.json").read_text())
    browser.open(out / "report.html")
    got = browser.js(CHECK)
    assert got["rows"] == 12 == summary["origins"] and got["overflow"] <= 1 and got["network"] == []
    for key in ("pages.stored", "pages.refused", "honoured.total", "registry.records"):
        section, name = key.split(".")
        assert got["keys"][key][0].replace(",", "") == str(summary[section][name]), key
    assert browser.console_errors() == []
    browser.screenshot(artifacts_dir("report") / "demo-report.png")
    at_widths(browser, "demo-report")
