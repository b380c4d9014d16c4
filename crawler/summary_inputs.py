"""Reading the runs ``optout summary`` is given, one pass over each file, into per-host aggregates.

A RUN is one of:

* an ``optout crawl`` folder (run.json + items.jsonl + decisions.jsonl): every stored item is content kept, its size
  the response body's length as fetched (``evidence.response.length``); its configuration is the one run.json
  recorded when the crawl started; its registry records are those from ``registry_start`` on, by its agent;
* an ``optout filter`` folder (summary.json + kept.warc.gz + decisions.jsonl): only the kept response records count,
  their size the HTTP payload's length; the excluded ones count as opt-outs honoured per protocol;
* a registry URL (``sqlite:///…``, ``postgresql://…``), e.g. a fleet's shared registry: all its records count as
  opt-outs honoured, and it contributes no content.

Memory is bounded by the number of hosts, not items: nothing item-sized is kept. Every file read is hashed on the
way through so the summary can name exactly what it was computed from.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from optout_registry.messages import redact_url

ISO = "%Y-%m-%dT%H:%M:%SZ"
REGISTRY_SCHEMES = ("sqlite:", "postgres:", "postgresql:")
# MIME types outside text/* whose content is text (the template's "text" modality).
TEXT_TYPES = ("application/pdf", "application/xhtml+xml", "application/epub+zip", "application/json", "application/xml")


_decode = json.JSONDecoder().decode  # json.loads without its per-call checks


class SummaryError(ValueError):
    """A RUN that cannot be read (one line for the user, exit status 2)."""


@dataclass
class Selector:
    """Which records of a registry a run accounts for: those from ``start`` on, by ``agent`` (None: all)."""

    url: str
    start: int = 0
    agent: str | None = None
    run: str = ""


@dataclass
class Evidence:
    """Everything read from the runs, merged: per host (bytes, pages), per MIME family, the fetch period."""

    hosts: dict[str, list[int]] = field(default_factory=dict)  # host -> [bytes, pages]
    families: dict[str, list[int]] = field(default_factory=dict)  # MIME family -> [bytes, pages]
    first: str | None = None
    last: str | None = None
    refused: Counter[str] = field(default_factory=Counter)  # opt-outs honoured per protocol, from decision files
    runs: list[dict[str, Any]] = field(default_factory=list)
    selectors: list[Selector] = field(default_factory=list)
    items: int = 0

    def add(self, url: str, size: int, content_type: str, when: str | None) -> None:
        """One item of content kept."""
        self.items += 1
        _count(self.hosts, host_of(url), size)
        _count(self.families, mime_family(content_type), size)
        if when:
            if self.first is None or when < self.first:
                self.first = when
            if self.last is None or when > self.last:
                self.last = when


def _count(table: dict[str, list[int]], key: str, size: int) -> None:
    """One more item of ``size`` bytes under ``key``: [bytes, items], summed in place (one list per key, not two
    dictionaries, since this runs once per item of a 10-million-item run)."""
    tally = table.get(key)
    if tally is None:
        tally = table[key] = [0, 0]
    tally[0] += size
    tally[1] += 1


_hosts: dict[str, str] = {}


def host_of(url: str) -> str:
    """The URL's host name, lower case, without port or trailing dot. The authority's text is looked up in a
    cache (one entry per authority seen, as bounded as the per-host tallies), since parsing it is most of the cost
    of an item."""
    start = url.find("//") + 2
    end = url.find("/", start)
    netloc = url[start:] if end < 0 else url[start:end]
    host = _hosts.get(netloc)
    if host is None:
        if len(_hosts) > 1_000_000:
            _hosts.clear()
        host = _hosts[netloc] = (urlsplit(url).hostname or "").rstrip(".")
    return host


def mime_family(content_type: str) -> str:
    """``text/html; charset=utf-8`` -> ``text``; no type -> ``unknown``."""
    major = content_type.split(";", 1)[0].split("/", 1)[0].strip().lower()
    return major or "unknown"


def modality(family: str, content_type: str = "") -> str:
    """The template's modality (1.3) of a MIME family: text, image, audio, video or other."""
    if family in ("text", "image", "audio", "video"):
        return family
    if content_type.split(";", 1)[0].strip().lower() in TEXT_TYPES:
        return "text"
    return "other"


