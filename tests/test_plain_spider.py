"""Acceptance: a spider written for plain Scrapy runs unchanged with only the add-on line added.

The project is made by ``scrapy startproject`` in a temporary folder; its settings.py is the generated one with
``ADDONS = {}`` replaced by the add-on line and the template's commented-out USER_AGENT switched on. The spider is
an ordinary CrawlSpider that knows nothing of this project (no ``optout`` field, no errbacks, no imports from it).
It is run the way a user runs it, ``scrapy crawl NAME -O items.jsonl``, in a subprocess, against loopback sites.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from crawler.fixtureweb import FixtureWeb, Route, page
from tests.support.run import ROOT

ADDON_LINE = 'ADDONS = {"middlewares.OptOutAddon": 0}'
USER_AGENT = 'USER_AGENT = "plainbot (+http://www.yourdomain.com)"'

SPIDER = """\
from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule


class SiteSpider(CrawlSpider):
    name = "site"
    rules = (Rule(LinkExtractor(), callback="parse_item", follow=True),)

    def __init__(self, start=None, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.start_urls = [start]

    def parse_start_url(self, response):
        return self.parse_item(response)

    def parse_item(self, response):
        yield {"url": response.url, "title": response.css("title::text").get()}
"""

TEXT = "text/plain"
# The project's own token gets its own group; "*" would allow everything. Only a crawler that works out its
# robots.txt token from the project's USER_AGENT ("plainbot (+http://...)") keeps out of /private/.
ROBOTS = "User-agent: plainbot\nDisallow: /private/\n\nUser-agent: *\nAllow: /\n"


def make_project(where: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "scrapy", "startproject", "plainbot", str(where)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    settings = where / "plainbot" / "settings.py"
    text = settings.read_text()
    generated = text
    assert "ADDONS = {}" in text and f"#{USER_AGENT}" in text, "the startproject template changed"
    text = text.replace("ADDONS = {}", ADDON_LINE).replace(f"#{USER_AGENT}", USER_AGENT)
    settings.write_text(text)
    changed = [line for line in text.splitlines() if line not in generated.splitlines()]
    assert sorted(changed) == sorted([USER_AGENT, ADDON_LINE])
    (where / "plainbot" / "spiders" / "site.py").write_text(SPIDER)
    return where


def scrapy_crawl(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCRAPY_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "scrapy", "crawl", "site", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_unmodified_crawl_spider_with_only_the_addon_line(web: FixtureWeb, tmp_path: Path) -> None:
    links = "".join(f'<a href="{p}">{p}</a> ' for p in ("/a", "/b", "/private/secret", "/noai", "/books/1"))
    base = web.site(
        "site",
        {
            "/robots.txt": Route(body=ROBOTS, content_type=TEXT),
            "/.well-known/tdmrep.json": Route(
                body=json.dumps([{"location": "/books/", "tdm-reservation": 1}]), content_type="application/json"
            ),
            "/": page("home", links),
            "/a": page("a", '<a href="/c">c</a> <a href="/b">b</a>'),
            "/b": page("b"),
            "/c": page("c"),
            "/private/secret": page("secret"),
            "/noai": page("noai", head='<meta name="robots" content="noai, noimageai">'),
            "/books/1": page("book"),
        },
    )
    project = make_project(tmp_path / "plainbot")
    # The template's one-request-per-second politeness is kept; only the delay is shortened from the command line.
    proc = scrapy_crawl(project, "-a", f"start={base}/", "-O", "items.jsonl", "-s", "DOWNLOAD_DELAY=0.05")
    log = proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "Traceback" not in log, log[-4000:]
    assert " ERROR: " not in log, log[-4000:]

    items = [json.loads(line) for line in (project / "items.jsonl").read_text().splitlines()]
    assert sorted(i["url"] for i in items) == [base + p for p in ("/", "/a", "/b", "/c")]
    assert all(i["optout"]["allowed"] and i["optout"]["agent"] == "plainbot" for i in items)

    assert not web.hits("site", "/private/secret")  # refused before the download, not dropped after
    assert len(web.hits("site", "/robots.txt")) == 1

    assert re.search(r"optout: honoured opt-outs by protocol: .*robots 1", log), log[-3000:]
    summary = re.search(r"optout: honoured opt-outs by protocol: (.*); (\d+) registry records written", log)
    assert summary is not None
    assert {"robots", "robots-tag", "tdmrep"} <= {p.rsplit(" ", 1)[0] for p in summary.group(1).split(", ")}
    dump = log[log.index("Dumping Scrapy stats") :]
    for key in ("optout/honoured/robots", "optout/honoured/robots-tag", "optout/honoured/tdmrep"):
        assert re.search(rf"'{re.escape(key)}': 1\b", dump), key
    assert "robotstxt/" not in dump  # Scrapy's own robots.txt middleware is replaced, not run alongside

    # With no OPTOUT_REGISTRY_URL the registry lands in the project's data folder (.scrapy/).
    from optout_registry import Registry

    registry = project / ".scrapy" / "optout-registry.db"
    assert registry.is_file()
    assert not list(registry.parent.glob("*.unlogged.jsonl"))  # nothing spilled: every record was logged
    with Registry.open(f"sqlite:///{registry}") as reg:
        records = [e.record for e in reg.records()]
    by_url = {r["target"]["url"].removeprefix(base): r for r in records}
    assert set(by_url) == {"/private/secret", "/noai", "/books/1"}
    assert by_url["/private/secret"]["decision"] == "not_fetched"
    assert by_url["/noai"]["decision"] == by_url["/books/1"]["decision"] == "fetched_not_stored"
    assert int(summary.group(2)) == len(records) == 3


def test_agent_token_from_user_agent() -> None:
    from middlewares.config import agent_from_user_agent

    assert agent_from_user_agent("plainbot (+http://www.yourdomain.com)") == "plainbot"  # startproject's template
    assert agent_from_user_agent("Scrapy/2.13 (+https://scrapy.org)") == "Scrapy"
    assert agent_from_user_agent("Mozilla/5.0 (compatible; ExampleBot/1.0; +http://x)") == "ExampleBot"
    assert agent_from_user_agent("Mozilla/5.0 (X11; Linux x86_64)") == "OptOutBot"
    assert agent_from_user_agent("") == "OptOutBot"
