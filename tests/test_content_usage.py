"""AIPREF Content-Usage: RFC 9651 dictionary parsing, vocab-07 processing, attach-05 header and robots.txt rule
(PROTOCOLS.md §3, vectors 33–49)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from middlewares.protocols import content_usage as cu
from middlewares.protocols.signals import Mode, Purpose, Verdict
from tests.support.signals import well_formed

C, S = Mode.CONSERVATIVE, Mode.STRICT
TRAIN, INPUT, SEARCH = Purpose.TRAIN_AI, Purpose.AI_INPUT, Purpose.SEARCH
ALLOW, DENY = Verdict.ALLOW, Verdict.DISALLOW

try:
    from middlewares.protocols.robots import Extension
except ImportError:  # robots.py is written concurrently; the functions only read .key / .value / .line

    @dataclass(frozen=True)
    class Extension:  # type: ignore[no-redef]
        key: str
        value: str
        line: int


def header(values: list[str], mode: Mode) -> dict[Purpose, Verdict]:
    out: dict[Purpose, Verdict] = {}
    for sig in cu.header_signals(values, mode=mode):
        assert sig.protocol == "content-usage" and sig.where == "header"
        out.update(sig.verdicts)
    return out


def robots(body: str, url: str, mode: Mode = S) -> dict[Purpose, Verdict]:
    """Build the selected group's extension lines directly: every line is in the one `User-Agent: *` group."""
    exts = []
    for number, line in enumerate(body.split("\n"), 1):
        key, _, value = line.partition(":")
        if key.strip().lower() == "content-usage":
            exts.append(Extension("content-usage", value.split("#", 1)[0].strip(), number))
    out: dict[Purpose, Verdict] = {}
    for sig in cu.robots_signals(exts, url, mode=mode, group="User-agent: *"):
        assert sig.where == "robots.txt" and sig.rule.startswith("line ")
        out.update(sig.verdicts)
    return out


# --- RFC 9651 parsing (http-sf verified for the properties vocab-07 relies on) ------------------------------------


def test_parse_preferences_tokens_only() -> None:
    assert cu.parse_preferences(b"train-ai=n, search=y") == {"train-ai": "n", "search": "y"}
    assert cu.parse_preferences('train-ai=y, train-ai, search=n, search="n"') == {}  # Boolean and String
    assert cu.parse_preferences("train-ai=(n y)") == {}  # inner list is not a Token
    assert cu.parse_preferences("train-ai=1") == {}
    assert cu.parse_preferences("train-ai=N") == {"train-ai": "N"}  # a Token, just not y/n
    assert cu.parse_preferences("") == {}


@pytest.mark.parametrize(
    "value",
    [
        "Train-AI=n",  # uppercase key (§6.5.1)
        "train-ai=n,",  # trailing comma
        "train-ai=n,,search=y",
        "*.pdf train-ai=n",
        "train-ai=n search=y",
        'train-ai="n',  # unterminated string
        "a=1.1234",  # decimal with 4 fractional digits
        "a=9999999999999999",  # integer with 16 digits
        "\ttrain-ai=n",  # RFC 9651 only discards leading SP
        "train-ai=n\x00",
        "trAin-ai=n",
    ],
)
def test_parse_failures(value: str) -> None:
    assert cu.parse_preferences(value) is None
    reason = cu.parse_error(value)
    assert reason and "\n" not in reason


def test_rfc9651_types_that_rfc8941_lacks_still_parse() -> None:
    # Dates and Display Strings are RFC 9651 additions: a member using them must not fail the whole field.
    assert cu.parse_preferences('d=@1659578233, s=%"f%c3%bc", train-ai=n') == {"train-ai": "n"}
    assert cu.parse_error("train-ai=n") is None


def test_parameters_ignored_and_last_wins() -> None:
    assert cu.parse_preferences("train-ai=n;q=1") == {"train-ai": "n"}
    assert cu.parse_preferences("train-ai;allow=n, train-ai=y") == {"train-ai": "y"}
    assert cu.parse_preferences("train-ai=n, train-ai=y") == {"train-ai": "y"}


# --- vectors ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [S, C])
def test_vector_33_header_train_ai_n(mode: Mode) -> None:
    result = header(["train-ai=n"], mode)
    assert result == {TRAIN: DENY}
    assert SEARCH not in result


