"""``optout registry …``: inspect, checkpoint, export and verify the registry from the command line.

Wired into crawler/cli.py with ``add_registry_commands(sub)`` and a ``"registry": run_registry`` dispatch entry.
Exit status: 0 success / valid, 1 "not valid" (a bundle or the registry failed verification), 2 usage or other
error. Errors are one line on stderr; ``--debug`` shows tracebacks. Nothing heavy is imported until a command
runs, so ``optout --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from optout_registry import cliargs
from optout_registry.errors import IntegrityError, RegistryError
from optout_registry.export import export_bundle
from optout_registry.note import NoteError, Verifier
from optout_registry.recordfields import summary_columns
from optout_registry.registry import Registry
from optout_registry.verify import verify_export
from optout_registry.vocabulary import describe

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class _UsageError(Exception):
    """A one-line error for the user (exit 2)."""


def add_registry_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``registry`` and its subcommands on the top-level ``optout`` subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--registry",
        metavar="URL",
        default=None,
        help="sqlite:///path, a file path or postgresql://… (default $OPTOUT_REGISTRY_URL, else ./optout-registry.db)",
    )
    common.add_argument("--key", metavar="FILE", default=None, help="private signing key file (default: beside it)")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")

    reg: argparse.ArgumentParser = subparsers.add_parser(
        "registry", help="the tamper-evident registry of honoured opt-outs"
    )
    reg.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    rsub = reg.add_subparsers(dest="registry_command", metavar="SUBCOMMAND")

    p = rsub.add_parser("stats", parents=[common], help="size, pending entries, evidence, key")
    p.add_argument("--json", action="store_true", help="one JSON object")

    rsub.add_parser("key", parents=[common], help="print the public verifier key (vkey) to publish and pin")

    p = rsub.add_parser("checkpoint", parents=[common], help="integrate pending entries, print the signed checkpoint")
    p.add_argument(
        "--tsa",
        metavar="URL",
        action="append",
        default=None,
        type=cliargs.http_url,
        help="also timestamp it with this RFC 3161 TSA (repeatable; default $OPTOUT_TSA_URL if set)",
    )
    p.add_argument(
        "--every",
        type=cliargs.seconds,
        metavar="SECONDS",
        help="keep integrating at this interval until stopped (Ctrl-C or SIGTERM): the integrator of a fleet",
    )

    p = rsub.add_parser("records", parents=[common], help="list logged records for a site")
    p.add_argument(
        "--site",
        type=cliargs.non_empty,
        help="registrable domain (a host or URL is reduced to it); all sites if omitted",
    )
    p.add_argument("--since", type=cliargs.date_or_time, help="observed at or after this date / RFC 3339 time")
    p.add_argument(
        "--until", type=cliargs.date_or_time, help="observed at or before this date (inclusive) / RFC 3339 time"
    )
    p.add_argument("--json", action="store_true", help="JSON Lines: {index, record}")

    p = rsub.add_parser("export", parents=[common], help="write a verifiable bundle for one site (REGISTRY.md §6.7)")
    p.add_argument("--site", required=True, type=cliargs.non_empty, help="registrable domain of the rights holder")
    p.add_argument(
        "--out", required=True, metavar="DIR", type=cliargs.non_empty, help="new or empty directory to write"
    )
    p.add_argument("--since", type=cliargs.date_or_time, help="observed at or after this date / RFC 3339 time")
    p.add_argument(
        "--until", type=cliargs.date_or_time, help="observed at or before this date (inclusive) / RFC 3339 time"
    )
    p.add_argument(
        "--previous",
        metavar="CHECKPOINT",
        help="a checkpoint the holder kept: include a consistency proof from it to the export's checkpoint",
    )

    p = rsub.add_parser("verify", parents=[common], help="verify an export bundle offline (exit 0 valid, 1 not valid)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--vkey", required=True, help="the registry's pinned verifier key, or a file holding it")
    p.add_argument("--previous", metavar="CHECKPOINT", help="a checkpoint you kept earlier (file)")
    p.add_argument(
        "--previous-export",
        metavar="DIR",
        help="an earlier export of the same site: its records must be the first ones of this one, unchanged",
    )
    p.add_argument(
        "--allow-missing-evidence",
        action="store_true",
        help="accept evidence the signed manifest lists as not stored (the reason is printed) instead of failing",
    )

    p = rsub.add_parser("check", parents=[common], help="self-check the stored log against its signed checkpoints")
    p.add_argument(
        "--full",
        action="store_true",
        help="re-hash every entry, tile, checkpoint and evidence blob, and recompute the site index from the entries",
    )
    return reg


def run_registry(args: argparse.Namespace) -> int:
    """Run one ``optout registry`` subcommand; never raises (except with --debug)."""
    command = getattr(args, "registry_command", None)
    name = f"optout registry {command}" if command else "optout registry"
    if command is None:
        print(f"{name}: error: choose a subcommand: {', '.join(_HANDLERS)}", file=sys.stderr)
        return EXIT_USAGE
    handler = _HANDLERS[command]
    try:
        return handler(args)
    except IntegrityError as exc:
        print(f"{name}: not valid: {_one_line(exc)}", file=sys.stderr)
        return EXIT_INVALID
    except (RegistryError, _UsageError) as exc:
        print(f"{name}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:  # a file where a folder must be, a read-only disk, a full one: the user's to fix
        print(f"{name}: error: {_one_line(cliargs.describe_os_error(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        print(f"{name}: internal error: {type(exc).__name__}: {_one_line(exc)} (run with --debug)", file=sys.stderr)
        return EXIT_USAGE


def _one_line(exc: BaseException | str) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _open(args: argparse.Namespace, *, create: bool = False) -> Any:
    return Registry.open(args.registry, key=args.key, create=create)


def _cmd_stats(args: argparse.Namespace) -> int:
    with _open(args) as reg:
        stats = reg.stats()
    if args.json:
        print(json.dumps(stats, sort_keys=True))
    else:
        width = max(len(k) for k in stats)
        for key, value in stats.items():
            print(f"{key.replace('_', ' '):<{width}}  {'-' if value is None else value}")
    return EXIT_OK


def _cmd_key(args: argparse.Namespace) -> int:
    with _open(args, create=True) as reg:
        print(reg.vkey)
    return EXIT_OK


def _cmd_checkpoint(args: argparse.Namespace) -> int:
    tsas = args.tsa or ([os.environ["OPTOUT_TSA_URL"]] if os.environ.get("OPTOUT_TSA_URL") else [])
    with _open(args, create=True) as reg:
        if args.every:
            _integrate_until_stopped(reg, args.every)
        note = reg.checkpoint()
        sys.stdout.write(note)
        for tsa in tsas:
            gen_time = reg.anchor(tsa)
            print(f"anchored at {tsa}: genTime {gen_time}", file=sys.stderr)
    return EXIT_OK


def _integrate_until_stopped(reg: Any, every: float) -> None:
    """Sign a checkpoint whenever workers have sequenced new records; one line per checkpoint on stderr. Ends
    on SIGTERM as on Ctrl-C, and the caller then signs the last checkpoint."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        size = reg.size
        while not stop.is_set():
            reg.integrate(wait=True)
            if reg.size != size:
                size = reg.size
                print(f"checkpoint {size}", file=sys.stderr, flush=True)
            stop.wait(every)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _cmd_records(args: argparse.Namespace) -> int:
    with _open(args) as reg:
        count = 0
        for entry in reg.records(site=args.site, since=args.since, until=args.until):
            count += 1
            if args.json:  # the record as logged, with the protocol id and where people read beside it
                protocol, where = describe(entry.record)
                line = {"index": entry.index, "protocol": protocol, "where": where, "record": entry.record}
                print(json.dumps(line, ensure_ascii=False, sort_keys=True))
            else:
                print(_record_line(entry.index, entry.record))
    if not args.json:
        print(f"{count} record(s)", file=sys.stderr)
    return EXIT_OK


