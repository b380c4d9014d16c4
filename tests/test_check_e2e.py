"""End-to-end: the `check` engine and CLI against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from crawler.fixtureweb import FixtureWeb, Route, page
from middlewares.protocols.blocklist import Blocklist
from tests.support.run import check, cli_json, protocols, run_cli

ROBOTS = "text/plain"


def robots(body: str, status: int = 200) -> Route:
    return Route(status, body, content_type=ROBOTS)


# -- access stage: robots.txt fetch semantics (RFC 9309 §2.3.1) ---------------------------------------------


@pytest.mark.parametrize(
    ("status", "allowed"),
    [(200, False), (404, True), (410, True), (401, True), (403, True), (429, False), (500, False), (503, False)],
)
def test_robots_status_classes(web: FixtureWeb, status: int, allowed: bool) -> None:
    # The body says "disallow everything"; only a 2xx answer may be parsed (Scrapy parses 4xx bodies too).
    base = web.site("s", {"/robots.txt": robots("User-agent: *\nDisallow: /\n", status), "/page": page("p")})
    [d] = check(base + "/page")
    assert d.allowed is allowed
    if status >= 500 or status == 429:
        assert {"fetch", "robots"} <= protocols(d)
    elif status == 200:
        assert protocols(d) == {"robots"}
    # A disallowed page is never fetched.
    assert bool(web.hits("s", "/page")) is allowed


def test_robots_429_is_allow_all_in_strict_mode(web: FixtureWeb) -> None:
    base = web.site("s", {"/robots.txt": robots("User-agent: *\nDisallow: /\n", 429), "/page": page("p")})
    [d] = check(base + "/page", mode="strict")
    assert d.allowed


def test_robots_unreachable_and_timeout(web: FixtureWeb) -> None:
    base = web.site("slow", {"/robots.txt": Route(200, "User-agent: *\nAllow: /\n", delay=3.0), "/p": page("p")})
    [d] = check(base + "/p", timeout=0.5)
    assert not d.allowed and "fetch" in protocols(d)
    assert not web.hits("slow", "/p")
    # Nothing listens on port 9 of loopback: connection refused is "unreachable", not "allowed".
    [d] = check("http://127.0.0.1:9/x")
    assert not d.allowed and "fetch" in protocols(d)
    assert any("127.0.0.1:9" in e for e in d.errors)


def test_robots_redirect_cross_host_applies_to_initial_authority(web: FixtureWeb) -> None:
    cdn = web.site("cdn", {"/r.txt": robots("User-agent: *\nDisallow: /secret\n")})
    base = web.site(
        "a",
        {
            "/robots.txt": Route(301, "", headers=[("Location", cdn + "/r.txt")]),
            "/secret/x": page("s"),
            "/open": page("o"),
        },
    )
    denied, allowed = check([base + "/secret/x", base + "/open"])
    assert not denied.allowed and protocols(denied) == {"robots"}
    assert allowed.allowed


def test_robots_redirect_loop_is_unreachable(web: FixtureWeb) -> None:
    base = web.site("loop", {"/robots.txt": Route(302, "", headers=[("Location", "/robots.txt")]), "/p": page("p")})
    [d] = check(base + "/p")
    assert not d.allowed and "fetch" in protocols(d)
    [d] = check(base + "/p", mode="strict")
    assert d.allowed  # RFC 9309 §2.3.1.2: MAY treat as unavailable (4xx)


def test_robots_fetched_once_per_origin(web: FixtureWeb) -> None:
    base = web.site("s", {"/robots.txt": robots("User-agent: *\nDisallow: /x\n"), "/a": page("a"), "/b": page("b")})
    check([base + "/a", base + "/b", base + "/x/1"])
    assert len(web.hits("s", "/robots.txt")) == 1


def test_redirect_into_disallowed_path_is_not_followed(web: FixtureWeb) -> None:
    other = web.site("other", {"/robots.txt": robots("User-agent: ExampleBot\nDisallow: /private/\n")})
    base = web.site(
        "s",
        {"/go": Route(302, "", headers=[("Location", other + "/private/doc")])},
    )
    web.site("other", {"/private/doc": page("doc")})
    [d] = check(base + "/go")
    assert not d.allowed and protocols(d) == {"robots"}
    assert not web.hits("other", "/private/doc")


def test_token_matching_is_whole_token(web: FixtureWeb) -> None:
    base = web.site("s", {"/robots.txt": robots("User-agent: Claude\nDisallow: /\n"), "/p": page("p")})
    [d] = check(base + "/p", agent="ClaudeBot")
    assert d.allowed  # vector 85: no prefix matching


# -- usage stage: site-level files, headers, HTML, media --------------------------------------------------------


def test_tdmrep_file_first_match_and_conservative_conflict(web: FixtureWeb) -> None:
    rules = [{"location": "/a/", "tdm-reservation": 0}, {"location": "/a/private/", "tdm-reservation": 1}]
    base = web.site(
        "s",
        {
            "/.well-known/tdmrep.json": Route(body=json.dumps(rules), content_type="application/json"),
            "/a/private/x": page("x"),
            "/a/public": page("p"),
        },
    )
    cons, public = check([base + "/a/private/x", base + "/a/public"])
    assert not cons.allowed and protocols(cons) == {"tdmrep"}
    assert public.allowed
    [strict] = check(base + "/a/private/x", mode="strict")
    assert strict.allowed  # vector 25: first in sequence wins


def test_tdmrep_file_does_not_block_search(web: FixtureWeb) -> None:
    body = json.dumps([{"location": "/", "tdm-reservation": 1}])
    base = web.site(
        "s", {"/.well-known/tdmrep.json": Route(body=body, content_type="application/json"), "/p": page("p")}
    )
    [train] = check(base + "/p")
    [search] = check(base + "/p", purpose="search")
    assert not train.allowed and search.allowed


@pytest.mark.parametrize("status", [500, 503])
def test_tdmrep_file_server_error_fails_closed(web: FixtureWeb, status: int) -> None:
    base = web.site("s", {"/.well-known/tdmrep.json": Route(status, "oops"), "/p": page("p")})
    [d] = check(base + "/p")
    assert not d.allowed and protocols(d) == {"fetch"}
    [s] = check(base + "/p", purpose="search")
    assert s.allowed  # a TDM file cannot reserve search


def test_soft_404_policy_files_are_not_reservations(web: FixtureWeb) -> None:
    home = page("Home")
    base = web.site("s", {"/.well-known/tdmrep.json": home, "/ai.txt": home, "/p": page("p")})
    [d] = check(base + "/p")
    assert d.allowed, d.reservations


def test_tdmrep_priority_header_then_html(web: FixtureWeb) -> None:
    base = web.site(
        "s",
        {
            # vector 29: header 0, HTML 1 -> reserved in both modes
            "/v29": Route(
                body=page("p", head='<meta name="tdm-reservation" content="1">'), headers=[("tdm-reservation", "0")]
            ),
            # vector 21: header 0 + policy -> not reserved
            "/v21": Route(body=page("p"), headers=[("tdm-reservation", "0"), ("tdm-policy", "https://p.example/x")]),
        },
    )
    v29, v21 = check([base + "/v29", base + "/v21"])
    assert not v29.allowed and protocols(v29) == {"tdmrep"}
    assert v21.allowed
    [v29s] = check(base + "/v29", mode="strict")
    assert not v29s.allowed


def test_vector_27_file_reserved_header_zero(web: FixtureWeb) -> None:
    body = json.dumps([{"location": "/", "tdm-reservation": 1}])
    base = web.site(
        "s",
        {
            "/.well-known/tdmrep.json": Route(body=body, content_type="application/json"),
            "/p": Route(body=page("p"), headers=[("tdm-reservation", "0")]),
        },
    )
    [cons] = check(base + "/p")
    [strict] = check(base + "/p", mode="strict")
    assert not cons.allowed and strict.allowed


def test_content_usage_header_lines(web: FixtureWeb) -> None:
    base = web.site(
        "s",
        {
            "/n": Route(body=page("p"), headers=[("Content-Usage", "train-ai=n")]),
            "/two": Route(body=page("p"), headers=[("Content-Usage", "train-ai=n"), ("Content-Usage", "train-ai=y")]),
            "/bad": Route(body=page("p"), headers=[("Content-Usage", "Train-AI=n")]),
        },
    )
    n, two, bad = check([base + "/n", base + "/two", base + "/bad"])
    assert not n.allowed and protocols(n) == {"content-usage"}
    assert not two.allowed  # vector 41 conservative
    assert bad.allowed  # vector 35: parse failure -> unknown
    [two_strict] = check(base + "/two", mode="strict")
    assert two_strict.allowed
    [search] = check(base + "/n", purpose="search")
    assert search.allowed


def test_robots_content_usage_and_attach_example(web: FixtureWeb) -> None:
    body = (
        "User-Agent: *\nAllow: /\nDisallow: /never/\nContent-Usage: train-ai=n\nContent-Usage: /ai-ok/ train-ai=y\n\n"
        "User-Agent: ExampleBot\nAllow: /\nContent-Usage: train-ai=y\n"
    )
    routes = {"/robots.txt": robots(body), "/test": page("t"), "/ai-ok/test": page("t"), "/never/test": page("t")}
    base = web.site("s", routes)
    other, ok, never = check([base + "/test", base + "/ai-ok/test", base + "/never/test"], agent="OtherBot")
    assert not other.allowed and protocols(other) == {"content-usage"}
    assert ok.allowed
    assert not never.allowed and protocols(never) == {"robots"}
    [mine] = check(base + "/test", agent="ExampleBot")
    assert mine.allowed


def test_content_signal_robots_and_header(web: FixtureWeb) -> None:
    base = web.site(
        "s",
        {
            "/robots.txt": robots("User-agent: *\ncontent-signal: ai-input=no\nAllow: /\n"),
            "/p": Route(body=page("p"), headers=[("Content-Signal", "ai-train=no")]),
        },
    )
    [inp] = check(base + "/p", purpose="ai-input")
    [train] = check(base + "/p")
    [search] = check(base + "/p", purpose="search")
    assert not inp.allowed and protocols(inp) == {"content-signal"}
    assert not train.allowed and protocols(train) == {"content-signal"}
    assert search.allowed


def test_robots_tag_scoped_and_meta(web: FixtureWeb) -> None:
    base = web.site(
        "s",
        {
            "/scoped": Route(body=page("p"), headers=[("X-Robots-Tag", "mybot: noindex, noai")]),
            "/other": Route(body=page("p"), headers=[("X-Robots-Tag", "otherbot: noai")]),
            "/meta": page("p", head='<meta name="MyBot" content="NoAI">'),
            "/noindex": Route(body=page("p"), headers=[("X-Robots-Tag", "noindex")]),
        },
    )
    scoped, other, meta, noindex = check(
        [base + "/scoped", base + "/other", base + "/meta", base + "/noindex"], agent="MyBot"
    )
    assert not scoped.allowed and protocols(scoped) == {"robots-tag"}
    assert other.allowed
    assert not meta.allowed
    assert noindex.allowed  # noindex speaks to search only
    [s] = check(base + "/noindex", purpose="search", agent="MyBot")
    assert not s.allowed


def test_rsl_via_link_header(web: FixtureWeb) -> None:
    rsl = (
        '<rsl xmlns="https://rslstandard.org/rsl"><content url="/"><license>'
        '<prohibits type="usage">ai-train</prohibits></license></content></rsl>'
    )
    base = web.site("s", {"/license.xml": Route(body=rsl, content_type="application/rsl+xml")})
    web.site(
        "s",
        {
            "/typed": Route(
                body=page("p"), headers=[("Link", f'<{base}/license.xml>; rel="license"; type="application/rsl+xml"')]
            ),
            "/cc": Route(body=page("p"), headers=[("Link", f'<{base}/license.xml>; rel="license"')]),
        },
    )
    typed, cc = check([base + "/typed", base + "/cc"])
    assert not typed.allowed and protocols(typed) == {"rsl"}
    assert cc.allowed  # vector 61: a plain rel=license is not RSL


def test_access_status_and_login_wall(web: FixtureWeb) -> None:
    base = web.site(
        "s",
        {
            "/401": Route(401, "no"),
            "/402": Route(402, "pay"),
            "/403": Route(403, "no"),
            "/451": Route(451, "legal"),
            "/wall": Route(302, "", headers=[("Location", "/login?next=/wall")]),
            "/login": page("Sign in", "<form><input type=password name=p></form>"),
            "/gone": Route(404, "missing"),
            "/boom": Route(500, "error"),
        },
    )
    urls = ["/401", "/402", "/403", "/451", "/wall"]
    for d in check([base + u for u in urls]):
        assert not d.allowed and protocols(d) == {"access"}, d.url
    gone, boom = check([base + "/gone", base + "/boom"])
    assert not gone.allowed and protocols(gone) == {"fetch"}
    assert not boom.allowed and protocols(boom) == {"fetch"}


def test_blocklist_never_fetches(web: FixtureWeb) -> None:
    base = web.site("s", {"/p": page("p")})
    [d] = check(base.replace("127.0.0.1", "localhost") + "/p", blocklist=Blocklist.parse("localhost\n"))
    assert not d.allowed and protocols(d) == {"blocklist"}
    assert not web.hits("s")


def test_vector_91_cross_token_training_reservation_spares_search(web: FixtureWeb) -> None:
    base = web.site("s", {"/robots.txt": robots("User-agent: GPTBot\nDisallow: /\n"), "/p": page("p")})
    [train] = check(base + "/p")
    [search] = check(base + "/p", purpose="search")
    [strict] = check(base + "/p", mode="strict")
    assert not train.allowed and protocols(train) == {"robots"}
    assert search.allowed  # vector 91
    assert strict.allowed


# -- the CLI contract ------------------------------------------------------------------------------------------


def test_cli_json_contract_and_exit_codes(web: FixtureWeb) -> None:
    base = web.site(
        "s",
        {"/robots.txt": robots("User-agent: *\nDisallow: /private/\n"), "/ok": page("ok"), "/private/x": page("x")},
    )
    code, lines = cli_json(base + "/ok", base + "/private/x", "--agent", "ExampleBot")
    assert code == 1
    assert [line["url"] for line in lines] == [base + "/ok", base + "/private/x"]
    ok, denied = lines
    assert set(ok) == {"url", "purpose", "agent", "mode", "allowed", "reservations", "errors"}
    assert ok["allowed"] is True and ok["reservations"] == []
    assert ok["purpose"] == "train-ai" and ok["agent"] == "ExampleBot" and ok["mode"] == "conservative"
    assert denied["allowed"] is False
    [res] = denied["reservations"]
    assert res["protocol"] == "robots" and res["source"] == base + "/robots.txt"
    assert res["purposes"] == ["train-ai", "ai-input", "search"]
    assert "Disallow: /private/" in res["rule"]
    code, _ = cli_json(base + "/ok")
    assert code == 0


@pytest.mark.parametrize(
    "args",
    [
        ("check", "http://127.0.0.1:1/", "--purpose", "painting"),
        ("check", "ftp://example.com/x"),
        ("check", "not a url"),
        ("check", "http://127.0.0.1:1/", "--mode", "lax"),
        ("check", "http://127.0.0.1:1/", "--agent", "bad agent!"),
        ("check", "http://127.0.0.1:99999/"),
    ],
)
def test_cli_usage_errors_are_one_line(args: tuple[str, ...]) -> None:
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_human_output(web: FixtureWeb) -> None:
    base = web.site("s", {"/p": Route(body=page("p"), headers=[("X-Robots-Tag", "noai")])})
    proc = run_cli("check", base + "/p")
    assert proc.returncode == 1
    assert proc.stdout.startswith("RESERVED " + base + "/p") and "robots-tag" in proc.stdout


def test_cli_says_not_available_for_a_missing_page(web: FixtureWeb) -> None:
    """A 404 or a 500 is refused (exit 1) but is not called a rights reservation."""
    base = web.site("s", {"/gone": Route(404, "missing"), "/boom": Route(500, "error"), "/p": page("p")})
    proc = run_cli("check", base + "/gone", base + "/boom", base + "/p")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("NOT AVAILABLE " + base + "/gone") and "(HTTP 404)" in lines[0], lines
    assert lines[1].startswith("NOT AVAILABLE " + base + "/boom"), lines
    assert lines[2].startswith("ALLOWED " + base + "/p"), lines
    assert "RESERVED" not in proc.stdout


def test_media_metadata_end_to_end(web: FixtureWeb) -> None:
    from tests.support import media as mf

    prohibited = "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED"
    c2pa = mf.jumbf_manifest("cawg.training-mining", {"cawg.ai_training": {"use": "notAllowed"}})
    base = web.site(
        "s",
        {
            "/a.pdf": Route(body=mf.make_pdf(mf.xmp_packet(tdm_reservation="1")), content_type="application/pdf"),
            "/b.epub": Route(body=mf.make_epub(mf.opf_epub3("1")), content_type="application/epub+zip"),
            "/c.png": Route(body=mf.make_png(mf.xmp_packet(data_mining=prohibited)), content_type="image/png"),
            "/d.jpg": Route(body=mf.make_jpeg(None, c2pa), content_type="image/jpeg"),
            "/e.webp": Route(body=mf.make_webp(mf.xmp_packet(data_mining=prohibited)), content_type="image/webp"),
            "/f.jpg": Route(body=mf.make_jpeg(mf.xmp_packet(data_mining="DMI-UNSPECIFIED")), content_type="image/jpeg"),
        },
    )
    pdf, epub, png, jpg, webp, plain = check(
        [base + p for p in ("/a.pdf", "/b.epub", "/c.png", "/d.jpg", "/e.webp", "/f.jpg")]
    )
    assert protocols(pdf) == {"tdmrep"} and protocols(epub) == {"tdmrep"}
    assert protocols(png) == {"iptc"} and protocols(webp) == {"iptc"}
    assert protocols(jpg) == {"c2pa"}
    assert plain.allowed
    [png_search] = check(base + "/c.png", purpose="search")
    assert not png_search.allowed  # DMI-PROHIBITED covers search indexing too
