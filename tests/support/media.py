"""Builders for real, structurally valid media files carrying opt-out metadata, for unit and end-to-end tests.

Every builder returns bytes a real reader accepts structurally: JPEG marker segments with correct lengths and a
decodable 8x8 baseline scan, PNG chunks with correct CRCs, RIFF/WebP chunks with even padding and a VP8X header,
a PDF with a correct xref table, an EPUB (OCF zip with a stored ``mimetype`` first), and C2PA JUMBF manifest
stores laid out as the C2PA spec does (store -> manifest -> assertion store -> assertion -> CBOR/JSON content,
plus claim and signature boxes; the signature is a placeholder — nothing here is signed).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
import zipfile
import zlib
from typing import Any

PLUS_NS = "http://ns.useplus.org/ldf/xmp/1.0/"
PLUS_VOCAB = "http://ns.useplus.org/ldf/vocab/"
TDM_NS_SLASH = "http://www.w3.org/ns/tdmrep/"
TDM_NS_HASH = "http://www.w3.org/ns/tdmrep#"

# --- XMP ---------------------------------------------------------------------------------------------------------


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


def xmp_packet(
    data_mining: str | None = None,
    tdm_reservation: str | None = None,
    prefix: str = "plus",
    attribute_form: bool = False,
    *,
    tdm_policy: str | None = None,
    tdm_ns: str = TDM_NS_SLASH,
    tdm_prefix: str = "tdm",
    style: str | None = None,
    other_constraints: str | None = None,
    wrapper: bool = True,
) -> bytes:
    """An XMP packet (``<?xpacket begin ...?><x:xmpmeta><rdf:RDF><rdf:Description ...>``).

    ``style``: ``element`` (default; ``<plus:DataMining>URI</plus:DataMining>``), ``attribute`` (same as
    ``attribute_form=True``: properties as attributes of ``rdf:Description``), ``resource``
    (``<plus:DataMining rdf:resource="URI"/>``), ``bag`` (value inside ``rdf:Bag/rdf:li``), or ``value``
    (``rdf:parseType="Resource"`` with an ``rdf:value`` qualifier)."""
    style = style or ("attribute" if attribute_form else "element")
    decls = [
        f'xmlns:{prefix}="{PLUS_NS}"',
        f'xmlns:{tdm_prefix}="{tdm_ns}"',
        'xmlns:dc="http://purl.org/dc/elements/1.1/"',
    ]
    props: list[tuple[str, str]] = []
    if data_mining is not None:
        props.append((f"{prefix}:DataMining", data_mining))
    if tdm_reservation is not None:
        props.append((f"{tdm_prefix}:reservation", tdm_reservation))
    if tdm_policy is not None:
        props.append((f"{tdm_prefix}:policy", tdm_policy))
    attrs = ""
    body = ""
    for name, value in props:
        v = _esc(value)
        if style == "attribute":
            attrs += f' {name}="{v}"'
        elif style == "resource":
            body += f'   <{name} rdf:resource="{v}"/>\n'
        elif style == "bag":
            body += f"   <{name}><rdf:Bag><rdf:li>{v}</rdf:li></rdf:Bag></{name}>\n"
        elif style == "value":
            body += f'   <{name} rdf:parseType="Resource"><rdf:value>{v}</rdf:value></{name}>\n'
        else:
            body += f"   <{name}>{v}</{name}>\n"
    if other_constraints is not None:
        body += (
            f'   <{prefix}:OtherConstraints><rdf:Alt><rdf:li xml:lang="x-default">{_esc(other_constraints)}'
            f"</rdf:li></rdf:Alt></{prefix}:OtherConstraints>\n"
        )
    body += "   <dc:format>image/jpeg</dc:format>\n"
    rdf = (
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        f'  <rdf:Description rdf:about="" {" ".join(decls)}{attrs}>\n{body}  </rdf:Description>\n'
        "</rdf:RDF>\n"
    )
    if not wrapper:
        return rdf.encode()
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="optout-tests">\n'
        f"{rdf}</x:xmpmeta>\n" + " " * 200 + '\n<?xpacket end="w"?>'
    ).encode("utf-8")


# --- C2PA / JUMBF ------------------------------------------------------------------------------------------------

_JUMBF_SUFFIX = bytes.fromhex("00110010800000AA00389B71")


def jumbf_uuid(fourcc: bytes) -> bytes:
    return fourcc + _JUMBF_SUFFIX


def jumbf_box(tbox: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), tbox) + payload


def jumbf_superbox(uuid: bytes, label: str, children: list[bytes]) -> bytes:
    """A ``jumb`` superbox: description box (type UUID, toggles = requestable + label, label) then children."""
    jumd = jumbf_box(b"jumd", uuid + b"\x03" + label.encode() + b"\x00")
    return jumbf_box(b"jumb", jumd + b"".join(children))


def _cbor(value: Any) -> bytes:
    import cbor2  # test-only dependency (pyproject [test] extra)

    return cbor2.dumps(value)


def assertion_box(label: str, data: Any, use_cbor: bool = True) -> bytes:
    if use_cbor:
        return jumbf_superbox(jumbf_uuid(b"cbor"), label, [jumbf_box(b"cbor", _cbor(data))])
    return jumbf_superbox(jumbf_uuid(b"json"), label, [jumbf_box(b"json", json.dumps(data).encode())])


def manifest_box(urn: str, assertions: list[bytes]) -> bytes:
    store = jumbf_superbox(jumbf_uuid(b"c2as"), "c2pa.assertions", assertions)
    claim = jumbf_superbox(
        jumbf_uuid(b"c2cl"),
        "c2pa.claim",
        [jumbf_box(b"cbor", _cbor({"dc:format": "image/jpeg", "claim_generator": "optout-tests/1.0"}))],
    )
    signature = jumbf_superbox(jumbf_uuid(b"c2cs"), "c2pa.signature", [jumbf_box(b"cbor", _cbor(b"unsigned"))])
    return jumbf_superbox(jumbf_uuid(b"c2ma"), urn, [store, claim, signature])


def jumbf_manifest(
    assertion_label: str,
    entries: dict[str, Any],
    use_cbor: bool = True,
    *,
    ingredient: tuple[str, dict[str, Any]] | None = None,
    data: Any = None,
) -> bytes:
    """A C2PA manifest store whose active (last) manifest holds one training-mining assertion.

    ``ingredient=(label, entries)`` puts an earlier manifest (an ingredient's) before the active one; ``data``
    replaces the assertion's whole content (for malformed-content tests)."""
    manifests: list[bytes] = []
    if ingredient is not None:
        ing_label, ing_entries = ingredient
        manifests.append(
            manifest_box(
                "urn:uuid:00000000-0000-4000-8000-000000000001",
                [assertion_box(ing_label, {"entries": ing_entries}, use_cbor)],
            )
        )
    content = {"entries": entries} if data is None else data
    manifests.append(
        manifest_box(
            "urn:uuid:00000000-0000-4000-8000-000000000002", [assertion_box(assertion_label, content, use_cbor)]
        )
    )
    return jumbf_superbox(jumbf_uuid(b"c2pa"), "c2pa", manifests)


# --- JPEG --------------------------------------------------------------------------------------------------------


def _segment(marker: int, payload: bytes) -> bytes:
    assert len(payload) <= 65533
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


# Baseline 8x8 grey image: one quantisation table, one-code Huffman tables (DC category 0, AC end-of-block),
# scan data "00" padded with ones.
_JPEG_TAIL = (
    _segment(0xDB, b"\x00" + b"\x01" * 64)
    + _segment(0xC0, b"\x08\x00\x08\x00\x08\x01\x01\x11\x00")
    + _segment(0xC4, b"\x00" + b"\x01" + b"\x00" * 15 + b"\x00")
    + _segment(0xC4, b"\x10" + b"\x01" + b"\x00" * 15 + b"\x00")
    + _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    + b"\x3f"
    + b"\xff\xd9"
)
_JFIF = _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")


def jpeg_app11_segments(jumbf: bytes, *, chunk: int = 65000, instance: int = 1) -> list[bytes]:
    """Split a JUMBF box into JPEG-XT APP11 segments (``JP``, En, Z; continuation segments repeat the box
    header), as C2PA embeds manifest stores in JPEG."""
    header = jumbf[:8]
    segments = []
    pos, z = 0, 1
    while pos < len(jumbf):
        if z == 1:
            part = jumbf[pos : pos + chunk]
            payload = b"JP" + struct.pack(">HI", instance, z) + part
        else:
            part = jumbf[pos : pos + chunk - 8]
            payload = b"JP" + struct.pack(">HI", instance, z) + header + part
        pos += len(part)
        segments.append(_segment(0xEB, payload))
        z += 1
    return segments


def make_jpeg(
    xmp: bytes | None = None,
    c2pa_jumbf: bytes | None = None,
    *,
    extended_xmp: bytes | None = None,
    c2pa_chunk: int = 65000,
) -> bytes:
    """A baseline JPEG with XMP in APP1 (optionally extended XMP split over several APP1 segments) and a C2PA
    manifest store in APP11."""
    out = b"\xff\xd8" + _JFIF
    if xmp is not None:
        out += _segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + xmp)
    if extended_xmp is not None:
        guid = hashlib.md5(extended_xmp).hexdigest().upper().encode()
        step = 60000
        for offset in range(0, len(extended_xmp), step):
            part = extended_xmp[offset : offset + step]
            out += _segment(
                0xE1,
                b"http://ns.adobe.com/xmp/extension/\x00" + guid + struct.pack(">II", len(extended_xmp), offset) + part,
            )
    if c2pa_jumbf is not None:
        out += b"".join(jpeg_app11_segments(c2pa_jumbf, chunk=c2pa_chunk))
    return out + _JPEG_TAIL


