"""Opt-out statements embedded in a fetched (non-HTML) resource: one entry point for the engine.

Dispatches by magic bytes first and content type second (servers mislabel media all the time):

* XMP in any carrier (:mod:`.xmp`) -> IPTC ``plus:DataMining`` (:mod:`.iptc`) and TDMRep ``tdm:reservation``
  (:func:`.tdmrep.xmp_signal`), ``where="xmp"``;
* EPUB (``application/epub+zip``, or a zip whose first member is the EPUB ``mimetype`` file) -> TDMRep in the
  package document (:func:`.tdmrep.epub_signal`), ``where="opf"``;
* C2PA / CAWG training-and-data-mining assertions (:mod:`.c2pa`), ``where="c2pa"``.

HTML documents are skipped: their TDMRep ``<meta>`` is read by :func:`.tdmrep.html_signal`, and a page that
merely *shows* an XMP example must not be read as carrying it.

The TDMRep signals returned here come last in TDMRep's processing order (§2.6: embedded metadata supersedes
header and HTML); pass them to :func:`.tdmrep.effective` after the file, header and HTML signals.
"""

from __future__ import annotations

from . import tdmrep
from .signals import Mode, Signal
from .xmp import extract_xmp_packets, parse_xml_document, parse_xmp, sniff

_SKIPPED_TYPES = ("text/html", "application/xhtml+xml")
_EPUB_TYPE = "application/epub+zip"
_BINARY_KINDS = frozenset(("jpeg", "png", "webp", "gif", "tiff", "pdf", "zip", "jumbf", "bmff"))


def media_type(content_type: str | None) -> str:
    """A Content-Type value's media type, lower-case and without parameters; empty for none."""
    if not isinstance(content_type, str):
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def is_epub(body: bytes, content_type: str | None = None) -> bool:
    """A zip that is an EPUB: declared so, or with the OCF ``mimetype`` first member (stored, uncompressed)."""
    if not body.startswith(b"PK\x03\x04"):
        return False
    if media_type(content_type) == _EPUB_TYPE:
        return True
    return body[30:38] == b"mimetype" and b"application/epub+zip" in body[38:100]


def _collect(body: bytes, content_type: str | None, mode: Mode) -> list[Signal]:
    declared = media_type(content_type)
    kind = sniff(body)
    if kind == "html" or (declared in _SKIPPED_TYPES and kind not in _BINARY_KINDS):
        return []
    from . import c2pa, iptc  # here, not at import: only media responses need them (start-up of every crawl)

    out: list[Signal] = []
    if kind == "zip":
        if is_epub(body, content_type):
            sig = tdmrep.epub_signal(body, mode=mode)
            if sig is not None:
                out.append(sig)
        return out + c2pa.signals(body, content_type, mode=mode)
    docs = [parse_xmp(packet) for packet in extract_xmp_packets(body, content_type)]
    if kind == "svg" or (not any(docs) and declared == "image/svg+xml"):
        # SVG keeps RDF metadata inline, with namespaces often declared on the <svg> root.
        docs.append(parse_xml_document(body))
    for doc in docs:
        if doc is None:
            continue
        out.extend(iptc.signals(doc, mode=mode))
        sig = tdmrep.xmp_signal(doc, mode=mode)
        if sig is not None:
            out.append(sig)
    out.extend(c2pa.signals(body, content_type, mode=mode))
    return out


def _dedupe(found: list[Signal]) -> list[Signal]:
    seen: set[tuple[str, str, str, str]] = set()
    out: list[Signal] = []
    for sig in found:
        key = (sig.protocol, sig.where, sig.value, sig.rule)
        if key not in seen:
            seen.add(key)
            out.append(sig)
    return out


def signals(body: bytes, content_type: str | None, *, mode: Mode) -> list[Signal]:
    """Every embedded opt-out statement in ``body`` (``where`` xmp / opf / c2pa). Never raises: every parser
    below is bounded and returns nothing on bad input; the final guard only exists so that a bug in one of them
    degrades to "no embedded statement" instead of failing the crawl."""
    if not isinstance(body, (bytes, bytearray)) or not body:
        return []
    try:
        return _dedupe(_collect(bytes(body), content_type, mode))
    except Exception:  # pragma: no cover - defence in depth; the fuzz tests call _collect directly
        return []
