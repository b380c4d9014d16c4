"""Reading WARC files for ``optout filter``: one record at a time, with where it lies in the file.

FastWARC (resiliparse's WARC library, C++) parses the records: WARC 1.0 and 1.1, plain or gzipped, one gzip member
per record as Common Crawl writes them. It reads a Common-Crawl-shaped file four to five times faster than warcio
(bench/bench_filter.py), which made parsing, not deciding, the larger part of ``optout filter``'s time. HTTP bodies
are decoded (chunked transfer, Content-Encoding) as warcio's ``content_stream()`` did.

Each record comes back with its byte span in the file, so a kept record is copied byte for byte (its digests stay
valid) and nothing but the body of the response being judged is ever held, at most ``limit`` bytes. A record's
span ends where the next one starts (FastWARC's ``stream_pos``: for a gzipped file, where its gzip member starts);
the last record's end, and that of a record before a place that cannot be read, is found by reading its gzip
member or its header's Content-Length.

A record that ends before its Content-Length (a truncated file), or whose HTTP block cannot be read, is returned
with a ``problem`` and no body: the caller reports and skips it. A file that cannot be read on (a damaged gzip
member, a record that does not start with a WARC header, one gzip stream holding several records) ends with
:class:`ArchiveDamaged`, after every record read before it.
"""

from __future__ import annotations

import email.utils
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
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
    length: int  # its bytes in the file (a plain file's record with the CRLF CRLF after it)
    gzipped: bool
    fetched: Fetched | None = None  # response and revisit records that could be read
    problem: str = ""
    revisit: dict[str, str] | None = None  # a revisit record's WARC-Profile and WARC-Refers-To* fields
    content_length: int = 0  # of its WARC block


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
    if not record.is_http:
        return None, "no HTTP response block"
    record.parse_http()
    http = record.http_headers
    if http is None or http.status_code is None:
        line = http.status_line if http is not None else ""
        return None, f"malformed HTTP status line {str(line)[:80]!r}"
    headers: dict[str, list[str]] = {}
    for name, value in http.astuples():
        headers.setdefault(name.strip().lower(), []).append(value)
    try:
        body = record.reader.read(limit + 1)
    except Exception as exc:  # a broken chunked or compressed body: not something to judge
        return None, f"unreadable HTTP body ({type(exc).__name__}: {exc})"
    fetched = Fetched(url=target, status=int(http.status_code), headers=headers, body=body, final_url=target)
    if when is not None:
        fetched.fetched_at = when
    return fetched, ""


def iter_records(path: str, stream: IO[bytes], limit: int) -> Iterator[WarcRecord]:
    """The records of one WARC file in order; raises :class:`ArchiveDamaged` where it cannot read on.

    ``stream`` must be seekable: the end of the last record is read from it once FastWARC is done."""
    from fastwarc.warc import ArchiveIterator

    size = stream.seek(0, 2)
    stream.seek(0)
    gzipped = stream.read(2) == b"\x1f\x8b"
    stream.seek(0)
    records = iter(ArchiveIterator(stream, parse_http=False, auto_decode="all"))
    pending: WarcRecord | None = None
    while True:
        try:
            record = next(records)
        except StopIteration:
            break
        except Exception as exc:  # whatever FastWARC or zlib raise, the file ends here
            end = _finish(pending, stream, size, gzipped) if pending is not None else 0
            if pending is not None:
                yield pending
            raise ArchiveDamaged(path, end, _why(exc)) from None
        offset = record.stream_pos
        if pending is not None:
            if offset <= pending.offset or offset >= size:
                raise ArchiveDamaged(path, pending.offset, MULTI_MEMBER if gzipped else "record spans overlap")
            pending.length = offset - pending.offset
            yield pending
        pending = _record(record, offset, gzipped, limit)
    if pending is not None:
        end = _finish(pending, stream, size, gzipped)
        yield pending
        if end < size and not pending.problem:
            raise ArchiveDamaged(path, end, "no WARC record here (a damaged gzip member or a broken WARC header)")
    elif size:
        raise ArchiveDamaged(path, 0, "no WARC record here (a damaged gzip member or a broken WARC header)")


