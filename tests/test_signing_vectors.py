"""Test vectors: RFC 9421 Appendix B.2.6 (Ed25519) and the Web Bot Auth draft's Ed25519 vectors
(draft-meunier-webbotauth-httpsig-protocol, "Test Vectors": the dictionary Signature-Agent, the legacy sf-string form
and the signed directory response), checked against our signature-base builder and verifier and against the
independent ``http-message-signatures`` library."""

from __future__ import annotations

import base64
import datetime
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization

from middlewares import httpsig

# RFC 9421 Appendix B.1.4, test-key-ed25519 (a published test key: never for production).
RFC_KEY_PEM = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""
RFC_KEY_X = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"
RFC_KEY_THUMBPRINT = "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U"

B26_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@method": POST\n'
    '"@path": /foo\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    '"content-length": 18\n'
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
B26_SIGNATURE = "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="

# The draft's Ed25519 vector, dictionary Signature-Agent.
DICT_INPUT = (
    'sig2=("@authority" "signature-agent";key="agent2");created=1735689600'
    ';keyid="poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";alg="ed25519";expires=4889289600'
    ';nonce="n9p433xm+NJ3ph3upfBIGmsuwHw387YV7Q/F+6BSpGCVjYCqQw6rznNA8PVVLySrAWsv0hQtFioQb6E1YsauiA=="'
    ';tag="web-bot-auth"'
)
DICT_SIGNATURE = "sig2=:RdNFx5Bj6au3YgAMQL/RzmUlZE8QZLIaXGRpw985hWnwPfMxT228NMk6ehRS1PSl4e8PhbNZACSanGdhEwYCCg==:"
# The legacy sf-string Signature-Agent form.
LEGACY_INPUT = (
    'sig2=("@authority" "signature-agent");created=1735689600'
    ';keyid="poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";alg="ed25519";expires=1735693200'
    ';nonce="e8N7S2MFd/qrd6T2R3tdfAuuANngKI7LFtKYI/vowzk4lAZYadIX6wW25MwG7DCT9RUKAJ0qVkU0mEeLElW1qg=="'
    ';tag="web-bot-auth"'
)
LEGACY_SIGNATURE = "sig2=:jdq0SqOwHdyHr9+r5jw3iYZH6aNGKijYp/EstF4RQTQdi5N5YYKrD+mCT1HA1nZDsi6nJKuHxUi/5Syp3rLWBA==:"
# The signed directory response.
DIRECTORY_BODY = (
    b'{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U",'
    b'"x":"JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs","use":"sig"}]}'
)
DIRECTORY_DIGEST = "sha-256=:CADMT2aBdV/rqQr/NIru64ERQkCobVvllA4V0fLFDu0=:"
DIRECTORY_INPUT = (
    'binding=("@authority";req "content-digest");created=1735689600;expires=4889289600'
    ';keyid="poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U";tag="http-message-signatures-directory"'
)
DIRECTORY_SIGNATURE = (
    "binding=:l6P8R67tm3kujAxbHWio7ll01qrEZ0dKD/WWlGhNYEmTnFZM8Wt0VQ9zqGfvo7T/UMkBxsigzChM1Gpz7gOVBg==:"
)


def rfc_key():
    return serialization.load_pem_private_key(RFC_KEY_PEM, password=None)


def test_rfc9421_b26_ed25519_signature_base_and_value():
    key = rfc_key()
    lines = [
        ('"date"', "Tue, 20 Apr 2021 02:07:55 GMT"),
        ('"@method"', "POST"),
        ('"@path"', httpsig.target_path("https://example.com/foo?param=Value&Pet=dog")),
        ('"@authority"', httpsig.authority("https://example.com/foo?param=Value&Pet=dog")),
        ('"content-type"', "application/json"),
        ('"content-length"', "18"),
    ]
    params = httpsig.inner_list(
        ['"date"', '"@method"', '"@path"', '"@authority"', '"content-type"', '"content-length"'],
        [("created", 1618884473), ("keyid", "test-key-ed25519")],
    )
    base = httpsig.signature_base(lines, params)
    assert base.decode() == B26_BASE
    # Ed25519 is deterministic: the same key and base give the RFC's signature byte for byte.
    assert base64.b64encode(key.sign(base)).decode() == B26_SIGNATURE


def test_rfc9421_b26_with_the_library():
    from http_message_signatures import HTTPMessageVerifier, MappingKeyResolver, algorithms
    from requests import Request

    message = Request(
        "POST",
        "https://example.com/foo?param=Value&Pet=dog",
        headers={
            "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
            "Content-Type": "application/json",
            "Content-Length": "18",
            "Signature-Input": 'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
            ';created=1618884473;keyid="test-key-ed25519"',
            "Signature": f"sig-b26=:{B26_SIGNATURE}:",
        },
    ).prepare()
    resolver = MappingKeyResolver(public_keys={"test-key-ed25519": rfc_key().public_key()}, private_keys={})
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=resolver)
    (result,) = verifier.verify(message, max_age=None)
    assert result.label == "sig-b26"


