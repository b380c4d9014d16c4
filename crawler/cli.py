"""The ``optout`` command line.

Errors a user can cause (bad URL, unknown purpose, unreadable blocklist) are one line on stderr and exit status 2;
so is any unexpected failure, unless ``--debug`` asks for the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from middlewares.policy import DEFAULT_AGENT, Decision, Policy, PolicyError
from middlewares.protocols.signals import Mode, Purpose
from optout_registry.cli import add_registry_commands, run_registry

EXIT_OK, EXIT_RESERVED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A one-line error for the user."""


def _add_policy_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--purpose", default=Purpose.TRAIN_AI.value, help="train-ai (default), ai-input or search")
    p.add_argument("--agent", default=DEFAULT_AGENT, help=f"the crawler's robots.txt token (default {DEFAULT_AGENT})")
    p.add_argument("--mode", default=Mode.CONSERVATIVE.value, help="conservative (default) or strict")
    p.add_argument(
        "--disable",
        action="append",
        default=[],
        metavar="PROTOCOL",
        help="switch one usage protocol off (repeatable), e.g. ai-txt",
    )
    p.add_argument("--no-cross-token", action="store_true", help="ignore disallows aimed at other AI crawlers")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    p.add_argument("--blocklist", metavar="FILE", help="domains never to use, one per line")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="optout", description="Honour copyright and AI opt-outs, and prove it.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = sub.add_parser("check", help="may these URLs be used for a purpose? (exit 0 yes, 1 no, 2 error)")
    check.add_argument("urls", nargs="+", metavar="URL")
    check.add_argument("--json", action="store_true", help="JSON Lines, one object per URL")
    _add_policy_args(check)
    check.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    demo = sub.add_parser("demo", help="check a local fixture web showing every kind of opt-out, write a report")
    demo.add_argument("--out", default="optout-demo", help="report folder (default ./optout-demo)")
    demo.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    add_registry_commands(sub)
    return parser


def make_policy(args: argparse.Namespace) -> Policy:
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


def load_blocklist(path: str | None):  # -> Blocklist | None
    if not path:
        return None
    from middlewares.protocols.blocklist import Blocklist

    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CliError(f"cannot read blocklist {path}: {exc.strerror or exc}") from None
    return Blocklist.parse(text)


def format_decision(decision: Decision) -> str:
    """One line per URL: verdict, URL, and the reasons."""
    verdict = "ALLOWED " if decision.allowed else "RESERVED"
    line = f"{verdict} {decision.url}"
    if decision.reservations:
        reasons = "; ".join(
            f"{s.protocol}: {s.rule}" + (f" [{s.source}]" if s.source else "") for s in decision.reservations
        )
        line += f"  ({reasons})"
    return line


def cmd_check(args: argparse.Namespace) -> int:
    from crawler.check import Checker, UsageError, validate_url
    from crawler.fetcher import RequestsFetcher

    policy = make_policy(args)
    if not args.timeout > 0:
        raise CliError("--timeout must be a positive number of seconds")
    try:
        urls = [validate_url(u) for u in args.urls]
    except UsageError as exc:
        raise CliError(str(exc)) from None
    blocklist = load_blocklist(args.blocklist)
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


def user_agent_for(agent: str) -> str:
    """RFC 9309 §2.2.1: the product token is part of the User-Agent, which also says where to learn more."""
    return f"Mozilla/5.0 (compatible; {agent}/0.1; +https://github.com/optout-toolkit/optout)"


def cmd_demo(args: argparse.Namespace) -> int:
    from crawler.demo import run_demo

    return run_demo(Path(args.out))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    handler = {"check": cmd_check, "demo": cmd_demo, "registry": run_registry}[args.command]
    try:
        return handler(args)
    except CliError as exc:
        print(f"optout {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"optout {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"optout {args.command}: internal error: {type(exc).__name__}: {exc} (run with --debug)", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
