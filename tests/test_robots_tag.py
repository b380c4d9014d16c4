"""X-Robots-Tag and robots meta: noai / noimageai / noindex / noarchive, user-agent scoping
(PROTOCOLS.md §6.1–6.3, vectors 63–69)."""

from __future__ import annotations

import re
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middlewares.protocols import robots_tag as rt
from middlewares.protocols.html import Tag, scan_html
from middlewares.protocols.signals import Mode, Purpose, Verdict
from tests.support.signals import well_formed

C, S = Mode.CONSERVATIVE, Mode.STRICT
TRAIN, INPUT, SEARCH = Purpose.TRAIN_AI, Purpose.AI_INPUT, Purpose.SEARCH
DENY = Verdict.DISALLOW
AI_DENY = {TRAIN: DENY, INPUT: DENY}


def combined(sigs: list) -> dict[Purpose, Verdict]:  # type: ignore[type-arg]
    out: dict[Purpose, Verdict] = {}
    for sig in sigs:
        assert sig.protocol == "robots-tag"
        out.update(sig.verdicts)
    return out


def hdr(values: list[str], token: str = "MyBot", mode: Mode = S, image: bool = False) -> dict[Purpose, Verdict]:
    return combined(rt.header_signals(values, token, is_image=image, mode=mode))


def meta(html: str, token: str = "MyBot", mode: Mode = S) -> dict[Purpose, Verdict]:
    return combined(rt.meta_signals(scan_html(html.encode()), token, mode=mode))


@pytest.mark.parametrize("mode", [S, C])
def test_vector_63_meta_robots_noai(mode: Mode) -> None:
    assert meta('<head><meta name="robots" content="noai"></head>', "AnyBot", mode) == AI_DENY
    [sig] = rt.meta_signals(scan_html(b'<head>\n<meta name="robots" content="noai">'), "X", mode=mode)
    assert sig.where == "html-meta" and sig.rule.startswith("line 2: ") and sig.value == "noai"


@pytest.mark.parametrize("mode", [S, C])
def test_vector_65_noindex(mode: Mode) -> None:
    assert hdr(["noindex"], mode=mode) == {SEARCH: DENY}
    [sig] = rt.header_signals(["noindex"], "MyBot", is_image=False, mode=mode)
    assert sig.where == "header" and sig.rule == "X-Robots-Tag: noindex"


@pytest.mark.parametrize("mode", [S, C])
def test_vector_67_prefix_covers_following_rules(mode: Mode) -> None:
    sigs = rt.header_signals(["mybot: noindex, noai"], "MyBot", is_image=False, mode=mode)
    assert combined(sigs) == {SEARCH: DENY, TRAIN: DENY, INPUT: DENY}
    assert {s.rule for s in sigs} == {"X-Robots-Tag: mybot: noindex", "X-Robots-Tag: mybot: noai"}


@pytest.mark.parametrize("mode", [S, C])
def test_vector_69_meta_named_for_our_token(mode: Mode) -> None:
    html = '<head><meta name="mybot" content="noai"></head>'
    assert meta(html, "MyBot", mode) == AI_DENY
    assert meta(html, "OtherBot", mode) == {}


def test_other_bot_scoping_strict_vs_conservative() -> None:
    # Google reading: both rules belong to otherbot. datadiligence reading: only noindex does.
    assert hdr(["otherbot: noindex, noai"], mode=S) == {}
    result = hdr(["otherbot: noindex, noai"], mode=C)
    assert result == AI_DENY  # noai is global under the one-element reading; noindex is not ours either way
    [sig] = rt.header_signals(["otherbot: noindex, noai"], "MyBot", is_image=False, mode=C)
    assert "datadiligence" in sig.note


def test_prefix_scope_switches_at_next_bot() -> None:
    assert hdr(["mybot: noindex, otherbot: noai"], mode=S) == {SEARCH: DENY}
    assert hdr(["otherbot: noai, mybot: noindex"], mode=S) == {SEARCH: DENY}
    assert hdr(["otherbot: noai, mybot: noindex"], mode=C) == {SEARCH: DENY}


def test_each_header_line_starts_unscoped() -> None:
    assert hdr(["otherbot: noindex", "noai"], mode=S) == AI_DENY


def test_case_insensitive_directives_and_bot_names() -> None:
    assert hdr(["NoAI"]) == AI_DENY  # datadiligence misses this
    assert hdr(["MYBOT: NOAI"]) == AI_DENY
    assert hdr(["mybotx: noai"]) == {}  # whole-token comparison, not prefix
    assert hdr(["my: noai"]) == {}


def test_colon_rules_are_not_bot_names() -> None:
    assert hdr(["unavailable_after: 25 Jun 2010 15:00:00 PST, noai"], mode=S) == AI_DENY
    assert hdr(["max-snippet: 20, noindex"], mode=S) == {SEARCH: DENY}
    assert hdr(["max-image-preview: large, max-video-preview: -1, noai"], mode=S) == AI_DENY
    assert hdr(["mybot: unavailable_after: 25 Jun 2010, noai"], mode=S) == AI_DENY
    assert hdr(["otherbot: max-snippet: 5, noai"], mode=S) == {}


def test_directive_with_colon_value_is_not_a_bot() -> None:
    assert hdr(["noai: true"], mode=S) == AI_DENY


@pytest.mark.parametrize("mode", [S, C])
def test_noimageai_only_for_images(mode: Mode) -> None:
    assert hdr(["noimageai"], mode=mode, image=True) == AI_DENY
    [sig] = rt.header_signals(["noimageai"], "MyBot", is_image=False, mode=mode)
    assert sig.verdicts == {} and "images" in sig.note
    [sig] = rt.meta_signals(scan_html(b'<meta name="robots" content="noimageai">'), "MyBot", mode=mode)
    assert sig.verdicts == {} and "images" in sig.note


