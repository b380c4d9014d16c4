"""Per-site completeness (docs/completeness.md): one RFC 6962 tree per site, a sparse map over all of them, and
the two signed notes that bind them (and an export's manifest) to a checkpoint.

Why: an inclusion proof shows a record is in the log; it cannot show that an export holds *every* record about a
site. Here each site has its own append-only tree over its entries in log order, and one signed ``sites`` note per
checkpoint commits to every site tree at once through a compressed sparse Merkle tree keyed by SHA-256(site). A
site's export then carries (count, site-tree root) and a map proof; the verifier recomputes the site tree from the
exported records and any missing, extra, reordered or foreign record changes that root.

Hashes (all SHA-256, each with its own one-byte domain prefix, none shared with RFC 6962's 0x00/0x01 leaves):

* run of a site tree: ``0x03 || uint64be(log index) || leaf hash || …`` over the site's entries between two
  consecutive checkpoints (the indices bind log order and position); the site tree is an RFC 6962 tree whose leaf
  hashes are these run hashes, one per checkpoint that added entries of the site (interior nodes: 0x01 as usual).
  A leaf per run rather than per entry halves the hashing an append does; a tree whose runs hold one entry each
  is the earlier per-entry format, so exports made before verify unchanged;
* site leaf of the map: ``0x04 || uint64be(count) || site-tree root || site`` (UTF-8);
* map node branching at bit ``depth`` of the key: ``0x05 || uint8(depth) || left || right``; a subtree holding one
  site is that site's leaf; the empty map is SHA-256("").

Only the standard library and the other pure modules: the offline verifier relies on it.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .merkle import EMPTY_ROOT, VerificationError, fold_right, node_hash

__all__ = [
    "EMPTY_MAP",
    "MapProof",
    "SiteMap",
    "fold",
    "frontier_append",
    "frontier_pack",
    "frontier_unpack",
    "leaf_runs",
    "manifest_note_body",
    "parse_manifest_note",
    "parse_sites_note",
    "run_hash",
    "site_key",
    "site_leaf",
    "site_of_record",
    "sites_note_body",
    "tree_root",
    "verify_site",
]

EMPTY_MAP = EMPTY_ROOT
SITES_NOTE_HEADER = "optout-registry/sites/v1"
MANIFEST_NOTE_HEADER = "optout-registry/export-manifest/v1"
_MAX_U64 = (1 << 64) - 1


def site_key(site: str) -> str:
    """The index key of a site: ``target.site`` as logged with ASCII letters lower-cased (nothing else changes,
    so an auditor in any language gets the same key)."""
    if site.isascii():
        return site.lower()
    return site.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")


def site_of_record(record: Mapping[str, object]) -> str | None:
    """The site a parsed record belongs to, or None (a record without ``target.site`` is in no site tree)."""
    target = record.get("target")
    site = target.get("site") if isinstance(target, Mapping) else None
    return site_key(site) if isinstance(site, str) and site else None


_SITE_LEAF_HEAD = struct.Struct(">BQ32s").pack  # 0x04 || uint64be(count) || root, in one call
RUN_PREFIX = b"\x03"
_NODE_INPUT = struct.Struct(">BB32s32s").pack  # 0x05 || uint8(depth) || left || right: a map node's input


def run_hash(entries: Sequence[tuple[int, bytes]]) -> bytes:
    """The site-tree leaf of one run: ``0x03 || uint64be(index) || leaf hash`` for each of its entries."""
    if not entries:
        raise ValueError("a run holds at least one entry")
    parts = [RUN_PREFIX]
    for index, lh in entries:
        if len(lh) != 32 or not 0 <= index <= _MAX_U64:
            raise ValueError(f"an entry is a log index and a 32-byte leaf hash, not ({index}, {len(lh)} bytes)")
        parts.append(index.to_bytes(8, "big") + lh)
    return hashlib.sha256(b"".join(parts)).digest()


def site_leaf(site: str, count: int, root: bytes) -> bytes:
    if len(root) != 32:
        raise ValueError(f"a site-tree root is 32 bytes, not {len(root)}")
    return hashlib.sha256(_SITE_LEAF_HEAD(4, count, root) + site.encode("utf-8")).digest()


def _map_node(depth: int, left: bytes, right: bytes) -> bytes:
    """Children are SHA-256 digests or 32-byte proof siblings (``_walk`` checks their length)."""
    return hashlib.sha256(_NODE_INPUT(5, depth, left, right)).digest()


def _key(site: str) -> int:
    return int.from_bytes(hashlib.sha256(site.encode("utf-8")).digest(), "big")


def _bit(key: int, depth: int) -> int:
    return (key >> (255 - depth)) & 1


# -- a site tree's frontier: one perfect-subtree hash per set bit of its count, largest first ---------------------


def frontier_append(frontier: list[bytes], count: int, h: bytes) -> None:
    """Append leaf hash ``h`` to the tree of ``count`` leaves whose frontier is ``frontier`` (in place)."""
    while count & 1:
        h = node_hash(frontier.pop(), h)
        count >>= 1
    frontier.append(h)


def fold(frontier: Sequence[bytes]) -> bytes:
    """The RFC 6962 root of a site tree from its frontier (its compact range); the empty tree's for none."""
    return fold_right(frontier) if frontier else EMPTY_ROOT


