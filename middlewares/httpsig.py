"""RFC 9421 HTTP Message Signatures, the part Web Bot Auth uses: Ed25519 signatures over a few derived components
and one dictionary member, their keys as JWKs named by RFC 7638 thumbprints, and verification of a captured request
against a key directory.

The profile is draft-meunier-webbotauth-httpsig-protocol (the Web Bot Auth working group's protocol, which now also
defines the key directory): a signed request carries ``Signature-Agent`` (a dictionary whose member, keyed by the
signature's label, names the https origin serving ``/.well-known/http-message-signatures-directory``), and a
signature covering at least ``@authority`` and that member, with ``created``, ``expires``, ``keyid`` (the key's JWK
thumbprint) and ``tag="web-bot-auth"``. We also cover ``@method`` and ``@path``, which the draft recommends so that a
captured signature cannot be replayed against other resources of the site.

Why not sign with the ``http-message-signatures`` library: it is correct for this profile (the tests check it
against the same vectors and use it as the independent verifier), but it builds a message view and parses structured
fields on every call; a crawler signs every request, and the fixed parts of our signature base are serialized once
(bench/bench_signing.py measures both).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import http_sf
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_sf.item import ser_item
from http_sf.list import ser_list

ALG = "ed25519"
TAG = "web-bot-auth"
DIRECTORY_TAG = "http-message-signatures-directory"
DIRECTORY_MEDIA_TYPE = "application/http-message-signatures-directory+json"
WELL_KNOWN = "/.well-known/http-message-signatures-directory"
LABEL = "sig1"
MAX_LIFETIME = 24 * 3600  # the draft: expiry RECOMMENDED to be no more than 24 hours
DEFAULT_PORTS = {"http": "80", "https": "443"}


class SignatureError(ValueError):
    """A key, a signature or a directory that cannot be used; the message says why, in one line."""


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2), the encoding of JWK members and key ids."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url, padded or not."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw_public(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key, as a JWK's ``x`` carries them."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of an OKP key (RFC 8037 Appendix A.3): the required members only, in
    lexicographic order, no whitespace. The draft makes it the ``keyid`` and the directory's ``kid``."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not isinstance(jwk.get("x"), str):
        raise SignatureError("not an Ed25519 JWK (kty OKP, crv Ed25519, x)")
    canonical = json.dumps({"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk(key: Ed25519PublicKey | Ed25519PrivateKey) -> dict[str, Any]:
    """The directory entry of a key: its public part, ``kid`` its thumbprint, for signing."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    jwk: dict[str, Any] = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw_public(public))}
    jwk["kid"] = jwk_thumbprint(jwk)
    jwk["use"] = "sig"
    return jwk


