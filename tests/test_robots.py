"""robots.txt (RFC 9309) parser and matcher: PROTOCOLS.md §1 / §8 rules and §11 vectors, the toolkit's own
extensions (group-scoped AI-preference lines, cross-token training reservations), agreement with Protego on
ordinary files, and fuzzing against a brute-force reference matcher."""

from __future__ import annotations

import contextlib
import math
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protego import Protego

from middlewares.protocols import robots_match
from middlewares.protocols.robots import (
    ALLOW_ALL,
    DISALLOW_ALL,
    PARSE_LIMIT,
    TRAINING_TOKENS,
    Extension,
    RobotsTxt,
    access_signal,
    cross_token_signals,
    parse_robots,
)
from middlewares.protocols.signals import Purpose, Verdict


def allowed(body: str | bytes, token: str, url: str, *, lenient: bool = True) -> bool:
    return parse_robots(body).match(token, url, lenient=lenient).allowed


# ------------------------------------------------------------------------------------------------------------------
# PROTOCOLS.md §11 vectors


def test_vector_01_specific_group_replaces_star() -> None:
    body = "User-agent: *\nDisallow: /\n\nUser-agent: ExampleBot\nAllow: /"
    assert allowed(body, "ExampleBot", "/x")
    assert not allowed(body, "OtherBot", "/x")


def test_vector_03_case_insensitive_token_and_groups_merged() -> None:
    body = "user-agent: examplebot\ndisallow: /foo\n\nUSER-AGENT: ExampleBot\ndisallow: /baz"
    robots = parse_robots(body)
    assert not robots.match("ExampleBot", "/foo/1").allowed
    assert not robots.match("ExampleBot", "/baz/1").allowed
    assert robots.match("ExampleBot", "/other").allowed
    assert [g.line for g in robots.select("ExampleBot").groups] == [1, 4]


def test_vector_05_tie_goes_to_allow() -> None:
    m = parse_robots("User-agent: *\nAllow: /page\nDisallow: /page").match("bot", "/page")
    assert m.allowed
    assert m.rule is not None and m.rule.allow and m.rule.line == 2


def test_vector_07_star_spans_slash_and_prefix_match() -> None:
    assert not allowed("User-agent: *\nDisallow: /this/*/exactly", "bot", "/this/a/b/exactly-not")
    assert allowed("User-agent: *\nDisallow: /this/*/exactly", "bot", "/this/exactly")


def test_vector_09_percent_encoded_star_is_literal() -> None:
    body = "User-agent: *\nDisallow: /path/file-with-a-%2A.html"
    assert not allowed(body, "bot", "/path/file-with-a-*.html")
    assert allowed(body, "bot", "/path/file-with-a-x.html")


def test_vector_11_sitemap_does_not_end_group() -> None:
    robots = parse_robots("User-agent: a\nSitemap: https://h/s.xml\nDisallow: /z")
    assert not robots.match("a", "/z").allowed
    assert robots.sitemaps == ["https://h/s.xml"]
    assert robots.sitemap_records == [Extension("sitemap", "https://h/s.xml", 2)]


def test_vector_13_robots_txt_implicitly_allowed() -> None:
    robots = parse_robots("User-agent: *\nDisallow: /\nDisallow: /robots.txt")
    m = robots.match("bot", "https://example.com/robots.txt")
    assert m.allowed and m.rule is None
    assert "always allowed" in m.describe()
    assert not robots.match("bot", "/robots.txt.bak").allowed


def test_vector_15_unreachable_robots_disallows_everything() -> None:
    m = DISALLOW_ALL.match("ExampleBot", "https://example.com/any/page")
    assert not m.allowed
    assert "unreachable" in m.describe()
    sig = access_signal(DISALLOW_ALL, "ExampleBot", "https://example.com/any/page")
    assert sig is not None and sig.denied_purposes() == ["train-ai", "ai-input", "search"]
    # 4xx: unavailable, allow everything.
    assert ALLOW_ALL.match("ExampleBot", "https://example.com/x").allowed
    assert access_signal(ALLOW_ALL, "ExampleBot", "https://example.com/x") is None


def test_vector_17_rules_are_host_agnostic_after_redirect() -> None:
    # The body fetched from https://cdn.example/r.txt applies to a.example: the parser only looks at paths.
    robots = parse_robots(b"User-agent: *\nDisallow: /private/\n")
    assert not robots.match("bot", "http://a.example/private/x").allowed
    assert robots.match("bot", "http://a.example/public").allowed


def test_vector_19_versioned_user_agent_lenient_vs_strict() -> None:
    body = "User-agent: ExampleBot/1.0\nDisallow: /"
    assert not allowed(body, "ExampleBot", "/x")  # lenient (conservative default)
    assert allowed(body, "ExampleBot", "/x", lenient=False)  # strict ABNF: not a valid token
    assert not allowed("User-agent: ExampleBot 2.0\nDisallow: /", "ExampleBot", "/x")
    assert allowed("User-agent: ExampleBot 2.0\nDisallow: /", "ExampleBot", "/x", lenient=False)


def test_vector_49_disallowed_path_carries_no_preference() -> None:
    robots = parse_robots("User-agent: *\nDisallow: /x/\nContent-Usage: /x/ train-ai=y")
    m = robots.match("ExampleBot", "/x/1")
    assert not m.allowed  # not crawlable: the Content-Usage allow cannot help
    assert m.describe() == "line 2: Disallow: /x/ (User-agent: *)"
    assert robots.select("ExampleBot").extensions == [Extension("content-usage", "/x/ train-ai=y", 3)]
    sig = access_signal(robots, "ExampleBot", "/x/1")
    assert sig is not None and sig.verdict(Purpose.TRAIN_AI) is Verdict.DISALLOW


