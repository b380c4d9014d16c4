"""Google's published robots.txt conformance cases, ported one by one.

Source: google/robotstxt ``robots_test.cc`` (every TEST, every EXPECT, in file order) and the line-level cases of
``reporting_robots_test.cc``. Each test names the Google TEST it ports. Google's harness is
``OneAgentAllowedByRobots(robotstxt, useragent, url)``; here that is ``parse_robots(body).match(agent, url)``.

Three EXPECTs of ``ID_Encoding`` contradict RFC 9309 §2.2.2 (Figure 4), which this toolkit follows: Google leaves
URL encoding to the caller, the RFC normalises both sides. They are asserted with the RFC answer in
``test_id_encoding_rfc9309_normalisation`` and listed there with Google's expectation.
"""

from __future__ import annotations

import pytest

from middlewares.protocols.pathmatch import normalise_path
from middlewares.protocols.robots import MAX_LINE_BYTES, RobotsTxt, is_valid_token, parse_robots, request_path

ALLOWED, DISALLOWED = True, False


def is_user_agent_allowed(robotstxt: str | bytes, useragent: str, url: str) -> bool:
    return parse_robots(robotstxt).match(useragent, url).allowed


def directives(robots: RobotsTxt) -> list[int]:
    """Line numbers of every recognised directive (Google's ``valid_directives``), sorted."""
    lines = [n for g in robots.groups for n in g.agent_lines]
    lines += [r.line for g in robots.groups for r in g.rules]
    lines += [s.line for s in robots.sitemap_records]
    return sorted(lines)


def check(cases: list[tuple[str, str, str, bool]]) -> None:
    failures = [
        (body, agent, url, expected)
        for body, agent, url, expected in cases
        if is_user_agent_allowed(body, agent, url) is not expected
    ]
    assert not failures


# --- GoogleOnly_SystemTest ----------------------------------------------------------------------------------------


def test_googleonly_system_test() -> None:
    robotstxt = "user-agent: FooBot\ndisallow: /\n"
    # Empty robots.txt: everything allowed.
    assert is_user_agent_allowed("", "FooBot", "") is ALLOWED
    # Empty user-agent to be matched: everything allowed.
    assert is_user_agent_allowed(robotstxt, "", "") is ALLOWED
    # Empty url: implicitly disallowed (the path of "" is "/").
    assert is_user_agent_allowed(robotstxt, "FooBot", "") is DISALLOWED
    # All params empty: same as robots.txt empty, everything allowed.
    assert is_user_agent_allowed("", "", "") is ALLOWED


# --- ID_LineSyntax_Line -----------------------------------------------------------------------------------------


def test_id_linesyntax_line() -> None:
    correct = "user-agent: FooBot\ndisallow: /\n"
    incorrect = "foo: FooBot\nbar: /\n"
    incorrect_accepted = "user-agent FooBot\ndisallow /\n"  # Google-specific: missing colon
    url = "http://foo.bar/x/y"
    assert is_user_agent_allowed(correct, "FooBot", url) is DISALLOWED
    assert is_user_agent_allowed(incorrect, "FooBot", url) is ALLOWED
    assert is_user_agent_allowed(incorrect_accepted, "FooBot", url) is DISALLOWED


def test_missing_colon_is_reported() -> None:
    robots = parse_robots("user-agent FooBot\ndisallow /\n")
    assert robots.groups[0].agents == ("FooBot",)
    assert robots.groups[0].rules[0].pattern == "/"
    assert any(w.startswith("line 1: missing ':'") for w in robots.warnings)
    assert any(w.startswith("line 2: missing ':'") for w in robots.warnings)


# --- ID_LineSyntax_Groups -----------------------------------------------------------------------------------------

GROUPS = (
    "allow: /foo/bar/\n"
    "\n"
    "user-agent: FooBot\n"
    "disallow: /\n"
    "allow: /x/\n"
    "user-agent: BarBot\n"
    "disallow: /\n"
    "allow: /y/\n"
    "\n"
    "\n"
    "allow: /w/\n"
    "user-agent: BazBot\n"
    "\n"
    "user-agent: FooBot\n"
    "allow: /z/\n"
    "disallow: /\n"
)