def public_key_of(jwk: Mapping[str, Any]) -> Ed25519PublicKey:
    """The public key of an Ed25519 JWK, after checking its shape; SignatureError for anything else."""
    jwk_thumbprint(jwk)  # checks the shape
    try:
        raw = b64url_decode(str(jwk["x"]))
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise SignatureError("JWK x is not a 32-byte base64url Ed25519 public key") from None


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file (``openssl genpkey -algorithm ed25519``) or a JWK with ``d``."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SignatureError(f"cannot read {path}: {exc.strerror or exc}") from None
    if data.lstrip().startswith(b"{"):
        try:
            jwk = json.loads(data)
            public_key_of(jwk)
            key = Ed25519PrivateKey.from_private_bytes(b64url_decode(str(jwk["d"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise SignatureError(f"{path}: not an Ed25519 private JWK ({exc})") from None
        if b64url(raw_public(key.public_key())) != jwk["x"]:
            raise SignatureError(f"{path}: the JWK's d and x are not one key pair")
        return key
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"{path}: not an unencrypted PEM private key ({str(exc).splitlines()[0]})") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SignatureError(f"{path}: a {type(loaded).__name__} key; Web Bot Auth signing here uses Ed25519")
    return loaded


def private_pem(key: Ed25519PrivateKey) -> bytes:
    """The private key as unencrypted PKCS#8 PEM, which :func:`load_private_key` reads back; keep the file private."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def sf_string(value: str) -> str:
    """RFC 8941 sf-string: printable ASCII, with backslash and double quote escaped."""
    if any(not 0x20 <= ord(c) <= 0x7E for c in value):
        raise SignatureError(f"{value!r} cannot be a structured-field string (printable ASCII only)")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def inner_list(components: Sequence[str], params: Iterable[tuple[str, int | str]]) -> str:
    """``@signature-params``: the serialized component identifiers and parameters (RFC 9421 §2.3)."""
    out = "(" + " ".join(components) + ")"
    for name, value in params:
        out += f";{name}={value}" if isinstance(value, int) else f";{name}={sf_string(value)}"
    return out


def signature_base(lines: Iterable[tuple[str, str]], params: str) -> bytes:
    """RFC 9421 §2.5: one ``identifier: value`` line per covered component, then ``@signature-params``."""
    text = "".join(f"{cid}: {value}\n" for cid, value in lines)
    return (text + f'"@signature-params": {params}').encode("ascii")


def authority(url: str | SplitResult, host: str | None = None) -> str:
    """RFC 9421 §2.2.3: the target's authority, lower-cased, without userinfo and without the scheme's default port
    (what the Host header says, when the request sets one)."""
    parts = urlsplit(url) if isinstance(url, str) else url
    value = (host or parts.netloc.rpartition("@")[2]).lower()
    default = DEFAULT_PORTS.get(parts.scheme.lower())
    if default and value.endswith(":" + default):
        value = value[: -len(default) - 1]
    return value


@lru_cache(maxsize=4096)
def authority_of(scheme: str, netloc: str, host: str | None = None) -> str:
    """:func:`authority` from a parsed URL's scheme and netloc, cached: a crawl sends many requests to each
    authority, and the download handler derives it for every one."""
    return authority(SplitResult(scheme, netloc, "", "", ""), host)


def target_path(url: str | SplitResult) -> str:
    """RFC 9421 §2.2.6: the absolute path as sent, ``/`` when empty."""
    return (urlsplit(url) if isinstance(url, str) else url).path or "/"


def check_agent_url(url: str) -> str:
    """A Signature-Agent origin (the draft's default ``directory`` type): an https origin, no path; http only on a
    loopback host, for tests and local fixtures."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    loopback = host in ("127.0.0.1", "::1", "localhost")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise SignatureError(f"the Signature-Agent must be an https:// origin, not {url!r}")
    if not host or parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise SignatureError(f"the Signature-Agent must be an origin like https://crawler.example.com, not {url!r}")
    return f"{parts.scheme}://{parts.netloc.lower()}"


@dataclass
class Signer:
    """Signs requests as Web Bot Auth asks, fast: everything but the times, nonce, method, authority and path is
    serialized once."""

    key: Ed25519PrivateKey
    agent: str  # the Signature-Agent origin
    lifetime: int = 300  # seconds between created and expires
    label: str = LABEL
    nonce: bool = True  # a fresh nonce per signature lets a site detect replays (RFC 9421 §7.2.2)
    keyid: str = field(init=False)

    def __post_init__(self) -> None:
        self.agent = check_agent_url(self.agent)
        if not 1 <= self.lifetime <= MAX_LIFETIME:
            raise SignatureError(f"signature lifetime must be 1 to {MAX_LIFETIME} seconds, not {self.lifetime}")
        self.keyid = jwk_thumbprint(public_jwk(self.key))
        member = sf_string(self.agent)
        self.agent_header = f"{self.label}={member}"
        agent_id = f'"signature-agent";key="{self.label}"'
        # The constant parts of @signature-params around created, expires and the nonce, and the Signature-Agent
        # line of the signature base, serialized once: per request only the variable parts are formatted.
        components = f'("@method" "@authority" "@path" {agent_id})'
        keyid = f';keyid="{self.keyid}";alg="{ALG}"'
        self._params_head = f"{components};created="
        self._params_mid = f'{keyid};nonce="' if self.nonce else keyid
        self._params_tail = f'";tag="{TAG}"' if self.nonce else f';tag="{TAG}"'
        self._base_tail = f'\n{agent_id}: {member}\n"@signature-params": '
        self._input_head = f"{self.label}="
        self._signature_head = f"{self.label}=:".encode("ascii")
        self._sign = self.key.sign

    def sign(self, method: str, url: str, host: str | None = None, now: float | None = None) -> dict[str, str]:
        """The three header fields for one request: ``Signature-Agent``, ``Signature-Input``, ``Signature``."""
        parts = urlsplit(url)
        signature_input, signature = self.sign_target(method, authority(parts, host), target_path(parts), now)
        return {
            "Signature-Agent": self.agent_header,
            "Signature-Input": signature_input.decode("ascii"),
            "Signature": signature.decode("ascii"),
        }

    def sign_target(self, method: str, authority: str, path: str, now: float | None = None) -> tuple[bytes, bytes]:
        """The ``Signature-Input`` and ``Signature`` values, as bytes, for a request whose ``@authority`` and
        ``@path`` are already derived (:func:`authority`, :func:`target_path`): what :meth:`sign` and the download
        handler both call. A fresh ``created``, ``expires`` and nonce every call; UnicodeEncodeError for a
        component that is not ASCII."""
        created = int(time.time() if now is None else now)
        params = f"{self._params_head}{created};expires={created + self.lifetime}{self._params_mid}"
        if self.nonce:  # unpadded base64url of 32 random bytes: 43 characters
            params += base64.urlsafe_b64encode(os.urandom(32))[:43].decode("ascii")
        params += self._params_tail
        base = f'"@method": {method}\n"@authority": {authority}\n"@path": {path}{self._base_tail}{params}'
        signature = binascii.b2a_base64(self._sign(base.encode("ascii")), newline=False)
        return (self._input_head + params).encode("ascii"), self._signature_head + signature + b":"


# -- verification ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    """What a valid Web Bot Auth signature established."""

    label: str
    keyid: str
    agent: str | None  # the Signature-Agent member the signature covers
    created: int
    expires: int
    covered: tuple[str, ...]


def directory_keys(directory: Mapping[str, Any] | bytes | str) -> dict[str, dict[str, Any]]:
    """Thumbprint -> JWK of a key directory (a JWKS). The thumbprint is computed from the key material: a ``kid``
    that disagrees with it makes the directory malformed (the draft: kid MUST be the thumbprint)."""
    if isinstance(directory, (bytes, str)):
        try:
            directory = json.loads(directory)
        except ValueError as exc:
            raise SignatureError(f"the key directory is not JSON: {exc}") from None
    keys = directory.get("keys") if isinstance(directory, Mapping) else None
    if not isinstance(keys, list):
        raise SignatureError('the key directory is not a JWKS: no "keys" list')
    found: dict[str, dict[str, Any]] = {}
    for jwk in keys:
        if not isinstance(jwk, Mapping) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            continue  # other algorithms: not ours to verify with
        thumbprint = jwk_thumbprint(jwk)
        if "kid" in jwk and jwk["kid"] != thumbprint:
            raise SignatureError(f"the key directory labels key {thumbprint} with kid {jwk['kid']!r}")
        found[thumbprint] = dict(jwk)
    return found


class Headers:
    """Case-insensitive header fields, repeated lines combined with ", " (RFC 9421 §2.1)."""

    def __init__(self, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        self.values: dict[str, list[str]] = {}
        for name, value in headers.items() if isinstance(headers, Mapping) else headers:
            # RFC 9421 §2.1: leading and trailing whitespace removed, obsolete line folding replaced by a space
            value = " ".join(part.strip() for part in value.replace("\r\n", "\n").split("\n"))
            self.values.setdefault(name.strip().lower(), []).append(value.strip())

    def get(self, name: str) -> str | None:
        """All values of a field joined with ``, ``, as RFC 9421 §2.1 signs them; None when the field is absent."""
        lines = self.values.get(name)
        return None if lines is None else ", ".join(lines)


def parse_dictionary(headers: Headers, name: str) -> dict[str, Any]:
    """A header parsed as an RFC 8941 dictionary (``Signature``, ``Signature-Input``); SignatureError when it is missing
    or malformed."""
    value = headers.get(name)
    if value is None:
        raise SignatureError(f"no {name} header")
    try:
        parsed = http_sf.parse(value.encode("ascii"), tltype="dictionary")
    except (http_sf.StructuredFieldError, UnicodeEncodeError, ValueError) as exc:
        raise SignatureError(f"{name} is not a structured-field dictionary: {exc}") from None
    if not isinstance(parsed, dict):
        raise SignatureError(f"{name} is not a structured-field dictionary")
    return parsed


def _component(name: str, params: Mapping[str, Any], method: str, url: str, headers: Headers) -> str:
    if set(params) - {"key"}:
        raise SignatureError(f"component {name} with parameters {sorted(params)} is not supported here")
    if name == "@method":
        return method
    if name == "@authority":
        return authority(url, headers.get("host"))
    if name == "@path":
        return target_path(url)
    if name == "@target-uri":
        parts = urlsplit(url)
        return f"{parts.scheme}://{authority(url, headers.get('host'))}{target_path(url)}" + (
            f"?{parts.query}" if parts.query else ""
        )
    if name == "@scheme":
        return urlsplit(url).scheme.lower()
    if name == "@query":
        return "?" + urlsplit(url).query
    if name == "@request-target":
        query = urlsplit(url).query
        return target_path(url) + (f"?{query}" if query else "")
    if name.startswith("@"):
        raise SignatureError(f"derived component {name} is not supported here")
    value = headers.get(name)
    if value is None:
        raise SignatureError(f"the signature covers {name}, which the request does not have")
    if "key" in params:
        member = parse_dictionary(headers, name).get(params["key"])
        if member is None:
            raise SignatureError(f"the signature covers {name} member {params['key']!r}, which is not there")
        return ser_list([member]) if isinstance(member[0], list) else ser_item(member)
    return value.strip()


def _agent_of(headers: Headers, label: str, covered: Sequence[tuple[str, Mapping[str, Any]]]) -> str | None:
    for name, params in covered:
        if name != "signature-agent":
            continue
        if "key" in params:
            member = parse_dictionary(headers, "signature-agent").get(params["key"])
            return str(member[0]) if member and isinstance(member[0], str) else None
        value = (headers.get("signature-agent") or "").strip()  # the legacy sf-string form (the draft: MAY accept)
        return value[1:-1] if value.startswith('"') and value.endswith('"') else None
    return None


def verify_request(
    method: str,
    url: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    keys: Mapping[str, Mapping[str, Any]],
    at: float | None = None,
    skew: int = 5,
    tag: str = TAG,
) -> Verified:
    """Check the request's Web Bot Auth signature against ``keys`` (``directory_keys``); SignatureError otherwise.

    ``at`` is when the request was made (default now): a rights holder checking their logs days later asks whether
    the signature was valid when the request arrived. The directory's ``nbf``/``exp`` of the key, when it lists
    them, must cover the signature's ``created`` (a retired key keeps verifying what it signed while it was used).
    """
    now = time.time() if at is None else at
    fields = Headers(headers)
    inputs = parse_dictionary(fields, "signature-input")
    signatures = parse_dictionary(fields, "signature")
    candidates = [label for label, (_, params) in inputs.items() if params.get("tag") == tag]
    if not candidates:
        raise SignatureError(f'no signature with tag="{tag}"')
    problems = []
    for label in candidates:
        components, params = inputs[label]
        try:
            return _verify_one(label, components, params, signatures, method, url, fields, keys, now, skew)
        except SignatureError as exc:
            problems.append(f"{label}: {exc}")
    raise SignatureError("; ".join(problems))


def _verify_one(
    label: str,
    components: Any,
    params: Mapping[str, Any],
    signatures: Mapping[str, Any],
    method: str,
    url: str,
    fields: Headers,
    keys: Mapping[str, Mapping[str, Any]],
    now: float,
    skew: int,
) -> Verified:
    if not isinstance(components, list):
        raise SignatureError("Signature-Input member is not an inner list")
    covered = [(str(name), dict(p)) for name, p in components]
    names = [name for name, _ in covered]
    if "@authority" not in names and "@target-uri" not in names:
        raise SignatureError("the signature covers neither @authority nor @target-uri")
    if "signature-agent" not in names:
        raise SignatureError("the signature does not cover Signature-Agent")
    created, expires, keyid = params.get("created"), params.get("expires"), params.get("keyid")
    if not isinstance(created, int) or not isinstance(expires, int) or not isinstance(keyid, str):
        raise SignatureError("created, expires and keyid are all required")
    if params.get("alg", ALG) != ALG:
        raise SignatureError(f"alg {params['alg']!r} is not ed25519")
    if created > now + skew:
        raise SignatureError(f"created {created} is in the future")
    if expires < now - skew:
        raise SignatureError(f"the signature expired at {expires} ({int(now - expires)} s before {int(now)})")
    jwk = keys.get(keyid)
    if jwk is None:
        raise SignatureError(f"key {keyid} is not in the key directory")
    nbf, exp = jwk.get("nbf"), jwk.get("exp")
    if isinstance(nbf, (int, float)) and created < nbf - skew:
        raise SignatureError(f"key {keyid} was not valid yet when the signature was created")
    if isinstance(exp, (int, float)) and created > exp + skew:
        raise SignatureError(f"key {keyid} had expired when the signature was created")
    member = signatures.get(label)
    if member is None or not isinstance(member[0], bytes):
        raise SignatureError("no Signature member of that label")
    lines = []
    for (name, cparams), (raw_name, raw_params) in zip(covered, components, strict=True):
        lines.append((ser_item((raw_name, raw_params)), _component(name, cparams, method, url, fields)))
    base = signature_base(lines, ser_list([(components, dict(params))]))
    try:
        public_key_of(jwk).verify(member[0], base)
    except InvalidSignature:
        raise SignatureError("the signature does not match the request (a covered part was changed)") from None
    return Verified(label, keyid, _agent_of(fields, label, covered), created, expires, tuple(names))
