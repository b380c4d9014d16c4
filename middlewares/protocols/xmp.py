"""Find and read XMP packets embedded in media files (JPEG, PNG, WebP, PDF, GIF, TIFF, SVG, ...).

XMP carries two opt-out vocabularies we honour: IPTC/PLUS ``plus:DataMining`` (PROTOCOLS.md §7.1) and TDMRep's
``tdm:reservation`` (§2.5, §7.3). Both are plain RDF/XML properties, so this module only does two things:

* :func:`extract_xmp` / :func:`extract_xmp_packets` locate the packet bytes inside a container format, walking the
  container's own structure where that is cheap (JPEG segments, PNG chunks, RIFF chunks, PDF metadata streams)
  and falling back to a bounded scan for an ``<?xpacket`` / ``<x:xmpmeta`` marker;
* :func:`parse_xmp` parses a packet XXE-safely and indexes every property by *namespace URI* and local name, in
  all the RDF spellings XMP writers use (element text, ``rdf:resource``, attribute form, ``rdf:Alt/Bag/Seq``,
  ``rdf:value`` qualifiers). Prefixes are never compared: ``plus:``, ``PLUS:`` and ``ns1:`` all mean the same
  namespace if they are bound to the same URI, and third-party writers do use non-default prefixes.

Every input is untrusted: scans, packets, decompression and parsing are all capped, XML is parsed with DTDs and
entity declarations refused (no expansion ever happens, so billion-laughs and XXE cannot), and bad input yields
``None`` / an empty list instead of an exception.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as _defused_fromstring

MAX_SCAN_BYTES = 32 * 1024 * 1024
MAX_PACKET_BYTES = 4 * 1024 * 1024
MAX_PACKETS = 16
MAX_INFLATE_STREAMS = 16
MAX_SEGMENTS = 100_000  # JPEG segments / PNG & RIFF chunks walked before giving up

RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XML_NS = "http://www.w3.org/XML/1998/namespace"
_RDF = "{" + RDF_NS + "}"
_CONTAINERS = frozenset((_RDF + "Alt", _RDF + "Bag", _RDF + "Seq"))
_IGNORED_ATTR_NS = (RDF_NS, XML_NS)

_JPEG_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_JPEG_XMP_EXT = b"http://ns.adobe.com/xmp/extension/\x00"
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"


def _split_tag(name: str) -> tuple[str, str]:
    """``{ns}local`` -> (ns, local); un-namespaced names get the empty namespace."""
    if name.startswith("{"):
        ns, _, local = name[1:].partition("}")
        return ns, local
    return "", name


@dataclass
class XmpDoc:
    """A parsed XMP packet: every simple property value indexed by (namespace URI, local name).

    The index is built once at parse time; :meth:`values` is then a dictionary look-up. ``root`` keeps the parsed
    tree for callers that need more than property values."""

    root: Element | None = None
    props: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def values(self, namespace_uri: str, local_name: str) -> list[str]:
        """All values of a property, in document order, whatever RDF spelling the writer chose."""
        return list(self.props.get((namespace_uri, local_name), ()))

    def namespaces(self) -> set[str]:
        """The namespace URIs the packet's properties use, so a caller can skip a packet that says nothing in its
        vocabulary."""
        return {ns for ns, _ in self.props}


def _leaf_values(prop: Element) -> list[str]:
    """Values of one property element: its text, ``rdf:resource``, ``rdf:value`` qualifier, or the items of an
    ``rdf:Alt``/``Bag``/``Seq`` (each item again text / resource / ``rdf:value``)."""
    resource = prop.get(_RDF + "resource")
    if resource is not None:
        return [resource.strip()]
    children = list(prop)
    if not children:
        text = (prop.text or "").strip()
        return [text] if text else []
    out: list[str] = []
    for child in children:
        if child.tag in _CONTAINERS:
            for li in child:
                if li.tag != _RDF + "li":
                    continue
                out.extend(_leaf_values(li))
        elif child.tag == _RDF + "value":
            text = (child.text or "").strip()
            if text:
                out.append(text)
    return out


def _index(root: Element) -> dict[tuple[str, str], list[str]]:
    """Walk every ``rdf:Description`` (and ``rdf:parseType="Resource"`` struct) and record its properties.

    Iterative (``Element.iter``), so deeply nested input cannot exhaust the Python stack."""
    props: dict[tuple[str, str], list[str]] = defaultdict(list)
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue  # comments / processing instructions
        if node.tag != _RDF + "Description" and node.get(_RDF + "parseType") != "Resource":
            continue
        for name, value in node.attrib.items():
            ns, local = _split_tag(name)
            if ns in _IGNORED_ATTR_NS or not ns:
                continue
            value = value.strip()
            if value:
                props[(ns, local)].append(value)
        for child in node:
            if not isinstance(child.tag, str):
                continue
            ns, local = _split_tag(child.tag)
            if ns == RDF_NS or not ns:
                continue
            props[(ns, local)].extend(_leaf_values(child))
    return dict(props)


def parse_xml(data: bytes, *, allow_doctype: bool = False) -> Element | None:
    """Parse untrusted XML with entity declarations and external references refused (never expanded).

    ``allow_doctype`` tolerates a bare ``<!DOCTYPE>`` (old OPF and SVG files carry one) while still refusing any
    entity declaration inside it; XMP never has a DTD, so for packets any DOCTYPE is refused outright."""
    if len(data) > MAX_PACKET_BYTES:
        return None
    try:
        root: Element | None = _defused_fromstring(
            data, forbid_dtd=not allow_doctype, forbid_entities=True, forbid_external=True
        )
        return root
    except (ParseError, DefusedXmlException, ValueError, UnicodeError, TypeError):
        return None


def _trim_packet(packet: bytes) -> bytes:
    """Drop the padding writers leave around a packet (NULs, whitespace) and anything before the first tag."""
    packet = packet.strip(b"\x00 \t\r\n")
    start = packet.find(b"<")
    if start > 0:
        packet = packet[start:]
    return packet


def parse_xmp(packet: bytes) -> XmpDoc | None:
    """Parse one XMP packet. ``None`` for anything that is not well-formed XML, is too large, or declares a DTD or
    entities (refused before any expansion)."""
    if not isinstance(packet, (bytes, bytearray)):
        return None
    root = parse_xml(_trim_packet(bytes(packet)))
    if root is None:
        return None
    return XmpDoc(root=root, props=_index(root))


def parse_xml_document(data: bytes) -> XmpDoc | None:
    """Index the RDF metadata of a whole XML document (e.g. an SVG's ``<metadata>``), tolerating a DOCTYPE."""
    root = parse_xml(_trim_packet(data), allow_doctype=True)
    if root is None:
        return None
    return XmpDoc(root=root, props=_index(root))


# --- container walkers -------------------------------------------------------------------------------------------


def jpeg_segments(body: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of every marker segment before the first scan; tolerant of truncation and fill bytes."""
    out: list[tuple[int, bytes]] = []
    if not body.startswith(b"\xff\xd8"):
        return out
    i, n = 2, len(body)
    while i + 4 <= n and len(out) < MAX_SEGMENTS:
        if body[i] != 0xFF:
            # Not at a marker: corrupt stream. Resynchronise on the next 0xFF rather than give up, bounded by n.
            nxt = body.find(b"\xff", i)
            if nxt < 0:
                break
            i = nxt
            continue
        marker = body[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9 or marker == 0xDA:  # EOI / start of scan: metadata lives before it
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # stand-alone markers, no length
            i += 2
            continue
        (length,) = struct.unpack_from(">H", body, i + 2)
        if length < 2:
            break
        payload = body[i + 4 : i + 2 + length]
        out.append((marker, payload))
        i += 2 + length
    return out


def _jpeg_xmp(body: bytes) -> list[bytes]:
    """Standard XMP from APP1, plus extended XMP (split across APP1 segments keyed by GUID) reassembled."""
    packets: list[bytes] = []
    extended: dict[bytes, dict[int, bytes]] = defaultdict(dict)
    ext_len: dict[bytes, int] = {}
    for marker, payload in jpeg_segments(body):
        if marker != 0xE1:
            continue
        if payload.startswith(_JPEG_XMP):
            packets.append(payload[len(_JPEG_XMP) :])
        elif payload.startswith(_JPEG_XMP_EXT) and len(payload) >= len(_JPEG_XMP_EXT) + 40:
            p = len(_JPEG_XMP_EXT)
            guid = payload[p : p + 32]
            full, offset = struct.unpack_from(">II", payload, p + 32)
            if full > MAX_PACKET_BYTES or offset >= full:
                continue
            ext_len[guid] = full
            extended[guid][offset] = payload[p + 40 :]
    for guid, parts in extended.items():
        buf = bytearray()
        for offset in sorted(parts):
            if offset != len(buf):
                break  # gap: a part is missing, the packet cannot be rebuilt
            buf += parts[offset]
        if len(buf) >= ext_len[guid]:
            packets.append(bytes(buf[: ext_len[guid]]))
    return packets


def png_chunks(body: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every PNG chunk; CRCs are not checked (a wrong CRC does not change what the file says)."""
    out: list[tuple[bytes, bytes]] = []
    if not body.startswith(_PNG_SIG):
        return out
    i, n = 8, len(body)
    while i + 8 <= n and len(out) < MAX_SEGMENTS:
        length, ctype = struct.unpack_from(">I4s", body, i)
        if length > n - i - 8:
            break  # truncated chunk
        out.append((ctype, body[i + 8 : i + 8 + length]))
        if ctype == b"IEND":
            break
        i += 12 + length
    return out


def bounded_inflate(data: bytes, limit: int = MAX_PACKET_BYTES) -> bytes | None:
    """zlib-inflate at most ``limit`` bytes of output; ``None`` on error or when the output would exceed it."""
    try:
        d = zlib.decompressobj()
        out = d.decompress(data, limit + 1)
    except (zlib.error, ValueError, OverflowError):
        return None
    if len(out) > limit:
        return None
    return out


def _png_xmp(body: bytes) -> list[bytes]:
    packets: list[bytes] = []
    for ctype, data in png_chunks(body):
        if ctype == b"iTXt":
            keyword, sep, rest = data.partition(b"\x00")
            if not sep or keyword != _PNG_XMP_KEYWORD or len(rest) < 2:
                continue
            compressed, method = rest[0], rest[1]
            rest = rest[2:]
            # language tag and translated keyword, each NUL-terminated
            _, _, rest = rest.partition(b"\x00")
            _, _, text = rest.partition(b"\x00")
            if compressed:
                if method != 0:
                    continue
                inflated = bounded_inflate(text)
                if inflated is None:
                    continue
                text = inflated
            packets.append(text)
        elif ctype in (b"tEXt", b"zTXt"):
            # Non-standard, but some tools write XMP this way; reading it can only find more statements.
            keyword, sep, text = data.partition(b"\x00")
            if not sep or keyword != _PNG_XMP_KEYWORD:
                continue
            if ctype == b"zTXt":
                inflated = bounded_inflate(text[1:])
                if inflated is None:
                    continue
                text = inflated
            packets.append(text)
    return packets


def riff_chunks(body: bytes) -> list[tuple[bytes, bytes]]:
    """(fourcc, data) of the top-level chunks of a RIFF/WebP file; chunks are padded to even sizes."""
    out: list[tuple[bytes, bytes]] = []
    if len(body) < 12 or body[:4] != b"RIFF" or body[8:12] != b"WEBP":
        return out
    i, n = 12, len(body)
    while i + 8 <= n and len(out) < MAX_SEGMENTS:
        fourcc = body[i : i + 4]
        (size,) = struct.unpack_from("<I", body, i + 4)
        data = body[i + 8 : i + 8 + size]
        out.append((fourcc, data))
        if size > n - i - 8:
            break  # truncated: keep what we have
        i += 8 + size + (size & 1)
    return out


def _webp_xmp(body: bytes) -> list[bytes]:
    return [data for fourcc, data in riff_chunks(body) if fourcc == b"XMP "]


_PDF_METADATA = re.compile(rb"/Type\s*/Metadata\b")
_PDF_STREAM = re.compile(rb"stream\r?\n")


def _pdf_flate_metadata(body: bytes) -> list[bytes]:
    """Inflate FlateDecode streams whose dictionary says ``/Type /Metadata`` (bounded in count and output).

    We do not inflate every stream of the PDF (that is where the cost and the bombs are); metadata streams are
    the only ones that hold document-level XMP."""
    packets: list[bytes] = []
    for attempt, m in enumerate(_PDF_METADATA.finditer(body)):
        if len(packets) >= MAX_INFLATE_STREAMS or attempt >= 4 * MAX_INFLATE_STREAMS:
            break
        obj_start = body.rfind(b"obj", max(0, m.start() - 4096), m.start())
        stream = _PDF_STREAM.search(body, m.end(), m.end() + 4096)
        if obj_start < 0 or stream is None:
            continue
        dictionary = body[obj_start : stream.start()]
        if b"/FlateDecode" not in dictionary and b"/Fl " not in dictionary and b"/Fl/" not in dictionary:
            continue
        end = body.find(b"endstream", stream.end(), stream.end() + MAX_PACKET_BYTES)
        if end < 0:
            end = min(len(body), stream.end() + MAX_PACKET_BYTES)
        inflated = bounded_inflate(body[stream.end() : end])
        if inflated:
            packets.extend(_scan_packets(inflated))
    return packets


_PACKET_START = re.compile(rb"<\?xpacket\s+begin|<x:xmpmeta\b|<x:xapmeta\b")
_XPACKET_END = re.compile(rb"<\?xpacket\s+end[^>]{0,64}\?>")
_XMPMETA_END = re.compile(rb"</x:x[am]pmeta\s*>")


def _scan_packets(body: bytes, limit: int = MAX_PACKETS) -> list[bytes]:
    """Find packets by their markers: ``<?xpacket begin ... <?xpacket end ...?>`` or ``<x:xmpmeta ...
    </x:xmpmeta>``.

    Linear in the scanned size: every iteration moves past an end marker, and once a search for an end marker has
    failed to the end of the data it is never repeated (a later start cannot find one either)."""
    packets: list[bytes] = []
    data = body[:MAX_SCAN_BYTES]
    pos = 0
    xpacket_end_exists = True
    while len(packets) < limit:
        m = _PACKET_START.search(data, pos)
        if m is None:
            break
        end_m = None
        if xpacket_end_exists and data.startswith(b"<?xpacket", m.start()):
            end_m = _XPACKET_END.search(data, m.end())
            xpacket_end_exists = end_m is not None
        if end_m is None:
            end_m = _XMPMETA_END.search(data, m.end())
        if end_m is None:
            break
        if end_m.end() - m.start() <= MAX_PACKET_BYTES:
            packets.append(data[m.start() : end_m.end()])
        pos = end_m.end()
    return packets


def sniff(body: bytes) -> str:
    """Container format by magic bytes: jpeg, png, webp, gif, tiff, pdf, zip, jumbf, bmff, html, svg, xml or ''."""
    head = body[:16]
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(_PNG_SIG):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if b"%PDF-" in body[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head[4:8] == b"jumb":
        return "jumbf"
    if head[4:8] == b"ftyp":
        return "bmff"
    start = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if start.startswith(b"<"):
        lowered = body[:4096].lower()
        if start[:14].lower() == b"<!doctype html" or b"<html" in lowered:
            return "html"
        return "svg" if b"<svg" in lowered else "xml"
    return ""


def extract_xmp_packets(body: bytes, content_type: str | None = None) -> list[bytes]:
    """Every XMP packet we can find, most authoritative first (container metadata, then scanned packets)."""
    if not isinstance(body, (bytes, bytearray)):
        return []
    body = bytes(body[:MAX_SCAN_BYTES])
    kind = sniff(body)
    found: list[bytes] = []
    if kind == "jpeg":
        found = _jpeg_xmp(body)
    elif kind == "png":
        found = _png_xmp(body)
    elif kind == "webp":
        found = _webp_xmp(body)
    elif kind == "pdf":
        found = _scan_packets(body) + _pdf_flate_metadata(body)
    if not found:
        # Other formats (GIF, TIFF, SVG, video, ...) store the packet raw; and when a structure walk finds nothing
        # (corrupt file, unusual placement) the generic scan is still cheap.
        found = _scan_packets(body)
    out: list[bytes] = []
    seen: set[bytes] = set()
    for packet in found:
        packet = packet[:MAX_PACKET_BYTES]
        if packet and packet not in seen:
            seen.add(packet)
            out.append(packet)
        if len(out) >= MAX_PACKETS:
            break
    return out


def extract_xmp(body: bytes, content_type: str | None = None) -> bytes | None:
    """The first (most authoritative) XMP packet in ``body``, or ``None``. See :func:`extract_xmp_packets`."""
    packets = extract_xmp_packets(body, content_type)
    return packets[0] if packets else None
