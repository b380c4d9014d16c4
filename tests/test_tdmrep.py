"""TDMRep (PROTOCOLS.md §2, §7.3, §10.4; vectors 21-31, 83): tdmrep.json, headers, HTML meta, EPUB OPF, XMP, and
the processing priority between them."""

from __future__ import annotations

import functools
import io
import json
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from middlewares.protocols import tdmrep
from middlewares.protocols.html import scan_html
from middlewares.protocols.signals import AI_PURPOSES, Mode, Purpose, Signal, Verdict
from middlewares.protocols.tdmrep import (
    TdmrepError,
    effective,
    epub_signal,
    file_signals,
    header_signal,
    html_signal,
    opf_signal,
    parse_tdmrep_json,
    xmp_signal,
)
from middlewares.protocols.xmp import parse_xmp
from tests.support.media import TDM_NS_HASH, make_epub, opf_epub2, opf_epub3, xmp_packet
from tests.support.signals import well_formed

C, S = Mode.CONSERVATIVE, Mode.STRICT
BOTH = pytest.mark.parametrize("mode", [C, S])
FUZZ = settings(max_examples=150, deadline=1000, suppress_health_check=[HealthCheck.too_slow])


def reserved(signals: list[Signal]) -> bool:
    """The §10.4 combination for train-ai over TDMRep's effective signals: any disallow wins."""
    return any(s.denies(Purpose.TRAIN_AI) for s in signals)


def allowed(signals: list[Signal]) -> bool:
    return not reserved(signals) and any(s.verdict(Purpose.TRAIN_AI) is Verdict.ALLOW for s in signals)


def tdm_file(rules: object, mode: Mode = C) -> tdmrep.TdmrepFile:
    return parse_tdmrep_json(json.dumps(rules).encode(), mode=mode)


# --- §11 vectors ---------------------------------------------------------------------------------------------


@BOTH
def test_vector_21_header_zero_with_policy_not_reserved_policy_not_processed(mode: Mode) -> None:
    sig = header_signal(["0"], ["https://p.example/x.json"], mode=mode)
    assert sig is not None
    assert sig.verdicts == {Purpose.TRAIN_AI: Verdict.ALLOW, Purpose.AI_INPUT: Verdict.ALLOW}
    assert sig.value == "0" and sig.where == "header" and sig.protocol == "tdmrep"
    assert "not processed" in sig.note and "https://p.example/x.json" in sig.note
    assert Purpose.SEARCH not in sig.verdicts


@BOTH
def test_vector_23_root_rule_reserves_any_page(mode: Mode) -> None:
    f = parse_tdmrep_json(b'[{"location":"/","tdm-reservation":1}]', mode=mode)
    sigs = file_signals(f, "https://site.example/any/page", mode=mode)
    assert len(sigs) == 1
    assert sigs[0].rule == "location /" and sigs[0].value == "1" and sigs[0].where == "well-known"
    assert sigs[0].verdicts == {Purpose.TRAIN_AI: Verdict.DISALLOW, Purpose.AI_INPUT: Verdict.DISALLOW}


VECTOR_25 = b'[{"location":"/a/","tdm-reservation":0},{"location":"/a/private/","tdm-reservation":1}]'


def test_vector_25_strict_first_in_sequence_wins() -> None:
    f = parse_tdmrep_json(VECTOR_25, mode=S)
    sigs = file_signals(f, "https://h.example/a/private/x", mode=S)
    assert [s.value for s in sigs] == ["0"]
    assert sigs[0].rule == "location /a/"
    assert allowed(effective(sigs, mode=S))


def test_vector_25_conservative_reserved_and_conflict_logged() -> None:
    f = parse_tdmrep_json(VECTOR_25, mode=C)
    sigs = file_signals(f, "https://h.example/a/private/x", mode=C)
    assert [s.value for s in sigs] == ["0", "1"]
    assert "conflict" in sigs[1].note and "location /a/" in sigs[1].note
    eff = effective(sigs, mode=C)
    assert reserved(eff)
    assert all(s.value == "1" for s in eff)
    assert "conflict" in eff[0].note


def test_vector_25_other_paths_unaffected() -> None:
    f = parse_tdmrep_json(VECTOR_25, mode=C)
    assert [s.value for s in file_signals(f, "https://h.example/a/public", mode=C)] == ["0"]
    assert file_signals(f, "https://h.example/b/", mode=C) == []


def _vector_27(mode: Mode) -> list[Signal]:
    f = parse_tdmrep_json(b'[{"location":"/","tdm-reservation":1}]', mode=mode)
    sigs = file_signals(f, "https://h.example/page", mode=mode)
    header = header_signal(["0"], [], mode=mode)
    assert header is not None
    return effective([*sigs, header], mode=mode)


