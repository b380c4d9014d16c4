"""Reading URL lists and datasets for ``optout check --urls``, and writing the answers back out.

Inputs are streamed in chunks of rows so a file of ten million rows is never held at once: plain text (one URL a
line), CSV, JSON Lines and Parquet (pyarrow's ``iter_batches``). A chunk keeps what the format needs to write its
rows back unchanged (the raw CSV fields, the parsed JSON objects, the Arrow record batch), so ``--annotate`` and
``--keep-allowed`` outputs hold every other column exactly as it came in.

Errors in a row (not JSON, no URL in the column) never stop a run: the row gets an answer saying so. Errors in the
file as a whole (unreadable, not the format, the column missing) are :class:`InputError`, one line for the user.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from optout_registry.messages import first_line

FORMATS = ("text", "csv", "jsonl", "parquet")
CHUNK_ROWS = 2048
# Columns added to a dataset by --annotate (DESIGN.md "Corpus commands").
ANNOTATIONS = ("optout_allowed", "optout_protocols", "optout_reason")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a dataset's text column can be long


class InputError(ValueError):
    """The input as a whole cannot be read (one line for the user, exit status 2)."""


@dataclass
class Chunk:
    """Consecutive rows of the input: ``urls[i]`` is row ``start + i``'s URL, or None when the row has none, with
    ``problems[i]`` saying why. ``rows`` (CSV, JSON Lines) or ``batch`` (Parquet) keep the rows as read."""

    start: int
    urls: list[str | None]
    problems: list[str | None]
    rows: list[Any] = field(default_factory=list)
    batch: Any = None

    def __len__(self) -> int:
        return len(self.urls)


def need_pyarrow() -> Any:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            "Parquet needs pyarrow: pip install 'optout-toolkit[corpus]' (or pip install pyarrow)"
        ) from None
    return pq


def detect_format(path: str, given: str | None = None) -> str:
    """The format named by ``--format``, else by the file name (``.csv``, ``.jsonl``/``.ndjson``, ``.parquet``,
    each optionally ``.gz`` except Parquet); anything else is a text list of URLs."""
    if given:
        return given
    name = path.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return "text"


def open_text(path: str) -> IO[str]:
    """A text input (plain, ``.gz`` or ``-`` for stdin) decoded as UTF-8 with or without a BOM, undecodable bytes
    replaced: the reader of ``check --urls`` and ``recheck`` inputs; InputError if it cannot be opened."""
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", errors="replace", newline="")
    try:
        if path.lower().endswith(".gz"):
            return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="")
        return open(path, encoding="utf-8-sig", errors="replace", newline="")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def _clean(value: Any) -> tuple[str | None, str | None]:
    """A cell's URL, or None and why not."""
    if value is None:
        return None, "no URL in this row (empty)"
    if not isinstance(value, str):
        return None, f"no URL in this row (a {type(value).__name__}, not text)"
    text = value.strip()
    if not text:
        return None, "no URL in this row (empty)"
    return text, None


