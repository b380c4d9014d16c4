"""Spawning ai.txt (PROTOCOLS.md §6.4, vector 71)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middlewares.protocols.ai_txt import MAX_BYTES, AiTxt, parse_ai_txt, signals
from middlewares.protocols.signals import Mode, Purpose, Verdict
from tests.support.signals import well_formed

C, S = Mode.CONSERVATIVE, Mode.STRICT
DENY = Verdict.DISALLOW

SPAWNING = b"""# Spawning AI
# Prevent datasets from using the following file types

User-agent: *
Disallow: *.jpg
Disallow: *.jpeg
Disallow: *.png
Disallow: *.mp3
Allow: *.txt
Allow: /
"""


def denied(body: bytes, path: str, token: str = "ExampleBot", mode: Mode = S) -> bool:
    ai = parse_ai_txt(body)
    assert ai is not None
    sigs = signals(ai, "https://h.example" + path, token, mode=mode)
    assert all(s.protocol == "ai-txt" and s.where == "ai.txt" for s in sigs)
    assert all(s.verdicts == {Purpose.TRAIN_AI: DENY} for s in sigs)
    return bool(sigs)


@pytest.mark.parametrize("mode", [S, C])
def test_vector_71(mode: Mode) -> None:
    body = b"User-agent: *\nDisallow: *.jpg\nAllow: /\n"
    assert denied(body, "/img/a.jpg", mode=mode)
    assert not denied(body, "/page.html", mode=mode)
    ai = parse_ai_txt(body)
    assert ai is not None
    [sig] = signals(ai, "https://h.example/img/a.jpg", "x", mode=mode)
    assert sig.rule == "line 2: Disallow: *.jpg (User-agent: *)" and sig.value == "*.jpg"


def test_spawning_plugin_output() -> None:
    assert denied(SPAWNING, "/wp-content/uploads/photo.png")
    assert denied(SPAWNING, "/song.mp3")
    assert not denied(SPAWNING, "/notes.txt")
    assert not denied(SPAWNING, "/")


def test_query_string_still_matches_extension() -> None:
    # Documented choice: RFC 9309 prefix semantics, so the query does not hide the extension.
    assert denied(SPAWNING, "/img/a.jpg?x=1")
    assert not denied(b"User-agent: *\nDisallow: *.jpg$\n", "/img/a.jpg?x=1")
    assert denied(b"User-agent: *\nDisallow: *.jpg$\n", "/img/a.jpg")


def test_full_opt_out() -> None:
    body = b"User-agent: *\nDisallow: *\nDisallow: /\n"
    assert denied(body, "/anything.html")
    assert denied(body, "/")


def test_star_slash_user_agent_from_wordpress_plugin() -> None:
    body = b"# Spawning AI/\nUser-agent: */\nDisallow: *.gif\n"
    assert denied(body, "/a.gif")


def test_specific_group_replaces_star() -> None:
    body = b"User-agent: *\nDisallow: /\n\nUser-agent: ExampleBot\nDisallow: *.png\n"
    assert not denied(body, "/page.html", token="ExampleBot")
    assert denied(body, "/x.png", token="examplebot")
    assert denied(body, "/page.html", token="OtherBot")


def test_groups_merge_and_multiple_agents() -> None:
    body = b"User-agent: A\nUser-agent: B\nDisallow: *.png\n\nUser-agent: b\nDisallow: *.gif\n"
    assert denied(body, "/x.png", token="B") and denied(body, "/x.gif", token="B")
    assert denied(body, "/x.png", token="A") and not denied(body, "/x.gif", token="A")
    assert not denied(body, "/x.png", token="C")


def test_longest_match_and_allow_on_tie() -> None:
    body = b"User-agent: *\nDisallow: /photos/\nAllow: /photos/public/\n"
    assert denied(body, "/photos/x.jpg")
    assert not denied(body, "/photos/public/x.jpg")
    tie = b"User-agent: *\nDisallow: *.jpg\nAllow: *.jpg\n"
    assert not denied(tie, "/a.jpg")
    tie_rev = b"User-agent: *\nAllow: *.jpg\nDisallow: *.jpg\n"
    assert not denied(tie_rev, "/a.jpg")


def test_case_insensitive_extension_conservative_only() -> None:
    body = b"User-agent: *\nDisallow: *.jpg\nAllow: /\n"
    assert not denied(body, "/PHOTO.JPG", mode=S)
    assert denied(body, "/PHOTO.JPG", mode=C)


def test_bare_extension_and_relative_patterns() -> None:
    assert denied(b"User-agent: *\nDisallow: .png\n", "/a/b.png")
    assert denied(b"User-agent: *\nDisallow: private/\n", "/private/x")


def test_empty_disallow_and_comments() -> None:
    body = b"User-agent: *\nDisallow:\nDisallow: *.png # images\n"
    assert not denied(body, "/a.html")
    assert denied(body, "/a.png")


def test_not_spawning_format() -> None:
    assert parse_ai_txt(b"# AI context\n\nThis site is about gardening. Please cite us.\n") is None
    assert parse_ai_txt(b"") is None
    assert parse_ai_txt(b"\x00\xff\xfe") is None
    assert parse_ai_txt("not bytes") is None  # type: ignore[arg-type]


def test_rules_before_user_agent_ignored_but_recognised() -> None:
    ai = parse_ai_txt(b"Disallow: /\n")
    assert isinstance(ai, AiTxt)
    assert signals(ai, "https://h.example/x", "a", mode=C) == []
    assert ai.notes


def test_crlf_bom_and_case_of_keys() -> None:
    body = b"\xef\xbb\xbfUSER-AGENT: *\r\nDISALLOW: *.jpg\r\n"
    assert denied(body, "/a.jpg")


def test_group_boundaries() -> None:
    """Consecutive User-agent lines share a group; any other record in between ends it."""
    body = b"User-agent: A\nUser_agent: B\nDisallow: *.png\nUser-agent: C\nCrawl-delay: 1\nUser-agent: D\nDisallow: /\n"
    ai = parse_ai_txt(body)
    assert ai is not None
    assert [(g.agents, g.line) for g in ai.groups] == [(["a", "b"], 1), (["c"], 4), (["d"], 6)]
    assert not denied(body, "/x", token="C") and denied(body, "/x", token="D")


def test_agent_values_and_rule_values_with_separators() -> None:
    body = b"UserAgent: ExampleBot/1.0 (+https://e/bot)\nDisallow: /a:b/*.jpg # one # two\n"
    ai = parse_ai_txt(body)
    assert ai is not None and ai.groups[0].agents == ["examplebot"]
    assert [(r.pattern, r.raw, r.line) for r in ai.groups[0].rules] == [("/a:b/*.jpg", "/a:b/*.jpg", 2)]
    assert denied(body, "/a:b/x.jpg")
    assert parse_ai_txt(b"Sitemap: https://e/s.xml\n") is None  # no ai.txt record at all


def test_size_limit_note_and_signal_fields() -> None:
    body = b"User-agent: *\nDisallow: *.jpg\n"
    exact = body + b"#" * (MAX_BYTES - len(body))
    assert parse_ai_txt(exact).notes == []  # type: ignore[union-attr]
    over = parse_ai_txt(exact + b"#")
    assert over is not None and over.notes == [f"ai.txt truncated to {MAX_BYTES} bytes"]
    sig = signals(over, "https://h.example/A.JPG", "x", mode=C, source="https://h.example/ai.txt")[0]
    assert sig.source == "https://h.example/ai.txt" and sig.rule == "line 2: Disallow: *.jpg (User-agent: *)"
    assert sig.note == f"ai.txt truncated to {MAX_BYTES} bytes; matched ignoring letter case (conservative)"
    assert signals(parse_ai_txt(body), "https://h.example/a.jpg", "x", mode=C)[0].note == ""  # type: ignore[arg-type]


FUZZ = settings(max_examples=300, deadline=1000)
piece = st.sampled_from(
    ["User-agent: *\n", "Disallow: ", "Allow: ", "*", ".jpg", "/", "$", "\n", "#", "%2A", "\x00", "é", "*/"]
)


@FUZZ
@given(st.one_of(st.binary(max_size=2000), st.lists(piece, max_size=40).map(lambda p: "".join(p).encode())))
def test_fuzz_body(body: bytes) -> None:
    """Conservative mode only adds reservations: whatever strict mode denies, conservative denies too."""
    ai = parse_ai_txt(body)
    if ai is not None:
        for url in ("https://h.example/a/b.jpg?q=1", "https://h.example/A/B.JPG"):
            strict = well_formed(signals(ai, url, "ExampleBot", mode=S), "ai-txt", [Purpose.TRAIN_AI])
            assert strict <= well_formed(signals(ai, url, "ExampleBot", mode=C), "ai-txt", [Purpose.TRAIN_AI])


def test_case_insensitive_allow_never_lifts_a_literal_disallow() -> None:
    """Found by the fuzz property above: a longer Allow matching only when letter case is ignored used to win
    in conservative mode, so conservative allowed what strict denied."""
    body = b"User-agent: *\nDisallow: /Gallery/\nAllow: /gallery/thumbs/\n"
    assert denied(body, "/Gallery/thumbs/a.jpg", mode=S)
    assert denied(body, "/Gallery/thumbs/a.jpg", mode=C)
    assert not denied(body, "/gallery/thumbs/a.jpg", mode=C)


@FUZZ
@given(st.text(max_size=200))
def test_fuzz_path(path: str) -> None:
    """The plugin's file allows everything but the listed media types: a denial is for one of them, and a
    `.jpg` is denied."""
    ai = parse_ai_txt(SPAWNING)
    assert ai is not None
    for mode in (S, C):
        found = signals(ai, "https://h.example/" + path, "ExampleBot", mode=mode)
        if well_formed(found, "ai-txt", [Purpose.TRAIN_AI]):
            assert found[0].value.startswith("*.")
    # Without other dots no longer Allow (`*.txt` matches `/a.txt.jpg`, a tie that allows) can compete.
    jpeg = "https://h.example/" + "".join(c for c in path if c not in "?#.") + ".jpg"
    assert well_formed(signals(ai, jpeg, "ExampleBot", mode=S), "ai-txt") == {Purpose.TRAIN_AI}


@settings(max_examples=3, deadline=5000)
@given(st.sampled_from([b"User-agent: *\nDisallow: " + b"*a" * 2000 + b"b\n", b"User-agent: *\n" * 60000]))
def test_fuzz_pathological(body: bytes) -> None:
    ai = parse_ai_txt(body + b"Disallow: *.jpg\n")
    assert ai is not None
    assert signals(ai, "https://h.example/" + "a" * 10000, "x", mode=C) == []
    jpeg = signals(ai, "https://h.example/" + "a" * 10000 + ".jpg", "x", mode=C)
    # The rule after 60 000 user-agent lines lies past the size limit: dropped, and said so.
    assert well_formed(jpeg, "ai-txt") or ai.notes == ["ai.txt truncated to 512000 bytes"]