@pytest.mark.parametrize(
    ("agent", "url", "expected"),
    [
        ("FooBot", "http://foo.bar/x/b", ALLOWED),
        ("FooBot", "http://foo.bar/z/d", ALLOWED),
        ("FooBot", "http://foo.bar/y/c", DISALLOWED),
        ("BarBot", "http://foo.bar/y/c", ALLOWED),
        ("BarBot", "http://foo.bar/w/a", ALLOWED),
        ("BarBot", "http://foo.bar/z/d", DISALLOWED),
        ("BazBot", "http://foo.bar/z/d", ALLOWED),
        # Lines with rules outside groups are ignored.
        ("FooBot", "http://foo.bar/foo/bar/", DISALLOWED),
        ("BarBot", "http://foo.bar/foo/bar/", DISALLOWED),
        ("BazBot", "http://foo.bar/foo/bar/", DISALLOWED),
    ],
)
def test_id_linesyntax_groups(agent: str, url: str, expected: bool) -> None:
    assert is_user_agent_allowed(GROUPS, agent, url) is expected


# --- ID_LineSyntax_Groups_OtherRules ------------------------------------------------------------------------------


def test_id_linesyntax_groups_other_rules() -> None:
    sitemap = "User-agent: BarBot\nSitemap: https://foo.bar/sitemap\nUser-agent: *\nDisallow: /\n"
    assert is_user_agent_allowed(sitemap, "FooBot", "http://foo.bar/") is DISALLOWED
    assert is_user_agent_allowed(sitemap, "BarBot", "http://foo.bar/") is DISALLOWED
    unknown = "User-agent: FooBot\nInvalid-Unknown-Line: unknown\nUser-agent: *\nDisallow: /\n"
    assert is_user_agent_allowed(unknown, "FooBot", "http://foo.bar/") is DISALLOWED
    assert is_user_agent_allowed(unknown, "BarBot", "http://foo.bar/") is DISALLOWED


# --- ID_REPLineNamesCaseInsensitive -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "USER-AGENT: FooBot\nALLOW: /x/\nDISALLOW: /\n",
        "user-agent: FooBot\nallow: /x/\ndisallow: /\n",
        "uSeR-aGeNt: FooBot\nAlLoW: /x/\ndIsAlLoW: /\n",
    ],
)
def test_id_rep_line_names_case_insensitive(body: str) -> None:
    assert is_user_agent_allowed(body, "FooBot", "http://foo.bar/x/y") is ALLOWED
    assert is_user_agent_allowed(body, "FooBot", "http://foo.bar/a/b") is DISALLOWED


# --- ID_VerifyValidUserAgentsToObey -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "valid"),
    [
        ("Foobot", True),
        ("Foobot-Bar", True),
        ("Foo_Bar", True),
        ("", False),
        ("ツ", False),
        ("Foobot*", False),
        (" Foobot ", False),
        ("Foobot/2.1", False),
        ("Foobot Bar", False),
    ],
)
def test_id_verify_valid_user_agents_to_obey(agent: str, valid: bool) -> None:
    assert is_valid_token(agent) is valid


# --- ID_UserAgentValueCaseInsensitive -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "User-Agent: FOO BAR\nAllow: /x/\nDisallow: /\n",
        "User-Agent: foo bar\nAllow: /x/\nDisallow: /\n",
        "User-Agent: FoO bAr\nAllow: /x/\nDisallow: /\n",
    ],
)
@pytest.mark.parametrize("agent", ["Foo", "foo"])
def test_id_user_agent_value_case_insensitive(body: str, agent: str) -> None:
    assert is_user_agent_allowed(body, agent, "http://foo.bar/x/y") is ALLOWED
    assert is_user_agent_allowed(body, agent, "http://foo.bar/a/b") is DISALLOWED


# --- GoogleOnly_AcceptUserAgentUpToFirstSpace ---------------------------------------------------------------------


def test_googleonly_accept_user_agent_up_to_first_space() -> None:
    assert not is_valid_token("Foobot Bar")
    robotstxt = "User-Agent: *\nDisallow: /\nUser-Agent: Foo Bar\nAllow: /x/\nDisallow: /\n"
    url = "http://foo.bar/x/y"
    assert is_user_agent_allowed(robotstxt, "Foo", url) is ALLOWED
    assert is_user_agent_allowed(robotstxt, "Foo Bar", url) is DISALLOWED


# --- ID_GlobalGroups_Secondary ------------------------------------------------------------------------------------


