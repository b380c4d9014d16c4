"""The rights holder's page in headless Chromium (Debian's chromium + chromedriver through Selenium): search →
verify the domain on a loopback fixture site → browse records (chart, rule, evidence, paging) → download the
bundle (checked with the offline verifier) → check an inclusion proof in the browser (and see it fail against
the wrong key or a doctored leaf) → check history with a kept checkpoint → send a complaint. Screenshots are
kept as artifacts (path printed)."""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the [service] extra is not installed")
pytest.importorskip("selenium", reason="selenium is not installed (test extra)")

from crawler.fixtureweb import FixtureWeb, Route
from optout_registry.note import Signer
from optout_registry.record import evidence_ref, new_record
from optout_registry.registry import Registry
from optout_registry.service.app import ServiceConfig
from optout_registry.service.guard import RateLimits
from optout_registry.service.ownership import CHALLENGE_PATH, static_resolver
from optout_registry.service.testing import LiveServer
from optout_registry.verify import verify_export
from tests.support.browser import BROKEN_WORDS_JS, artifacts_dir, require_chromium, selenium_chrome
from tests.support.registry import ROBOTS, make_records

HOSTILE_URL = "https://news.example.net/<script>window.__pwned=1</script>"
HOSTILE_RULE = "<img src=x onerror=window.__pwned=2>"


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require_chromium("the service browser test")
    downloads = tmp_path_factory.mktemp("downloads")
    d = selenium_chrome(tmp_path_factory.mktemp("chromium-profile"), downloads)
    d.downloads = downloads
    try:
        yield d
    finally:
        d.quit()


