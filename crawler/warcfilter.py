"""``optout filter``: keep the records of web archives (WARC files) whose pages may be used for the purpose.

Every ``response`` record is decided like ``optout check`` decides a URL, by the same engine: the page-level
signals come from the record's own HTTP headers and body (:func:`middlewares.engine.response_signals`), nothing is
fetched again; the site-level policy of its origin (robots.txt, then tdmrep.json, ai.txt and RSL licences under
robots.txt's rules and Crawl-delay) is fetched live, once per origin, by the batch checker's
:class:`~crawler.batch.SharedChecker`, with the persistent policy cache of crawls when ``--cache`` is given.
:meth:`middlewares.policy.Policy.decide` makes the decision.

Writes into ``--out``:

A ``revisit`` record (Common Crawl writes one when a page's payload is the same as an earlier capture's) holds
the HTTP headers without the payload: it is decided the same way from its status, its headers and its site, its
answer lists what only the payload could say as ``not_evaluated`` and carries the WARC-Refers-To* fields, and an
allowed revisit is kept with its capture; the payload is judged where its own response record is filtered.

* ``kept.warc.gz``: a warcinfo record of its own, then each allowed response (or revisit) with the request and
  metadata records of the same capture (the records next to it with the same WARC-Target-URI), copied byte for
  byte;
* ``decisions.jsonl``: one line per response record, the check contract (``url``, ``allowed``, ``reservations``,
  ``errors``, ...) plus ``warc_record_id``, ``warc_file``, ``warc_date`` and ``site_policy`` (which source and
  when it was fetched); records that could not be judged have ``skipped`` instead;
* ``summary.json``.

With ``--registry``, every excluded record is recorded (``excluded_from_corpus``) by the crawl's recorder
(middlewares/recording.py), evidence by SHA-256.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from crawler.outfiles import utc
from crawler.warcpolicies import ArchivedPolicies, ArchivedSite
from crawler.warcread import CHUNK, JUDGED, ArchiveDamaged, WarcRecord, iter_records
from crawler.warcreport import FilterSiteRow, render_filter_report
from middlewares.engine import Fetched, origin_of, response_signals
from middlewares.policy import Decision, Policy

MAX_BODY = 16 * 1024 * 1024  # the body judged per record, at most (as a fetch by optout check)
KEPT = "kept.warc.gz"
DECISIONS = "decisions.jsonl"
SUMMARY = "summary.json"
REPORT = "report.html"
_encode = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(..., ensure_ascii=False) without a new encoder
CAPTURE_TYPES = ("request", "response", "revisit", "metadata")
# A revisit record holds the HTTP headers of a capture whose payload is in the record it refers to (often in an
# earlier crawl's files): it is judged on its own status and headers and its site's policy, and what only the
# payload can say is listed as not evaluated; the payload is judged where its own response record is filtered.
REVISIT_NOT_EVALUATED = ("tdmrep:html-meta", "tdmrep:xmp", "tdmrep:opf", "robots-tag:html-meta", "iptc", "c2pa")


class FilterError(ValueError):
    """A usage error: one line, exit status 2."""


def add_filter_command(sub: Any, add_policy_args: Callable[[argparse.ArgumentParser], None]) -> None:
    from optout_registry import cliargs

    p = sub.add_parser(
        "filter",
        help="keep the WARC records allowed for the purpose: kept.warc.gz, decisions.jsonl, summary.json",
        description="Decide every response record of the WARC files (plain or gzipped) from its own headers and "
        "body and from its site's live robots.txt and policy files, and write the allowed captures to "
        "DIR/kept.warc.gz with a decision line per record in DIR/decisions.jsonl (exit 0 done, 1 a file could "
        "not be read to its end, 2 error).",
    )
    p.add_argument("warcs", nargs="+", metavar="WARC", help="WARC files (.warc or .warc.gz)")
    p.add_argument("--out", required=True, metavar="DIR", type=cliargs.non_empty, help="output folder")
    add_policy_args(p)
    p.add_argument(
        "--policies-warc",
        nargs="+",
        action="extend",
        default=[],
        metavar="FILE",
        help="archived robots.txt (and tdmrep.json, ai.txt) captures, e.g. Common Crawl's robots.txt WARCs: they "
        "decide instead of live fetches, as of each page's capture date; origins not in them are asked live",
    )
    p.add_argument("--cache", metavar="URL", help="persistent policy cache shared with optout crawl (sqlite:///…)")
    p.add_argument(
        "--registry", metavar="URL", help="record each excluded record (excluded_from_corpus): sqlite:///path or …"
    )
    p.add_argument("--operator", type=cliargs.non_empty, default="localhost", help="written into registry records")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")


@dataclass
class FilterOptions:
    warcs: list[str]
    out: Path
    cache: str | None = None
    policies: list[str] = field(default_factory=list)
    registry: str | None = None
    operator: str = "localhost"
    timeout: float = 10.0


@dataclass
class FileResult:
    path: str
    records: int = 0
    responses: int = 0
    kept: int = 0
    excluded: int = 0
    skipped: int = 0
    revisits: int = 0  # of the responses: revisit records, judged without their payload
    error: str = ""


@dataclass
class Summary:
    files: list[FileResult] = field(default_factory=list)
    by_protocol: Counter[str] = field(default_factory=Counter)
    origins: set[str] = field(default_factory=set)
    origins_archived: set[str] = field(default_factory=set)
    archived: bool = False
    problems: list[str] = field(default_factory=list)
    records_written: int = 0
    registry_records: int = 0
    registry_errors: list[str] = field(default_factory=list)
    requests: int = 0
    from_cache: int = 0
    started: float = field(default_factory=time.monotonic)

    def to_json(self, policy: Policy) -> dict[str, Any]:
        total = {
            k: sum(getattr(f, k) for f in self.files) for k in ("records", "responses", "kept", "excluded", "revisits")
        }
        return {
            "purpose": policy.purpose.value,
            "agent": policy.agent,
            "mode": policy.mode.value,
            "site_policy": "archive, else live" if self.archived else "live",
            "origins_archived": len(self.origins_archived),
            **total,
            "skipped": sum(f.skipped for f in self.files),
            "records_written": self.records_written,
            "by_protocol": dict(self.by_protocol.most_common()),
            "origins": len(self.origins),
            "policy_requests": self.requests,
            "policy_from_cache": self.from_cache,
            "registry_records": self.registry_records,
            "registry_errors": self.registry_errors,
            "problems": self.problems,
            "seconds": round(time.monotonic() - self.started, 3),
            "files": [vars(f) for f in self.files],
        }


def judge(
    checker: Any, fetched: Fetched, archive: ArchivedPolicies | None = None, origin: str = ""
) -> tuple[Decision, Any]:
    """The decision for an archived response: the checker's blocklist and site-level policy for its origin (from
    ``archive`` as of the capture's date when it holds the origin's robots.txt, else fetched live once, robots.txt
    first), and the page-level signals of the archived headers and body. Also returns the site policy used (a
    SitePolicy, an ArchivedSite, or None). ``origin`` is the URL's, when the caller knows it already."""
    url = fetched.url
    listed = checker.listed(url)
    if listed is not None:
        return listed, None
    policy = checker.policy
    origin = origin or origin_of(url)
    archived = archive.site(origin, fetched.fetched_at, policy, checker.robots_of) if archive is not None else None
    site = archived.site if archived is not None else checker.site(origin)
    signals = site.access_signals(url, policy) + site.usage_signals(url, policy)
    facts = response_signals(fetched, policy)
    signals += facts.signals
    errors = [*site.notes, *facts.notes]
    if "rsl" not in policy.disabled:
        signals += checker._linked_licenses(facts.license_urls, url, errors)
    return policy.decide(url, signals, list(dict.fromkeys(errors))), archived or site


