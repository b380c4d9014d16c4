"""Command-line values checked where argparse parses them, for every ``optout`` subcommand.

Why here: a bad value found late turns into a raw exception far from its cause (an ``OverflowError`` from a timer,
a ``KeyError`` from uvicorn's log levels) or, worse, into something quietly different from what was asked (a port
taken modulo 65536, admin switched off by an empty token file, a ``javascript:`` link in a published page). Each
function is an argparse ``type=``: it raises ``ArgumentTypeError`` with a message that names the value, and
``OneLineParser`` prints that as one line with exit status 2. The module lives in ``optout_registry`` because both
CLIs use it and the registry package must not depend on the crawler; at import it needs nothing but the standard
library, so ``optout --help`` stays fast.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import re
import sys
from collections.abc import Callable
from typing import NoReturn
from urllib.parse import urlsplit

from optout_registry.errors import RegistryError
from optout_registry.recordfields import parse_time

EXIT_USAGE = 2
MAX_SECONDS = 10**9
"""About 31 years: longer durations overflow C timeouts (``threading.Event.wait``, sockets) and expiry dates."""
MAX_COUNT = 2**31 - 1

_EMAIL = re.compile(r"[^@\s<>()\[\],;:\"]+@\w(?:[\w.-]*\w)?\.[\w-]{2,}")  # \w: IDN domains as typed, too


class OneLineParser(argparse.ArgumentParser):
    """argparse prints the usage block and then the error; the project's rule is one line on stderr, exit 2 (the
    usage is one ``--help`` away). Subparsers inherit the class, so every subcommand behaves the same."""

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        print(f"{self.prog}: error: {text} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _shown(text: str) -> str:
    return repr(text) if not text or text != text.strip() or not text.isprintable() else text


def integer(lo: int, hi: int, what: str) -> Callable[[str], int]:
    """An integer in ``[lo, hi]``; ``what`` says what the number is in the error."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{_shown(text)} is not a whole number") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is not {what} ({lo}–{hi})")
        return value

    return parse


def number(lo: float, hi: float, what: str, *, above: bool = False) -> Callable[[str], float]:
    """A finite number in ``[lo, hi]`` (``(lo, hi]`` when ``above``): nan and inf pass every ``> 0`` test written
    as ``not x > 0`` or ``x < 0`` somewhere, and then overflow a timer."""

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{_shown(text)} is not a number") from None
        if not math.isfinite(value) or value < lo or (above and value == lo) or value > hi:
            low = f"more than {lo:g}" if above else f"at least {lo:g}"
            raise argparse.ArgumentTypeError(f"{_shown(text)} is not {what} ({low}, at most {hi:g})")
        return value

    return parse


port = integer(1, 65_535, "a port number")
count = integer(1, MAX_COUNT, "a count of at least 1")
non_negative = integer(0, MAX_COUNT, "a whole number of at least 0")
seconds = number(0, MAX_SECONDS, "a positive number of seconds", above=True)
whole_seconds = integer(1, MAX_SECONDS, "a positive whole number of seconds")
delay = number(0, MAX_SECONDS, "a number of seconds")
rate = number(0, 1e9, "a rate (0 switches the limit off)")


def non_empty(text: str) -> str:
    """Text that must say something: an empty ``--site`` would silently mean every site, or none."""
    value = text.strip()
    if not value:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is empty")
    if not value.isprintable():
        raise argparse.ArgumentTypeError(f"{_shown(text)} contains control characters")
    return value


def http_url(text: str) -> str:
    """An absolute http(s) URL with a host: anything else (``javascript:``, ``file:``, a bare word) would be
    published as a link or put into the User-Agent."""
    value = text.strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or not value.isprintable() or " " in value:
        raise argparse.ArgumentTypeError(f"{_shown(text)} is not an http:// or https:// URL")
    return value


def is_email(text: str) -> bool:
    return _EMAIL.fullmatch(text) is not None


def contact(text: str) -> str:
    """Where people write to: an e-mail address or an http(s) URL, nothing a reader could not act on."""
    value = text.strip()
    if is_email(value):
        return value
    if value.lower().startswith(("http://", "https://")):
        return http_url(value)
    raise argparse.ArgumentTypeError(f"{_shown(text)} is neither an e-mail address nor an http(s) URL")


def cidr(text: str) -> str:
    """An IPv4 or IPv6 network (a lone address is its own /32 or /128), in canonical form. Host bits set are
    refused: ``192.0.2.1/24`` is more likely a typo than the range meant."""
    value = text.strip()
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (expected an address range such as 192.0.2.0/24)") from None


def date_or_time(text: str) -> str:
    """A ``--since``/``--until`` bound, kept as given: a date or RFC 3339 time the registry can compare, i.e. one that
    still exists in UTC (``0001-01-01T00:00:00+01:00`` does not, and overflowed deep inside the listing)."""
    try:
        parse_time(text)
    except (RegistryError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"{_shown(text)} is not a date (YYYY-MM-DD) or RFC 3339 time between years 1 and 9999 in UTC"
        ) from None
    return text


def describe_os_error(exc: OSError) -> str:
    """An OSError in words that name the path. ``mkdir(parents=True)`` reports a file standing where a folder must be
    as "File exists" on that file, which reads like the opposite of the problem."""
    name = exc.filename
    if isinstance(exc, FileExistsError) and name is not None:
        return f"{name} is a file, not a folder"
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{name}: {reason}" if name is not None else reason