def frontier_pack(frontier: Sequence[bytes]) -> bytes:
    return b"".join(frontier)


def frontier_unpack(data: bytes, leaves: int) -> list[bytes]:
    if len(data) != 32 * leaves.bit_count():
        raise ValueError(f"frontier of {len(data)} bytes does not fit a tree of {leaves} runs")
    return [data[i : i + 32] for i in range(0, len(data), 32)]


def leaf_runs(entries: Sequence[tuple[int, bytes]], runs: Sequence[int] | None) -> list[Sequence[tuple[int, bytes]]]:
    """``entries`` cut into runs of the given lengths (None: one entry a run, the per-entry format of exports made
    before runs); ValueError when the lengths are not positive or do not add up to the entries."""
    if runs is None:
        return [entries[i : i + 1] for i in range(len(entries))]
    if any(type(n) is not int or n < 1 for n in runs) or sum(runs) != len(entries):
        raise ValueError(f"run lengths must be positive and add up to the {len(entries)} entries")
    out, at = [], 0
    for n in runs:
        out.append(entries[at : at + n])
        at += n
    return out


def tree_root(entries: Sequence[tuple[int, bytes]], runs: Sequence[int] | None = None) -> tuple[int, bytes]:
    """(count, root) of the site tree over ``(log index, leaf hash)`` pairs, taken in the order given and cut into
    runs of the lengths ``runs`` (see :func:`leaf_runs`)."""
    frontier: list[bytes] = []
    for n, run in enumerate(leaf_runs(entries, runs)):
        frontier_append(frontier, n, run_hash(run))
    return len(entries), fold(frontier)


# -- the site map -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapProof:
    """A site's path in the map, leaf to root: (depth, sibling) per branching node. For an absent site,
    ``neighbour`` is the (site, count, root) whose leaf the path ends at (None when the map is empty)."""

    path: tuple[tuple[int, bytes], ...]
    neighbour: tuple[str, int, bytes] | None = None


