"""Evidence helpers: content addresses for evidence bodies, and RFC 3161 time anchoring of checkpoints.

Evidence bodies (the robots.txt a crawler obeyed, a header block) are stored once, keyed by SHA-256, outside the
leaves: the leaf carries only the hash, so many records citing one robots.txt cost one blob, and the bytes can be
handed to a rights holder who re-hashes them.

Anchoring (REGISTRY.md §6.6): a TSA's token over SHA-256(signed checkpoint note) proves the checkpoint — and so
every record under it — existed no later than the TSA's genTime. It is optional and needs ``rfc3161-client``
(extra ``[anchor]``) and network access to a TSA; verifying the token against TSA roots is the verifier's job.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request

from optout_registry.errors import RegistryError

MAX_TSR_BYTES = 1 << 20


def sha256_hex(body: bytes) -> str:
    """The content address of an evidence body, as records carry it (lowercase hex)."""
    return hashlib.sha256(body).hexdigest()


def request_timestamp(tsa_url: str, data: bytes, *, timeout: float = 10.0) -> tuple[bytes, str]:
    """Ask an RFC 3161 TSA to timestamp SHA-256(data). Returns (DER TimeStampResp, genTime as RFC 3339).

    The response is checked to be granted and to cover exactly our message imprint and nonce, so a confused or
    replaying TSA is caught here rather than by a rights holder years later.
    """
    try:
        from rfc3161_client import HashAlgorithm, PKIStatus, TimestampRequestBuilder, decode_timestamp_response
    except ImportError:
        raise RegistryError("RFC 3161 anchoring needs rfc3161-client: pip install 'optout-toolkit[anchor]'") from None
    if not tsa_url.startswith(("http://", "https://")):
        raise RegistryError(f"TSA URL must be http(s): {tsa_url!r}")
    req = TimestampRequestBuilder().data(data).hash_algorithm(HashAlgorithm.SHA256).nonce(nonce=True).build()
    http = urllib.request.Request(
        tsa_url,
        data=req.as_bytes(),
        headers={"Content-Type": "application/timestamp-query", "Accept": "application/timestamp-reply"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(http, timeout=timeout) as resp:  # http(s) only, checked above
            body = resp.read(MAX_TSR_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise RegistryError(f"TSA {tsa_url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise RegistryError(f"cannot reach TSA {tsa_url}: {getattr(exc, 'reason', exc)}") from None
    if len(body) > MAX_TSR_BYTES:
        raise RegistryError(f"TSA {tsa_url} sent more than {MAX_TSR_BYTES} bytes")
    try:
        tsr = decode_timestamp_response(body)
    except Exception as exc:  # the Rust decoder raises several types for malformed DER
        raise RegistryError(f"TSA {tsa_url} did not send a valid RFC 3161 response: {exc}") from None
    if tsr.status not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        raise RegistryError(f"TSA {tsa_url} refused the request (status {tsr.status})")
    info = tsr.tst_info
    if info.message_imprint.message != hashlib.sha256(data).digest():
        raise RegistryError(f"TSA {tsa_url} timestamped a different message")
    if req.nonce is not None and info.nonce != req.nonce:
        raise RegistryError(f"TSA {tsa_url} answered with a different nonce")
    gen_time = info.gen_time
    return tsr.as_bytes(), gen_time.isoformat().replace("+00:00", "Z")