def test_id_global_groups_secondary() -> None:
    empty = ""
    global_ = "user-agent: *\nallow: /\nuser-agent: FooBot\ndisallow: /\n"
    only_specific = "user-agent: FooBot\nallow: /\nuser-agent: BarBot\ndisallow: /\nuser-agent: BazBot\ndisallow: /\n"
    url = "http://foo.bar/x/y"
    assert is_user_agent_allowed(empty, "FooBot", url) is ALLOWED
    assert is_user_agent_allowed(global_, "FooBot", url) is DISALLOWED
    assert is_user_agent_allowed(global_, "BarBot", url) is ALLOWED
    assert is_user_agent_allowed(only_specific, "QuxBot", url) is ALLOWED


# --- ID_AllowDisallow_Value_CaseSensitive -------------------------------------------------------------------------


def test_id_allow_disallow_value_case_sensitive() -> None:
    url = "http://foo.bar/x/y"
    assert is_user_agent_allowed("user-agent: FooBot\ndisallow: /x/\n", "FooBot", url) is DISALLOWED
    assert is_user_agent_allowed("user-agent: FooBot\ndisallow: /X/\n", "FooBot", url) is ALLOWED


# --- ID_LongestMatch ----------------------------------------------------------------------------------------------

PAGE = "http://foo.bar/x/page.html"


def test_id_longest_match() -> None:
    check(
        [
            ("user-agent: FooBot\ndisallow: /x/page.html\nallow: /x/\n", "FooBot", PAGE, DISALLOWED),
            ("user-agent: FooBot\nallow: /x/page.html\ndisallow: /x/\n", "FooBot", PAGE, ALLOWED),
            ("user-agent: FooBot\nallow: /x/page.html\ndisallow: /x/\n", "FooBot", "http://foo.bar/x/", DISALLOWED),
            # Equivalent disallow and allow patterns: allow is used.
            ("user-agent: FooBot\ndisallow: \nallow: \n", "FooBot", PAGE, ALLOWED),
            ("user-agent: FooBot\ndisallow: /\nallow: /\n", "FooBot", PAGE, ALLOWED),
            ("user-agent: FooBot\ndisallow: /x\nallow: /x/\n", "FooBot", "http://foo.bar/x", DISALLOWED),
            ("user-agent: FooBot\ndisallow: /x\nallow: /x/\n", "FooBot", "http://foo.bar/x/", ALLOWED),
            ("user-agent: FooBot\ndisallow: /x/page.html\nallow: /x/page.html\n", "FooBot", PAGE, ALLOWED),
            # Longest match wins.
            ("user-agent: FooBot\nallow: /page\ndisallow: /*.html\n", "FooBot", "http://foo.bar/page.html", DISALLOWED),
            ("user-agent: FooBot\nallow: /page\ndisallow: /*.html\n", "FooBot", "http://foo.bar/page", ALLOWED),
            ("user-agent: FooBot\nallow: /x/page.\ndisallow: /*.html\n", "FooBot", PAGE, ALLOWED),
            (
                "user-agent: FooBot\nallow: /x/page.\ndisallow: /*.html\n",
                "FooBot",
                "http://foo.bar/x/y.html",
                DISALLOWED,
            ),
            # Most specific group for FooBot allows implicitly /x/page.
            (
                "User-agent: *\nDisallow: /x/\nUser-agent: FooBot\nDisallow: /y/\n",
                "FooBot",
                "http://foo.bar/x/page",
                ALLOWED,
            ),
            (
                "User-agent: *\nDisallow: /x/\nUser-agent: FooBot\nDisallow: /y/\n",
                "FooBot",
                "http://foo.bar/y/page",
                DISALLOWED,
            ),
        ]
    )


# --- ID_Encoding ----------------------------------------------------------------------------------------------------