def test_vector_85_token_is_not_prefix_matched() -> None:
    body = "User-agent: Claude\nDisallow: /"
    assert allowed(body, "ClaudeBot", "/")
    assert allowed(body, "ClaudeBot", "/", lenient=False)
    assert not parse_robots(body).has_explicit_group("ClaudeBot")
    # ... nor substring / suffix matched.
    assert allowed("User-agent: Bot\nDisallow: /", "ClaudeBot", "/")
    assert allowed("User-agent: ClaudeBot\nDisallow: /", "Claude", "/")


def test_vector_87_digits_in_token_accepted() -> None:
    assert not allowed("User-agent: AI2Bot\nDisallow: /", "AI2Bot", "/")
    assert not allowed("User-agent: AI2Bot\nDisallow: /", "ai2bot", "/", lenient=False)


# ------------------------------------------------------------------------------------------------------------------
# §1.4 syntax and grouping


def test_blank_lines_do_not_end_a_group() -> None:
    robots = parse_robots("User-agent: a\n\nUser-agent: b\n\n\nDisallow: /x\n")
    assert len(robots.groups) == 1
    assert robots.groups[0].agents == ("a", "b")
    assert not robots.match("a", "/x").allowed and not robots.match("b", "/x").allowed


def test_group_ends_at_user_agent_after_rule() -> None:
    robots = parse_robots("User-agent: a\nDisallow: /a\nUser-agent: b\nDisallow: /b\n")
    assert robots.match("a", "/b").allowed
    assert not robots.match("b", "/b").allowed


@pytest.mark.parametrize("line", ["Crawl-delay: 5", "Request-rate: 1/5", "Host: example.com", "Noindex: /x", "# c"])
def test_non_rule_records_do_not_end_a_group(line: str) -> None:
    robots = parse_robots(f"User-agent: a\n{line}\nUser-agent: b\nDisallow: /\n")
    assert len(robots.groups) == 1
    assert not robots.match("a", "/x").allowed


@pytest.mark.parametrize("line", ["Content-Usage: train-ai=n", "Content-Signal: ai-train=no", "Disallow:"])
def test_rule_records_end_the_user_agent_run(line: str) -> None:
    # Content-Usage is a `rule` in draft-ietf-aipref-attach; Content-Signal is its twin; an empty Disallow too.
    robots = parse_robots(f"User-agent: a\n{line}\nUser-agent: b\nDisallow: /\n")
    assert [g.agents for g in robots.groups] == [("a",), ("b",)]
    assert robots.match("a", "/x").allowed


def test_rules_before_first_group_are_ignored_and_reported() -> None:
    robots = parse_robots("Disallow: /\nContent-Signal: ai-train=no\nUser-agent: a\nDisallow: /a\n")
    assert robots.match("a", "/b").allowed
    assert robots.match("zzz", "/b").allowed
    assert any(w.startswith("line 1:") and "before any User-agent" in w for w in robots.warnings)
    assert robots.other == [Extension("content-signal", "ai-train=no", 2)]


def test_empty_disallow_blocks_nothing() -> None:
    robots = parse_robots("User-agent: *\nDisallow:\n")
    m = robots.match("bot", "/anything")
    assert m.allowed and m.rule is None
    assert robots.has_explicit_group("*") is False
    assert robots.select("bot").agent == "*"


def test_no_groups_means_no_rules() -> None:
    robots = parse_robots("# nothing here\n\nSitemap: https://e/s.xml\n")
    m = robots.match("bot", "/x")
    assert m.allowed and m.group.agent == "" and m.group.groups == []
    assert m.describe() == "no User-agent group applies: no restrictions"


def test_only_specific_groups_and_no_star_allows_others() -> None:
    assert allowed("User-agent: GPTBot\nDisallow: /\n", "ExampleBot", "/")


def test_multiple_star_groups_are_merged() -> None:
    robots = parse_robots("User-agent: *\nDisallow: /a\n\nUser-agent: x\nAllow: /\n\nUser-agent: *\nDisallow: /b\n")
    assert not robots.match("bot", "/a").allowed and not robots.match("bot", "/b").allowed
    assert robots.select("bot").describe() == "User-agent: * (lines 1, 7)"


@pytest.mark.parametrize("newline", ["\n", "\r", "\r\n"])
def test_line_endings(newline: str) -> None:
    body = newline.join(["User-agent: a", "Disallow: /x # comment", "", "Allow: /x/y"])
    robots = parse_robots(body)
    assert [(r.pattern, r.line) for r in robots.groups[0].rules] == [("/x", 2), ("/x/y", 4)]
    assert not robots.match("a", "/x/z").allowed and robots.match("a", "/x/y").allowed


def test_keys_case_insensitive_and_whitespace_around_colon() -> None:
    assert not allowed("USER-AGENT :\tbot\n  DISALLOW\t:  /x  \n", "bot", "/x/1")


def test_comment_stripped_from_values() -> None:
    robots = parse_robots("User-agent: bot # our bot\nDisallow: /p#q\nContent-Usage: train-ai=n # no training\n")
    assert robots.groups[0].agents == ("bot",)
    assert robots.groups[0].rules[0].pattern == "/p"
    assert robots.groups[0].extensions == [Extension("content-usage", "train-ai=n", 3)]


