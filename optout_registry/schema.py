"""The REGISTRY.md §6.2 record schema, declared once as msgspec types and checked at C speed.

Why declarative: the rules (required and unknown fields, types, lengths, ranges, vocabularies, nesting depth, the
JSON domain JCS is unambiguous on) are read off the type declarations below by ``msgspec.convert``, a C extension,
instead of a hand-written recursive walk in Python (measured on the benchmark's records: the walk with stdlib json
~18 µs a record; msgspec's check ~1 µs, all of this module ~3 µs, the writer ~1 µs). The few rules msgspec cannot
express are stated here too and run after it:

* **Text formats** (UUID/ULID, salt, RFC 3339 time, URL, token, hex digest) are declared on their fields as
  :class:`Shape` annotations. msgspec's own ``pattern`` runs one Python regex per field; instead the shapes of the
  fields that are always present together are joined into one regex, matched once a record (~1 µs instead of ~3). A
  field separator (``\\n``) that no shape admits keeps the joined match exactly the conjunction of the per-field ones.
  Evidence that passed is remembered (a crawl's records point at the same few robots.txt fetches).
* **Calendar dates** (no 30 February): ``datetime.fromisoformat`` after the shape matched.
* **Plain JSON values only**: ``msgspec.convert`` accepts a set where a list is declared, and a set has no fixed order,
  so its bytes would not be reproducible. ``rule`` (the one free-form member) is compared with what msgspec made of
  it; only a tuple (kept as a list, as before) may differ.
* **ASCII keys in ``rule``** (JCS sorts keys by UTF-16 code units; for ASCII that is the order every encoder uses):
  free whenever the leaf is ASCII, else checked by the same ``rule`` type with a key pattern (:data:`RULE_ASCII`).
* **Unique purposes.**

On a refusal (the rare path) :func:`explain` narrows down to the offending value with the same types and names the
field and the rule, e.g. ``record.rule.line: integer 9007199254740992 is outside ±(2**53-1)``.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from operator import attrgetter
from types import UnionType
from typing import Annotated, Any, Literal, NamedTuple, NewType, Union, get_args, get_origin, get_type_hints

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

__all__ = [
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_ITEMS",
    "MAX_KEY_CHARS",
    "MAX_STRING_CHARS",
    "RULE_ASCII",
    "Record",
    "Shape",
    "check",
    "explain",
]

SCHEMA_VERSION = 1
RECORD_TYPE = "optout.honoured"
DECISIONS = ("not_fetched", "fetched_not_stored", "excluded_from_corpus", "purged")
PURPOSES = ("AI_TRAIN", "GENAI_TRAIN", "AI_INPUT", "SEARCH", "TDM")

MAX_INT = 2**53 - 1
MAX_STRING_CHARS = 8192
MAX_DEPTH = 12
MAX_ITEMS = 256
MAX_KEY_CHARS = 64


class Shape(NamedTuple):
    """A text format a string field must match in full, and what the error says (``{value!r}`` = the value, cut)."""

    regex: str
    says: str
    calendar: bool = False  # also a real date and time (the regex fixes the format, not 30 February)


_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ULID = r"[0-7][0-9A-HJKMNP-TV-Z]{25}"
_TIME = Shape(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z",
    "{value!r} is not RFC 3339 UTC 'YYYY-MM-DDTHH:MM:SS[.ffffff]Z'",
    calendar=True,
)
_URL = Shape(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s]+", "{value!r} is not an absolute URL")
_HEX64 = Shape(r"[0-9a-f]{64}", "must be 64 lower-case hex digits")

Str = Annotated[str, Meta(max_length=MAX_STRING_CHARS)]
NonEmpty = Annotated[str, Meta(min_length=1, max_length=MAX_STRING_CHARS)]
Int = Annotated[int, Meta(ge=-MAX_INT, le=MAX_INT)]
Time = Annotated[str, Meta(max_length=MAX_STRING_CHARS), _TIME]
Url = Annotated[str, Meta(max_length=MAX_STRING_CHARS), _URL]
Hex64 = Annotated[str, Meta(max_length=MAX_STRING_CHARS), _HEX64]

Key = Annotated[str, Meta(max_length=MAX_KEY_CHARS)]
AsciiKey = Annotated[str, Meta(max_length=MAX_KEY_CHARS, pattern=r"^[\x00-\x7f]*$")]


def _json(depth: int, key: Any) -> Any:
    """Any JSON value found at ``depth`` (the record is depth 0): no floats, bounded ints and strings, containers
    only above :data:`MAX_DEPTH` (one type per level, as msgspec has no recursive aliases on Python 3.11)."""
    if depth >= MAX_DEPTH:
        return Union[None, bool, Int, Str]  # noqa: UP007 - msgspec reads the typing form on 3.11 too
    # A NewType hashes by identity: without it typing hashed the nested tree once per reference, two per level,
    # 2**depth times (about 40 ms of every process's start-up). msgspec validates a NewType as its supertype.
    inner = NewType(f"JsonAtDepth{depth + 1}", _json(depth + 1, key))  # type: ignore[misc]
    return Union[  # noqa: UP007
        None,
        bool,
        Int,
        Str,
        Annotated[list[inner], Meta(max_length=MAX_ITEMS)],
        Annotated[dict[key, inner], Meta(max_length=MAX_ITEMS)],
    ]


Rule = Annotated[dict[Key, _json(2, Key)], Meta(max_length=MAX_ITEMS)]  # type: ignore[misc,valid-type]
# The same, with every key checked to be ASCII: needed only when the leaf holds a non-ASCII byte.
RULE_ASCII = Annotated[dict[AsciiKey, _json(2, AsciiKey)], Meta(max_length=MAX_ITEMS)]  # type: ignore[misc,valid-type]


class AsciiRule(Struct):
    """``rule`` alone with ASCII keys. A struct, because msgspec caches a struct's compiled type and would rebuild
    a bare type (here a tree of 12 levels) on every call."""

    rule: RULE_ASCII  # type: ignore[valid-type]  # built at import time (see _json): mypy cannot follow it


class Crawler(Struct, forbid_unknown_fields=True):
    operator: NonEmpty
    agent_token: NonEmpty
    node: Str
    software: Str | UnsetType = UNSET


class Target(Struct, forbid_unknown_fields=True):
    url: Url
    site: NonEmpty
    host: NonEmpty | UnsetType = UNSET


class Evidence(Struct, forbid_unknown_fields=True):
    url: Url
    fetched_at: Time
    status: Annotated[int, Meta(ge=0, le=999)]
    sha256: Hex64
    length: Annotated[int, Meta(ge=0, le=MAX_INT)]
    headers_sha256: Hex64 | UnsetType = UNSET


class Record(Struct, forbid_unknown_fields=True):
    """Schema v1 ``optout.honoured`` (REGISTRY.md §6.2)."""

    v: Literal[1]
    type: Literal["optout.honoured"]
    id: Annotated[str, Meta(max_length=64), Shape(f"{_UUID}|{_ULID}", "{value!r} is not a lower-case UUID or a ULID")]
    salt: Annotated[
        str,
        Meta(max_length=64),
        # 16 bytes: the last character carries 2 bits, its low 4 bits are zero
        Shape(r"[A-Za-z0-9_-]{21}[AQgw]", "must be 16 bytes in base64url without padding (22 characters)"),
    ]
    observed_at: Time
    crawler: Crawler
    target: Target
    mechanism: Annotated[
        str,
        Meta(max_length=64),
        Shape(r"[a-z0-9][a-z0-9._-]{0,63}", "{value!r} is not a lower-case token (e.g. 'robots.txt')"),
    ]
    purposes: Annotated[
        list[Literal["AI_TRAIN", "GENAI_TRAIN", "AI_INPUT", "SEARCH", "TDM"]], Meta(min_length=1, max_length=MAX_ITEMS)
    ]
    rule: Rule  # type: ignore[valid-type]
    decision: Literal["not_fetched", "fetched_not_stored", "excluded_from_corpus", "purged"]
    evidence: Evidence | UnsetType = UNSET


# ---------------------------------------------------------------------------------------------------------------
# Shapes: one joined regex per group of fields that are present together


class _Group(NamedTuple):
    anchor: tuple[str, ...]  # attributes leading to the optional struct/field the group hangs on (() = record)
    get: Any  # attrgetter of the group's fields (dotted), from the anchor
    fields: tuple[tuple[str, Shape], ...]  # (record path, shape)
    joined: re.Pattern[str]
    calendar: tuple[int, ...]  # positions of the fields that are dates
    seen: dict[str, None]  # texts that passed (optional groups only), per group: a text is valid for its group


@cache
def _hints(cls: type[Struct]) -> dict[str, Any]:
    """A struct's field types with their Annotated metadata (evaluated once: the rule's type tree is large)."""
    return get_type_hints(cls, include_extras=True)


def _shape_of(tp: Any) -> Shape | None:
    return next((m for m in get_args(tp)[1:] if isinstance(m, Shape)), None) if get_origin(tp) is Annotated else None


def _struct_of(tp: Any) -> type[Struct] | None:
    for t in (tp, *get_args(tp)):
        if isinstance(t, type) and issubclass(t, Struct):
            return t
    return None


def _groups(cls: type[Struct], anchor: str, prefix: str, out: list[tuple[str, list[tuple[str, str, Shape]]]]) -> None:
    """Collect (anchor, [(attr path from anchor, record path, shape)]) from the declarations, depth first."""
    mine: list[tuple[str, str, Shape]] = next((g for a, g in out if a == anchor), [])
    if not any(a == anchor for a, _ in out):
        out.append((anchor, mine))
    for field in msgspec.structs.fields(cls):
        tp = _hints(cls)[field.name]
        optional = UnsetType in get_args(tp)
        rel = f"{prefix}{field.name}"
        where = f"{anchor}.{rel}" if anchor else rel
        sub = _struct_of(tp)
        shape = _shape_of(next((t for t in get_args(tp) if t is not UnsetType), tp) if optional else tp)
        if sub is not None:
            if optional:
                _groups(sub, where, "", out)
            else:
                _groups(sub, anchor, f"{rel}.", out)
        elif shape is not None:
            if optional:
                out.append((where, [("", where, shape)]))
            else:
                mine.append((rel, where, shape))


def _compile(anchor: str, members: list[tuple[str, str, Shape]]) -> _Group:
    joined = re.compile("\n".join(f"(?:{shape.regex})" for _, _, shape in members) + r"\Z")
    get = attrgetter(*(rel for rel, _, _ in members)) if members[0][0] else None
    return _Group(
        anchor=tuple(anchor.split(".")) if anchor else (),
        get=get,
        fields=tuple((f"record.{where}", shape) for _, where, shape in members),
        joined=joined,
        calendar=tuple(i for i, (_, _, shape) in enumerate(members) if shape.calendar),
        seen={},
    )


def _all_groups() -> tuple[_Group, ...]:
    found: list[tuple[str, list[tuple[str, str, Shape]]]] = []
    _groups(Record, "", "", found)
    return tuple(_compile(anchor, members) for anchor, members in found if members)


_ROOT, *_OPTIONAL = _all_groups()  # the record's own group comes first
assert _ROOT.anchor == () and len(_ROOT.fields) > 1, "the record itself has several shaped fields"


def _check_shapes(rec: Record) -> str | None:
    """None, or the message for the first field whose text format is wrong."""
    values = _ROOT.get(rec)
    if _ROOT.joined.match("\n".join(values)) is None:
        return _which_shape(_ROOT, values)
    for i in _ROOT.calendar:
        try:
            datetime.fromisoformat(values[i][:19])
        except ValueError as exc:
            return f"{_ROOT.fields[i][0]}: invalid date/time {values[i]!r} ({exc})"
    for group in _OPTIONAL:
        base: Any = rec
        for name in group.anchor:
            base = getattr(base, name)
            if base is UNSET:
                break
        if base is UNSET:
            continue
        if group.get is None:  # a lone optional field: the anchor is the value
            values = (base,)
        else:
            got = group.get(base)
            values = got if type(got) is tuple else (got,)
        joined = "\n".join(values)
        if joined in group.seen:
            continue
        if group.joined.match(joined) is None:
            return _which_shape(group, values)
        for i in group.calendar:
            try:
                datetime.fromisoformat(values[i][:19])
            except ValueError as exc:
                return f"{group.fields[i][0]}: invalid date/time {values[i]!r} ({exc})"
        if len(group.seen) >= _SEEN_MAX:
            group.seen.clear()
        group.seen[joined] = None
    return None


# Texts of optional sub-objects that passed are remembered (evidence: a crawl's records mostly point at the same few
# robots.txt fetches), so the same evidence is matched once, not once a record. Bounded; a hit is a dict lookup.
_SEEN_MAX = 4096


def _which_shape(group: _Group, values: tuple[str, ...]) -> str:
    for (path, shape), value in zip(group.fields, values, strict=True):
        if re.fullmatch(shape.regex, value) is None:
            return f"{path}: " + shape.says.format(value=value[:80])
    return f"{', '.join(p for p, _ in group.fields)}: a field contains a line break"  # pragma: no cover


# ---------------------------------------------------------------------------------------------------------------
# The check


_convert = msgspec.convert


def check(record: dict[str, Any], ascii_keys: bool) -> str | None:
    """None if ``record`` meets the schema, else a one-line message naming the field and the rule.

    ``ascii_keys``: the caller knows every key is ASCII (its JCS leaf is ASCII), which skips the key pattern.
    """
    try:
        rec = _convert(record, Record)
    except msgspec.ValidationError:
        return explain(record, Record, "record")
    problem = _check_shapes(rec)
    if problem:
        return problem
    purposes = record["purposes"]
    if type(purposes) is not list and type(purposes) is not tuple:
        return f"record.purposes: must be a non-empty list, got {type(purposes).__name__}"
    if len(set(rec.purposes)) != len(rec.purposes):
        return "record.purposes: duplicate purpose"
    rule = record["rule"]
    if rec.rule != rule:  # msgspec turned something into a list: a set (refused) or a tuple (fine)
        problem = _not_plain(rule, "record.rule")
        if problem:
            return problem
    if not ascii_keys:
        try:
            _convert({"rule": rule}, AsciiRule)
        except msgspec.ValidationError:
            return explain(rule, RULE_ASCII, "record.rule", 1)
    return None


def _not_plain(value: Any, path: str) -> str | None:
    """The first value in a converted container that msgspec took but JSON has no exact form for (sets)."""
    t = type(value)
    if t is dict:
        for k, v in value.items():
            problem = _not_plain(v, _member(path, k))
            if problem:
                return problem
    elif t is list or t is tuple:
        for i, v in enumerate(value):
            problem = _not_plain(v, f"{path}[{i}]")
            if problem:
                return problem
    elif t not in (str, int, bool, type(None)):
        return f"{path}: {t.__name__} is not a JSON value (plain str, int, bool, None, dict, list only)"
    return None


# ---------------------------------------------------------------------------------------------------------------
# Explaining a refusal (rare path: runs msgspec again on parts to find the exact value)


_JSON_NAMES = {"str", "int", "bool", "null", "NoneType", "array", "list", "tuple", "object", "dict"}
_AT = re.compile(r"(?P<msg>.*?)(?: - at `(?P<at>[^`]*)`(?: in `[^`]*`)?)?\Z", re.S)


@cache
def _holder(tp: Any) -> type[Struct]:
    """A one-field struct around ``tp``: msgspec compiles a struct's types once, a bare type on every call."""
    return msgspec.defstruct("Value", [("value", tp)])