def test_id_encoding() -> None:
    # /foo/bar?baz=http://foo.bar stays unencoded.
    body = "User-agent: FooBot\nDisallow: /\nAllow: /foo/bar?qux=taz&baz=http://foo.bar?tar&par\n"
    assert is_user_agent_allowed(body, "FooBot", "http://foo.bar/foo/bar?qux=taz&baz=http://foo.bar?tar&par")
    # 3 byte character: /foo/bar/ツ -> /foo/bar/%E3%83%84
    body = "User-agent: FooBot\nDisallow: /\nAllow: /foo/bar/ツ\n"
    assert is_user_agent_allowed(body, "FooBot", "http://foo.bar/foo/bar/%E3%83%84") is ALLOWED
    # Percent encoded 3 byte character: /foo/bar/%E3%83%84 -> /foo/bar/%E3%83%84
    body = "User-agent: FooBot\nDisallow: /\nAllow: /foo/bar/%E3%83%84\n"
    assert is_user_agent_allowed(body, "FooBot", "http://foo.bar/foo/bar/%E3%83%84") is ALLOWED
    # Percent encoded unreserved US-ASCII: /foo/bar/%62%61%7A
    body = "User-agent: FooBot\nDisallow: /\nAllow: /foo/bar/%62%61%7A\n"
    assert is_user_agent_allowed(body, "FooBot", "http://foo.bar/foo/bar/%62%61%7A") is ALLOWED


@pytest.mark.parametrize(
    ("rule", "url", "google", "rfc9309"),
    [
        # Google expects the caller to percent-encode the URL; RFC 9309 §2.2.2 encodes non-ASCII octets itself.
        ("/foo/bar/ツ", "http://foo.bar/foo/bar/ツ", DISALLOWED, ALLOWED),
        ("/foo/bar/%E3%83%84", "http://foo.bar/foo/bar/ツ", DISALLOWED, ALLOWED),
        # RFC 9309 Figure 4: an encoded unreserved character is decoded before comparison (%62%61%7A == baz).
        ("/foo/bar/%62%61%7A", "http://foo.bar/foo/bar/baz", DISALLOWED, ALLOWED),
    ],
)
def test_id_encoding_rfc9309_normalisation(rule: str, url: str, google: bool, rfc9309: bool) -> None:
    """The three ID_Encoding EXPECTs where Google and RFC 9309 disagree: we assert the RFC answer."""
    assert google is not rfc9309
    body = f"User-agent: FooBot\nDisallow: /\nAllow: {rule}\n"
    assert is_user_agent_allowed(body, "FooBot", url) is rfc9309


# --- ID_SpecialCharacters -------------------------------------------------------------------------------------------


def test_id_special_characters() -> None:
    a = "User-agent: FooBot\nDisallow: /foo/bar/quz\nAllow: /foo/*/qux\n"
    b = "User-agent: FooBot\nDisallow: /foo/bar$\nAllow: /foo/bar/qux\n"
    c = "User-agent: FooBot\n# Disallow: /\nDisallow: /foo/quz#qux\nAllow: /\n"
    check(
        [
            (a, "FooBot", "http://foo.bar/foo/bar/quz", DISALLOWED),
            (a, "FooBot", "http://foo.bar/foo/quz", ALLOWED),
            (a, "FooBot", "http://foo.bar/foo//quz", ALLOWED),
            (a, "FooBot", "http://foo.bar/foo/bax/quz", ALLOWED),
            (b, "FooBot", "http://foo.bar/foo/bar", DISALLOWED),
            (b, "FooBot", "http://foo.bar/foo/bar/qux", ALLOWED),
            (b, "FooBot", "http://foo.bar/foo/bar/", ALLOWED),
            (b, "FooBot", "http://foo.bar/foo/bar/baz", ALLOWED),
            (c, "FooBot", "http://foo.bar/foo/bar", ALLOWED),
            (c, "FooBot", "http://foo.bar/foo/quz", DISALLOWED),
        ]
    )


# --- GoogleOnly_IndexHTMLisDirectory --------------------------------------------------------------------------------


def test_googleonly_index_html_is_directory() -> None:
    body = "User-Agent: *\nAllow: /allowed-slash/index.html\nDisallow: /\n"
    # If index.html is allowed, we interpret this as / being allowed too.
    assert is_user_agent_allowed(body, "foobot", "http://foo.com/allowed-slash/") is ALLOWED
    # Does not exactly match.
    assert is_user_agent_allowed(body, "foobot", "http://foo.com/allowed-slash/index.htm") is DISALLOWED
    # Exact match.
    assert is_user_agent_allowed(body, "foobot", "http://foo.com/allowed-slash/index.html") is ALLOWED
    assert is_user_agent_allowed(body, "foobot", "http://foo.com/anyother-url") is DISALLOWED
    # The implied rule is reported as the line that was written.
    m = parse_robots(body).match("foobot", "http://foo.com/allowed-slash/")
    assert m.describe() == "line 2: Allow: /allowed-slash/index.html (User-agent: *)"