def iso(value: str | None) -> str | None:
    """A timestamp as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC), so the period compares as text; None if unreadable.
    The crawl's own ``fetched_at`` already has that form and passes through untouched (the common, fast case)."""
    if not value:
        return None
    if len(value) == 20 and value[-1] == "Z" and value[10] == "T":
        return value
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc).strftime(ISO)


class Hashed:
    """A binary file read through SHA-256: lines (or read() calls) pass through, the digest is of all of it."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        """The lines, read (and hashed) a megabyte at a time; a last line without a newline is yielded too."""
        rest = b""
        while block := self.read(1 << 20):
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            yield from lines
        if rest:
            yield rest

    def record(self, run: str, name: str) -> dict[str, Any]:
        return {"run": run, "file": name, "sha256": self.sha.hexdigest(), "bytes": self.size}


def open_input(path: Path) -> IO[bytes]:
    """A RUN's file opened for reading, or a SummaryError saying in one line why it cannot be."""
    try:
        return path.open("rb")
    except OSError as exc:
        raise SummaryError(f"cannot read {path}: {exc.strerror or exc}") from None


def json_lines(path: Path, run: str, files: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON Lines file (a torn or foreign line is skipped, as the crawl's reader does); the
    file's hash is appended to ``files`` once it has been read to its end."""
    f = open_input(path)
    with f:
        hashed = Hashed(f)
        for line in hashed:
            try:
                obj = _decode(line.decode("utf-8"))
            except ValueError:  # UnicodeDecodeError included
                continue
            if isinstance(obj, dict):
                yield obj
        files.append(hashed.record(run, path.name))


def read_json(path: Path, run: str, files: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SummaryError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise SummaryError(f"{path} is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise SummaryError(f"{path} is not a JSON object")
    files.append({"run": run, "file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
    return obj


def kind_of(run: str) -> str:
    """crawl, filter or registry; SummaryError naming what is missing otherwise."""
    if run.startswith(REGISTRY_SCHEMES):
        return "registry"
    path = Path(run)
    if not path.is_dir():
        raise SummaryError(f"{run}: not a folder of optout crawl or optout filter, nor a registry URL")
    if (path / "run.json").is_file() and (path / "items.jsonl").is_file():
        return "crawl"
    if (path / "kept.warc.gz").is_file() and (path / "summary.json").is_file():
        return "filter"
    raise SummaryError(
        f"{run}: neither an optout crawl folder (run.json, items.jsonl) nor an optout filter folder "
        "(summary.json, kept.warc.gz)"
    )


def registry_of(folder: Path, url: str | None) -> str | None:
    """The crawl's registry: the URL run.json recorded, or the folder's own registry.db when that URL names a
    SQLite file that is not there (the folder was moved or copied)."""
    if not url:
        return None
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        local = folder / "registry.db"
        if local.exists():
            return f"sqlite:///{local.resolve()}"
    return url


def read_crawl(run: str, ev: Evidence) -> None:
    folder = Path(run)
    files: list[dict[str, Any]] = []
    meta = read_json(folder / "run.json", run, files)
    for item in json_lines(folder / "items.jsonl", run, files):
        url = item.get("url")
        if not isinstance(url, str):
            continue
        response = (item.get("evidence") or {}).get("response") or {}
        size = response.get("length")
        if not isinstance(size, int):
            size = len(str(item.get("text") or "").encode("utf-8"))
        ev.add(url, size, str(item.get("content_type") or ""), iso(item.get("fetched_at")))
    for event in json_lines(folder / "decisions.jsonl", run, files):
        if event.get("outcome") in ("not_fetched", "fetched_not_stored"):
            ev.refused.update(str(r.get("protocol")) for r in event.get("reservations") or ())
    runs = meta.get("runs") or []
    registry = registry_of(folder, meta.get("registry_url"))

    if registry:
        ev.selectors.append(Selector(registry, int(meta.get("registry_start") or 0), meta.get("agent"), run))
    ev.runs.append(
        {
            "run": run,
            "kind": "crawl",
            "purpose": meta.get("purpose"),
            "agent": meta.get("agent"),
            "mode": meta.get("mode"),
            "user_agent": meta.get("user_agent"),
            # Recorded by the crawl only if it recorded them; None means "not recorded", never "the default".
            "disabled": meta.get("disabled"),
            "cross_token": meta.get("cross_token"),
            "blocklist": meta.get("blocklist"),
            "registry": redact_url(registry) if registry else None,
            "sessions": len(runs),
            "started_at": runs[0].get("started_at") if runs else None,
            "finished_at": runs[-1].get("finished_at") if runs else None,
            "files": files,
        }
    )


def read_filter(run: str, ev: Evidence) -> None:
    folder = Path(run)
    files: list[dict[str, Any]] = []
    meta = read_json(folder / "summary.json", run, files)
    read_kept(folder / "kept.warc.gz", run, ev, files)
    if (folder / "decisions.jsonl").is_file():
        for line in json_lines(folder / "decisions.jsonl", run, files):
            if line.get("allowed") is False and "skipped" not in line:
                ev.refused.update({str(r.get("protocol")) for r in line.get("reservations") or ()})
    ev.runs.append(
        {
            "run": run,
            "kind": "filter",
            "purpose": meta.get("purpose"),
            "agent": meta.get("agent"),
            "mode": meta.get("mode"),
            "user_agent": None,
            "disabled": meta.get("disabled"),
            "cross_token": meta.get("cross_token"),
            "blocklist": meta.get("blocklist"),
            "registry": None,
            "warcs": [str(f.get("path")) for f in meta.get("files") or () if isinstance(f, dict)],
            "files": files,
        }
    )


def read_kept(path: Path, run: str, ev: Evidence, files: list[dict[str, Any]]) -> None:
    """The response records of a kept.warc.gz: URL, HTTP payload length (counted in chunks, never held whole),
    Content-Type and WARC-Date."""
    try:
        from warcio.archiveiterator import ArchiveIterator
    except ImportError:
        raise SummaryError("reading an optout filter folder needs warcio: pip install 'optout[warc]'") from None
    f = open_input(path)
    with f:
        hashed = Hashed(f)
        try:
            for record in ArchiveIterator(hashed, ensure_http_headers=False):
                if record.rec_type != "response":
                    continue
                url = (record.rec_headers.get_header("WARC-Target-URI") or "").strip("<>")
                if not url.lower().startswith(("http://", "https://")):
                    continue
                stream = record.content_stream()
                size = 0
                while chunk := stream.read(1 << 16):
                    size += len(chunk)
                http = record.http_headers
                content_type = (http.get_header("Content-Type") if http is not None else "") or ""
                ev.add(url, size, content_type, iso(record.rec_headers.get_header("WARC-Date")))
            while hashed.read(1 << 20):  # the rest (a trailing empty member), so the digest is of the whole file
                pass
        except Exception as exc:  # warcio and zlib raise many kinds: the file is damaged from here on
            raise SummaryError(f"{path} is damaged: {type(exc).__name__}: {exc}") from None
        files.append(hashed.record(run, path.name))


def read_registry_run(run: str, ev: Evidence) -> None:
    """A registry as a RUN: named without its password wherever the summary mentions it."""
    label = redact_url(run)
    ev.selectors.append(Selector(run, 0, None, label))
    ev.runs.append({"run": label, "kind": "registry", "registry": label, "files": []})


def read_runs(runs: list[str]) -> Evidence:
    """All RUNs into one Evidence (a host seen in two runs is one host, its bytes and pages summed)."""
    ev = Evidence()
    seen: set[str] = set()
    for run in runs:
        key = run if run.startswith(REGISTRY_SCHEMES) else str(Path(run).resolve())
        if key in seen:
            raise SummaryError(f"{run} is given twice: its content would be counted twice")
        seen.add(key)
        kind = kind_of(run)
        {"crawl": read_crawl, "filter": read_filter, "registry": read_registry_run}[kind](run, ev)
    return ev
