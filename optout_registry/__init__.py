"""The append-only, verifiable registry of honoured opt-outs (REGISTRY.md).

``from optout_registry import Registry``. The offline verifier (:mod:`optout_registry.verify`) must not load the
storage code, so the storage side is imported only when ``Registry`` is first asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optout_registry.merkle import VerificationError
from optout_registry.note import Checkpoint, NoteError, Signer, Verifier
from optout_registry.record import SCHEMA_VERSION, RecordError
from optout_registry.verify import VerifyReport, verify_export

if TYPE_CHECKING:
    from optout_registry.registry import Registry

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
    if name == "Registry":
        from optout_registry.registry import Registry

        return Registry
    raise AttributeError(f"module 'optout_registry' has no attribute {name!r}")
