"""The registry facade: one API over the SQLite and PostgreSQL stores (REGISTRY.md §6.4–§6.6).

``Registry.open(url)`` picks the backend from the URL, finds or creates the signing key, and runs a start-up
self-check (the root recomputed from the stored tiles must equal the last signed checkpoint, and the number of
stored entries must equal the tree size) so a damaged or tampered database is refused before anything is added
to it. ``append`` validates and canonicalises every record *before* touching the database, so bad input changes
nothing. Evidence bodies are stored once, keyed by SHA-256, outside the leaves.

URLs:

* ``sqlite:///abs/path/registry.db``, ``sqlite:relative.db`` or a bare path (``./optout-registry.db``).
  Options as query parameters: ``?synchronous=normal`` (default full).
* ``postgresql://user@host:5432/db?options=-csearch_path%3Dmyschema`` (psycopg/libpq URL; tables are created in
  the first schema on the search path).

Keys: the private key is read from ``key=`` (CLI ``--key``), else ``$OPTOUT_REGISTRY_KEY``, else a file beside
the registry (``<db file>.key`` for SQLite, ``./optout-registry.key`` for PostgreSQL). If that file does not exist
the first operation that must sign generates it (mode 0600). The public vkey is recorded in the registry on first
use, and a key that does not match it is refused: signing with a fresh key by accident would look like a fork.

Where the parts live: the key rules in :mod:`keys`, the start-up and ``check --full`` self-checks in
:mod:`selfcheck`, the record fields queries read (observed_at ranges, evidence references) in :mod:`recordfields`;
this module re-exports their public names, which users import from here.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

# The errors are raised here and imported from here by users; they live in errors.py so the stores can raise them.
from optout_registry.errors import ForkError, IntegrityError, InvalidRecord, RegistryError  # noqa: F401
from optout_registry.evidence import request_timestamp

# Keys and self-checks live in keys.py and selfcheck.py; their public names are still imported from here.
from optout_registry.keys import (  # noqa: F401
    DEFAULT_PG_KEY,
    default_key_path,
    load_signer,
    origin_from_key,
    read_private_key,
    write_private_key,
)
from optout_registry.merkle import EMPTY_ROOT, consistency_proof, inclusion_proof, leaf_hashes
from optout_registry.note import Checkpoint, Signer
from optout_registry.proof import format_proof
from optout_registry.record import RecordError, canonical, parse_leaf, registrable_domain
from optout_registry.recordfields import ObservedRange, evidence_refs  # noqa: F401
from optout_registry.selfcheck import FULL_TILE_BYTES, CheckReport, run_self_check  # noqa: F401
from optout_registry.sitemap import SiteMap, site_key, site_of_record, sites_note_body
from optout_registry.store_common import site_roots
from optout_registry.store_sqlite import SqliteStore
from optout_registry.storeapi import SignFn, Store
from optout_registry.tiles import TileReader

log = logging.getLogger(__name__)

DEFAULT_URL = "optout-registry.db"
DEFAULT_BATCH = 20_000
MAX_LEAF_BYTES = 65_535  # C2SP tlog-tiles entry bundles length-prefix entries with a uint16
ORIGIN_RE = re.compile(r"^[\x21-\x7e]+$")


class Entry(NamedTuple):
    """One logged record: its index in the log, the parsed record and the exact leaf bytes that were hashed."""

    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose: users read entry.index
    record: dict[str, Any]
    leaf: bytes


@dataclass
class SiteProof:
    """A site's completeness proof at one checkpoint (docs/completeness.md): everything an export carries."""

    size: int
    checkpoint: str
    sites_note: str
    site: str
    count: int
    root: bytes
    map_proof: Any  # sitemap.MapProof
    indices: list[int]
    runs: list[int]  # the lengths of the site tree's runs (its leaves), in log order


# -- URLs ------------------------------------------------------------------------------------------------------


