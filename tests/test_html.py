"""The HTML head scanner: tags found where they count, never inside comments or scripts, bounded."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from middlewares.protocols.html import MAX_HTML_BYTES, _Skipped, scan_html

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
    head = scan_html(data)
    _ = head.has_password_form, head.json_ld, head.text_length, [t.attrs for t in head.metas + head.links]


@given(st.lists(st.sampled_from(["<meta", "<link", "<!--", "-->", "<script>", "</script>", "'", '"', ">", "=", "a"])))
def test_adversarial_tokens_never_raise(parts: list[str]) -> None:
    head = scan_html("".join(parts).encode())
    _ = [t.attrs for t in head.metas + head.links]


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
