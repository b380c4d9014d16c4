"""The append-only, verifiable registry of honoured opt-outs (REGISTRY.md).

``from optout_registry import Registry``. Every name is imported when first asked for: the offline verifier
(:mod:`optout_registry.verify`) must not load the storage code, and ``python -m optout_registry.verify`` must find
its module not yet imported by the package (runpy warns otherwise).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optout_registry.merkle import VerificationError
    from optout_registry.note import Checkpoint, NoteError, Signer, Verifier
    from optout_registry.record import SCHEMA_VERSION, RecordError
    from optout_registry.registry import Registry
    from optout_registry.verify import VerifyReport, verify_export

_WHERE = {
    "SCHEMA_VERSION": "record",
    "Checkpoint": "note",
    "NoteError": "note",
    "RecordError": "record",
    "Registry": "registry",
    "Signer": "note",
    "VerificationError": "merkle",
    "Verifier": "note",
    "VerifyReport": "verify",
    "verify_export": "verify",
}

__all__ = [
    "SCHEMA_VERSION",
    "Checkpoint",
    "NoteError",
    "RecordError",
    "Registry",
    "Signer",
    "VerificationError",
    "Verifier",
    "VerifyReport",
    "verify_export",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'optout_registry' has no attribute {name!r}")
    return getattr(import_module(f"optout_registry.{module}"), name)
