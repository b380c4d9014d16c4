"""The crawler's Web Bot Auth key directory, its rotation, and ``optout verify-request``.

``optout disclose`` publishes the public keys the crawler signs with as a JWKS at
``/.well-known/http-message-signatures-directory`` of the Signature-Agent origin (media type
``application/http-message-signatures-directory+json``), with the response signature the draft asks of a directory
server: one per key we hold, covering ``"@authority";req`` and ``content-digest`` with ``created``, ``expires``,
``keyid`` and ``tag="http-message-signatures-directory"``. A static file cannot carry headers, so they are written
next to it (``...directory.headers``) for the web server to send.

Rotation follows the draft's "Key Rotation": a key given to ``optout disclose`` is listed (``nbf`` = when it was
first listed); a listed key that is no longer given is retired, and stays listed with ``exp`` = retirement plus the
longest signature lifetime, so every signature it made stays verifiable until that signature expires; the next
``optout disclose`` after that drops it. ``keys.json`` in the disclosure folder remembers what was listed when.

``optout verify-request`` is for a rights holder: given a request captured in their logs (the raw request head, or
JSON) and our directory (a file or its URL), it says whether the request was signed by one of the listed keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from middlewares import httpsig
from middlewares.httpsig import SignatureError

DIRECTORY_FILE = ".well-known/http-message-signatures-directory"
HEADERS_FILE = DIRECTORY_FILE + ".headers"
STATE_FILE = "keys.json"
CARD_FILE = "signature-agent-card.json"
DIRECTORY_SIGNATURE_LIFETIME = 7 * 24 * 3600  # re-run optout disclose within a week: the proof then expires
CACHE_SECONDS = 3600


def content_digest(body: bytes) -> str:
    """RFC 9530 Content-Digest, sha-256."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


def _directory_params(keyid: str, created: int, expires: int) -> str:
    return httpsig.inner_list(
        ['"@authority";req', '"content-digest"'],
        [("created", created), ("expires", expires), ("keyid", keyid), ("tag", httpsig.DIRECTORY_TAG)],
    )


def sign_directory(
    body: bytes,
    authority: str,
    keys: Sequence[Ed25519PrivateKey],
    created: int | None = None,
    expires: int | None = None,
    labels: Sequence[str] | None = None,
) -> dict[str, str]:
    """The response header fields that serve ``body`` as a signed directory at ``authority``: one signature per
    key (the draft's possession proof, "Validating the Domain Binding")."""
    created = int(time.time()) if created is None else created
    expires = created + DIRECTORY_SIGNATURE_LIFETIME if expires is None else expires
    digest = content_digest(body)
    labels = list(labels or [f"binding{i}" for i in range(len(keys))])
    inputs, signatures = [], []
    for label, key in zip(labels, keys, strict=True):
        params = _directory_params(httpsig.public_jwk(key)["kid"], created, expires)
        base = httpsig.signature_base([('"@authority";req', authority), ('"content-digest"', digest)], params)
        inputs.append(f"{label}={params}")
        signatures.append(f"{label}=:{base64.b64encode(key.sign(base)).decode('ascii')}:")
    headers = {
        "Content-Type": httpsig.DIRECTORY_MEDIA_TYPE,
        "Cache-Control": f"max-age={CACHE_SECONDS}",
        "Content-Digest": digest,
    }
    if inputs:  # none when every listed key is retired and we hold no current one
        headers["Signature-Input"] = ", ".join(inputs)
        headers["Signature"] = ", ".join(signatures)
    return headers


