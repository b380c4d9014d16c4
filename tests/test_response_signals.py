"""The usage stage's reading of one response (middlewares.engine.response_signals): every HTML reader still gets
its say when the page-wide test that lets most pages skip them (HtmlHead.mentions_any) is in the way."""

from __future__ import annotations

from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from middlewares.engine import Fetched, response_signals
from middlewares.policy import Policy
from middlewares.protocols.html import HtmlHead

URL = "https://site.example/a/page"
POLICY = Policy.build(agent="MyBot")
HTML = {"content-type": ["text/html; charset=utf-8"]}

_PIECES = st.sampled_from(
    [
        "<meta name=robots content=noai>",
        "<meta name=ROBOTS content='noimageai, noindex'>",
        "<meta name=MyBot content=noai>",
        "<meta name=OtherBot content=noai>",
        '<meta name="tdm-reservation" content="1">',
        '<meta http-equiv="TDM-Reservation" content="1">',
        '<link rel="license" type="application/rsl+xml" href="/licence.xml">',
        '<LINK REL=License TYPE=application/rsl+xml HREF="https://other.example/l.xml">',
        "<title>News</title>",
        "<!--",
        "-->",
        "<script>",
        "</script>",
        "<meta name=viewport content=width=device-width>",
        "x" * 500,
    ]
)


def _read(head: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    body = f"<!doctype html><html><head>{head}</head><body><p>text</p></body></html>".encode()
    facts = response_signals(Fetched(URL, 200, HTML, body, final_url=URL), POLICY)
    return sorted((s.protocol, s.where, s.rule) for s in facts.signals), facts.license_urls


@given(st.lists(_PIECES, max_size=10).map("".join))
@settings(max_examples=300)
def test_skipping_readers_of_heads_that_mention_none_of_their_words_changes_nothing(head: str) -> None:
    fast = _read(head)
    with patch.object(HtmlHead, "mentions_any", lambda self, words: True):
        assert fast == _read(head)


def test_each_reader_is_reached_when_only_its_own_word_is_in_the_head() -> None:
    signals, licences = _read('<link rel="license" type="application/rsl+xml" href="/licence.xml">')
    assert licences == ["https://site.example/licence.xml"] and not signals
    signals, _ = _read('<meta name="tdm-reservation" content="1">')
    assert [(p, w) for p, w, _ in signals] == [("tdmrep", "html-meta")]
    signals, _ = _read("<meta name=MyBot content=noai>")
    assert [(p, w) for p, w, _ in signals] == [("robots-tag", "html-meta")]
    assert _read("<meta name=OtherBot content=noai><title>t</title>") == ([], [])