def test_none_means_noindex() -> None:
    assert hdr(["none"]) == {SEARCH: DENY}


@pytest.mark.parametrize("word", ["noarchive", "nocache"])
def test_bing_noarchive(word: str) -> None:
    [sig] = rt.header_signals([word], "MyBot", is_image=False, mode=S)
    assert sig.verdicts == {} and "conservative" in sig.note
    assert hdr([word], mode=C) == {TRAIN: DENY}
    assert meta(f'<meta name="robots" content="{word}">', mode=C) == {TRAIN: DENY}


def test_noindex_does_not_touch_ai_and_noai_does_not_touch_search() -> None:
    assert SEARCH not in hdr(["noai"], mode=C)
    assert TRAIN not in hdr(["noindex"], mode=C)


def test_several_lines_combine_and_duplicates_removed() -> None:
    sigs = rt.header_signals(["noai", "noai", "noindex"], "MyBot", is_image=False, mode=S)
    assert len(sigs) == 2


def test_space_separated_directives_conservative_only() -> None:
    assert hdr(["noai noimageai"], mode=S) == {}
    assert hdr(["noai noimageai"], mode=C) == AI_DENY


def test_star_prefix() -> None:
    assert hdr(["*: noai"], mode=S) == {}
    assert hdr(["*: noai"], mode=C) == AI_DENY


def test_meta_name_and_content_case_insensitive_and_other_names_ignored() -> None:
    html = '<head><META NAME="ROBOTS" CONTENT="NoAI"><meta name="googlebot" content="noindex"></head>'
    assert meta(html, "MyBot") == AI_DENY
    assert meta('<meta name="description" content="noai">') == {}
    assert meta('<meta name="robots" content="index, follow">') == {}
    assert meta('<meta property="robots" content="noai">') == {}


def test_meta_in_comment_or_body_ignored() -> None:
    assert meta("<head><!-- <meta name=robots content=noai> --></head>") == {}


def test_ml_token() -> None:
    assert hdr(["noml"], mode=S) == {}
    assert hdr(["noml"], mode=C) == {TRAIN: DENY}


def test_parse_directives_scopes() -> None:
    ds = rt.parse_directives("a: x, y, b: z")
    assert [(d.name, d.google_scope, d.element_scope) for d in ds] == [
        ("x", "a", "a"),
        ("y", "a", None),
        ("z", "b", "b"),
    ]


FUZZ = settings(max_examples=300, deadline=1000)
piece = st.sampled_from(["noai", "noindex", "mybot", "other", ":", ",", " ", "max-snippet", "\x00", "é", "*", "NOAI"])


@FUZZ
@given(st.lists(st.one_of(st.text(max_size=60), st.lists(piece, max_size=20).map("".join)), max_size=5))
def test_fuzz_header(values: list[str]) -> None:
    strict = hdr(values, mode=S)
    cons = hdr(values, mode=C)
    for purpose, verdict in strict.items():
        if verdict is DENY:
            assert cons.get(purpose) is DENY


@FUZZ
@given(st.binary(max_size=3000))
def test_fuzz_html(body: bytes) -> None:
    """Conservative mode only adds reservations to what strict mode finds in the same page."""
    head = scan_html(body)
    strict = well_formed(rt.meta_signals(head, "MyBot", mode=S), "robots-tag")
    assert strict <= well_formed(rt.meta_signals(head, "MyBot", mode=C), "robots-tag")


@settings(max_examples=3, deadline=3000)
@given(st.sampled_from(["noai," * 50000, "a:" * 100000, "\x00" * 100000]))
def test_fuzz_huge(value: str) -> None:
    expected = {TRAIN, INPUT} if value.startswith("noai") else set()
    assert well_formed(rt.header_signals([value] * 3, "MyBot", is_image=True, mode=C), "robots-tag") == expected


_DIRECTIVE_PIECES = st.sampled_from(
    ["noai", "NoImageAI", "noindex", "NONE", "noarchive", "nocache", "noml", "nofollow", "index", "max-snippet: 5",
     "mybot:", "otherbot:", "*:", ", ", " ", "&#110;", "&amp;", "n", "o", "ai", "\u212a", "\u0130"]
)  # fmt: skip


@given(st.lists(st.lists(_DIRECTIVE_PIECES, max_size=8).map("".join), max_size=3), st.sampled_from([C, S]))
@settings(max_examples=300)
def test_values_without_effect_words_skip_parsing_without_changing_answers(values: list[str], mode: Mode) -> None:
    """The fast negative (no `noai`, `noindex`... anywhere: nothing to parse) agrees with parsing everything."""
    fast_header = rt.header_signals(values, "MyBot", is_image=True, mode=mode)
    page = "".join(f"<meta name=robots content='{v}'><meta name=MyBot content=\"{v}\">" for v in values)
    fast_meta = rt.meta_signals(scan_html(page.encode()), "MyBot", mode=mode)
    with patch.object(rt, "_EFFECT_WORDS", re.compile("")), patch.object(Tag, "may_match", lambda self, p: True):
        assert rt.header_signals(values, "MyBot", is_image=True, mode=mode) == fast_header
        assert rt.meta_signals(scan_html(page.encode()), "MyBot", mode=mode) == fast_meta


def test_every_directive_with_an_effect_is_among_the_effect_words() -> None:
    """The fast negative must know every directive _effect gives a meaning, including any added later."""
    for name in rt.KNOWN_DIRECTIVES | {"noml", "none", "noimageai"}:
        for mode in (C, S):
            for image in (True, False):
                if rt._effect(name, is_image=image, mode=mode) is not None:
                    assert rt._EFFECT_WORDS.search(name), name