# --- PNG ---------------------------------------------------------------------------------------------------------


def png_chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)


def make_png(xmp: bytes | None = None, c2pa_jumbf: bytes | None = None, *, compressed: bool = False) -> bytes:
    """A 1x1 greyscale PNG with XMP in an ``iTXt`` chunk (keyword ``XML:com.adobe.xmp``, optionally
    zlib-compressed) and C2PA in a ``caBX`` chunk."""
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    if xmp is not None:
        text = zlib.compress(xmp) if compressed else xmp
        out += png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00" + bytes([1 if compressed else 0, 0]) + b"\x00\x00" + text)
    if c2pa_jumbf is not None:
        out += png_chunk(b"caBX", c2pa_jumbf)
    out += png_chunk(b"IDAT", zlib.compress(b"\x00\x80"))
    return out + png_chunk(b"IEND", b"")


# --- WebP --------------------------------------------------------------------------------------------------------

# 1x1 lossless WebP bitstream (the VP8L chunk of the well-known feature-detection image).
_VP8L = base64.b64decode("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")[12:]


def riff_chunk(fourcc: bytes, data: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")


def make_webp(xmp: bytes | None = None, c2pa_jumbf: bytes | None = None) -> bytes:
    """An extended-format 1x1 WebP: ``VP8X`` (XMP flag set when XMP is present), the ``VP8L`` image, ``XMP ``
    and ``C2PA`` chunks."""
    flags = 0x04 if xmp is not None else 0
    vp8x = riff_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + b"\x00\x00\x00" + b"\x00\x00\x00")
    chunks = vp8x + _VP8L
    if xmp is not None:
        chunks += riff_chunk(b"XMP ", xmp)
    if c2pa_jumbf is not None:
        chunks += riff_chunk(b"C2PA", c2pa_jumbf)
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + chunks


