"""Really Simple Licensing: discovery, safe parsing, interpretation (PROTOCOLS.md §5, vectors 57–61)."""

from __future__ import annotations

from dataclasses import dataclass
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middlewares.protocols import rsl
from middlewares.protocols.html import scan_html
from middlewares.protocols.signals import Mode, Purpose, Verdict
from tests.support.signals import well_formed

C, S = Mode.CONSERVATIVE, Mode.STRICT
TRAIN, INPUT, SEARCH = Purpose.TRAIN_AI, Purpose.AI_INPUT, Purpose.SEARCH
ALLOW, DENY = Verdict.ALLOW, Verdict.DISALLOW
NS = 'xmlns="https://rslstandard.org/rsl"'

try:
    from middlewares.protocols.robots import Extension
except ImportError:

    @dataclass(frozen=True)
    class Extension:  # type: ignore[no-redef]
        key: str
        value: str
        line: int


def doc(inner: str, ns: str = NS) -> bytes:
    return f"<rsl {ns}>{inner}</rsl>".encode()


def verdicts(body: bytes, url: str = "https://site.example/a/b", mode: Mode = C, **kw: object) -> dict:
    parsed = rsl.parse_license(body, mode=mode)
    out: dict[Purpose, Verdict] = {}
    for sig in rsl.signals(parsed, url, mode=mode, source="https://site.example/license.xml", **kw):  # type: ignore[arg-type]
        assert sig.protocol == "rsl" and sig.where == "license"
        assert sig.source == "https://site.example/license.xml"
        for p, v in sig.verdicts.items():
            if v is DENY or p not in out:
                out[p] = v
    return out


# --- discovery ----------------------------------------------------------------------------------------------------


def test_vector_57_relative_license_line() -> None:
    lines = [Extension("license", "/license.xml", 4)]
    assert rsl.license_urls_from_robots(lines, "https://site.example/robots.txt", mode=S) == []
    [(url, note)] = rsl.license_urls_from_robots(lines, "https://site.example/robots.txt", mode=C)
    assert url == "https://site.example/license.xml"
    assert "not an absolute URL" in note and "line 4" in note


def test_absolute_license_lines_dedup_and_other_host() -> None:
    lines = [
        Extension("license", "https://lic.example/l.xml", 1),
        Extension("license", "https://lic.example/l.xml", 2),
        Extension("license", "https://site.example/my terms.xml", 3),
        Extension("license", "ftp://x.example/l.xml", 4),
        Extension("license", "", 5),
    ]
    got = rsl.license_urls_from_robots(lines, "https://site.example/robots.txt", mode=C)
    assert got == [("https://lic.example/l.xml", ""), ("https://site.example/my%20terms.xml", "")]


def test_vector_61_link_header_needs_rsl_type() -> None:
    base = "https://x.example/page"
    assert rsl.license_urls_from_headers(['<https://x.example/cc-by.html>; rel="license"'], base) == []
    assert rsl.license_urls_from_headers(
        ['<https://x.example/license.xml>; rel="license"; type="application/rsl+xml"'], base
    ) == ["https://x.example/license.xml"]


def test_link_header_parsing_details() -> None:
    base = "https://x.example/dir/page"
    values = [
        '<https://x.example/a>; rel="preload", </l.xml>; rel="license nofollow"; TYPE="Application/RSL+XML"',
        '<rel.xml>; rel=license; type=application/rsl+xml, <https://x.example/b>; title="a, b; c"; rel="next"',
        '<https://x.example/c.xml>; rel="LICENSE"; type="application/rsl+xml; charset=utf-8"',
        "garbage, <unterminated",
    ]
    assert rsl.license_urls_from_headers(values, base) == [
        "https://x.example/l.xml",
        "https://x.example/dir/rel.xml",
        "https://x.example/c.xml",
    ]
    assert rsl.parse_link_header('<u>; title="x\\"y"; rel=a') == [("u", {"title": 'x"y', "rel": "a"})]


def test_html_link_discovery() -> None:
    html = b"""<head><link rel="license" href="https://creativecommons.org/licenses/by/4.0/">
    <link rel="License" type="application/rsl+xml" href="/rsl.xml">
    <link rel="stylesheet" type="application/rsl+xml" href="/no.xml"></head>"""
    assert rsl.license_urls_from_html(scan_html(html), "https://x.example/p") == ["https://x.example/rsl.xml"]