def test_vector_27_strict_header_supersedes_file() -> None:
    eff = _vector_27(S)
    assert len(eff) == 1 and eff[0].where == "header"
    assert allowed(eff)
    assert "supersedes" in eff[0].note


def test_vector_27_conservative_file_reservation_survives_header_zero() -> None:
    eff = _vector_27(C)
    assert reserved(eff)
    assert [s.where for s in eff] == ["well-known"]
    assert "conflict" in eff[0].note and "header" in eff[0].note


@BOTH
def test_vector_29_html_meta_supersedes_header(mode: Mode) -> None:
    header = header_signal(["0"], [], mode=mode)
    meta = html_signal(scan_html(b'<html><head><meta name="tdm-reservation" content="1"></head></html>'), mode=mode)
    assert header is not None and meta is not None
    eff = effective([header, meta], mode=mode)
    assert reserved(eff)
    assert eff[-1].where == "html-meta"


def _vector_31(mode: Mode) -> list[Signal]:
    header = header_signal(["1"], [], mode=mode)
    opf = opf_signal(opf_epub3("0"), mode=mode)
    assert header is not None and opf is not None
    assert opf.where == "opf" and opf.value == "0"
    return effective([header, opf], mode=mode)


def test_vector_31_strict_package_metadata_supersedes_header() -> None:
    eff = _vector_31(S)
    assert allowed(eff) and eff[0].where == "opf"


def test_vector_31_conservative_header_reservation_kept() -> None:
    eff = _vector_31(C)
    assert reserved(eff) and eff[0].where == "header"


@BOTH
def test_vector_83_epub2_opf_meta_name(mode: Mode) -> None:
    sig = opf_signal(b'<package><metadata><meta name="tdm:reservation" content="1" /></metadata></package>', mode=mode)
    assert sig is not None and reserved([sig])
    epub = epub_signal(make_epub(opf_epub2("1")), mode=mode)
    assert epub is not None and reserved([epub]) and epub.where == "opf"
    assert "content.opf" in epub.rule


# --- tdmrep.json parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "conservative", "strict"),
    [
        (1, 1, 1),
        (0, 0, 0),
        (1.0, 1, 1),
        ("1", 1, None),
        (" 1 ", 1, None),
        (True, 1, None),
        ("yes", 1, None),
        ("TRUE", 1, None),
        ("0", None, None),  # never guess a grant
        (False, None, None),
        ("no", None, None),
        (2, None, None),
        (-1, None, None),
        (None, None, None),
        ([1], None, None),
    ],
)
def test_reservation_values(value: object, conservative: int | None, strict: int | None) -> None:
    for mode, expected in ((C, conservative), (S, strict)):
        f = tdm_file([{"location": "/", "tdm-reservation": value}], mode)
        assert f.rules[0].reservation == expected, (mode, value)
        if expected is None or not isinstance(value, (int, float)) or isinstance(value, bool):
            assert f.notes, "a protocol error is always noted"


def test_missing_reservation_is_unset_and_first_match_still_decides() -> None:
    f = tdm_file([{"location": "/a/"}, {"location": "/", "tdm-reservation": 0}], S)
    sigs = file_signals(f, "https://h/a/x", mode=S)
    assert len(sigs) == 1 and sigs[0].verdicts == {} and "missing" in sigs[0].note
    assert effective(sigs, mode=S) == [sigs[0]]  # unset: decides nothing, note still surfaces
    assert not reserved(effective(sigs, mode=S)) and not allowed(effective(sigs, mode=S))


def test_lone_object_conservative_read_as_array() -> None:
    f = parse_tdmrep_json(b'{"location": "/", "tdm-reservation": 1}', mode=C)
    assert len(f.rules) == 1 and f.rules[0].reservation == 1
    assert any("single object" in n for n in f.notes)


def test_lone_object_strict_invalid() -> None:
    with pytest.raises(TdmrepError):
        parse_tdmrep_json(b'{"location": "/", "tdm-reservation": 1}', mode=S)


def test_object_without_clear_intent_is_invalid_even_conservative() -> None:
    with pytest.raises(TdmrepError):
        parse_tdmrep_json(b'{"rules": [{"location": "/", "tdm-reservation": 1}]}', mode=C)


@BOTH
@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"1", b'"x"', b"null", b"[", b'[{"location":"/"', b"\xff\xfe\x00garbage", b"[1,]"],
)
def test_invalid_files_raise_tdmrep_error(body: bytes, mode: Mode) -> None:
    with pytest.raises(TdmrepError) as info:
        parse_tdmrep_json(body, mode=mode)
    assert "\n" not in str(info.value)