def _refusal(value: Any, tp: Any) -> tuple[str, str | None] | None:
    """None if ``value`` meets ``tp``, else msgspec's message and where (``$`` = the value itself, ``key``)."""
    try:
        _convert({"value": value}, _holder(tp))
    except msgspec.ValidationError as exc:
        found = _AT.match(str(exc))
        msg, at = (found["msg"], found["at"]) if found else (str(exc), None)
        if at is not None and at.startswith("$.value"):
            at = "$" + at[len("$.value") :]
        return msg, at
    return None


def explain(value: Any, tp: Any, path: str, depth: int = 0) -> str:
    """The message for the first place ``value`` fails ``tp``, found by checking ever smaller parts."""
    refused = _refusal(value, tp)
    if refused is None:  # pragma: no cover - only called after a failure
        return f"{path}: refused"
    msg, at = refused
    if at is None or at == "$":
        return _say(path, value, msg, tp, depth)
    base = _plain_type(tp, value)
    if at == "key" and type(value) is dict and get_origin(base) is dict:
        key_tp = get_args(base)[0]
        for k in value:
            if _refusal(k, key_tp) is not None:
                if type(k) is not str:
                    return f"{path}: object key {k!r} is not a string"
                return f"{path}: object key {k[:80]!r} must be ASCII and at most {MAX_KEY_CHARS} chars"
    sub = _struct_of(base)
    if sub is not None and isinstance(value, dict):
        for name, child in _hints(sub).items():
            if name in value and _refusal(value[name], child) is not None:
                return explain(value[name], child, f"{path}.{name}", depth + 1)
    elif get_origin(base) is dict and isinstance(value, dict):
        child = get_args(base)[1]
        for k, v in value.items():
            if _refusal(v, child) is not None:
                return explain(v, child, _member(path, k), depth + 1)
    elif get_origin(base) is list and isinstance(value, (list, tuple)):
        child = get_args(base)[0]
        for i, v in enumerate(value):
            if _refusal(v, child) is not None:
                if get_origin(child) is Literal:  # a vocabulary item: name the list, as the old messages did
                    return _say(path, v, "Invalid enum value", child, depth + 1)
                return explain(v, child, f"{path}[{i}]", depth + 1)
    return _say(path, value, msg, tp, depth)


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$@-]+\Z")


