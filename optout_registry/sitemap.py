"""Per-site completeness (docs/completeness.md): one RFC 6962 tree per site, a sparse map over all of them, and
the two signed notes that bind them (and an export's manifest) to a checkpoint.

Why: an inclusion proof shows a record is in the log; it cannot show that an export holds *every* record about a
site. Here each site has its own append-only tree over its entries in log order, and one signed ``sites`` note per
checkpoint commits to every site tree at once through a compressed sparse Merkle tree keyed by SHA-256(site). A
site's export then carries (count, site-tree root) and a map proof; the verifier recomputes the site tree from the
exported records and any missing, extra, reordered or foreign record changes that root.

Hashes (all SHA-256, each with its own one-byte domain prefix, none shared with RFC 6962's 0x00/0x01 leaves):

* entry of a site tree: ``0x03 || uint64be(log index) || leaf hash`` (the index binds log order and position);
  the site tree is an RFC 6962 tree whose leaf hashes are these entry hashes (interior nodes: 0x01 as usual);
* site leaf of the map: ``0x04 || uint64be(count) || site-tree root || site`` (UTF-8);
* map node branching at bit ``depth`` of the key: ``0x05 || uint8(depth) || left || right``; a subtree holding one
  site is that site's leaf; the empty map is SHA-256("").

Only the standard library and the other pure modules: the offline verifier relies on it.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .merkle import EMPTY_ROOT, VerificationError, node_hash

__all__ = [
    "EMPTY_MAP",
    "MapProof",
    "SiteMap",
    "entry_hash",
    "fold",
    "frontier_append",
    "frontier_pack",
    "frontier_unpack",
    "manifest_note_body",
    "parse_manifest_note",
    "parse_sites_note",
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


ENTRY_INPUT = struct.Struct(">BQ32s").pack
"""``ENTRY_INPUT(ENTRY_PREFIX, index, leaf_hash)``: the bytes an entry hash is taken of, packed in one call (the
append path hashes one per record; concatenating ``int.to_bytes`` pieces took twice as long). ``32s`` pads or cuts
other lengths silently, so a leaf hash must be checked to be 32 bytes first, as :func:`entry_hash` does."""
ENTRY_PREFIX = 3


def entry_hash(index: int, leaf_hash: bytes) -> bytes:
    if len(leaf_hash) != 32:
        raise ValueError(f"a leaf hash is 32 bytes, not {len(leaf_hash)}")
    return hashlib.sha256(ENTRY_INPUT(ENTRY_PREFIX, index, leaf_hash)).digest()


def site_leaf(site: str, count: int, root: bytes) -> bytes:
    return hashlib.sha256(b"\x04" + count.to_bytes(8, "big") + root + site.encode("utf-8")).digest()


def _map_node(depth: int, left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x05" + bytes((depth,)) + left + right).digest()


def _key(site: str) -> int:
    return int.from_bytes(hashlib.sha256(site.encode("utf-8")).digest(), "big")


def _bit(key: int, depth: int) -> int:
    return (key >> (255 - depth)) & 1


# -- a site tree's frontier: one perfect-subtree hash per set bit of its count, largest first ---------------------


def frontier_append(frontier: list[bytes], count: int, h: bytes) -> None:
    """Append entry hash ``h`` to the site tree of ``count`` entries whose frontier is ``frontier`` (in place)."""
    while count & 1:
        h = node_hash(frontier.pop(), h)
        count >>= 1
    frontier.append(h)


def fold(frontier: Sequence[bytes]) -> bytes:
    """The RFC 6962 root of a tree from its frontier (the left-most perfect subtree is always a left child)."""
    if not frontier:
        return EMPTY_ROOT
    acc = frontier[-1]
    for h in reversed(frontier[:-1]):
        acc = node_hash(h, acc)
    return acc


def frontier_pack(frontier: Sequence[bytes]) -> bytes:
    return b"".join(frontier)


def frontier_unpack(data: bytes, count: int) -> list[bytes]:
    if len(data) != 32 * count.bit_count():
        raise ValueError(f"frontier of {len(data)} bytes does not fit a tree of {count} entries")
    return [data[i : i + 32] for i in range(0, len(data), 32)]


def tree_root(entries: Iterable[tuple[int, bytes]]) -> tuple[int, bytes]:
    """(count, root) of the site tree over ``(log index, leaf hash)`` pairs, taken in the order given."""
    frontier: list[bytes] = []
    count = 0
    for index, lh in entries:
        frontier_append(frontier, count, entry_hash(index, lh))
        count += 1
    return count, fold(frontier)


# -- the site map -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapProof:
    """A site's path in the map, leaf to root: (depth, sibling) per branching node. For an absent site,
    ``neighbour`` is the (site, count, root) whose leaf the path ends at (None when the map is empty)."""

    path: tuple[tuple[int, bytes], ...]
    neighbour: tuple[str, int, bytes] | None = None


class SiteMap:
    """The compressed sparse Merkle tree over ``{site: (count, site-tree root)}``, built in memory: O(sites) hashes
    for the root and again for one site's proof (the siblings on its path cover every other site)."""

    def __init__(self, sites: Mapping[str, tuple[int, bytes]]) -> None:
        items = sorted((_key(s), s, c, r) for s, (c, r) in sites.items())
        self._keys = [k for k, _, _, _ in items]
        self._items = items
        self.count = len(items)
        self.root = self._hash(0, len(items)) if items else EMPTY_MAP

    def _split(self, lo: int, hi: int) -> tuple[int, int]:
        """(branching depth, first index on the 1 side) of the sorted keys [lo, hi), hi - lo >= 2."""
        a, b = self._keys[lo], self._keys[hi - 1]
        depth = 256 - (a ^ b).bit_length()
        prefix = (a >> (256 - depth)) << (256 - depth) if depth else 0
        return depth, bisect.bisect_left(self._keys, prefix | (1 << (255 - depth)), lo, hi)

    def _hash(self, lo: int, hi: int) -> bytes:
        """Hash of the subtree over sorted keys [lo, hi): iterative (no recursion limit), and a child's hash is
        dropped once its parent is made, so memory stays O(depth) whatever the number of sites."""
        done: dict[tuple[int, int], bytes] = {}
        stack: list[tuple[int, int, bool]] = [(lo, hi, False)]
        while stack:
            a, b, ready = stack.pop()
            if b - a == 1:
                _, site, count, root = self._items[a]
                done[(a, b)] = site_leaf(site, count, root)
                continue
            depth, mid = self._split(a, b)
            if ready:
                done[(a, b)] = _map_node(depth, done.pop((a, mid)), done.pop((mid, b)))
            else:
                stack += [(a, b, True), (a, mid, False), (mid, b, False)]
        return done[(lo, hi)]

    def prove(self, site: str) -> MapProof:
        """The path for ``site`` (present or not); siblings leaf first."""
        if not self._items:
            return MapProof(())
        key = _key(site)
        lo, hi = 0, len(self._items)
        path: list[tuple[int, bytes]] = []
        while hi - lo > 1:
            depth, mid = self._split(lo, hi)
            if _bit(key, depth):
                path.append((depth, self._hash(lo, mid)))
                lo = mid
            else:
                path.append((depth, self._hash(mid, hi)))
                hi = mid
        _, found, count, root = self._items[lo]
        path.reverse()
        return MapProof(tuple(path), None if found == site else (found, count, root))


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
    site: str, count: int, root: bytes, proof: MapProof, entries: Sequence[tuple[int, bytes]]
) -> dict[str, Any]:
    """``site-proof.json``: the site's (count, root), its map path, and every entry of its tree as
    [log index, base64 leaf hash] (so a date-limited export still shows what it leaves out)."""
    doc: dict[str, Any] = {
        "site": site,
        "count": count,
        "root": _b64(root),
        "map_path": [[d, _b64(h)] for d, h in proof.path],
        "entries": [[i, _b64(h)] for i, h in entries],
    }
    if proof.neighbour is not None:
        other, ocount, oroot = proof.neighbour
        doc["absent_neighbour"] = {"site": other, "count": ocount, "root": _b64(oroot)}
    return doc


def parse_proof_json(doc: object) -> tuple[str, int, bytes, MapProof, list[tuple[int, bytes]]]:
    """Strictly parse ``site-proof.json`` (already JSON-decoded); raises VerificationError."""
    if not isinstance(doc, dict) or set(doc) - {"site", "count", "root", "map_path", "entries", "absent_neighbour"}:
        raise VerificationError("site-proof.json: not an object with the expected fields")
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
    return site, count, root, MapProof(tuple(steps), neighbour), parsed
