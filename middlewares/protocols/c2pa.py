"""C2PA / CAWG training-and-data-mining assertions in media files — PROTOCOLS.md §7.2, §10.3.

A C2PA manifest store is a tree of JUMBF boxes (ISO/IEC 19566-5): the store superbox holds manifests, each
manifest an assertion store, each assertion a labelled superbox with a CBOR (or JSON) content box. We look for
assertions labelled ``c2pa.training-mining`` (C2PA 1.x, legacy) and ``cawg.training-mining`` (CAWG 1.0/1.1),
with optional ``__N`` instance suffixes, and map their ``entries``:

=================================  ======================================================================
entry (``c2pa.`` or ``cawg.``)     purposes
=================================  ======================================================================
``ai_training``                    train-ai
``ai_generative_training``         train-ai (conservative; strict: unknown — it only covers generative models)
``ai_inference``                   ai-input
``data_mining``                    train-ai + ai-input (conservative; strict: unknown — TDM is not a purpose here)
=================================  ======================================================================

``use: "allowed"`` allows; anything else — ``notAllowed``, ``constrained`` (CAWG: absent more information treat
as notAllowed), a missing or unknown value — disallows.

**We do not validate C2PA signatures.** That is deliberate and safe in one direction only: a restrictive entry
can only restrict, so it is honoured whether or not the claim is signed (§7.2 "Trust"); permissive entries never
override another source's reservation anyway (the engine's combination rule). In strict mode only the active
manifest (the last one in the store) is read; conservative mode also honours *restrictive* entries of ingredient
manifests, since their content is part of this asset.

Carriers: JPEG APP11 (JPEG-XT boxes, reassembled across segments), PNG ``caBX``, WebP ``C2PA`` chunk, a bare
JUMBF / ``.c2pa`` stream, a JSON manifest report (as printed by ``c2patool``), and a bounded scan for a ``jumb``
box anywhere else (BMFF ``uuid`` boxes, PDF, ...). CBOR is decoded by a small bounded decoder in this module
rather than ``cbor2``: it needs no optional dependency, has hard caps on items and depth, and ignores CBOR tags
instead of giving them meaning (``cbor2`` turns tag 35 into a compiled regex and tag 28/29 into shared, possibly
cyclic, references — none of which an opt-out reader needs).

Over 500 lines for one concern: finding the manifest store in each container format (JUMBF boxes in JPEG, PNG, WebP,
PDF) and the bounded CBOR reader it needs, both used only here.
"""

from __future__ import annotations

import json
import re
import struct
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .signals import Mode, Purpose, Signal, Verdict
from .xmp import jpeg_segments, png_chunks, riff_chunks, sniff

PROTOCOL = "c2pa"
LABELS = ("c2pa.training-mining", "cawg.training-mining")
MAX_SCAN_BYTES = 32 * 1024 * 1024
MAX_STORE_BYTES = 16 * 1024 * 1024
MAX_CONTENT_BYTES = 1024 * 1024
MAX_BOXES = 20_000
MAX_BOX_DEPTH = 16
MAX_CANDIDATES = 16
MAX_CBOR_ITEMS = 100_000
MAX_NEST = 64
MAX_JSON_NODES = 200_000

_JUMBF_SUFFIX = bytes.fromhex("00110010800000AA00389B71")
UUID_STORE = b"c2pa" + _JUMBF_SUFFIX
UUID_MANIFEST = b"c2ma" + _JUMBF_SUFFIX
UUID_UPDATE_MANIFEST = b"c2um" + _JUMBF_SUFFIX
_MANIFEST_UUIDS = (UUID_MANIFEST, UUID_UPDATE_MANIFEST)
_NOT_VALIDATED = "C2PA signature not validated (a restrictive entry is honoured regardless)"

_LABEL = re.compile(r"^(c2pa|cawg)\.training-mining(?:\.v\d+)?(?:__\d+)?$")


class CborError(ValueError):
    """Malformed or over-limit CBOR."""


# --- bounded CBOR decoder (RFC 8949 subset: everything but tag semantics) ---------------------------------------