def test_thumbprint_is_the_drafts_keyid():
    jwk = httpsig.public_jwk(rfc_key())
    assert jwk["x"] == RFC_KEY_X
    assert httpsig.jwk_thumbprint(jwk) == jwk["kid"] == RFC_KEY_THUMBPRINT


def directory():
    return httpsig.directory_keys(DIRECTORY_BODY)


@pytest.mark.parametrize(
    ("agent", "sig_input", "signature", "at"),
    [
        ('agent2="https://signature-agent.test"', DICT_INPUT, DICT_SIGNATURE, 1735689700),
        ('"https://signature-agent.test"', LEGACY_INPUT, LEGACY_SIGNATURE, 1735689700),
    ],
    ids=["dictionary", "legacy"],
)
def test_draft_ed25519_vectors_verify(agent, sig_input, signature, at):
    headers = {"Signature-Agent": agent, "Signature-Input": sig_input, "Signature": signature}
    verified = httpsig.verify_request("GET", "https://example.com/", headers, directory(), at=at)
    assert verified.keyid == RFC_KEY_THUMBPRINT
    assert verified.agent == "https://signature-agent.test"
    # The same vector on another authority, or with another Signature-Agent, is rejected.
    with pytest.raises(httpsig.SignatureError, match="does not match"):
        httpsig.verify_request("GET", "https://example.org/", headers, directory(), at=at)
    tampered = dict(headers, **{"Signature-Agent": agent.replace("signature-agent.test", "evil.test")})
    with pytest.raises(httpsig.SignatureError, match="does not match"):
        httpsig.verify_request("GET", "https://example.com/", tampered, directory(), at=at)


def test_legacy_vector_expires_after_an_hour():
    headers = {
        "Signature-Agent": '"https://signature-agent.test"',
        "Signature-Input": LEGACY_INPUT,
        "Signature": LEGACY_SIGNATURE,
    }
    with pytest.raises(httpsig.SignatureError, match="expired"):
        httpsig.verify_request("GET", "https://example.com/", headers, directory(), at=1735693200 + 60)


def test_draft_dictionary_vector_with_the_library():
    from http_message_signatures import HTTPMessageVerifier, MappingKeyResolver, algorithms
    from requests import Request

    message = Request(
        "GET",
        "https://example.com/",
        headers={
            "Signature-Agent": 'agent2="https://signature-agent.test"',
            "Signature-Input": DICT_INPUT,
            "Signature": DICT_SIGNATURE,
        },
    ).prepare()
    resolver = MappingKeyResolver(public_keys={RFC_KEY_THUMBPRINT: rfc_key().public_key()}, private_keys={})
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=resolver)
    (result,) = verifier.verify(message, max_age=None, expect_tag="web-bot-auth")
    assert result.parameters["keyid"] == RFC_KEY_THUMBPRINT


def test_draft_directory_response_vector():
    from crawler import keydir

    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(DIRECTORY_BODY).digest()).decode() + ":"
    assert digest == DIRECTORY_DIGEST
    headers = keydir.sign_directory(
        DIRECTORY_BODY, "signature-agent.test", [rfc_key()], created=1735689600, expires=4889289600, labels=["binding"]
    )
    assert headers["Content-Digest"] == DIRECTORY_DIGEST
    assert headers["Signature-Input"] == DIRECTORY_INPUT
    assert headers["Signature"] == DIRECTORY_SIGNATURE
    assert headers["Content-Type"] == httpsig.DIRECTORY_MEDIA_TYPE
    keydir.verify_directory(DIRECTORY_BODY, headers, "signature-agent.test", at=1735689700)
    with pytest.raises(httpsig.SignatureError):
        keydir.verify_directory(DIRECTORY_BODY, headers, "elsewhere.test", at=1735689700)
    with pytest.raises(httpsig.SignatureError):
        keydir.verify_directory(DIRECTORY_BODY.replace(b"sig", b"enc"), headers, "signature-agent.test", at=1735689700)


def test_our_signer_verifies_with_the_library():
    from http_message_signatures import HTTPMessageVerifier, MappingKeyResolver, algorithms
    from requests import Request

    key = rfc_key()
    signer = httpsig.Signer(key, "https://crawler.example", lifetime=60)
    url = "https://Example.COM:443/a%20b/c;p?q=1"
    headers = signer.sign("GET", url)
    message = Request("GET", url, headers=headers).prepare()
    resolver = MappingKeyResolver(public_keys={signer.keyid: key.public_key()}, private_keys={})
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=resolver)
    (result,) = verifier.verify(
        message,
        max_age=datetime.timedelta(seconds=120),
        expect_tag="web-bot-auth",
        require_components=("@authority", '"signature-agent";key="sig1"'),
    )
    assert result.parameters["expires"] - result.parameters["created"] == 60
    assert headers["Signature-Agent"] == 'sig1="https://crawler.example"'
