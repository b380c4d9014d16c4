"""Cloudflare Content Signals in robots.txt and as a response header (PROTOCOLS.md §4, vectors 51–55)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middlewares.protocols import content_signal as cs
from middlewares.protocols.signals import Mode, Purpose, Verdict
from tests.support.signals import well_formed

C, S = Mode.CONSERVATIVE, Mode.STRICT
TRAIN, INPUT, SEARCH = Purpose.TRAIN_AI, Purpose.AI_INPUT, Purpose.SEARCH
ALLOW, DENY = Verdict.ALLOW, Verdict.DISALLOW

try:
    from middlewares.protocols.robots import Extension
except ImportError:

    @dataclass(frozen=True)
    class Extension:  # type: ignore[no-redef]
        key: str
        value: str
        line: int


def group_lines(body: str) -> list[Extension]:
    """The extension lines a robots parser keeps for a one-group file (label lower-cased, comment stripped)."""
    out = []
    for number, line in enumerate(body.split("\n"), 1):
        line = line.split("#", 1)[0]
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key not in ("user-agent", "allow", "disallow"):
            out.append(Extension(key, value.strip(), number))
    return out


def from_robots(body: str, mode: Mode) -> dict[Purpose, Verdict]:
    out: dict[Purpose, Verdict] = {}
    for sig in cs.robots_signals(group_lines(body), mode=mode, group="User-agent: *"):
        assert sig.protocol == "content-signal" and sig.where == "robots.txt"
        for purpose, verdict in sig.verdicts.items():
            if verdict is DENY or purpose not in out:
                out[purpose] = verdict
    return out


def test_cloudflare_managed_default() -> None:
    body = "User-Agent: *\nContent-signal: search=yes, ai-train=no\nAllow: /"
    for mode in (S, C):
        assert from_robots(body, mode) == {SEARCH: ALLOW, TRAIN: DENY}
    [sig] = cs.robots_signals(group_lines(body), mode=S, group="User-agent: *")
    assert sig.rule == "line 2: Content-Signal: search=yes, ai-train=no (User-agent: *)"


def test_vector_51_use_reference() -> None:
    body = "User-Agent: *\nContent-Signal: search=yes, use=reference"
    assert from_robots(body, S) == {SEARCH: ALLOW}
    assert from_robots(body, C) == {SEARCH: ALLOW, TRAIN: DENY}


def test_vector_53_comment_block_only() -> None:
    body = (
        "# As a condition of accessing this website, you agree to abide by the following content signals:\n"
        "# (a)  If a content-signal = yes, you may collect content for the corresponding use.\n"
        "# (b)  If a content-signal = no, you may not collect content for the corresponding use.\n"
        "# ANY RESTRICTIONS EXPRESSED VIA CONTENT SIGNALS ARE EXPRESS RESERVATIONS OF RIGHTS UNDER ARTICLE 4\n"
        "# search: building a search index\n# ai-input: inputting content into one or more AI models\n"
        "# ai-train: training or fine-tuning AI models.\n"
    )
    for mode in (S, C):
        assert from_robots(body, mode) == {}


@pytest.mark.parametrize("mode", [S, C])
def test_vector_55_key_case_insensitive(mode: Mode) -> None:
    assert from_robots("User-agent: *\ncontent-signal: ai-input=no", mode) == {INPUT: DENY}
    assert from_robots("User-agent: *\nCONTENT-SIGNAL: AI-Train=No", mode) == {TRAIN: DENY}


@pytest.mark.parametrize(("value", "expected"), [("immediate", DENY), ("reference", DENY), ("full", None)])
def test_use_levels(value: str, expected: Verdict | None) -> None:
    assert cs.parse_content_signal(f"use={value}", mode=S) == {}
    got = cs.parse_content_signal(f"use={value}", mode=C)
    assert got.get("use") is expected


def test_use_overrides_ai_train_yes_conservatively() -> None:
    [sig] = cs.header_signals(["ai-train=yes, use=immediate"], mode=C)
    assert sig.verdicts[TRAIN] is DENY and "kept" in sig.note
    [sig] = cs.header_signals(["ai-train=yes, use=immediate"], mode=S)
    assert sig.verdicts[TRAIN] is ALLOW


def test_header_form_and_lenient_values() -> None:
    values = ["ai-train=disallow, ai-input=allow, search=allow"]
    assert cs.header_signals(values, mode=S) == []  # strict accepts yes/no only
    [sig] = cs.header_signals(values, mode=C)
    assert sig.where == "header" and sig.verdicts == {TRAIN: DENY, INPUT: ALLOW, SEARCH: ALLOW}
    for word in ("n", "no", "disallow", "disallowed", "false", "NO"):
        assert cs.parse_content_signal(f"ai-train={word}", mode=C) == {"ai-train": DENY}
    for word in ("y", "yes", "allow", "allowed", "true"):
        assert cs.parse_content_signal(f"ai-train={word}", mode=C) == {"ai-train": ALLOW}


def test_all_three_keys_and_missing_keys_unknown() -> None:
    assert cs.parse_content_signal("search=no, ai-input=yes, ai-train=no", mode=S) == {
        "search": DENY,
        "ai-input": ALLOW,
        "ai-train": DENY,
    }
    assert cs.parse_content_signal("search=yes", mode=S) == {"search": ALLOW}
    assert cs.parse_content_signal("", mode=S) == {}


def test_whitespace_quotes_and_malformed_pairs() -> None:
    assert cs.parse_content_signal("  search = yes ,ai-train= no,,", mode=S) == {"search": ALLOW, "ai-train": DENY}
    assert cs.parse_content_signal('ai-train="no"', mode=S) == {"ai-train": DENY}
    # a malformed neighbour does not hide a reservation
    [sig] = cs.header_signals(["garbage, ai-train=no, foo"], mode=S)
    assert sig.verdicts == {TRAIN: DENY} and "malformed" in sig.note
    assert cs.parse_content_signal("ai-train=maybe", mode=C) == {}


def test_conflicting_duplicates_keep_the_reservation() -> None:
    for mode in (S, C):
        assert cs.parse_content_signal("ai-train=no, ai-train=yes", mode=mode) == {"ai-train": DENY}
        assert cs.parse_content_signal("ai-train=yes, ai-train=no", mode=mode) == {"ai-train": DENY}
        assert cs.parse_content_signal("ai-train=yes, ai-train=yes", mode=mode) == {"ai-train": ALLOW}


def test_unknown_keys_ignored_and_other_extensions_skipped() -> None:
    assert cs.parse_content_signal("foo=no, ai-train=no", mode=S) == {"ai-train": DENY}
    lines = [Extension("content-usage", "train-ai=n", 1), Extension("crawl-delay", "1", 2)]
    assert cs.robots_signals(lines, mode=C) == []


def test_multiple_lines_each_a_signal() -> None:
    body = "User-agent: *\nContent-Signal: search=yes\nContent-Signal: ai-train=no"
    sigs = cs.robots_signals(group_lines(body), mode=S)
    assert [s.verdicts for s in sigs] == [{SEARCH: ALLOW}, {TRAIN: DENY}]
    assert [s.rule.split(":")[0] for s in sigs] == ["line 2", "line 3"]


def test_bytes_and_junk_header_values() -> None:
    assert cs.header_signals([b"ai-train=no"], mode=S)[0].verdicts == {TRAIN: DENY}  # type: ignore[list-item]
    assert cs.header_signals([None, 3], mode=S) == []  # type: ignore[list-item]


@pytest.mark.parametrize(
    "skipped", ["", "junk", "=no", "use=bogus", "use=full", "ai-train=maybe", "x-other=no", "use=reference"]
)
def test_pairs_after_a_skipped_pair_are_still_read(skipped: str) -> None:
    for mode in (S, C):
        assert cs.parse_content_signal(f"{skipped}, ai-input=no", mode=mode)["ai-input"] is DENY, mode


def test_robots_lines_after_other_extensions_and_non_strings() -> None:
    lines = [Extension("sitemap", "https://e/s.xml", 3), Extension("content-signal", "ai-train=no", 4)]
    (sig,) = cs.robots_signals(lines, mode=S, group="User-agent: *", source="https://e/robots.txt")
    assert sig.rule == "line 4: Content-Signal: ai-train=no (User-agent: *)" and sig.source == "https://e/robots.txt"
    assert sig.value == "ai-train=no" and dict(sig.verdicts) == {TRAIN: DENY}
    (sig,) = cs.header_signals([None, b"search=yes, ai-train=no"], mode=S)  # type: ignore[list-item]
    assert sig.rule == "Content-Signal: search=yes, ai-train=no" and dict(sig.verdicts)[TRAIN] is DENY


FUZZ = settings(max_examples=300, deadline=1000)
piece = st.sampled_from(["search", "ai-train", "ai-input", "use", "=", ",", " ", "yes", "no", "reference", "\x00", "é"])


@FUZZ
@given(st.lists(st.one_of(st.text(max_size=50), st.lists(piece, max_size=20).map("".join)), max_size=5))
def test_fuzz_values(values: list[str]) -> None:
    for mode in (S, C):
        for sig in cs.header_signals(values, mode=mode):
            assert set(sig.verdicts) <= {TRAIN, INPUT, SEARCH}
        exts = [Extension("content-signal", v, i) for i, v in enumerate(values)]
        strict = {p for s in cs.robots_signals(exts, mode=S) for p, v in s.verdicts.items() if v is DENY}
        cons = {p for s in cs.robots_signals(exts, mode=C) for p, v in s.verdicts.items() if v is DENY}
        assert strict <= cons


@settings(max_examples=3, deadline=3000)
@given(st.sampled_from(["ai-train=no," * 50000, "=" * 200000, "\x00" * 100000]))
def test_fuzz_huge(value: str) -> None:
    """Huge values are read in bounded time and still say what they say: a repeated `ai-train=no` is a training
    reservation, junk is nothing."""
    expected = {TRAIN} if value.startswith("ai-train") else set()
    assert well_formed(cs.header_signals([value], mode=C), "content-signal") == expected
    assert well_formed(cs.robots_signals([Extension("content-signal", value, 1)], mode=C), "content-signal") == expected


def test_with_the_real_robots_parser() -> None:
    robots_mod = pytest.importorskip("middlewares.protocols.robots")
    parse = getattr(robots_mod, "parse_robots", None)
    if parse is None:
        pytest.skip("robots parser not available")
    rb = parse(b"# search=no is only a comment\nUser-agent: *\ncontent-signal: ai-input=no # comment\nAllow: /\n")
    sel = rb.select("ExampleBot")
    [sig] = cs.robots_signals(sel.extensions, mode=S, group=sel.describe())
    assert sig.verdicts == {INPUT: DENY} and sig.rule.startswith("line 3: Content-Signal: ai-input=no")
    assert cs.robots_signals(parse(b"# Content-Signal: ai-train=no\n").select("x").extensions, mode=C) == []
