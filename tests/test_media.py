"""Embedded media metadata (PROTOCOLS.md §7, §10.3; vectors 73-83): XMP carriers, IPTC Data Mining, TDMRep in XMP,
C2PA/CAWG training-mining assertions, and the media dispatcher."""

from __future__ import annotations

import functools
import json
import struct
import zlib

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from middlewares.protocols import c2pa, iptc, media, tdmrep, xmp
from middlewares.protocols.c2pa import CborError, cbor_loads
from middlewares.protocols.signals import Mode, Purpose, Signal, Verdict
from middlewares.protocols.xmp import XmpDoc, extract_xmp, extract_xmp_packets, parse_xmp
from tests.support.media import (
    PLUS_NS,
    PLUS_VOCAB,
    TDM_NS_HASH,
    TDM_NS_SLASH,
    assertion_box,
    jumbf_box,
    jumbf_manifest,
    jumbf_superbox,
    jumbf_uuid,
    make_epub,
    make_gif,
    make_jpeg,
    make_pdf,
    make_png,
    make_tiff,
    make_webp,
    opf_epub2,
    opf_epub3,
    png_chunk,
    xmp_packet,
)
from tests.support.signals import well_formed

C, S = Mode.CONSERVATIVE, Mode.STRICT
BOTH = pytest.mark.parametrize("mode", [C, S])


def embedded(found: list[Signal]) -> set[tuple[str, Purpose]]:
    """Check every embedded statement's shape; return (protocol, denied purpose) pairs."""
    out: set[tuple[str, Purpose]] = set()
    for protocol in ("iptc", "tdmrep", "c2pa"):
        out |= {(protocol, p) for p in well_formed([s for s in found if s.protocol == protocol], protocol)}
    assert all(s.protocol in {"iptc", "tdmrep", "c2pa"} for s in found), found
    return out


FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
TRAIN, INPUT, SEARCH = Purpose.TRAIN_AI, Purpose.AI_INPUT, Purpose.SEARCH
A, D = Verdict.ALLOW, Verdict.DISALLOW


def combined(signals: list[Signal], purpose: Purpose) -> Verdict:
    """PROTOCOLS.md §10.4: any disallow wins; else any allow; else unknown."""
    verdicts = [s.verdict(purpose) for s in signals]
    if D in verdicts:
        return D
    if A in verdicts:
        return A
    return Verdict.UNKNOWN


def iptc_of(value: str, mode: Mode = C, **kw: object) -> list[Signal]:
    doc = parse_xmp(xmp_packet(data_mining=value, **kw))  # type: ignore[arg-type]
    assert doc is not None
    return iptc.signals(doc, mode=mode)


CARRIERS = {
    "jpeg": lambda x: make_jpeg(x),
    "png": lambda x: make_png(x),
    "png-compressed": lambda x: make_png(x, compressed=True),
    "webp": lambda x: make_webp(x),
    "pdf": lambda x: make_pdf(x),
    "pdf-flate": lambda x: make_pdf(x, compress=True),
    "gif": lambda x: make_gif(x),
    "tiff": lambda x: make_tiff(x),
    "bare-packet": lambda x: x,
}


# --- §11 vectors -------------------------------------------------------------------------------------------------


@BOTH
def test_vector_73_aiml_training_prohibited(mode: Mode) -> None:
    [sig] = iptc_of(PLUS_VOCAB + "DMI-PROHIBITED-AIMLTRAINING", mode)
    assert sig.verdicts == {TRAIN: D}
    assert sig.verdict(SEARCH) is Verdict.UNKNOWN
    assert sig.protocol == "iptc" and sig.where == "xmp"
    assert sig.value == PLUS_VOCAB + "DMI-PROHIBITED-AIMLTRAINING"
    assert sig.rule == "plus:DataMining = DMI-PROHIBITED-AIMLTRAINING"


@BOTH
def test_vector_75_prohibited_except_search(mode: Mode) -> None:
    [sig] = iptc_of(PLUS_VOCAB + "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING", mode)
    assert sig.verdicts == {TRAIN: D, INPUT: D, SEARCH: A}  # TDM-prohibiting -> ai-input disallow (§10.3)


@BOTH
def test_vector_77_unspecified_unknown(mode: Mode) -> None:
    [sig] = iptc_of(PLUS_VOCAB + "DMI-UNSPECIFIED", mode)
    assert sig.verdicts == {}


VECTOR_79 = {
    "label": "c2pa.training-mining",
    "data": {"entries": {"c2pa.ai_generative_training": {"use": "notAllowed"}}},
}


def test_vector_79_generative_training_not_allowed_json() -> None:
    [sig] = c2pa.signals(json.dumps(VECTOR_79).encode(), "application/json", mode=C)
    assert sig.verdicts == {TRAIN: D}
    assert sig.protocol == "c2pa" and sig.where == "c2pa" and sig.value == "notAllowed"
    assert "c2pa.ai_generative_training=notAllowed" in sig.rule
    assert "not validated" in sig.note


@pytest.mark.parametrize("use_cbor", [True, False], ids=["cbor", "json"])
def test_vector_79_in_a_jpeg_manifest(use_cbor: bool) -> None:
    store = jumbf_manifest("c2pa.training-mining", VECTOR_79["data"]["entries"], use_cbor)  # type: ignore[index]
    [sig] = c2pa.signals(make_jpeg(c2pa_jumbf=store), "image/jpeg", mode=C)
    assert sig.verdicts == {TRAIN: D}
    # strict: generative-only restriction does not decide train-ai for an unknown model type
    [strict] = c2pa.signals(make_jpeg(c2pa_jumbf=store), "image/jpeg", mode=S)
    assert strict.verdicts == {} and "generative" in strict.note


