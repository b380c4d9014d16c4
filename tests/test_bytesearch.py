"""Page-wide substring tests: whichever route they take, the answer is ``needle in data``."""

from __future__ import annotations

import sys
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middlewares.protocols import bytesearch
from middlewares.protocols.bytesearch import FALSE_LEADS, contains

PIECES = st.sampled_from([b"+", b"ld+json", b"ld", b"+json", b"l", b"d+", b"x" * 700, b"<script>", b"assword", b"\0"])
DOCUMENTS = st.lists(PIECES, max_size=40).map(b"".join)


# Every test runs with the C library's memmem (where the platform has it) and with CPython's own search.
ROUTES = (bytesearch._memmem, None)


@given(DOCUMENTS)
@settings(max_examples=300)
def test_contains_equals_a_substring_search(data: bytes) -> None:
    for memmem in ROUTES:
        with patch.object(bytesearch, "_memmem", memmem):
            for needle in (b"ld+json", b"assword", b"+json", b"\0x"):
                assert contains(data, needle) == (needle in data)
                assert contains(bytearray(data), needle) == (needle in data)
            assert contains(data, b"ld+json", rare=2) == (b"ld+json" in data)
            assert contains(data, b"+json", rare=0) == (b"+json" in data)


@pytest.mark.parametrize("memmem", ROUTES)
def test_a_common_rare_byte_falls_back_to_a_full_search(memmem: object) -> None:
    filler = b"x" * 5000
    with patch.object(bytesearch, "_memmem", memmem):
        for leads in range(FALSE_LEADS + 3):  # the needle's own byte is a lead, the first after them, or beyond
            assert contains(b"x+" * leads + filler + b"ld+json", b"ld+json", rare=2)
            assert contains(b"x+" * leads + b"ld+json" + filler, b"ld+json", rare=2)
            assert not contains(b"x+" * leads + filler + b"ld+jso", b"ld+json", rare=2)


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no memmem: `in` is used there")
def test_memmem_is_found_on_this_platform() -> None:
    """Linux, macOS and the BSDs all have it; if this fails the fast route silently went away."""
    assert bytesearch._memmem is not None