def test_misspelt_disallow_accepted_but_allow_typos_are_not() -> None:
    robots = parse_robots("User-agent: a\nDissallow: /x\nAlow: /x/y\n")
    assert not robots.match("a", "/x/y").allowed
    assert [e.key for e in robots.groups[0].extensions] == ["alow"]


def test_utf8_bom_skipped() -> None:
    assert not allowed(b"\xef\xbb\xbfUser-agent: a\nDisallow: /\n", "a", "/")


def test_invalid_utf8_tolerated_and_kept_as_percent_escape() -> None:
    robots = parse_robots(b"User-agent: a\xff\nDisallow: /caf\xe9\nDisallow: /ok\n")
    assert any("not valid UTF-8" in w for w in robots.warnings)
    assert robots.groups[0].rules[0].pattern == "/caf%E9"
    assert not robots.match("a\ufffd", "/caf%E9").allowed
    assert not robots.match("a\ufffd", "/ok").allowed


def test_non_ascii_rule_matches_encoded_and_raw_url() -> None:
    robots = parse_robots("User-agent: *\nDisallow: /tìm-kiếm\n")
    assert not robots.match("bot", "/t%C3%ACm-ki%E1%BA%BFm?q=1").allowed
    assert not robots.match("bot", "/tìm-kiếm").allowed  # RFC 9309: both sides are encoded before comparison


def test_percent_encoding_of_unreserved_characters_normalised() -> None:
    robots = parse_robots("User-agent: *\nDisallow: /%7Euser/\nDisallow: /a%2fb\n")
    assert not robots.match("bot", "/~user/x").allowed
    assert not robots.match("bot", "/a%2Fb").allowed
    assert robots.match("bot", "/a/b").allowed  # reserved "/" stays encoded: %2F is not a path separator


def test_dollar_anchor_and_leading_star() -> None:
    robots = parse_robots("User-agent: *\nDisallow: *.gif$\nDisallow: /end$\n")
    assert not robots.match("bot", "/img/a.gif").allowed
    assert robots.match("bot", "/img/a.gif?x=1").allowed
    assert not robots.match("bot", "/end").allowed and robots.match("bot", "/ending").allowed


# ------------------------------------------------------------------------------------------------------------------
# Parse limit


