"""RFC 6962 / RFC 9162 Merkle tree hashing, proof generation and proof verification (REGISTRY.md §1).

The registry's tamper evidence rests on three facts a third party can check with nothing but SHA-256: a record is
at index i of a tree of size n (inclusion proof), a later tree extends an earlier one (consistency proof), and the
root is what the log signed (note.py). Everything here is therefore written to be boringly exact:

* hashing is the Certificate-Transparency hashing with 0x00 / 0x01 domain separation, so trees interoperate with
  tlog-tiles clients, Tessera ``fsck`` and the transparency-dev test vectors;
* proofs are generated from a ``hash_at(level, n)`` callback that is only ever asked for *complete* subtrees, so
  any storage that keeps complete subtrees (tiles, a stored-hash table, an in-memory list) can serve proofs with
  O(log n) reads — the one incomplete ("ephemeral") node on the right border is recomputed from complete ones;
* verification follows transparency-dev/merkle ``proof/verify.go`` (inner/border decomposition) with an exact
  proof-length check, and rejects the edge cases other implementations got wrong (consistency from size 0, proofs
  that do not consume the whole tree, hashes that are not 32 bytes).

This module imports nothing but the standard library so that the offline verifier can rely on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "NODE_PREFIX",
    "RightEdge",
    "VerificationError",
    "consistency_proof",
    "fold_right",
    "inclusion_proof",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "parent_level",
    "root",
    "subtree_decomposition",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"  # RFC 6962 interior node; public for the one loop that must inline node_hash

HashAt = Callable[[int, int], bytes]


class VerificationError(ValueError):
    """A proof, signature or stored tree does not check out; the message says which check failed."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the leaf hash of RFC 6962 §2.1 (prefix = second-preimage protection)."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): an interior node of RFC 6962 §2.1."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def leaf_hashes(leaves: Iterable[bytes]) -> list[bytes]:
    """``leaf_hash`` of each leaf, in one comprehension: appends and integrations hash every logged record, and a
    call per leaf was a measurable part of that."""
    sha256 = hashlib.sha256
    return [sha256(_LEAF_PREFIX + leaf).digest() for leaf in leaves]


def parent_level(hashes: Sequence[bytes]) -> list[bytes]:
    """``node_hash`` of each pair of an even-length level (one level up a perfect subtree), without a call per node:
    a full tile costs 255 of them, about one per logged record."""
    sha256 = hashlib.sha256
    return [sha256(NODE_PREFIX + left + right).digest() for left, right in zip(hashes[::2], hashes[1::2], strict=True)]


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Hash a compact range (perfect subtrees, largest first) into the root of the range it covers.

    RFC 6962 splits at the largest power of two below n, so the leftmost perfect subtree is always the left child
    and the remaining range the right child: folding from the right reproduces MTH exactly.
    """
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes; the empty tree hashes to SHA-256(b"").

    Bottom-up, promoting an unpaired right-most node unchanged: this yields the same shape as the recursive
    RFC definition (split at the largest power of two < n) without recursion.
    """
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def subtree_decomposition(begin: int, end: int) -> list[tuple[int, int]]:
    """The complete subtrees (level, n) covering [begin, end), largest first, for an aligned ``begin``.

    ``begin`` must be a multiple of the power of two >= end - begin (true for every range RFC 6962's recursion
    produces and for [0, size)). The chunks are the binary digits of the range length, high to low.
    """
    out: list[tuple[int, int]] = []
    pos = begin
    remaining = end - begin
    while remaining:
        level = remaining.bit_length() - 1
        out.append((level, pos >> level))
        pos += 1 << level
        remaining -= 1 << level
    return out


def _range_hash(begin: int, end: int, hash_at: HashAt) -> bytes:
    """MTH of leaves [begin, end) from complete subtrees only (at most log2(end - begin) + 1 lookups)."""
    return fold_right([hash_at(level, n) for level, n in subtree_decomposition(begin, end)])