def _member(path: str, key: object) -> str:
    """``path.key``, or ``path['key']`` if the key would not read as one (dots, spaces, line breaks)."""
    return f"{path}.{key}" if isinstance(key, str) and _PLAIN_KEY.match(key) else f"{path}[{key!r}]"


def _bare(tp: Any) -> Any:
    """``tp`` without its Annotated metadata and NewType names (what msgspec checks a value against)."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif isinstance(tp, NewType):
            tp = tp.__supertype__
        else:
            return tp


def _plain_type(tp: Any, value: Any) -> Any:
    """The member of ``tp`` (Annotated/Union/NewType stripped) that a value of this Python type is checked by."""
    tp = _bare(tp)
    if get_origin(tp) in (Union, UnionType):
        for member in get_args(tp):
            inner = _bare(member)
            origin = get_origin(inner) or inner
            if (origin is dict and isinstance(value, dict)) or (origin is list and isinstance(value, (list, tuple))):
                return inner
            if isinstance(origin, type) and issubclass(origin, Struct) and isinstance(value, dict):
                return inner
    return tp


def _say(path: str, value: Any, msg: str, tp: Any, depth: int) -> str:
    """Turn msgspec's message about ``value`` itself into the project's wording."""
    got = type(value).__name__
    if msg.startswith("Object missing required field") or msg.startswith("Object contains unknown field"):
        cls = _struct_of(_plain_type(tp, value))
        if cls is not None and isinstance(value, dict):
            fields = msgspec.structs.fields(cls)
            missing = sorted(f.name for f in fields if f.required and f.name not in value)
            if missing:
                return f"{path}: missing required field(s) {', '.join(missing)}"
            unknown = sorted(str(k) for k in value.keys() - {f.name for f in fields})
            return f"{path}: unknown field(s) {', '.join(unknown)} (schema v{SCHEMA_VERSION})"
    if isinstance(value, float):
        return f"{path}: floats are not allowed in records (use an integer or a string)"
    if msg.startswith("Invalid enum value"):
        choices = get_args(tp)
        if path == "record.v" and type(value) is int:
            return f"record.v: unsupported schema version {value} (this code reads v{SCHEMA_VERSION})"
        if len(choices) == 1:
            return f"{path}: must be {choices[0]!r}, got {value!r}"
        return f"{path}: {value!r} is not one of {', '.join(map(str, choices))}"
    if msg.startswith("Expected `"):
        expected = msg[len("Expected `") :].partition("`")[0]
        if "got `" in msg:
            if got not in _JSON_NAMES:
                return f"{path}: {got} is not a JSON value (plain str, int, bool, None, dict, list only)"
            if "|" in expected and isinstance(value, (dict, list, tuple)) and depth >= MAX_DEPTH:
                return f"{path}: nested deeper than {MAX_DEPTH} levels"
            wanted = {"str": "a string", "int": "an integer", "object": "an object", "array": "a list"}
            if path == "record.purposes":
                return f"record.purposes: must be a non-empty list, got {got}"
            return f"{path}: must be {wanted.get(expected, expected)}, got {got}"
        if expected == "str" and "length >= 1" in msg:
            return f"{path}: must not be empty"
        if expected == "str" and "length <=" in msg:
            return f"{path}: string longer than {msg.rpartition('<= ')[2]} characters"
        if expected == "array" and "length >=" in msg:
            return f"{path}: must be a non-empty list"
        if expected == "array" and "length <=" in msg:
            return f"{path}: array has more than {msg.rpartition('<= ')[2]} items"
        if expected == "object" and "length <=" in msg:
            return f"{path}: object has more than {msg.rpartition('<= ')[2]} members"
        if expected == "int" and type(value) is int:
            if str(MAX_INT) in msg:
                return f"{path}: integer {value} is outside ±(2**53-1)"
            return f"{path}: {value} is outside the allowed range ({msg[len('Expected `int` ') :]})"
    return f"{path}: {msg}"
