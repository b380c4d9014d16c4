"""The append-only, verifiable registry of honoured opt-outs (REGISTRY.md).

``from optout_registry import Registry``; the offline verifier is :mod:`optout_registry.verify`, which does not
import the storage code.
"""

from optout_registry.registry import Registry

__all__ = ["Registry"]
