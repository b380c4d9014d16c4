"""C2SP signed notes and tlog-checkpoints with Ed25519 (REGISTRY.md §2.3, §6.6, §8).

A checkpoint (origin, tree size, root hash) signed by the registry's key is the one statement everything else is
checked against, so this module is deliberately small and strict:

* the formats are byte-exact C2SP / Go ``sumdb/note`` (signature lines start with U+2014, key ID =
  SHA-256(name || "\\n" || 0x01 || public key)[:4]), so Go's ``note.Open``, Tessera and witnesses accept our notes
  and we accept theirs;
* verifiers trust only a *pinned* key: signatures from unknown keys are ignored (key rotation, witness
  cosignatures), a signature that claims to be from the pinned key but does not verify rejects the whole note,
  and a note without a valid pinned signature is refused;
* parsing refuses anything ambiguous (leading zeros, non-canonical base64, control characters), because two
  different byte strings meaning the same checkpoint would make "the embedded checkpoint equals checkpoint.txt"
  comparisons unreliable.

Ed25519 is deterministic, so signing the same checkpoint with the same key always yields the same note text —
the §8 vectors rely on that.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "ALG_ED25519",
    "Checkpoint",
    "NoteError",
    "Signer",
    "Verifier",
    "open_checkpoint",
    "open_note",
]

ALG_ED25519 = 0x01
SIG_PREFIX = "\u2014 "  # "— "
MAX_NOTE_BYTES = 1 << 20
MAX_SIGNATURES = 100
MAX_TREE_SIZE = (1 << 63) - 1
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)\Z")
_HEX8 = re.compile(r"[0-9a-f]{8}\Z")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_PRIVATE_PREFIX = "PRIVATE+KEY+"


class NoteError(ValueError):
    """A note, key or checkpoint is malformed or not signed by the pinned key; the message says which."""


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64: valid alphabet, correct padding, and canonical (re-encodes to the same text)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise NoteError(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_name(name: object) -> str:
    """Key names: non-empty, no whitespace, no '+' (it separates vkey fields), no control characters."""
    if not isinstance(name, str) or not name:
        raise NoteError("key name must be a non-empty string")
    if "+" in name or any(ch.isspace() for ch in name) or _CONTROL.search(name):
        raise NoteError(f"invalid key name {name!r}: no spaces, '+' or control characters allowed")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError("key name is not valid Unicode") from None
    return name


def _key_id(name: str, alg: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([alg]) + public).digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    """The note text of a C2SP tlog-checkpoint: origin, tree size, RFC 6962 root.

    Extension lines are accepted when parsing (the spec allows them) and kept so ``body()`` round-trips, but the
    registry never writes any.
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin or "\n" in self.origin or _CONTROL.search(self.origin):
            raise NoteError("checkpoint origin must be a non-empty single line without control characters")
        if type(self.size) is not int or not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(f"checkpoint size must be an int in 0..2^63-1, got {self.size!r}")
        if not isinstance(self.root, bytes) or len(self.root) != 32:
            raise NoteError("checkpoint root must be 32 bytes")
        for ext in self.extensions:
            if not isinstance(ext, str) or not ext or "\n" in ext or _CONTROL.search(ext):
                raise NoteError("checkpoint extension lines must be non-empty single lines")

    def body(self) -> str:
        """The note text, ending with a newline."""
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Parse checkpoint note text strictly (decimal without leading zeros, canonical 32-byte base64 root)."""
        if not isinstance(body, str):
            raise NoteError("checkpoint text must be a string")
        if not body.endswith("\n"):
            raise NoteError("checkpoint text must end with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError(f"checkpoint needs origin, size and root lines, got {len(lines)} line(s)")
        origin, size_text, root_text, *extensions = lines
        if not _DECIMAL.match(size_text):
            raise NoteError(f"checkpoint size {size_text[:40]!r} is not a decimal without leading zeros")
        if len(size_text) > 19 or int(size_text) > MAX_TREE_SIZE:
            raise NoteError("checkpoint size is too large")
        root = _b64decode(root_text, "checkpoint root")
        if len(root) != 32:
            raise NoteError(f"checkpoint root is {len(root)} bytes, expected 32")
        return cls(origin, int(size_text), root, tuple(extensions))


class Verifier:
    """A pinned Ed25519 note verifier key, from its ``name+hex8+base64(0x01||pub)`` vkey text."""

    def __init__(self, name: str, public: bytes) -> None:
        self.name = _check_name(name)
        if not isinstance(public, bytes) or len(public) != 32:
            raise NoteError("Ed25519 public key must be 32 bytes")
        try:
            self._key = Ed25519PublicKey.from_public_bytes(public)
        except ValueError:
            raise NoteError("invalid Ed25519 public key") from None
        self.public = public
        self.key_id = _key_id(self.name, ALG_ED25519, public)

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse a vkey; split on the first two '+' only (the base64 part may itself contain '+')."""
        if not isinstance(vkey, str):
            raise NoteError("verifier key must be a string")
        vkey = vkey.strip()
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise NoteError("verifier key must look like name+hex8+base64")
        name, hex_id, key_b64 = parts
        _check_name(name)
        if not _HEX8.match(hex_id):
            raise NoteError("verifier key ID must be 8 lowercase hex digits")
        raw = _b64decode(key_b64, "verifier key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("verifier key is not an Ed25519 (type 0x01) key")
        verifier = cls(name, raw[1:])
        if verifier.key_id.hex() != hex_id:
            raise NoteError("verifier key ID does not match its name and public key")
        return verifier

    def vkey(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([ALG_ED25519]) + self.public)}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def __repr__(self) -> str:
        return f"Verifier({self.vkey()!r})"