class _Cbor:
    __slots__ = ("data", "items", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.items = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise CborError("truncated CBOR")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def _arg(self, info: int) -> int | None:
        if info < 24:
            return info
        if info == 24:
            return self._take(1)[0]
        if info == 25:
            value: int = struct.unpack(">H", self._take(2))[0]
            return value
        if info == 26:
            value = struct.unpack(">I", self._take(4))[0]
            return value
        if info == 27:
            value = struct.unpack(">Q", self._take(8))[0]
            return value
        if info == 31:
            return None  # indefinite length
        raise CborError("reserved additional information")

    def _peek_break(self) -> bool:
        if self.pos >= len(self.data):
            raise CborError("truncated CBOR")
        if self.data[self.pos] == 0xFF:
            self.pos += 1
            return True
        return False

    def item(self, depth: int = 0) -> Any:
        self.items += 1
        if self.items > MAX_CBOR_ITEMS:
            raise CborError("too many CBOR items")
        if depth > MAX_NEST:
            raise CborError("CBOR nested too deeply")
        initial = self._take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if major == 7:
            return self._simple(info)
        arg = self._arg(info)
        if major == 0:
            return arg if arg is not None else self._bad()
        if major == 1:
            return -1 - arg if arg is not None else self._bad()
        if major in (2, 3):
            if arg is None:
                chunks: list[bytes] = []
                while not self._peek_break():
                    chunk = self.item(depth + 1)
                    if not isinstance(chunk, (bytes, str)):
                        raise CborError("bad indefinite string chunk")
                    chunks.append(chunk if isinstance(chunk, bytes) else chunk.encode())
                raw = b"".join(chunks)
            else:
                raw = self._take(arg)
            return raw if major == 2 else raw.decode("utf-8", "replace")
        if major == 4:
            out: list[Any] = []
            if arg is None:
                while not self._peek_break():
                    out.append(self.item(depth + 1))
            else:
                if arg > len(self.data) - self.pos:
                    raise CborError("array longer than the data")
                for _ in range(arg):
                    out.append(self.item(depth + 1))
            return out
        if major == 5:
            result: dict[Any, Any] = {}
            if arg is not None and arg * 2 > len(self.data) - self.pos:
                raise CborError("map longer than the data")
            count = 0
            while True:
                if arg is None:
                    if self._peek_break():
                        break
                elif count >= arg:
                    break
                key = self.item(depth + 1)
                value = self.item(depth + 1)
                if not isinstance(key, (str, int, float, bytes, bool)) and key is not None:
                    key = repr(type(key))
                result[key] = value
                count += 1
            return result
        # major 6: a tag — its meaning is ignored, the tagged item is returned as is.
        if arg is None:
            raise CborError("indefinite tag")
        return self.item(depth + 1)

    def _bad(self) -> Any:
        raise CborError("indefinite integer")

    def _simple(self, info: int) -> Any:
        if info == 20:
            return False
        if info == 21:
            return True
        if info in (22, 23):
            return None
        if info < 24:
            return None  # unassigned simple value
        if info == 24:
            self._take(1)
            return None
        if info == 25:
            return struct.unpack(">e", self._take(2))[0]
        if info == 26:
            return struct.unpack(">f", self._take(4))[0]
        if info == 27:
            return struct.unpack(">d", self._take(8))[0]
        raise CborError("unexpected break or reserved simple value")


def cbor_loads(data: bytes) -> Any:
    """Decode one CBOR item (trailing bytes ignored). Raises :class:`CborError` on malformed/over-limit input."""
    if len(data) > MAX_CONTENT_BYTES:
        raise CborError("CBOR content too large")
    return _Cbor(bytes(data)).item()


# --- JUMBF -------------------------------------------------------------------------------------------------------


def _boxes(data: bytes, start: int, end: int, limit: int = MAX_BOXES) -> list[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of at most ``limit`` consecutive ISO BMFF-style boxes; a truncated last
    box is clamped to the data (a cut-off file may still say something restrictive)."""
    out: list[tuple[bytes, int, int]] = []
    pos = start
    while pos + 8 <= end and len(out) < limit:
        lbox, tbox = struct.unpack_from(">I4s", data, pos)
        header = 8
        if lbox == 1:
            if pos + 16 > end:
                break
            (lbox,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif lbox == 0:
            lbox = end - pos
        if lbox < header:
            break
        if pos + lbox > end:
            out.append((tbox, pos + header, end))
            break
        out.append((tbox, pos + header, pos + lbox))
        pos += lbox
    return out


def _jumd(data: bytes, start: int, end: int) -> tuple[bytes, str]:
    """(type UUID, label) of a JUMBF description box."""
    if end - start < 17:
        return b"", ""
    uuid = data[start : start + 16]
    toggles = data[start + 16]
    label = ""
    if toggles & 0x02:
        nul = data.find(b"\x00", start + 17, end)
        raw = data[start + 17 : nul if nul >= 0 else end]
        label = raw[:1024].decode("utf-8", "replace")
    return uuid, label


@dataclass
class _Assertion:
    label: str
    manifest: str
    manifest_index: int  # -1: not inside a manifest (bare assertion box)
    content: list[tuple[bytes, bytes]] = field(default_factory=list)  # (box type, payload)


@dataclass
class _Walk:
    assertions: list[_Assertion] = field(default_factory=list)
    manifests: int = 0
    budget: int = MAX_BOXES


def _walk(
    data: bytes, boxes: list[tuple[bytes, int, int]], depth: int, manifest: tuple[str, int], state: _Walk
) -> None:
    """Visit superboxes depth-first. Every box header parsed counts against one budget for the whole store, and
    each superbox's children are parsed once, so the cost is bounded whatever the nesting."""
    for tbox, ps, pe in boxes:
        if tbox != b"jumb":
            continue
        if state.budget <= 0:
            return
        children = _boxes(data, ps, pe, state.budget)
        state.budget -= len(children) + 1
        if not children or children[0][0] != b"jumd":
            continue
        uuid, label = _jumd(data, children[0][1], children[0][2])
        here = manifest
        if uuid in _MANIFEST_UUIDS:
            here = (label, state.manifests)
            state.manifests += 1
        if _LABEL.match(label):
            content = [(t, data[s:e]) for t, s, e in children[1:4] if e - s <= MAX_CONTENT_BYTES]
            state.assertions.append(_Assertion(label, here[0], here[1], content))
            continue
        if depth < MAX_BOX_DEPTH:
            _walk(data, children[1:], depth + 1, here, state)


# --- carriers ----------------------------------------------------------------------------------------------------


def _jpeg_jumbf(body: bytes) -> list[bytes]:
    """Reassemble JPEG-XT APP11 segments: ``JP`` + box instance (En) + sequence (Z) + box data; continuation
    segments repeat the box header, which is dropped."""
    groups: dict[bytes, dict[int, bytes]] = defaultdict(dict)
    for marker, payload in jpeg_segments(body):
        if marker != 0xEB or len(payload) < 16 or payload[:2] != b"JP":
            continue
        en = payload[2:4]
        (z,) = struct.unpack_from(">I", payload, 4)
        groups[en].setdefault(z, payload[8:])
    out: list[bytes] = []
    for parts in groups.values():
        first = parts.get(1)
        if first is None or len(first) < 8:
            continue
        header = 16 if struct.unpack_from(">I", first, 0)[0] == 1 else 8
        buf = bytearray(first)
        expected = 2
        for z in sorted(parts):
            if z <= 1:
                continue
            if z != expected or len(buf) > MAX_STORE_BYTES:
                break
            buf += parts[z][header:]
            expected += 1
        out.append(bytes(buf))
    return out


def _scan_jumbf(body: bytes) -> list[bytes]:
    """Bounded scan for a top-level ``jumb`` box whose first child is a ``jumd`` (BMFF, PDF, unknown carriers)."""
    out: list[bytes] = []
    data = body[:MAX_SCAN_BYTES]
    pos = 4
    while len(out) < MAX_CANDIDATES:
        hit = data.find(b"jumb", pos)
        if hit < 0:
            break
        start = hit - 4
        pos = hit + 4
        if start < 0 or data[hit + 8 : hit + 12] != b"jumd":
            continue
        (lbox,) = struct.unpack_from(">I", data, start)
        if lbox < 8 and lbox not in (0, 1):
            continue
        if lbox == 1 or lbox == 0 or start + lbox > len(data):
            end = min(len(data), start + MAX_STORE_BYTES)
        else:
            end = start + lbox
        out.append(data[start:end])
        pos = max(pos, end)
    return out


def find_jumbf(body: bytes, content_type: str | None = None) -> list[bytes]:
    """Every JUMBF manifest store (or assertion box) found in ``body``."""
    body = body[:MAX_SCAN_BYTES]
    kind = sniff(body)
    found: list[bytes] = []
    if kind == "jpeg":
        found = _jpeg_jumbf(body)
    elif kind == "png":
        found = [data for ctype, data in png_chunks(body) if ctype == b"caBX"]
    elif kind == "webp":
        found = [data for fourcc, data in riff_chunks(body) if fourcc == b"C2PA"]
    elif kind == "jumbf":
        found = [body[:MAX_STORE_BYTES]]
    if not found:
        found = _scan_jumbf(body)
    return [f[:MAX_STORE_BYTES] for f in found[:MAX_CANDIDATES]]


# --- interpretation ----------------------------------------------------------------------------------------------


def _decode_content(content: list[tuple[bytes, bytes]]) -> tuple[Any, str]:
    for tbox, payload in content:
        try:
            if tbox == b"cbor":
                return cbor_loads(payload), ""
            if tbox == b"json":
                return json.loads(payload.decode("utf-8", "replace")), ""
        except (CborError, ValueError, RecursionError):
            return None, f"undecodable {tbox.decode('latin-1')} content box"
        if tbox == b"brob":
            return None, "brotli-compressed assertion not decoded"
    return None, "no CBOR/JSON content box"


def _purposes(suffix: str, mode: Mode) -> tuple[tuple[Purpose, ...], str]:
    if suffix == "ai_training":
        return (Purpose.TRAIN_AI,), ""
    if suffix == "ai_generative_training":
        if mode is Mode.STRICT:
            return (), "generative AI training only: train-ai unknown (strict)"
        return (Purpose.TRAIN_AI,), "generative AI training read as train-ai (conservative)"
    if suffix == "ai_inference":
        return (Purpose.AI_INPUT,), ""
    if suffix == "data_mining":
        if mode is Mode.STRICT:
            return (), "data mining (TDM) has no purpose of its own here: unknown (strict)"
        return (Purpose.TRAIN_AI, Purpose.AI_INPUT), "data mining read as train-ai + ai-input (conservative)"
    return (), ""


def _entry_signals(label: str, data: Any, *, manifest: str, active: bool, mode: Mode, note: str = "") -> list[Signal]:
    out: list[Signal] = []
    if not isinstance(data, dict):
        if note:
            out.append(Signal(PROTOCOL, "c2pa", "", f"{label}", {}, note=f"{note}; {_NOT_VALIDATED}"))
        return out
    entries = data.get("entries")
    if not isinstance(entries, dict):
        return [Signal(PROTOCOL, "c2pa", "", label, {}, note=f"assertion without entries map; {_NOT_VALIDATED}")]
    where = f" (manifest {manifest})" if manifest else ""
    for key, entry in list(entries.items())[:64]:
        if not isinstance(key, str):
            continue
        prefix, _, suffix = key.partition(".")
        if prefix not in ("c2pa", "cawg"):
            continue  # custom entries have no meaning we know
        notes: list[str] = []
        if isinstance(entry, dict):
            use = entry.get("use")
            info = entry.get("constraint_info", entry.get("constraints_info"))
            if isinstance(info, str) and info:
                notes.append(f"constraint info: {info[:300]}")
        elif isinstance(entry, str):
            use = entry
            notes.append("entry is a bare string, not a map with 'use'")
        else:
            use = None
        use_text = use if isinstance(use, str) else ("missing" if use is None else str(use)[:50])
        verdict = Verdict.ALLOW if use == "allowed" else Verdict.DISALLOW
        if use not in ("allowed", "notAllowed", "constrained"):
            notes.append(f"use {use_text!r} is not allowed/notAllowed/constrained: read as notAllowed")
        elif use == "constrained":
            notes.append("constrained is treated as notAllowed absent more information (CAWG)")
        purposes, mapping_note = _purposes(suffix, mode)
        if not purposes and not mapping_note:
            continue
        if not active:
            if verdict is Verdict.ALLOW or mode is Mode.STRICT:
                continue
            notes.append("from an ingredient manifest, not the active one (restrictive entries honoured)")
        notes.append(mapping_note)
        notes.append(_NOT_VALIDATED)
        out.append(
            Signal(
                protocol=PROTOCOL,
                where="c2pa",
                value=use_text,
                rule=f"{label}: {key}={use_text}{where}",
                verdicts={p: verdict for p in purposes},
                note="; ".join(n for n in notes if n),
            )
        )
    return out


def _from_jumbf(store: bytes, mode: Mode) -> list[Signal]:
    state = _Walk()
    top = _boxes(store, 0, len(store), MAX_CANDIDATES)
    state.budget -= len(top)
    _walk(store, top, 0, ("", -1), state)
    out: list[Signal] = []
    active_index = state.manifests - 1
    for a in state.assertions:
        active = a.manifest_index in (-1, active_index)
        data, note = _decode_content(a.content)
        out.extend(_entry_signals(a.label, data, manifest=a.manifest, active=active, mode=mode, note=note))
    return out


def _json_assertions(doc: Any) -> list[tuple[str, Any, str, bool]]:
    """(label, data, manifest, active) from a JSON manifest report (``active_manifest`` + ``manifests``), or
    any ``{"label": ..., "data": ...}`` objects anywhere in the document (walked iteratively, bounded)."""
    found: list[tuple[str, Any, str, bool]] = []
    manifests = doc.get("manifests") if isinstance(doc, dict) else None
    if isinstance(manifests, dict) and manifests:
        active_label = doc.get("active_manifest")
        if not isinstance(active_label, str) or active_label not in manifests:
            active_label = list(manifests)[-1]
        items = [(label, m, label == active_label) for label, m in manifests.items()]
    else:
        items = [("", doc, True)]
    nodes = 0
    for manifest, root, active in items:
        stack: list[tuple[Any, int]] = [(root, 0)]
        while stack and nodes < MAX_JSON_NODES:
            node, depth = stack.pop()
            nodes += 1
            if isinstance(node, dict):
                label = node.get("label")
                if isinstance(label, str) and _LABEL.match(label) and "data" in node:
                    found.append((label, node["data"], manifest, active))
                    continue
                children = list(node.values())
            elif isinstance(node, list):
                children = node
            else:
                continue
            if depth < MAX_NEST:
                stack.extend((c, depth + 1) for c in reversed(children))
    return found


def _from_json(body: bytes, mode: Mode) -> list[Signal]:
    text = body.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return []
    out: list[Signal] = []
    for label, data, manifest, active in _json_assertions(doc):
        out.extend(_entry_signals(label, data, manifest=manifest, active=active, mode=mode))
    return out


def signals(body: bytes, content_type: str | None, *, mode: Mode) -> list[Signal]:
    """Training-and-data-mining statements of every C2PA manifest store in ``body``. Never raises on bad input."""
    if not isinstance(body, (bytes, bytearray)):
        return []
    body = bytes(body)
    stripped = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith((b"{", b"[")):
        # A JSON manifest report; only worth parsing if it can name the assertion at all.
        if len(body) <= MAX_STORE_BYTES and b"training-mining" in body:
            return _from_json(body, mode)
        return []
    out: list[Signal] = []
    for store in find_jumbf(body, content_type):
        try:
            out.extend(_from_jumbf(store, mode))
        except (RecursionError, struct.error, ValueError, IndexError):
            continue
    return out