def verify_directory(
    body: bytes, headers: Mapping[str, str], authority: str, at: float | None = None, skew: int = 5
) -> list[str]:
    """Check a directory response's possession proofs; the key ids proven. SignatureError when the digest does not
    match the body, a proof fails, or there is none."""
    fields = httpsig.Headers(headers)
    if fields.get("content-digest") != content_digest(body):
        raise SignatureError("Content-Digest does not match the directory body")
    keys = httpsig.directory_keys(body)
    now = time.time() if at is None else at
    inputs = httpsig.parse_dictionary(fields, "signature-input")
    signatures = httpsig.parse_dictionary(fields, "signature")
    proven = []
    for label, (components, params) in inputs.items():
        if params.get("tag") != httpsig.DIRECTORY_TAG:
            continue
        keyid, created, expires = params.get("keyid"), params.get("created"), params.get("expires")
        names = [(str(n), dict(p)) for n, p in components] if isinstance(components, list) else []
        if names != [("@authority", {"req": True}), ("content-digest", {})]:
            raise SignatureError(f"{label}: a directory signature covers exactly @authority;req and content-digest")
        if not isinstance(created, int) or not isinstance(expires, int) or keyid not in keys:
            raise SignatureError(f"{label}: needs created, expires and the keyid of a listed key")
        if created > now + skew or expires < now - skew:
            raise SignatureError(f"{label}: not valid at {int(now)} (created {created}, expires {expires})")
        signature = signatures.get(label)
        if signature is None or not isinstance(signature[0], bytes):
            raise SignatureError(f"{label}: no signature")
        base = httpsig.signature_base(
            [('"@authority";req', authority), ('"content-digest"', fields.get("content-digest") or "")],
            _directory_params(keyid, created, expires),
        )
        try:
            httpsig.public_key_of(keys[keyid]).verify(signature[0], base)
        except InvalidSignature:
            raise SignatureError(f"{label}: the directory signature does not match (another authority?)") from None
        proven.append(keyid)
    if not proven:
        raise SignatureError("the directory response carries no directory signature")
    return proven


# -- the listed keys and their rotation ----------------------------------------------------------------------------


def update_keys(
    listed: list[dict[str, Any]], current: Sequence[Ed25519PrivateKey], now: int, lifetime: int
) -> list[dict[str, Any]]:
    """The keys to list now: every current key, and each retired one until its last signature has expired."""
    by_kid = {entry["jwk"]["kid"]: dict(entry) for entry in listed}
    current_kids = []
    for key in current:
        jwk = httpsig.public_jwk(key)
        current_kids.append(jwk["kid"])
        entry = by_kid.get(jwk["kid"])
        if entry is None:
            by_kid[jwk["kid"]] = {"jwk": jwk, "listed": now, "retired": None, "exp": None}
        elif entry.get("retired") is not None:  # taken back into use
            entry.update(retired=None, exp=None)
    for kid, entry in by_kid.items():
        if kid not in current_kids and entry.get("retired") is None:
            entry.update(retired=now, exp=now + lifetime)
    return [e for e in by_kid.values() if e.get("exp") is None or e["exp"] > now]


def directory_body(listed: Sequence[Mapping[str, Any]]) -> bytes:
    keys = []
    for entry in listed:
        jwk = dict(entry["jwk"])
        jwk["nbf"] = entry["listed"]
        if entry.get("exp") is not None:
            jwk["exp"] = entry["exp"]
        keys.append(jwk)
    return json.dumps({"keys": keys}, separators=(",", ":")).encode()


def signature_agent_card(agent: str, agents: Sequence[str], user_agent: str, purposes: Sequence[str]) -> dict[str, Any]:
    """The Signature Agent Card of draft-meunier-webbotauth-registry: where the purpose of a signed crawler is
    declared in machine-readable form (its ``purpose`` member; the draft suggests the AIPREF vocabulary)."""
    return {
        "client_uri": agent,
        "jwks_uri": agent + httpsig.WELL_KNOWN,
        "web_bot_auth": {
            "expected-user-agent": user_agent,
            "rfc9309-product-token": agents[0] if agents else "",
            "rfc9309-compliance": True,
            "trigger": "crawler",
            "purpose": purposes[0] if len(purposes) == 1 else list(purposes),
        },
    }


def write_directory(
    folder: Path,
    agent: str,
    keys: Sequence[Ed25519PrivateKey],
    lifetime: int,
    now: int | None = None,
) -> list[dict[str, Any]]:
    """Update keys.json, write the directory and the headers to serve it with; the listed entries."""
    from crawler.outfiles import write_atomic

    now = int(time.time()) if now is None else now
    state_path = folder / STATE_FILE
    try:
        listed = json.loads(state_path.read_text(encoding="utf-8"))["keys"]
        assert isinstance(listed, list)
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        listed = []
    listed = update_keys(listed, keys, now, lifetime)
    body = directory_body(listed)
    headers = sign_directory(body, httpsig.authority(agent), keys, created=now)
    (folder / DIRECTORY_FILE).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / DIRECTORY_FILE, body.decode("ascii"))  # JSON of ASCII: the digest's bytes exactly
    write_atomic(folder / HEADERS_FILE, "".join(f"{k}: {v}\n" for k, v in headers.items()))
    write_atomic(state_path, json.dumps({"keys": listed}, indent=1) + "\n")
    return listed


