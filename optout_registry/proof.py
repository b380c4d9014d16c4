"""C2SP tlog-proof v1 files: one record's offline inclusion proof with its signed checkpoint (REGISTRY.md §2.4).

Format (c2sp.org/tlog-proof)::

    c2sp.org/tlog-proof@v1
    [extra <base64>]            optional, unauthenticated; accepted when parsing, never trusted
    index <decimal, no leading zeros>
    <base64 hash>               zero or more, leaf's sibling first
    <empty line>
    <signed checkpoint note, verbatim>

A proof file is self-contained, so a rights holder can keep it next to the record and check it years later with
the pinned key alone. Parsing is strict (one spelling per proof) so that "this proof's checkpoint is the export's
checkpoint" can be decided by comparing text.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence

from .merkle import HASH_SIZE, VerificationError

__all__ = [
    "HEADER",
    "MAX_PROOF_BYTES",
    "format_hashes",
    "format_proof",
    "parse_hashes",
    "parse_proof",
    "parse_proof_extra",
]

HEADER = "c2sp.org/tlog-proof@v1"
MAX_PROOF_HASHES = 64  # a tree of 2^63 leaves needs at most 63
MAX_PROOF_BYTES = 1 << 20
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)\Z")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise VerificationError(f"{what} is not valid base64") from None
    if _b64(raw) != text:
        raise VerificationError(f"{what} is not canonical base64")
    return raw


def format_proof(index: int, proof: Sequence[bytes], signed_checkpoint: str, *, extra: bytes | None = None) -> str:
    """Build the text of a .tlog-proof file. ``signed_checkpoint`` is the full signed note, included verbatim."""
    if type(index) is not int or index < 0:
        raise ValueError(f"tlog-proof index must be a non-negative int, got {index!r}")
    if not isinstance(signed_checkpoint, str) or not signed_checkpoint.endswith("\n"):
        raise ValueError("tlog-proof needs the signed checkpoint note text (ending with a newline)")
    lines = [HEADER]
    if extra is not None:
        if not extra:
            raise ValueError("tlog-proof extra data must not be empty")
        lines.append("extra " + _b64(extra))
    lines.append(f"index {index}")
    for h in proof:
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise ValueError(f"tlog-proof hashes must be {HASH_SIZE} bytes")
        lines.append(_b64(h))
    return "\n".join(lines) + "\n\n" + signed_checkpoint


def parse_proof_extra(text: str | bytes) -> tuple[int, list[bytes], str, bytes | None]:
    """Like parse_proof, also returning the (unauthenticated) extra data, or None."""
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_PROOF_BYTES:
            raise VerificationError("tlog-proof: file is too large")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise VerificationError("tlog-proof: not valid UTF-8") from None
    if not isinstance(text, str):
        raise VerificationError("tlog-proof: expected text")
    if len(text) > MAX_PROOF_BYTES:
        raise VerificationError("tlog-proof: file is too large")
    head, sep, checkpoint = text.partition("\n\n")
    if not sep:
        raise VerificationError("tlog-proof: no empty line before the checkpoint")
    if not checkpoint:
        raise VerificationError("tlog-proof: the checkpoint is missing")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise VerificationError(f"tlog-proof: first line must be {HEADER!r}")
    pos = 1
    extra = None
    if pos < len(lines) and lines[pos].startswith("extra "):
        extra = _b64decode(lines[pos][len("extra ") :], "tlog-proof: extra data")
        if not extra:
            raise VerificationError("tlog-proof: empty extra data")
        pos += 1
    if pos >= len(lines) or not lines[pos].startswith("index "):
        raise VerificationError("tlog-proof: missing 'index N' line")
    index_text = lines[pos][len("index ") :]
    if not _DECIMAL.match(index_text) or len(index_text) > 19:
        raise VerificationError(f"tlog-proof: index {index_text[:30]!r} is not a decimal without leading zeros")
    index = int(index_text)
    hashes = []
    for i, line in enumerate(lines[pos + 1 :]):
        raw = _b64decode(line, f"tlog-proof: proof hash {i}")
        if len(raw) != HASH_SIZE:
            raise VerificationError(f"tlog-proof: proof hash {i} is {len(raw)} bytes, expected {HASH_SIZE}")
        hashes.append(raw)
    if len(hashes) > MAX_PROOF_HASHES:
        raise VerificationError(f"tlog-proof: more than {MAX_PROOF_HASHES} proof hashes")
    return index, hashes, checkpoint, extra


def parse_proof(text: str | bytes) -> tuple[int, list[bytes], str]:
    """Parse a .tlog-proof strictly: (index, inclusion proof hashes, signed checkpoint note text).

    The checkpoint is returned unverified; callers must open it with the pinned key (note.open_checkpoint).
    """
    index, hashes, checkpoint, _ = parse_proof_extra(text)
    return index, hashes, checkpoint


def format_hashes(hashes: Sequence[bytes]) -> str:
    """One standard-base64 hash per line, each ending in a newline ("" for no hashes).

    This is the body of an export's ``consistency/<m>-<N>.txt`` (and the proof lines of C2SP tlog-witness).
    """
    out = []
    for h in hashes:
        if not isinstance(h, bytes) or len(h) != HASH_SIZE:
            raise ValueError(f"hashes must be {HASH_SIZE} bytes")
        out.append(_b64(h) + "\n")
    return "".join(out)


def parse_hashes(text: str | bytes) -> list[bytes]:
    """Strict inverse of format_hashes; VerificationError on anything else (blank lines, bad base64, sizes)."""
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_PROOF_BYTES:
            raise VerificationError("hash list is too large")
        try:
            text = bytes(text).decode("ascii")
        except UnicodeDecodeError:
            raise VerificationError("hash list is not ASCII") from None
    if not isinstance(text, str):
        raise VerificationError("hash list must be text")
    if not text:
        return []
    if not text.endswith("\n"):
        raise VerificationError("hash list must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) > MAX_PROOF_HASHES:
        raise VerificationError(f"hash list has more than {MAX_PROOF_HASHES} hashes")
    hashes = []
    for i, line in enumerate(lines):
        raw = _b64decode(line, f"hash {i}")
        if len(raw) != HASH_SIZE:
            raise VerificationError(f"hash {i} is {len(raw)} bytes, expected {HASH_SIZE}")
        hashes.append(raw)
    return hashes
