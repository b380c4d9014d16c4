"""Merkle tree hashing, proofs and tiles against the REGISTRY.md §1.5 vectors, a recursive RFC 6962 reference, and
mutation properties (every 1-bit flip, dropped or extra hash must fail)."""

from __future__ import annotations

import hashlib
import random
import re
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optout_registry import merkle
from optout_registry.merkle import (
    EMPTY_ROOT,
    RightEdge,
    VerificationError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from optout_registry.tiles import TILE_WIDTH, TileBuilder, TileReader, tile_path, tile_width

H = bytes.fromhex

# --- §1.5 vectors ---------------------------------------------------------------------------------------------

INPUTS = [
    H(x) for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
NODES = {
    (0, 0): "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    (0, 1): "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    (0, 2): "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    (0, 3): "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    (0, 4): "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    (0, 5): "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    (0, 6): "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    (0, 7): "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    (1, 0): "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    (1, 1): "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    (1, 2): "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    (1, 3): "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    (2, 0): "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    (2, 1): "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    (3, 0): "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
LEAVES8 = [leaf_hash(x) for x in INPUTS]


def hash_at_for(leaves: list[bytes]):
    """A hash_at over an in-memory list that fails loudly if asked for an incomplete subtree."""

    def hash_at(level: int, n: int) -> bytes:
        start, end = n << level, (n + 1) << level
        assert end <= len(leaves), f"asked for incomplete subtree ({level}, {n}) of size {len(leaves)}"
        return root(leaves[start:end])

    return hash_at


def test_hasher_known_answers():
    assert root([]).hex() == EMPTY_ROOT.hex() == ROOTS[0]
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert leaf_hash(b"L123456").hex() == "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    assert node_hash(b"N123", b"N456").hex() == "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    # Domain separation: a node is not the leaf hash of its concatenated children.
    assert node_hash(b"N123", b"N456") != leaf_hash(b"N123N456")


@pytest.mark.parametrize("size", range(9))
def test_reference_tree_roots(size):
    assert root(LEAVES8[:size]).hex() == ROOTS[size]


def test_reference_tree_nodes():
    hash_at = hash_at_for(LEAVES8)
    for (level, n), want in NODES.items():
        assert hash_at(level, n).hex() == want


INCLUSION = [
    (0, 1, [], ROOTS[1]),
    (0, 8, [(0, 1), (1, 1), (2, 1)], ROOTS[8]),
    (5, 8, [(0, 4), (1, 3), (2, 0)], ROOTS[8]),
    (2, 3, [(1, 0)], ROOTS[3]),
    (1, 5, [(0, 0), (1, 1), (0, 4)], ROOTS[5]),
]


@pytest.mark.parametrize(("index", "size", "nodes", "want_root"), INCLUSION)
def test_inclusion_vectors(index, size, nodes, want_root):
    proof = inclusion_proof(index, size, hash_at_for(LEAVES8[:size]))
    assert [p.hex() for p in proof] == [NODES[n] for n in nodes]
    verify_inclusion(index, size, LEAVES8[index], proof, H(want_root))


CONSISTENCY = [
    (1, 1, []),
    (1, 8, [(0, 1), (1, 1), (2, 1)]),
    (6, 8, [(1, 2), (1, 3), (2, 0)]),
    (2, 5, [(1, 1), (0, 4)]),
    (6, 7, [(1, 2), (0, 6), (2, 0)]),
]


@pytest.mark.parametrize(("old", "new", "nodes"), CONSISTENCY)
def test_consistency_vectors(old, new, nodes):
    proof = consistency_proof(old, new, hash_at_for(LEAVES8[:new]))
    assert [p.hex() for p in proof] == [NODES[n] for n in nodes]
    verify_consistency(old, new, H(ROOTS[old]), H(ROOTS[new]), proof)


# --- draft-ietf-plants-merkle-tree-certs rolling vectors (transparency-dev testonly/vectors_test.go) --------------


def _valid_subtree(start: int, end: int) -> bool:
    if start == 0 or start == end:
        return True
    length = end - start
    return start % (1 << (length - 1).bit_length()) == 0


D130 = [leaf_hash(bytes([i])) for i in range(130)]


def test_rolling_subtree_hash_vector_with_empty_subtrees():
    """The current upstream form (REGISTRY.md's b82806ad): end from 0, start <= end, empty subtrees included."""
    h = hashlib.sha256()
    for end in range(131):
        for start in range(end + 1):
            if _valid_subtree(start, end):
                h.update(f"[{start}, {end}) {root(D130[start:end]).hex()}\n".encode())
    assert h.hexdigest() == "b82806ad4265bb151c1119c0f4db437bb4d1a1f887b3a7fba1cd4ebf552e3e81"


def test_rolling_subtree_hash_vector_non_empty():
    """The earlier upstream form (start < end only)."""
    h = hashlib.sha256()
    for end in range(1, 131):
        for start in range(end):
            if _valid_subtree(start, end):
                h.update(f"[{start}, {end}) {root(D130[start:end]).hex()}\n".encode())
    assert h.hexdigest() == "94a95384a8c69acea9b50d035a58285b3a777cb7a724005faa5e1f1e1190007f"


def test_rolling_subtree_inclusion_vector():
    """PATH(index - start, D[start:end]) for every valid subtree: exercises every proof shape up to 130 leaves
    through our hash_at-based generator (complete subtrees of an aligned subtree are complete in the big tree)."""
    full = hash_at_for(D130)
    h = hashlib.sha256()
    for end in range(1, 131):
        for start in range(end):
            if not _valid_subtree(start, end):
                continue
            for index in range(start, end):

                def sub_at(level: int, n: int, start: int = start) -> bytes:
                    return full(level, n + (start >> level))

                proof = inclusion_proof(index - start, end - start, sub_at)
                h.update((f"{index} [{start}, {end})" + "".join(" " + p.hex() for p in proof) + "\n").encode())
    assert h.hexdigest() == "ac2a8f989e44d99e399db448050ff5f19757df53cfb716aa81015d3955d8163f"


# --- recursive reference (RFC 6962 §2.1.1 / §2.1.2, written as literally as possible) ----------------------------

LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(600)]


@cache
def ref_mth(start: int, end: int) -> bytes:
    n = end - start
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return LEAVES[start]
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(ref_mth(start, start + k), ref_mth(start + k, end))


def ref_path(m: int, start: int, end: int) -> list[bytes]:
    n = end - start
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return [*ref_path(m, start, start + k), ref_mth(start + k, end)]
    return [*ref_path(m - k, start + k, end), ref_mth(start, start + k)]


def ref_subproof(m: int, start: int, end: int, b: bool) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if b else [ref_mth(start, end)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*ref_subproof(m, start, start + k, b), ref_mth(start + k, end)]
    return [*ref_subproof(m - k, start + k, end, False), ref_mth(start, start + k)]


def ref_hash_at(level: int, n: int) -> bytes:
    return ref_mth(n << level, (n + 1) << level)


def counting(size: int):
    calls = []

    def hash_at(level: int, n: int) -> bytes:
        assert (n + 1) << level <= size, "incomplete subtree requested"
        calls.append((level, n))
        return ref_hash_at(level, n)

    return hash_at, calls


def test_all_proofs_match_reference_and_verify_up_to_300():
    for size in range(1, 301):
        r = ref_mth(0, size)
        assert root(LEAVES[:size]) == r
        hash_at, calls = counting(size)
        bound = 2 * size.bit_length() + 2
        for index in range(size):
            calls.clear()
            proof = inclusion_proof(index, size, hash_at)
            assert len(calls) <= bound
            assert proof == ref_path(index, 0, size)
            verify_inclusion(index, size, LEAVES[index], proof, r)
        for old in range(1, size + 1):
            calls.clear()
            proof = consistency_proof(old, size, hash_at)
            assert len(calls) <= bound
            assert proof == ref_subproof(old, 0, size, True)
            verify_consistency(old, size, ref_mth(0, old), r, proof)


def test_proof_generation_is_logarithmic_for_huge_trees():
    calls = []

    def fake_hash_at(level: int, n: int) -> bytes:
        assert (n + 1) << level <= size
        calls.append((level, n))
        return hashlib.sha256(f"{level}/{n}".encode()).digest()

    size = 10**12 + 12345
    for index in (0, 1, size // 2, size - 2, size - 1):
        calls.clear()
        proof = inclusion_proof(index, size, fake_hash_at)
        assert len(proof) <= 41 and len(calls) <= 2 * 41
    for old in (1, 7, size // 3, size - 1):
        calls.clear()
        consistency_proof(old, size, fake_hash_at)
        assert len(calls) <= 2 * 41


# --- negative cases ---------------------------------------------------------------------------------------------


def _fails(fn, *args) -> str:
    with pytest.raises(VerificationError) as info:
        fn(*args)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def flips(proof: list[bytes]):
    """Every proof with exactly one bit flipped."""
    for i, h in enumerate(proof):
        for bit in range(len(h) * 8):
            mutated = bytearray(h)
            mutated[bit // 8] ^= 1 << (bit % 8)
            yield [*proof[:i], bytes(mutated), *proof[i + 1 :]]


def length_mutations(proof: list[bytes], extra: bytes):
    for i in range(len(proof)):
        yield proof[:i] + proof[i + 1 :]  # removed component
    for i in range(len(proof) + 1):
        yield [*proof[:i], extra, *proof[i:]]  # inserted component
    yield [extra, *proof]  # preceding garbage
    yield [*proof, extra]  # trailing garbage


def test_inclusion_probe_style_mutations():
    size, index = 8, 5
    proof = inclusion_proof(index, size, hash_at_for(LEAVES8))
    good = (index, size, LEAVES8[index], proof, H(ROOTS[8]))
    verify_inclusion(*good)
    assert "index" in _fails(verify_inclusion, size, size, LEAVES8[index], proof, H(ROOTS[8]))
    cases = [
        (index, size, LEAVES8[4], proof, H(ROOTS[8])),  # wrong leaf
        (index, size, LEAVES8[index], proof, EMPTY_ROOT),  # empty root
        (index, size, LEAVES8[index], proof, hashlib.sha256(b"random").digest()),  # random root
        (index + 1, size, LEAVES8[index], proof, H(ROOTS[8])),
        (index - 1, size, LEAVES8[index], proof, H(ROOTS[8])),
        (index ^ 2, size, LEAVES8[index], proof, H(ROOTS[8])),
        (index, size * 2, LEAVES8[index], proof, H(ROOTS[8])),
        (index, size // 2 + 2, LEAVES8[index], proof, H(ROOTS[8])),
        # (5, 7) is deliberately absent: its path has the same shape as (5, 8), so the same hashes verify; the
        # signed checkpoint binds size and root together, which is what makes that harmless.
        (index, size, LEAVES8[index], [], H(ROOTS[8])),  # truncated to nothing
        (index, size, LEAVES8[index], proof[:-1], H(ROOTS[8])),  # truncated
        (index, size, LEAVES8[index], [proof[0][:31], *proof[1:]], H(ROOTS[8])),  # short hash
        (index, size, LEAVES8[index][:31], proof, H(ROOTS[8])),
        (index, size, LEAVES8[index], proof, H(ROOTS[8])[:31]),
        (-1, size, LEAVES8[index], proof, H(ROOTS[8])),
        (index, size, LEAVES8[index], b"".join(proof), H(ROOTS[8])),  # not a sequence of hashes
        (index, size, LEAVES8[index], [*proof[:1], "x" * 32, *proof[2:]], H(ROOTS[8])),
        (True, size, LEAVES8[index], proof, H(ROOTS[8])),
    ]
    for case in cases:
        _fails(verify_inclusion, *case)
    for mutated in [*flips(proof), *length_mutations(proof, LEAVES8[0])]:
        _fails(verify_inclusion, index, size, LEAVES8[index], mutated, H(ROOTS[8]))


def test_consistency_probe_style_mutations():
    old, new = 6, 8
    proof = consistency_proof(old, new, hash_at_for(LEAVES8))
    r1, r2 = H(ROOTS[old]), H(ROOTS[new])
    verify_consistency(old, new, r1, r2, proof)
    cases = [
        (old, new, r2, r1, proof),  # swapped roots
        (old, new, r1, r1, proof),
        (old - 1, new, r1, r2, proof),  # size1-sub-1
        (old + 1, new, r1, r2, proof),
        (old, new + 1, r1, r2, proof),
        # (6, 7) is absent on purpose: same path shape as (6, 8), so the same proof checks; harmless because a
        # signed checkpoint binds the size to its root.
        (old, new * 2, r1, r2, proof),
        (new, old, r2, r1, proof),  # old > new
        (0, new, EMPTY_ROOT, r2, proof),  # from empty tree
        (0, 0, EMPTY_ROOT, LEAVES8[0], []),  # equal sizes (zero), different roots
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT]),  # equal sizes (zero), proof not empty
        (old, new, r1, r2, []),
        (old, old, r1, r1, proof),  # equal sizes need an empty proof
        (old, old, r1, r2, []),  # equal sizes, different roots
        (old, new, r1, EMPTY_ROOT, proof),
        (old, new, r1[:31], r2, proof),
    ]
    for case in cases:
        _fails(verify_consistency, *case)
    for mutated in [*flips(proof), *length_mutations(proof, LEAVES8[0])]:
        _fails(verify_consistency, old, new, r1, r2, mutated)
    verify_consistency(old, old, r1, r1, [])
    # transparency-dev probe "sizes are equal (zero) and proof is empty": accepted (wantErr false), as in Go.
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])


def test_generation_refuses_out_of_range():
    hash_at = hash_at_for(LEAVES8)
    for args in ((8, 8), (-1, 8), (0, 0)):
        with pytest.raises(ValueError):
            inclusion_proof(*args, hash_at)
    for args in ((0, 8), (9, 8), (-1, 3)):
        with pytest.raises(ValueError):
            consistency_proof(*args, hash_at)
    assert consistency_proof(8, 8, hash_at) == []


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_inclusion_mutation_fails(data):
    size = data.draw(st.integers(1, 300), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(index, size, ref_hash_at)
    r = ref_mth(0, size)
    verify_inclusion(index, size, LEAVES[index], proof, r)
    for mutated in [*flips(proof), *length_mutations(proof, LEAVES[599])]:
        with pytest.raises(VerificationError):
            verify_inclusion(index, size, LEAVES[index], mutated, r)
    for bit in range(256):  # every 1-bit flip of the leaf and of the root
        leaf = bytearray(LEAVES[index])
        leaf[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(VerificationError):
            verify_inclusion(index, size, bytes(leaf), proof, r)
        bad_root = bytearray(r)
        bad_root[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(VerificationError):
            verify_inclusion(index, size, LEAVES[index], proof, bytes(bad_root))
    for other in {index - 1, index + 1, index ^ 1, index ^ 2}:
        if 0 <= other < size and other != index:
            with pytest.raises(VerificationError):
                verify_inclusion(other, size, LEAVES[index], proof, r)
    # Doubling the size always adds a level (neighbouring sizes may share the path shape, see the probe test).
    with pytest.raises(VerificationError):
        verify_inclusion(index, size * 2, LEAVES[index], proof, r)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_consistency_mutation_fails(data):
    new = data.draw(st.integers(2, 300), label="new")
    old = data.draw(st.integers(1, new - 1), label="old")
    proof = consistency_proof(old, new, ref_hash_at)
    r1, r2 = ref_mth(0, old), ref_mth(0, new)
    verify_consistency(old, new, r1, r2, proof)
    for mutated in [*flips(proof), *length_mutations(proof, LEAVES[599])]:
        with pytest.raises(VerificationError):
            verify_consistency(old, new, r1, r2, mutated)
    for bit in range(0, 256, 3):
        for which in (0, 1):
            roots = [bytearray(r1), bytearray(r2)]
            roots[which][bit // 8] ^= 1 << (bit % 8)
            with pytest.raises(VerificationError):
                verify_consistency(old, new, bytes(roots[0]), bytes(roots[1]), proof)
    with pytest.raises(VerificationError):  # doubling the new size always adds a level
        verify_consistency(old, new * 2, r1, r2, proof)


# --- RightEdge ---------------------------------------------------------------------------------------------------


def test_right_edge_matches_root_and_reports_completed_nodes():
    edge = RightEdge()
    assert edge.root() == EMPTY_ROOT
    seen = {}
    for i in range(300):
        for level, n, h in edge.append(LEAVES[i]):
            assert h == ref_hash_at(level, n)
            assert (level, n) not in seen
            seen[(level, n)] = h
        assert edge.size == i + 1
        assert edge.root() == ref_mth(0, i + 1)
        rebuilt = RightEdge.from_hashes(edge.size, ref_hash_at)
        assert rebuilt.root() == edge.root() and rebuilt.size == edge.size
    # Exactly the complete subtrees of the final tree were reported, each once.
    assert set(seen) == {(lv, n) for lv in range(9) for n in range(300 >> lv)}
    more = RightEdge.from_hashes(300, ref_hash_at)
    more.extend(LEAVES[300:450])
    assert more.root() == ref_mth(0, 450)


def test_right_edge_hashes_are_the_compact_range():
    """What a store persists to resume appending: one perfect subtree per set bit, largest first."""
    edge = RightEdge()
    edge.extend(LEAVES[:13])
    assert edge.hashes() == [(3, 0, ref_mth(0, 8)), (2, 2, ref_mth(8, 12)), (0, 12, ref_mth(12, 13))]
    assert RightEdge.from_hashes(13, ref_hash_at).hashes() == edge.hashes()
    assert RightEdge().hashes() == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: RightEdge().append(b"short"), "leaf hash must be 32 bytes"),
        (lambda: RightEdge().append("x" * 32), "leaf hash must be bytes"),
        (lambda: RightEdge.from_hashes(-1, ref_hash_at), "size must not be negative"),
        (lambda: RightEdge.from_hashes(3, lambda level, n: b""), "stored hash (1, 0) must be 32 bytes"),
    ],
)
def test_right_edge_errors_name_the_bad_value(call, message):
    """A corrupt store must say which stored hash is wrong, or it cannot be repaired."""
    with pytest.raises(VerificationError, match=re.escape(message)):
        call()


# --- tiles ------------------------------------------------------------------------------------------------------


def test_tile_paths():
    assert tile_path(0, 1234, 5) == "tile/0/x001/234.p/5"
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(0, 0) == "tile/0/000"
    assert tile_path(1, 999, 256) == "tile/1/999"
    assert tile_path(2, 1000, 1) == "tile/2/x001/000.p/1"
    assert tile_path(-1, 12, 3) == "tile/entries/012.p/3"
    for bad in ((0, -1, None), (-2, 0, None), (0, 0, 0), (0, 0, 257)):
        with pytest.raises(ValueError):
            tile_path(*bad)


def test_tile_widths_follow_the_spec_example():
    # C2SP tlog-tiles: size 70,000 = 273 full + partial(112) level-0 tiles, 1 full + partial(17) level-1 tiles,
    # partial(1) level-2 tile.
    assert tile_width(0, 272, 70000) == 256 and tile_width(0, 273, 70000) == 112 and tile_width(0, 274, 70000) == 0
    assert tile_width(1, 0, 70000) == 256 and tile_width(1, 1, 70000) == 17
    assert tile_width(2, 0, 70000) == 1 and tile_width(3, 0, 70000) == 0


def synthetic(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(n)]


BIG = synthetic(70001)


def getter(store: dict[tuple[int, int], bytes]):
    """read_tile callback over a dict (read_tile takes level and n as two arguments)."""
    return lambda level, n: store.get((level, n))


@pytest.mark.parametrize("size", [0, 1, 2, 255, 256, 257, 511, 512, 513, 65535, 65536, 65537, 70000])
def test_tile_builder_and_reader_roots(size):
    store: dict[tuple[int, int], bytes] = {}
    builder = TileBuilder(0, getter(store))
    store.update(builder.add(BIG[:size]))
    want = root(BIG[:size])
    assert builder.size == size
    assert builder.root() == want
    reader = TileReader(size, getter(store))
    assert reader.root() == want
    for (level, n), data in store.items():
        assert len(data) == 32 * tile_width(level, n, size), (level, n)
    if size == 70000:
        widths = sorted((lv, n, len(d) // 32) for (lv, n), d in store.items() if len(d) != 32 * TILE_WIDTH)
        assert widths == [(0, 273, 112), (1, 1, 17), (2, 0, 1)]
        assert sum(1 for (lv, _), d in store.items() if lv == 0 and len(d) == 8192) == 273


def test_tile_builder_resume_in_random_batches_matches_one_shot():
    rng = random.Random(7)
    one_shot: dict[tuple[int, int], bytes] = {}
    one_shot.update(TileBuilder(0, getter(one_shot)).add(BIG[:70000]))
    store: dict[tuple[int, int], bytes] = {}
    size = 0
    roots_checked = 0
    while size < 70000:
        step = min(70000 - size, rng.choice([1, 2, 3, 255, 256, 257, 1000, 4096]))
        builder = TileBuilder(size, getter(store))  # resume from stored partial tiles only
        touched = builder.add(BIG[size : size + step])
        store.update(touched)
        size += step
        assert builder.size == size
        if rng.random() < 0.1:
            assert builder.root() == root(BIG[:size])
            roots_checked += 1
        assert builder.root() == TileReader(size, getter(store)).root()
    assert store == one_shot
    assert roots_checked > 0


def test_tile_reader_proofs_verify_for_current_and_older_sizes():
    store: dict[tuple[int, int], bytes] = {}
    builder = TileBuilder(0, getter(store))
    store.update(builder.add(BIG[:70000]))
    rng = random.Random(3)
    for size in (1, 255, 256, 257, 300, 65536, 65537, 70000):  # older sizes read prefixes of grown tiles
        reader = TileReader(size, getter(store))
        r = root(BIG[:size])
        assert reader.root() == r
        indices = {0, size - 1, size // 2, *(rng.randrange(size) for _ in range(20))}
        for index in indices:
            verify_inclusion(index, size, BIG[index], reader.inclusion_proof(index), r)
        for old in {1, size, max(1, size - 1), *(rng.randrange(1, size + 1) for _ in range(10))}:
            verify_consistency(old, size, root(BIG[:old]), r, reader.consistency_proof(old))


def test_tile_reader_missing_and_malformed_tiles():
    store: dict[tuple[int, int], bytes] = {}
    store.update(TileBuilder(0, getter(store)).add(BIG[:600]))
    reader = TileReader(600, getter(store))
    with pytest.raises(LookupError):
        reader.hash_at(0, 600)  # beyond the tree
    with pytest.raises(LookupError):
        reader.hash_at(8, 2)  # incomplete subtree
    missing = dict(store)
    del missing[(0, 1)]
    with pytest.raises(LookupError):
        TileReader(600, getter(missing)).hash_at(0, 300)
    short = dict(store)
    short[(0, 2)] = store[(0, 2)][:64]  # width 88 needed
    with pytest.raises(LookupError):
        TileReader(600, getter(short)).root()
    bad = dict(store)
    bad[(0, 0)] = store[(0, 0)][:-1]
    with pytest.raises(VerificationError):
        TileReader(600, getter(bad)).hash_at(0, 3)
    assert TileBuilder(600, getter(missing)).root() == root(BIG[:600])  # resume reads only partial tiles
    for needed in ((0, 2), (1, 0)):
        partial = dict(store)
        del partial[needed]
        with pytest.raises(LookupError):
            TileBuilder(600, getter(partial))


def test_tile_builder_rejects_bad_leaf_hashes():
    builder = TileBuilder(0, lambda level, n: None)
    with pytest.raises(ValueError):
        builder.add([b"short"])
    assert builder.root() == EMPTY_ROOT


def test_module_has_no_third_party_imports():
    """The verifier relies on merkle.py; keep it stdlib-only."""
    source = Path(merkle.__file__).read_text(encoding="utf-8")
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert all(line.split()[1].split(".")[0] in {"__future__", "hashlib", "collections"} for line in imports)
