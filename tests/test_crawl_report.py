"""The crawl report as a file: self-contained (nothing loaded from anywhere) and safe with hostile strings."""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser

from crawler.report import render_report
from crawler.runsummary import SiteRow


def test_report_escapes_and_loads_nothing() -> None:
    hostile = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    row = SiteRow("http://evil.example", site="evil.example", label=hostile, not_fetched=1)
    row.protocols = Counter({"robots": 1})
    row.rules = Counter({f"robots: {hostile}": 1})
    row.records = [{"index": 0, "url": "http://evil.example/" + hostile, "protocol": "robots", "rule": hostile,
                    "decision": "not_fetched", "source": hostile, "evidence_sha256": "ab" * 32,
                    "evidence_path": "evidence/" + "ab" * 32 + ".txt"}]  # fmt: skip
    summary = {
        "purpose": "train-ai", "agent": hostile, "user_agent": hostile, "pages": {"refused": 1, "not_fetched": 1},
        "honoured": {"total": 1, "by_protocol": {"robots": 1}}, "origins": 1, "problems": [hostile],
        "registry": {"url": "sqlite:///r.db", "records": 1, "tree_size": 1, "checkpoint": hostile, "vkey": hostile},
    }  # fmt: skip
    page = render_report(summary, [row], [(1_767_000_000.0, "robots")])
    tags = Tags()
    tags.feed(page)
    names = [name for name, _ in tags.seen]
    assert "img" not in names and names.count("script") == 2  # the summary JSON and the filter, both ours
    assert not any(dict(attrs).get("onerror") for _, attrs in tags.seen)
    # nothing to fetch: no src attributes, no stylesheets, links only to the evidence beside the report
    assert not any("src" in dict(attrs) for _, attrs in tags.seen)
    hrefs = [dict(attrs)["href"] for name, attrs in tags.seen if name in ("a", "link")]
    assert hrefs == ["evidence/" + "ab" * 32 + ".txt"]


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, attrs))


def test_report_without_anything_crawled() -> None:
    page = render_report({"pages": {}, "honoured": {}, "registry": {}}, [], [])
    assert "No site was crawled." in page and "No opt-out had to be honoured." in page