def _largest_power_of_two_below(n: int) -> int:
    """k with k < n <= 2k (n >= 2): RFC 6962's split point."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(index: int, size: int, hash_at: HashAt) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(index, D[0:size]), leaf sibling first.

    Only complete subtrees are requested from ``hash_at``; at most one sibling (on the right border) is
    incomplete and is rebuilt from its compact range, so the cost is O(log size) lookups.
    """
    _check_int("index", index)
    _check_int("size", size)
    if not 0 <= index < size:
        raise ValueError(f"inclusion proof: index {index} is outside a tree of size {size}")
    path: list[bytes] = []
    begin, end = 0, size  # current subtree [begin, end); begin is aligned
    m = index
    while end - begin > 1:
        k = _largest_power_of_two_below(end - begin)
        if m < k:
            path.append(_range_hash(begin + k, end, hash_at))
            end = begin + k
        else:
            path.append(hash_at(k.bit_length() - 1, begin >> (k.bit_length() - 1)))
            begin += k
            m -= k
    path.reverse()
    return path


def consistency_proof(old: int, new: int, hash_at: HashAt) -> list[bytes]:
    """RFC 6962 §2.1.2 PROOF(old, D[0:new]); [] when old == new.

    ``old == 0`` is refused: a consistency proof from the empty tree is meaningless (transparency-dev rejects it
    when verifying, so generating one would only hide a caller bug).
    """
    _check_int("old", old)
    _check_int("new", new)
    if old <= 0 or old > new:
        raise ValueError(f"consistency proof: need 0 < old <= new, got old={old} new={new}")
    out: list[bytes] = []
    begin, end = 0, new
    m = old - begin
    complete = True  # RFC's flag b: the old tree is still the whole current subtree's left part
    while True:
        n = end - begin
        if m == n:
            if not complete:
                out.append(_range_hash(begin, end, hash_at))
            break
        k = _largest_power_of_two_below(n)
        if m <= k:
            out.append(_range_hash(begin + k, end, hash_at))
            end = begin + k
        else:
            level = k.bit_length() - 1
            out.append(hash_at(level, begin >> level))
            begin += k
            m -= k
            complete = False
    out.reverse()
    return out


# ---------------------------------------------------------------------------------------------------------------
# Verification (RFC 9162 §2.1.3.2 / §2.1.4.2 in transparency-dev's bit-decomposition form)


def _check_int(name: str, value: object) -> None:
    if type(value) is not int:
        raise VerificationError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise VerificationError(f"{name} must not be negative, got {value}")


def _check_hash(name: str, value: object) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise VerificationError(f"{name} must be bytes, got {type(value).__name__}")
    value = bytes(value)
    if len(value) != HASH_SIZE:
        raise VerificationError(f"{name} must be {HASH_SIZE} bytes, got {len(value)}")
    return value


def _check_proof(proof: Sequence[bytes]) -> list[bytes]:
    if isinstance(proof, (bytes, bytearray, str)):
        raise VerificationError("proof must be a sequence of hashes, not a single string")
    return [_check_hash(f"proof[{i}]", p) for i, p in enumerate(proof)]