# --- GoogleOnly_LineTooLong -----------------------------------------------------------------------------------------

K_MAX_LINE_LEN = 2083 * 8
K_EOL_LEN = len("\n")


def test_googleonly_line_too_long_disallow() -> None:
    # Disallow rule pattern matches the URL after being cut off at kMaxLineLen.
    disallow = "disallow: "
    robotstxt = "user-agent: FooBot\n"
    longline = "/x/"
    max_length = K_MAX_LINE_LEN - len(longline) - len(disallow) + K_EOL_LEN
    longline += "a" * (max_length - len(longline))
    robotstxt += disallow + longline + "/qux\n"
    # Matches nothing, so URL is allowed.
    assert is_user_agent_allowed(robotstxt, "FooBot", "http://foo.bar/fux") is ALLOWED
    # Matches cut off disallow rule.
    assert is_user_agent_allowed(robotstxt, "FooBot", "http://foo.bar" + longline + "/fux") is DISALLOWED


def test_googleonly_line_too_long_allow() -> None:
    allow = "allow: "
    robotstxt = "user-agent: FooBot\ndisallow: /\n"
    longline_a = "/x/"
    longline_b = "/x/"
    max_length = K_MAX_LINE_LEN - len(longline_a) - len(allow) + K_EOL_LEN
    longline_a += "a" * (max_length - len(longline_a))
    longline_b += "b" * (max_length - len(longline_b))
    robotstxt += allow + longline_a + "/qux\n"
    robotstxt += allow + longline_b + "/qux\n"
    # URL matches the disallow rule.
    assert is_user_agent_allowed(robotstxt, "FooBot", "http://foo.bar/") is DISALLOWED
    # Matches the allow rule exactly.
    assert is_user_agent_allowed(robotstxt, "FooBot", "http://foo.bar" + longline_a + "/qux") is ALLOWED
    # Matches cut off allow rule.
    assert is_user_agent_allowed(robotstxt, "FooBot", "http://foo.bar" + longline_b + "/fux") is ALLOWED


# --- GoogleOnly_DocumentationChecks ---------------------------------------------------------------------------------

FISH = "user-agent: FooBot\ndisallow: /\nallow: /fish\n"
FISH_STAR = "user-agent: FooBot\ndisallow: /\nallow: /fish*\n"
FISH_SLASH = "user-agent: FooBot\ndisallow: /\nallow: /fish/\n"
PHP = "user-agent: FooBot\ndisallow: /\nallow: /*.php\n"
PHP_END = "user-agent: FooBot\ndisallow: /\nallow: /*.php$\n"
FISH_PHP = "user-agent: FooBot\ndisallow: /\nallow: /fish*.php\n"


