"""How the API reads its parameters (domains, indices, dates, the records page's query) and writes bytes and times.

The records page, the busiest route, reads its query string here by hand instead of through FastAPI's
per-parameter machinery (almost half of that route's cost); :data:`RECORDS_QUERY` documents the same constraints
in the OpenAPI document, and a bad value gets FastAPI's own 422 shape.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Annotated, Any, overload

from fastapi import HTTPException, Query
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import QueryParams

from optout_registry.errors import RegistryError
from optout_registry.recordfields import parse_time
from optout_registry.service.models import ID_PATTERN
from optout_registry.service.ownership import DomainError, site_key
from optout_registry.service.store import micros

API = "/api/v1"
MAX_INDEX = 2**63 - 1
PRIVATE = {"Cache-Control": "private, no-store"}
"""Headers of every answer that is for its caller only (a holder's records, a challenge, a token)."""

Domain = Annotated[str, PathParam(min_length=1, max_length=253, description="registrable domain, e.g. example.com")]
Index = Annotated[int, PathParam(ge=0, le=MAX_INDEX, description="the record's index in the log")]
Size = Annotated[int, PathParam(ge=0, le=MAX_INDEX, description="a tree size: the number of records covered")]
ChallengeId = Annotated[str, PathParam(pattern=ID_PATTERN, description="challenge_id of the challenge")]
SINCE = "observed at or after: YYYY-MM-DD or RFC 3339"
UNTIL = "observed at or before (a bare date: the whole day)"
Since = Annotated[str | None, Query(max_length=40, description=SINCE)]
Until = Annotated[str | None, Query(max_length=40, description=UNTIL)]
After = Annotated[int, Query(ge=0, le=MAX_INDEX, description="list complaints with a seq above this one")]
Limit = Annotated[int, Query(ge=1, le=500, description="complaints per page")]


def key_of(domain: str) -> str:
    """The site key of a domain named in a request (ownership.site_key); 400 if it is not a registrable domain."""
    try:
        return site_key(domain)
    except DomainError as exc:
        raise HTTPException(400, str(exc)) from None


def bound(value: str | None, *, end: bool, name: str) -> int | None:
    """A date or RFC 3339 time as epoch microseconds (a bare ``until`` date is inclusive), as the registry reads it
    (recordfields.parse_time); 400 for anything else."""
    if value is None or value == "":
        return None
    try:
        dt = parse_time(value, end=end)
    except RegistryError:
        raise HTTPException(400, f"{name}: not a date (YYYY-MM-DD) or RFC 3339 time") from None
    return None if dt is None else micros(dt)


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


RECORDS_QUERY = [
    _q("since", {"type": "string", "maxLength": 40}, SINCE),
    _q("until", {"type": "string", "maxLength": 40}, UNTIL),
    _q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "records per page"),
    _q("cursor", {"type": "integer", "minimum": 0, "maximum": MAX_INDEX}, "next_cursor of the previous page"),
    _q("order", {"type": "string", "enum": ["asc", "desc"], "default": "asc"}, "by log index"),
]
VALIDATION_422 = {
    "description": "Validation Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
}


def invalid(name: str, value: Any, msg: str, kind: str) -> dict[str, Any]:
    """One entry of a 422 answer about query parameter ``name``, in FastAPI's shape."""
    return {"type": kind, "loc": ["query", name], "msg": msg, "input": value}


def query_text(q: QueryParams, name: str) -> str | None:
    """The last value of a text parameter (at most 40 characters), or None."""
    values = q.getlist(name)
    if not values:
        return None
    value = values[-1]
    if len(value) > 40:
        raise RequestValidationError(
            [invalid(name, value, "String should have at most 40 characters", "string_too_long")]
        )
    return value


@overload
def query_int(q: QueryParams, name: str, default: int, lo: int, hi: int) -> int: ...
@overload
def query_int(q: QueryParams, name: str, default: None, lo: int, hi: int) -> int | None: ...
def query_int(q: QueryParams, name: str, default: int | None, lo: int, hi: int) -> int | None:
    """The last value of an integer parameter, between ``lo`` and ``hi``, or ``default``."""
    values = q.getlist(name)
    if not values:
        return default
    text = values[-1].strip()
    if not text.lstrip("+-").isdigit() or len(text) > 20 or not text.isascii():
        raise RequestValidationError([invalid(name, text, "Input should be a valid integer", "int_parsing")])
    value = int(text)
    if not lo <= value <= hi:
        raise RequestValidationError([invalid(name, value, f"Input should be between {lo} and {hi}", "range")])
    return value


def b64(data: bytes) -> str:
    """Standard base64, as hashes and roots are written in the API."""
    return base64.b64encode(data).decode("ascii")


def iso(ts: float) -> str:
    """A UNIX time as the API writes times: UTC, to the second (YYYY-MM-DDTHH:MM:SSZ)."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
