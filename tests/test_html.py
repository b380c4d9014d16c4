"""The HTML head scanner: tags found where they count, never inside comments or scripts, bounded."""

from __future__ import annotations

from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from middlewares.protocols.html import MAX_HTML_BYTES, HtmlHead, _Skipped, scan_html

DOC = b"""<!doctype html><html><head><title>T &amp; x</title>
<!-- <meta name=robots content=noai> -->
<meta name="Robots" content="NoAI, noimageai">
<script>var x = "<meta name=robots content=noindex>";</script>
<META NAME=tdm-reservation CONTENT='1'>
<link rel="license" type="application/rsl+xml" href="/l.xml">
<meta name="a>b" content="quoted &gt; bracket">
</head><body><meta name=robots content=noindex>
<script type="application/ld+json">{"isAccessibleForFree": false}</script>
<form><input type=password name=pw></form>hello</body></html>"""


def test_meta_and_link_tags() -> None:
    head = scan_html(DOC)
    assert head.title == "T & x"
    robots = head.meta_values("robots")
    assert [t.get("content") for t in robots] == ["NoAI, noimageai"]  # comment, script and body ignored
    assert robots[0].line == 3
    assert head.meta_values("TDM-Reservation")[0].get("content") == "1"
    assert head.meta_values("a>b")[0].get("content") == "quoted > bracket"
    [link] = head.links
    assert link.attrs == {"rel": "license", "type": "application/rsl+xml", "href": "/l.xml"}


def test_body_facts() -> None:
    head = scan_html(DOC)
    assert head.has_password_form
    assert head.json_ld == ('{"isAccessibleForFree": false}',)
    assert 0 < head.text_length < 20
    plain = scan_html(b"<html><head></head><body><p>" + b"word " * 1000 + b"</p></body></html>")
    assert not plain.has_password_form and plain.json_ld == () and plain.text_length > 4000


def test_no_head_element() -> None:
    head = scan_html(b"<meta name=robots content=noai><p>text")
    assert head.meta_values("robots")[0].get("content") == "noai"


def test_unterminated_constructs() -> None:
    assert scan_html(b"<head><!-- <meta name=robots content=noai>").metas == ()
    assert scan_html(b"<head><script><meta name=robots content=noai>").metas == ()
    assert len(scan_html(b'<head><meta name="robots content=noai').metas) == 1  # unterminated quote


def test_size_cap() -> None:
    doc = b"<head>" + b" " * MAX_HTML_BYTES + b"<meta name=robots content=noai></head>"
    assert scan_html(doc).metas == ()


@given(st.binary(max_size=4000))
def test_random_bytes_never_raise(data: bytes) -> None:
    """Bounded output whatever the input: tags are metas and links, text is no longer than the page."""
    head = scan_html(data)
    assert head.text_length <= len(data)
    assert all(len(block) <= len(data) for block in head.json_ld)
    assert len(head.metas) + len(head.links) <= data.count(b"<")
    assert all(isinstance(t.attrs, dict) for t in head.metas + head.links)
    assert head.has_password_form <= (b"password" in data.lower())


@given(st.lists(st.sampled_from(["<meta", "<link", "<!--", "-->", "<script>", "</script>", "'", '"', ">", "=", "a"])))
def test_adversarial_tokens_never_raise(parts: list[str]) -> None:
    """Every tag found starts at a `<meta` or `<link` of the input; scanning is deterministic."""
    body = "".join(parts).encode()
    head = scan_html(body)
    assert len(head.metas) <= body.count(b"<meta") and len(head.links) <= body.count(b"<link")
    assert [t.attrs for t in head.metas] == [t.attrs for t in scan_html(body).metas]


def _skipped_reference(lower: str) -> list[tuple[int, int]]:
    """The spans as first written: one full pass per kind of opener and closer."""
    spans: list[tuple[int, int]] = []
    for opener, closer in (("<!--", "-->"), ("<script", "</script"), ("<style", "</style")):
        i = lower.find(opener)
        while i >= 0:
            j = lower.find(closer, i + len(opener))
            end = len(lower) if j < 0 else j + len(closer)
            spans.append((i, end))
            i = lower.find(opener, end)
    return spans


_SKIP_PIECES = st.sampled_from(["<!--", "-->", "<!-->", "<script>", "</script>", "<style>", "</style>", "<meta>", "x"])


@given(st.lists(_SKIP_PIECES, max_size=20), st.lists(st.integers(0, 120), max_size=12))
@settings(max_examples=400)
def test_skipped_spans_found_lazily_equal_a_full_scan(pieces: list[str], positions: list[int]) -> None:
    """Spans found only as far as asked, in any order of questions, are those of a full scan per kind."""
    lower = "".join(pieces)
    skipped = _Skipped(lower)
    spans = _skipped_reference(lower)
    for pos in positions:
        assert skipped.covers(pos) == any(a < pos < b for a, b in spans), (lower, pos)


_HEAD_PIECES = st.sampled_from(
    ["<meta name=robots content=noai>", "<meta name=MyBot content=x>", "<link rel=license href=/l>", "<meta ",
     "name=tdm-reservation", "<!--", "-->", "<script>", "</script>", ">", "'", "ROBOTS", "\u212abot", "é", "x" * 3000]
)  # fmt: skip


@given(st.lists(_HEAD_PIECES, max_size=12).map("".join), st.sampled_from(["robots", "mybot", "kbot", "tdm-", "é"]))
@settings(max_examples=300)
def test_page_wide_negative_does_not_change_which_tags_mention_a_word(head: str, word: str) -> None:
    """Skipping the search when the word occurs nowhere (a bytes test on the UTF-8 form) finds the same tags."""
    fast = scan_html(head.encode())
    slow = scan_html(head.encode())
    with patch.object(HtmlHead, "_occurs", lambda self, word: True):
        expected = [(t.attrs, t.line) for t in slow.metas_mentioning(word) + slow.links_mentioning(word)]
    assert [(t.attrs, t.line) for t in fast.metas_mentioning(word) + fast.links_mentioning(word)] == expected