# --- parsing ------------------------------------------------------------------------------------------------------

EXAMPLE = doc(
    '<content url="/" server="https://licensing.example/olp"><license>'
    '<permits type="usage">search</permits><prohibits type="usage">ai-train</prohibits>'
    '<payment type="crawl"><amount currency="USD">0.015</amount></payment></license></content>'
)


def test_parse_example_document() -> None:
    d = rsl.parse_license(EXAMPLE)
    [content] = d.contents
    assert content.url == "/" and content.server == "https://licensing.example/olp"
    [lic] = content.licenses
    assert lic.permits == {"usage": {"search"}} and lic.prohibits == {"usage": {"ai-train"}}
    assert lic.payments[0].type == "crawl" and lic.payments[0].amounts == [("0.015", "USD")]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b"<rsl xmlns='https://rslstandard.org/rsl'>",
        b"<other xmlns='https://rslstandard.org/rsl'/>",
        b"<rsl xmlns='https://example.com/other'/>",
        b"\xff\xfe<\x00r\x00",
        b'<?xml version="1.0" encoding="UTF-7"?><rsl/>',
    ],
)
def test_invalid_documents_raise_rsl_error(body: bytes) -> None:
    with pytest.raises(rsl.RslError):
        rsl.parse_license(body)


def test_missing_namespace_conservative_only() -> None:
    body = b"<rsl><content url='/'><license><prohibits type='usage'>ai-train</prohibits></license></content></rsl>"
    with pytest.raises(rsl.RslError):
        rsl.parse_license(body, mode=S)
    d = rsl.parse_license(body, mode=C)
    assert d.notes and d.contents
    assert verdicts(body) == {TRAIN: DENY}


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<rsl xmlns="https://rslstandard.org/rsl"><content url="&lol9;"/></rsl>"""

XXE_FILE = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<rsl xmlns="https://rslstandard.org/rsl"><content url="/&x;"/></rsl>"""

XXE_NET = b"""<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd">
<rsl xmlns="https://rslstandard.org/rsl"><content url="/"/></rsl>"""

XXE_PARAM = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x"> %p;]>
<rsl xmlns="https://rslstandard.org/rsl"/>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, XXE_FILE, XXE_NET, XXE_PARAM])
def test_xml_bombs_and_xxe_refused_without_expansion(body: bytes) -> None:
    with pytest.raises(rsl.RslError, match=r"^refused unsafe XML"):
        rsl.parse_license(body)


def test_size_cap_and_deep_nesting() -> None:
    with pytest.raises(rsl.RslError, match="limit"):
        rsl.parse_license(b"<rsl>" + b" " * (rsl.MAX_DOCUMENT_BYTES + 1) + b"</rsl>")
    deep = b"<rsl xmlns='https://rslstandard.org/rsl'>" + b"<x>" * 50000 + b"</x>" * 50000 + b"</rsl>"
    assert rsl.parse_license(deep).contents == []


def test_non_bytes_input() -> None:
    with pytest.raises(rsl.RslError):
        rsl.parse_license("<rsl/>")  # type: ignore[arg-type]


# --- interpretation -----------------------------------------------------------------------------------------------


def test_vector_59_licence_server_and_payment() -> None:
    body = doc(
        '<content url="/" server="https://lic.example"><license><permits type="usage">ai-all</permits>'
        '<payment type="crawl"><amount currency="USD">0.01</amount></payment></license></content>'
    )
    for mode in (S, C):
        result = verdicts(body, mode=mode)
        assert result[TRAIN] is DENY and result[INPUT] is DENY
    [sig] = rsl.signals(rsl.parse_license(body), "https://site.example/x", mode=C)
    assert "licence required" in sig.rule


def test_spec_example_document() -> None:
    result = verdicts(EXAMPLE)
    assert result[TRAIN] is DENY  # prohibited
    assert result[INPUT] is DENY  # permits lists only search
    assert result[SEARCH] is DENY  # permitted, but crawl payment + licence server


@pytest.mark.parametrize("token", ["ai-train", "ai-all", "all"])
def test_prohibited_training_tokens(token: str) -> None:
    body = doc(f'<content url="/"><license><prohibits type="usage">{token}</prohibits></license></content>')
    assert verdicts(body, mode=S)[TRAIN] is DENY