class Reader:
    """Chunks of an input file; ``columns`` is known once the first chunk has been read (datasets only)."""

    def __init__(self, path: str, fmt: str | None = None, column: str = "url", chunk_rows: int = CHUNK_ROWS) -> None:
        self.path = path
        self.format = detect_format(path, fmt)
        if self.format not in FORMATS:
            raise InputError(f"unknown format {self.format!r} (choose {', '.join(FORMATS)})")
        if self.format == "parquet" and path == "-":
            raise InputError("Parquet cannot be read from standard input: give the file name")
        self.column = column
        self.chunk_rows = chunk_rows
        self.columns: list[str] = []
        self.schema: Any = None  # Parquet
        self.total: int | None = None  # rows, when known without reading the file (Parquet metadata)
        self._opened: Iterator[Chunk] | None = None
        if self.format == "parquet":
            self._opened = self._parquet()
        elif path != "-" and not os.access(path, os.R_OK):
            reason = "no such file" if not os.path.exists(path) else "permission denied"
            if os.path.isdir(path):
                reason = "is a directory"
            raise InputError(f"cannot read {path}: {reason}")

    def estimate_rows(self) -> int | None:
        """Rows in the input, exact for Parquet, else its lines counted in blocks (a second for gigabytes; blank,
        comment and multi-line CSV rows make it an estimate): the progress bar's total, on a terminal only."""
        if self.total is not None or self.path == "-" or self.path.lower().endswith(".gz"):
            return self.total
        lines = 0
        try:
            with open(self.path, "rb") as handle:
                while block := handle.read(1 << 20):
                    lines += block.count(b"\n")
        except OSError:
            return None
        return max(0, lines - (self.format == "csv"))

    def chunks(self) -> Iterator[Chunk]:
        if self._opened is not None:
            return self._opened
        return {"text": self._text, "csv": self._csv, "jsonl": self._jsonl}[self.format]()

    def _fail(self, exc: Exception) -> InputError:
        text = str(exc).strip().splitlines()
        return InputError(f"cannot read {self.path} as {self.format}: {text[0] if text else type(exc).__name__}")

    # -- formats ------------------------------------------------------------------------------------------------

    def _text(self) -> Iterator[Chunk]:
        """One URL a line; blank lines and lines starting with ``#`` are not rows."""
        with open_text(self.path) as handle:
            index = 0
            urls: list[str | None] = []
            try:
                for line in handle:
                    text = line.strip()
                    if not text or text.startswith("#"):
                        continue
                    urls.append(text)
                    if len(urls) >= self.chunk_rows:
                        yield Chunk(index, urls, [None] * len(urls))
                        index += len(urls)
                        urls = []
            except (OSError, EOFError) as exc:
                raise self._fail(exc) from None
            if urls:
                yield Chunk(index, urls, [None] * len(urls))

    def _csv(self) -> Iterator[Chunk]:
        with open_text(self.path) as handle:
            dialect = "excel-tab" if self.path.lower().removesuffix(".gz").endswith(".tsv") else "excel"
            reader = csv.reader(handle, dialect=dialect)
            try:
                header = next(reader, None)
            except (csv.Error, OSError, EOFError) as exc:
                raise self._fail(exc) from None
            if header is None:
                return
            self.columns = header
            if self.column not in header:
                raise InputError(self._missing(header))
            at = header.index(self.column)
            index, chunk = 0, Chunk(0, [], [])
            line = 1
            url: str | None
            problem: str | None
            try:
                for fields in reader:
                    line += 1
                    if not fields:
                        continue
                    if len(fields) != len(header):
                        url, problem = None, f"line {line}: {len(fields)} fields, the header has {len(header)}"
                    else:
                        url, problem = _clean(fields[at])
                    chunk.urls.append(url)
                    chunk.problems.append(problem)
                    chunk.rows.append(fields)
                    if len(chunk) >= self.chunk_rows:
                        yield chunk
                        index += len(chunk)
                        chunk = Chunk(index, [], [])
            except (csv.Error, OSError, EOFError) as exc:
                raise self._fail(exc) from None
            if len(chunk):
                yield chunk

    def _jsonl(self) -> Iterator[Chunk]:
        with open_text(self.path) as handle:
            index, chunk = 0, Chunk(0, [], [])
            seen: dict[str, None] = {}
            try:
                for number, line in enumerate(handle, 1):
                    if not line.strip():
                        continue
                    url: str | None
                    problem: str | None
                    try:
                        row = json.loads(line)
                    except ValueError as exc:
                        row, url, problem = None, None, f"line {number}: not JSON ({exc})"
                    else:
                        if not isinstance(row, dict):
                            url, problem = None, f"line {number}: not a JSON object"
                        elif self.column not in row:
                            url, problem = None, f"line {number}: no {self.column!r} field"
                        else:
                            url, problem = _clean(row[self.column])
                            for key in row:
                                if key not in seen:
                                    seen[key] = None
                    chunk.urls.append(url)
                    chunk.problems.append(problem)
                    chunk.rows.append(row)
                    if len(chunk) >= self.chunk_rows:
                        self.columns = list(seen)
                        yield chunk
                        index += len(chunk)
                        chunk = Chunk(index, [], [])
            except (OSError, EOFError) as exc:
                raise self._fail(exc) from None
            self.columns = list(seen)
            if len(chunk):
                yield chunk

    def _parquet(self) -> Iterator[Chunk]:
        pq = need_pyarrow()
        try:
            source = pq.ParquetFile(self.path)
        except FileNotFoundError:
            raise InputError(f"cannot read {self.path}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"cannot read {self.path}: is a directory") from None
        except PermissionError:
            raise InputError(f"cannot read {self.path}: permission denied") from None
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError...: the file is not Parquet
            raise self._fail(exc) from None
        self.schema = source.schema_arrow
        self.columns = list(self.schema.names)
        self.total = source.metadata.num_rows
        if self.column not in self.columns:
            raise InputError(self._missing(self.columns))
        return self._parquet_batches(source)

    def _parquet_batches(self, source: Any) -> Iterator[Chunk]:
        index = 0
        try:
            for batch in source.iter_batches(batch_size=self.chunk_rows):
                values = batch.column(self.column).to_pylist()
                cleaned = [_clean(v) for v in values]
                yield Chunk(index, [u for u, _ in cleaned], [p for _, p in cleaned], batch=batch)
                index += len(values)
        except Exception as exc:
            raise self._fail(exc) from None

    def _missing(self, names: Sequence[str]) -> str:
        shown = ", ".join(names[:20]) + (", …" if len(names) > 20 else "")
        return f"{self.path} has no column {self.column!r} (columns: {shown or 'none'}); choose one with --column"


# -- dataset outputs ------------------------------------------------------------------------------------------------


@dataclass
class Note:
    """The three columns --annotate adds to a row."""

    allowed: bool
    protocols: list[str]
    reason: str


class Writer:
    """Writes rows of the input back out, in input order, with the annotation columns (``--annotate``) or only
    the allowed rows without them (``--keep-allowed``). Written under a temporary name and moved into place at the
    end, so a stopped run never leaves a half file that looks whole."""

    def __init__(self, path: str, reader: Reader, *, annotate: bool) -> None:
        self.path = Path(path)
        self.reader = reader
        self.annotate = annotate
        self.format = detect_format(path)
        if self.format == "text":
            raise InputError(f"{path}: the output's name must end in .parquet, .jsonl or .csv")
        if reader.format == "text":
            raise InputError("--annotate and --keep-allowed need a dataset input (CSV, JSON Lines or Parquet)")
        if self.format == "parquet":
            need_pyarrow()
        self.tmp = self.path.with_name(self.path.name + ".part")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle: IO[str] | None = None
            if self.format != "parquet":
                self._handle = open(self.tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as exc:
            raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
        self._csv: Any = None
        self._parquet: Any = None
        self._names: list[str] = []  # the output's columns, fixed by the first rows written (CSV, Parquet)
        self.rows = 0

    def write(self, chunk: Chunk, notes: Sequence[Note]) -> None:
        keep = [self.annotate or n.allowed for n in notes]
        if self.format == "parquet":
            self._write_parquet(chunk, notes, keep)
            return
        records = self._records(chunk)
        assert self._handle is not None
        if self.format == "jsonl":
            out = []
            for record, note, kept in zip(records, notes, keep, strict=True):
                if not kept:
                    continue
                row = dict(record)
                if self.annotate:
                    row.update(zip(ANNOTATIONS, (note.allowed, note.protocols, note.reason), strict=True))
                out.append(json.dumps(row, ensure_ascii=False) + "\n")
            self._handle.write("".join(out))
        else:
            self._write_csv(chunk, notes, keep)
        self.rows += sum(keep)

    def _records(self, chunk: Chunk) -> list[dict[str, Any]]:
        """Rows as JSON objects (a row that was not an object is kept under the column name)."""
        if chunk.batch is not None:
            rows: list[dict[str, Any]] = chunk.batch.to_pylist()
            return rows
        if self.reader.format == "csv":
            names = self.reader.columns
            return [dict(zip(names, fields, strict=False)) for fields in chunk.rows]
        return [r if isinstance(r, dict) else {self.reader.column: r} for r in chunk.rows]

    def _write_csv(self, chunk: Chunk, notes: Sequence[Note], keep: list[bool]) -> None:
        if self._csv is None:
            assert self._handle is not None
            self._csv = csv.writer(self._handle)
            self._names = list(self.reader.columns)
            self._csv.writerow(self._names + list(ANNOTATIONS) if self.annotate else self._names)
        names = self._names
        if self.reader.format == "csv":
            rows = chunk.rows
        else:
            records = self._records(chunk)
            self._refuse_new_fields(chunk, [set(r) for r in records])
            rows = [[_cell(r.get(n)) for n in names] for r in records]
        for fields, note, kept in zip(rows, notes, keep, strict=True):
            if kept:
                extra = [str(note.allowed).lower(), " ".join(note.protocols), note.reason] if self.annotate else []
                self._csv.writerow(list(fields) + extra)

    def _write_parquet(self, chunk: Chunk, notes: Sequence[Note], keep: list[bool]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if chunk.batch is not None:
            table = pa.Table.from_batches([chunk.batch])
        else:  # every field any row of the chunk has (from_pylist would take the first row's fields only)
            records = self._records(chunk)
            names = dict.fromkeys(key for record in records for key in record)
            table = pa.Table.from_pydict({name: [record.get(name) for record in records] for name in names})
        if self.annotate:
            table = table.append_column(ANNOTATIONS[0], pa.array([n.allowed for n in notes], pa.bool_()))
            table = table.append_column(ANNOTATIONS[1], pa.array([n.protocols for n in notes], pa.list_(pa.string())))
            table = table.append_column(ANNOTATIONS[2], pa.array([n.reason for n in notes], pa.string()))
        else:
            table = table.filter(pa.array(keep, pa.bool_()))
        if self._parquet is None:
            self._names = list(table.schema.names)
            self._parquet = pq.ParquetWriter(str(self.tmp), table.schema)  # JSON/CSV input: the first chunk's types
        elif table.schema != self._parquet.schema:
            self._refuse_new_fields(chunk, [set(table.schema.names)])
            schema = self._parquet.schema
            for name in schema.names:  # a field none of this chunk's rows has: empty here, as in JSON Lines
                if name not in table.schema.names:
                    table = table.append_column(name, pa.nulls(len(table), schema.field(name).type))
            try:
                table = table.select(schema.names).cast(schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                raise InputError(
                    f"rows from {chunk.start} on (counted from 0) do not fit the Parquet columns the first rows set "
                    f"({first_line(exc)[:200]}); write JSON Lines to keep every row as it is"
                ) from None
        self._parquet.write_table(table)
        self.rows += sum(keep)

    def _refuse_new_fields(self, chunk: Chunk, fields: list[set[str]]) -> None:
        """A CSV or Parquet file's columns are set by the rows written first; a field that only appears later
        cannot be added to them, and dropping it would lose data: stop with a clear error instead."""
        known = set(self._names)
        for offset, keys in enumerate(fields):
            unknown = sorted(keys - known)
            if unknown:
                row = chunk.start + offset if len(fields) > 1 else f"{chunk.start} on"
                fields_named = ", ".join(map(repr, unknown[:5]))
                raise InputError(
                    f"row {row} (counted from 0, as in the answers) has field(s) {fields_named} that the rows before "
                    f"it did not have, so {self.path.name}'s columns ({', '.join(self._names[:8])}) cannot hold "
                    "them; write JSON Lines (OUT.jsonl) to keep every field"
                )

    def close(self, complete: bool) -> None:
        """Finish the file; it gets its real name only when every row was written."""
        if self.format == "parquet":
            if self._parquet is None:  # no rows at all: still a valid file with the input's columns
                self._empty_parquet()
            self._parquet.close()
        elif self._handle is not None:
            if self.format == "csv" and self._csv is None:
                names = list(self.reader.columns)
                csv.writer(self._handle).writerow(names + list(ANNOTATIONS) if self.annotate else names)
            self._handle.close()
        if complete:
            os.replace(self.tmp, self.path)

    def _empty_parquet(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = self.reader.schema or pa.schema([(n, pa.string()) for n in self.reader.columns])
        if self.annotate:
            schema = schema.append(pa.field(ANNOTATIONS[0], pa.bool_()))
            schema = schema.append(pa.field(ANNOTATIONS[1], pa.list_(pa.string())))
            schema = schema.append(pa.field(ANNOTATIONS[2], pa.string()))
        self._parquet = pq.ParquetWriter(str(self.tmp), schema)

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # best effort on the way out
            self.close(complete=False)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)