@pytest.mark.parametrize(
    ("body", "url", "expected"),
    [
        (FISH, "http://foo.bar/bar", DISALLOWED),
        (FISH, "http://foo.bar/fish", ALLOWED),
        (FISH, "http://foo.bar/fish.html", ALLOWED),
        (FISH, "http://foo.bar/fish/salmon.html", ALLOWED),
        (FISH, "http://foo.bar/fishheads", ALLOWED),
        (FISH, "http://foo.bar/fishheads/yummy.html", ALLOWED),
        (FISH, "http://foo.bar/fish.html?id=anything", ALLOWED),
        (FISH, "http://foo.bar/Fish.asp", DISALLOWED),
        (FISH, "http://foo.bar/catfish", DISALLOWED),
        (FISH, "http://foo.bar/?id=fish", DISALLOWED),
        # "/fish*" equals "/fish"
        (FISH_STAR, "http://foo.bar/bar", DISALLOWED),
        (FISH_STAR, "http://foo.bar/fish", ALLOWED),
        (FISH_STAR, "http://foo.bar/fish.html", ALLOWED),
        (FISH_STAR, "http://foo.bar/fish/salmon.html", ALLOWED),
        (FISH_STAR, "http://foo.bar/fishheads", ALLOWED),
        (FISH_STAR, "http://foo.bar/fishheads/yummy.html", ALLOWED),
        (FISH_STAR, "http://foo.bar/fish.html?id=anything", ALLOWED),
        (FISH_STAR, "http://foo.bar/Fish.bar", DISALLOWED),
        (FISH_STAR, "http://foo.bar/catfish", DISALLOWED),
        (FISH_STAR, "http://foo.bar/?id=fish", DISALLOWED),
        # "/fish/" does not equal "/fish"
        (FISH_SLASH, "http://foo.bar/bar", DISALLOWED),
        (FISH_SLASH, "http://foo.bar/fish/", ALLOWED),
        (FISH_SLASH, "http://foo.bar/fish/salmon", ALLOWED),
        (FISH_SLASH, "http://foo.bar/fish/?salmon", ALLOWED),
        (FISH_SLASH, "http://foo.bar/fish/salmon.html", ALLOWED),
        (FISH_SLASH, "http://foo.bar/fish/?id=anything", ALLOWED),
        (FISH_SLASH, "http://foo.bar/fish", DISALLOWED),
        (FISH_SLASH, "http://foo.bar/fish.html", DISALLOWED),
        (FISH_SLASH, "http://foo.bar/Fish/Salmon.html", DISALLOWED),
        # "/*.php"
        (PHP, "http://foo.bar/bar", DISALLOWED),
        (PHP, "http://foo.bar/filename.php", ALLOWED),
        (PHP, "http://foo.bar/folder/filename.php", ALLOWED),
        (PHP, "http://foo.bar/folder/filename.php?parameters", ALLOWED),
        (PHP, "http://foo.bar//folder/any.php.file.html", ALLOWED),
        (PHP, "http://foo.bar/filename.php/", ALLOWED),
        (PHP, "http://foo.bar/index?f=filename.php/", ALLOWED),
        (PHP, "http://foo.bar/php/", DISALLOWED),
        (PHP, "http://foo.bar/index?php", DISALLOWED),
        (PHP, "http://foo.bar/windows.PHP", DISALLOWED),
        # "/*.php$"
        (PHP_END, "http://foo.bar/bar", DISALLOWED),
        (PHP_END, "http://foo.bar/filename.php", ALLOWED),
        (PHP_END, "http://foo.bar/folder/filename.php", ALLOWED),
        (PHP_END, "http://foo.bar/filename.php?parameters", DISALLOWED),
        (PHP_END, "http://foo.bar/filename.php/", DISALLOWED),
        (PHP_END, "http://foo.bar/filename.php5", DISALLOWED),
        (PHP_END, "http://foo.bar/php/", DISALLOWED),
        (PHP_END, "http://foo.bar/filename?php", DISALLOWED),
        (PHP_END, "http://foo.bar/aaaphpaaa", DISALLOWED),
        (PHP_END, "http://foo.bar//windows.PHP", DISALLOWED),
        # "/fish*.php"
        (FISH_PHP, "http://foo.bar/bar", DISALLOWED),
        (FISH_PHP, "http://foo.bar/fish.php", ALLOWED),
        (FISH_PHP, "http://foo.bar/fishheads/catfish.php?parameters", ALLOWED),
        (FISH_PHP, "http://foo.bar/Fish.PHP", DISALLOWED),
        # Section "Order of precedence for group-member records".
        ("user-agent: FooBot\nallow: /p\ndisallow: /\n", "http://example.com/page", ALLOWED),
        ("user-agent: FooBot\nallow: /folder\ndisallow: /folder\n", "http://example.com/folder/page", ALLOWED),
        ("user-agent: FooBot\nallow: /page\ndisallow: /*.htm\n", "http://example.com/page.htm", DISALLOWED),
        ("user-agent: FooBot\nallow: /$\ndisallow: /\n", "http://example.com/", ALLOWED),
        ("user-agent: FooBot\nallow: /$\ndisallow: /\n", "http://example.com/page.html", DISALLOWED),
    ],
)
def test_googleonly_documentation_checks(body: str, url: str, expected: bool) -> None:
    assert is_user_agent_allowed(body, "FooBot", url) is expected