def _record_line(index: int, record: dict[str, Any]) -> str:
    return "  ".join([f"#{index}", *summary_columns(record)])


def _read_previous(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _UsageError(f"cannot read checkpoint {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _cmd_export(args: argparse.Namespace) -> int:
    previous = _read_previous(args.previous)
    with _open(args) as reg:
        result = export_bundle(reg, args.site, Path(args.out), since=args.since, until=args.until, previous=previous)
    print(f"wrote {result.records} record(s) for {result.site}, proofs against checkpoint {result.size}: {result.out}")
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    vkey = args.vkey.strip()
    if os.path.isfile(vkey):
        try:
            vkey = Path(vkey).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise _UsageError(f"cannot read vkey file {args.vkey}: {exc}") from None
    try:
        Verifier.from_vkey(vkey)
    except NoteError as exc:
        raise _UsageError(f"--vkey: {exc} (the key `optout registry key` prints)") from None
    if not Path(args.dir).is_dir():
        raise _UsageError(f"{args.dir} is not a directory")
    previous = _read_previous(args.previous)
    if args.previous_export is not None and not Path(args.previous_export).is_dir():
        raise _UsageError(f"--previous-export: {args.previous_export} is not a directory")
    report = verify_export(
        Path(args.dir),
        vkey,
        previous_checkpoint=previous,
        previous_export=args.previous_export,
        allow_missing_evidence=args.allow_missing_evidence,
    )
    sys.stdout.write(report.text())
    if report.ok:
        return EXIT_OK
    more = f" (and {len(report.problems) - 1} more problem(s), listed above)" if len(report.problems) > 1 else ""
    first = report.problems[0] if report.problems else "unknown problem"
    print(f"optout registry verify: not valid: {first}{more}", file=sys.stderr)
    return EXIT_INVALID


def _cmd_check(args: argparse.Namespace) -> int:
    with Registry.open(args.registry, key=args.key, create=False, check=False) as reg:
        report = reg.self_check(full=args.full)
    for line in report.lines:
        print(line)
    if report.ok:
        print(f"ok: registry of size {report.size} is consistent with its signed checkpoints")
        return EXIT_OK
    for problem in report.problems:
        print(f"optout registry check: not valid: {problem}", file=sys.stderr)
    return EXIT_INVALID


_HANDLERS = {
    "stats": _cmd_stats,
    "key": _cmd_key,
    "checkpoint": _cmd_checkpoint,
    "records": _cmd_records,
    "export": _cmd_export,
    "verify": _cmd_verify,
    "check": _cmd_check,
}
