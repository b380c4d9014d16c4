"""Undoing Content-Encoding without ever producing more than a given number of bytes.

A policy file is read up to its parse limit (RFC 9309 §2.5: the first 500 KiB of robots.txt). Counting that limit
on the wire is not enough: 1 MB of gzip expands to 1 GB, and any site could serve that as its robots.txt. So the
body is decoded here, by the fetcher that read it (the Scrapy add-on, ``optout check``), and the decoded bytes stop
one byte past the limit: the parsers still see that the file went on, and nothing beyond that is ever expanded.

Only the encodings we ask for (``Accept-Encoding: gzip, deflate``) are decoded; any other is an error, and a file
that cannot be read is treated as the fetcher treats any failed fetch (when in doubt, do not use the content).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

ACCEPT_ENCODING = "gzip, deflate"


class DecodingError(ValueError):
    """The body cannot be decoded (an encoding we did not ask for, or corrupt data)."""


def codings(header_values: Iterable[str]) -> list[str]:
    """The codings of ``Content-Encoding`` header lines, in the order they were applied."""
    return [c.strip().lower() for value in header_values for c in value.split(",") if c.strip()]


def decode(body: bytes, applied: list[str], limit: int) -> bytes:
    """``body`` with ``applied`` codings undone (last applied first), at most ``limit`` bytes of it. A body cut
    short (the download was stopped at its limit) decodes as far as it goes."""
    if limit <= 0:  # zlib reads a max_length of 0 as "no limit"
        raise ValueError("limit must be positive")
    for coding in reversed(applied):
        if coding in ("identity", ""):
            continue
        if coding in ("gzip", "x-gzip"):
            body = _inflate(body, zlib.MAX_WBITS | 16, limit)
        elif coding == "deflate":
            # RFC 9110 says zlib-wrapped; some servers send raw deflate. The zlib header tells them apart.
            wrapped = len(body) >= 2 and (body[0] & 0x0F) == 8 and ((body[0] << 8) | body[1]) % 31 == 0
            body = _inflate(body, zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS, limit)
        else:
            raise DecodingError(f"unsupported Content-Encoding {coding!r} (we ask for {ACCEPT_ENCODING})")
    return body[:limit]


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    try:
        return zlib.decompressobj(wbits).decompress(data, limit)
    except zlib.error as exc:
        raise DecodingError(f"corrupt compressed body: {exc}") from None
