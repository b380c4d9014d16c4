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
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

# The errors are raised here and imported from here by users; they live in errors.py so the stores can raise them.
from optout_registry.errors import ForkError, IntegrityError, InvalidRecord, RegistryError  # noqa: F401
from optout_registry.storeapi import SignFn, Store

if TYPE_CHECKING:
    from optout_registry.note import Signer, Verifier

log = logging.getLogger(__name__)

DEFAULT_URL = "optout-registry.db"
DEFAULT_PG_KEY = "optout-registry.key"
DEFAULT_BATCH = 20_000
FULL_TILE_BYTES = 8192
MAX_LEAF_BYTES = 65_535  # C2SP tlog-tiles entry bundles length-prefix entries with a uint16
ORIGIN_RE = re.compile(r"^[\x21-\x7e]+$")


class Entry(NamedTuple):
    """One logged record: its index in the log, the parsed record and the exact leaf bytes that were hashed."""

    index: int
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


@dataclass
class CheckReport:
    """Outcome of a self-check: ``problems`` empty means every check passed; ``lines`` says what was checked."""

    ok: bool = True
    size: int = 0
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def fail(self, problem: str) -> None:
        self.ok = False
        if len(self.problems) < 50:
            self.problems.append(problem)
        elif len(self.problems) == 50:
            self.problems.append("… further problems not listed")


# -- URLs and keys ----------------------------------------------------------------------------------------------


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


def _default_key_path(kind: str, target: str) -> Path:
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
    from optout_registry.note import NoteError, Signer

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


def _vkey_verifier(vkey: str) -> Verifier:
    from optout_registry.note import NoteError, Verifier

    try:
        return Verifier.from_vkey(vkey)
    except (NoteError, ValueError) as exc:
        raise RegistryError(f"not a valid verifier key ({exc}): {vkey!r}") from None