def test_prohibits_ai_train_leaves_search_alone() -> None:
    body = doc('<content url="/"><license><prohibits type="usage">ai-train</prohibits></license></content>')
    assert verdicts(body, mode=S) == {TRAIN: DENY}
    assert verdicts(body, mode=C) == {TRAIN: DENY}


def test_train_ai_wrong_token() -> None:
    body = doc('<content url="/"><license><prohibits type="usage">train-ai</prohibits></license></content>')
    assert verdicts(body, mode=S) == {}
    assert verdicts(body, mode=C) == {TRAIN: DENY}
    [sig] = rsl.signals(rsl.parse_license(body), "https://site.example/", mode=C)
    assert "AIPREF" in sig.note


def test_ai_index_is_ai_input_conservatively_and_never_search() -> None:
    body = doc('<content url="/"><license><prohibits type="usage">ai-index</prohibits></license></content>')
    assert verdicts(body, mode=S) == {}
    assert verdicts(body, mode=C) == {INPUT: DENY}


def test_permits_free_grant_allows() -> None:
    body = doc(
        '<content url="/"><license><permits type="usage">ai-train, search</permits>'
        '<payment type="free"/></license></content>'
    )
    assert verdicts(body) == {TRAIN: ALLOW, SEARCH: ALLOW, INPUT: DENY}


def test_permits_without_payment_is_free_and_zero_amount_is_free() -> None:
    body = doc('<content url="/"><license><permits type="usage">all</permits></license></content>')
    assert verdicts(body) == {TRAIN: ALLOW, INPUT: ALLOW, SEARCH: ALLOW}
    body = doc(
        '<content url="/"><license><permits type="usage">all</permits>'
        '<payment type="crawl"><amount currency="USD">0.00</amount></payment></license></content>'
    )
    assert verdicts(body)[TRAIN] is ALLOW


def test_payment_scoped_to_training() -> None:
    body = doc(
        '<content url="/"><license><permits type="usage">all</permits>'
        '<payment type="training"><amount currency="EUR">5</amount></payment></license></content>'
    )
    assert verdicts(body) == {TRAIN: DENY, INPUT: ALLOW, SEARCH: ALLOW}


def test_attribution_is_free_with_note() -> None:
    body = doc(
        '<content url="/"><license><permits type="usage">ai-train</permits><payment type="attribution"/>'
        "</license></content>"
    )
    [sig] = rsl.signals(rsl.parse_license(body), "https://site.example/", mode=C)
    assert sig.verdicts[TRAIN] is ALLOW and "attribution" in sig.note


def test_implicit_permission_is_unknown_but_server_requires_licence() -> None:
    assert verdicts(doc('<content url="/"><license/></content>')) == {}
    body = doc('<content url="/" server="https://lic.example"><license/></content>')
    assert verdicts(body) == {TRAIN: DENY, INPUT: DENY, SEARCH: DENY}
    body = doc(
        '<content url="/"><license><payment type="subscription"><standard>https://x</standard></payment></license></content>'
    )
    assert verdicts(body) == {TRAIN: DENY, INPUT: DENY, SEARCH: DENY}


def test_content_selection_longest_match_and_full_urls() -> None:
    body = doc(
        '<content url="/"><license><prohibits type="usage">ai-train</prohibits></license></content>'
        '<content url="/free/*"><license><permits type="usage">all</permits></license></content>'
        '<content url="https://site.example/free/paid$"><license><prohibits type="usage">all</prohibits></license>'
        "</content>"
        '<content url="https://other.example/"><license><prohibits type="usage">search</prohibits></license>'
        "</content>"
    )
    assert verdicts(body, "https://site.example/page") == {TRAIN: DENY}
    assert verdicts(body, "https://site.example/free/x") == {TRAIN: ALLOW, INPUT: ALLOW, SEARCH: ALLOW}
    assert verdicts(body, "http://site.example/free/paid") == {TRAIN: DENY, INPUT: DENY, SEARCH: DENY}
    assert verdicts(body, "https://site.example/free/paid2")[TRAIN] is ALLOW


def test_no_matching_content() -> None:
    body = doc('<content url="/docs/"><license><prohibits type="usage">all</prohibits></license></content>')
    assert verdicts(body, "https://site.example/blog/") == {}