def parse_url(url: str) -> tuple[str, str, dict[str, str]]:
    """Split a registry URL into (backend, target, options). Raises RegistryError for anything else."""
    url = url.strip()
    if not url:
        raise RegistryError("empty registry URL")
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql", url, {}
    if url.startswith("sqlite:"):
        rest = url[len("sqlite:") :]
        if rest.startswith("//"):
            rest = rest[2:]
            if not rest.startswith("/"):
                raise RegistryError(f"sqlite URL must be sqlite:///path or sqlite:relative-path, not {url!r}")
        path, _, query = rest.partition("?")
        if not path or path == "/":
            raise RegistryError(f"sqlite URL has no file path: {url!r}")
        if path.startswith("//"):  # sqlite:////abs/path (SQLAlchemy's spelling of an absolute path) is /abs/path
            path = "/" + path.lstrip("/")
        return "sqlite", unquote(path), {k.lower(): v for k, v in parse_qsl(query)}
    if "://" in url:
        scheme = urlsplit(url).scheme
        raise RegistryError(f"unsupported registry URL scheme {scheme!r} (use sqlite:///path or postgresql://…)")
    return "sqlite", url, {}


# -- the facade -------------------------------------------------------------------------------------------------


class Registry:
    """The append-only, verifiable registry of honoured opt-outs. Use ``Registry.open(url)``; close when done."""

    def __init__(
        self,
        store: Store,
        *,
        key_path: Path,
        origin: str | None = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        self._store = store
        self.key_path = key_path
        self.batch_size = max(1, batch_size)
        self._signer_cache: Signer | None = None
        stored_origin = store.get_meta("origin")
        if stored_origin is None:
            wanted = origin or os.environ.get("OPTOUT_REGISTRY_ORIGIN") or origin_from_key(self.key_path)
            wanted = wanted or f"optout-registry.local/{secrets.token_hex(6)}"
            if not ORIGIN_RE.match(wanted) or "+" in wanted:
                raise RegistryError(f"origin must be printable ASCII without spaces or '+': {wanted!r}")
            stored_origin = store.set_meta_default("origin", wanted)
        elif origin and origin != stored_origin:
            raise RegistryError(f"this registry's origin is {stored_origin!r}, not {origin!r}")
        self.origin = stored_origin

    # -- opening ----------------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str | os.PathLike[str] | None = None,
        *,
        key: str | os.PathLike[str] | None = None,
        origin: str | None = None,
        create: bool = True,
        check: bool = True,
        batch_size: int = DEFAULT_BATCH,
    ) -> Registry:
        """Open (or create) the registry at ``url`` (default: $OPTOUT_REGISTRY_URL, else ./optout-registry.db).

        ``check`` runs the quick start-up self-check and raises IntegrityError if it fails.
        """
        url_text = os.fspath(url) if url is not None else os.environ.get("OPTOUT_REGISTRY_URL") or DEFAULT_URL
        kind, target, options = parse_url(url_text)
        store: Store
        if kind == "sqlite":
            unknown = set(options) - {"synchronous"}
            if unknown:
                raise RegistryError(f"unknown sqlite URL option(s): {', '.join(sorted(unknown))}")
            store = SqliteStore(Path(target), synchronous=options.get("synchronous", "FULL"), create=create)
        else:
            from optout_registry.store_postgres import PostgresStore  # not imported by SQLite users (start-up)

            store = PostgresStore(target, create=create)
        key_path = Path(os.fspath(key)) if key is not None else default_key_path(kind, target)
        try:
            reg = cls(store, key_path=key_path, origin=origin, batch_size=batch_size)
            if check:
                report = reg.self_check(full=False)
                if not report.ok:
                    raise IntegrityError(f"start-up self-check failed: {'; '.join(report.problems[:3])}")
        except BaseException:
            store.close()
            raise
        return reg

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the store; the registry cannot be used afterwards."""
        self._store.close()

    @property
    def backend(self) -> str:
        """The store's kind, ``sqlite`` or ``postgresql``."""
        return self._store.kind

    @property
    def location(self) -> str:
        """Where the store is, for messages: the SQLite file's absolute path, or the PostgreSQL URL without password."""
        return self._store.location

    # -- keys -------------------------------------------------------------------------------------------------

    def _signer(self) -> Signer:
        """The signing key, loaded (or generated on first use) once; see :func:`keys.load_signer`."""
        if self._signer_cache is None:
            self._signer_cache = load_signer(self._store, self.key_path, self.origin)
        return self._signer_cache

    def can_sign(self) -> bool:
        """True if signing would work (key file present, or none recorded yet so one would be generated)."""
        return self._signer_cache is not None or self.key_path.exists() or self._store.get_meta("vkey") is None

    def _sign(self, size: int, root: bytes) -> str:
        return self._signer().sign(Checkpoint(self.origin, size, root))

    def _sign_sites(self, size: int, log_root: bytes, map_root: bytes, sites: int) -> str:
        """The signed ``sites`` note of checkpoint ``size``: the stores sign one with every checkpoint whose site
        trees they hold (docs/completeness.md)."""
        return self.sign_note(sites_note_body(self.origin, size, log_root, map_root, sites))

    def recorded_vkey(self) -> str | None:
        """The verifier key this registry is signed with, if it has one yet (never generates a key)."""
        return self._store.get_meta("vkey")

    @property
    def vkey(self) -> str:
        """The public verifier key (C2SP vkey). Generates the key pair on first use if none exists yet."""
        recorded = self.recorded_vkey()
        return recorded if recorded is not None else self._signer().vkey()

    # -- writing ----------------------------------------------------------------------------------------------

    def _prepare(self, records: Iterable[Mapping[str, Any]]) -> tuple[list[bytes], list[str | None] | None]:
        """Validate and canonicalise every record; any refusal raises before the database is touched. Returns the
        leaves and, where the store indexes sites as it appends (SQLite), each record's site key."""
        leaves: list[bytes] = []
        valid: list[Mapping[str, Any]] = []
        for i, rec in enumerate(records):
            try:
                if type(rec) is not dict and not isinstance(rec, Mapping):  # the ABC check costs ~0.3 µs a record
                    raise RecordError(f"a record must be a JSON object, not {type(rec).__name__}")
                leaf = canonical(rec)  # validates too
            except (RecordError, ValueError, TypeError, OverflowError) as exc:
                raise InvalidRecord(f"record #{i} refused, nothing was stored: {exc}") from None
            if len(leaf) > MAX_LEAF_BYTES:
                raise InvalidRecord(
                    f"record #{i} refused, nothing was stored: {len(leaf)} bytes canonical, max {MAX_LEAF_BYTES}"
                )
            leaves.append(leaf)
            valid.append(rec)
        return leaves, self._sites_of(valid) if self._store.integrates_on_append else None

    @staticmethod
    def _sites_of(records: list[Mapping[str, Any]]) -> list[str | None] | None:
        """Each validated record's site key: the ``target.site`` its leaf bytes hold, read from the dict the leaf
        was just written from (a decode of the leaf would cost more). The schema requires a non-empty string there."""
        return [site_key(rec["target"]["site"]) for rec in records]

    @staticmethod
    def _evidence_rows(evidence: Iterable[bytes] | Mapping[str, bytes] | None) -> list[tuple[bytes, bytes]]:
        if not evidence:
            return []
        rows: dict[bytes, bytes] = {}
        items = evidence.items() if isinstance(evidence, Mapping) else ((None, body) for body in evidence)
        for claimed, body in items:
            if not isinstance(body, (bytes, bytearray, memoryview)):
                raise InvalidRecord(f"evidence must be bytes, not {type(body).__name__}; nothing was stored")
            body = bytes(body)
            digest = hashlib.sha256(body).digest()
            if claimed is not None and claimed.lower() != digest.hex():
                raise InvalidRecord(f"evidence keyed {claimed} hashes to {digest.hex()}; nothing was stored")
            rows[digest] = body
        return list(rows.items())

    def append(
        self, records: Iterable[Mapping[str, Any]], evidence: Iterable[bytes] | Mapping[str, bytes] | None = None
    ) -> list[int]:
        """Log records; return their indices once they are durable.

        ``evidence`` are raw bodies (robots.txt, header blocks) the records reference by SHA-256; each is stored
        once. SQLite: each batch of ``batch_size`` records is one transaction with its own signed checkpoint.
        PostgreSQL: the records are sequenced; ``checkpoint()`` integrates them into the tree.
        """
        leaves, sites = self._prepare(records)
        rows = self._evidence_rows(evidence)
        if not leaves:
            if rows:
                self._store.put_evidence(rows)
            return []
        sign: SignFn = self._sign
        if self._store.integrates_on_append:
            self._signer()  # fail on a key problem before anything is written
        indices: list[int] = []
        for start in range(0, len(leaves), self.batch_size):
            chunk = leaves[start : start + self.batch_size]
            hashes = leaf_hashes(chunk) if self._store.integrates_on_append else []
            chunk_sites = None if sites is None else sites[start : start + self.batch_size]
            first = self._store.append(chunk, hashes, rows if start == 0 else [], sign, chunk_sites, self._sign_sites)
            indices.extend(range(first, first + len(chunk)))
        return indices

    def add_evidence(self, body: bytes) -> str:
        """Store one evidence body; return its hex SHA-256 (what a record's evidence.sha256 holds)."""
        rows = self._evidence_rows([body])
        self._store.put_evidence(rows)
        return rows[0][0].hex()

    def integrate(self, wait: bool = True) -> bool:
        """PostgreSQL: fold sequenced entries into the tree and sign. SQLite: nothing pending, ever."""
        return self._store.integrate(self._sign, wait=wait, sign_sites=self._sign_sites)

    def checkpoint(self) -> str:
        """The latest signed checkpoint (a C2SP signed note), after integrating anything pending."""
        self._store.integrate(self._sign, wait=True, sign_sites=self._sign_sites)
        latest = self._store.latest_checkpoint()
        if latest is None:  # pragma: no cover - integrate always leaves one
            raise IntegrityError("no checkpoint after integration")
        return latest[2]

    def latest(self) -> tuple[int, bytes, str] | None:
        """(size, root, signed note) of the latest checkpoint, without integrating or signing anything."""
        return self._store.latest_checkpoint()

    @property
    def size(self) -> int:
        """Size of the tree covered by the latest signed checkpoint."""
        latest = self._store.latest_checkpoint()
        return 0 if latest is None else latest[0]

    @property
    def appended(self) -> int:
        """Entries appended so far, integrated or not: the index the next append cannot come before."""
        return self._store.sequenced()

    def anchor(self, tsa_url: str, timeout: float = 10.0) -> str:
        """Timestamp the latest checkpoint with an RFC 3161 TSA and store the token. Returns its genTime."""
        note = self.checkpoint()
        size = self.size
        tsr, gen_time = request_timestamp(tsa_url, note.encode("utf-8"), timeout=timeout)
        self._store.add_anchor(size, tsa_url, tsr, gen_time)
        return gen_time

    # -- reading and proving ----------------------------------------------------------------------------------

    def reader(self, size: int | None = None) -> Any:
        """A tiles.TileReader for the tree at ``size`` (default: the latest checkpoint)."""
        return TileReader(self.size if size is None else size, self._store.read_tile, cache_tiles=1024)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The Merkle audit path of entry ``index`` in the tree of ``size`` entries (default: the latest checkpoint);
        RegistryError when the entry is not in that tree."""
        reader = self.reader(size)
        if not 0 <= index < reader.size:
            raise RegistryError(f"index {index} is not in the log (size {reader.size})")
        return inclusion_proof(index, reader.size, reader.hash_at)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """The proof that the tree of ``old`` entries is a prefix of the tree at ``new`` (default: the latest
        checkpoint): what shows that the log only ever grew."""
        reader = self.reader(new)
        if not 0 < old <= reader.size:
            raise RegistryError(f"no consistency proof from size {old} to {reader.size}")
        return consistency_proof(old, reader.size, reader.hash_at)

    def prove(self, index: int) -> str:
        """A C2SP tlog-proof for entry ``index`` against the latest checkpoint (integrating first if needed)."""
        latest = self._store.latest_checkpoint()
        if latest is None or index >= latest[0]:
            self.checkpoint()
            latest = self._store.latest_checkpoint()
        assert latest is not None
        size, _, note = latest
        return format_proof(index, self.inclusion_proof(index, size), note)

    def leaf(self, index: int) -> bytes:
        """The stored bytes of entry ``index``, whose hash is its Merkle leaf; RegistryError when there is no such
        entry."""
        leaf = self._store.leaf(index)
        if leaf is None:
            raise RegistryError(f"no entry {index}")
        return leaf

    def evidence(self, sha256_hex: str) -> bytes | None:
        """Stored evidence by the SHA-256 (hex) a record cites; None when it is unknown, not stored or not hex."""
        try:
            key = bytes.fromhex(sha256_hex)
        except ValueError:
            return None
        return self._store.evidence(key)

    @staticmethod
    def normalise_site(site: str) -> str:
        """The query key: the registrable domain of a host or URL (``news.example.com`` -> ``example.com``)."""
        text = site.strip().lower()
        try:
            return registrable_domain(text) or text
        except (RecordError, ValueError):
            return text

    def records(
        self,
        site: str | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        *,
        size: int | None = None,
        start: int = 0,
    ) -> Iterator[Entry]:
        """Records covered by the latest checkpoint (or ``size``), optionally for one site and observed_at range,
        from index ``start`` on (a resumed crawl looks only at what its interrupted run may have written).

        The per-site index is written with the entries (docs/completeness.md) and never trusted here — every
        hit is re-checked against the record itself; ``export_bundle`` also checks it against the site tree.
        """
        upto = self.size if size is None else size
        observed = ObservedRange.parse(since, until)
        if site is not None:
            key = self.normalise_site(site)
            self._store.ensure_sites()
            indexed = min(upto, self._store.sites_upto())
            indices = (i for run in self._store.site_runs(key, indexed) for i in run if start <= i < indexed)
            # Entries appended since the index was brought up to date are read directly (then re-checked below).
            candidates: Iterable[tuple[int, bytes]] = itertools.chain(
                ((i, self.leaf(i)) for i in indices), self._store.leaves(max(start, indexed), upto)
            )
        else:
            key = None
            candidates = self._store.leaves(start, upto)
        for idx, leaf in candidates:
            record = parse_leaf(leaf)
            if key is not None and site_of_record(record) != key:
                continue
            if observed.admits(record):
                yield Entry(idx, record, leaf)

    # -- per-site completeness (docs/completeness.md) -------------------------------------------------------------

    def sign_note(self, text: str) -> str:
        """Sign note text with the log key (sites notes, export manifests). Needs the private key."""
        return self._signer().sign_note(text)

    def index_sites(self) -> int:
        """Bring the per-site index (site trees and runs) up to the latest checkpoint; return the size it covers.
        Appends keep it there already (SQLite's append transaction, PostgreSQL's integrator); this catches up a
        registry written before it existed, from the stored entries. Exports and site queries call it."""
        self._store.ensure_sites()
        return self._store.sites_upto()

    def site_map(self, size: int | None = None) -> tuple[int, str, Any, dict[str, tuple[int, bytes]]]:
        """(size, signed checkpoint, SiteMap, {site: (count, site root)}) of the latest checkpoint, read in one
        snapshot so the site trees are exactly those of that checkpoint (an integrator may be signing meanwhile)."""
        for _attempt in range(5):  # another process may append between catching up and reading
            self._store.ensure_sites()
            with self._store.snapshot():
                latest = self._store.latest_checkpoint()
                upto = self._store.sites_upto()
                stored = self._store.site_trees()
            if latest is None:
                raise RegistryError("nothing has been signed in this registry yet")
            if upto == latest[0]:
                break
        assert latest is not None  # the loop runs at least once and raises on None
        cp_size, _root, note = latest
        if size is not None and size != cp_size:
            raise RegistryError(f"site proofs are made at the latest checkpoint ({cp_size}), not at {size}")
        if upto != cp_size:
            raise IntegrityError(f"the site trees cover {upto} entries but the latest checkpoint covers {cp_size}")
        trees = site_roots(stored)
        return cp_size, note, SiteMap(trees), trees

    def sites_note(self, size: int, log_root: bytes, site_map: Any) -> str:
        """The signed ``sites`` note binding ``site_map`` to checkpoint ``size``: the one stored when the checkpoint
        was signed, or, for a checkpoint signed while the site trees were behind the log, a new one.

        A note stored for this size that commits to another map than ``site_map`` (rebuilt from the stored site
        trees) is refused: the same checkpoint with two site maps would be equivocation, a tampered site index, or
        a writer whose incrementally kept map went wrong.
        """
        stored = self._store.site_note_at(size)
        if stored is None:
            note = self.sign_note(sites_note_body(self.origin, size, log_root, site_map.root, site_map.count))
            self._store.add_site_note(size, site_map.root, site_map.count, note)
            stored = self._store.site_note_at(size)
            assert stored is not None
        if stored[1] != site_map.root or stored[2] != site_map.count:
            raise IntegrityError(
                f"the signed sites note of checkpoint {size} commits to another site map than the stored site trees "
                "give (site index rewritten?)"
            )
        return stored[3]

    def prove_site(self, site: str) -> SiteProof:
        """The completeness proof of ``site`` at the latest checkpoint: its (count, site-tree root), map path,
        signed sites note, and its entries' log indices (checked against the site tree before returning)."""
        key = self.normalise_site(site)
        size, note, site_map, trees = self.site_map()
        cp = Checkpoint.parse(note.split("\n\n", 1)[0] + "\n")
        count, root = trees.get(key, (0, EMPTY_ROOT))
        runs = self._store.site_runs(key, size)
        indices = [idx for run in runs for idx in run]
        if len(indices) != count:
            raise IntegrityError(
                f"the site index lists {len(indices)} entries of {key} up to {size}, its site tree counts {count} "
                "(site_run rows deleted or added)"
            )
        sites_note = self.sites_note(size, cp.root, site_map)
        return SiteProof(size, note, sites_note, key, count, root, site_map.prove(key), indices, [len(r) for r in runs])

    def stats(self) -> dict[str, Any]:
        """What ``optout registry stats`` reports: the backend and key, the tree size and root, entry, pending and
        checkpoint counts, and the evidence stored."""
        latest = self._store.latest_checkpoint()
        count, size = self._store.evidence_stats()
        out: dict[str, Any] = {
            "backend": self.backend,
            "location": self.location,
            "origin": self.origin,
            "vkey": self._store.get_meta("vkey"),
            "key_file": str(Path(self.key_path).absolute()),
            "tree_size": 0 if latest is None else latest[0],
            "root": None if latest is None else latest[1].hex(),
            "entries": self._store.entry_count(),
            "pending": max(0, self._store.sequenced() - (0 if latest is None else latest[0])),
            "checkpoints": len(self._store.checkpoints()),
            "anchors": len(self._store.anchors()),
            "evidence_blobs": count,
            "evidence_bytes": size,
        }
        if self.backend == "sqlite":
            path = Path(self.location)
            out["file_bytes"] = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
        return out

    # -- self-checks ------------------------------------------------------------------------------------------

    def self_check(self, full: bool = False) -> CheckReport:
        """Check the stored log against its own signed checkpoints.

        Quick (start-up): the latest checkpoint verifies with the recorded vkey; the root recomputed from the
        tiles equals it; the entry count equals the tree size (plus pending entries in PostgreSQL); the last
        level-0 tile matches the hashes of the newest entries. Full: additionally re-hashes every entry into a
        fresh tree, compares every stored tile with it, checks every stored checkpoint's signature and root, and
        re-hashes every evidence blob. The database owner can defeat any local check by rewriting everything and
        re-signing; only checkpoints kept by others (exports, anchors) catch that.
        """
        with self._store.snapshot():
            return run_self_check(self._store, self.origin, full)