# -- optout verify-request ----------------------------------------------------------------------------------------


def parse_captured(text: str, scheme: str = "https") -> tuple[str, str, list[tuple[str, str]]]:
    """(method, url, headers) of a captured request: the raw HTTP/1.1 head (request line, header lines) or JSON
    ``{"method": ..., "url": ..., "headers": {...} or [[name, value], ...]}``."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
            given = data["headers"]
            pairs = list(given.items()) if isinstance(given, dict) else [(str(n), str(v)) for n, v in given]
            return str(data["method"]).upper(), str(data["url"]), [(str(n), str(v)) for n, v in pairs]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SignatureError(f"not a captured request in JSON ({exc})") from None
    lines = stripped.replace("\r\n", "\n").split("\n")
    parts = lines[0].split()
    if len(parts) < 2:
        raise SignatureError(f"the first line is not a request line: {lines[0][:80]!r}")
    method, target = parts[0].upper(), parts[1]
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line.strip():
            break  # the body follows
        if line[0] in " \t" and headers:  # obsolete line folding
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise SignatureError(f"not a header line: {line[:80]!r}")
        headers.append((name.strip(), value.strip()))
    if target.startswith(("http://", "https://")):
        return method, target, headers
    host = next((v for n, v in headers if n.lower() == "host"), None)
    if not host:
        raise SignatureError("the request has no Host header and no absolute target")
    return method, f"{scheme}://{host}{target}", headers


def load_directory(where: str, timeout: float = 10.0) -> tuple[dict[str, dict[str, Any]], str | None]:
    """The keys of a directory file or URL, and the origin it came from (None for a file)."""
    if where.startswith(("http://", "https://")):
        import requests

        try:
            resp = requests.get(
                where, timeout=timeout, allow_redirects=False, headers={"Accept": httpsig.DIRECTORY_MEDIA_TYPE}
            )
        except requests.RequestException as exc:
            raise SignatureError(f"cannot fetch {where}: {exc}") from None
        if resp.status_code != 200:  # the draft: any other status is a discovery failure, no redirects
            raise SignatureError(f"{where} answered {resp.status_code}, not 200")
        parts = urlsplit(where)
        if "Signature-Input" in resp.headers:  # the directory's possession proofs: checked when it has them
            proven = verify_directory(resp.content, dict(resp.headers), httpsig.authority(where))
            print(f"directory {where}: signed by {len(proven)} of its keys", file=sys.stderr)
        return httpsig.directory_keys(resp.content), f"{parts.scheme}://{parts.netloc}"
    try:
        return httpsig.directory_keys(Path(where).read_bytes()), None
    except OSError as exc:
        raise SignatureError(f"cannot read {where}: {exc.strerror or exc}") from None


def parse_time(text: str | None) -> float | None:
    """``--at``: Unix seconds or an ISO 8601 time (UTC unless it says otherwise)."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SignatureError(f"--at {text!r} is neither Unix seconds nor an ISO 8601 time") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def run_verify_request(args: Any) -> int:
    """0 verified, 1 not verified (with the reason); usage errors raise SignatureError."""
    source = args.request
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise SignatureError(f"cannot read {source}: {exc.strerror or exc}") from None
    method, url, headers = parse_captured(text, scheme=args.scheme)
    keys, origin = load_directory(args.directory)
    at = parse_time(args.at)
    try:
        verified = httpsig.verify_request(method, url, headers, keys, at=at)
    except SignatureError as exc:
        print(f"NOT VERIFIED {method} {url}: {exc}")
        return 1
    when = datetime.fromtimestamp(verified.created, timezone.utc).isoformat(timespec="seconds")
    valid = verified.expires - verified.created
    print(
        f"VERIFIED {method} {url}: signed by key {verified.keyid} at {when} (valid {valid} s), "
        f"Signature-Agent {verified.agent}, covering {' '.join(verified.covered)}"
    )
    if origin and verified.agent and verified.agent.rstrip("/") != origin:
        print(f"note: the signature names {verified.agent} but the keys came from {origin}", file=sys.stderr)
    return 0