def test_equal_length_contents_combined() -> None:
    body = doc(
        '<content url="/a"><license><permits type="usage">all</permits></license></content>'
        '<content url="/a"><license><prohibits type="usage">ai-train</prohibits></license></content>'
    )
    assert verdicts(body, "https://site.example/a")[TRAIN] is DENY


def test_alternative_licences() -> None:
    body = doc(
        '<content url="/"><license><permits type="usage">all</permits><payment type="purchase">'
        '<amount currency="USD">10</amount></payment></license>'
        '<license><permits type="usage">search</permits><payment type="free"/></license></content>'
    )
    assert verdicts(body) == {TRAIN: DENY, INPUT: DENY, SEARCH: ALLOW}


def test_user_and_geo_restrictions() -> None:
    body = doc('<content url="/"><license><prohibits type="user">commercial</prohibits></license></content>')
    assert verdicts(body) == {TRAIN: DENY, INPUT: DENY, SEARCH: DENY}
    assert verdicts(body, user="education") == {}
    whitelist = doc(
        '<content url="/"><license><permits type="usage">all</permits><permits type="user">non-commercial</permits>'
        "</license></content>"
    )
    assert verdicts(whitelist)[TRAIN] is DENY
    assert verdicts(whitelist, user="non-commercial")[TRAIN] is ALLOW
    geo = doc(
        '<content url="/"><license><permits type="usage">all</permits><permits type="geo">US</permits>'
        "</license></content>"
    )
    assert verdicts(geo, mode=C)[TRAIN] is DENY  # unknown operator country cannot meet a whitelist
    assert verdicts(geo, mode=S)[TRAIN] is ALLOW
    assert verdicts(geo, geo="US")[TRAIN] is ALLOW
    assert verdicts(geo, geo="DE")[TRAIN] is DENY


FUZZ = settings(max_examples=200, deadline=1000)
xml_piece = st.sampled_from(
    ["<rsl xmlns='https://rslstandard.org/rsl'>", "</rsl>", "<content url='/'>", "</content>", "<license>",
     "</license>", "<permits type='usage'>", "</permits>", "<prohibits>", "</prohibits>", "ai-train", "all, search",
     "<payment type='crawl'>", "</payment>", "<amount>", "1e999999", "</amount>", "&amp;", "&x;", "<!DOCTYPE a>",
     "\x00", "é", "<"]
)  # fmt: skip


@FUZZ
@given(st.one_of(st.binary(max_size=2000), st.lists(xml_piece, max_size=40).map(lambda p: "".join(p).encode())))
def test_fuzz_documents(body: bytes) -> None:
    try:
        d = rsl.parse_license(body)
    except rsl.RslError:
        return
    strict = well_formed(rsl.signals(d, "https://site.example/a", mode=S), "rsl")
    assert strict <= well_formed(rsl.signals(d, "https://site.example/a", mode=C), "rsl")


@FUZZ
@given(st.lists(st.text(max_size=120), max_size=4))
def test_fuzz_link_headers(values: list[str]) -> None:
    for url in rsl.license_urls_from_headers(values, "https://x.example/"):
        assert url.startswith(("http://", "https://"))


@FUZZ
@given(st.text(max_size=200))
def test_fuzz_robots_license_values(value: str) -> None:
    for mode in (S, C):
        for url, _ in rsl.license_urls_from_robots(
            [Extension("license", value, 1)], "https://x.example/robots.txt", mode=mode
        ):
            assert url.startswith(("http://", "https://"))


@settings(max_examples=3, deadline=5000)
@given(st.sampled_from(["<" * 60000, '<a>; rel="' + "x" * 100000, ";" * 100000 + "<a>"]))
def test_fuzz_huge_headers(value: str) -> None:
    assert rsl.license_urls_from_headers([value], "https://x.example/") == []  # none has rel=license


_LINK_PARAM = st.sampled_from(
    ['rel="license"', "REL=License", 'rel="lic\\ense"', 'rel="canonical license"', "rel=canonical", "rel",
     'type="application/rsl+xml"', "type=application/rsl+xml", 'type="app\\lication/rsl+xml"', 'x="a,b"', '"', ""]
)  # fmt: skip
_LINK = st.tuples(st.sampled_from(["<https://h/l.xml>", "<l.xml>", "<>", "junk"]), st.lists(_LINK_PARAM, max_size=4))
_LINK_VALUE = st.lists(_LINK.map(lambda link: "; ".join([link[0], *link[1]])), max_size=3).map(", ".join)