# --- PDF ---------------------------------------------------------------------------------------------------------


def make_pdf(xmp: bytes | None = None, *, compress: bool = False) -> bytes:
    """A one-page PDF whose catalog points at a ``/Type /Metadata /Subtype /XML`` stream holding ``xmp``
    (optionally FlateDecode-compressed), with a correct cross-reference table."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R" + (b" /Metadata 4 0 R" if xmp is not None else b"") + b" >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
    ]
    if xmp is not None:
        data = zlib.compress(xmp) if compress else xmp
        filt = b" /Filter /FlateDecode" if compress else b""
        objects.append(
            b"<< /Type /Metadata /Subtype /XML /Length %d%s >>\nstream\n" % (len(data), filt) + data + b"\nendstream"
        )
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


# --- EPUB --------------------------------------------------------------------------------------------------------


def opf_epub2(reservation: str | None = None, policy: str | None = None) -> bytes:
    metas = ""
    if reservation is not None:
        metas += f'    <meta name="tdm:reservation" content="{_esc(reservation)}" />\n'
    if policy is not None:
        metas += f'    <meta name="tdm:policy" content="{_esc(policy)}" />\n'
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<package xmlns="http://www.idpf.org/2007/opf" version="2.0" unique-identifier="uid">\n'
        '  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf">\n'
        '    <dc:title>Test</dc:title>\n    <dc:identifier id="uid">urn:uuid:1</dc:identifier>\n'
        f"{metas}  </metadata>\n"
        '  <manifest><item id="c1" href="chapter.xhtml" media-type="application/xhtml+xml"/></manifest>\n'
        '  <spine><itemref idref="c1"/></spine>\n</package>\n'
    ).encode()


def opf_epub3(
    reservation: str | None = None,
    policy: str | None = None,
    *,
    prefix: str = "tdm",
    iri: str | None = TDM_NS_HASH,
) -> bytes:
    """EPUB 3 package document; ``iri=None`` leaves the prefix undeclared."""
    decl = f' prefix="{prefix}: {iri}"' if iri is not None else ""
    metas = ""
    if reservation is not None:
        metas += f'    <meta property="{prefix}:reservation">{_esc(reservation)}</meta>\n'
    if policy is not None:
        metas += f'    <meta property="{prefix}:policy">{_esc(policy)}</meta>\n'
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid"{decl}>\n'
        '  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
        '    <dc:title>Test</dc:title>\n    <dc:identifier id="uid">urn:uuid:1</dc:identifier>\n'
        '    <meta property="dcterms:modified">2026-01-01T00:00:00Z</meta>\n'
        f"{metas}  </metadata>\n"
        '  <manifest><item id="c1" href="chapter.xhtml" media-type="application/xhtml+xml"/></manifest>\n'
        '  <spine><itemref idref="c1"/></spine>\n</package>\n'
    ).encode()


def container_xml(opf_path: str = "OEBPS/content.opf") -> bytes:
    return (
        '<?xml version="1.0"?>\n'
        '<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">\n'
        f'  <rootfiles><rootfile full-path="{opf_path}" media-type="application/oebps-package+xml"/></rootfiles>\n'
        "</container>\n"
    ).encode()


def make_epub(
    opf: bytes,
    *,
    opf_path: str = "OEBPS/content.opf",
    container: bool = True,
    extra: dict[str, bytes] | None = None,
) -> bytes:
    """An OCF zip: ``mimetype`` first and stored, ``META-INF/container.xml`` pointing at the package document,
    the package document and one XHTML chapter."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), b"application/epub+zip", compress_type=zipfile.ZIP_STORED)
        if container:
            zf.writestr("META-INF/container.xml", container_xml(opf_path), compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr(opf_path, opf, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr(
            opf_path.rsplit("/", 1)[0] + "/chapter.xhtml" if "/" in opf_path else "chapter.xhtml",
            b'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>c</title></head><body><p>x</p></body></html>',
            compress_type=zipfile.ZIP_DEFLATED,
        )
        for name, data in (extra or {}).items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


# --- GIF / TIFF --------------------------------------------------------------------------------------------------


def make_gif(xmp: bytes | None = None) -> bytes:
    """A 1x1 GIF89a with XMP in the ``XMP DataXMP`` application extension (raw packet + 258-byte magic
    trailer, as Adobe specifies)."""
    out = b"GIF89a" + struct.pack("<HH", 1, 1) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    if xmp is not None:
        trailer = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
        out += b"\x21\xff\x0bXMP DataXMP" + xmp + trailer
    out += b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00" + b"\x02\x02\x44\x01\x00"
    return out + b"\x3b"


def make_tiff(xmp: bytes | None = None) -> bytes:
    """A 1x1 8-bit greyscale little-endian TIFF with XMP in tag 700."""
    entries = [
        (256, 3, 1, 1),  # ImageWidth
        (257, 3, 1, 1),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: BlackIsZero
        (273, 4, 1, 0),  # StripOffsets (patched below)
        (278, 3, 1, 1),  # RowsPerStrip
        (279, 4, 1, 1),  # StripByteCounts
    ]
    if xmp is not None:
        entries.append((700, 1, len(xmp), 0))  # XMP (offset patched below)
    ifd_size = 2 + 12 * len(entries) + 4
    data_start = 8 + ifd_size
    pixel_offset = data_start
    xmp_offset = data_start + 2
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        if tag == 273:
            value = pixel_offset
        if tag == 700:
            value = xmp_offset
        if typ == 3:
            ifd += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            ifd += struct.pack("<HHII", tag, typ, count, value)
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + b"\x80\x00" + (xmp or b"")
