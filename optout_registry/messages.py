"""One-line, password-free text for error messages and log lines about services (PostgreSQL, Redis)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """The URL without a password."""
    try:
        parts = urlsplit(url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return f"{url.partition(':')[0]}://…"
    return url


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (drivers add hints and context on the lines below)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
