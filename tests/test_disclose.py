"""`optout disclose`: the public page about the crawler (Code of Practice Measures 1.3 and 1.5), from settings."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from crawler.crawl import CrawlOptions, crawl_settings
from tests.support.run import run_cli

ATOM = "{http://www.w3.org/2005/Atom}"


def _registry(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    assert run_cli("registry", "checkpoint", "--registry", url).returncode == 0
    return url


def test_disclose_writes_the_page_json_and_feed(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    out = tmp_path / "site"
    args = [
        "disclose", "--out", str(out), "--registry", registry, "--agent", "ExampleBot", "--purpose", "train-ai",
        "--purpose", "search", "--contact", "crawler@example.org", "--complaints", "https://example.org/complaints",
        "--info-url", "https://example.org/bot", "--ip-range", "192.0.2.0/24", "--operator", "Example Labs",
    ]  # fmt: skip
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr  # everything an operator must fill in is filled in
    data = json.loads((out / "crawler.json").read_text())
    assert data["crawler"]["tokens"] == ["ExampleBot"]
    assert (
        data["crawler"]["user_agent"]
        == "Mozilla/5.0 (compatible; ExampleBot/0.1; purpose=train-ai; +https://example.org/bot)"
    )
    assert [p["id"] for p in data["purposes"]] == ["train-ai", "search"]
    assert {p["id"] for p in data["protocols"]} == {
        "robots", "tdmrep", "content-usage", "content-signal", "robots-tag", "ai-txt", "rsl", "iptc", "c2pa",
        "access", "blocklist", "fetch",
    }  # fmt: skip
    assert all(p["honoured"] for p in data["protocols"])
    assert data["ip_ranges"] == ["192.0.2.0/24"] and data["ip_ranges_note"] is None
    assert data["contact"] == "crawler@example.org" and data["complaints"] == "https://example.org/complaints"
    vkey = run_cli("registry", "key", "--registry", registry).stdout.strip()
    assert data["registry"]["vkey"] == vkey and data["registry"]["checkpoint"].startswith(vkey.split("+")[0])
    page = (out / "index.html").read_text()
    for text in (data["crawler"]["user_agent"], vkey, "mailto:crawler@example.org", "User-agent: ExampleBot"):
        assert text in page, text
    assert "Fill in before publishing" not in page
    feed = ET.parse(out / "feed.atom").getroot()
    assert len(feed.findall(f"{ATOM}entry")) == 1

    # unchanged facts: no new feed entry; a change: one more
    assert run_cli(*args).returncode == 0
    assert len(ET.parse(out / "feed.atom").getroot().findall(f"{ATOM}entry")) == 1
    assert run_cli(*[a if a != "crawler@example.org" else "legal@example.org" for a in args]).returncode == 0
    assert len(ET.parse(out / "feed.atom").getroot().findall(f"{ATOM}entry")) == 2


def test_disclose_defaults_say_what_is_missing(tmp_path: Path) -> None:
    out = tmp_path / "site"
    proc = run_cli("disclose", "--out", str(out), "--registry", f"sqlite:///{tmp_path / 'none.db'}")
    assert proc.returncode == 0, proc.stderr
    for missing in (
        "no registry found",
        "OPTOUT_CONTACT",
        "OPTOUT_COMPLAINTS",
        "OPTOUT_IP_RANGES",
        "OPTOUT_OPERATOR",
        "OPTOUT_INFO_URL",
    ):
        assert missing in proc.stderr, missing
    data = json.loads((out / "crawler.json").read_text())
    assert data["crawler"]["tokens"] == ["OptOutBot"]  # crawler/settings.py
    assert data["registry"] is None and data["ip_ranges"] == [] and data["ip_ranges_note"]
    assert "Fill in before publishing" in (out / "index.html").read_text()
    assert not (tmp_path / "none.db").exists()  # describing a registry never creates one


def test_disclose_bad_input(tmp_path: Path) -> None:
    proc = run_cli("disclose", "--out", str(tmp_path / "x"), "--agent", "bad token!")
    assert proc.returncode == 2 and "invalid agent token" in proc.stderr
    proc = run_cli("disclose", "--out", str(tmp_path / "x"), "--settings", "no.such.module")
    assert proc.returncode == 2 and "cannot load settings module" in proc.stderr


def test_crawl_user_agent_links_to_the_disclosure_page(tmp_path: Path) -> None:
    settings = crawl_settings(
        CrawlOptions(seeds=["http://127.0.0.1/"], out=tmp_path, agent="ExampleBot", info_url="https://example.org/bot")
    )
    assert (
        settings["USER_AGENT"] == "Mozilla/5.0 (compatible; ExampleBot/0.1; purpose=train-ai; +https://example.org/bot)"
    )
    assert settings["OPTOUT_AGENT"] == "ExampleBot"