def wait_for(cond: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = cond()
        except Exception:
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_search_verify_browse_download_and_check_a_proof_in_the_browser(driver: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    shots = artifacts_dir("service-browser")
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    hostile = new_record(
        url=HOSTILE_URL,
        mechanism="meta-robots",
        purposes=["train-ai"],
        rule={"pattern": HOSTILE_RULE},
        decision="fetched_not_stored",
        agent_token="ExampleBot",
        operator="example-crawler.com",
        observed_at=datetime(2026, 12, 5, tzinfo=timezone.utc),
        evidence=evidence_ref("https://news.example.net/robots.txt", 200, ROBOTS, datetime.now(timezone.utc)),
    )
    with Registry.open(url, key=tmp_path / "reg.key", batch_size=25) as reg:
        reg.append(make_records(60) + make_records(8, 60, site="other.org") + [hostile], evidence=[ROBOTS])
    with FixtureWeb() as web:
        web.site("holder")
        cfg = ServiceConfig(
            registry_url=url,
            key=str(tmp_path / "reg.key"),
            resolver=static_resolver({"example.net": web.origin("holder")}),
            limits=RateLimits(read_per_s=200, read_burst=400),
            checkpoint_poll=0,
            operator="Example Crawler Ltd",
            contact="optout@example-crawler.com",
        )
        with LiveServer(cfg) as srv:
            d = driver
            by_id: Callable[[str], Any] = lambda i: d.find_element(By.ID, i)  # noqa: E731

            def shot(name: str) -> None:
                d.save_screenshot(str(shots / f"{name}.png"))

            def at_widths(name: str, show: str = "") -> None:
                """Screenshots at 1400 and 800 px wide (scrolled to element ``show``); no word in a table is broken
                over two lines at either, and the page is never wider than the window."""
                for width in (1400, 800):
                    d.set_window_size(width, 1000)
                    if show:
                        d.execute_script("document.getElementById(arguments[0]).scrollIntoView()", show)
                    time.sleep(0.2)
                    shot(f"{name}-{width}px")
                    assert d.execute_script(BROKEN_WORDS_JS, "table") == [], (name, width)
                    assert d.execute_script("return document.documentElement.scrollWidth - window.innerWidth") <= 1
                d.set_window_size(1300, 1000)

            d.get(srv.url + "/")
            wait_for(lambda: by_id("registry-size").text == "69", "the registry header")
            shot("01-home")
            # before a search only three steps show, numbered 1, 2, 3 (the browser counts the visible sections)
            shown = d.execute_script(
                "return Array.from(document.querySelectorAll('main > section')).filter(s => !s.hidden).map(s => s.id)"
            )
            assert shown == ["search", "proof", "complaint"], shown
            assert all(not h.text[:1].isdigit() for h in d.find_elements(By.CSS_SELECTOR, "main h2"))
            at_widths("01-home")

            # 1. search
            by_id("domain").send_keys("News.Example.NET")
            by_id("search-btn").click()
            wait_for(lambda: "61 record(s) about example.net" in by_id("site-summary").text, "the search result")
            assert by_id("records").get_attribute("hidden") is not None  # nothing more before ownership
            shot("02-search")

            # 2. prove ownership on the (loopback) site
            by_id("start-challenge").click()
            token = wait_for(lambda: by_id("challenge-token").text, "the challenge token")
            assert by_id("challenge-url").text == f"https://example.net{CHALLENGE_PATH}{token}"
            web.site("holder", {CHALLENGE_PATH + token: Route(body=token, content_type="text/plain")})
            by_id("verify-btn").click()
            wait_for(lambda: "Verified: you control example.net" in by_id("verify-status").text, "verification")

            # 3. browse: chart, rows, paging, evidence; hostile strings are shown as text, never run
            rows = wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#records-table tbody tr"), "records")
            assert len(rows) == 20 and rows[0].get_attribute("data-index") == "0"
            assert len(d.find_elements(By.CSS_SELECTOR, "#chart svg rect")) >= 30
            assert "61 record(s)" in by_id("stats-line").text
            # the rule column reads as text, the protocol column as the protocol id with where it was found
            first = rows[0].find_elements(By.TAG_NAME, "td")
            assert first[2].text.split() == ["robots", "robots.txt"], first[2].text
            assert "{" not in first[5].text and "Disallow" in first[5].text, first[5].text
            assert "robots" in by_id("chart").text and "robots.txt" not in by_id("chart").text
            shot("03-verified-and-browsing")
            at_widths("03-records", "records-table")
            by_id("next-page").click()
            wait_for(
                lambda: (
                    d.find_elements(By.CSS_SELECTOR, "#records-table tbody tr")[0].get_attribute("data-index") == "20"
                ),
                "page 2",
            )
            d.execute_script("document.getElementById('since').value = '2026-12-01'")  # typing is locale-bound
            by_id("apply-filters").click()
            row = wait_for(
                lambda: d.find_element(By.CSS_SELECTOR, "#records-table tbody tr[data-index='68']"), "the filter"
            )
            assert HOSTILE_URL in row.text.replace("\n", "") and HOSTILE_RULE in row.text
            assert "robots-tag" in row.text  # logged as "meta-robots": shown by its protocol id
            assert d.execute_script("return window.__pwned") is None
            row.find_element(By.CSS_SELECTOR, ".evidence-btn").click()
            wait_for(lambda: "Disallow: /2026/" in by_id("evidence-view").text, "evidence")
            assert "SHA-256 matches the record" in by_id("evidence-view").text
            shot("04-filtered-with-evidence")
            d.execute_script("document.getElementById('since').value = ''")
            by_id("apply-filters").click()
            wait_for(lambda: len(d.find_elements(By.CSS_SELECTOR, "#records-table tbody tr")) == 20, "unfiltered")

            # 4. download the bundle, then verify it offline
            by_id("download-btn").click()
            wait_for(lambda: "Downloaded export-example.net-69.zip" in by_id("download-status").text, "download")
            zipped = wait_for(
                lambda: [p for p in d.downloads.glob("*.zip") if p.stat().st_size > 0], "the downloaded file"
            )[0]
            zipfile.ZipFile(zipped).extractall(tmp_path / "bundle")
            vkey = by_id("pinned-vkey").get_attribute("value")
            report = verify_export(tmp_path / "bundle" / "export-example.net-69", vkey)
            assert report.ok, report.problems
            shot("05-downloaded")

            # 5. the in-browser proof check
            d.find_element(By.CSS_SELECTOR, "#records-table tbody tr[data-index='7'] .verify-btn").click()
            status = wait_for(
                lambda: by_id("proof-status") if by_id("proof-status").get_attribute("data-state") else None,
                "the proof check",
            )
            assert status.get_attribute("data-state") == "ok", status.text
            assert "record #7 is in the signed log of 69 entries" in status.text
            steps = by_id("proof-steps").text
            assert "WebCrypto Ed25519" in steps and "inclusion proof" in steps
            # the result is shown right under the record that was clicked, in view
            under = d.execute_script(
                "const s = document.getElementById('proof-status'); const tr = s.closest('tr.proof-row');"
                "const r = s.getBoundingClientRect();"
                "return [tr && tr.previousElementSibling.dataset.index, r.top >= 0 && r.bottom <= innerHeight];"
            )
            assert under == ["7", True], under
            shot("06-proof-verified")
            at_widths("06-proof", "proof-status")

            # the check is the browser's own: a different pinned key, a doctored leaf, the bundled Ed25519
            other_key = Signer.generate("optout-registry.local/impostor").vkey()
            by_id("pinned-vkey").clear()
            by_id("pinned-vkey").send_keys(other_key)
            d.find_element(By.CSS_SELECTOR, "#records-table tbody tr[data-index='7'] .verify-btn").click()
            wait_for(lambda: by_id("proof-status").get_attribute("data-state") == "fail", "refusal with a wrong key")
            assert "no signature by the pinned key" in by_id("proof-status").text
            shot("07-proof-refused-wrong-key")
            by_id("pinned-vkey").clear()
            by_id("pinned-vkey").send_keys(vkey)
            script = """
                const done = arguments[arguments.length - 1];
                (async () => {
                  const p = await (await fetch('/api/v1/sites/example.net/records/7',
                      {headers: {Authorization: 'Bearer ' + sessionStorage.getItem('optout-holder-token:example.net')}}
                  )).json();
                  const base = {leaf: p.leaf, index: p.index, tlogProof: p.tlog_proof, vkey: arguments[0]};
                  const good = await OptoutVerify.verifyRecord(base, {forceBundled: true});
                  const doctored = await OptoutVerify.verifyRecord(
                      Object.assign({}, base, {leaf: p.leaf.replace('not_fetched', 'purged')}));
                  const otherIndex = await OptoutVerify.verifyRecord(Object.assign({}, base, {index: 8}));
                  return {good: good.ok, via: good.steps[1].detail, doctored: doctored.ok, otherIndex: otherIndex.ok};
                })().then(done, (e) => done({error: String(e)}));
            """
            res = d.execute_async_script(script, vkey)
            assert res["good"] is True and "bundled Ed25519" in res["via"], res
            assert res["doctored"] is False and res["otherIndex"] is False, res

            # 6. history: a checkpoint kept earlier is consistent with today's
            old = d.execute_script(
                "const r = new XMLHttpRequest(); r.open('GET', '/api/v1/checkpoints/25', false); r.send();"
                "return JSON.parse(r.responseText).note;"
            )
            by_id("old-checkpoint").send_keys(old)
            by_id("check-history").click()
            wait_for(lambda: "Consistent: the log grew from 25 to 69" in by_id("history-status").text, "history")

            # 7. complaint
            by_id("complaint-contact").send_keys("legal@example.net")
            by_id("complaint-message").send_keys("Please explain record 7.")
            by_id("complaint-btn").click()
            wait_for(lambda: "Received as #1" in by_id("complaint-receipt").text, "the complaint receipt")
            shot("08-complaint")

            # the page asked nothing of any other origin, and logged no errors
            origins = d.execute_script(
                "return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)"
            )
            assert set(origins) <= {srv.url}, origins
            severe = [e["message"] for e in d.get_log("browser") if e.get("level") == "SEVERE"]
            assert all("401" in m or "403" in m or "favicon" in m for m in severe), severe
    print(f"screenshots: {shots}")
