"""Web Bot Auth pieces on their own: key files, the Signature-Agent origin, captured requests, the add-on's
installation of the signing download handlers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crawler import keydir
from middlewares import httpsig


def test_keys_load_from_pem_and_jwk_and_bad_files_say_why(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "k.pem"
    pem.write_bytes(httpsig.private_pem(key))
    jwk = dict(httpsig.public_jwk(key))
    raw = key.private_bytes_raw()
    jwk["d"] = httpsig.b64url(raw)
    (tmp_path / "k.jwk").write_text(json.dumps(jwk))
    want = httpsig.public_jwk(key)["kid"]
    for path in (pem, tmp_path / "k.jwk"):
        assert httpsig.public_jwk(httpsig.load_private_key(path))["kid"] == want
    other = dict(jwk, x=httpsig.public_jwk(Ed25519PrivateKey.generate())["x"])
    (tmp_path / "mixed.jwk").write_text(json.dumps(other))
    with pytest.raises(httpsig.SignatureError, match="not one key pair"):
        httpsig.load_private_key(tmp_path / "mixed.jwk")
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(httpsig.SignatureError, match="not an unencrypted PEM"):
        httpsig.load_private_key(tmp_path / "junk.pem")
    with pytest.raises(httpsig.SignatureError, match="cannot read"):
        httpsig.load_private_key(tmp_path / "none.pem")


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://crawler.example", "https://crawler.example"),
        ("https://Crawler.Example/", "https://crawler.example"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://crawler.example", None),
        ("https://crawler.example/keys", None),
        ("https://user@crawler.example", None),
        ("ftp://crawler.example", None),
    ],
)
def test_signature_agent_is_an_https_origin(url: str, ok: str | None) -> None:
    if ok is None:
        with pytest.raises(httpsig.SignatureError):
            httpsig.check_agent_url(url)
    else:
        assert httpsig.check_agent_url(url) == ok


def test_authority_and_path_as_rfc9421_derives_them() -> None:
    assert httpsig.authority("https://Example.COM:443/x") == "example.com"
    assert httpsig.authority("http://example.com:8080/x") == "example.com:8080"
    assert httpsig.authority("http://u:p@example.com/x") == "example.com"
    assert httpsig.authority("http://[::1]:80/") == "[::1]"
    assert httpsig.authority("http://a.example/", host="B.example:80") == "b.example"
    assert httpsig.target_path("https://example.com") == "/"
    assert httpsig.target_path("https://example.com/a%20b;p?q") == "/a%20b;p"


def test_captured_requests_raw_and_json() -> None:
    head = "GET /a?b=1 HTTP/1.1\r\nHost: Example.com\r\nSignature: x\r\n  folded\r\n\r\nbody"
    method, url, headers = keydir.parse_captured(head)
    assert (method, url) == ("GET", "https://Example.com/a?b=1")
    assert headers == [("Host", "Example.com"), ("Signature", "x folded")]
    as_json = json.dumps({"method": "get", "url": "http://e.test/", "headers": [["A", "b"]]})
    assert keydir.parse_captured(as_json) == ("GET", "http://e.test/", [("A", "b")])
    for bad in ("", "GET\n", "GET / HTTP/1.1\nno colon here\n", "GET / HTTP/1.1\n\n", '{"method": 1}'):
        with pytest.raises(httpsig.SignatureError):
            keydir.parse_captured(bad)


def test_header_values_keep_inner_whitespace() -> None:
    fields = httpsig.Headers([("X-A", "  a  b  "), ("x-a", "c"), ("X-B", "one\r\n two")])
    assert fields.get("x-a") == "a  b, c"
    assert fields.get("x-b") == "one two"


def test_the_addon_wraps_whatever_handlers_the_project_has() -> None:
    from scrapy.settings import Settings

    from middlewares.addon import OptOutAddon
    from middlewares.signing import INNER

    settings = Settings({"DOWNLOAD_HANDLERS": {"https": "my.project.Handler"}, "OPTOUT_SIGNING_KEY": "k.pem"})
    OptOutAddon().update_settings(settings)
    OptOutAddon().update_settings(settings)  # twice: still one wrapper, still the project's handler inside
    handlers = settings.getwithbase("DOWNLOAD_HANDLERS")
    assert handlers["https"] == "middlewares.signing.SigningHTTPSDownloadHandler"
    assert handlers["http"] == "middlewares.signing.SigningHTTPDownloadHandler"
    assert settings.getdict(INNER) == {
        "https": "my.project.Handler",
        "http": "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler",
    }
    untouched = Settings()
    OptOutAddon().update_settings(untouched)  # no key: nothing wrapped
    assert "middlewares.signing" not in str(untouched.getwithbase("DOWNLOAD_HANDLERS"))


def test_verify_needs_the_required_components() -> None:
    key = Ed25519PrivateKey.generate()
    signer = httpsig.Signer(key, "https://crawler.example", lifetime=60)
    keys = {signer.keyid: httpsig.public_jwk(key)}
    headers = signer.sign("GET", "https://site.example/", now=1000)
    assert httpsig.verify_request("GET", "https://site.example/", headers, keys, at=1001).covered == (
        "@method",
        "@authority",
        "@path",
        "signature-agent",
    )
    assert httpsig.verify_request("GET", "https://site.example/", headers, keys, at=1001).agent == (
        "https://crawler.example"
    )
    with pytest.raises(httpsig.SignatureError, match="in the future"):
        httpsig.verify_request("GET", "https://site.example/", headers, keys, at=900)
    with pytest.raises(httpsig.SignatureError, match="not in the key directory"):
        httpsig.verify_request("GET", "https://site.example/", headers, {}, at=1001)
    with pytest.raises(httpsig.SignatureError, match='tag="web-bot-auth"'):
        httpsig.verify_request("GET", "https://site.example/", {**headers, "Signature-Input": 'sig1=();tag="x"'}, keys)
    with pytest.raises(httpsig.SignatureError, match="does not match"):
        httpsig.verify_request("POST", "https://site.example/", headers, keys, at=1001)
