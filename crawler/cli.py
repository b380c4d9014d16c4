"""The ``optout`` command line.

Errors a user can cause (bad URL, unknown purpose, unreadable blocklist) are one line on stderr and exit status 2;
so is any unexpected failure, unless ``--debug`` asks for the traceback.

Each subcommand's module is imported when that subcommand runs, on purpose: ``optout check`` and ``optout registry``
then start without loading Scrapy, Twisted and rich (about half a second each time).

Over 500 lines for one concern: the parser of every subcommand (most of the length) and a short handler for each;
the work itself lives in the subcommands' modules.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from crawler.batchcli import BatchUsageError, add_batch_args, run_batch
from crawler.exitcodes import EXIT_INTERRUPTED, EXIT_OK, EXIT_PROBLEMS, EXIT_RESERVED, EXIT_USAGE
from crawler.identity import user_agent_for
from crawler.recheck import add_recheck_command
from crawler.summary import add_summary_command, run_summary
from crawler.summary_inputs import SummaryError
from crawler.warcfilter import add_filter_command
from middlewares.defaults import DEFAULT_CRAWL_ID, default
from middlewares.policy import DEFAULT_AGENT, Decision, Policy, PolicyError
from middlewares.protocols.blocklist import Blocklist
from optout_registry import cliargs
from optout_registry.cli import add_registry_commands, run_registry
from optout_registry.service.cli import add_serve_command, run_serve

if TYPE_CHECKING:
    from rich.console import Console

    from crawler.crawl import CrawlResult


class CliError(Exception):
    """A one-line error for the user."""


def _add_policy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--purpose", default=default("OPTOUT_PURPOSE"), help="train-ai (default), ai-input or search")
    p.add_argument("--agent", default=DEFAULT_AGENT, help=f"the crawler's robots.txt token (default {DEFAULT_AGENT})")
    p.add_argument("--mode", default=default("OPTOUT_MODE"), help="conservative (default) or strict")
    p.add_argument(
        "--disable",
        action="append",
        default=[],
        metavar="PROTOCOL",
        help="switch one usage protocol off (repeatable), e.g. ai-txt",
    )
    p.add_argument("--no-cross-token", action="store_true", help="ignore disallows aimed at other AI crawlers")
    p.add_argument("--timeout", type=cliargs.seconds, default=10.0, help="seconds per request (default 10)")
    p.add_argument("--blocklist", metavar="FILE", help="domains never to use, one per line")


def build_parser() -> argparse.ArgumentParser:
    """The ``optout`` argument parser with every subcommand."""
    parser = cliargs.OneLineParser(prog="optout", description="Honour copyright and AI opt-outs, and prove it.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check", help="may these URLs be used for a purpose? (exit 0 yes, 1 no, 2 error)")
    check.add_argument("urls", nargs="*", metavar="URL")
    check.add_argument("--json", action="store_true", help="JSON Lines, one object per URL")
    _add_policy_args(check)
    add_batch_args(check)
    check.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    crawl = sub.add_parser(
        "crawl",
        help="crawl from seeds honouring every opt-out: items, registry, report (exit 0 done, 1 problems, 130 Ctrl-C)",
        description="Crawl from SEEDS within their sites, keeping only content allowed for the purpose. Writes "
        "items.jsonl, decisions.jsonl, registry.db, summary.json and report.html into --out. Ctrl-C stops "
        "gracefully; however the crawl stopped (Ctrl-C, kill -9, a crash, a power cut), the same command resumes "
        "it.",
    )
    crawl.add_argument("seeds", nargs="*", metavar="SEED", help="start URLs (http:// or https://)")
    crawl.add_argument("--seeds-file", metavar="FILE", help="more seeds, one per line (# comments)")
    crawl.add_argument(
        "--out",
        default="optout-crawl",
        metavar="DIR",
        type=cliargs.non_empty,
        help="output folder (default ./optout-crawl)",
    )
    _add_policy_args(crawl)
    crawl.set_defaults(timeout=None)
    for action in crawl._actions:  # the same options as check, with what differs for a crawl
        if action.dest == "timeout":
            action.help = "seconds per request and per policy file (default 30 and 20)"
        elif action.dest == "blocklist":
            action.metavar = "FILE|URL"
            action.help = "domains never to fetch, one per line (# comments); subdomains are covered too"
    crawl.add_argument(
        "--registry",
        metavar="URL",
        help="registry URL (sqlite:///path or postgresql://…; default $OPTOUT_REGISTRY_URL, else DIR/registry.db)",
    )
    crawl.add_argument(
        "--depth", type=cliargs.non_negative, default=3, help="link depth from the seeds (default 3, 0 = unlimited)"
    )
    crawl.add_argument(
        "--max-pages", type=cliargs.non_negative, default=0, help="stop after this many pages (default 0 = no limit)"
    )
    crawl.add_argument(
        "--allowed-domain",
        action="append",
        default=[],
        metavar="DOMAIN",
        type=cliargs.non_empty,
        help="crawl these domains and their subdomains (repeatable; default: the seeds' sites)",
    )
    crawl.add_argument("--no-sitemaps", action="store_true", help="do not read the sitemaps robots.txt names")
    crawl.add_argument("--concurrency", type=cliargs.count, help="parallel requests, in all and per site")
    crawl.add_argument(
        "--delay", type=cliargs.delay, help="seconds between requests to one site (robots.txt may ask more)"
    )
    crawl.add_argument(
        "--info-url", metavar="URL", type=cliargs.http_url, help="the crawler's public page, linked from its User-Agent"
    )
    crawl.add_argument(
        "--operator", type=cliargs.non_empty, help="who is crawling (written into every registry record)"
    )
    crawl.add_argument(
        "--signing-key",
        metavar="FILE",
        type=cliargs.non_empty,
        help="sign every request for Web Bot Auth with this Ed25519 key (PEM or JWK; a fleet's workers share it)",
    )
    crawl.add_argument(
        "--signature-agent",
        metavar="URL",
        type=cliargs.non_empty,
        help="the https origin serving the key directory optout disclose wrote (default: --info-url's origin)",
    )
    fleet = crawl.add_argument_group("distributed crawls (docs/distributed.md)")
    fleet.add_argument(
        "--distributed",
        action="store_true",
        help="be one worker of a fleet: shared queue (scrapy-redis), shared policy cache and Crawl-delay (Redis), "
        "one PostgreSQL registry; start the same command on every worker, each with its own --out",
    )
    fleet.add_argument("--redis", metavar="URL", help="Redis for --distributed (default $OPTOUT_REDIS_URL)")
    fleet.add_argument(
        "--crawl-id",
        metavar="NAME",
        type=cliargs.non_empty,
        help="names this crawl's queue and dupefilter in Redis; workers of one crawl share it (default optout-crawl)",
    )
    fleet.add_argument(
        "--integrate",
        action="store_true",
        help="this worker also signs a checkpoint at the end (needs the registry key); else run "
        "`optout registry checkpoint --every 10` on one machine",
    )
    crawl.add_argument(
        "-s", "--set", action="append", default=[], metavar="NAME=VALUE", help="any Scrapy or OPTOUT_ setting"
    )
    crawl.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    demo = sub.add_parser(
        "demo", help="crawl a local fixture web showing every kind of opt-out; verify the registry; write a report"
    )
    demo.add_argument(
        "--out", default="optout-demo", type=cliargs.non_empty, help="output folder (default ./optout-demo)"
    )
    demo.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    disclose = sub.add_parser(
        "disclose", help="write the public page about this crawler (HTML and JSON) for rights holders"
    )
    disclose.add_argument(
        "--out",
        default="optout-disclosure",
        metavar="DIR",
        type=cliargs.non_empty,
        help="folder (default ./optout-disclosure)",
    )
    disclose.add_argument(
        "--agent", action="append", metavar="TOKEN", help="robots.txt token(s) (default from settings)"
    )
    disclose.add_argument("--purpose", action="append", help="purpose(s) the crawl serves (default from settings)")
    disclose.add_argument("--mode", type=cliargs.non_empty, help="conservative or strict (default from settings)")
    disclose.add_argument("--registry", metavar="URL", help="registry whose key and checkpoint to publish")
    disclose.add_argument("--info-url", metavar="URL", type=cliargs.http_url, help="where this page is published")
    disclose.add_argument("--contact", type=cliargs.contact, help="point of contact (e-mail or http(s) URL)")
    disclose.add_argument(
        "--complaints", type=cliargs.contact, help="where rights holders send complaints (e-mail or http(s) URL)"
    )
    disclose.add_argument("--operator", type=cliargs.non_empty, help="who operates the crawler")
    disclose.add_argument(
        "--ip-range", action="append", metavar="CIDR", type=cliargs.cidr, help="address range the crawler uses"
    )
    disclose.add_argument(
        "--settings",
        metavar="MODULE",
        type=cliargs.non_empty,
        help="Scrapy settings module to describe (default crawler.settings)",
    )
    disclose.add_argument(
        "--signing-key",
        action="append",
        metavar="FILE",
        type=cliargs.non_empty,
        help="a key the crawler signs with (repeatable; default OPTOUT_SIGNING_KEY): listed in the key directory; "
        "a key listed before and not given now stays listed until its last signatures expire",
    )
    disclose.add_argument(
        "--signature-agent", metavar="URL", type=cliargs.non_empty, help="the origin serving the key directory"
    )
    disclose.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    verify = sub.add_parser(
        "verify-request",
        help="was this captured request signed by the crawler? (exit 0 verified, 1 not, 2 error)",
        description="Check the Web Bot Auth signature (RFC 9421) of a request from your logs against the crawler's "
        "key directory.",
    )
    verify.add_argument("request", metavar="REQUEST", help="the raw request head (or JSON); - reads stdin")
    verify.add_argument(
        "--directory",
        required=True,
        metavar="FILE|URL",
        help="the key directory: a file, or https://…/.well-known/http-message-signatures-directory",
    )
    verify.add_argument("--at", metavar="TIME", help="when the request arrived (Unix seconds or ISO 8601; default now)")
    verify.add_argument("--scheme", default="https", choices=("https", "http"), help="scheme it came in on")
    verify.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    add_registry_commands(sub)
    add_serve_command(sub)
    add_filter_command(sub, _add_policy_args)
    add_recheck_command(sub, _add_policy_args)
    add_summary_command(sub)
    return parser


def make_policy(args: argparse.Namespace) -> Policy:
    """The Policy the common options name; one that cannot be used is a usage error (CliError), not a traceback."""
    try:
        return Policy.build(
            purpose=args.purpose,
            agent=args.agent,
            mode=args.mode,
            disabled=args.disable,
            cross_token=not args.no_cross_token,
        )
    except PolicyError as exc:
        raise CliError(str(exc)) from None


def read_blocklist(path: str | None) -> Blocklist | None:
    """``--blocklist FILE`` of check, filter and recheck (the add-on's OPTOUT_BLOCKLIST, which may also be a URL or
    a list, is read by middlewares.config.load_blocklist)."""
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CliError(f"cannot read blocklist {path}: {exc.strerror or exc}") from None
    return Blocklist.parse(text)


def verdict_label(decision: Decision) -> str:
    """ALLOWED, RESERVED, or NOT AVAILABLE when the only reason is that the resource itself could not be fetched
    (404, 5xx, no answer): refused all the same, but a missing page is not a rights reservation."""
    if decision.allowed:
        return "ALLOWED"
    if all(s.protocol == "fetch" and s.where == "url" for s in decision.reservations):
        return "NOT AVAILABLE"
    return "RESERVED"


def format_decision(decision: Decision) -> str:
    """One line per URL: verdict, URL, and the reasons."""
    line = f"{verdict_label(decision)} {decision.url}"
    if decision.reservations:
        reasons = "; ".join(
            f"{s.protocol}: {s.rule}" + (f" [{s.source}]" if s.source else "") for s in decision.reservations
        )
        line += f"  ({reasons})"
    return line


def cmd_check(args: argparse.Namespace) -> int:
    """``optout check``: whether URLs may be used for the purpose; exit 0 when all may, 1 when one may not."""
    from crawler.check import Checker, UsageError, validate_url
    from crawler.fetcher import RequestsFetcher

    policy = make_policy(args)
    if args.urls_file is not None:
        try:
            return run_batch(args, policy, read_blocklist(args.blocklist), user_agent_for(policy.agent))
        except BatchUsageError as exc:
            raise CliError(str(exc)) from None
    if not args.urls:
        raise CliError("give one or more URLs, or --urls FILE")
    try:
        urls = [validate_url(u) for u in args.urls]
    except UsageError as exc:
        raise CliError(str(exc)) from None
    blocklist = read_blocklist(args.blocklist)
    fetcher = RequestsFetcher(user_agent_for(policy.agent), timeout=args.timeout)
    checker = Checker(policy, fetcher, blocklist)
    status = EXIT_OK
    try:
        for url in urls:
            decision = checker.check(url)
            if not decision.allowed:
                status = EXIT_RESERVED
            if args.json:
                print(json.dumps(decision.to_json(), ensure_ascii=False), flush=True)
            else:
                print(format_decision(decision), flush=True)
    finally:
        fetcher.close()
    if not args.json:
        purpose = policy.purpose.value
        print(f"purpose {purpose}, agent {policy.agent}, mode {policy.mode.value}", file=sys.stderr)
    return status


def _setting(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise CliError(f"--set expects NAME=VALUE, not {text!r}")
    try:
        parsed: object = json.loads(value)
    except ValueError:
        parsed = value
    return name.strip(), parsed


def cmd_crawl(args: argparse.Namespace) -> int:
    """``optout crawl``: run the compliant spider under the add-on; items, decisions and registry go to --out."""
    import os

    from rich.console import Console

    from crawler.console import ConsoleProgress
    from crawler.crawl import CrawlError, CrawlOptions, run_crawl
    from crawler.spiders.compliant import SpiderArgumentError, parse_seeds, valid_seed

    policy = make_policy(args)
    seeds = list(args.seeds)
    if args.seeds_file:
        try:
            seeds += parse_seeds(Path(args.seeds_file).read_text(encoding="utf-8", errors="replace"))
        except OSError as exc:
            raise CliError(f"cannot read seeds file {args.seeds_file}: {exc.strerror or exc}") from None
    if not seeds:
        raise CliError("no seeds: give at least one URL (or --seeds-file FILE)")
    try:
        seeds = [valid_seed(u) for u in seeds]
    except SpiderArgumentError as exc:
        raise CliError(str(exc)) from None
    out = Path(args.out)
    registry = args.registry if args.registry is not None else os.environ.get("OPTOUT_REGISTRY_URL") or None
    redis_url = None
    if args.distributed:
        redis_url = args.redis or os.environ.get("OPTOUT_REDIS_URL")
        if not redis_url or not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise CliError("--distributed needs --redis redis://host:port/db (or $OPTOUT_REDIS_URL)")
        if not registry or not registry.startswith(("postgresql://", "postgres://")):
            raise CliError(
                "--distributed needs one registry for all workers: --registry postgresql://… (or $OPTOUT_REGISTRY_URL)"
            )
    elif args.redis or args.crawl_id or args.integrate:
        raise CliError("--redis, --crawl-id and --integrate belong to --distributed crawls")
    if args.signature_agent and not args.signing_key:
        raise CliError("--signature-agent goes with --signing-key FILE (the key the requests are signed with)")
    opts = CrawlOptions(
        seeds=seeds,
        out=out,
        purpose=policy.purpose.value,
        agent=policy.agent,
        mode=policy.mode.value,
        disabled=sorted(policy.disabled),
        cross_token=policy.cross_token,
        blocklist=args.blocklist,
        registry_url=registry,
        depth=args.depth,
        max_pages=args.max_pages,
        allowed_domains=args.allowed_domain,
        sitemaps=not args.no_sitemaps,
        concurrency=args.concurrency,
        delay=args.delay,
        timeout=args.timeout,
        info_url=args.info_url,
        operator=args.operator,
        redis_url=redis_url,
        crawl_id=args.crawl_id or DEFAULT_CRAWL_ID,
        integrate=args.integrate,
        signing_key=args.signing_key,
        signature_agent=args.signature_agent,
        extra_settings=dict(_setting(s) for s in args.set),
    )
    console = Console(stderr=True)
    console.print(
        f"[bold]optout crawl[/]: {len(seeds):,} seed(s), purpose {policy.purpose.value}, agent {policy.agent}, "
        f"mode {policy.mode.value} → {out}",
        soft_wrap=True,  # one line, however narrow the terminal
    )
    progress = ConsoleProgress(console)
    try:
        result = run_crawl(opts, progress=progress)
    except CrawlError as exc:
        raise CliError(str(exc)) from None
    finally:
        progress.stop()
    return crawl_exit_status(console, out, result, distributed=args.distributed)


def crawl_exit_status(console: Console, out: Path, result: CrawlResult, distributed: bool = False) -> int:
    """Print the outcome; 0 done, 1 done with problems (nothing lost), 2 could not run, 130 interrupted. A fleet
    worker that found nothing left to do is done: the other workers crawled it."""
    from crawler.console import print_summary

    if result.summary is not None:
        print_summary(console, out, result.summary)
    if result.start_error:
        print(f"optout crawl: error: {result.start_error} (details in {out / 'crawl.log'})", file=sys.stderr)
        return EXIT_USAGE
    if result.error:
        print(
            f"optout crawl: error: {result.error}. The crawl was stopped; everything written before is kept in "
            f"{out}, and the same command resumes once the problem is fixed.",
            file=sys.stderr,
        )
        return EXIT_PROBLEMS
    if result.summary is None:
        print(f"optout crawl: error: the crawl failed (details in {out / 'crawl.log'})", file=sys.stderr)
        return EXIT_USAGE
    if result.interrupted:
        print(
            f"optout crawl: interrupted; everything so far is in {out}. Run the same command to resume.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    summary = result.summary
    unreachable = summary.get("unreachable_seeds") or {}
    problems = summary.get("problems") or []
    for problem in problems:
        print(f"optout crawl: problem: {problem}", file=sys.stderr)
    if unreachable:
        listed = "; ".join(f"{u}: {why}" for u, why in list(unreachable.items())[:5])
        print(f"optout crawl: {len(unreachable)} seed(s) could not be crawled: {listed}", file=sys.stderr)
    last = summary.get("last_run") or {}
    if summary["runs"] > 1 and not any(last.values()):
        print(
            f"optout crawl: nothing new to crawl: the crawl in {out} is complete. Use another --out to crawl "
            "again (or move its job/ folder away to start over and append to its files).",
            file=sys.stderr,
        )
    crawled = summary["pages"]["stored"] + summary["pages"]["refused"]
    if problems or (unreachable and len(unreachable) >= summary["seeds"] and not summary["pages"]["stored"]):
        return EXIT_PROBLEMS
    if not crawled and not distributed:
        print("optout crawl: nothing was crawled", file=sys.stderr)
        return EXIT_PROBLEMS
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """``optout demo``: crawl a local fixture web showing each kind of opt-out, end to end."""
    from crawler.demo import run_demo

    return run_demo(Path(args.out))


def cmd_disclose(args: argparse.Namespace) -> int:
    """``optout disclose``: write the public page about the crawler, as HTML and JSON."""
    from crawler.disclose import DisclosureError, run_disclose

    try:
        return run_disclose(args)
    except DisclosureError as exc:
        raise CliError(str(exc)) from None


def cmd_verify_request(args: argparse.Namespace) -> int:
    """``optout verify-request``: check a request's Web Bot Auth signature as a site would."""
    from crawler.keydir import run_verify_request
    from middlewares.httpsig import SignatureError

    try:
        return run_verify_request(args)
    except SignatureError as exc:
        raise CliError(str(exc)) from None