def _decompose(index: int, size: int) -> tuple[int, int]:
    """(inner, border): proof hashes below and above the point where paths to ``index`` and ``size-1`` meet."""
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        seed = node_hash(seed, h) if (index >> i) & 1 == 0 else node_hash(h, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    """Like _chain_inner but only through left siblings: rebuilds the *old* root in a consistency proof."""
    for i, h in enumerate(proof):
        if (index >> i) & 1:
            seed = node_hash(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = node_hash(h, seed)
    return seed


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise VerificationError unless ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree ``root``/``size``.

    ``leaf`` is the leaf *hash* (leaf_hash(data)), as in RFC 9162 and tlog-proof.
    """
    _check_int("index", index)
    _check_int("size", size)
    leaf = _check_hash("leaf hash", leaf)
    root = _check_hash("root", root)
    hashes = _check_proof(proof)
    if index >= size:
        raise VerificationError(f"inclusion: index {index} is not below tree size {size}")
    inner, border = _decompose(index, size)
    if len(hashes) != inner + border:
        raise VerificationError(
            f"inclusion: proof has {len(hashes)} hashes, a tree of size {size} needs {inner + border} for index {index}"
        )
    got = _chain_border_right(_chain_inner(leaf, hashes[:inner], index), hashes[inner:])
    if got != root:
        raise VerificationError(f"inclusion: proof for index {index} does not lead to the root of size {size}")


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Raise VerificationError unless ``proof`` shows the tree (old, old_root) is a prefix of (new, new_root).

    Check order and edge cases follow transparency-dev ``VerifyConsistency`` and its probes: equal sizes (including
    0 -> 0) need an empty proof and equal roots; a proof from size 0 to a larger tree is refused as meaningless;
    different sizes need a non-empty proof of exactly the expected length.
    """
    _check_int("old size", old)
    _check_int("new size", new)
    old_root = _check_hash("old root", old_root)
    new_root = _check_hash("new root", new_root)
    hashes = _check_proof(proof)
    if new < old:
        raise VerificationError(f"consistency: new size {new} is smaller than old size {old}")
    if old == new:
        if hashes:
            raise VerificationError("consistency: sizes are equal but the proof is not empty")
        if old_root != new_root:
            raise VerificationError(f"consistency: two different roots for the same size {old}")
        return
    if old == 0:
        raise VerificationError("consistency: a proof from the empty tree is meaningless")
    if not hashes:
        raise VerificationError("consistency: empty proof for different sizes")
    inner, border = _decompose(old - 1, new)
    shift = (old & -old).bit_length() - 1  # trailing zeros of old
    inner -= shift
    # The proof starts with the root of the subtree of size 2^shift, unless the old tree is exactly that subtree.
    if old == 1 << shift:
        seed, start = old_root, 0
    else:
        seed, start = hashes[0], 1
    if len(hashes) != start + inner + border:
        raise VerificationError(
            f"consistency: proof has {len(hashes)} hashes, {start + inner + border} expected for {old} -> {new}"
        )
    rest = hashes[start:]
    mask = (old - 1) >> shift
    got_old = _chain_border_right(_chain_inner_right(seed, rest[:inner], mask), rest[inner:])
    if got_old != old_root:
        raise VerificationError(f"consistency: proof does not rebuild the old root of size {old}")
    got_new = _chain_border_right(_chain_inner(seed, rest[:inner], mask), rest[inner:])
    if got_new != new_root:
        raise VerificationError(f"consistency: proof does not lead to the new root of size {new}")


# ---------------------------------------------------------------------------------------------------------------
# Compact range of the right edge


class RightEdge:
    """The right edge of a growing tree as a compact range: one perfect-subtree hash per set bit of ``size``.

    This is all a log needs in memory to append and compute roots (O(log n) memory, O(1) amortised hashing per
    append). ``append`` reports every subtree it completes, so a stored-hash backend can persist them and later
    serve proofs through ``hash_at``.
    """

    __slots__ = ("_nodes", "size")

    def __init__(self) -> None:
        self.size = 0
        self._nodes: list[tuple[int, bytes]] = []  # (level, hash), levels strictly decreasing

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf *hash*; return the completed (level, n, hash) nodes, the leaf itself first."""
        leaf = _check_hash("leaf hash", leaf)
        index = self.size
        done = [(0, index, leaf)]
        nodes = self._nodes
        level, h = 0, leaf
        while nodes and nodes[-1][0] == level:
            _, left = nodes.pop()
            h = node_hash(left, h)
            level += 1
            done.append((level, index >> level, h))
        nodes.append((level, h))
        self.size = index + 1
        return done

    def extend(self, leaves: Sequence[bytes]) -> list[tuple[int, int, bytes]]:
        """Append several leaf hashes; return all completed nodes in order."""
        out: list[tuple[int, int, bytes]] = []
        for leaf in leaves:
            out.extend(self.append(leaf))
        return out

    def root(self) -> bytes:
        """MTH of everything appended so far."""
        if not self._nodes:
            return EMPTY_ROOT
        return fold_right([h for _, h in self._nodes])

    def hashes(self) -> list[tuple[int, int, bytes]]:
        """The compact range as (level, n, hash), largest subtree first."""
        out = []
        pos = 0
        for level, h in self._nodes:
            out.append((level, pos >> level, h))
            pos += 1 << level
        return out

    @classmethod
    def from_hashes(cls, size: int, hash_at: HashAt) -> RightEdge:
        """Rebuild the right edge of a stored tree of ``size`` leaves from its complete subtrees."""
        _check_int("size", size)
        edge = cls()
        for level, n in subtree_decomposition(0, size):
            edge._nodes.append((level, _check_hash(f"stored hash ({level}, {n})", hash_at(level, n))))
        edge.size = size
        return edge
