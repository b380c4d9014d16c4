"""``optout filter --policies-warc``: site-level policy from archived captures instead of live fetches.

Common Crawl publishes the robots.txt captures of each crawl as WARC files; a team's own crawl archives them too.
With them, a page is decided by what its site said when the page was captured: for each origin, the robots.txt
capture closest before the page's WARC-Date (else the earliest after it), and the tdmrep.json and ai.txt captures
chosen the same way when the archive has them. The site policy is built by the crawler's own plan
(:func:`middlewares.siteload.load_site`), so the rules are the same as live: a file robots.txt disallows is not
read, an unreachable robots.txt disallows everything.

Files the archive does not hold are not fetched live (that would mix two dates, and a live request would come
before the live robots.txt): they count as absent, and every answer lists them (``not_archived``). An origin whose
robots.txt is not in the archive at all is decided live, as without ``--policies-warc``; its answers say so.

All captures are held in memory (robots.txt files are small, at most 512 KB each are kept): fine for the captures
of the origins of a few WARC files, not yet for a whole crawl's robots.txt archive.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from crawler.warcread import ArchiveDamaged, iter_records
from middlewares.engine import (
    AI_TXT_PATH,
    POLICY_FILE_LIMIT,
    ROBOTS_LIMIT,
    TDMREP_PATH,
    Fetched,
    SitePolicy,
    origin_of,
)
from middlewares.policy import Policy
from middlewares.siteload import Fetch, load_site, run_sync

POLICY_PATHS = ("/robots.txt", TDMREP_PATH, AI_TXT_PATH)


@dataclass
class Capture:
    when: float
    fetched: Fetched
    warc_file: str
    record_id: str


@dataclass
class ArchivedSite:
    site: SitePolicy
    robots: Capture
    not_archived: list[str] = field(default_factory=list)

    def source(self) -> dict[str, Any]:
        from crawler.outfiles import utc

        return {
            "source": "archive",
            "robots_url": self.site.robots_url,
            "captured_at": utc(self.robots.when),
            "warc_file": self.robots.warc_file,
            "warc_record_id": self.robots.record_id,
            "not_archived": list(self.not_archived),
        }


class ArchivedPolicies:
    """The policy-file captures of some WARC files, by URL and date."""

    def __init__(self) -> None:
        self.captures: dict[str, list[Capture]] = {}  # URL -> captures sorted by date
        self.problems: list[str] = []
        self.sites: dict[tuple[str, ...], ArchivedSite] = {}  # by origin and the captures chosen

    @classmethod
    def load(cls, paths: list[str]) -> ArchivedPolicies:
        found = cls()
        for path in paths:
            try:
                with open(path, "rb") as stream:
                    for record in iter_records(path, stream, POLICY_FILE_LIMIT):
                        found._add(path, record)
            except ArchiveDamaged as exc:
                found.problems.append(f"{exc}; the captures before it are used")
            except OSError as exc:
                found.problems.append(f"cannot read {path}: {exc.strerror or exc}")
        for captures in found.captures.values():
            captures.sort(key=lambda c: c.when)
        return found

    def _add(self, path: str, record: Any) -> None:
        fetched = record.fetched
        if fetched is None or record.rec_type != "response" or urlsplit(fetched.url).path not in POLICY_PATHS:
            return
        url = origin_of(fetched.url) + urlsplit(fetched.url).path
        fetched.url = fetched.final_url = url
        if url.endswith("/robots.txt"):
            fetched.body = fetched.body[: ROBOTS_LIMIT + 1]
        self.captures.setdefault(url, []).append(Capture(fetched.fetched_at, fetched, path, record.record_id))

    def pick(self, url: str, when: float) -> Capture | None:
        """The capture of ``url`` closest before ``when``, else the earliest after it."""
        captures = self.captures.get(url)
        if not captures:
            return None
        at = bisect.bisect_right([c.when for c in captures], when)
        return captures[at - 1] if at else captures[0]

    def site(
        self, origin: str, when: float, policy: Policy, live_robots: Callable[[str], SitePolicy]
    ) -> ArchivedSite | None:
        """The archived site policy of ``origin`` as of ``when``, or None when its robots.txt was not captured.
        ``live_robots`` answers for a licence hosted on an origin the archive does not know."""
        robots = self.pick(origin + "/robots.txt", when)
        if robots is None:
            return None
        chosen: dict[str, Capture | None] = {}
        missing: list[str] = []

        def answer(step: Fetch) -> list[Fetched]:
            out = []
            for url, _limit in step.files:
                capture = chosen[url] if url in chosen else self.pick(url, when)
                chosen[url] = capture
                if capture is None:
                    missing.append(url)
                    out.append(Fetched(url=url, status=404, error="not in the policies WARC", fetched_at=robots.when))
                else:
                    out.append(capture.fetched)
            return out

        def robots_of(host: str) -> SitePolicy:
            other = self.site(host, when, policy, live_robots)
            return other.site if other is not None else live_robots(host)

        files = (self.pick(origin + TDMREP_PATH, when), self.pick(origin + AI_TXT_PATH, when))
        key = (origin, robots.record_id, *(c.record_id if c is not None else "" for c in files))
        known = self.sites.get(key)
        if known is not None:
            return known
        site = run_sync(load_site(origin, policy), answer, robots_of)
        archived = self.sites[key] = ArchivedSite(site, robots, list(dict.fromkeys(missing)))
        return archived