def test_parse_limit_truncates_and_reports() -> None:
    head = b"User-agent: *\nDisallow: /a\n"
    filler = b"# " + b"x" * 99 + b"\n"
    body = head + filler * (PARSE_LIMIT // len(filler) + 1) + b"Disallow: /b\n"
    robots = parse_robots(body)
    assert robots.truncated and robots.size <= PARSE_LIMIT
    assert not robots.match("bot", "/a").allowed
    assert robots.match("bot", "/b").allowed  # after the limit: ignored
    assert any("512000" in w for w in robots.warnings)


def test_line_cut_by_limit_is_dropped_not_shortened() -> None:
    body = b"User-agent: *\nDisallow: /a\nAllow: /public-only-this-page\n"
    limit = body.index(b"Allow") + len(b"Allow: /pub")
    robots = parse_robots(body, limit=limit)
    assert robots.truncated
    assert [r.pattern for r in robots.groups[0].rules] == ["/a"]  # no broader "Allow: /pub"


def test_small_file_not_truncated() -> None:
    robots = parse_robots(b"User-agent: *\nDisallow: /a\n")
    assert not robots.truncated and robots.warnings == []


# ------------------------------------------------------------------------------------------------------------------
# Agent matching


@pytest.mark.parametrize(
    ("value", "lenient", "strict"),
    [
        ("ExampleBot", True, True),
        ("examplebot", True, True),
        ("EXAMPLEBOT", True, True),
        ("ExampleBot/1.0", True, False),
        ("ExampleBot 2.0", True, False),
        ("ExampleBot*", True, False),
        ("OtherBot, ExampleBot", True, False),
        ("ExampleBots", False, False),
        ("Example", False, False),
        ("xExampleBot", False, False),
        ("Mozilla/5.0 (compatible; ExampleBot/1.0)", False, False),
    ],
)
def test_agent_matching_table(value: str, lenient: bool, strict: bool) -> None:
    body = f"User-agent: {value}\nDisallow: /\n"
    robots = parse_robots(body)
    assert robots.has_explicit_group("ExampleBot", lenient=True) is lenient
    assert robots.has_explicit_group("ExampleBot", lenient=False) is strict
    assert robots.match("ExampleBot", "/", lenient=True).allowed is not lenient


def test_star_with_trailing_text_is_global_only_when_lenient() -> None:
    robots = parse_robots("User-agent: * everyone\nDisallow: /\n")
    assert not robots.match("bot", "/").allowed
    assert robots.match("bot", "/", lenient=False).allowed


def test_select_is_cached_per_token() -> None:
    robots = parse_robots("User-agent: a\nDisallow: /\n")
    assert robots.select("a") is robots.select("a")
    assert robots.select("a") is not robots.select("a", lenient=False)


def test_selected_group_reports_matched_value_and_lines() -> None:
    robots = parse_robots("User-agent: *\nDisallow: /\n\nUser-agent: GPTBot\nDisallow: /private/\n")
    sel = robots.select("gptbot")
    assert sel.agent == "GPTBot" and sel.explicit
    assert sel.describe() == "User-agent: GPTBot (line 4)"
    m = robots.match("gptbot", "https://example.com/private/x?y")
    assert m.describe() == "line 5: Disallow: /private/ (User-agent: GPTBot)"
    assert m.rule is not None and (m.rule.directive, m.rule.pattern, m.rule.line) == ("Disallow", "/private/", 5)
    assert robots.match("gptbot", "/public").describe() == "no rule matches /public (User-agent: GPTBot (line 4))"


# ------------------------------------------------------------------------------------------------------------------
# Non-standard records


CLOUDFLARE = """\
# As a condition of accessing this website, you agree to abide by the following content signals:
# (a)  If a content-signal = yes, you may collect content for the corresponding use.
User-Agent: *
Content-Signal: search=yes,ai-train=no
Allow: /

User-agent: Amazonbot
Disallow: /

User-agent: GPTBot
Content-Usage: /docs/ train-ai=y
Content-Usage: train-ai=n
Disallow: /

License: https://example.com/license.xml
Sitemap: https://example.com/sitemap.xml
"""


def test_group_scoped_extensions_kept_with_lines() -> None:
    robots = parse_robots(CLOUDFLARE)
    star = robots.select("ExampleBot")
    assert star.agent == "*"
    assert star.extensions == [Extension("content-signal", "search=yes,ai-train=no", 4)]
    gpt = robots.select("GPTBot")
    assert gpt.extensions == [
        Extension("content-usage", "/docs/ train-ai=y", 11),
        Extension("content-usage", "train-ai=n", 12),
    ]
    assert robots.licenses == [Extension("license", "https://example.com/license.xml", 15)]
    assert robots.sitemaps == ["https://example.com/sitemap.xml"]
    assert robots.select("Amazonbot").extensions == []


def test_license_inside_group_is_global_and_does_not_split_group() -> None:
    robots = parse_robots("User-agent: a\nLicense: https://e/l.xml\nUser-agent: b\nDisallow: /\n")
    assert robots.licenses[0].line == 2
    assert len(robots.groups) == 1


def test_unknown_records_kept_in_group_or_other() -> None:
    robots = parse_robots("Host: example.com\nUser-agent: a\nDisallowAITraining: /\nDisallow: /x\n")
    assert robots.other == [Extension("host", "example.com", 1)]
    assert robots.groups[0].extensions == [Extension("disallowaitraining", "/", 3)]


def test_crawl_delay_and_request_rate_per_group_and_merged() -> None:
    body = (
        "User-agent: a\nCrawl-delay: 2\nRequest-rate: 1/5\nDisallow: /x\n\n"
        "User-agent: a\nCrawl-delay: 10.5\nRequest-rate: 3/10s\nDisallow: /y\n\n"
        "User-agent: *\nCrawl-delay: 1\nCrawl-delay: nonsense\nRequest-rate: x/y\n"
    )
    robots = parse_robots(body)
    assert [g.crawl_delay for g in robots.groups] == [2.0, 10.5, 1.0]
    assert robots.groups[0].request_rate == (1, 5.0)
    assert robots.crawl_delay("a") == 10.5  # the stricter of the merged groups
    assert robots.request_rate("a") == (1, 5.0)  # 0.2 req/s is stricter than 0.3 req/s
    assert robots.crawl_delay("other") == 1.0
    assert robots.request_rate("other") is None
    assert robots.crawl_delay("a", lenient=False) == 10.5
    assert any("Crawl-delay 'nonsense'" in w for w in robots.warnings)
    assert any("Request-rate 'x/y'" in w for w in robots.warnings)
    assert ALLOW_ALL.crawl_delay("a") is None


def test_crawl_delay_only_group_joins_the_next_user_agent_lines() -> None:
    # Crawl-delay is not an RFC 9309 rule, so it does not end the run of User-agent lines (RFC 9309 §2.2.4;
    # Google's parser reads it the same way): Bingbot shares the rules of the following group.
    robots = parse_robots("User-agent: Bingbot\nCrawl-delay: 10\n\nUser-agent: *\nDisallow: /private\n")
    assert len(robots.groups) == 1
    assert not robots.match("Bingbot", "/private/x").allowed
    assert robots.crawl_delay("Bingbot") == 10.0 and robots.crawl_delay("other") == 10.0


@pytest.mark.parametrize("value", ["-1", "inf", "nan", "1e999"])
def test_crawl_delay_rejects_non_finite(value: str) -> None:
    assert parse_robots(f"User-agent: a\nCrawl-delay: {value}\n").crawl_delay("a") is None


# ------------------------------------------------------------------------------------------------------------------
# Signals


def test_access_signal_none_when_allowed_and_denies_all_when_disallowed() -> None:
    robots = parse_robots("User-agent: ExampleBot\nDisallow: /private/\n")
    assert access_signal(robots, "ExampleBot", "https://e.example/public") is None
    sig = access_signal(robots, "ExampleBot", "https://e.example/private/a")
    assert sig is not None
    assert (sig.protocol, sig.where, sig.value) == ("robots", "robots.txt", "Disallow: /private/")
    assert sig.rule == "line 2: Disallow: /private/ (User-agent: ExampleBot)"
    assert sig.verdicts == {p: Verdict.DISALLOW for p in Purpose}


AI_BLOCKS = """\
User-agent: *
Disallow: /admin/

User-agent: GPTBot
User-agent: CCBot
Disallow: /

User-agent: Google-Extended
Disallow: /articles/
Allow: /articles/free/

User-agent: ClaudeBot
Allow: /

User-agent: Claude
Disallow: /
"""


def test_cross_token_signals_explicit_training_groups_only() -> None:
    robots = parse_robots(AI_BLOCKS)
    sigs = cross_token_signals(robots, "https://n.example/articles/x", "ExampleBot")
    by_rule = {s.rule: s for s in sigs}
    # GPTBot and CCBot share one rule -> one signal naming both; Google-Extended has its own rule.
    assert set(by_rule) == {
        "line 6: Disallow: / (User-agent: GPTBot, CCBot)",
        "line 9: Disallow: /articles/ (User-agent: Google-Extended)",
    }
    for s in sigs:
        assert s.verdicts == {Purpose.TRAIN_AI: Verdict.DISALLOW}
        assert (s.protocol, s.where) == ("robots", "robots.txt")
    # Google-Extended allows /articles/free/, so only GPTBot/CCBot remain; ClaudeBot's own group allows, and the
    # "Claude" group is not ClaudeBot's.
    free = cross_token_signals(robots, "https://n.example/articles/free/1", "ExampleBot")
    assert [s.rule for s in free] == ["line 6: Disallow: / (User-agent: GPTBot, CCBot)"]


def test_cross_token_signals_ignore_star_and_own_token() -> None:
    robots = parse_robots("User-agent: *\nDisallow: /\n")
    assert cross_token_signals(robots, "https://e/x", "ExampleBot") == []
    robots = parse_robots("User-agent: GPTBot\nDisallow: /\n")
    assert cross_token_signals(robots, "https://e/x", "gptbot") == []
    assert len(cross_token_signals(robots, "https://e/x", "ExampleBot")) == 1
    assert cross_token_signals(robots, "https://e/robots.txt", "ExampleBot") == []


def test_cross_token_judges_the_same_path_as_the_access_check() -> None:
    # A path starting with "//" is not a network-path reference once it is taken from a URL: "//a/b" must be
    # judged as "//a/b" (as our own group is), not re-parsed as host "a" and path "/b".
    robots = parse_robots("User-agent: GPTBot\nDisallow: //a/\n")
    assert [s.rule for s in cross_token_signals(robots, "https://e.test//a/b", "ExampleBot")] == [
        "line 2: Disallow: //a/ (User-agent: GPTBot)"
    ]
    assert not robots.match("GPTBot", "https://e.test//a/b").allowed
    assert cross_token_signals(robots, "https://e.test/a/b", "ExampleBot") == []


def test_cross_token_lenient_versioned_value() -> None:
    robots = parse_robots("User-agent: CCBot/2.0\nDisallow: /\n")
    assert len(cross_token_signals(robots, "https://e/x", "ExampleBot")) == 1
    assert cross_token_signals(robots, "https://e/x", "ExampleBot", lenient=False) == []


_PATTERN = st.sampled_from(["/", "/a", "/a/", "/ab", "/b", "/a%2F", "/a*b", "/a$", ""]) | st.text("ab/*$%", max_size=5)
_RULE = st.tuples(st.sampled_from(["Allow", "Disallow"]), _PATTERN)
_TRAINING_GROUP = st.tuples(st.sampled_from(["GPTBot", "CCBot", "ClaudeBot", "*", "ExampleBot"]), st.lists(_RULE))
_PATH = st.sampled_from(["/", "/a", "/a/b", "/ab", "/b", "/robots.txt", "/a?x", "//a/b"]) | st.text(
    "ab/%*$?#", max_size=7
)


@given(st.lists(_TRAINING_GROUP, max_size=4), st.lists(_PATH, max_size=10))
@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
def test_cross_token_remembered_answers_equal_a_fresh_file(groups: list, paths: list[str]) -> None:
    """Answers are remembered per path prefix: one file asked about many URLs says what a fresh parse says."""
    body = "".join(f"User-agent: {agent}\n" + "".join(f"{k}: {v}\n" for k, v in rules) for agent, rules in groups)
    warm = parse_robots(body)
    for path in paths:
        url = "https://e" + (path if path.startswith("/") else "/" + path)
        fresh = cross_token_signals(parse_robots(body), url, "ExampleBot", source="https://e/robots.txt")
        assert cross_token_signals(warm, url, "ExampleBot", source="https://e/robots.txt") == fresh
        assert all(s.source == "https://e/robots.txt" for s in fresh)


def test_training_tokens_list() -> None:
    lowered = {t.lower() for t in TRAINING_TOKENS}
    for token in ("gptbot", "claudebot", "ccbot", "google-extended", "applebot-extended", "__usage_ai-training"):
        assert token in lowered
    # Search-only / user-triggered fetchers are not training tokens.
    for token in ("oai-searchbot", "chatgpt-user", "perplexitybot", "claude-user", "googlebot"):
        assert token not in lowered


def test_policy_token_group() -> None:
    robots = parse_robots("User-agent: __usage_ai-training\nDisallow: /novels/\n\nUser-agent: *\nAllow: /\n")
    assert access_signal(robots, "ExampleBot", "https://e/novels/1") is None
    sigs = cross_token_signals(robots, "https://e/novels/1", "ExampleBot")
    assert [s.rule for s in sigs] == ["line 2: Disallow: /novels/ (User-agent: __usage_ai-training)"]


def test_parse_accepts_str_bytes_none_and_rejects_other_types() -> None:
    assert isinstance(parse_robots(None), RobotsTxt)
    assert isinstance(parse_robots(bytearray(b"User-agent: *")), RobotsTxt)
    assert isinstance(parse_robots(memoryview(b"User-agent: *")), RobotsTxt)
    with pytest.raises(TypeError):
        parse_robots(123)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------------------------
# Agreement with Protego on ordinary files (where both implement RFC 9309 the same way)

ORDINARY = [
    "User-agent: *\nDisallow: /admin/\nDisallow: /cart\nAllow: /admin/public/\n",
    "User-agent: *\nDisallow: /*?sort=\nDisallow: /*.pdf$\nAllow: /docs/*.pdf$\n",
    "User-agent: Googlebot\nDisallow: /nogoogle/\n\nUser-agent: *\nDisallow: /private/\nCrawl-delay: 3\n",
    "User-agent: GPTBot\nDisallow: /\n\nUser-agent: CCBot\nDisallow: /\n\nUser-agent: *\nAllow: /\n",
    "User-agent: *\nDisallow:\n",
    "User-agent: *\nDisallow: /\nAllow: /$\nAllow: /about\n",
    "Sitemap: https://e/s.xml\nUser-agent: examplebot\nDisallow: /search\nAllow: /search/about\n",
    "User-agent: *\nDisallow: /wp-admin/\nAllow: /wp-admin/admin-ajax.php\n",
    "User-agent: Bingbot\nUser-agent: ExampleBot\nDisallow: /tmp/\n\nUser-agent: *\nDisallow: /\n",
]
PATHS = [
    "/",
    "/admin/",
    "/admin/public/x",
    "/cart?id=1",
    "/list?sort=asc",
    "/a.pdf",
    "/docs/a.pdf",
    "/docs/a.pdf?x",
    "/private/1",
    "/nogoogle/x",
    "/about",
    "/search?q=1",
    "/search/about",
    "/wp-admin/admin-ajax.php",
    "/wp-admin/x",
    "/tmp/a",
    "/robots.txt",
]


@pytest.mark.parametrize("body", ORDINARY)
@pytest.mark.parametrize("token", ["ExampleBot", "GPTBot", "Googlebot"])
def test_agrees_with_protego_on_ordinary_files(body: str, token: str) -> None:
    ours = parse_robots(body)
    theirs = Protego.parse(body)
    for path in PATHS:
        url = "https://example.com" + path
        assert ours.match(token, url).allowed is theirs.can_fetch(url, token), (body, token, path)
    assert ours.crawl_delay(token) == theirs.crawl_delay(token)
    assert ours.sitemaps == list(theirs.sitemaps)


def test_protego_prefix_defect_is_not_ours() -> None:
    body = "User-agent: Claude\nDisallow: /\n"
    assert Protego.parse(body).can_fetch("https://e/x", "ClaudeBot") is False  # Protego: prefix match
    assert allowed(body, "ClaudeBot", "https://e/x")


# ------------------------------------------------------------------------------------------------------------------
# Fuzzing

FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
URLS = ["/", "/a", "https://example.com/a/b?c=d#e", "", "//x", "http://h", "/%zz", "/\x00\xff", "/robots.txt"]


def _exercise(robots: RobotsTxt) -> None:
    assert not any("internal parser error" in w for w in robots.warnings)
    for token in ("ExampleBot", "*", "", "a", "GPTBot"):
        for url in URLS:
            m = robots.match(token, url)
            assert isinstance(m.allowed, bool)
            assert isinstance(m.describe(), str)
        robots.crawl_delay(token)
        robots.select(token, lenient=False)
    cross_token_signals(robots, "https://e/a", "ExampleBot")
    access_signal(robots, "ExampleBot", "https://e/a")


@FUZZ
@given(st.binary(max_size=2000))
def test_fuzz_random_bytes(body: bytes) -> None:
    """One line cannot be both a group's user-agent and its rule, and a rule outside a group is ignored (RFC 9309
    §2.2), so a body without a line break disallows nothing."""
    robots = parse_robots(body)
    _exercise(robots)
    if b"\n" not in body and b"\r" not in body:
        assert all(robots.match(token, url).allowed for token in ("ExampleBot", "*") for url in URLS)


KEYWORDS = [
    "User-agent",
    "user-agent",
    "useragent",
    "Allow",
    "Disallow",
    "dissallow",
    "Sitemap",
    "Crawl-delay",
    "Request-rate",
    "Content-Usage",
    "Content-Signal",
    "License",
    "Host",
    "",
    "#",
    "\ufeff",
]
VALUES = st.text(alphabet="/*$ab?=%#:.,-_ \t\x00\u00e9\ufffd", max_size=40) | st.sampled_from(
    ["*", "ExampleBot", "5", "0.5", "1,5", "-1", "inf", "-inf", "nan", "1e309", " 7 ", "0x10", "1/5", "2/0"]
)  # user-agents that apply, Crawl-delay and Request-rate values


@st.composite
def robots_lines(draw: st.DrawFn) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 30))):
        key = draw(st.sampled_from(KEYWORDS))
        sep = draw(st.sampled_from([":", ": ", " ", "\t:\t", ""]))
        lines.append(key + sep + draw(VALUES))
    newline = draw(st.sampled_from(["\n", "\r", "\r\n"]))
    body = newline.join(lines).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        body = body.replace(b"\xc3\xa9", b"\xe9")  # invalid UTF-8
    return body