@BOTH
def test_vector_81_cawg_allowed_loses_to_tdmrep_header(mode: Mode) -> None:
    store = jumbf_manifest("cawg.training-mining", {"cawg.ai_training": {"use": "allowed"}})
    found = media.signals(make_png(c2pa_jumbf=store), "image/png", mode=mode)
    assert [s.verdicts for s in found] == [{TRAIN: A}]
    header = tdmrep.header_signal(["1"], [], mode=mode)
    assert header is not None
    assert combined([*found, header], TRAIN) is D


@BOTH
@pytest.mark.parametrize("content_type", [None, "application/octet-stream", "application/zip"])
def test_epub_recognised_by_mimetype_member(content_type: str | None, mode: Mode) -> None:
    [sig] = media.signals(make_epub(opf_epub3("1")), content_type, mode=mode)
    assert sig.where == "opf" and sig.denies(INPUT)


def test_plain_zip_is_not_an_epub() -> None:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("content.opf", opf_epub3("1"))
    assert media.signals(buf.getvalue(), None, mode=C) == []
    assert media.signals(buf.getvalue(), "application/epub+zip", mode=C)[0].denies(TRAIN)  # declared EPUB


@BOTH
def test_vector_83_epub2_via_media_dispatcher(mode: Mode) -> None:
    [sig] = media.signals(make_epub(opf_epub2("1")), "application/epub+zip", mode=mode)
    assert sig.protocol == "tdmrep" and sig.where == "opf" and sig.denies(TRAIN)


# --- XMP carriers --------------------------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("carrier", list(CARRIERS))
def test_every_xmp_carrier(carrier: str, mode: Mode) -> None:
    body = CARRIERS[carrier](xmp_packet(PLUS_VOCAB + "DMI-PROHIBITED", "1"))
    packet = extract_xmp(body)
    assert packet is not None and b"DataMining" in packet
    found = media.signals(body, None, mode=mode)
    assert {(s.protocol, s.where) for s in found} == {("iptc", "xmp"), ("tdmrep", "xmp")}
    assert all(s.denies(TRAIN) for s in found)


@pytest.mark.parametrize("carrier", list(CARRIERS))
def test_carriers_without_xmp(carrier: str) -> None:
    body = b"\x00" * 64 if carrier == "bare-packet" else CARRIERS[carrier](None)
    assert extract_xmp(body) is None
    assert media.signals(body, None, mode=C) == []


def _extended_packet() -> bytes:
    """A packet whose property comes after 150 kB of whitespace, so it spans three APP1 segments."""
    return xmp_packet(PLUS_VOCAB + "DMI-PROHIBITED").replace(b"<rdf:RDF", b" " * 150_000 + b"<rdf:RDF")


def test_jpeg_extended_xmp_reassembled() -> None:
    extended = _extended_packet()
    body = make_jpeg(xmp_packet(tdm_reservation="0"), extended_xmp=extended)
    packets = extract_xmp_packets(body)
    assert len(packets) == 2 and packets[1].startswith(b"<?xpacket")
    found = media.signals(body, "image/jpeg", mode=C)
    assert {s.protocol: s.value for s in found} == {"tdmrep": "0", "iptc": PLUS_VOCAB + "DMI-PROHIBITED"}


def test_jpeg_extended_xmp_with_missing_part_ignored() -> None:
    body = bytearray(make_jpeg(None, extended_xmp=_extended_packet()))
    second = body.find(b"http://ns.adobe.com/xmp/extension/", body.find(b"http://ns.adobe.com/xmp/extension/") + 1)
    body[second : second + 4] = b"xxxx"  # the middle part is no longer an extension segment
    packets = extract_xmp_packets(bytes(body))
    assert all(len(p) != len(_extended_packet()) for p in packets)  # not reassembled
    assert media.signals(bytes(body), "image/jpeg", mode=C) == []  # what the scan finds is not well-formed


@BOTH
@pytest.mark.parametrize("ns", [TDM_NS_SLASH, TDM_NS_HASH])
def test_pdf_tdm_namespace_slash_and_hash(ns: str, mode: Mode) -> None:
    for compress in (False, True):
        found = media.signals(make_pdf(xmp_packet(tdm_reservation="1", tdm_ns=ns), compress=compress), None, mode=mode)
        assert len(found) == 1 and found[0].protocol == "tdmrep" and found[0].denies(TRAIN)


def test_pdf_xmp_not_first_object() -> None:
    # Metadata of an embedded image stream (uncompressed) is found by the scan as well.
    pdf = make_pdf(None)
    body = pdf.replace(
        b"xref",
        b"9 0 obj\n<< /Type /Metadata >>\nstream\n" + xmp_packet("DMI-PROHIBITED") + b"\nendstream\nendobj\nxref",
        1,
    )
    assert media.signals(body, "application/pdf", mode=C)[0].verdicts[SEARCH] is D


def test_svg_inline_rdf_metadata() -> None:
    svg = (
        b'<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        b'xmlns:p="http://ns.useplus.org/ldf/xmp/1.0/"><metadata><rdf:RDF><rdf:Description rdf:about="" '
        b'p:DataMining="http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-AIMLTRAINING"/></rdf:RDF></metadata>'
        b'<rect width="1" height="1"/></svg>'
    )
    [sig] = media.signals(svg, "image/svg+xml", mode=C)
    assert sig.protocol == "iptc" and sig.verdicts == {TRAIN: D}