@pytest.mark.parametrize("mode", [S, C])
def test_vector_35_uppercase_key_is_parse_failure(mode: Mode) -> None:
    assert cu.header_signals(["Train-AI=n"], mode=mode) == []
    assert "uppercase" in (cu.parse_error("Train-AI=n") or "")


@pytest.mark.parametrize("mode", [S, C])
def test_vector_37_parameters_ignored_last_wins(mode: Mode) -> None:
    assert header(["train-ai;allow=n, train-ai=y"], mode) == {TRAIN: ALLOW}


def test_vector_39_legacy_label() -> None:
    assert header(["train-genai=n"], S) == {}
    [sig] = cu.header_signals(["train-genai=n"], mode=C)
    assert sig.verdicts == {TRAIN: DENY}
    assert "legacy label" in sig.note


def test_vector_41_two_field_lines() -> None:
    assert header(["train-ai=n", "train-ai=y"], S) == {TRAIN: ALLOW}
    assert header(["train-ai=n", "train-ai=y"], C) == {TRAIN: DENY}


def test_vector_43_identical_paths_combined_most_restrictively() -> None:
    body = "User-Agent: *\nContent-Usage: /a/ train-ai=n\nContent-Usage: /a/ train-ai=y"
    for mode in (S, C):
        assert robots(body, "https://h.example/a/x", mode) == {TRAIN: DENY}
    body_rev = "User-Agent: *\nContent-Usage: /a/ train-ai=y\nContent-Usage: /a/ train-ai=n"
    assert robots(body_rev, "https://h.example/a/x") == {TRAIN: DENY}


@pytest.mark.parametrize("mode", [S, C])
def test_vector_45_no_path_and_unparseable(mode: Mode) -> None:
    body = "User-Agent: *\nContent-Usage: *.pdf train-ai=n"
    assert robots(body, "https://h.example/doc.pdf", mode) == {}
    [sig] = cu.robots_signals([Extension("content-usage", "*.pdf train-ai=n", 2)], "https://h.example/x.pdf", mode=mode)
    assert sig.verdicts == {} and "unparseable" in sig.note
    rule = cu.split_rule("*.pdf train-ai=n")
    assert rule.path == "" and rule.preference == "*.pdf train-ai=n"


@pytest.mark.parametrize("mode", [S, C])
def test_vector_47_comment_stripped(mode: Mode) -> None:
    assert robots("User-Agent: *\nContent-Usage: train-ai=n # no training", "https://h.example/p", mode) == {
        TRAIN: DENY
    }
    # Even if a caller passes the raw value, the `#` ends the rule value (attach-05 §3.2).
    assert cu.split_rule("train-ai=n # no training").preference == "train-ai=n"


def test_vector_49_disallowed_paths_have_no_preferences() -> None:
    """attach-05: preferences apply only to crawlable paths. The access stage (robots.py) never lets the URL be
    fetched, so the usage stage is not reached; this pins that the access answer is 'no' for the vector."""
    robots_mod = pytest.importorskip("middlewares.protocols.robots")
    parse = getattr(robots_mod, "parse_robots", None)
    if parse is None:
        pytest.skip("robots parser not available")
    rb = parse(b"User-agent: *\nDisallow: /x/\nContent-Usage: /x/ train-ai=y\n")
    assert not rb.can_fetch("ExampleBot", "https://h.example/x/1")


def test_attach_example_figure_2() -> None:
    body = "User-Agent: *\nAllow: /\nDisallow: /never/\nContent-Usage: train-ai=n\nContent-Usage: /ai-ok/ train-ai=y"
    assert robots(body, "https://h.example/test") == {TRAIN: DENY}
    assert robots(body, "https://h.example/ai-ok/test") == {TRAIN: ALLOW}
    # a rule without a path is less specific than "/"
    assert robots("Content-Usage: train-ai=n\nContent-Usage: / train-ai=y", "https://h.example/a") == {TRAIN: ALLOW}


# --- more rules ---------------------------------------------------------------------------------------------------


def test_search_label_and_unknown_labels_ignored() -> None:
    assert header(["search=n, foo=n, train-ai=y"], S) == {SEARCH: DENY, TRAIN: ALLOW}
    assert header(["foo=n"], S) == {}
    assert header(["train-ai=maybe"], C) == {}


