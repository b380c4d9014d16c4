"""C2SP tlog-tiles storage of the Merkle tree, tile height 8 (REGISTRY.md §2.2, §6.3).

Why tiles: a full tile is an immutable 8,192-byte blob of 256 hashes, so the database holds ~1/256 of a row per
leaf, an append rewrites at most one partial tile per tile level, a proof reads O(log256 n) tiles, and an export
can ship the tiles unchanged to any tlog-tiles client. The hashes inside a tile are the bottom level of that tile's
8 tree levels; the 7 levels above are recomputed from it when a proof needs them (as Go's sumdb/tlog does).

Conventions (C2SP tlog-tiles): tile (L, N) holds tree-level 8L hashes number 256N .. 256N+255; a level-L hash is
the root of a *full* level-(L-1) tile; a partial tile holds ``floor(size / 256**L) mod 256`` hashes and is never
hashed into the level above. ``read_tile(L, N)`` callbacks return whatever is stored for (L, N) — a full tile or
the latest partial one — and readers use the prefix they need, so a proof for an older checkpoint still works
after the tile has grown.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

from .merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    VerificationError,
    consistency_proof,
    inclusion_proof,
    node_hash,
    parent_level,
    subtree_decomposition,
)

__all__ = ["TILE_HEIGHT", "TILE_WIDTH", "TileBuilder", "TileReader", "tile_path", "tile_width"]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256 hashes
FULL_TILE_BYTES = TILE_WIDTH * HASH_SIZE  # 8192

ReadTile = Callable[[int, int], "bytes | None"]


def tile_path(level: int, n: int, width: int | None = None) -> str:
    """The C2SP path of a tile: ``tile/<L>/<N>[.p/<W>]``, N in zero-padded 3-digit elements, all but the last
    prefixed with ``x`` (1234067 -> ``x001/x234/067``). ``level == -1`` gives the entry-bundle path
    ``tile/entries/...``. ``width`` None or 256 means a full tile."""
    if type(level) is not int or level < -1:
        raise ValueError(f"tile level must be an int >= -1, got {level!r}")
    if type(n) is not int or n < 0:
        raise ValueError(f"tile index must be a non-negative int, got {n!r}")
    groups = []
    rest = n
    while True:
        groups.append(f"{rest % 1000:03d}")
        rest //= 1000
        if rest == 0:
            break
    groups.reverse()
    index = "/".join([*("x" + g for g in groups[:-1]), groups[-1]])
    path = f"tile/{'entries' if level == -1 else level}/{index}"
    if width is not None and width != TILE_WIDTH:
        if type(width) is not int or not 1 <= width < TILE_WIDTH:
            raise ValueError(f"partial tile width must be 1..255, got {width!r}")
        path += f".p/{width}"
    return path


def tile_width(level: int, n: int, size: int) -> int:
    """How many hashes tile (level, n) holds in a tree of ``size`` leaves (0 if it does not exist yet)."""
    per_hash = 1 << (TILE_HEIGHT * level)  # leaves under one hash of this tile level
    hashes = size // per_hash  # complete hashes at tree level 8*level
    first = n * TILE_WIDTH
    return max(0, min(TILE_WIDTH, hashes - first))


def _perfect_root(hashes: Sequence[bytes]) -> bytes:
    """Root of a power-of-two number of hashes (a perfect subtree)."""
    level = list(hashes)
    while len(level) > 1:
        level = parent_level(level)
    return level[0]


def _split(data: bytes, width: int) -> list[bytes]:
    return [data[i * HASH_SIZE : (i + 1) * HASH_SIZE] for i in range(width)]


def _take(data: bytes | None, width: int, level: int, n: int) -> bytes:
    """The first ``width`` hashes of a stored tile, with clear errors for missing or malformed tiles."""
    if data is None:
        raise LookupError(f"tile {tile_path(level, n)} is missing (need {width} hashes)")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise VerificationError(f"tile {tile_path(level, n)} is not bytes ({type(data).__name__})")
    data = bytes(data)
    if len(data) % HASH_SIZE or len(data) > FULL_TILE_BYTES or not data:
        raise VerificationError(f"tile {tile_path(level, n)} has an invalid length of {len(data)} bytes")
    if len(data) < width * HASH_SIZE:
        raise LookupError(f"tile {tile_path(level, n)} holds {len(data) // HASH_SIZE} hashes, need {width}")
    return data[: width * HASH_SIZE]


class TileBuilder:
    """Feeds leaf hashes into tiles and says which tiles to persist.

    State is one partial tile per tile level (the right edge at tile granularity), so memory is O(log256 n) tiles
    and each leaf costs about one extra SHA-256 (hashing full tiles into the level above).
    """

    def __init__(self, size: int, read_tile: ReadTile) -> None:
        """Resume at ``size`` leaves from the stored partial tiles (one per level; nothing else is read)."""
        if type(size) is not int or size < 0:
            raise ValueError(f"size must be a non-negative int, got {size!r}")
        self.size = size
        self._partial: list[list[bytes]] = []  # per tile level: hashes of the current partial tile
        level = 0
        while size >> (TILE_HEIGHT * level):
            width = (size >> (TILE_HEIGHT * level)) % TILE_WIDTH
            n = size >> (TILE_HEIGHT * (level + 1))
            if width:
                data = _take(read_tile(level, n), width, level, n)
                self._partial.append(_split(data, width))
            else:
                self._partial.append([])
            level += 1

    def add(self, leaf_hashes: Sequence[bytes]) -> dict[tuple[int, int], bytes]:
        """Append leaf hashes; return every tile whose content changed: (level, n) -> full or partial tile bytes.

        Full tiles appear once, when they complete; partial tiles are returned with their new width and replace
        the stored partial tile of the same (level, n).
        """
        touched: set[tuple[int, int]] = set()
        full: dict[tuple[int, int], bytes] = {}
        if not all(type(h) is bytes and len(h) == HASH_SIZE for h in leaf_hashes):
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes")
        if not self._partial:
            self._partial.append([])
        # Level 0 a tile's worth at a time (this runs for every logged record: no call per leaf); a completed tile
        # is pushed up as one hash.
        pos, count = 0, len(leaf_hashes)
        while pos < count:
            tile = self._partial[0]
            take = leaf_hashes[pos : pos + TILE_WIDTH - len(tile)]
            tile.extend(take)
            n = self.size >> TILE_HEIGHT
            touched.add((0, n))
            self.size += len(take)
            pos += len(take)
            if len(tile) == TILE_WIDTH:
                full[(0, n)] = b"".join(tile)
                self._partial[0] = []
                self._push(1, _perfect_root(tile), n, touched, full)
        out: dict[tuple[int, int], bytes] = {}
        for level, n in sorted(touched):
            if (level, n) in full:
                out[(level, n)] = full[(level, n)]
            else:
                out[(level, n)] = b"".join(self._partial[level])
        return out

    def _push(
        self,
        level: int,
        h: bytes,
        index: int,
        touched: set[tuple[int, int]],
        full: dict[tuple[int, int], bytes],
    ) -> None:
        """Append hash number ``index`` at tile level ``level``; cascade full tiles upwards."""
        while True:
            if len(self._partial) <= level:
                self._partial.append([])
            tile = self._partial[level]
            tile.append(h)
            n = index >> TILE_HEIGHT
            touched.add((level, n))
            if len(tile) < TILE_WIDTH:
                return
            full[(level, n)] = b"".join(tile)
            h = _perfect_root(tile)
            self._partial[level] = []
            level += 1
            index = n

    def root(self) -> bytes:
        """MTH of the whole tree, from the partial tiles only (each is a compact range at its level)."""
        chunks: list[bytes] = []
        for level in range(len(self._partial) - 1, -1, -1):
            tile = self._partial[level]
            pos = 0
            for sub, _ in subtree_decomposition(0, len(tile)):
                chunks.append(_perfect_root(tile[pos : pos + (1 << sub)]))
                pos += 1 << sub
        if not chunks:
            return EMPTY_ROOT
        acc = chunks[-1]
        for c in reversed(chunks[:-1]):
            acc = node_hash(c, acc)
        return acc


class TileReader:
    """``hash_at`` over stored tiles for a tree of a given size, for proofs and root checks.

    Tiles are read lazily and cached (bounded), and the 8 tree levels inside a tile are computed once per tile,
    so an inclusion proof costs about one tile read and <= 255 hashes per tile level.
    """

    def __init__(self, size: int, read_tile: ReadTile, *, cache_tiles: int = 256) -> None:
        if type(size) is not int or size < 0:
            raise ValueError(f"size must be a non-negative int, got {size!r}")
        self.size = size
        self._read_tile = read_tile
        self._cache: OrderedDict[tuple[int, int], list[list[bytes]]] = OrderedDict()
        self._cache_max = max(1, cache_tiles)

    def _levels(self, tlevel: int, n: int) -> list[list[bytes]]:
        key = (tlevel, n)
        levels = self._cache.get(key)
        if levels is not None:
            self._cache.move_to_end(key)
            return levels
        width = tile_width(tlevel, n, self.size)
        if width == 0:
            raise LookupError(f"tile {tile_path(tlevel, n)} does not exist in a tree of size {self.size}")
        data = _take(self._read_tile(tlevel, n), width, tlevel, n)
        levels = [_split(data, width)]
        while len(levels) < TILE_HEIGHT and len(levels[-1]) >= 2:
            below = levels[-1]
            levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
        self._cache[key] = levels
        if len(self._cache) > self._cache_max:
            self._cache.popitem(last=False)
        return levels

    def hash_at(self, level: int, n: int) -> bytes:
        """Hash of the complete subtree at tree ``level`` (0 = leaves), position ``n``.

        Raises LookupError if the subtree is not complete at this size or a tile is missing/too short, and
        VerificationError if a stored tile is malformed.
        """
        if type(level) is not int or type(n) is not int or level < 0 or n < 0:
            raise ValueError(f"bad node ({level!r}, {n!r})")
        if (n + 1) << level > self.size:
            raise LookupError(f"node ({level}, {n}) is not a complete subtree of a tree of size {self.size}")
        tlevel, sub = divmod(level, TILE_HEIGHT)
        first = n << sub  # index of the first covered hash at tree level 8*tlevel
        tile_n, offset = divmod(first, TILE_WIDTH)
        return self._levels(tlevel, tile_n)[sub][offset >> sub]

    def root(self) -> bytes:
        """MTH of the tree of ``self.size`` leaves from the stored tiles."""
        if self.size == 0:
            return EMPTY_ROOT
        hashes = [self.hash_at(level, n) for level, n in subtree_decomposition(0, self.size)]
        acc = hashes[-1]
        for h in reversed(hashes[:-1]):
            acc = node_hash(h, acc)
        return acc

    def inclusion_proof(self, index: int) -> list[bytes]:
        """Convenience: merkle.inclusion_proof over these tiles."""
        return inclusion_proof(index, self.size, self.hash_at)

    def consistency_proof(self, old: int) -> list[bytes]:
        """Convenience: merkle.consistency_proof from ``old`` to this reader's size."""
        return consistency_proof(old, self.size, self.hash_at)