# --- ID_LinesNumbersAreCountedCorrectly -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "User-Agent: foo\nAllow: /some/path\nUser-Agent: bar\n\n\nDisallow: /\n",  # Unix
        "User-Agent: foo\r\nAllow: /some/path\r\nUser-Agent: bar\r\n\r\n\r\nDisallow: /\r\n",  # DOS
        "User-Agent: foo\rAllow: /some/path\rUser-Agent: bar\r\r\rDisallow: /\r",  # Mac
        "User-Agent: foo\nAllow: /some/path\nUser-Agent: bar\n\n\nDisallow: /",  # no final newline
        "User-Agent: foo\nAllow: /some/path\r\nUser-Agent: bar\n\r\n\nDisallow: /",  # mixed
    ],
)
def test_id_lines_numbers_are_counted_correctly(body: str) -> None:
    robots = parse_robots(body)
    assert len(directives(robots)) == 4
    assert directives(robots)[-1] == 6
    foo, bar = robots.groups
    assert (foo.agents, foo.line, [r.line for r in foo.rules]) == (("foo",), 1, [2])
    assert (bar.agents, bar.line, [r.line for r in bar.rules]) == (("bar",), 3, [6])
    assert robots.match("bar", "/x").describe() == "line 6: Disallow: / (User-agent: bar)"


# --- ID_UTF8ByteOrderMarkIsSkipped ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bom", [b"\xef\xbb\xbf", b"\xef\xbb", b"\xef"])
def test_id_utf8_byte_order_mark_is_skipped(bom: bytes) -> None:
    robots = parse_robots(bom + b"User-Agent: foo\nAllow: /AnyValue\n")
    assert len(directives(robots)) == 2
    assert robots.other == []
    assert robots.groups[0].agents == ("foo",)
    # Google-correctness (robotstxt-spec-test) variant with a Disallow: every BOM prefix still yields the rule.
    assert parse_robots(bom + b"User-Agent: foo\nDisallow: /AnyValue\n").match("foo", "/AnyValue").allowed is False


def test_id_utf8_broken_bom_makes_first_line_garbage() -> None:
    # If the BOM is not the right sequence, the first line looks like garbage that is skipped.
    robots = parse_robots(b"\xef\x11\xbfUser-Agent: foo\nAllow: /AnyValue\n")
    assert robots.groups == []
    assert len(robots.other) == 1 and robots.other[0].line == 1  # the one broken line, kept as unknown
    assert any("line 2" in w and "before any User-agent" in w for w in robots.warnings)


def test_id_utf8_bom_in_middle_of_file_is_not_skipped() -> None:
    robots = parse_robots(b"User-Agent: foo\n\xef\xbb\xbfAllow: /AnyValue\n")
    assert len(directives(robots)) == 1
    assert robots.groups[0].rules == []
    assert [e.line for e in robots.groups[0].extensions] == [2]  # one unknown directive


# --- ID_NonStandardLineExample_Sitemap -------------------------------------------------------------------------------

SITEMAP_LOC = "http://foo.bar/sitemap.xml"
SITEMAP_REST = "User-Agent: foo\nAllow: /some/path\nUser-Agent: bar\n\n\n"


def test_id_non_standard_line_example_sitemap_at_end() -> None:
    robots = parse_robots(SITEMAP_REST + "Sitemap: " + SITEMAP_LOC + "\n")
    assert robots.sitemaps == [SITEMAP_LOC]
    assert robots.sitemap_records[0].line == 6


def test_id_non_standard_line_example_sitemap_anywhere() -> None:
    # A sitemap line may appear anywhere in the file.
    robots = parse_robots("Sitemap: " + SITEMAP_LOC + "\n" + SITEMAP_REST)
    assert robots.sitemaps == [SITEMAP_LOC]
    assert robots.sitemap_records[0].line == 1


# --- TestGetPathParamsQuery ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("", "/"),
        ("http://www.example.com", "/"),
        ("http://www.example.com/", "/"),
        ("http://www.example.com/a", "/a"),
        ("http://www.example.com/a/", "/a/"),
        ("http://www.example.com/a/b?c=http://d.e/", "/a/b?c=http://d.e/"),
        ("http://www.example.com/a/b?c=d&e=f#fragment", "/a/b?c=d&e=f"),
        ("example.com", "/"),
        ("example.com/", "/"),
        ("example.com/a", "/a"),
        ("example.com/a/", "/a/"),
        ("example.com/a/b?c=d&e=f#fragment", "/a/b?c=d&e=f"),
        ("a", "/"),
        ("a/", "/"),
        ("/a", "/a"),
        ("a/b", "/b"),
        ("example.com?a", "/?a"),
        ("example.com/a;b#c", "/a;b"),
        ("//a/b/c", "/b/c"),
    ],
)
def test_get_path_params_query(url: str, path: str) -> None:
    assert request_path(url) == path