def test_html_pages_are_skipped_even_if_they_quote_xmp() -> None:
    page = b"<!doctype html><html><body><pre>" + xmp_packet("DMI-PROHIBITED") + b"</pre></body></html>"
    assert media.signals(page, "text/html; charset=utf-8", mode=C) == []
    assert media.signals(page, None, mode=C) == []


def test_mislabelled_media_read_by_magic_bytes() -> None:
    png = make_png(xmp_packet("DMI-PROHIBITED"))
    assert media.signals(png, "text/html", mode=C)
    assert media.signals(png, "application/octet-stream", mode=C)
    assert media.signals(make_jpeg(xmp_packet("DMI-PROHIBITED")), "application/pdf", mode=C)


# --- XMP syntax ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["element", "attribute", "resource", "bag", "value"])
@pytest.mark.parametrize("prefix", ["plus", "PLUS", "ns1", "x0"])
def test_prefix_agnostic_and_every_rdf_spelling(style: str, prefix: str) -> None:
    doc = parse_xmp(xmp_packet(PLUS_VOCAB + "DMI-PROHIBITED", "1", prefix=prefix, style=style, tdm_prefix="q"))
    assert doc is not None
    assert doc.values(PLUS_NS, "DataMining") == [PLUS_VOCAB + "DMI-PROHIBITED"]
    assert doc.values(TDM_NS_SLASH, "reservation") == ["1"]


def test_attribute_form_flag() -> None:
    packet = xmp_packet("DMI-PROHIBITED", attribute_form=True)
    assert b'plus:DataMining="DMI-PROHIBITED"' in packet
    assert iptc_of("DMI-PROHIBITED", attribute_form=True)[0].denies(SEARCH)


def test_plus_prefix_bound_to_wrong_namespace_is_ignored() -> None:
    packet = xmp_packet("DMI-PROHIBITED").replace(PLUS_NS.encode(), b"http://example.org/not-plus/")
    doc = parse_xmp(packet)
    assert doc is not None and doc.values(PLUS_NS, "DataMining") == []
    assert media.signals(make_jpeg(packet), None, mode=C) == []


def test_packet_without_xpacket_wrapper() -> None:
    body = (
        b"junk"
        + xmp_packet("DMI-PROHIBITED", wrapper=False).replace(
            b"<rdf:RDF", b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
        )
        + b"</x:xmpmeta>junk"
    )
    assert media.signals(body, None, mode=C)[0].denies(SEARCH)


