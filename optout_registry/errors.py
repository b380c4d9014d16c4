"""The registry's errors, in a module of their own so that the stores, the evidence fetcher and the facade can all
raise them without importing one another. ``optout_registry.registry`` re-exports them: that is where users
import them from."""

from __future__ import annotations


class RegistryError(Exception):
    """A problem the user can act on (bad URL, missing key, unreachable database). One line, no traceback."""


class InvalidRecord(RegistryError, ValueError):
    """A record was refused before anything was stored."""


class IntegrityError(RegistryError):
    """The stored log is not what its signed checkpoints say: tampering, corruption or a lost write."""


class ForkError(IntegrityError):
    """A second tree head for the same log would not be consistent with the first; refused."""