@given(st.lists(_LINK_VALUE | st.text('<>;,"\\ =licenseLICENSE\u212a', max_size=30), max_size=3))
@settings(max_examples=300)
def test_link_values_that_cannot_name_a_licence_skip_parsing_without_changing_answers(values: list[str]) -> None:
    fast = rsl.license_urls_from_headers(values, "https://h/page")
    with patch.object(rsl, "_cannot_name_license", lambda value: False):
        assert rsl.license_urls_from_headers(values, "https://h/page") == fast


# --- rules that hand-made mutants showed no test pinned -------------------------------------------------------------

PROHIBIT_ALL = '<license><prohibits type="usage">all</prohibits></license>'
DENY_ALL = {TRAIN: DENY, INPUT: DENY, SEARCH: DENY}


@pytest.mark.parametrize(
    ("content_url", "applies"),
    [
        ("https://site.example/", True),
        ("https://SITE.Example/", True),  # host names compare without case
        ("https://site.example:443/", True),  # a default port is no port
        ("https://site.example:80/", True),
        ("https://site.example:8443/", False),  # another port is another site
        ("https://other.example/", False),
        ("https://site.example/b/", False),  # the path still has to match
        ("a/*", True),  # a relative pattern is read from the root
        ("b/*", False),
        ("/a/b$", True),
        ("/a$", False),
    ],
)
def test_content_url_matching(content_url: str, applies: bool) -> None:
    body = doc(f'<content url="{content_url}">{PROHIBIT_ALL}</content>')
    assert verdicts(body, "https://site.example/a/b") == (DENY_ALL if applies else {})


def test_prohibited_geo_and_user_match_the_operator_without_case() -> None:
    geo = doc(
        '<content url="/"><license><permits type="usage">all</permits><prohibits type="geo">US</prohibits>'
        "</license></content>"
    )
    for country in ("US", "us"):
        assert verdicts(geo, geo=country, mode=S) == DENY_ALL
    assert verdicts(geo, geo="DE", mode=S) == {TRAIN: ALLOW, INPUT: ALLOW, SEARCH: ALLOW}
    user = doc('<content url="/"><license><prohibits type="user">commercial</prohibits></license></content>')
    assert verdicts(user, user="Commercial") == DENY_ALL
    assert verdicts(user, user="personal") == {}


def test_prohibited_geo_with_the_operator_country_unknown() -> None:
    """Conservative mode cannot show an unknown country is not one the licence prohibits (as it cannot show a
    geo whitelist is met); strict mode leaves the geo list unevaluated."""
    geo = doc(
        '<content url="/"><license><permits type="usage">all</permits><prohibits type="geo">US, CA</prohibits>'
        "</license></content>"
    )
    assert verdicts(geo, mode=C) == DENY_ALL
    assert verdicts(geo, mode=S) == {TRAIN: ALLOW, INPUT: ALLOW, SEARCH: ALLOW}
    (sig,) = rsl.signals(rsl.parse_license(geo, mode=C), "https://site.example/a", mode=C)
    assert "prohibits geo ca,us" in sig.rule and "operator country unknown" in sig.note
    empty = geo.replace(b"US, CA", b"")
    assert verdicts(empty, mode=C) == {TRAIN: ALLOW, INPUT: ALLOW, SEARCH: ALLOW}


def test_content_url_with_a_query_matches_only_that_query() -> None:
    body = doc(f'<content url="https://site.example/a?x=1">{PROHIBIT_ALL}</content>')
    assert verdicts(body, "https://site.example/a?x=1") == DENY_ALL
    assert verdicts(body, "https://site.example/a") == {}


def test_a_free_unrestricted_offer_beside_a_paid_one_leaves_the_use_unknown() -> None:
    """Alternative offers: an implicit free licence (no permits list, nothing to pay) outranks a paid one, so the
    paid offer's "licence required" does not decide; nothing grants explicitly either."""
    body = doc(
        '<content url="/"><license><payment type="free"/></license>'
        '<license><permits type="usage">all</permits><payment type="purchase"><amount currency="USD">5</amount>'
        "</payment></license></content>"
    )
    assert verdicts(body) == {}
