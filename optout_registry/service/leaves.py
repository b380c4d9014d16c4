"""The site a leaf is about, read from the leaf itself: the check that serves a record only to its own domain.

The service re-reads ``target.site`` from every leaf it serves rather than trusting its derived index, so this
runs for every record of every page and reads only the bytes it needs (with a full parse as the fallback).
"""

from __future__ import annotations

import json

_TARGET = b'"target":{'
_SITE = b'"site":"'


def leaf_site_parsed(leaf: bytes) -> str | None:
    """``target.site`` of a leaf (lower case) by a full JSON parse; None if it has none."""
    try:
        site = json.loads(leaf)["target"]["site"]
        return site.lower() if isinstance(site, str) else None
    except (ValueError, KeyError, TypeError):
        return None


def leaf_site(leaf: bytes) -> str | None:
    """``target.site`` of a leaf, read without parsing all of it (the records page does this 50 times).

    Sound because leaves are canonical RFC 8785 JSON of the record schema: keys are sorted, so the top-level
    ``target`` object is the last one in the leaf (only ``type`` and ``v``, plain scalars, follow it), it holds
    only host/site/url strings, and a ``"`` inside any string is escaped — so the byte patterns below cannot be
    forged from inside a URL or rule. Anything unexpected falls back to a full parse.
    """
    t = leaf.rfind(_TARGET)
    if t < 0:
        return leaf_site_parsed(leaf)
    s = leaf.find(_SITE, t)
    if s < 0:
        return leaf_site_parsed(leaf)
    s += len(_SITE)
    e = leaf.find(b'"', s)
    close = leaf.find(b"}", t)
    if e < 0 or close < e or b"\\" in leaf[s:e]:
        return leaf_site_parsed(leaf)
    try:
        return leaf[s:e].decode("ascii").lower()
    except UnicodeDecodeError:
        return leaf_site_parsed(leaf)
