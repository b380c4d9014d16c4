"""summary.html of ``optout summary`` in headless Chromium (the WebDriver set-up of tests/support/browser.py):
the template's headings are there in order and visible, the provider's blanks stand out, the tables show the
figures of summary.json, nothing runs off the page sideways, nothing is asked of the network and no script error
is logged. Screenshots go to artifacts_dir("summary")."""

from __future__ import annotations

from pathlib import Path

from crawler.summary_template import SECTIONS
from tests.support.browser import Browser, artifacts_dir
from tests.support.summary import demo_crawl, summarise

CHECK = """
const heads = Array.from(document.querySelectorAll('h2[id], h3[id]')).map(h => [h.id, h.textContent,
  h.getBoundingClientRect().height > 0]);
const blank = document.querySelector('.blank');
const tables = Array.from(document.querySelectorAll('table')).map(t =>
  Array.from(t.querySelectorAll('tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent)));
return {
  title: document.title, heads, tables,
  blankColour: blank ? getComputedStyle(blank).backgroundColor : null,
  blanks: document.querySelectorAll('.blank').length,
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  network: performance.getEntriesByType('resource').map(e => e.name),
};
"""


def test_the_summary_renders(browser: Browser, tmp_path: Path) -> None:
    demo = demo_crawl(tmp_path / "demo")
    out = tmp_path / "summary"
    data = summarise(str(demo), "--out", str(out), "--provider", "Example AI", "--model", "example-1.0")
    browser.cmd("POST", "/window/rect", {"width": 1300, "height": 1000})
    browser.open(out / "summary.html")
    got = browser.js(CHECK)
    assert got["title"] == "Public Summary of Training Content for general-purpose AI models"
    assert [(h[0], h[1]) for h in got["heads"]] == [(f"s{n}", f"{n}. {t}") for n, t in SECTIONS]
    assert all(h[2] for h in got["heads"])
    assert got["blankColour"] == "rgb(255, 243, 205)" and got["blanks"] >= 10
    listed = data["sections"]["2.3"]["domains"]["value"]["listed"]
    domain_table = next(t for t in got["tables"] if t and t[0][1] == listed[0]["domain"])
    assert [(r[1], r[2]) for r in domain_table] == [(r["domain"], f"{r['bytes']:,}") for r in listed]
    optouts = {r["protocol"]: r["records"] for r in data["sections"]["3.1"]["optouts"]["value"]["by_protocol"]}
    table31 = next(t for t in got["tables"] if t and t[0][0] in optouts and len(t[0]) == 3)
    assert {r[0]: int(r[1].replace(",", "")) for r in table31} == optouts
    assert got["network"] == [] and browser.console_errors() == []
    assert got["overflow"] <= 1, "the page is wider than the window"
    browser.screenshot(artifacts_dir("summary") / "summary-demo.png")
    browser.js("document.getElementById('s2.3').scrollIntoView()")
    browser.screenshot(artifacts_dir("summary") / "summary-demo-2.3.png")
    browser.js("document.getElementById('s3.1').scrollIntoView()")
    browser.screenshot(artifacts_dir("summary") / "summary-demo-3.1.png")
    for width in (800,):
        browser.cmd("POST", "/window/rect", {"width": width, "height": 1000})
        assert browser.js("return document.documentElement.scrollWidth - window.innerWidth") <= 1, width
        browser.screenshot(artifacts_dir("summary") / f"summary-demo-{width}px.png")