def test_size_cap() -> None:
    body = b"[" + b" " * tdmrep.MAX_FILE_BYTES + b"]"
    with pytest.raises(TdmrepError, match="larger"):
        parse_tdmrep_json(body, mode=C)


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deep_nesting_rejected_before_json_recursion(opener: bytes) -> None:
    body = opener * 200_000
    with pytest.raises(TdmrepError, match="nested"):
        parse_tdmrep_json(body[: tdmrep.MAX_FILE_BYTES], mode=C)


def test_nesting_below_cap_is_fine() -> None:
    rules = [{"location": "/", "tdm-reservation": 1, "x": [[[[["deep"]]]]]}] * 50
    assert len(tdm_file(rules).rules) == 50


def test_depth_check_linear_on_unterminated_escaped_strings() -> None:
    # Many brackets force the depth scan; an unterminated string full of escaped quotes must not go quadratic.
    body = b"[" * 40 + b'"' + b'\\"' * 300_000
    with pytest.raises(TdmrepError):
        parse_tdmrep_json(body, mode=C)


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    rules = [{"location": "/", "tdm-reservation": 1, "tdm-policy": "https://p/" + "[" * 500}]
    assert tdm_file(rules).rules[0].policy.endswith("[")


def test_utf8_bom_accepted() -> None:
    f = parse_tdmrep_json(b'\xef\xbb\xbf[{"location":"/","tdm-reservation":1}]', mode=S)
    assert f.rules[0].reservation == 1


def test_entry_level_errors_are_notes_not_exceptions() -> None:
    f = tdm_file(
        [
            "string entry",
            {"tdm-reservation": 1},
            {"location": "", "tdm-reservation": 1},
            {"location": 5, "tdm-reservation": 1},
            {"location": "/ok", "tdm-reservation": 1, "tdm-policy": 7},
        ]
    )
    assert [r.location for r in f.rules] == ["/ok"]
    assert f.rules[0].policy is None
    assert len(f.notes) == 5


def test_location_without_leading_slash() -> None:
    cons = tdm_file([{"location": "docs/", "tdm-reservation": 1}], C)
    strict = tdm_file([{"location": "docs/", "tdm-reservation": 1}], S)
    assert reserved(file_signals(cons, "https://h/docs/a", mode=C))
    assert file_signals(strict, "https://h/docs/a", mode=S) == []
    assert cons.notes and strict.notes


def test_location_written_as_url_conservative() -> None:
    f = tdm_file([{"location": "https://h.example/docs/", "tdm-reservation": 1}], C)
    assert f.rules[0].location == "/docs/"
    assert reserved(file_signals(f, "https://h.example/docs/x", mode=C))


def test_duplicate_keys_conservative_keeps_reservation() -> None:
    body = b'[{"location": "/", "tdm-reservation": 1, "tdm-reservation": 0}]'
    assert parse_tdmrep_json(body, mode=C).rules[0].reservation == 1
    assert parse_tdmrep_json(body, mode=S).rules[0].reservation == 0  # JSON: last member wins
    assert any("duplicate" in n for n in parse_tdmrep_json(body, mode=S).notes)


# --- matching ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "path", "matches"),
    [
        ("/", "/x", True),
        ("/docs/", "/docs/a", True),
        ("/docs/", "/doc", False),
        ("/docs/", "/DOCS/a", False),  # case-sensitive
        ("/directory-b/images/*.jpg", "/directory-b/images/a/b.jpg", True),
        ("/directory-b/images/*.jpg", "/directory-b/images/b.png", False),
        ("/*.pdf$", "/a/b.pdf", True),
        ("/*.pdf$", "/a/b.pdf?x=1", False),
        ("*.pdf", "/a/b.pdf", True),
        ("/path/file-with-a-%2A.html", "/path/file-with-a-*.html", True),
        ("/path/file-with-a-%2A.html", "/path/file-with-a-x.html", False),
        ("/caf%C3%A9", "/café", True),
        ("/%7Euser/", "/~user/x", True),
        ("/search?q=", "/search?q=1", True),
    ],
)
def test_location_patterns(location: str, path: str, matches: bool) -> None:
    f = tdm_file([{"location": location, "tdm-reservation": 1}], S)
    assert bool(file_signals(f, "https://h.example" + path, mode=S)) is matches


@BOTH
def test_first_match_not_longest_match(mode: Mode) -> None:
    f = tdm_file([{"location": "/", "tdm-reservation": 0}, {"location": "/a/b/c/", "tdm-reservation": 0}], mode)
    assert file_signals(f, "https://h/a/b/c/d", mode=mode)[0].rule == "location /"


