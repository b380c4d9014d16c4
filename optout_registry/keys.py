"""The registry's signing key: where it is looked for, how it is created (mode 0600, never overwritten) and why a
key is refused (REGISTRY.md §6.4).

Kept apart from the facade because the rules are about files and trust, not about the log: the private key is
read from ``key=`` (CLI ``--key``), else ``$OPTOUT_REGISTRY_KEY``, else a file beside the registry
(``<db file>.key`` for SQLite, ``./optout-registry.key`` for PostgreSQL). The first operation that must sign
generates it if it does not exist. The public vkey is recorded in the registry on first use, and a key that does
not match it is refused: signing with a fresh key by accident would look like a fork.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from optout_registry.errors import RegistryError
from optout_registry.note import NoteError, Signer, Verifier
from optout_registry.storeapi import Store

log = logging.getLogger(__name__)

DEFAULT_PG_KEY = "optout-registry.key"


def default_key_path(kind: str, target: str) -> Path:
    """Where the key of a ``kind`` ("sqlite" or "postgresql") registry at ``target`` is when none is named."""
    env = os.environ.get("OPTOUT_REGISTRY_KEY")
    if env:
        return Path(env)
    if kind == "sqlite":
        p = Path(target)
        return p.with_name(p.name + ".key")
    return Path(DEFAULT_PG_KEY)


def write_private_key(path: Path, text: str) -> None:
    """Create the key file with mode 0600 atomically (O_EXCL: never overwrite an existing key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text.strip() + "\n")
    os.chmod(path, 0o600)  # umask cannot widen it, but be explicit


def read_private_key(path: Path) -> Signer:
    """The signer in the key file at ``path``; warns when others may read it, raises RegistryError in one line."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryError(f"cannot read key file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("key file %s is readable by other users; chmod 600 it", path)
    try:
        return Signer.from_private_key_text(text)
    except (NoteError, ValueError) as exc:
        raise RegistryError(f"key file {path} does not hold a signed-note private key: {exc}") from None


def vkey_verifier(vkey: str) -> Verifier:
    """The verifier of a C2SP vkey, or RegistryError (a recorded vkey that does not parse is a damaged registry)."""
    try:
        return Verifier.from_vkey(vkey)
    except (NoteError, ValueError) as exc:
        raise RegistryError(f"not a valid verifier key ({exc}): {vkey!r}") from None


def origin_from_key(key_path: Path) -> str | None:
    """A new registry whose key file already exists takes the key's name as its origin (C2SP: SHOULD match)."""
    if key_path.exists():
        return read_private_key(key_path).name
    return None


def load_signer(store: Store, key_path: Path, origin: str) -> Signer:
    """Load the private key, or generate it on first use; refuse a key that is not this registry's (another
    name than the log's origin, or another key than the vkey recorded in ``store``, which this records first)."""
    recorded = store.get_meta("vkey")
    if key_path.exists():
        signer = read_private_key(key_path)
    elif recorded is not None:
        raise RegistryError(
            f"this registry is signed by {recorded} but its private key is not at {key_path} (use --key)"
        )
    else:
        signer = Signer.generate(origin)
        try:
            write_private_key(key_path, signer.private_key_text())
        except FileExistsError:  # another process generated it at the same moment: use theirs
            signer = read_private_key(key_path)
        except OSError as exc:
            raise RegistryError(f"cannot write key file {key_path}: {exc.strerror or exc}") from None
        log.info("generated signing key %s for %s", key_path, signer.vkey())
    if signer.name != origin:
        raise RegistryError(f"key {key_path} is named {signer.name!r} but this log's origin is {origin!r}")
    vkey = signer.vkey()
    stored = store.set_meta_default("vkey", vkey)
    if stored != vkey:
        raise RegistryError(f"key {key_path} ({vkey}) is not this registry's key ({stored})")
    return signer
