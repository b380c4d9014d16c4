"""Substring tests over whole pages: the most expensive single step of the usage stage, which runs on every page.

CPython's ``needle in data`` runs at about 2 GB/s on HTML here: its skip rule consults a 64-bit bloom filter that
lower-case letters keep hitting, so it advances a few bytes at a time. The C library's ``memmem`` (glibc, musl,
macOS, the BSDs) runs several times faster on the same input, and finding a single byte is a ``memchr``, faster
still. :func:`contains` uses the best of these the platform offers; the answer is always ``needle in data``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

FALSE_LEADS = 16
"""Occurrences of the rare byte checked before :func:`contains` concludes it is not rare in this document."""

# Below this size the foreign call (about 0.5 µs) costs more than CPython's own search saves: on HTML the two break
# even between 1.5 KiB (short needles) and 2.5 KiB (long ones, which CPython skips through faster).
_MEMMEM_MIN_BYTES = 2048


def _load_memmem() -> Callable[[bytes, int, bytes, int], int | None] | None:
    try:
        memmem = ctypes.CDLL(None).memmem
    except (AttributeError, OSError, TypeError):  # no C library symbols (Windows), or no memmem in it
        return None
    memmem.restype = ctypes.c_void_p
    memmem.argtypes = (ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t)
    return memmem


_memmem = _load_memmem()


def _search(data: bytes, needle: bytes) -> bool:
    # c_char_p hands the C function a pointer into the bytes object itself (no copy); other buffer types would
    # need one, so they take CPython's path.
    if _memmem is not None and type(data) is bytes and len(data) >= _MEMMEM_MIN_BYTES:
        return _memmem(data, len(data), needle, len(needle)) is not None
    return needle in data


def contains(data: bytes, needle: bytes, *, rare: int | None = None) -> bool:
    """``needle in data``. ``rare`` is the index of a byte of ``needle`` that documents seldom contain (the `+`
    of `ld+json`): it is located with memchr and each occurrence checked, until :data:`FALSE_LEADS` of them
    show it is not rare here and a full search takes over, so the worst case stays about one pass."""
    if rare is None:
        return _search(data, needle)
    byte = needle[rare]
    i = data.find(byte)
    for _ in range(FALSE_LEADS):
        if i < 0:
            return False
        if i >= rare and data.startswith(needle, i - rare):
            return True
        i = data.find(byte, i + 1)
    return i >= 0 and _search(data, needle)