def test_policy_with_reservation_goes_in_note() -> None:
    f = tdm_file([{"location": "/", "tdm-reservation": 1, "tdm-policy": "https://h/policy.json"}], S)
    assert file_signals(f, "https://h/x", mode=S)[0].note == "policy: https://h/policy.json"


def test_conservative_later_non_reserving_matches_not_added() -> None:
    f = tdm_file(
        [{"location": "/a/", "tdm-reservation": 1}, {"location": "/a/b", "tdm-reservation": 0}, {"location": "/a"}], C
    )
    assert [s.value for s in file_signals(f, "https://h/a/b", mode=C)] == ["1"]


# --- headers -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "conservative", "strict"),
    [
        (["1"], "disallow", "disallow"),
        ([" 1 "], "disallow", "disallow"),  # OWS is not part of a field value
        (["0"], "allow", "allow"),
        (["true"], "disallow", None),
        (["Yes"], "disallow", None),
        (["2"], None, None),
        (["1", "1"], "disallow", "disallow"),
        (["1, 1"], "disallow", "disallow"),
        (["1", "0"], "disallow", None),
        (["0", "1"], "disallow", None),
        (["0", "bogus"], "allow", None),
    ],
)
def test_header_values(lines: list[str], conservative: str | None, strict: str | None) -> None:
    for mode, expected in ((C, conservative), (S, strict)):
        sig = header_signal(lines, [], mode=mode)
        assert sig is not None
        got = sig.verdicts.get(Purpose.TRAIN_AI)
        assert (got.value if got else None) == expected, (mode, lines)
        if expected is None:
            assert sig.note


def test_header_absent_is_none() -> None:
    assert header_signal([], ["https://p"], mode=C) is None
    assert header_signal(["", "  "], [], mode=S) is None


def test_header_reservation_with_policy() -> None:
    sig = header_signal(["1"], ["https://provider.example/policies/policy.json"], mode=S)
    assert sig is not None and sig.note == "policy: https://provider.example/policies/policy.json"
    assert sig.rule == "tdm-reservation header"


# --- HTML meta -----------------------------------------------------------------------------------------------


def _html(meta: str) -> bytes:
    return f"<!doctype html><html><head><title>t</title>\n{meta}\n</head><body>x</body></html>".encode()


@BOTH
def test_html_meta_name_case_insensitive(mode: Mode) -> None:
    sig = html_signal(scan_html(_html('<META NAME="TDM-Reservation" CONTENT="1">')), mode=mode)
    assert sig is not None and reserved([sig]) and sig.where == "html-meta" and "line 2" in sig.rule


@BOTH
def test_html_meta_zero_and_policy(mode: Mode) -> None:
    head = scan_html(
        _html('<meta name="tdm-reservation" content="0"><meta name="tdm-policy" content="https://p.example/p">')
    )
    sig = html_signal(head, mode=mode)
    assert sig is not None and allowed([sig]) and "not processed" in sig.note


def test_html_http_equiv_only_conservative() -> None:
    head = scan_html(_html('<meta http-equiv="tdm-reservation" content="1">'))
    assert html_signal(head, mode=S) is None
    sig = html_signal(head, mode=C)
    assert sig is not None and reserved([sig]) and "http-equiv" in sig.note


def test_html_without_tdm_meta() -> None:
    assert html_signal(scan_html(_html('<meta name="robots" content="noai">')), mode=C) is None


def test_html_commented_meta_ignored() -> None:
    assert html_signal(scan_html(_html('<!-- <meta name="tdm-reservation" content="1"> -->')), mode=C) is None


def test_html_conflicting_metas() -> None:
    head = scan_html(_html('<meta name="tdm-reservation" content="0">\n<meta name="tdm-reservation" content="1">'))
    cons, strict = html_signal(head, mode=C), html_signal(head, mode=S)
    assert cons is not None and reserved([cons])
    assert strict is not None and strict.verdicts == {} and "disagreeing" in strict.note


# --- EPUB / OPF ----------------------------------------------------------------------------------------------


@BOTH
def test_epub3_property_reserved(mode: Mode) -> None:
    sig = opf_signal(opf_epub3("1", "https://p.example/policy.json"), mode=mode)
    assert sig is not None and reserved([sig]) and sig.note == "policy: https://p.example/policy.json"
    assert 'property="tdm:reservation"' in sig.rule


@BOTH
def test_epub3_prefix_resolved_by_iri_not_name(mode: Mode) -> None:
    sig = opf_signal(opf_epub3("1", prefix="rights"), mode=mode)
    assert sig is not None and reserved([sig])
    # a tdm: prefix bound to some other vocabulary is not TDMRep
    assert opf_signal(opf_epub3("1", iri="http://example.org/other#"), mode=mode) is None


