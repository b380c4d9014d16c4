"""``optout serve``: run the rights-holder query service (wired into crawler/cli.py).

Kept free of web-stack imports so ``optout --help`` stays fast and works without the ``[service]`` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optout_registry import cliargs
from optout_registry.errors import RegistryError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from optout_registry.service.state import ServiceConfig

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class ServeError(Exception):
    """A one-line usage error (exit 2)."""


def add_serve_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``optout serve`` and its options to the ``optout`` command line."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the rights-holder query service (web page + API) over a registry",
        description="Serve a registry to rights holders: they prove control of their domain and see, verify and "
        "download what was recorded about it. API spec at /openapi.json; checkpoint at "
        "/.well-known/optout-registry/checkpoint.",
    )
    p.add_argument("--registry", metavar="URL", default=None, help="sqlite:///path or postgresql://… (required)")
    p.add_argument(
        "--host", type=cliargs.non_empty, default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    p.add_argument("--port", type=cliargs.port, default=8080, help="port, 1-65535 (default 8080)")
    p.add_argument("--key", metavar="FILE", help="registry key file (only to locate the registry's key; never signs)")
    p.add_argument("--service-db", metavar="URL", help="SQLite file for the service's own tables (default beside it)")
    p.add_argument(
        "--admin-token-file",
        metavar="FILE",
        help="file holding the operator's admin token (default $OPTOUT_SERVICE_ADMIN_TOKEN; none: admin off)",
    )
    p.add_argument(
        "--rate-limit",
        type=cliargs.rate,
        default=20.0,
        help="read requests per second per client (default 20, 0 = off)",
    )
    p.add_argument("--burst", type=cliargs.count, default=60, help="read burst per client (default 60)")
    p.add_argument(
        "--write-rate-limit",
        type=cliargs.rate,
        default=10.0,
        help="challenges/complaints per minute per client (default 10, 0 = off)",
    )
    p.add_argument(
        "--challenge-ttl", type=cliargs.whole_seconds, default=900, help="seconds an ownership challenge stays valid"
    )
    p.add_argument(
        "--token-ttl", type=cliargs.whole_seconds, default=86_400, help="seconds a holder's access token stays valid"
    )
    p.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="DOMAIN=URL",
        help="fetch DOMAIN's challenge from URL instead of DNS (tests and demos, e.g. example.net=http://127.0.0.1:8081)",
    )
    p.add_argument("--operator", type=cliargs.non_empty, help="who operates the crawler (shown on the page)")
    p.add_argument("--contact", type=cliargs.contact, help="point of contact for rights holders: e-mail or http(s) URL")
    p.add_argument("--proxy-headers", action="store_true", help="trust X-Forwarded-For from 127.0.0.1 (behind a proxy)")
    p.add_argument("--workers", type=cliargs.count, default=1, help="uvicorn worker processes (default 1)")
    p.add_argument(
        "--log-level", default="warning", choices=LOG_LEVELS, type=str.lower, help="uvicorn log level (default warning)"
    )
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return p


def read_admin_token(path: str) -> str:
    """The token in ``path``. An empty or unreadable file is an error, not "no admin": whoever passed the option
    meant admin to be on, and finding it silently off later is worse than not starting."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ServeError(f"cannot read admin token file {path!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ServeError(f"admin token file {path!r} is not UTF-8 text") from None
    if not token:
        raise ServeError(f"admin token file {path!r} is empty")
    return token


def config_from_args(args: argparse.Namespace) -> ServiceConfig:
    """The service's settings from ``optout serve``'s arguments and environment; ServeError if they are wrong."""
    # here and below, the service's modules are imported when a command runs, so that `optout --help` stays fast
    # (and create_app, below, needs the [service] extra)
    from optout_registry.service.guard import RateLimits
    from optout_registry.service.ownership import static_resolver
    from optout_registry.service.state import ServiceConfig

    registry = args.registry or os.environ.get("OPTOUT_REGISTRY_URL")
    if not registry:
        raise ServeError("--registry URL is required")
    admin = os.environ.get("OPTOUT_SERVICE_ADMIN_TOKEN") or None
    if args.admin_token_file is not None:
        admin = read_admin_token(args.admin_token_file)
    if admin is not None and len(admin) < 16:
        raise ServeError("the admin token must be at least 16 characters")
    if admin is not None and not all(c.isprintable() and not c.isspace() for c in admin):
        raise ServeError("the admin token must be one word of printable characters (it is sent in a header)")
    mapping = {}
    for item in args.resolve:
        domain, sep, url = item.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            raise ServeError(f"--resolve expects DOMAIN=http://HOST:PORT, not {item!r}")
        mapping[domain] = url
    limits = RateLimits(read_per_s=args.rate_limit, read_burst=args.burst, write_per_min=args.write_rate_limit)
    return ServiceConfig(
        registry_url=registry,
        service_db=args.service_db,
        key=args.key,
        admin_token=admin,
        resolver=static_resolver(mapping) if mapping else None,
        limits=limits,
        challenge_ttl=args.challenge_ttl,
        token_ttl=args.token_ttl,
        operator=args.operator,
        contact=args.contact,
    )


def _factory() -> FastAPI:
    """uvicorn --workers needs an import string; the parent passes its arguments through the environment."""
    from optout_registry.service.app import create_app

    args = argparse.Namespace(**json.loads(os.environ["OPTOUT_SERVE_ARGS"]))
    return create_app(config_from_args(args))


def check_listen(host: str, port: int) -> None:
    """Bind once before anything starts: uvicorn reports a host that does not resolve, or a port in use, in its own
    log line after the start banner and exits with status 3; here it is the CLI's one line and status 2."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def run_serve(args: argparse.Namespace) -> int:
    """Run ``optout serve`` until interrupted: 0 when it stops, 2 on a usage, registry or listen error."""
    try:
        import uvicorn

        from optout_registry.service.app import create_app
    except ImportError as exc:
        print(f"optout serve: error: {exc.name} is missing: pip install 'optout-toolkit[service]'", file=sys.stderr)
        return 2
    common = {
        "host": args.host,
        "port": args.port,
        "proxy_headers": args.proxy_headers,
        "server_header": False,
        "log_level": args.log_level,
        "access_log": args.log_level in ("debug", "info"),
    }
    try:
        cfg = config_from_args(args)
        check_listen(args.host, args.port)
        if args.workers > 1:
            create_app(cfg).state.service.close()  # fail fast on a bad registry before forking workers
            os.environ["OPTOUT_SERVE_ARGS"] = json.dumps({k: v for k, v in vars(args).items() if k != "func"})
            uvicorn.run("optout_registry.service.cli:_factory", factory=True, workers=args.workers, **common)
            return 0
        app = create_app(cfg)
    except (RegistryError, ServeError, OSError) as exc:
        text = cliargs.describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        print(f"optout serve: error: {' '.join(text.split())}", file=sys.stderr)
        return 2
    print(f"optout serve: http://{args.host}:{args.port}/ (API spec /openapi.json)", file=sys.stderr)
    uvicorn.run(app, **common)
    return 0
