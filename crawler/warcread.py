"""Reading WARC files for ``optout filter``: one record at a time, with where it lies in the file.

warcio parses the records (WARC 1.0 and 1.1, plain or gzipped, one gzip member per record as Common Crawl writes
them). Each record comes back with its byte span in the file, so a kept record is copied byte for byte (its
digests stay valid) and nothing but the body of the response being judged is ever held, at most ``limit`` bytes.

A record that ends before its Content-Length (a truncated file), or whose HTTP block cannot be read, is returned
with a ``problem`` and no body: the caller reports and skips it. A file that cannot be read on (a damaged gzip
member, a record that does not start with a WARC header) ends with :class:`ArchiveDamaged`, after every record
read before it.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from middlewares.engine import Fetched

CHUNK = 1 << 20


class ArchiveDamaged(Exception):
    """The file cannot be read past ``offset``: one line saying why."""

    def __init__(self, path: str, offset: int, why: str) -> None:
        super().__init__(f"{path}: cannot read on at byte {max(offset, 0):,}: {why}")
        self.offset = offset


@dataclass
class WarcRecord:
    rec_type: str
    record_id: str
    target: str
    date: str
    offset: int  # where the record (its gzip member, in a gzipped file) starts
    length: int  # its bytes in the file; a plain file's record without the two CRLF after it
    gzipped: bool
    concurrent_to: list[str] = field(default_factory=list)
    fetched: Fetched | None = None  # response records that could be read
    problem: str = ""


def warc_time(value: str) -> float | None:
    """WARC-Date (ISO 8601, ``Z``) as Unix seconds, or None."""
    text = value.strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        try:
            return email.utils.parsedate_to_datetime(text).timestamp()
        except (TypeError, ValueError):
            return None


def _target(value: str | None) -> str:
    text = (value or "").strip()
    return text[1:-1] if text.startswith("<") and text.endswith(">") else text  # WARC 1.0 allowed <uri>


def _response(record: Any, target: str, when: float | None, limit: int) -> tuple[Fetched | None, str]:
    http = record.http_headers
    if http is None:
        return None, "no HTTP response block"
    try:
        status = int(http.get_statuscode())
    except (TypeError, ValueError):
        return None, f"malformed HTTP status line {str(http.statusline)[:80]!r}"
    headers: dict[str, list[str]] = {}
    for name, value in http.headers:
        headers.setdefault(name.strip().lower(), []).append(value)
    try:
        body = record.content_stream().read(limit + 1)
    except Exception as exc:  # a broken chunked or compressed body: not something to judge
        return None, f"unreadable HTTP body ({type(exc).__name__}: {exc})"
    fetched = Fetched(url=target, status=status, headers=headers, body=body, final_url=target)
    if when is not None:
        fetched.fetched_at = when
    return fetched, ""


def iter_records(path: str, stream: IO[bytes], limit: int) -> Iterator[WarcRecord]:
    """The records of one WARC file in order; raises :class:`ArchiveDamaged` where it cannot read on."""
    from warcio.archiveiterator import ArchiveIterator

    it = ArchiveIterator(stream, no_record_parse=False, ensure_http_headers=False)
    records = iter(it)
    position = 0
    previous = -1
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except Exception as exc:  # whatever warcio or zlib raise, the file ends here
            raise ArchiveDamaged(path, position, _why(exc)) from None
        headers = record.rec_headers
        target = _target(headers.get_header("WARC-Target-URI"))
        date = headers.get_header("WARC-Date") or ""
        rec_type = (record.rec_type or "").lower()
        fetched: Fetched | None = None
        problem = ""
        if rec_type == "response" and target.lower().startswith(("http://", "https://")):
            fetched, problem = _response(record, target, warc_time(date), limit)
        try:
            it.read_to_end(record)
        except Exception as exc:
            raise ArchiveDamaged(path, position, _why(exc)) from None
        offset, length = it.get_record_offset(), it.get_record_length()
        gzipped = bool(getattr(it.reader, "decompressor", None))
        if gzipped and offset == previous:
            raise ArchiveDamaged(path, offset, "several records in one gzip member (not supported: one per record)")
        previous = offset
        position = offset + length
        missing = getattr(record.raw_stream, "limit", 0) or 0
        if missing > 0:
            fetched, problem = None, f"truncated record: {missing:,} of its {record.length:,} bytes are missing"
        yield WarcRecord(
            rec_type=rec_type,
            record_id=headers.get_header("WARC-Record-ID") or "",
            target=target,
            date=date,
            offset=offset,
            length=length,
            gzipped=gzipped,
            concurrent_to=[v for k, v in headers.headers if k.lower() == "warc-concurrent-to"],
            fetched=fetched,
            problem=problem,
        )


def _why(exc: BaseException) -> str:
    if type(exc).__name__ == "ArchiveLoadFailed":
        if "multi-member gzip" in str(exc):
            return "one gzip stream holds several records (recompress it: warcio recompress IN OUT)"
        return "no WARC record here (a damaged gzip member or a broken WARC header)"
    text = " ".join("".join(c if c.isprintable() else "?" for c in str(exc)).split())
    if len(text) > 120:
        text = text[:117] + "..."
    name = type(exc).__name__
    if "zlib" in type(exc).__module__ or name == "error":
        return f"damaged gzip data ({text})"
    return f"{name}: {text}" if text else name