@BOTH
def test_epub3_undeclared_tdm_prefix_accepted_with_note(mode: Mode) -> None:
    sig = opf_signal(opf_epub3("1", iri=None), mode=mode)
    assert sig is not None and reserved([sig]) and "not declared" in sig.note


def test_epub3_slash_iri_tolerated() -> None:
    sig = opf_signal(opf_epub3("1", iri="http://www.w3.org/ns/tdmrep/"), mode=S)
    assert sig is not None and reserved([sig]) and "expected" in sig.note


@BOTH
def test_epub2_policy_and_zero(mode: Mode) -> None:
    sig = opf_signal(opf_epub2("0", "https://p.example/x"), mode=mode)
    assert sig is not None and allowed([sig]) and "not processed" in sig.note


@BOTH
def test_opf_without_tdm_meta(mode: Mode) -> None:
    assert opf_signal(opf_epub3(None), mode=mode) is None
    assert opf_signal(b"not xml", mode=mode) is None
    assert opf_signal(b"", mode=mode) is None


def test_opf_invalid_value_strict_unset_conservative_reserved() -> None:
    assert opf_signal(opf_epub3("yes"), mode=S).verdicts == {}
    assert reserved([opf_signal(opf_epub3("yes"), mode=C)])


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE package [
 <!ENTITY a "1">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
 <!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">
 <!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">
 <!ENTITY i "&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;">
]>
<package><metadata><meta name="tdm:reservation" content="&i;"/></metadata></package>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE package [<!ENTITY x SYSTEM "file:///etc/hostname">]>
<package><metadata><meta property="tdm:reservation">&x;</meta></metadata></package>"""


@BOTH
@pytest.mark.parametrize("doc", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_opf_entities_refused_without_expansion(doc: bytes, mode: Mode) -> None:
    assert opf_signal(doc, mode=mode) is None
    assert epub_signal(make_epub(doc), mode=mode) is None


def test_opf_plain_doctype_tolerated() -> None:
    doc = b'<?xml version="1.0"?>\n<!DOCTYPE package SYSTEM "opf.dtd">\n' + opf_epub2("1").split(b"?>", 1)[1]
    assert reserved([opf_signal(doc, mode=S)])


@BOTH
def test_epub3_end_to_end(mode: Mode) -> None:
    sig = epub_signal(make_epub(opf_epub3("1"), opf_path="book/package.opf"), mode=mode)
    assert sig is not None and reserved([sig]) and "book/package.opf" in sig.rule


def test_epub_missing_container_conservative_fallback_only() -> None:
    epub = make_epub(opf_epub3("1"), container=False)
    assert epub_signal(epub, mode=S) is None
    sig = epub_signal(epub, mode=C)
    assert sig is not None and reserved([sig]) and "container.xml" in sig.note


def test_epub_without_tdm() -> None:
    assert epub_signal(make_epub(opf_epub3(None)), mode=C) is None


@functools.lru_cache(maxsize=1)
def _zip_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), b"application/epub+zip")
        zf.writestr(
            "META-INF/container.xml",
            b'<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            b'<rootfile full-path="content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>',
        )
        zf.writestr("content.opf", b"\0" * 40_000_000, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return buf.getvalue()


@BOTH
def test_epub_zip_bomb_bounded(mode: Mode) -> None:
    # The package document inflates to 40 MB (10x the cap) from ~40 kB; reading stops at the per-member cap.
    bomb = _zip_bomb()
    assert len(bomb) < 100_000
    assert epub_signal(bomb, mode=mode) is None


def test_epub_too_many_entries_refused_before_parsing() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mimetype", b"application/epub+zip")
        for i in range(tdmrep.MAX_EPUB_ENTRIES + 1):
            zf.writestr(f"f{i}", b"")
        zf.writestr("META-INF/container.xml", b"")
    assert epub_signal(buf.getvalue(), mode=C) is None


@BOTH
@pytest.mark.parametrize("cut", [10, 100, 300, 600, -50, -10])
def test_truncated_epub(cut: int, mode: Mode) -> None:
    epub = make_epub(opf_epub3("1"))
    assert epub_signal(epub[:cut], mode=mode) is None or reserved([epub_signal(epub[:cut], mode=mode)])


def test_epub_garbage() -> None:
    assert epub_signal(b"PK\x03\x04" + b"\x00" * 100, mode=C) is None
    assert epub_signal(b"", mode=C) is None


# --- XMP (PDF) -----------------------------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("ns", ["http://www.w3.org/ns/tdmrep/", TDM_NS_HASH])
def test_xmp_tdm_namespace_slash_and_hash(ns: str, mode: Mode) -> None:
    doc = parse_xmp(xmp_packet(tdm_reservation="1", tdm_ns=ns, tdm_prefix="t0"))
    sig = xmp_signal(doc, mode=mode)
    assert sig is not None and reserved([sig]) and sig.where == "xmp"
    assert ("#" in sig.note) is (ns == TDM_NS_HASH)


@BOTH
def test_xmp_tdm_attribute_form_and_policy(mode: Mode) -> None:
    doc = parse_xmp(xmp_packet(tdm_reservation="1", tdm_policy="https://p.example/x", attribute_form=True))
    sig = xmp_signal(doc, mode=mode)
    assert sig is not None and reserved([sig]) and sig.note == "policy: https://p.example/x"


def test_xmp_tdm_wrong_namespace_ignored() -> None:
    doc = parse_xmp(xmp_packet(tdm_reservation="1", tdm_ns="http://example.org/tdm/"))
    assert xmp_signal(doc, mode=C) is None


def test_xmp_without_tdm() -> None:
    assert xmp_signal(parse_xmp(xmp_packet(data_mining="DMI-ALLOWED")), mode=C) is None


# --- effective ---------------------------------------------------------------------------------------------------


def _sig(where: str, value: str) -> Signal:
    sig = header_signal([value], [], mode=C)
    assert sig is not None
    return Signal("tdmrep", where, sig.value, f"{where} rule", sig.verdicts, note=sig.note)


@BOTH
def test_effective_absence_never_resets(mode: Mode) -> None:
    unset = Signal("tdmrep", "html-meta", "maybe", "meta", {}, note="protocol error")
    eff = effective([_sig("header", "1"), unset], mode=mode)
    assert [s.where for s in eff] == ["header"] and reserved(eff)


def test_effective_strict_last_wins_both_directions() -> None:
    assert reserved(effective([_sig("well-known", "0"), _sig("header", "1")], mode=S))
    assert allowed(effective([_sig("well-known", "1"), _sig("header", "0")], mode=S))
    assert effective([_sig("a", "1"), _sig("b", "1")], mode=S)[0].note == ""


def test_effective_conservative_keeps_every_reservation() -> None:
    sigs = [_sig("well-known", "1"), _sig("header", "0"), _sig("html-meta", "1"), _sig("xmp", "0")]
    eff = effective(sigs, mode=C)
    assert [s.where for s in eff] == ["well-known", "html-meta"]
    assert all("conflict" in s.note for s in eff)


def test_effective_conservative_no_reservation_last_value() -> None:
    eff = effective([_sig("well-known", "0"), _sig("header", "0")], mode=C)
    assert [s.where for s in eff] == ["header"] and allowed(eff)


def test_effective_empty() -> None:
    assert effective([], mode=C) == []
    assert effective([Signal("tdmrep", "header", "x", "r", {})], mode=S) == []


# --- fuzz --------------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
rule_like = st.fixed_dictionaries(
    {},
    optional={
        "location": st.text(max_size=30) | st.integers(),
        "tdm-reservation": json_values,
        "tdm-policy": json_values,
    },
)


@FUZZ
@given(st.binary(max_size=2000))
def test_fuzz_parse_random_bytes(body: bytes) -> None:
    for mode in (C, S):
        try:
            f = parse_tdmrep_json(body, mode=mode)
        except TdmrepError:
            continue
        sigs = file_signals(f, "https://h/x", mode=mode)
        assert len(sigs) <= 1 or mode is C
        well_formed(sigs, "tdmrep", AI_PURPOSES)


@FUZZ
@given(st.lists(rule_like | json_values, max_size=8) | json_values, st.text(max_size=40))
def test_fuzz_parse_structured(data: object, path: str) -> None:
    body = json.dumps(data).encode()
    for mode in (C, S):
        try:
            f = parse_tdmrep_json(body, mode=mode)
        except TdmrepError:
            continue
        sigs = file_signals(f, "https://h/" + path, mode=mode)
        assert len(sigs) <= 1 or mode is C
        well_formed(sigs, "tdmrep", AI_PURPOSES)
        assert effective(effective(sigs, mode=mode), mode=mode) == effective(sigs, mode=mode)


@FUZZ
@given(st.lists(st.text(max_size=30), max_size=5), st.lists(st.text(max_size=30), max_size=3))
def test_fuzz_headers(values: list[str], policies: list[str]) -> None:
    """Resolving is idempotent, and conservative resolution keeps every reservation strict resolution keeps."""
    found = [s for s in (header_signal(values, policies, mode=m) for m in (C, S, C)) if s is not None]
    well_formed(found, "tdmrep", AI_PURPOSES)
    for mode in (C, S):
        once = effective(found, mode=mode)
        assert effective(once, mode=mode) == once
    assert well_formed(effective(found, mode=S), "tdmrep") <= well_formed(effective(found, mode=C), "tdmrep")


@FUZZ
@given(st.binary(max_size=3000))
def test_fuzz_opf_and_epub(body: bytes) -> None:
    """Shape, and strict mode never reserves what conservative mode does not, for each carrier."""
    denied = {}
    for mode in (C, S):
        found = [opf_signal(body, mode=mode), epub_signal(b"PK\x03\x04" + body, mode=mode)]
        found.append(html_signal(scan_html(body), mode=mode))
        denied[mode] = [well_formed([s] if s is not None else [], "tdmrep", AI_PURPOSES) for s in found]
    assert all(strict <= cons for strict, cons in zip(denied[S], denied[C], strict=True)), denied


@FUZZ
@given(st.data())
def test_fuzz_mutated_epub(data: st.DataObject) -> None:
    epub = bytearray(make_epub(opf_epub3("1")))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(epub) - 1))
        epub[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(epub)))
    strict, cons = (epub_signal(bytes(epub[:cut]), mode=mode) for mode in (S, C))
    denied = well_formed([strict] if strict else [], "tdmrep", AI_PURPOSES)
    assert denied <= well_formed([cons] if cons else [], "tdmrep", AI_PURPOSES)


LOCATION = st.sampled_from(["/", "/a", "/a/", "/ab", "/b", "a", "/a*b", "/a$"]) | st.text(
    "ab/*$%", min_size=1, max_size=5
)


@given(
    st.lists(st.tuples(LOCATION, st.sampled_from([0, 1, "1", None])), max_size=4),
    st.lists(st.sampled_from(["/", "/a", "/a/b", "/ab", "/b", "/a?x"]) | st.text("ab/%*$?", max_size=7), max_size=10),
    st.sampled_from([C, S]),
)
@FUZZ
def test_file_remembered_answers_equal_a_fresh_file(rules: list, paths: list[str], mode: Mode) -> None:
    """Answers are remembered per path prefix: one file asked about many URLs says what a fresh parse says."""
    entries = [{"location": loc, "tdm-reservation": value} for loc, value in rules]
    warm = tdm_file(entries, mode)
    for path in paths:
        url = "https://h" + (path if path.startswith("/") else "/" + path)
        fresh = file_signals(tdm_file(entries, mode), url, mode=mode, source="https://h/.well-known/tdmrep.json")
        assert file_signals(warm, url, mode=mode, source="https://h/.well-known/tdmrep.json") == fresh
        assert all(s.source == "https://h/.well-known/tdmrep.json" for s in fresh)


# --- rules that mutation testing showed no test pinned (bench/mutation.py tdmrep) ---------------------------------

OPF_HEAD = (
    '<?xml version="1.0"?>\n<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid"'
    ' prefix="{prefix}">\n  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
)


def opf3(metas: str, prefix: str = f"tdm: {TDM_NS_HASH}") -> bytes:
    return (OPF_HEAD.format(prefix=prefix) + metas + "  </metadata>\n</package>\n").encode()


@pytest.mark.parametrize("mode", [C, S])
def test_opf_tdm_meta_found_after_unrelated_and_foreign_metas(mode: Mode) -> None:
    """Metas that are not TDMRep's (no name or property, another vocabulary, an undeclared or a foreign prefix
    with a ``reservation`` property) are skipped, never end the search."""
    body = opf3(
        "    <meta/>\n"
        '    <meta property="dcterms:modified">2026-01-01T00:00:00Z</meta>\n'
        '    <meta property="x:reservation">0</meta>\n'
        '    <meta property="other:reservation">0</meta>\n'
        '    <meta property="tdm:reservation">1</meta>\n',
        prefix=f"other: http://example.org/other# tdm: {TDM_NS_HASH}",
    )
    sig = opf_signal(body, mode=mode)
    assert sig is not None and sig.value == "1" and sig.denies(Purpose.TRAIN_AI), sig


def test_opf_prefix_attribute_maps_each_name_to_its_own_iri() -> None:
    """``prefix="tdm: <TDMRep IRI> dc2: <other>"``: tdm is TDMRep's, whatever follows it."""
    body = opf3('    <meta property="tdm:reservation">1</meta>\n', prefix=f"tdm: {TDM_NS_HASH} dc2: http://x.example/")
    sig = opf_signal(body, mode=S)
    assert sig is not None and sig.denies(Purpose.TRAIN_AI)
    swapped = opf3(
        '    <meta property="tdm:reservation">1</meta>\n', prefix=f"dc2: {TDM_NS_HASH} tdm: http://x.example/"
    )
    assert opf_signal(swapped, mode=S) is None  # tdm bound to another vocabulary: not TDMRep


