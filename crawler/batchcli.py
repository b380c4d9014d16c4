"""The options of ``optout check --urls FILE`` and the command that runs them (crawler/batchrun.py)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from optout_registry import cliargs

EXIT_OK, EXIT_RESERVED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class BatchUsageError(ValueError):
    """A usage error of a batch check (one line, exit status 2)."""


def add_batch_args(check: argparse.ArgumentParser) -> None:
    group = check.add_argument_group(
        "batch checking (URL lists and datasets)",
        'One JSON line per input row, in input order: the check contract plus "row" (from 0) and, with '
        '--site-level, "not_evaluated". Many origins at once, each one politely: robots.txt first, policy files '
        "once per origin, Crawl-delay, --per-origin requests at a time.",
    )
    group.add_argument(
        "--urls",
        dest="urls_file",
        metavar="FILE",
        help="check every row of FILE ('-' for stdin): one URL a line, or CSV, JSON Lines or Parquet",
    )
    group.add_argument("--column", default="url", type=cliargs.non_empty, help="the URL column (default url)")
    group.add_argument(
        "--format", choices=("text", "csv", "jsonl", "parquet"), help="the input's format (default: by its name)"
    )
    group.add_argument(
        "--site-level",
        action="store_true",
        help="decide from robots.txt, tdmrep.json, ai.txt and RSL licences only, without requesting the URLs "
        "(one set of requests per origin); each answer names the page-level protocols not evaluated",
    )
    group.add_argument(
        "--annotate", metavar="OUT", help="write the dataset with optout_allowed/_protocols/_reason columns added"
    )
    group.add_argument("--keep-allowed", metavar="OUT", help="write only the allowed rows of the dataset")
    group.add_argument(
        "--out",
        metavar="STATE",
        type=cliargs.non_empty,
        help="SQLite file keeping the answers: a stopped run resumes with the same command",
    )
    group.add_argument("--unordered", action="store_true", help="answer lines as they come, not in input order")
    group.add_argument(
        "--concurrency", type=cliargs.count, default=64, help="origins (requests) in flight at once (default 64)"
    )
    group.add_argument("--per-origin", type=cliargs.count, default=1, help="requests in flight per origin (default 1)")
    group.add_argument(
        "--cache", metavar="URL", help="persistent policy cache shared with optout crawl: sqlite:///path or redis://…"
    )
    group.add_argument(
        "--registry",
        metavar="URL",
        help="record each reservation (excluded_from_corpus): sqlite:///path or postgresql://…",
    )
    group.add_argument("--operator", type=cliargs.non_empty, default="localhost", help="written into registry records")
    group.add_argument("--summary", metavar="FILE", help="also write the summary as JSON to FILE")


def run_batch(args: argparse.Namespace, policy: Any, blocklist: Any, user_agent: str) -> int:
    from crawler.batchio import InputError
    from crawler.batchrun import BatchOptions, BatchRun, print_summary
    from crawler.batchstate import StateError

    if args.urls:
        raise BatchUsageError("give URLs on the command line or --urls FILE, not both")
    if args.annotate and args.keep_allowed:
        raise BatchUsageError("--annotate and --keep-allowed write different files: choose one")
    opts = BatchOptions(
        path=args.urls_file,
        column=args.column,
        format=args.format,
        site_level=args.site_level,
        annotate=args.annotate,
        keep_allowed=args.keep_allowed,
        state=args.out,
        cache=args.cache,
        registry=args.registry,
        operator=args.operator,
        unordered=args.unordered,
        concurrency=args.concurrency,
        per_origin=args.per_origin,
        timeout=args.timeout,
        json_lines=args.json or not (args.annotate or args.keep_allowed),
    )
    try:
        run = BatchRun(opts, policy, user_agent=user_agent, blocklist=blocklist)
        summary = run.run()
    except (InputError, StateError) as exc:
        raise BatchUsageError(str(exc)) from None
    print_summary(summary, sys.stderr, policy, opts.site_level)
    if args.summary:
        try:
            with open(args.summary, "w", encoding="utf-8") as handle:
                json.dump(summary.to_json(), handle, indent=2)
        except OSError as exc:
            raise BatchUsageError(f"cannot write {args.summary}: {exc.strerror or exc}") from None
    if summary.interrupted:
        hint = " Run the same command to resume." if opts.state else " (--out STATE would let it resume)"
        print(f"optout check: interrupted.{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.allowed == summary.rows else EXIT_RESERVED