class SiteMap:
    """The compressed sparse Merkle tree over ``{site: (count, site-tree root)}``, kept as a crit-bit trie in
    memory so that a checkpoint's map costs only what its batch changed.

    Why a trie: each checkpoint signs the map (``sites.txt``), and a batch touches few sites of many. Building the
    map from scratch is O(sites) hashes; :meth:`update` re-hashes only the paths of the sites it is given, so a
    batch costs about (sites touched) x (1 leaf + a few nodes), and a proof is one walk, O(log sites).

    Internal nodes are lists ``[depth, left, right, hash or None, parent]`` (None: to be re-hashed), leaves tuples
    ``(key, site, count, root, leaf hash)``, and ``_parent`` maps each site to the node above its leaf (None at
    the top): a site already in the map is updated without hashing its key or walking down to it, and marking its
    ancestors stops at the first one already marked. Plain containers, as this runs for every site a batch
    touches. Memory: about 0.5 KB a site, its name and root included (bench_completeness.py --map).
    """

    def __init__(self, sites: Mapping[str, tuple[int, bytes]] | None = None) -> None:
        self._top: list[Any] | tuple[Any, ...] | None = None
        self._parent: dict[str, list[Any] | None] = {}
        if sites:
            self._build(sorted(_leaf(s, c, r) for s, (c, r) in sites.items()))

    @property
    def count(self) -> int:
        """The number of sites in the map."""
        return len(self._parent)

    def _adopt(self, node: list[Any]) -> None:
        """Point ``node``'s children back at it."""
        for child in (node[1], node[2]):
            if type(child) is list:
                child[4] = node
            else:
                self._parent[child[1]] = node

    def _build(self, leaves: list[tuple[Any, ...]]) -> None:
        """The trie over leaves sorted by key, in one pass: the branching depth between neighbours decides how
        far the pending left halves close (the trie is the Cartesian tree of those depths)."""
        pending: list[tuple[int, Any]] = []
        node: Any = leaves[0]
        self._parent[node[1]] = None
        for prev, leaf in itertools.pairwise(leaves):
            depth = 256 - (prev[0] ^ leaf[0]).bit_length()
            while pending and pending[-1][0] > depth:
                d, left = pending.pop()
                node = [d, left, node, _map_node(d, _hash_of(left), _hash_of(node)), None]
                self._adopt(node)
            pending.append((depth, node))
            node = leaf
        while pending:
            d, left = pending.pop()
            node = [d, left, node, _map_node(d, _hash_of(left), _hash_of(node)), None]
            self._adopt(node)
        self._top = node

    @property
    def root(self) -> bytes:
        top = self._top
        if top is None:
            return EMPTY_MAP
        if type(top) is list and top[3] is None:
            _rehash(top)
        return _hash_of(top)

    def update(self, sites: Mapping[str, tuple[int, bytes]]) -> None:
        """Set the (count, root) of each site given (a new site is inserted); hashes are redone on :attr:`root`."""
        where = self._parent
        for site, (count, root) in sites.items():
            if site not in where:
                self._insert(_leaf(site, count, root))
                continue
            parent = where[site]
            h = site_leaf(site, count, root)
            if parent is None:
                self._top = (self._top[0], site, count, root, h)  # type: ignore[index]
                continue
            slot = 1 if type(parent[1]) is tuple and parent[1][1] == site else 2
            parent[slot] = (parent[slot][0], site, count, root, h)
            while parent is not None and parent[3] is not None:
                parent[3] = None
                parent = parent[4]

    def _insert(self, leaf: tuple[Any, ...]) -> None:
        key, site = leaf[0], leaf[1]
        node = self._top
        if node is None:
            self._top, self._parent[site] = leaf, None
            return
        while type(node) is list:  # to the nearest site: where the new key first differs from it is its branch
            node = node[2] if (key >> (255 - node[0])) & 1 else node[1]
        depth = 256 - (key ^ node[0]).bit_length()
        parent: list[Any] | None = None
        slot = 0
        node = self._top
        while type(node) is list and node[0] < depth:
            parent = node
            slot = 2 if (key >> (255 - node[0])) & 1 else 1
            node = node[slot]
        branch = [depth, node, leaf, None, parent] if (key >> (255 - depth)) & 1 else [depth, leaf, node, None, parent]
        self._adopt(branch)
        if parent is None:
            self._top = branch
        else:
            parent[slot] = branch
        while parent is not None and parent[3] is not None:
            parent[3] = None
            parent = parent[4]

    def prove(self, site: str) -> MapProof:
        """The path for ``site`` (present or not); siblings leaf first."""
        if self._top is None:
            return MapProof(())
        key = _key(site)
        node = self._top
        path: list[tuple[int, bytes]] = []
        while type(node) is list:
            if (key >> (255 - node[0])) & 1:
                path.append((node[0], _hash_of(node[1])))
                node = node[2]
            else:
                path.append((node[0], _hash_of(node[2])))
                node = node[1]
        assert node is not None
        path.reverse()
        _, found, count, root, _ = node
        return MapProof(tuple(path), None if found == site else (found, count, root))


def _leaf(site: str, count: int, root: bytes) -> tuple[Any, ...]:
    return (_key(site), site, count, root, site_leaf(site, count, root))


def _hash_of(node: Any) -> bytes:
    h: bytes = node[3] if type(node) is list else node[4]
    return h