def test_opf_refines_is_package_wide_only_in_conservative_mode() -> None:
    body = opf3('    <meta property="tdm:reservation" refines="#chapter1">1</meta>\n')
    assert opf_signal(body, mode=S) is None
    sig = opf_signal(body, mode=C)
    assert sig is not None and sig.denies(Purpose.TRAIN_AI) and "refines" in sig.note


def test_opf_only_tdm_policy_property_is_a_policy() -> None:
    body = opf3(
        '    <meta property="tdm:reservation">1</meta>\n'
        '    <meta property="tdm:other">https://x.example/not-a-policy</meta>\n'
        '    <meta property="tdm:policy">https://x.example/policy</meta>\n'
    )
    sig = opf_signal(body, mode=C)
    assert sig is not None and "https://x.example/policy" in sig.note and "not-a-policy" not in sig.note


def test_epub_container_with_doctype_and_rootfile_media_types() -> None:
    """container.xml with a DOCTYPE is still read; a rootfile without media-type is the package document, one
    with another media type is not (strict mode: no fallback to any .opf member)."""
    opf = opf_epub3("1")

    def epub(container: bytes) -> bytes:
        return make_epub(opf, container=False, extra={"META-INF/container.xml": container})

    rootfile = '<rootfile full-path="OEBPS/content.opf"{media}/>'
    template = (
        '<?xml version="1.0"?>\n{doctype}<container version="1.0" '
        'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>{rootfile}</rootfiles></container>\n'
    )
    doctype = "<!DOCTYPE container>\n"
    typed = rootfile.format(media=' media-type="application/oebps-package+xml"')
    assert epub_signal(epub(template.format(doctype=doctype, rootfile=typed).encode()), mode=S) is not None
    bare = rootfile.format(media="")
    assert epub_signal(epub(template.format(doctype="", rootfile=bare).encode()), mode=S) is not None
    other = rootfile.format(media=' media-type="application/pdf"')
    assert epub_signal(epub(template.format(doctype="", rootfile=other).encode()), mode=S) is None