@FUZZ
@given(robots_lines())
def test_fuzz_directive_lines(body: bytes) -> None:
    """Besides not failing: Crawl-delay is a finite number of seconds or absent, every sitemap comes from a Sitemap
    line, and only a Disallow line can disallow (the same file without them allows every URL to every agent)."""
    robots = parse_robots(body)
    _exercise(robots)
    lines = re.split(rb"\r\n|\r|\n", body)
    for token in ("ExampleBot", "*", "GPTBot"):
        delay = robots.crawl_delay(token)
        assert delay is None or (math.isfinite(delay) and delay >= 0), delay
    assert len(robots.sitemaps) <= sum(b"sitemap" in line.lower() for line in lines)
    kept = b"\n".join(line for line in lines if not re.search(rb"(?i)dis+allow", line))
    permissive = parse_robots(kept)
    for token in ("ExampleBot", "*", "GPTBot", ""):
        assert all(permissive.match(token, url).allowed for url in URLS), (kept, token)


@FUZZ
@given(
    st.lists(
        st.sampled_from(["5", "0.5", "1,5", "0", "-0", "-1", "-0.001", "inf", "-inf", "nan", "1e309", " 7 ", "x"])
        | st.floats(allow_nan=True).map(repr)
        | st.text(alphabet="0123456789.,-+_eEinfaINFA xX\t", max_size=8),
        min_size=1,
        max_size=4,
    )
)
def test_fuzz_crawl_delay_values(values: list[str]) -> None:
    """Crawl-delay is the largest value that is a finite, non-negative number of seconds; anything else is ignored
    with a warning, never taken as a delay (a negative or infinite one would stall or never throttle)."""
    body = "User-agent: *\n" + "".join(f"Crawl-delay: {v}\n" for v in values)
    robots = parse_robots(body)
    usable = []
    for v in values:
        with contextlib.suppress(ValueError):
            number = float(v.strip().replace(",", "."))
            if math.isfinite(number) and number >= 0:
                usable.append(number)
    assert robots.crawl_delay("ExampleBot") == (max(usable) if usable else None), (values, robots.warnings)