def _rehash(node: list[Any]) -> bytes:
    """Recompute the hashes marked None at and below ``node``, children first. The recursion is as deep as the
    trie, about log2(sites) and at most 256 (keys are SHA-256 digests)."""
    left, right = node[1], node[2]
    lh = left[4] if type(left) is not list else left[3] if left[3] is not None else _rehash(left)
    rh = right[4] if type(right) is not list else right[3] if right[3] is not None else _rehash(right)
    h: bytes = _map_node(node[0], lh, rh)
    node[3] = h
    return h


def _walk(key: int, leaf: bytes, path: Sequence[tuple[int, bytes]]) -> bytes:
    h = leaf
    previous = 256
    for depth, sibling in path:
        if type(depth) is not int or not 0 <= depth < previous:
            raise VerificationError("site map proof: depths must decrease from leaf to root, within 0..255")
        if len(sibling) != 32:
            raise VerificationError("site map proof: a sibling is not 32 bytes")
        h = _map_node(depth, sibling, h) if _bit(key, depth) else _map_node(depth, h, sibling)
        previous = depth
    return h


def verify_site(site: str, count: int, root: bytes, proof: MapProof, map_root: bytes) -> None:
    """Check that the map with root ``map_root`` gives ``site`` exactly (count, root); count 0 means absent."""
    if not 0 <= count <= _MAX_U64 or len(root) != 32:
        raise VerificationError("site proof: count or root out of range")
    if proof.neighbour is None and count > 0:
        if _walk(_key(site), site_leaf(site, count, root), proof.path) != map_root:
            raise VerificationError(f"site proof: ({count}, root) of {site} does not lead to the signed site map")
        return
    if count != 0 or root != EMPTY_ROOT:
        raise VerificationError(f"site proof: {site} is claimed absent but with a count or root")
    if proof.neighbour is None:
        if proof.path or map_root != EMPTY_MAP:
            raise VerificationError("site proof: an empty-map proof for a map that is not empty")
        return
    other, ocount, oroot = proof.neighbour
    if other == site or ocount < 1:
        raise VerificationError("site proof: the neighbour of an absent site must be another site with records")
    okey, key = _key(other), _key(site)
    first_difference = 256 - (okey ^ key).bit_length()
    if any(depth == first_difference for depth, _ in proof.path):
        raise VerificationError(f"site proof: the path of {other} does not exclude {site}")
    if _walk(okey, site_leaf(other, ocount, oroot), proof.path) != map_root:
        raise VerificationError(f"site proof: the neighbour {other} does not lead to the signed site map")


# -- signed notes -------------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64_32(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32 or _b64(raw) != text:
        raise VerificationError(f"{what} is not a canonical base64 32-byte hash")
    return raw