def test_html_meta_without_content_does_not_end_the_search() -> None:
    head = scan_html(
        b'<head><meta name="tdm-reservation"><meta name="description" content="our tdm-policy is strict">'
        b'<meta name="tdm-reservation" content="1"></head>'
    )
    sig = html_signal(head, mode=S)
    assert sig is not None and sig.denies(Purpose.TRAIN_AI)
    assert "without content" in sig.note and "policy" not in sig.note  # a description is not a tdm-policy


OPF_META = st.sampled_from(
    [
        '<meta property="tdm:reservation">1</meta>',
        '<meta property="tdm:reservation">0</meta>',
        '<meta property="tdm:reservation">yes</meta>',
        '<meta property="tdm:reservation" refines="#c1">1</meta>',
        '<meta property="tdm:policy">https://x.example/p</meta>',
        '<meta property="x:reservation">1</meta>',
        '<meta name="tdm:reservation" content="1"/>',
        '<meta name="tdm:reservation" content="0"/>',
        '<meta name="tdm:policy" content="https://x.example/p"/>',
        '<meta property="dcterms:modified">2026-01-01T00:00:00Z</meta>',
        "<meta/>",
    ]
)
OPF_PREFIX = st.sampled_from([f"tdm: {TDM_NS_HASH}", "tdm: http://www.w3.org/ns/tdmrep/", "tdm: http://x/", "", "x:"])


@FUZZ
@given(st.lists(OPF_META, max_size=6), OPF_PREFIX)
def test_fuzz_opf_metas(metas: list[str], prefix: str) -> None:
    """Any mix of package metas: strict mode never reserves what conservative mode does not, and the answer
    does not depend on unrelated metas placed around the TDMRep ones."""
    body = opf3("".join(f"    {m}\n" for m in metas), prefix=prefix)
    found = {mode: opf_signal(body, mode=mode) for mode in (C, S)}
    denied = {mode: well_formed([s] if s else [], "tdmrep", AI_PURPOSES) for mode, s in found.items()}
    assert denied[S] <= denied[C], (metas, prefix, found)
    padded = opf3("    <meta/>\n" + "".join(f"    {m}\n    <meta/>\n" for m in metas), prefix=prefix)
    assert {mode: opf_signal(padded, mode=mode) for mode in (C, S)} == found