class Signer:
    """An Ed25519 note signer (C2SP signature type 0x01). Holds the private key: keep it out of logs and exports."""

    def __init__(self, name: str, seed: bytes) -> None:
        self.name = _check_name(name)
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise NoteError("Ed25519 private key seed must be 32 bytes")
        self._seed = seed
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        self.public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = _key_id(self.name, ALG_ED25519, self.public)

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, os.urandom(32))

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        return cls(name, seed)

    @classmethod
    def from_private_bytes(cls, name: str, data: bytes) -> Signer:
        """Same as from_seed: Ed25519 raw private bytes are the 32-byte seed."""
        return cls(name, data)

    def vkey(self) -> str:
        """The public verifier key text ``name+hex8+base64(0x01||pub)`` to publish and pin."""
        return f"{self.name}+{self.key_id.hex()}+{_b64(bytes([ALG_ED25519]) + self.public)}"

    def verifier(self) -> Verifier:
        return Verifier(self.name, self.public)

    def signature_line(self, text: str) -> str:
        """The ``— name base64(keyid||sig)\\n`` line for note text ``text``."""
        _check_text(text)
        sig = self._key.sign(text.encode("utf-8"))
        return f"{SIG_PREFIX}{self.name} {_b64(self.key_id + sig)}\n"

    def sign_note(self, text: str) -> str:
        """Sign arbitrary note text (ending in a newline); returns the full signed note."""
        return text + "\n" + self.signature_line(text)

    def sign(self, checkpoint: Checkpoint) -> str:
        """The full signed checkpoint note."""
        return self.sign_note(checkpoint.body())

    def private_key_text(self) -> str:
        """Go-style skey ``PRIVATE+KEY+name+hex8+base64(0x01||seed)``; store it in a 0600 file."""
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id.hex()}+{_b64(bytes([ALG_ED25519]) + self._seed)}"

    @classmethod
    def from_private_key_text(cls, text: str) -> Signer:
        if not isinstance(text, str):
            raise NoteError("private key text must be a string")
        text = text.strip()
        if not text.startswith(_PRIVATE_PREFIX):
            raise NoteError("private key text must start with PRIVATE+KEY+")
        parts = text[len(_PRIVATE_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise NoteError("private key text must look like PRIVATE+KEY+name+hex8+base64")
        name, hex_id, key_b64 = parts
        if not _HEX8.match(hex_id):
            raise NoteError("private key ID must be 8 lowercase hex digits")
        raw = _b64decode(key_b64, "private key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("private key is not an Ed25519 (type 0x01) key")
        signer = cls(name, raw[1:])
        if signer.key_id.hex() != hex_id:
            raise NoteError("private key ID does not match its name and key")
        return signer

    def __repr__(self) -> str:  # never show the seed
        return f"Signer({self.vkey()!r})"


def _check_text(text: object) -> None:
    if not isinstance(text, str) or not text.endswith("\n"):
        raise NoteError("note text must be a string ending with a newline")
    if _CONTROL.search(text):
        raise NoteError("note text contains control characters")


def _split_note(note_text: str | bytes) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """Split a signed note into its text and (name, key ID, signature) triples; format checks only."""
    if isinstance(note_text, (bytes, bytearray)):
        if len(note_text) > MAX_NOTE_BYTES:
            raise NoteError(f"note is larger than {MAX_NOTE_BYTES} bytes")
        try:
            note_text = bytes(note_text).decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("note is not valid UTF-8") from None
    if not isinstance(note_text, str):
        raise NoteError("note must be text")
    if len(note_text) > MAX_NOTE_BYTES:
        raise NoteError(f"note is larger than {MAX_NOTE_BYTES} bytes")
    try:
        note_text.encode("utf-8")
    except UnicodeEncodeError:
        raise NoteError("note is not valid Unicode") from None
    if _CONTROL.search(note_text):
        raise NoteError("note contains control characters other than newline")
    split = note_text.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, sig_block = note_text[: split + 1], note_text[split + 2 :]
    if not sig_block or not sig_block.endswith("\n"):
        raise NoteError("note signature block is empty or does not end with a newline")
    sigs: list[tuple[str, bytes, bytes]] = []
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(SIG_PREFIX):
            raise NoteError("note signature line does not start with '\u2014 '")
        name, sep, b64 = line[len(SIG_PREFIX) :].partition(" ")
        if not sep or not b64:
            raise NoteError("note signature line must be '\u2014 <name> <base64>'")
        _check_name(name)
        raw = _b64decode(b64, "note signature")
        if len(raw) < 5:
            raise NoteError("note signature is too short")
        sigs.append((name, raw[:4], raw[4:]))
        if len(sigs) > MAX_SIGNATURES:
            raise NoteError(f"note has more than {MAX_SIGNATURES} signatures")
    return text, sigs


def open_note(note_text: str | bytes, verifier: Verifier) -> str:
    """Return the text of a signed note after checking it carries a valid signature from ``verifier``.

    Signatures from other keys are ignored (cosignatures, rotated keys); one that claims the pinned key's name and
    ID but fails to verify rejects the note, as C2SP recommends.
    """
    if not isinstance(verifier, Verifier):
        raise NoteError("a pinned Verifier is required")
    text, sigs = _split_note(note_text)
    message = text.encode("utf-8")
    verified = False
    for name, key_id, sig in sigs:
        if name != verifier.name or key_id != verifier.key_id:
            continue
        if not verifier.verify(message, sig):
            raise NoteError(f"invalid signature from the pinned key {verifier.name}")
        verified = True
    if not verified:
        raise NoteError(f"no signature from the pinned key {verifier.name}+{verifier.key_id.hex()}")
    return text


def open_checkpoint(note_text: str | bytes, verifier: Verifier, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint against the pinned key and parse it; optionally require its origin."""
    checkpoint = Checkpoint.parse(open_note(note_text, verifier))
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"checkpoint origin {checkpoint.origin!r} is not the expected {origin!r}")
    return checkpoint
