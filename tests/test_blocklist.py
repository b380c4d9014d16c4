"""Site blocklist (persistently infringing sites, PROTOCOLS.md §9.1, vector 89)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middlewares.protocols import blocklist
from middlewares.protocols.blocklist import Blocklist, listed_site, normalise_host
from middlewares.protocols.signals import ALL_PURPOSES, Verdict

LIST = """# EU list of persistently infringing sites (example)
pirate.example
*.warez.example
.torrents.example
https://www.moviez.co.uk/path?q=1   # a URL: its host is used
0.0.0.0 hosts-format.example
Bücher-Piraten.example
user1.github.io
streams.example:8080

not a host/with spaces
"""


@pytest.fixture
def bl() -> Blocklist:
    # Function-scoped on purpose: a module-scoped list is parsed inside the first test only, so a mutation tool
    # that maps code to the tests that ran it would never run the other tests against a mutated parser.
    return Blocklist.parse(LIST, source="file:///etc/optout/blocklist.txt")


def test_vector_89_listed_domain_excluded(bl: Blocklist) -> None:
    sig = bl.signal("https://pirate.example/movies/1")
    assert sig is not None
    assert sig.protocol == "blocklist" and sig.where == "blocklist"
    assert sig.verdicts == {p: Verdict.DISALLOW for p in ALL_PURPOSES}
    assert sig.value == "pirate.example" and sig.rule == "listed: pirate.example"
    assert sig.source == "file:///etc/optout/blocklist.txt"


@pytest.mark.parametrize(
    ("target", "entry"),
    [
        ("pirate.example", "pirate.example"),
        ("https://PIRATE.example.:443/x", "pirate.example"),
        ("https://cdn.pirate.example/x", "pirate.example"),
        ("http://a.b.warez.example/", "warez.example"),
        ("warez.example", "warez.example"),
        ("https://x.torrents.example/", "torrents.example"),
        ("https://moviez.co.uk/", "www.moviez.co.uk"),  # www entry covers the site
        ("https://img.moviez.co.uk/", "www.moviez.co.uk"),
        ("https://www.moviez.co.uk/", "www.moviez.co.uk"),
        ("hosts-format.example", "hosts-format.example"),
        ("https://xn--bcher-piraten-wob.example/", "xn--bcher-piraten-wob.example"),
        ("https://bücher-piraten.example/", "xn--bcher-piraten-wob.example"),
        ("https://user1.github.io/repo", "user1.github.io"),
        ("http://streams.example:9999/", "streams.example"),
        ("https://user:pw@pirate.example/", "pirate.example"),
    ],
)
def test_matches(bl: Blocklist, target: str, entry: str) -> None:
    assert bl.match(target) == entry


@pytest.mark.parametrize(
    "target",
    [
        "https://example.com/",
        "https://notpirate.example/",
        "https://pirate.example.com/",
        "https://user2.github.io/",  # a private suffix: one user's site does not cover GitHub Pages
        "https://github.io/",
        "https://other.co.uk/",
        "https://moviez.com/",
        "",
        "https://",
        "http://[::1]/",
    ],
)
def test_non_matches(bl: Blocklist, target: str) -> None:
    assert bl.match(target) is None
    assert bl.signal(target) is None


def test_public_suffix_entries_match_only_themselves() -> None:
    bl = Blocklist.parse("co.uk\ncom\ngithub.io\n")
    assert bl.match("https://bbc.co.uk/") is None
    assert bl.match("https://example.com/") is None
    assert bl.match("https://someone.github.io/") is None
    assert bl.match("co.uk") == "co.uk"


@pytest.mark.parametrize(
    ("entry", "target"),
    [
        ("example.com", "www.example.com"),
        ("example.com", "a.b.example.com"),
        ("bbc.co.uk", "news.bbc.co.uk"),
        ("piratebay.org", "www.piratebay.org"),
        ("user1.github.io", "www.user1.github.io"),
    ],
)
def test_registrable_domain_entry_covers_its_subdomains(entry: str, target: str) -> None:
    """The walk up the parents must include the registrable domain itself, on real public suffixes: `.example`
    is on no suffix list, so tests that only use it never reach this comparison."""
    bl = Blocklist.parse(entry)
    assert bl.match(f"https://{target}/") == entry
    assert bl.match(f"https://{entry}/") == entry


def test_public_suffix_in_the_middle_is_never_climbed_to() -> None:
    bl = Blocklist.parse("co.uk\nuk\n")
    assert bl.match("https://news.bbc.co.uk/") is None
    assert bl.match("https://bbc.co.uk/") is None


def test_unknown_suffix_never_climbs_to_a_bare_label() -> None:
    """Without a known suffix the walk stops before the last label: listing `example` is not listing every
    `*.example` site."""
    bl = Blocklist.parse("example\n")
    assert bl.match("https://pirate.example/") is None
    assert bl.match("https://cdn.pirate.example/") is None
    assert bl.match("example") == "example"


def test_www_entry_covers_the_site_only_when_www_is_directly_on_the_registrable_domain() -> None:
    bl = Blocklist.parse("www.shop.example.co.uk\nwww.example.com\nwww.other.com\n")
    assert bl.www_sites == {"example.com": "www.example.com", "other.com": "www.other.com"}
    assert bl.match("https://example.co.uk/") is None
    assert bl.match("https://shop.example.co.uk/") is None
    assert bl.match("https://cdn.example.com/") == "www.example.com"
    assert bl.match("https://other.com/") == "www.other.com"
    assert Blocklist.parse("www.co.uk\n").www_sites == {}


def test_parse_line_syntax() -> None:
    text = (
        "\ufeffbom.example\n"  # a byte-order mark before the first entry
        "prose line here\n"  # skipped, and parsing goes on
        "more prose\n"
        '  "quoted.example",\n'
        "*.star.example\n"
        "hashes.example # a comment # with a second hash\n"
        "0.0.0.0 hosts.example\n"
        "::1 v6hosts.example\n"
        "bad_host!.example\n"  # skipped
        "user@at.example\n"
        "last.example\n"
    )
    bl = Blocklist.parse(text, source="s")
    assert bl.entries == {
        "bom.example",
        "quoted.example",
        "star.example",
        "hashes.example",
        "hosts.example",
        "v6hosts.example",
        "at.example",
        "last.example",
    }
    assert bl.notes == ["3 unusable line(s) skipped"]
    assert bl.source == "s"
    assert Blocklist.parse(None, source="s").source == "s"  # type: ignore[arg-type]


def test_parse_bytes_with_invalid_utf8() -> None:
    bl = Blocklist.parse(b"\xffjunk\npirate.example\n")  # type: ignore[arg-type]
    assert bl.match("pirate.example") == "pirate.example"


def test_parse_stops_at_max_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blocklist, "MAX_ENTRIES", 3)
    bl = Blocklist.parse("a.example\nb.example\nc.example\nd.example\n")
    assert bl.entries == {"a.example", "b.example", "c.example"}
    assert bl.notes == ["list truncated at 3 entries"]


LONGEST_HOST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("//pirate.example/x", "pirate.example"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("user@pirate.example", "pirate.example"),
        ("pirate.example.", "pirate.example"),
        ("https:///path", ""),
        ("pirate..example", ""),
        ("pirate!.example", ""),
        (LONGEST_HOST, LONGEST_HOST),
        ("x" + LONGEST_HOST, ""),  # one character over the limit of RFC 1035
    ],
)
def test_normalise_host_edges(text: str, host: str) -> None:
    assert normalise_host(text) == host


def test_non_www_subdomain_entry_does_not_cover_siblings() -> None:
    bl = Blocklist.parse("files.cdn-host.example\n")
    assert bl.match("https://a.files.cdn-host.example/") == "files.cdn-host.example"
    assert bl.match("https://cdn-host.example/") is None
    assert bl.match("https://other.cdn-host.example/") is None


def test_ip_entries() -> None:
    bl = Blocklist.parse("192.0.2.7\n2001:db8::1\n")
    assert bl.match("http://192.0.2.7:8080/x") == "192.0.2.7"
    assert bl.match("http://[2001:db8::1]/") == "2001:db8::1"
    assert bl.match("http://192.0.2.8/") is None


def test_parse_notes_and_len(bl: Blocklist) -> None:
    assert "pirate.example" in bl.entries and len(bl) >= 8
    assert any("skipped" in n for n in bl.notes)
    assert len(Blocklist.parse("")) == 0
    assert Blocklist.parse(b"pirate.example\n").match("pirate.example") == "pirate.example"  # type: ignore[arg-type]
    assert len(Blocklist.parse(None)) == 0  # type: ignore[arg-type]


def test_normalise_host_and_registrable_domain() -> None:
    assert normalise_host("https://WWW.Example.COM./a") == "www.example.com"
    assert normalise_host("straße.example") == "xn--strae-oqa.example"
    assert normalise_host("") == ""
    assert normalise_host("a" * 2000) == ""
    assert listed_site("a.b.example.co.uk") == "example.co.uk"
    assert listed_site("co.uk") == ""
    assert listed_site("127.0.0.1") == ""


FUZZ = settings(max_examples=300, deadline=1000)


@FUZZ
@given(st.text(max_size=500))
def test_fuzz_parse(text: str) -> None:
    bl = Blocklist.parse(text)
    for entry in list(bl.entries)[:5]:
        assert bl.match(entry) == entry


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_match(target: str) -> None:
    """A match is a listed entry that is the host itself or one of its parents, and the signal says the same."""
    bl = Blocklist.parse(LIST)
    result = bl.match(target)
    sig = bl.signal(target)
    if result is None:
        assert sig is None
    else:
        assert result in bl.entries
        assert sig is not None and sig.value == result
        assert sig.verdicts == {p: Verdict.DISALLOW for p in ALL_PURPOSES}
        host = normalise_host(target)
        assert host == result or host.endswith("." + result) or result in bl.www_sites.values()


@FUZZ
@given(st.text(max_size=300))
def test_fuzz_normalise_host_is_idempotent(text: str) -> None:
    """An entry and a URL go through the same function, so a normalised host must normalise to itself."""
    host = normalise_host(text)
    assert normalise_host(host) == host
    assert len(host) <= 253