XMP_BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/"><plus:DataMining>&h;</plus:DataMining>
</rdf:Description></rdf:RDF></x:xmpmeta>"""

XMP_XXE = b"""<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/"><plus:DataMining>&e;</plus:DataMining>
</rdf:Description></rdf:RDF></x:xmpmeta>"""


@pytest.mark.parametrize("doc", [XMP_BILLION_LAUGHS, XMP_XXE], ids=["billion-laughs", "xxe"])
def test_xmp_entities_refused_without_expansion(doc: bytes) -> None:
    assert parse_xmp(doc) is None
    assert media.signals(make_png(doc), "image/png", mode=C) == []


def test_xmp_any_doctype_refused() -> None:
    assert parse_xmp(b'<!DOCTYPE x SYSTEM "http://example.org/x.dtd">' + xmp_packet("DMI-PROHIBITED")) is None


def test_xmp_deep_nesting_does_not_crash() -> None:
    deep = b"<a>" * 50_000 + b"</a>" * 50_000
    doc = parse_xmp(deep)
    assert doc is None or doc.props == {}


@pytest.mark.parametrize("bad", [b"", b"<", b"\x00\x00", b"<x:xmpmeta>", "text", None, b"<a>&undefined;</a>"])
def test_parse_xmp_bad_input(bad: object) -> None:
    assert parse_xmp(bad) is None  # type: ignore[arg-type]


def test_oversized_packet_ignored() -> None:
    huge = xmp_packet("DMI-PROHIBITED").replace(b"<dc:format>", b"<dc:format>" + b"x" * 5_000_000)
    assert extract_xmp(make_pdf(huge)) is None


def test_png_compressed_xmp_bomb_bounded() -> None:
    bomb = zlib.compress(b" " * 40_000_000, 1)
    chunk = png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + bomb)
    body = make_png(None).replace(b"\x00\x00\x00\x00IEND", chunk + b"\x00\x00\x00\x00IEND")
    assert extract_xmp_packets(body) == []


@functools.lru_cache(maxsize=1)
def _scan_many_starts() -> bytes:
    return b"<x:xmpmeta " * 2_000_000


def test_scan_linear_with_many_unterminated_starts() -> None:
    assert extract_xmp_packets(_scan_many_starts()) == []


# --- IPTC vocabulary -----------------------------------------------------------------------------------------

TABLE = {
    # code: (label, conservative verdicts, strict verdicts)
    "DMI-UNSPECIFIED": ("Unspecified - no prohibition defined", {}, {}),
    "DMI-ALLOWED": ("Allowed", {TRAIN: A, INPUT: A, SEARCH: A}, None),
    "DMI-PROHIBITED-AIMLTRAINING": ("Prohibited for AI/ML training", {TRAIN: D}, None),
    "DMI-PROHIBITED-GENAIMLTRAINING": ("Prohibited for Generative AI/ML training", {TRAIN: D}, {}),
    "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING": (
        "Prohibited except for search engine indexing",
        {TRAIN: D, INPUT: D, SEARCH: A},
        None,
    ),
    "DMI-PROHIBITED": ("Prohibited", {TRAIN: D, INPUT: D, SEARCH: D}, None),
    "DMI-PROHIBITED-SEECONSTRAINT": ("Prohibited, see plus:OtherConstraints", {TRAIN: D, INPUT: D, SEARCH: D}, None),
    "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR": (
        "Prohibited, see iptcExt:EmbdEncRightsExpr",
        {TRAIN: D, INPUT: D, SEARCH: D},
        None,
    ),
    "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR": (
        "Prohibited, see iptcExt:LinkedEncRightsExpr",
        {TRAIN: D, INPUT: D, SEARCH: D},
        None,
    ),
}


@pytest.mark.parametrize("code", list(TABLE))
@pytest.mark.parametrize("form", ["uri", "bare", "label", "label-odd-case", "uri-https"])
def test_iptc_table_every_value_and_spelling(code: str, form: str) -> None:
    label, cons, strict = TABLE[code]
    value = {
        "uri": PLUS_VOCAB + code,
        "bare": code,
        "label": label,
        "label-odd-case": "  " + label.upper().replace(" - ", " \u2013 ") + " ",
        "uri-https": "https://ns.useplus.org/ldf/vocab/" + code,
    }[form]
    [c] = iptc_of(value, C)
    [s] = iptc_of(value, S)
    assert dict(c.verdicts) == cons
    assert dict(s.verdicts) == (cons if strict is None else strict)
    assert c.rule == f"plus:DataMining = {code}"


def test_iptc_genai_notes() -> None:
    assert "strict" in iptc_of("DMI-PROHIBITED-GENAIMLTRAINING", S)[0].note
    assert "conservative" in iptc_of("DMI-PROHIBITED-GENAIMLTRAINING", C)[0].note


def test_iptc_see_constraint_carries_other_constraints() -> None:
    [sig] = iptc_of(PLUS_VOCAB + "DMI-PROHIBITED-SEECONSTRAINT", C, other_constraints="Licence via rights@example.org")
    assert "rights@example.org" in sig.note


def test_iptc_unknown_values() -> None:
    [c] = iptc_of("DMI-PROHIBITED-FUTUREVALUE", C)
    [s] = iptc_of("DMI-PROHIBITED-FUTUREVALUE", S)
    assert c.verdicts == {TRAIN: D} and s.verdicts == {}
    assert iptc_of("whatever", C)[0].verdicts == {}
    assert "unknown" in iptc_of("whatever", C)[0].note


def test_iptc_ext_namespace_conservative_only() -> None:
    packet = xmp_packet("DMI-PROHIBITED").replace(PLUS_NS.encode(), b"http://iptc.org/std/Iptc4xmpExt/2008-02-29/")
    doc = parse_xmp(packet)
    assert doc is not None
    assert iptc.signals(doc, mode=S) == []
    [sig] = iptc.signals(doc, mode=C)
    assert sig.denies(TRAIN) and "non-standard" in sig.note


# --- C2PA / CAWG ---------------------------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("label", ["cawg.training-mining", "c2pa.training-mining", "cawg.training-mining__1"])
@pytest.mark.parametrize(
    ("entry", "cons", "strict"),
    [
        ("ai_training", {TRAIN: D}, {TRAIN: D}),
        ("ai_generative_training", {TRAIN: D}, {}),
        ("ai_inference", {INPUT: D}, {INPUT: D}),
        ("data_mining", {TRAIN: D, INPUT: D}, {}),
    ],
)
def test_c2pa_entry_mapping(label: str, entry: str, cons: dict, strict: dict, mode: Mode) -> None:
    prefix = label.split(".")[0]
    store = jumbf_manifest(label, {f"{prefix}.{entry}": {"use": "notAllowed"}})
    sigs = c2pa.signals(make_jpeg(c2pa_jumbf=store), "image/jpeg", mode=mode)
    assert [dict(s.verdicts) for s in sigs] == [cons if mode is C else strict]


@BOTH
@pytest.mark.parametrize(
    ("use", "verdict"),
    [("allowed", A), ("notAllowed", D), ("constrained", D), ("maybe", D), (None, D), (7, D)],
)
def test_c2pa_use_values(use: object, verdict: Verdict, mode: Mode) -> None:
    entry = {"use": use, "constraint_info": "ask first"} if use is not None else {}
    store = jumbf_manifest("cawg.training-mining", {"cawg.ai_training": entry})
    [sig] = c2pa.signals(make_png(c2pa_jumbf=store), None, mode=mode)
    assert sig.verdicts == {TRAIN: verdict}
    if use != "allowed" and use != "notAllowed":
        assert "notAllowed" in sig.note


def test_c2pa_constraints_info_spelling_accepted() -> None:
    store = jumbf_manifest(
        "cawg.training-mining", {"cawg.ai_training": {"use": "constrained", "constraints_info": "pay"}}
    )
    [sig] = c2pa.signals(store, None, mode=C)
    assert "pay" in sig.note


def test_c2pa_custom_and_unknown_entries_ignored() -> None:
    store = jumbf_manifest(
        "cawg.training-mining",
        {
            "com.example.thing": {"use": "notAllowed"},
            "cawg.unknown_kind": {"use": "notAllowed"},
            "cawg.ai_inference": {"use": "allowed"},
        },
    )
    assert [s.verdicts for s in c2pa.signals(store, None, mode=C)] == [{INPUT: A}]


def test_c2pa_other_assertions_ignored() -> None:
    store = jumbf_manifest("c2pa.actions", {"c2pa.ai_training": {"use": "notAllowed"}})
    assert c2pa.signals(make_jpeg(c2pa_jumbf=store), None, mode=C) == []


@pytest.mark.parametrize("carrier", ["jpeg", "jpeg-multisegment", "png", "webp", "standalone", "embedded"])
def test_c2pa_carriers(carrier: str) -> None:
    store = jumbf_manifest("cawg.training-mining", {"cawg.ai_training": {"use": "notAllowed"}})
    body = {
        "jpeg": lambda: make_jpeg(c2pa_jumbf=store),
        "jpeg-multisegment": lambda: make_jpeg(c2pa_jumbf=store, c2pa_chunk=64),
        "png": lambda: make_png(c2pa_jumbf=store),
        "webp": lambda: make_webp(c2pa_jumbf=store),
        "standalone": lambda: store,
        # e.g. a BMFF 'uuid' box or a PDF attachment: found by the bounded 'jumb' scan
        "embedded": lambda: b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100 + store + b"\x00" * 100,
    }[carrier]()
    sigs = media.signals(body, None, mode=C)
    assert [(s.protocol, s.where, s.value) for s in sigs] == [("c2pa", "c2pa", "notAllowed")]
    assert "cawg.training-mining: cawg.ai_training=notAllowed" in sigs[0].rule


def test_c2pa_jpeg_multisegment_actually_split() -> None:
    store = jumbf_manifest("cawg.training-mining", {"cawg.ai_training": {"use": "notAllowed"}})
    body = make_jpeg(c2pa_jumbf=store, c2pa_chunk=64)
    assert body.count(b"\xff\xeb") > 5
    assert c2pa.find_jumbf(body) == [store]


def test_c2pa_ingredient_manifest() -> None:
    store = jumbf_manifest(
        "cawg.training-mining",
        {"cawg.ai_inference": {"use": "allowed"}},
        ingredient=(
            "cawg.training-mining",
            {"cawg.ai_training": {"use": "notAllowed"}, "cawg.data_mining": {"use": "allowed"}},
        ),
    )
    cons = c2pa.signals(store, None, mode=C)
    strict = c2pa.signals(store, None, mode=S)
    # conservative: the ingredient's restriction is honoured, its permission is not; strict: active manifest only
    assert sorted(str(dict(s.verdicts)) for s in cons) == sorted([str({TRAIN: D}), str({INPUT: A})])
    assert any("ingredient" in s.note for s in cons)
    assert [dict(s.verdicts) for s in strict] == [{INPUT: A}]


def test_c2pa_malformed_content_noted() -> None:
    store = jumbf_superbox(
        jumbf_uuid(b"c2pa"),
        "c2pa",
        [
            jumbf_superbox(
                jumbf_uuid(b"c2ma"),
                "urn:x",
                [
                    jumbf_superbox(
                        jumbf_uuid(b"c2as"),
                        "c2pa.assertions",
                        [
                            jumbf_superbox(
                                jumbf_uuid(b"cbor"), "cawg.training-mining", [jumbf_box(b"cbor", b"\xbf\x61")]
                            ),
                        ],
                    )
                ],
            )
        ],
    )
    [sig] = c2pa.signals(store, None, mode=C)
    assert sig.verdicts == {} and "undecodable" in sig.note


def test_c2pa_assertion_without_entries() -> None:
    [sig] = c2pa.signals(jumbf_manifest("cawg.training-mining", {}, data={"metadata": {}}), None, mode=C)
    assert sig.verdicts == {} and "without entries" in sig.note


def test_c2pa_brotli_compressed_assertion_noted() -> None:
    box = jumbf_superbox(jumbf_uuid(b"cbor"), "cawg.training-mining", [jumbf_box(b"brob", b"cbor" + b"\x0b\x02\x80")])
    [sig] = c2pa.signals(jumbf_superbox(jumbf_uuid(b"c2pa"), "c2pa", [box]), None, mode=C)
    assert sig.verdicts == {} and "brotli" in sig.note


def test_c2pa_json_manifest_report_active_manifest() -> None:
    report = {
        "active_manifest": "urn:b",
        "manifests": {
            "urn:a": {
                "assertions": [
                    {"label": "cawg.training-mining", "data": {"entries": {"cawg.ai_inference": {"use": "notAllowed"}}}}
                ]
            },
            "urn:b": {
                "assertions": [
                    {"label": "cawg.training-mining", "data": {"entries": {"cawg.ai_training": {"use": "allowed"}}}}
                ]
            },
        },
    }
    body = json.dumps(report).encode()
    assert sorted(str(dict(s.verdicts)) for s in c2pa.signals(body, None, mode=C)) == sorted(
        [str({INPUT: D}), str({TRAIN: A})]
    )
    assert [dict(s.verdicts) for s in c2pa.signals(body, None, mode=S)] == [{TRAIN: A}]


def test_c2pa_json_without_assertion_is_cheap_noop() -> None:
    assert c2pa.signals(b'{"a": [1, 2, 3]}', "application/json", mode=C) == []
    assert c2pa.signals(b"[" * 100_000 + b'"training-mining"', None, mode=C) == []


def test_c2pa_deeply_nested_boxes_bounded() -> None:
    box = assertion_box("cawg.training-mining", {"entries": {"cawg.ai_training": {"use": "notAllowed"}}})
    for _ in range(200):
        box = jumbf_superbox(jumbf_uuid(b"xxxx"), "n", [box])
    assert c2pa.signals(box, None, mode=C) == []  # below the depth cap: not reached, no crash


def test_c2pa_truncated_store_still_readable_prefix() -> None:
    """A cut store may lose its statement (a verdict-less note is left) but never turns into another one."""
    store = jumbf_manifest("cawg.training-mining", {"cawg.ai_training": {"use": "notAllowed"}})
    full = c2pa.signals(store, None, mode=C)
    assert [dict(s.verdicts) for s in full] == [{TRAIN: D}]
    for cut in range(0, len(store), 7):
        part = c2pa.signals(store[:cut], None, mode=C)
        assert all(s in full for s in part if s.verdicts) and well_formed(part, "c2pa") <= {TRAIN}, cut


# --- CBOR decoder --------------------------------------------------------------------------------------------

cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=40,
)


@FUZZ
@given(cbor_values)
def test_cbor_roundtrip_against_cbor2(value: object) -> None:
    assert cbor_loads(cbor2.dumps(value)) == value


def test_cbor_indefinite_lengths_and_tags() -> None:
    assert cbor_loads(b"\x9f\x01\x02\xff") == [1, 2]
    assert cbor_loads(b"\xbf\x61a\x01\xff") == {"a": 1}
    assert cbor_loads(b"\x7f\x61a\x61b\xff") == "ab"
    assert cbor_loads(b"\xc1\x1a\x00\x00\x00\x01") == 1  # tag 1 (epoch time): meaning ignored
    assert cbor_loads(b"\xd8\x23\x63a.*") == "a.*"  # tag 35 (regex): never compiled
    assert cbor_loads(b"\xf9\x3c\x00") == 1.0  # half float


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\x1c",
        b"\x5a\xff\xff\xff\xff",
        b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff",
        b"\xff",
        b"\x9f\x01",
        b"\x81" * 100,
    ],
)
def test_cbor_malformed(bad: bytes) -> None:
    with pytest.raises(CborError):
        cbor_loads(bad)


class _NotComparable(Exception):
    """cbor2 gave a value our decoder has no counterpart for (a NaN, a date, a set, a frozen map)."""


def _as_ours(value: object) -> object:
    """cbor2's reading in our decoder's terms: tags are read through (their meaning ignored), simple values and
    ``undefined`` are None."""
    if isinstance(value, cbor2.CBORTag):
        return _as_ours(value.value)
    if isinstance(value, cbor2.CBORSimpleValue) or value is cbor2.undefined:
        return None
    if isinstance(value, float) and value != value:
        raise _NotComparable("NaN")
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, list):
        return [_as_ours(v) for v in value]
    if type(value) is dict:
        return {_as_ours(k): _as_ours(v) for k, v in value.items()}
    raise _NotComparable(type(value).__name__)


@FUZZ
@given(st.binary(max_size=500))
def test_fuzz_cbor_only_cbor_error(data: bytes) -> None:
    """Whatever decodes is what the reference decoder reads too (only CborError otherwise)."""
    try:
        value = cbor_loads(data)
    except CborError:
        return
    try:
        reference = _as_ours(cbor2.loads(data))
    except (cbor2.CBORDecodeError, _NotComparable, TypeError, ValueError, RecursionError):
        return  # cbor2 refuses it (we read leniently, e.g. invalid UTF-8), or has no comparable value
    assert value == reference


# --- corrupt files and fuzz ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _fixtures() -> tuple[bytes, ...]:
    packet = xmp_packet(PLUS_VOCAB + "DMI-PROHIBITED", "1")
    store = jumbf_manifest("cawg.training-mining", {"cawg.ai_training": {"use": "notAllowed"}})
    return (
        make_jpeg(packet, store, c2pa_chunk=200),
        make_png(packet, store, compressed=True),
        make_webp(packet, store),
        make_pdf(packet, compress=True),
        make_epub(opf_epub3("1")),
        make_gif(packet),
        make_tiff(packet),
        store,
    )


@pytest.mark.parametrize("index", range(8))
def test_every_truncation_of_every_fixture(index: int) -> None:
    body = _fixtures()[index]
    full = media.signals(body, None, mode=C)
    assert full, "the untruncated fixture carries statements"
    step = max(1, len(body) // 300)
    for cut in range(0, len(body), step):
        for mode in (C, S):
            embedded(media._collect(body[:cut], None, mode))


@pytest.mark.parametrize(
    "patch",
    [
        lambda b: b[:4] + b"\x00\x00" + b[6:],  # JPEG APP0 length 0
        lambda b: b[:4] + b"\x00\x01" + b[6:],  # length 1
        lambda b: b[:4] + b"\xff\xff" + b[6:],  # length past the end
        lambda b: b[:2] + b"\x00" * 10 + b[12:],  # not a marker: resync
        lambda b: b[:2] + b"\xff" * 1000 + b[2:],  # fill bytes
    ],
)
def test_corrupt_jpeg_segments(patch) -> None:  # type: ignore[no-untyped-def]
    """A corrupt segment can hide a statement, never invent one; strict still reserves no more than conservative."""
    intact = embedded(media._collect(_fixtures()[0], "image/jpeg", C))
    assert {("iptc", TRAIN), ("c2pa", TRAIN), ("tdmrep", TRAIN)} <= intact
    body = patch(_fixtures()[0])
    found = embedded(media._collect(body, "image/jpeg", C))
    assert embedded(media._collect(body, "image/jpeg", S)) <= found <= intact
    assert len(extract_xmp_packets(body)) <= xmp.MAX_PACKETS


@pytest.mark.parametrize("length", [0, 1, 2**31, 2**32 - 1])
def test_corrupt_png_chunk_lengths(length: int) -> None:
    body = bytearray(_fixtures()[1])
    struct.pack_into(">I", body, 8, length)  # IHDR length
    intact = embedded(media._collect(_fixtures()[1], "image/png", C))
    assert ("iptc", TRAIN) in intact
    found = embedded(media._collect(bytes(body), "image/png", C))
    assert embedded(media._collect(bytes(body), "image/png", S)) <= found <= intact


def test_media_signals_never_raises_on_odd_input() -> None:
    for body in (None, "text", b"", b"\x00", 12):
        assert media.signals(body, None, mode=C) == []  # type: ignore[arg-type]


@FUZZ
@given(st.binary(max_size=4000), st.sampled_from([None, "image/jpeg", "application/pdf", "text/html", "image/svg+xml"]))
def test_fuzz_random_bytes(body: bytes, content_type: str | None) -> None:
    """Random bytes hold no statement: nothing is reserved, in either mode, and nothing is allowed either."""
    for mode in (C, S):
        found = media._collect(body, content_type, mode)
        assert embedded(found) == set() and not any(s.verdicts for s in found), found
        assert well_formed(c2pa.signals(body, content_type, mode=mode), "c2pa") == set()
    packets = extract_xmp_packets(body, content_type)
    assert len(packets) <= xmp.MAX_PACKETS and len(set(packets)) == len(packets)  # bounded, no repeats
    for packet in packets:
        assert 0 < len(packet) <= xmp.MAX_PACKET_BYTES
        parse_xmp(packet)
    parse_xmp(body)


magic = st.sampled_from(
    [
        b"\xff\xd8\xff",
        b"\x89PNG\r\n\x1a\n",
        b"RIFF\x00\x00\x00\x00WEBP",
        b"%PDF-",
        b"PK\x03\x04",
        b"GIF89a",
        b"II*\x00",
        b"\x00\x00\x00\x20jumb",
    ]
)


@FUZZ
@given(magic, st.binary(max_size=3000))
def test_fuzz_magic_prefixed_bytes(prefix: bytes, rest: bytes) -> None:
    strict = embedded(media._collect(prefix + rest, None, S))
    assert strict <= embedded(media._collect(prefix + rest, None, C))


@FUZZ
@given(st.data())
def test_fuzz_mutated_fixtures(data: st.DataObject) -> None:
    body = bytearray(data.draw(st.sampled_from(_fixtures())))
    for _ in range(data.draw(st.integers(1, 12))):
        pos = data.draw(st.integers(0, len(body) - 1))
        body[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        body = body[: data.draw(st.integers(0, len(body)))]
    strict = embedded(media._collect(bytes(body), None, S))
    assert strict <= embedded(media._collect(bytes(body), None, C))


@FUZZ
@given(st.text(max_size=200), st.sampled_from(["element", "attribute", "resource", "bag", "value"]))
def test_fuzz_iptc_values(value: str, style: str) -> None:
    doc = parse_xmp(xmp_packet(value.replace("\x00", ""), style=style))
    if doc is not None:
        for mode in (C, S):
            for sig in iptc.signals(doc, mode=mode):
                assert set(sig.verdicts) <= {TRAIN, INPUT, SEARCH}


def test_c2pa_box_budget_bounds_flat_stores() -> None:
    # 400k empty boxes inside one store: parsing stops at the box budget instead of walking them all.
    filler = b"\x00\x00\x00\x08free" * 400_000
    store = jumbf_superbox(jumbf_uuid(b"c2pa"), "c2pa", [filler])
    found = c2pa.signals(
        store + jumbf_manifest("cawg.training-mining", {"cawg.ai_training": {"use": "notAllowed"}}), None, mode=C
    )
    # The budget is spent on the filler, so the second store is not reached: bounded work wins over completeness
    # here, and only the file's own author can hide its own statement this way.
    assert found == []
    assert c2pa.signals(
        jumbf_manifest("cawg.training-mining", {"cawg.ai_training": {"use": "notAllowed"}}), None, mode=C
    )


def test_several_rdf_descriptions_are_merged() -> None:
    packet = xmp_packet(tdm_reservation="1").replace(
        b"</rdf:RDF>",
        b'<rdf:Description rdf:about="" xmlns:z="http://ns.useplus.org/ldf/xmp/1.0/" '
        b'z:DataMining="DMI-PROHIBITED"/></rdf:RDF>',
    )
    found = media.signals(make_webp(packet), "image/webp", mode=S)
    assert {s.protocol for s in found} == {"iptc", "tdmrep"}


# --- IPTC rules that mutation testing showed no test pinned (bench/mutation.py iptc) ----------------------------


@pytest.mark.parametrize(
    "written",
    [
        PLUS_VOCAB + "DMI-PROHIBITED/",  # a trailing slash on the vocabulary URI
        PLUS_VOCAB + "DMI-PROHIBITED//",
        "  DMI-PROHIBITED/ ",
        "/DMI-PROHIBITED",
    ],
)
def test_iptc_code_read_through_trailing_and_leading_slashes(written: str) -> None:
    assert iptc.normalise(written) == "DMI-PROHIBITED"
    (sig,) = iptc.signals(XmpDoc(props={(iptc.PLUS_NS, "DataMining"): [written]}), mode=S)
    assert dict(sig.verdicts) == {TRAIN: D, INPUT: D, SEARCH: D}


def test_iptc_values_and_constraints_are_bounded() -> None:
    values = [PLUS_VOCAB + "DMI-PROHIBITED"] * 20
    constraints = [f"constraint {i}" for i in range(5)]
    doc = XmpDoc(
        props={
            (iptc.PLUS_NS, "DataMining"): [PLUS_VOCAB + "DMI-PROHIBITED-SEECONSTRAINT", *values],
            (iptc.PLUS_NS, "OtherConstraints"): constraints,
        }
    )
    found = iptc.signals(doc, mode=C)
    assert len(found) == 16  # at most 16 values read per packet
    note = found[0].note
    assert all(f"constraint {i}" in note for i in range(3)) and "constraint 3" not in note


def test_iptc_extension_namespace_is_recorded_as_such() -> None:
    """Conservative mode also reads Iptc4xmpExt:DataMining; the record names that property, not plus:DataMining."""
    doc = XmpDoc(props={(iptc.IPTC_EXT_NS, "DataMining"): [PLUS_VOCAB + "DMI-PROHIBITED-AIMLTRAINING"]})
    assert iptc.signals(doc, mode=S) == []
    (sig,) = iptc.signals(doc, mode=C)
    assert sig.rule == "Iptc4xmpExt:DataMining = DMI-PROHIBITED-AIMLTRAINING"
    assert "non-standard property Iptc4xmpExt:DataMining" in sig.note and dict(sig.verdicts) == {TRAIN: D}


# --- C2PA rules that hand-made mutants showed no test pinned -----------------------------------------------------


@BOTH
def test_c2pa_assertion_outside_any_manifest_counts_as_active(mode: Mode) -> None:
    """A bare assertion box (no manifest around it) is read as the active manifest's: its permission is kept in
    strict mode too, unlike an ingredient's."""
    box = assertion_box("cawg.training-mining", {"entries": {"cawg.ai_training": {"use": "allowed"}}})
    (sig,) = c2pa.signals(box, None, mode=mode)
    assert dict(sig.verdicts) == {TRAIN: A} and "ingredient" not in sig.note