@FUZZ
@given(robots_lines(), st.integers(0, 300))
def test_fuzz_truncated_at_limit(body: bytes, limit: int) -> None:
    robots = parse_robots(body, limit=limit)
    assert robots.size <= limit
    assert robots.truncated is (len(body) > limit)
    _exercise(robots)


@settings(max_examples=10, deadline=5000)
@given(st.sampled_from([b"a", b"*", b"/", b"\x00", b"\xff", b"\xe3\x83"]), st.sampled_from([b"Disallow: /", b""]))
def test_fuzz_huge_lines(unit: bytes, prefix: bytes) -> None:
    line = prefix + unit * 1_000_000
    robots = parse_robots(b"User-agent: *\n" + line + b"\nDisallow: /after\n")
    assert robots.truncated  # the 1 MB line crosses the 512 000-byte limit
    _exercise(robots)
    robots = parse_robots(b"User-agent: *\n" + line[:400_000] + b"\nDisallow: /after\n")
    assert not robots.truncated
    assert not robots.match("bot", "/after").allowed  # the long line did not swallow the next one
    _exercise(robots)


@settings(max_examples=20, deadline=3000)
@given(st.integers(5, 40), st.integers(1000, 50_000))
def test_pathological_wildcards_stay_linear(stars: int, length: int) -> None:
    pattern = "/" + "*a" * stars + "*b"
    rules = "".join(f"Disallow: {pattern}{i}\n" for i in range(50))
    robots = parse_robots(f"User-agent: *\n{rules}Disallow: /*a*a*a*a*a*a*a*a*a*a*a*a*b$\n")
    m = robots.match("bot", "/" + "a" * length)
    assert m.allowed
    assert not robots.match("bot", "/" + "a" * length + "b").allowed