def test_vocab_example_duplicates_become_unknown_strict() -> None:
    # vocab-07 §6.5.1: `train-ai=y, train-ai, search=n, search="n"` => both unknown
    assert header(['train-ai=y, train-ai, search=n, search="n"'], S) == {}
    # conservative: a Token n anywhere among the duplicates wins (most restrictive)
    [sig] = cu.header_signals(['train-ai=y, train-ai, search=n, search="n"'], mode=C)
    assert sig.verdicts == {SEARCH: DENY}
    assert "duplicate key search" in sig.note


def test_conservative_duplicate_inside_one_line() -> None:
    assert header(["train-ai=n, train-ai=y"], S) == {TRAIN: ALLOW}
    assert header(["train-ai=n, train-ai=y"], C) == {TRAIN: DENY}


@pytest.mark.parametrize("label", ["bots", "all", "tdm", "ai", "genai", "train-genai"])
def test_legacy_training_labels(label: str) -> None:
    assert header([f"{label}=n"], S) == {}
    assert header([f"{label}=n"], C) == {TRAIN: DENY}
    assert header([f"{label}=y"], C) == {}  # legacy labels never grant anything


@pytest.mark.parametrize("label", ["ai-use", "ai-output", "inference", "infer-user", "infer-system"])
def test_legacy_inference_labels(label: str) -> None:
    assert header([f"{label}=n"], S) == {}
    assert header([f"{label}=n"], C) == {INPUT: DENY}


def test_conservative_reads_good_line_when_another_is_broken() -> None:
    assert header(["train-ai=n", "Bad=1"], S) == {}  # whole-field failure
    assert header(["train-ai=n", "Bad=1"], C) == {TRAIN: DENY}
    assert cu.parse_error("train-ai=n, Bad=1")


def test_conservative_never_less_restrictive_than_strict() -> None:
    for values in (["train-ai=y"], ["train-ai=y", "train-ai=n"], ["search=n", "search=y"], ['train-ai="n"']):
        strict, cons = header(values, S), header(values, C)
        for purpose, verdict in strict.items():
            if verdict is DENY:
                assert cons[purpose] is DENY


def test_field_lines_whitespace_and_empty() -> None:
    assert header(["  train-ai=n\t"], S) == {TRAIN: DENY}
    assert header(["", "train-ai=n", "   "], S) == {TRAIN: DENY}
    assert cu.header_signals([], mode=C) == []


def test_bytes_and_junk_field_lines() -> None:
    assert header([b"train-ai=n"], S) == {TRAIN: DENY}  # type: ignore[list-item]
    assert cu.header_signals([None, 5], mode=C) == []  # type: ignore[list-item]


def test_bytes_input_and_non_ascii() -> None:
    assert cu.parse_preferences(b"train-ai=n") == {"train-ai": "n"}
    assert cu.parse_preferences('train-ai=n, x="é"') is None  # non-ASCII in a String fails
    assert cu.parse_preferences(b"train-ai=n, x=\xff") is None


def test_value_size_cap() -> None:
    huge = "a=1, " * 20000 + "train-ai=n"
    assert cu.parse_preferences(huge) is None
    assert "limit" in (cu.parse_error(huge) or "")


def test_robots_longest_path_and_percent_encoding() -> None:
    body = "Content-Usage: /a train-ai=y\nContent-Usage: /a/b train-ai=n\nContent-Usage: /%7Euser/ search=n"
    assert robots(body, "https://h.example/a/b/c") == {TRAIN: DENY}
    assert robots(body, "https://h.example/a/c") == {TRAIN: ALLOW}
    assert robots(body, "https://h.example/~user/x") == {SEARCH: DENY}
    assert robots(body, "https://h.example/zzz") == {}


def test_robots_wildcards_and_anchor() -> None:
    body = "Content-Usage: /*.pdf$ train-ai=n\nContent-Usage: / train-ai=y"
    assert robots(body, "https://h.example/files/a.pdf") == {TRAIN: DENY}
    assert robots(body, "https://h.example/files/a.pdf?x") == {TRAIN: ALLOW}


def test_robots_tab_separated_path_and_empty_preference() -> None:
    assert cu.split_rule("/a/\ttrain-ai=n") == cu.UsageRule(0, "/a/\ttrain-ai=n", "/a/", "train-ai=n")
    assert robots("Content-Usage: /a/", "https://h.example/a/x") == {}


def test_robots_unparseable_specific_rule() -> None:
    body = "Content-Usage: train-ai=n\nContent-Usage: /a/ Train-AI=y"
    # strict: the most specific rule applies and its preferences are all unknown
    assert robots(body, "https://h.example/a/x", S) == {}
    # conservative: a broken specific rule does not lift the broader reservation
    assert robots(body, "https://h.example/a/x", C) == {TRAIN: DENY}
    assert robots(body, "https://h.example/b", S) == {TRAIN: DENY}