def test_c2pa_reads_at_most_64_entries_of_one_assertion() -> None:
    entries: dict[str, object] = {f"x{i}.custom": {"use": "allowed"} for i in range(64)}
    entries["cawg.ai_training"] = {"use": "notAllowed"}  # the 65th entry: past the cap
    store = jumbf_manifest("cawg.training-mining", entries)
    assert not any(s.verdicts for s in c2pa.signals(store, None, mode=C))
    del entries["x0.custom"]  # now the 64th
    assert [dict(s.verdicts) for s in c2pa.signals(jumbf_manifest("cawg.training-mining", entries), None, mode=C)] == [
        {TRAIN: D}
    ]


# --- XMP container walkers: what the structure gives that a marker scan cannot (bench/mutation.py xmp) ----------


def test_riff_chunks_are_walked_exactly() -> None:
    """Top-level chunks in order, odd sizes padded to even, nothing for a RIFF file that is not WebP."""
    from tests.support.media import riff_chunk

    chunks = riff_chunk(b"VP8X", bytes(10)) + riff_chunk(b"XMP ", b"odd") + riff_chunk(b"C2PA", b"ab")
    body = b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + chunks
    assert xmp.riff_chunks(body) == [(b"VP8X", bytes(10)), (b"XMP ", b"odd"), (b"C2PA", b"ab")]
    assert xmp.riff_chunks(body[:-1]) == [(b"VP8X", bytes(10)), (b"XMP ", b"odd"), (b"C2PA", b"a")]  # truncated
    assert xmp.riff_chunks(body[:8] + b"WAVE" + chunks) == []
    assert xmp.riff_chunks(b"RIFX" + body[4:]) == []