# --- TestMaybeEscapePattern ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "escaped"),
    [("http://www.example.com", "http://www.example.com"), ("/a/b/c", "/a/b/c"), ("á", "%C3%A1"), ("%aa", "%AA")],
)
def test_maybe_escape_pattern(pattern: str, escaped: str) -> None:
    # Rule patterns are compiled through pathmatch's normalisation; this is Google's escaping table.
    assert normalise_path(pattern) == escaped
    # ... and the parser uses it: a rule written with the raw form matches the escaped URL path.
    body = f"User-agent: a\nDisallow: /p/{pattern}\n"
    assert parse_robots(body).match("a", "/p/" + escaped).allowed is False


# --- reporting_robots_test.cc: LinesNumbersAreCountedCorrectly -------------------------------------------------------

REPORTING_FILE = (
    "User-Agent: foo\n"  # 1
    "Allow: /some/path\n"  # 2
    "User-Agent bar # no\n"  # 3
    "absolutely random line\n"  # 4
    "#so comment, much wow\n"  # 5
    "\n"  # 6
    "unicorns: /extinct\n"  # 7
    "noarchive: /some\n"  # 8
    "Disallow: /\n"  # 9
    "Error #and comment\n"  # 10
    "useragent: baz\n"  # 11
    "disallaw: /some\n"  # 12
    "site-map: https://e/s.xml #comment\n"  # 13
    "sitemap: https://e/t.xml\n"  # 14
    "Noarchive: /someCapital\n"  # 15
)


def test_reporting_lines_numbers_are_counted_correctly() -> None:
    robots = parse_robots(REPORTING_FILE)
    assert directives(robots) == [1, 2, 3, 9, 11, 12, 13, 14]  # Google: 8 valid directives
    foo, bar, baz = robots.groups
    assert (foo.agents, foo.agent_lines, [r.line for r in foo.rules]) == (("foo",), (1,), [2])
    # Line 3 has a missing colon and a comment; unknown lines 7/8 stay inside the group and do not end it.
    assert (bar.agents, bar.agent_lines, [r.line for r in bar.rules]) == (("bar",), (3,), [9])
    assert [(e.key, e.line) for e in bar.extensions] == [("unicorns", 7), ("noarchive", 8)]
    # Accepted typos: "useragent" is a User-agent line, "disallaw" a Disallow, "site-map" a Sitemap.
    assert (baz.agents, baz.agent_lines, [(r.allow, r.pattern, r.line) for r in baz.rules]) == (
        ("baz",),
        (11,),
        [(False, "/some", 12)],
    )
    assert [(e.key, e.line) for e in baz.extensions] == [("noarchive", 15)]
    assert robots.sitemaps == ["https://e/s.xml", "https://e/t.xml"]
    assert [s.line for s in robots.sitemap_records] == [13, 14]
    warned = " | ".join(robots.warnings)
    for expected in ("line 3: missing ':'", "line 4: not a", "line 10: not a", "line 11: 'useragent'"):
        assert expected in warned
    assert "line 12: 'disallaw' read as 'disallow'" in warned
    assert "line 13: 'site-map' read as 'sitemap'" in warned


@pytest.mark.parametrize(
    "body",
    [
        "User-Agent: foo\r\nAllow: /some/path\r\nUser-Agent: bar\r\n\r\n\r\nDisallow: /\r\n",
        "User-Agent: foo\rAllow: /some/path\rUser-Agent: bar\r\r\rDisallow: /\r",
    ],
)
def test_reporting_dos_and_mac_files(body: str) -> None:
    robots = parse_robots(body)
    assert directives(robots) == [1, 2, 3, 6]


# --- reporting_robots_test.cc: LinesTooLongReportedCorrectly ---------------------------------------------------------


def test_reporting_lines_too_long_reported_correctly() -> None:
    k_max_line_len = 2084 * 8
    longline = "/x/" + "a" * (k_max_line_len - 3)
    robotstxt = "user-agent: foo\n" + "disallow: " + longline + "\n" + "allow: /\n"
    robots = parse_robots(robotstxt)
    assert directives(robots) == [1, 2, 3]
    disallow, allow = robots.groups[0].rules
    assert (disallow.line, allow.line) == (2, 3)
    assert disallow.pattern == longline[: MAX_LINE_BYTES - len("disallow: ")]
    assert any(w.startswith("line 2: longer than") for w in robots.warnings)
    assert not any(w.startswith("line 3") for w in robots.warnings)