def test_robots_other_extension_keys_ignored() -> None:
    exts = [Extension("content-signal", "ai-train=no", 1), Extension("crawl-delay", "3", 2)]
    assert cu.robots_signals(exts, "https://h.example/", mode=C) == []


def test_robots_rule_text_names_line_and_group() -> None:
    [sig] = cu.robots_signals(
        [Extension("content-usage", "/docs/ train-ai=n", 7)], "https://h.example/docs/x", mode=S, group="User-agent: X"
    )
    assert sig.rule == "line 7: Content-Usage: /docs/ train-ai=n (User-agent: X)"
    assert sig.value == "train-ai=n"


def test_robots_legacy_conservative() -> None:
    assert robots("Content-Usage: ai=n", "https://h.example/", S) == {}
    assert robots("Content-Usage: ai=n", "https://h.example/", C) == {TRAIN: DENY}


# --- fuzz ---------------------------------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
sf_piece = st.sampled_from([*'abn=y,;"?*()@%:/ \t-19.', "train-ai", "search", "\x00", "é", "N", "T"])
sf_text = st.lists(sf_piece, max_size=25).map("".join)


@FUZZ
@given(st.binary(max_size=2000))
def test_fuzz_bytes(data: bytes) -> None:
    result = cu.parse_preferences(data)
    assert result is None or isinstance(result, dict)
    assert (cu.parse_error(data) is None) == (result is not None)


@FUZZ
@given(st.lists(sf_text, max_size=5), st.sampled_from([S, C]))
def test_fuzz_header_lines(values: list[str], mode: Mode) -> None:
    for sig in cu.header_signals(values, mode=mode):
        assert set(sig.verdicts) <= {TRAIN, INPUT, SEARCH}
    strict = header(values, S)
    cons = header(values, C)
    for purpose, verdict in strict.items():
        if verdict is DENY:
            assert cons.get(purpose) is DENY


@FUZZ
@given(st.lists(st.text(max_size=80), max_size=8), st.text(max_size=60))
def test_fuzz_robots_lines(values: list[str], path: str) -> None:
    exts = [Extension("content-usage", v, i) for i, v in enumerate(values, 1)]
    strict = well_formed(cu.robots_signals(exts, "https://h.example/" + path, mode=S), "content-usage")
    assert strict <= well_formed(cu.robots_signals(exts, "https://h.example/" + path, mode=C), "content-usage")


@settings(max_examples=5, deadline=3000)
@given(st.sampled_from(["train-ai=n, " * 6000, "a=(" + "x " * 30000 + ")", "\x00" * 70000, "/*" * 30000]))
def test_fuzz_huge_values(value: str) -> None:
    """A value over the size limit, or junk, reserves nothing and is not read past the limit."""
    assert well_formed(cu.header_signals([value, value], mode=C), "content-usage") == set()
    url = "https://h.example/" + "a" * 5000
    assert well_formed(cu.robots_signals([Extension("content-usage", value, 1)], url, mode=C), "content-usage") == set()


def test_with_the_real_robots_parser() -> None:
    """The same vectors through robots.py's group selection and extension lines, when that module is present."""
    robots_mod = pytest.importorskip("middlewares.protocols.robots")
    parse = getattr(robots_mod, "parse_robots", None)
    if parse is None:
        pytest.skip("robots parser not available")
    rb = parse(
        b"User-Agent: *\nContent-Usage: /a/ train-ai=n\nContent-Usage: /a/ train-ai=y\n"
        b"Content-Usage: train-ai=y # default\n\nUser-Agent: ExampleBot\nContent-Usage: *.pdf train-ai=n\n"
    )
    star = rb.select("OtherBot")
    [sig] = cu.robots_signals(star.extensions, "https://h.example/a/x", mode=S, group=star.describe())
    assert sig.verdicts == {TRAIN: DENY} and "line 2" in sig.rule and "line 3" in sig.rule
    [sig] = cu.robots_signals(star.extensions, "https://h.example/b", mode=S)
    assert sig.verdicts == {TRAIN: ALLOW}
    own = rb.select("ExampleBot")
    [sig] = cu.robots_signals(own.extensions, "https://h.example/x.pdf", mode=C)
    assert sig.verdicts == {}