def cmd_filter(args: argparse.Namespace) -> int:
    """``optout filter``: keep the WARC records whose pages may be used for the purpose."""
    from crawler.warcfilter import FilterError, run_filter

    policy = make_policy(args)
    try:
        return run_filter(args, policy, read_blocklist(args.blocklist), user_agent_for(policy.agent))
    except FilterError as exc:
        raise CliError(str(exc)) from None


def cmd_recheck(args: argparse.Namespace) -> int:
    """``optout recheck``: purge lists for what a corpus took in before its sources opted out."""
    from crawler.recheck import RecheckError, run_recheck

    policy = make_policy(args)
    try:
        return run_recheck(args, policy, read_blocklist(args.blocklist), user_agent_for(policy.agent))
    except RecheckError as exc:
        raise CliError(str(exc)) from None


def cmd_summary(args: argparse.Namespace) -> int:
    """``optout summary``: the public summary of training content (AI Act Art. 53(1)(d)) from crawl evidence."""
    try:
        return run_summary(args)
    except SummaryError as exc:
        raise CliError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """The ``optout`` entry point: run one subcommand and return its exit status; an error is one line on stderr with
    status 2 (a traceback only with --debug)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a bad value already reported in one line: a status, also in-process
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handler = {
        "check": cmd_check,
        "crawl": cmd_crawl,
        "demo": cmd_demo,
        "disclose": cmd_disclose,
        "filter": cmd_filter,
        "verify-request": cmd_verify_request,
        "recheck": cmd_recheck,
        "summary": cmd_summary,
        "registry": run_registry,
        "serve": run_serve,
    }[args.command]
    try:
        return handler(args)
    except CliError as exc:
        print(f"optout {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"optout {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            raise
        print(f"optout {args.command}: internal error: {type(exc).__name__}: {exc} (run with --debug)", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