def _parse_time(value: str | datetime | None, *, end: bool = False) -> datetime | None:
    """A bound for records(): an RFC 3339 time or a date (a bare `until` date means the end of that day)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        text = value.strip()
        try:
            if len(text) == 10:
                day = datetime.strptime(text, "%Y-%m-%d")
                dt = datetime.combine(day.date(), time.max if end else time.min)
            else:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise RegistryError(f"not a date or RFC 3339 time: {value!r}") from None
    try:
        return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first representable UTC time
        raise RegistryError(f"time out of range: {value!r}") from None


def _observed(record: Mapping[str, Any]) -> datetime | None:
    try:
        return _parse_time(str(record.get("observed_at")))
    except RegistryError:
        return None


def evidence_refs(record: Mapping[str, Any]) -> list[str]:
    """Hex SHA-256 references a record makes to evidence blobs (the body, and the header block if hashed)."""
    ev = record.get("evidence")
    if not isinstance(ev, Mapping):
        return []
    refs = []
    for key in ("sha256", "headers_sha256"):
        value = ev.get(key)
        if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value):
            refs.append(value)
    return refs


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
            wanted = origin or os.environ.get("OPTOUT_REGISTRY_ORIGIN") or self._origin_from_key()
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
            from optout_registry.store_sqlite import SqliteStore

            unknown = set(options) - {"synchronous"}
            if unknown:
                raise RegistryError(f"unknown sqlite URL option(s): {', '.join(sorted(unknown))}")
            store = SqliteStore(Path(target), synchronous=options.get("synchronous", "FULL"), create=create)
        else:
            from optout_registry.store_postgres import PostgresStore

            store = PostgresStore(target, create=create)
        key_path = Path(os.fspath(key)) if key is not None else _default_key_path(kind, target)
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
        self._store.close()

    @property
    def backend(self) -> str:
        return self._store.kind

    @property
    def location(self) -> str:
        return self._store.location

    # -- keys -------------------------------------------------------------------------------------------------

    def _origin_from_key(self) -> str | None:
        """A new registry whose key file already exists takes the key's name as its origin (C2SP: SHOULD match)."""
        if self.key_path.exists():
            return read_private_key(self.key_path).name
        return None

    def _signer(self) -> Signer:
        """Load the private key, or generate it on first use; refuse a key that is not this registry's."""
        if self._signer_cache is not None:
            return self._signer_cache
        from optout_registry.note import Signer

        recorded = self._store.get_meta("vkey")
        if self.key_path.exists():
            signer = read_private_key(self.key_path)
        elif recorded is not None:
            raise RegistryError(
                f"this registry is signed by {recorded} but its private key is not at {self.key_path} (use --key)"
            )
        else:
            signer = Signer.generate(self.origin)
            try:
                write_private_key(self.key_path, signer.private_key_text())
            except FileExistsError:  # another process generated it at the same moment: use theirs
                signer = read_private_key(self.key_path)
            except OSError as exc:
                raise RegistryError(f"cannot write key file {self.key_path}: {exc.strerror or exc}") from None
            log.info("generated signing key %s for %s", self.key_path, signer.vkey())
        if signer.name != self.origin:
            raise RegistryError(
                f"key {self.key_path} is named {signer.name!r} but this log's origin is {self.origin!r}"
            )
        vkey = signer.vkey()
        stored = self._store.set_meta_default("vkey", vkey)
        if stored != vkey:
            raise RegistryError(f"key {self.key_path} ({vkey}) is not this registry's key ({stored})")
        self._signer_cache = signer
        return signer

    def can_sign(self) -> bool:
        """True if signing would work (key file present, or none recorded yet so one would be generated)."""
        return self._signer_cache is not None or self.key_path.exists() or self._store.get_meta("vkey") is None

    def _sign(self, size: int, root: bytes) -> str:
        from optout_registry.note import Checkpoint

        return self._signer().sign(Checkpoint(self.origin, size, root))

    def recorded_vkey(self) -> str | None:
        """The verifier key this registry is signed with, if it has one yet (never generates a key)."""
        return self._store.get_meta("vkey")

    @property
    def vkey(self) -> str:
        """The public verifier key (C2SP vkey). Generates the key pair on first use if none exists yet."""
        recorded = self.recorded_vkey()
        return recorded if recorded is not None else self._signer().vkey()

    # -- writing ----------------------------------------------------------------------------------------------

    def _prepare(self, records: Iterable[Mapping[str, Any]]) -> list[bytes]:
        """Validate and canonicalise every record; any refusal raises before the database is touched."""
        from optout_registry.record import RecordError, canonical

        leaves = []
        for i, rec in enumerate(records):
            try:
                if not isinstance(rec, Mapping):
                    raise RecordError(f"a record must be a JSON object, not {type(rec).__name__}")
                leaf = canonical(rec)  # validates too
            except (RecordError, ValueError, TypeError, OverflowError) as exc:
                raise InvalidRecord(f"record #{i} refused, nothing was stored: {exc}") from None
            if len(leaf) > MAX_LEAF_BYTES:
                raise InvalidRecord(
                    f"record #{i} refused, nothing was stored: {len(leaf)} bytes canonical, max {MAX_LEAF_BYTES}"
                )
            leaves.append(leaf)
        return leaves

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
        from optout_registry.merkle import leaf_hash

        leaves = self._prepare(records)
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
            hashes = [leaf_hash(leaf) for leaf in chunk] if self._store.integrates_on_append else []
            first = self._store.append(chunk, hashes, rows if start == 0 else [], sign)
            indices.extend(range(first, first + len(chunk)))
        return indices

    def add_evidence(self, body: bytes) -> str:
        """Store one evidence body; return its hex SHA-256 (what a record's evidence.sha256 holds)."""
        rows = self._evidence_rows([body])
        self._store.put_evidence(rows)
        return rows[0][0].hex()

    def integrate(self, wait: bool = True) -> bool:
        """PostgreSQL: fold sequenced entries into the tree and sign. SQLite: nothing pending, ever."""
        return self._store.integrate(self._sign, wait=wait)

    def checkpoint(self) -> str:
        """The latest signed checkpoint (a C2SP signed note), after integrating anything pending."""
        self._store.integrate(self._sign, wait=True)
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
        from optout_registry.evidence import request_timestamp

        note = self.checkpoint()
        size = self.size
        tsr, gen_time = request_timestamp(tsa_url, note.encode("utf-8"), timeout=timeout)
        self._store.add_anchor(size, tsa_url, tsr, gen_time)
        return gen_time

    # -- reading and proving ----------------------------------------------------------------------------------

    def reader(self, size: int | None = None) -> Any:
        """A tiles.TileReader for the tree at ``size`` (default: the latest checkpoint)."""
        from optout_registry.tiles import TileReader

        return TileReader(self.size if size is None else size, self._store.read_tile, cache_tiles=1024)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        from optout_registry.merkle import inclusion_proof

        reader = self.reader(size)
        if not 0 <= index < reader.size:
            raise RegistryError(f"index {index} is not in the log (size {reader.size})")
        return inclusion_proof(index, reader.size, reader.hash_at)

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        from optout_registry.merkle import consistency_proof

        reader = self.reader(new)
        if not 0 < old <= reader.size:
            raise RegistryError(f"no consistency proof from size {old} to {reader.size}")
        return consistency_proof(old, reader.size, reader.hash_at)

    def prove(self, index: int) -> str:
        """A C2SP tlog-proof for entry ``index`` against the latest checkpoint (integrating first if needed)."""
        from optout_registry.proof import format_proof

        latest = self._store.latest_checkpoint()
        if latest is None or index >= latest[0]:
            self.checkpoint()
            latest = self._store.latest_checkpoint()
        assert latest is not None
        size, _, note = latest
        return format_proof(index, self.inclusion_proof(index, size), note)

    def leaf(self, index: int) -> bytes:
        leaf = self._store.leaf(index)
        if leaf is None:
            raise RegistryError(f"no entry {index}")
        return leaf

    def evidence(self, sha256_hex: str) -> bytes | None:
        try:
            key = bytes.fromhex(sha256_hex)
        except ValueError:
            return None
        return self._store.evidence(key)

    @staticmethod
    def normalise_site(site: str) -> str:
        """The query key: the registrable domain of a host or URL (``news.example.com`` -> ``example.com``)."""
        from optout_registry.record import RecordError, registrable_domain

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
        from optout_registry.record import parse_leaf
        from optout_registry.sitemap import site_of_record

        upto = self.size if size is None else size
        lo, hi = _parse_time(since), _parse_time(until, end=True)
        if site is not None:
            key = self.normalise_site(site)
            self._store.ensure_sites()
            indexed = min(upto, self._store.sites_upto())
            indices = (i for i in self._store.site_indices(key, indexed) if i >= start)
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
            if lo is not None or hi is not None:
                seen = _observed(record)
                if seen is None or (lo is not None and seen < lo) or (hi is not None and seen > hi):
                    continue
            yield Entry(idx, record, leaf)

    # -- per-site completeness (docs/completeness.md) -------------------------------------------------------------

    def sign_note(self, text: str) -> str:
        """Sign note text with the log key (sites notes, export manifests). Needs the private key."""
        return self._signer().sign_note(text)

    def index_sites(self) -> int:
        """Bring the per-site index (site trees, site_index) up to the latest checkpoint; return the size it
        covers. PostgreSQL's integrator keeps it there already; SQLite builds it here, from the stored entries,
        instead of in the append transaction (docs/completeness.md). Exports and site queries call it."""
        self._store.ensure_sites()
        return self._store.sites_upto()

    def site_map(self, size: int | None = None) -> tuple[int, str, Any, dict[str, tuple[int, bytes]]]:
        """(size, signed checkpoint, SiteMap, {site: (count, site root)}) of the latest checkpoint, read in one
        snapshot so the site trees are exactly those of that checkpoint (an integrator may be signing meanwhile)."""
        from optout_registry.sitemap import SiteMap, fold, frontier_unpack

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
        cp_size, _root, note = latest
        if size is not None and size != cp_size:
            raise RegistryError(f"site proofs are made at the latest checkpoint ({cp_size}), not at {size}")
        if upto != cp_size:
            raise IntegrityError(f"the site trees cover {upto} entries but the latest checkpoint covers {cp_size}")
        trees: dict[str, tuple[int, bytes]] = {}
        for site, (count, packed) in stored.items():
            try:
                trees[site] = (count, fold(frontier_unpack(packed, count)))
            except ValueError as exc:
                raise IntegrityError(f"site tree of {site} is damaged: {exc}") from None
        return cp_size, note, SiteMap(trees), trees

    def sites_note(self, size: int, log_root: bytes, site_map: Any) -> str:
        """The signed ``sites`` note binding ``site_map`` to checkpoint ``size``: the stored one, or a new one.

        A note already stored for this size that commits to another map is refused: the same checkpoint with
        two site maps would be equivocation (or a tampered site index).
        """
        from optout_registry.sitemap import sites_note_body

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
        from optout_registry.merkle import EMPTY_ROOT
        from optout_registry.note import Checkpoint

        key = self.normalise_site(site)
        size, note, site_map, trees = self.site_map()
        cp = Checkpoint.parse(note.split("\n\n", 1)[0] + "\n")
        count, root = trees.get(key, (0, EMPTY_ROOT))
        indices = self._store.site_indices(key, size)
        if len(indices) != count:
            raise IntegrityError(
                f"the site index lists {len(indices)} entries of {key} up to {size}, its site tree counts {count} "
                "(site_index rows deleted or added)"
            )
        sites_note = self.sites_note(size, cp.root, site_map)
        return SiteProof(size, note, sites_note, key, count, root, site_map.prove(key), indices)

    def stats(self) -> dict[str, Any]:
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
            return self._self_check(full)

    def _self_check(self, full: bool) -> CheckReport:
        from optout_registry.note import NoteError, open_checkpoint

        rep = CheckReport()
        store = self._store
        latest = store.latest_checkpoint()
        vkey = store.get_meta("vkey")
        sequenced = store.sequenced()
        count = store.entry_count()
        if latest is None:
            integrated = 0
            if self.backend == "sqlite" and count:
                rep.fail(f"{count} entries are stored but no signed checkpoint covers them")
            if store.read_tile(0, 0) is not None:
                rep.fail("tiles are stored but no signed checkpoint covers them")
            rep.lines.append("no checkpoint yet (empty log)")
        else:
            size, root, note = latest
            integrated = size
            rep.size = size
            if vkey is None:
                rep.fail("checkpoints exist but no verifier key is recorded in the registry")
            else:
                try:
                    cp = open_checkpoint(note, _vkey_verifier(vkey), origin=self.origin)
                    if cp.size != size or cp.root != root:
                        rep.fail(f"checkpoint row {size} does not match its signed note (size {cp.size})")
                    else:
                        rep.lines.append(f"latest checkpoint (size {size}) is signed by {vkey.split('+')[0]}")
                except (NoteError, ValueError) as exc:
                    rep.fail(f"latest checkpoint (size {size}) does not verify with the registry key: {exc}")
            try:
                tree_root = self.reader(size).root()
                if tree_root != root:
                    rep.fail(
                        f"root recomputed from tiles ({tree_root.hex()[:16]}…) differs from the last signed "
                        f"checkpoint (size {size}, root {root.hex()[:16]}…)"
                    )
                else:
                    rep.lines.append("root recomputed from tiles equals the latest checkpoint")
            except (LookupError, ValueError) as exc:
                rep.fail(f"cannot recompute the root from tiles at size {size}: {exc}")
            if self.backend == "postgresql":
                isize, iroot, _nxt = store.coordination()  # type: ignore[attr-defined]
                if isize != size or iroot != root:
                    rep.fail(f"integrator head (size {isize}) differs from the latest checkpoint (size {size})")
            self._check_right_edge(size, rep)
        expected = sequenced if self.backend == "postgresql" else integrated
        if self.backend == "sqlite" and sequenced != integrated:
            rep.fail(f"entries run to index {sequenced - 1} but the last signed checkpoint covers {integrated}")
        if count != expected:
            rep.fail(f"{count} entries stored but the log says {expected} (rows deleted or inserted)")
        elif expected:
            rep.lines.append(f"{count} entries stored, indices contiguous")
        self._check_site_totals(integrated, rep)
        if full:
            self._full_check(rep, vkey)
        return rep

    def _check_site_totals(self, size: int, rep: CheckReport) -> None:
        """Cheap: the site trees cover a prefix of the signed log (all of it in PostgreSQL, up to the last
        ``ensure_sites`` in SQLite), and both their counts and the site_index rows add up to that prefix.

        Every valid record names a site, so a deleted or added site_index row, or a site tree rolled back, shows
        here at start-up (check --full then says which site)."""
        upto = self._store.sites_upto()
        total, rows = self._store.site_totals()
        if upto > size:
            rep.fail(f"site trees cover {upto} entries but the latest checkpoint covers only {size}")
        if total != upto or rows != upto:
            rep.fail(
                f"site index holds {rows} rows and the site trees count {total} entries, but they cover {upto} "
                "entries (site index rows deleted or added)"
            )
        elif upto:
            rep.lines.append(f"site index and site trees cover the first {upto} of {size} entries")

    def _check_right_edge(self, size: int, rep: CheckReport) -> None:
        """The newest entries (up to one level-0 tile) must hash to what the tiles hold: cheap, catches a lot."""
        from optout_registry.merkle import leaf_hash

        if size == 0:
            return
        n = (size - 1) // 256
        stored = self._store.read_tile(0, n)
        want = [leaf_hash(leaf) for _, leaf in self._store.leaves(n * 256, size)]
        if stored is None or stored[: len(want) * 32] != b"".join(want) or len(want) != size - n * 256:
            rep.fail(f"the newest entries ({n * 256}..{size - 1}) do not hash to the stored tile 0/{n}")

    def _full_check(self, rep: CheckReport, vkey: str | None) -> None:
        from optout_registry.merkle import leaf_hash
        from optout_registry.note import NoteError, open_checkpoint
        from optout_registry.record import RecordError, parse_leaf
        from optout_registry.tiles import TileBuilder

        store = self._store
        cps = store.checkpoints()
        verifier = _vkey_verifier(vkey) if vkey else None
        for size, root, note in cps:
            if verifier is None:
                break
            try:
                cp = open_checkpoint(note, verifier, origin=self.origin)
                if cp.size != size or cp.root != root:
                    rep.fail(f"checkpoint row {size} does not match its signed note")
            except (NoteError, ValueError) as exc:
                rep.fail(f"checkpoint {size} does not verify: {exc}")
        size = rep.size
        roots = {s: r for s, r, _ in cps if s <= size}
        builder = TileBuilder(0, lambda level, n: None)
        partial: dict[tuple[int, int], bytes] = {}
        full_seen: set[tuple[int, int]] = set()
        bad_tiles = 0
        pending: list[bytes] = []
        stops = sorted(s for s in roots if s > 0)
        stop_i = 0
        non_canonical = 0

        def flush() -> None:
            nonlocal bad_tiles
            for (level, n), data in builder.add(pending).items():
                if len(data) == FULL_TILE_BYTES:
                    partial.pop((level, n), None)
                    full_seen.add((level, n))
                    if store.read_tile(level, n) != data:
                        bad_tiles += 1
                        rep.fail(f"stored tile {level}/{n} differs from the tile recomputed from the entries")
                else:
                    partial[(level, n)] = data
            pending.clear()

        sites = _SiteReplay(self, rep, {s: r for s, r, _ in cps}, verifier)
        expect = 0
        for idx, leaf in store.leaves(0, size):
            if idx != expect:
                rep.fail(f"entry {expect} is missing")
                break
            expect += 1
            record = None
            try:
                record = parse_leaf(leaf)
            except (RecordError, ValueError) as exc:
                non_canonical += 1
                if non_canonical <= 3:
                    rep.fail(f"entry {idx} is not a valid canonical record: {exc}")
            pending.append(leaf_hash(leaf))
            sites.add(idx, record, pending[-1])
            if len(pending) >= 65_536 or (stop_i < len(stops) and expect == stops[stop_i]):
                flush()
                while stop_i < len(stops) and stops[stop_i] <= expect:
                    if stops[stop_i] == expect and builder.root() != roots[expect]:
                        rep.fail(f"signed checkpoint {expect} does not match the entries (root differs)")
                    stop_i += 1
        flush()
        if expect == size:
            for (level, n), data in partial.items():
                if store.read_tile(level, n) != data:
                    rep.fail(f"stored partial tile {level}/{n} differs from the tile recomputed from the entries")
            stored_keys = store.tile_keys()
            extra = stored_keys - full_seen - set(partial)
            if extra:
                rep.fail(f"{len(extra)} stored tile(s) are not part of the tree, e.g. {sorted(extra)[0]}")
            if builder.root() != roots.get(size, builder.root()):
                rep.fail(f"entries do not hash to the root of the latest checkpoint (size {size})")
            else:
                rep.lines.append(f"all {size} entries re-hashed; every tile and {len(roots)} checkpoint(s) match")
        if expect == size:
            sites.finish(size)
        blobs = 0
        stored_refs: set[str] = set()
        for sha, body in store.iter_evidence():
            blobs += 1
            stored_refs.add(sha.hex())
            if hashlib.sha256(body).digest() != sha:
                rep.fail(f"evidence {sha.hex()} does not hash to its key")
        rep.lines.append(f"{blobs} evidence blob(s) re-hashed")
        written = store.evidence_written()
        if written is not None and written != blobs:
            rep.fail(f"{blobs} evidence row(s) stored but {written} were written (evidence rows deleted or added)")
        absent = sites.evidence_refs - stored_refs
        if absent:
            rep.lines.append(
                f"{len(absent)} evidence blob(s) referenced by records were never stored (exports list them as "
                f"missing), e.g. {sorted(absent)[0]}"
            )