def _decimal(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0") or len(text) > 19:
        raise VerificationError(f"{what} {text[:40]!r} is not a decimal without leading zeros")
    return int(text)


def sites_note_body(origin: str, size: int, log_root: bytes, map_root: bytes, sites: int) -> str:
    """The text of ``sites.txt``: binds the site map (and how many sites it holds) to one checkpoint.

    Its first line is not an origin, so it can never be mistaken for a checkpoint (whose second line is a size).
    """
    return f"{SITES_NOTE_HEADER}\n{origin}\n{size}\n{_b64(log_root)}\n{_b64(map_root)}\n{sites}\n"


def parse_sites_note(text: str) -> tuple[str, int, bytes, bytes, int]:
    """(origin, log size, log root, map root, number of sites) from verified sites note text."""
    lines = text.split("\n")
    if len(lines) != 7 or lines[0] != SITES_NOTE_HEADER or lines[6] != "":
        raise VerificationError(f"sites note: expected '{SITES_NOTE_HEADER}' and 5 lines")
    size = _decimal(lines[2], "sites note size")
    sites = _decimal(lines[5], "sites note number of sites")
    return lines[1], size, _b64_32(lines[3], "sites note log root"), _b64_32(lines[4], "sites note map root"), sites


def manifest_note_body(origin: str, size: int, manifest: bytes) -> str:
    """The text of ``manifest.note``: the log key's signature over the export manifest's SHA-256."""
    return f"{MANIFEST_NOTE_HEADER}\n{origin}\n{size}\n{hashlib.sha256(manifest).hexdigest()}\n"


def parse_manifest_note(text: str) -> tuple[str, int, str]:
    """(origin, checkpoint size, manifest SHA-256 hex) from verified manifest note text."""
    lines = text.split("\n")
    if len(lines) != 5 or lines[0] != MANIFEST_NOTE_HEADER or lines[4] != "":
        raise VerificationError(f"manifest note: expected '{MANIFEST_NOTE_HEADER}' and 3 lines")
    digest = lines[3]
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise VerificationError("manifest note: the digest is not 64 lower-case hex digits")
    return lines[1], _decimal(lines[2], "manifest note size"), digest


def proof_json(
    site: str,
    count: int,
    root: bytes,
    proof: MapProof,
    entries: Sequence[tuple[int, bytes]],
    runs: Sequence[int],
) -> dict[str, Any]:
    """``site-proof.json``: the site's (count, root), its map path, every entry of its tree as [log index, base64
    leaf hash] (so a date-limited export still shows what it leaves out) and the lengths of its runs."""
    doc: dict[str, Any] = {
        "site": site,
        "count": count,
        "root": _b64(root),
        "map_path": [[d, _b64(h)] for d, h in proof.path],
        "entries": [[i, _b64(h)] for i, h in entries],
        "runs": list(runs),
    }
    if proof.neighbour is not None:
        other, ocount, oroot = proof.neighbour
        doc["absent_neighbour"] = {"site": other, "count": ocount, "root": _b64(oroot)}
    return doc


def parse_proof_json(
    doc: object,
) -> tuple[str, int, bytes, MapProof, list[tuple[int, bytes]], list[int] | None]:
    """Strictly parse ``site-proof.json`` (already JSON-decoded); raises VerificationError. The run lengths are
    None for an export made before runs (one entry a run)."""
    fields = {"site", "count", "root", "map_path", "entries", "runs", "absent_neighbour"}
    if not isinstance(doc, dict) or set(doc) - fields:
        raise VerificationError("site-proof.json: not an object with the expected fields")
    runs = doc.get("runs")
    if runs is not None and not isinstance(runs, list):
        raise VerificationError("site-proof.json: 'runs' must be a list of run lengths")
    site, count, path, entries = doc.get("site"), doc.get("count"), doc.get("map_path"), doc.get("entries")
    if not isinstance(site, str) or type(count) is not int or not 0 <= count <= _MAX_U64:
        raise VerificationError("site-proof.json: 'site' must be a string and 'count' a non-negative integer")
    if not isinstance(path, list) or not isinstance(entries, list) or len(path) > 256:
        raise VerificationError("site-proof.json: 'map_path' and 'entries' must be lists")
    root = _b64_32(str(doc.get("root")), "site-proof.json root")
    steps = []
    for step in path:
        if not (isinstance(step, list) and len(step) == 2 and type(step[0]) is int and isinstance(step[1], str)):
            raise VerificationError("site-proof.json: a map_path step is not [depth, base64 hash]")
        steps.append((step[0], _b64_32(step[1], "site-proof.json map_path hash")))
    parsed = []
    for e in entries:
        if not (isinstance(e, list) and len(e) == 2 and type(e[0]) is int and e[0] >= 0 and isinstance(e[1], str)):
            raise VerificationError("site-proof.json: an entry is not [log index, base64 leaf hash]")
        parsed.append((e[0], _b64_32(e[1], "site-proof.json entry hash")))
    neighbour = None
    if "absent_neighbour" in doc:
        n = doc["absent_neighbour"]
        if not (isinstance(n, dict) and isinstance(n.get("site"), str) and type(n.get("count")) is int):
            raise VerificationError("site-proof.json: 'absent_neighbour' must be {site, count, root}")
        neighbour = (n["site"], n["count"], _b64_32(str(n.get("root")), "site-proof.json neighbour root"))
    if runs is not None:
        try:
            leaf_runs(parsed, runs)
        except ValueError as exc:
            raise VerificationError(f"site-proof.json: {exc}") from None
    return site, count, root, MapProof(tuple(steps), neighbour), parsed, runs