def unjudged(policy: Policy, url: object, problem: str) -> dict[str, Any]:
    """The answer, in the check contract, for something that could not be judged: not allowed, no reservation."""
    return {
        "url": url,
        "purpose": policy.purpose.value,
        "agent": policy.agent,
        "mode": policy.mode.value,
        "allowed": False,
        "reservations": [],
        "errors": [problem],
    }


def site_source(site: Any) -> dict[str, Any] | None:
    if site is None:
        return None
    if isinstance(site, ArchivedSite):
        return site.source()
    robots = site.files.get(site.robots_url)
    return {
        "source": "live",
        "robots_url": site.robots_url,
        "fetched_at": utc(robots.fetched_at) if robots is not None else None,
    }


class Copier:
    """Copies records byte for byte from their file into the kept WARC (a plain file's records each become a
    gzip member of their own)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.source: IO[bytes] | None = None

    def copy(self, record: WarcRecord) -> None:
        assert self.source is not None
        self.source.seek(record.offset)
        left = record.length
        packer = None if record.gzipped else zlib.compressobj(6, zlib.DEFLATED, 31)
        while left > 0:
            data = self.source.read(min(CHUNK, left))
            if not data:
                raise OSError(f"the file ended inside a record at byte {record.offset:,}")
            left -= len(data)
            self.out.write(data if packer is None else packer.compress(data))
        if packer is not None:
            self.out.write(packer.flush())


class FilterRun:
    def __init__(self, opts: FilterOptions, policy: Policy, *, user_agent: str, blocklist: Any = None) -> None:
        self.opts = opts
        self.policy = policy
        self.user_agent = user_agent
        self.blocklist = blocklist
        self.summary = Summary()
        self.rows: dict[str, FilterSiteRow] = {}  # the report's site table
        self._sources: dict[int, tuple[Any, dict[str, Any] | None]] = {}

    def run(self, err: IO[str] | None = None) -> Summary:
        from crawler.batch import SharedChecker, SyncStore
        from crawler.fetcher import RequestsFetcher

        err = err if err is not None else sys.stderr
        opts = self.opts
        try:
            opts.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FilterError(f"cannot create {opts.out}: {exc.strerror or exc}") from None
        store = None
        if opts.cache:
            from middlewares.sitecache import open_store

            try:
                opened = open_store(opts.cache)
            except ValueError as exc:
                raise FilterError(str(exc).replace("OPTOUT_CACHE_URL", "--cache")) from None
            store = SyncStore(opened) if opened is not None else None
        self.archive = None
        if opts.policies:
            self.archive = ArchivedPolicies.load(opts.policies)
            self.summary.archived = True
            self.summary.problems += self.archive.problems
            for problem in self.archive.problems:
                print(f"optout filter: policies: {problem}", file=err)
        fetcher = RequestsFetcher(self.user_agent, timeout=opts.timeout)
        checker = SharedChecker(self.policy, fetcher, self.blocklist, store=store)
        recorder = None
        if opts.registry:
            from middlewares.recording import Recorder

            recorder = Recorder(opts.registry, agent=self.policy.agent, operator=opts.operator)
        try:
            with (
                (opts.out / KEPT).open("wb") as kept,
                (opts.out / DECISIONS).open("w", encoding="utf-8") as decisions,
            ):
                self._warcinfo(kept)
                copier = Copier(kept)
                for path in opts.warcs:
                    result = FileResult(path)
                    self.summary.files.append(result)
                    self._file(path, result, checker, copier, decisions, recorder)
                    if result.error:
                        print(f"optout filter: {result.error}", file=err)
        finally:
            if recorder is not None:
                recorder.close()
                self.summary.registry_errors = list(recorder.errors)
            if store is not None:
                store.close()
            fetcher.close()
            self.summary.requests = checker.requests
            self.summary.from_cache = checker.from_store
        summary_json = self.summary.to_json(self.policy)
        (opts.out / SUMMARY).write_text(json.dumps(summary_json, indent=2) + "\n", encoding="utf-8")
        rows = sorted(self.rows.values(), key=lambda r: (-r.refused, r.origin))
        (opts.out / REPORT).write_text(render_filter_report(summary_json, rows), encoding="utf-8")
        return self.summary

    def _warcinfo(self, out: IO[bytes]) -> None:
        from warcio.warcwriter import WARCWriter

        writer = WARCWriter(out, gzip=True, warc_version="WARC/1.1")
        policy = self.policy
        info = {
            "software": "optout filter",
            "format": "WARC File Format 1.1",
            "description": f"records allowed for {policy.purpose.value} (agent {policy.agent}, mode "
            f"{policy.mode.value}) from: {', '.join(Path(p).name for p in self.opts.warcs)}",
        }
        writer.write_record(writer.create_warcinfo_record(KEPT, info))

    def _file(
        self, path: str, result: FileResult, checker: Any, copier: Copier, decisions: IO[str], recorder: Any
    ) -> None:
        try:
            stream = open(path, "rb")  # noqa: SIM115 (closed below, with the copy source)
            source = open(path, "rb")  # noqa: SIM115
        except OSError as exc:
            result.error = f"cannot read {path}: {exc.strerror or exc}"
            return
        copier.source = source
        group: list[WarcRecord] = []
        try:
            for record in iter_records(path, stream, MAX_BODY):
                result.records += 1
                if group and not _same_capture(group, record):
                    self._capture(group, path, result, checker, copier, decisions, recorder)
                    group = []
                group.append(record)
        except ArchiveDamaged as exc:
            result.error = f"{exc}; the records before it were filtered, the rest of the file was not read"
        finally:
            try:
                if group:
                    self._capture(group, path, result, checker, copier, decisions, recorder)
            finally:
                stream.close()
                source.close()

    def _capture(
        self,
        group: list[WarcRecord],
        path: str,
        result: FileResult,
        checker: Any,
        copier: Copier,
        decisions: IO[str],
        recorder: Any,
    ) -> None:
        responses = [r for r in group if r.rec_type in JUDGED]
        if not responses:
            return  # warcinfo, resource, or request records without their response: not kept
        response = responses[0]
        result.responses += 1
        policy = self.policy
        line: dict[str, Any]
        try:
            origin = origin_of(response.target)
        except ValueError:
            origin = ""
        if response.fetched is None:
            result.skipped += 1
            problem = response.problem or "not an http(s) response"
            line = unjudged(policy, response.target, problem)
            line["skipped"] = problem
            row = self._row(origin)
            if row is not None:
                row.errors += 1
        else:
            decision, used = judge(checker, response.fetched, self.archive, origin)
            self.summary.origins.add(origin)
            site = used.site if isinstance(used, ArchivedSite) else used
            if site is not used:
                self.summary.origins_archived.add(origin)
            line = decision.to_json()
            line["site_policy"] = self._source(used)
            if response.revisit is not None:
                result.revisits += 1
                line["revisit"] = response.revisit
                line["not_evaluated"] = list(REVISIT_NOT_EVALUATED)
            row = self._row(origin)
            if decision.allowed:
                result.kept += 1
                row.stored += 1
                whole = [r for r in group if not r.problem]  # a truncated request or metadata record stays out
                for record in whole:
                    copier.copy(record)
                self.summary.records_written += len(whole)
            else:
                result.excluded += 1
                protocols = {s.protocol for s in decision.reservations}
                self.summary.by_protocol.update(protocols)
                row.refused += 1
                row.protocols.update(protocols)
                row.rules.update({f"{s.protocol}: {s.rule}" for s in decision.reservations})
                if recorder is not None and decision.reservations:
                    self.summary.registry_records += recorder.record(
                        decision, "excluded_from_corpus", site=site, response=response.fetched
                    )
        line.update(warc_record_id=response.record_id, warc_file=path, warc_date=response.date)
        decisions.write(_encode(line) + "\n")

    def _source(self, used: Any) -> dict[str, Any] | None:
        """:func:`site_source`, once per site policy (the same objects come back for every record of a site)."""
        known = self._sources.get(id(used))
        if known is None or known[0] is not used:
            known = self._sources[id(used)] = (used, site_source(used))
        return known[1]

    def _row(self, origin: str) -> Any:
        if not origin:
            return None
        row = self.rows.get(origin)
        if row is None:
            row = self.rows[origin] = FilterSiteRow(origin)
        return row


def _same_capture(group: list[WarcRecord], record: WarcRecord) -> bool:
    """Whether ``record`` belongs with the records before it: request, response (or revisit) and metadata of one
    URL, next to each other (Common Crawl's layout), one response or revisit at most."""
    if record.rec_type not in CAPTURE_TYPES or group[0].rec_type not in CAPTURE_TYPES:
        return False
    if record.target != group[0].target:
        return False
    return not (record.rec_type in JUDGED and any(r.rec_type in JUDGED for r in group))


def run_filter(args: argparse.Namespace, policy: Policy, blocklist: Any, user_agent: str) -> int:
    """The command: 0 when every file was read to its end, 1 when one could not be, 2 on a usage error."""
    try:
        import fastwarc  # noqa: F401  (reads the files)
        import warcio  # noqa: F401  (writes kept.warc.gz's warcinfo record)
    except ImportError as exc:
        raise FilterError(f"optout filter needs {exc.name}: pip install 'optout[warc]'") from None
    opts = FilterOptions(
        warcs=list(args.warcs),
        out=Path(args.out),
        cache=args.cache,
        policies=list(args.policies_warc),
        registry=args.registry,
        operator=args.operator,
        timeout=args.timeout,
    )
    for path in opts.warcs + opts.policies:
        if not Path(path).is_file():
            raise FilterError(f"no such WARC file: {path}")
    summary = FilterRun(opts, policy, user_agent=user_agent, blocklist=blocklist).run()
    data = summary.to_json(policy)
    print(
        f"optout filter: {data['responses']:,} responses: {data['kept']:,} kept, {data['excluded']:,} excluded, "
        f"{data['skipped']:,} skipped; {data['origins']:,} origins → {opts.out / KEPT}",
        file=sys.stderr,
    )
    for problem in summary.registry_errors:
        print(f"optout filter: registry: {problem}", file=sys.stderr)
    return 1 if any(f.error for f in summary.files) or summary.registry_errors or summary.problems else 0