def test_webp_xmp_chunk_without_packet_markers_is_read() -> None:
    """A WebP ``XMP `` chunk holding bare RDF (no xpacket or x:xmpmeta wrapper, which a marker scan needs)."""
    rdf = xmp_packet(PLUS_VOCAB + "DMI-PROHIBITED", wrapper=False)
    body = make_webp(rdf)
    assert extract_xmp_packets(body) == [rdf]
    assert ("iptc", SEARCH) in embedded(media._collect(body, "image/webp", S))
    renamed = body.replace(b"XMP ", b"xmp ")  # an unknown chunk: not metadata
    assert extract_xmp_packets(renamed) == []


def test_bounded_inflate_takes_exactly_the_limit() -> None:
    data = zlib.compress(b"a" * 100)
    assert xmp.bounded_inflate(data, limit=100) == b"a" * 100
    assert xmp.bounded_inflate(data, limit=99) is None
    assert xmp.bounded_inflate(b"not zlib", limit=100) is None


@pytest.mark.parametrize("name", [b"/FlateDecode", b"[/FlateDecode]", b"/Fl ", b"/Fl/"])
def test_pdf_metadata_stream_filter_names(name: bytes) -> None:
    """A compressed metadata stream is inflated under the full filter name and its abbreviation; a stream with
    another filter is not (its bytes would be garbage)."""
    packet = xmp_packet(PLUS_VOCAB + "DMI-PROHIBITED")
    body = make_pdf(packet, compress=True).replace(b"/Filter /FlateDecode", b"/Filter " + name)
    assert extract_xmp_packets(body) == [packet]
    other = make_pdf(packet, compress=True).replace(b"/Filter /FlateDecode", b"/Filter /LZWDecode")
    assert extract_xmp_packets(other) == []