# -- reference implementation: brute-force DP over (pattern position, path position), no regex ------------------


def ref_matches(pattern: str, path: str) -> bool:
    anchored = pattern.endswith("$")
    if anchored:
        pattern = pattern[:-1]
    n, m = len(pattern), len(path)
    prev = [True] + [False] * m  # row for pattern[:0]: only the empty path prefix matches
    for i in range(1, n + 1):
        c = pattern[i - 1]
        cur = [False] * (m + 1)
        for j in range(m + 1):
            if c == "*":
                cur[j] = prev[j] or (j > 0 and cur[j - 1])
            else:
                cur[j] = j > 0 and prev[j - 1] and path[j - 1] == c
        prev = cur
    return prev[m] if anchored else any(prev)


def ref_length(pattern: str) -> int:
    # Octets of the canonical pattern: a `$` that is not the final anchor is the literal %24.
    return sum(3 if (c == "$" and i < len(pattern) - 1) else 1 for i, c in enumerate(pattern))


def ref_allowed(rules: list[tuple[bool, str]], path: str) -> bool:
    hits = [(ref_length(p), allow) for allow, p in rules if p and ref_matches(p, path)]
    if not hits:
        return True
    best = max(length for length, _ in hits)
    return any(allow for length, allow in hits if length == best)


PATTERN = st.builds(lambda head, tail: head + tail, st.sampled_from(["/", "*", "", "a"]), st.text("ab/*$?", max_size=7))
PATH = st.builds(lambda tail: "/" + tail, st.text("ab/$*?", max_size=9))


@settings(max_examples=400, deadline=1000)
@given(st.lists(st.tuples(st.booleans(), PATTERN), max_size=8), PATH)
def test_match_equals_reference(rules: list[tuple[bool, str]], path: str) -> None:
    body = "User-agent: *\n" + "".join(f"{'Allow' if a else 'Disallow'}: {p}\n" for a, p in rules)
    assert parse_robots(body).match("bot", "http://h" + path).allowed is ref_allowed(rules, path)