class _SiteReplay:
    """check --full's recomputation of the per-site index from the entries alone (docs/completeness.md, "How an
    auditor recomputes it"): site trees in log order, the site map at every signed sites note, and the stored
    site_tree and site_index rows compared with the result."""

    def __init__(self, reg: Registry, rep: CheckReport, roots: dict[int, bytes], verifier: Verifier | None) -> None:
        self.reg, self.rep, self.roots, self.verifier = reg, rep, roots, verifier
        self.trees: dict[str, tuple[int, list[bytes]]] = {}
        self.index: dict[str, list[int]] = {}
        self.notes = {size: (map_root, n, note) for size, map_root, n, note in reg._store.site_notes()}
        self.evidence_refs: set[str] = set()
        self.upto = reg._store.sites_upto()  # the stored trees and index are compared at this size
        self.at_upto: dict[str, tuple[int, list[bytes]]] = {}
        if 0 in self.notes:
            self._check_note(0)

    def add(self, idx: int, record: dict[str, Any] | None, lh: bytes) -> None:
        from optout_registry.sitemap import entry_hash, frontier_append, site_of_record

        if record is not None:
            self.evidence_refs.update(evidence_refs(record))
            site = site_of_record(record)
            if site is not None:
                count, frontier = self.trees.get(site, (0, []))
                frontier_append(frontier, count, entry_hash(idx, lh))
                self.trees[site] = (count + 1, frontier)
                if idx < self.upto:
                    self.index.setdefault(site, []).append(idx)
        if idx + 1 in self.notes:
            self._check_note(idx + 1)
        if idx + 1 == self.upto:
            self.at_upto = {s: (c, list(f)) for s, (c, f) in self.trees.items()}

    def _check_note(self, size: int) -> None:
        from optout_registry.note import NoteError, open_note
        from optout_registry.sitemap import SiteMap, fold, parse_sites_note

        map_root, n, note = self.notes[size]
        site_map = SiteMap({s: (c, fold(f)) for s, (c, f) in self.trees.items()})
        if site_map.root != map_root or site_map.count != n:
            self.rep.fail(f"sites note of checkpoint {size}: the site map recomputed from the entries differs")
        if self.verifier is None:
            return
        try:
            origin, nsize, log_root, nmap, nsites = parse_sites_note(open_note(note, self.verifier))
        except (NoteError, ValueError) as exc:
            self.rep.fail(f"sites note of checkpoint {size} does not verify: {exc}")
            return
        if (origin, nsize, nmap, nsites) != (self.reg.origin, size, map_root, n) or log_root != self.roots.get(size):
            self.rep.fail(f"sites note of checkpoint {size} does not match its row or the checkpoint's root")

    def finish(self, size: int) -> None:
        from optout_registry.sitemap import frontier_pack

        store, rep = self.reg._store, self.rep
        stored = store.site_trees()
        bad = 0
        if self.upto > size:
            return  # reported by the quick check
        for site in sorted(set(stored) | set(self.at_upto)):
            count, frontier = self.at_upto.get(site, (0, []))
            if stored.get(site) != (count, frontier_pack(frontier)):
                bad += 1
                have = stored.get(site, (0, b""))[0]
                rep.fail(f"site tree of {site}: stored count {have}, the entries give {count} (or the root differs)")
        got: dict[str, list[int]] = {}
        for site, idx in store.iter_site_index():
            got.setdefault(site, []).append(idx)
        for site in sorted(set(got) | set(self.index)):
            want, have_idx = self.index.get(site, []), got.get(site, [])
            if want != have_idx:
                bad += 1
                lost = sorted(set(want) - set(have_idx))
                extra = sorted(set(have_idx) - set(want))
                detail = f"{len(lost)} missing (e.g. {lost[:5]})" if lost else ""
                detail += (", " if lost and extra else "") + (f"{len(extra)} extra (e.g. {extra[:5]})" if extra else "")
                rep.fail(f"site index of {site}: {detail or 'order differs'} compared with the entries")
        if not bad:
            rep.lines.append(
                f"site index recomputed from the entries: {len(self.trees)} site(s), stored index and trees (first "
                f"{self.upto} entries) and {len(self.notes)} sites note(s) match"
            )
