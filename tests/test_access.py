"""Lawful access: denying status codes, login walls, paywall markup (PROTOCOLS.md §10.1, Measure 1.2)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middlewares.protocols.access import login_wall_signal, status_signal
from middlewares.protocols.html import scan_html
from middlewares.protocols.signals import ALL_PURPOSES, Verdict
from tests.support.signals import well_formed

ALL_DENIED = {p: Verdict.DISALLOW for p in ALL_PURPOSES}
ARTICLE_TEXT = "<p>" + "This is a long and perfectly ordinary news article paragraph. " * 60 + "</p>"
HEADER_LOGIN = (
    '<header><form action="/login" method="post"><input name="user"><input type="password" name="pw">'
    "<button>Log in</button></form></header>"
)


def page(body: str, title: str = "Page", head_extra: str = "") -> bytes:
    return f"<!doctype html><html><head><title>{title}</title>{head_extra}</head><body>{body}</body></html>".encode()


@pytest.mark.parametrize("status", [401, 402, 403, 451])
def test_denying_statuses(status: int) -> None:
    sig = status_signal(status, "https://h.example/x")
    assert sig is not None
    assert sig.protocol == "access" and sig.where == "status" and sig.value == str(status)
    assert sig.verdicts == ALL_DENIED and sig.rule.startswith(f"HTTP {status} ")
    assert sig.source == "https://h.example/x"


@pytest.mark.parametrize("status", [200, 204, 301, 304, 404, 410, 429, 500, 503, -1, 99999])
def test_other_statuses(status: int) -> None:
    assert status_signal(status, "https://h.example/x") is None


def test_status_junk() -> None:
    assert status_signal("403", "u") is not None  # type: ignore[arg-type]
    assert status_signal(None, "u") is None  # type: ignore[arg-type]
    assert status_signal("abc", "u") is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "final",
    [
        "https://h.example/login",
        "https://h.example/login?next=%2Farticle%2F1",
        "https://h.example/account/login",
        "https://h.example/users/sign_in",
        "https://h.example/sign-in/",
        "https://h.example/auth/realms/main/protocol/openid-connect/auth?client_id=x",
        "https://h.example/wp-login.php?redirect_to=https%3A%2F%2Fh.example%2Farticle%2F1",
        "https://h.example/subscribe?from=article",
        "https://accounts.h-sso.example/ServiceLogin?continue=https://h.example/article/1",
        "https://login.other.example/?x=1",
        "https://h.example/gate?return_to=/article/1",
        "https://h.example/session/new",
    ],
)
def test_redirect_to_login(final: str) -> None:
    sig = login_wall_signal("https://h.example/article/1", final, None)
    assert sig is not None, final
    assert sig.protocol == "access" and sig.where == "url" and sig.verdicts == ALL_DENIED


@pytest.mark.parametrize("account", ["session", "sessions", "users", "user", "account", "accounts"])
def test_redirect_to_a_new_session_or_account_page(account: str) -> None:
    """Rails-style `/sessions/new`, `/users/new`: only the pair says login, neither segment alone does."""
    sig = login_wall_signal("https://h.example/article/1", f"https://h.example/{account}/new", None)
    assert sig is not None and sig.rule == f"redirected to a login/subscription page ({account}/new)"
    assert login_wall_signal("https://h.example/article/1", f"https://h.example/{account}/42", None) is None
    assert login_wall_signal("https://h.example/article/1", "https://h.example/articles/new", None) is None


def test_redirect_to_a_sign_in_host_names_it() -> None:
    sig = login_wall_signal("https://h.example/a", "https://IdP.Example.org/start", None)
    assert sig is not None and sig.rule == "redirected to the sign-in host idp.example.org"
    assert sig.value == "https://IdP.Example.org/start" and sig.source == "https://h.example/a"
    assert login_wall_signal("https://sso.example.org/a", "https://sso.example.org/b", None) is None


@pytest.mark.parametrize(
    "final",
    [
        "https://h.example/article/1",
        "http://h.example/article/1/",
        "https://h.example/en/article/1",
        "https://www.h.example/article/1",
        "https://h.example/article/2?ref=/article/1",
        "https://cdn.example/blog/loginless-tips",
        "",
    ],
)
def test_ordinary_redirects_are_not_walls(final: str) -> None:
    assert login_wall_signal("https://h.example/article/1", final, None) is None


def test_requesting_the_login_page_itself_is_not_a_redirect_wall() -> None:
    assert login_wall_signal("https://h.example/login", "https://h.example/login/", None) is None


def test_password_form_on_short_page_is_a_wall() -> None:
    head = scan_html(page(HEADER_LOGIN + "<p>Please log in to continue.</p>"))
    sig = login_wall_signal("https://h.example/a", "https://h.example/a", head)
    assert sig is not None and sig.where == "html-meta" and "password form" in sig.rule


def test_header_login_box_on_long_article_is_not_a_wall() -> None:
    head = scan_html(page(HEADER_LOGIN + "<article>" + ARTICLE_TEXT + "</article>"))
    assert head.has_password_form and head.text_length > 2000
    assert login_wall_signal("https://h.example/a", "https://h.example/a", head) is None


def test_login_title_extends_the_limit() -> None:
    medium = "<p>" + "Some footer and navigation text. " * 60 + "</p>"
    body = HEADER_LOGIN + medium
    assert login_wall_signal("https://h.example/a", "", scan_html(page(body, title="Sign in – Example"))) is not None
    assert login_wall_signal("https://h.example/a", "", scan_html(page(body, title="Our shop"))) is None


def test_short_page_without_password_form_is_not_a_wall() -> None:
    assert login_wall_signal("https://h.example/a", "https://h.example/a", scan_html(page("<p>Hi</p>"))) is None


PAYWALL_LD = """<script type="application/ld+json">{"@context": "https://schema.org", "@type": "NewsArticle",
"headline": "x", "isAccessibleForFree": "False",
"hasPart": {"@type": "WebPageElement", "isAccessibleForFree": "False", "cssSelector": ".paywall"}}</script>"""


def test_json_ld_paywall() -> None:
    head = scan_html(page(ARTICLE_TEXT + PAYWALL_LD))
    sig = login_wall_signal("https://h.example/a", "https://h.example/a", head)
    assert sig is not None and "isAccessibleForFree" in sig.rule and "NewsArticle" in sig.rule


@pytest.mark.parametrize("value", ["false", '"false"', '"no"', '"https://schema.org/False"'])
def test_json_ld_false_spellings(value: str) -> None:
    ld = f'<script type="application/ld+json">{{"@type": "Article", "isAccessibleForFree": {value}}}</script>'
    assert login_wall_signal("https://h.example/a", "", scan_html(page(ld))) is not None


def test_json_ld_graph_and_other_pages() -> None:
    graph = (
        '<script type="application/ld+json">{"@graph": [{"@type": "WebSite"}, '
        '{"@type": "Article", "url": "https://h.example/a", "isAccessibleForFree": false}]}</script>'
    )
    assert login_wall_signal("https://h.example/a", "", scan_html(page(graph))) is not None
    teaser = (
        '<script type="application/ld+json">[{"@type": "Article", "url": "https://h.example/premium/9", '
        '"isAccessibleForFree": false}]</script>'
    )
    assert login_wall_signal("https://h.example/", "", scan_html(page(ARTICLE_TEXT + teaser))) is None


def test_json_ld_free_or_broken() -> None:
    for ld in (
        '{"@type": "Article", "isAccessibleForFree": true}',
        '{"@type": "Article", "isAccessibleForFree": "True"}',
        '{"isAccessibleForFree": fals',
        "[" * 100000,
        '"isAccessibleForFree"',
    ):
        html = page(ARTICLE_TEXT + f'<script type="application/ld+json">{ld}</script>')
        assert login_wall_signal("https://h.example/a", "", scan_html(html)) is None


@given(
    key=st.sampled_from(["isAccessibleForFree", "isaccessibleforfree", "IsAccessibleForFree", "ISACCESSIBLEFORFREE"]),
    value=st.sampled_from(["false", '"False"', '"no"', "true", "null"]),
    escaped=st.booleans(),
)
@settings(max_examples=60, deadline=None)
def test_paywall_gate_is_exact(key: str, value: str, escaped: bool) -> None:
    """JSON-LD is only extracted when the page holds the exact key ``isAccessibleForFree``: JSON keys are
    case-sensitive, so the answer is the one reading every block gives (a wrong-case or escaped key is no paywall)."""
    name = key.replace("i", "\\u0069", 1) if escaped else key
    head = scan_html(page(f'<script type="application/ld+json">{{"@type": "Article", "{name}": {value}}}</script>'))
    paywalled = key == "isAccessibleForFree" and not escaped and value in ("false", '"False"', '"no"')
    assert head.mentions_paywall_key == (key == "isAccessibleForFree" and not escaped)
    assert (login_wall_signal("https://h.example/a", "", head) is not None) == paywalled


def test_no_head() -> None:
    assert login_wall_signal("https://h.example/a", "https://h.example/a", None) is None


FUZZ = settings(max_examples=200, deadline=1000)


@FUZZ
@given(st.text(max_size=200), st.text(max_size=200), st.binary(max_size=3000))
def test_fuzz(requested: str, final: str, body: bytes) -> None:
    """A wall denies everything; a URL reason needs a redirect and names where it ended; no page, no redirect,
    no wall."""
    sig = login_wall_signal(requested, final, scan_html(body))
    if sig is not None:
        assert well_formed([sig], "access") == set(ALL_PURPOSES) and len(sig.value) <= 300
        if sig.where == "url":
            assert requested != final and sig.value == final[:300]
    sig = login_wall_signal("https://h.example/a", "https://h.example/" + final, None)
    assert sig is None or (sig.where == "url" and sig.source == "https://h.example/a")
    assert login_wall_signal(requested, requested, None) is None


@settings(max_examples=3, deadline=5000)
@given(
    st.sampled_from([b"<form><input type=password>" * 20000, b'<script type="application/ld+json">' + b"{" * 500000])
)
def test_fuzz_huge(body: bytes) -> None:
    sig = login_wall_signal("https://h.example/a", "https://h.example/login?" + "next=/a&" * 5000, scan_html(body))
    assert sig is not None and sig.where == "url" and len(sig.value) == 300