@settings(max_examples=300, deadline=1000)
@given(st.lists(st.tuples(st.booleans(), PATTERN), max_size=8), st.lists(PATH, min_size=1, max_size=12), st.booleans())
def test_one_file_matched_many_times_equals_reference(
    rules: list[tuple[bool, str]], paths: list[str], few_buckets: bool
) -> None:
    """One parsed file asked about many paths, as in a crawl: the rules each path start was narrowed to (kept per
    group, robots_match.SelectedGroup.candidates) give the reference answer for every later path too, including
    once the group has no room left for more path starts."""
    body = "User-agent: *\n" + "".join(f"{'Allow' if a else 'Disallow'}: {p}\n" for a, p in rules)
    robots = parse_robots(body)
    with pytest.MonkeyPatch.context() as mp:
        if few_buckets:
            mp.setattr(robots_match, "MAX_BUCKETS", 2)
        for path in paths + paths[::-1]:
            assert robots.match("bot", "http://h" + path).allowed is ref_allowed(rules, path), path


@settings(max_examples=200, deadline=1000)
@given(PATTERN, PATH)
def test_single_pattern_equals_reference(pattern: str, path: str) -> None:
    robots = parse_robots(f"User-agent: *\nDisallow: {pattern}\n")
    assert robots.match("bot", "http://h" + path).allowed is not (bool(pattern) and ref_matches(pattern, path))


def test_reference_matcher_sanity() -> None:
    assert ref_matches("/a*b$", "/axxb") and not ref_matches("/a*b$", "/axxbc")
    assert ref_matches("*", "/") and ref_matches("/a$b", "/a$bc")
    rng = random.Random(7)
    for _ in range(200):
        p = "/" + "".join(rng.choice("ab*") for _ in range(rng.randint(0, 6)))
        s = "/" + "".join(rng.choice("ab") for _ in range(rng.randint(0, 8)))
        assert ref_matches(p, s) is (not allowed(f"User-agent: *\nDisallow: {p}\n", "x", s))


# -- rules that hand-made mutants showed no test pinned --------------------------------------------------------------


def test_request_rate_within_one_group_keeps_the_strictest_and_refuses_zero() -> None:
    robots = parse_robots("User-agent: *\nRequest-rate: 1/5\nRequest-rate: 10/1\nRequest-rate: 1/1m\nDisallow: /x\n")
    assert robots.request_rate("bot") == (1, 60.0)  # 1 per minute beats 1 per 5 s and 10 per second
    for bad in ("0/5", "1/0", "1/0.0", "-1/5", "x/5"):
        robots = parse_robots(f"User-agent: *\nRequest-rate: {bad}\nDisallow: /x\n")
        assert robots.request_rate("bot") is None, bad
        assert any("Request-rate" in w for w in robots.warnings), (bad, robots.warnings)
        assert not robots.match("bot", "/x").allowed and robots.match("bot", "/y").allowed  # the file still reads


def test_robots_txt_with_a_query_is_always_allowed() -> None:
    robots = parse_robots("User-agent: *\nDisallow: /\n")
    assert robots.match("bot", "https://e/robots.txt?x=1").allowed
    assert robots.match("bot", "https://e/robots.txt").allowed
    assert not robots.match("bot", "https://e/robots.txt.bak").allowed
    assert not robots.match("bot", "https://e/robots.txt/x").allowed


def test_looks_binary_counts_del_and_needs_more_than_one_control_byte_in_ten() -> None:
    from middlewares.protocols.robots import looks_binary

    text = b"User-agent: *\nDisallow: /private/\n"  # 34 bytes
    assert not looks_binary(text)
    assert not looks_binary(text[:30] + b"\x01" * 3)  # 3 in 33: under one in ten
    assert looks_binary(text[:30] + b"\x01" * 4)  # 4 in 34: over
    assert looks_binary(text[:30] + b"\x7f" * 4)  # DEL is a control byte too
    assert not looks_binary(b"\x01" + b"a" * 9)  # exactly one in ten: still text
    assert looks_binary(b"a\x00")  # any NUL


def test_strict_reading_still_knows_the_star_group() -> None:
    robots = parse_robots("User-agent: *\nDisallow: /x\n\nUser-agent: Example Bot/1.0\nDisallow: /y\n")
    for lenient in (True, False):
        assert not robots.match("OtherBot", "/x", lenient=lenient).allowed
        assert robots.select("OtherBot", lenient=lenient).agent == "*"
    # "Example Bot/1.0" is not a product token: only the lenient reading takes its first word, "Example"
    assert not robots.match("Example", "/y", lenient=True).allowed
    assert robots.match("Example", "/y", lenient=False).allowed


def test_group_names_and_can_fetch_follow_the_reading() -> None:
    robots = parse_robots("User-agent: Example Bot/1.0\nUser-agent: GPTBot\nDisallow: /y\nRequest-rate: 2/1\n")
    (group,) = robots.groups
    assert group.names("gptbot") and group.names(" GPTBot ", lenient=False)
    assert group.names("Example") and not group.names("Example", lenient=False)
    assert not group.names("OtherBot")
    assert robots.can_fetch("OtherBot", "/y") and not robots.can_fetch("GPTBot", "https://e/y")
    assert not robots.can_fetch("Example", "/y") and robots.can_fetch("Example", "/y", lenient=False)
    assert robots.request_rate("GPTBot") == (2, 1.0)
    assert robots.request_rate("Example", lenient=False) is None
