"""The fields of a parsed record that queries and listings read: when it was observed (for ``--since``/``--until``),
which evidence blobs it references, and the columns of its one-line summary.

One place for them so the listing (``Registry.records``, ``optout registry list``), the export and the self-check
read a record the same way; the record's schema itself is :mod:`optout_registry.record`'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timezone
from typing import Any

from optout_registry.errors import RegistryError
from optout_registry.vocabulary import label

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def parse_time(value: str | datetime | None, *, end: bool = False) -> datetime | None:
    """A query bound in UTC: an RFC 3339 time or a date (with ``end``, a bare date means the end of that day).
    Raises RegistryError in one line for anything else, or for a time that does not exist in UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        text = value.strip()
        try:
            if len(text) == 10:
                day = datetime.strptime(text, "%Y-%m-%d")
                dt = datetime.combine(day.date(), time.max if end else time.min)
            else:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise RegistryError(f"not a date or RFC 3339 time: {value!r}") from None
    try:
        return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first representable UTC time
        raise RegistryError(f"time out of range: {value!r}") from None


def observed(record: Mapping[str, Any]) -> datetime | None:
    """The record's ``observed_at`` in UTC, or None when it is missing or unreadable."""
    try:
        return parse_time(str(record.get("observed_at")))
    except RegistryError:
        return None


@dataclass(frozen=True)
class ObservedRange:
    """An ``observed_at`` range, both ends included and either open; :meth:`parse` reads ``--since``/``--until``."""

    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(cls, since: str | datetime | None, until: str | datetime | None) -> ObservedRange:
        """The range from two bounds as :func:`parse_time` reads them (a bare ``until`` date takes its whole day)."""
        return cls(parse_time(since), parse_time(until, end=True))

    def admits(self, record: Mapping[str, Any]) -> bool:
        """Whether the record was observed in the range; an unbounded range admits every record, a bounded one
        none whose ``observed_at`` cannot be read."""
        lo, hi = self.since, self.until
        if lo is None and hi is None:
            return True
        seen = observed(record)
        return seen is not None and (lo is None or seen >= lo) and (hi is None or seen <= hi)


def evidence_refs(record: Mapping[str, Any]) -> list[str]:
    """Hex SHA-256 references a record makes to evidence blobs (the body, and the header block if hashed)."""
    ev = record.get("evidence")
    if not isinstance(ev, Mapping):
        return []
    refs = []
    for key in ("sha256", "headers_sha256"):
        value = ev.get(key)
        if isinstance(value, str) and _SHA256_HEX.fullmatch(value):
            refs.append(value)
    return refs


def summary_columns(record: Mapping[str, Any]) -> list[str]:
    """observed_at, ``protocol (where)``, purposes, decision and URL of a record, ``-`` for what it lacks: the
    columns every one-line listing of records shows (the CLI's and the export's summary.txt)."""
    target = record.get("target")
    url = target.get("url", "-") if isinstance(target, Mapping) else "-"
    purposes = record.get("purposes")
    return [
        str(record.get("observed_at", "-")),
        label(record),
        ",".join(map(str, purposes)) if isinstance(purposes, list) else "-",
        str(record.get("decision", "-")),
        str(url),
    ]
