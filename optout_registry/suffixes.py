"""The public-suffix list, offline: one tldextract extractor shared by the registry and the blocklist.

tldextract builds a trie of some 17,000 nodes from its bundled list on first use. Built once, here, it is shared
by every caller; :func:`warm` builds it up front so that a crawl can do it before ``gc.freeze()`` (see
``middlewares/gcfreeze.py``) and its full collections do not walk those nodes again and again.
"""

from __future__ import annotations

from functools import lru_cache

import tldextract


@lru_cache(maxsize=1)
def extractor() -> tldextract.TLDExtract:
    """tldextract on its bundled snapshot only (never the network), private suffixes included (``github.io``)."""
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)


def warm() -> None:
    """Build the suffix trie now rather than on the first lookup."""
    extractor()("example.com")