# FastWARC's record types (WarcRecordType values) by name; anything else is read from the WARC-Type field.
TYPES = {2: "warcinfo", 4: "response", 8: "resource", 16: "request", 32: "metadata", 64: "revisit", 128: "conversion"}
JUDGED = ("response", "revisit")  # records whose HTTP block is read
REVISIT_FIELDS = ("warc-profile", "warc-refers-to", "warc-refers-to-target-uri", "warc-refers-to-date")
MULTI_MEMBER = "one gzip stream holds several records (recompress it: warcio recompress IN OUT)"


def _record(record: Any, offset: int, gzipped: bool, limit: int) -> WarcRecord:
    headers = record.headers  # each get() is a scan of the header block: only the fields needed
    rec_type = TYPES.get(int(record.record_type), "")
    if not rec_type:
        rec_type = (headers.get("WARC-Type") or "").lower()
    target = _target(headers.get("WARC-Target-URI"))
    date = headers.get("WARC-Date") or ""
    fetched: Fetched | None = None
    problem = ""
    revisit: dict[str, str] | None = None
    if rec_type in JUDGED and target.lower().startswith(("http://", "https://")):
        fetched, problem = _response(record, target, warc_time(date), limit)
        if rec_type == "revisit":
            revisit = {k: v for k, v in headers.astuples() if k.lower() in REVISIT_FIELDS}
    return WarcRecord(
        rec_type=rec_type,
        record_id=record.record_id or "",
        target=target,
        date=date,
        offset=offset,
        length=-1,
        gzipped=gzipped,
        fetched=fetched,
        problem=problem,
        content_length=record.content_length,
        revisit=revisit,
    )


def _finish(record: WarcRecord, stream: IO[bytes], size: int, gzipped: bool) -> int:
    """Set the span of the last record read (no record after it says where it ends): its gzip member's end, or
    its header, Content-Length and the CRLF CRLF after it; mark it truncated when the file ends first. Returns
    where it ends."""
    stream.seek(record.offset)
    if gzipped:
        inflater = zlib.decompressobj(31)
        read = 0
        try:
            while not inflater.eof:
                data = stream.read(CHUNK)
                if not data:
                    break
                read += len(data)
                inflater.decompress(data, 1 << 16)
                while inflater.unconsumed_tail and not inflater.eof:
                    inflater.decompress(inflater.unconsumed_tail, 1 << 16)
        except zlib.error:
            pass
        if inflater.eof:
            record.length = read - len(inflater.unused_data) - len(inflater.unconsumed_tail)
            return record.offset + record.length
        record.length = size - record.offset
    else:
        head = stream.read(1 << 16)
        split = head.find(b"\r\n\r\n")
        if split >= 0:
            end = record.offset + split + 4 + record.content_length
            if end <= size:
                stream.seek(end)
                trailer = stream.read(4)
                record.length = end - record.offset + (4 if trailer == b"\r\n\r\n" else 0)
                return record.offset + record.length
            record.length = size - record.offset
            missing = end - size
            record.fetched = None
            record.problem = f"truncated record: {missing:,} of its {record.content_length:,} bytes are missing"
            return size
        record.length = size - record.offset
    record.fetched = None
    record.problem = "truncated record: the file ends inside it"
    return size


def _why(exc: BaseException) -> str:
    text = " ".join("".join(c if c.isprintable() else "?" for c in str(exc)).split())
    if len(text) > 120:
        text = text[:117] + "..."
    if "gzip" in text.lower() or "zlib" in text.lower() or "decompress" in text.lower():
        return f"damaged gzip data ({text})"
    if "header" in text.lower():
        return f"no WARC record here (a damaged gzip member or a broken WARC header: {text})"
    name = type(exc).__name__
    return f"{name}: {text}" if text else name
