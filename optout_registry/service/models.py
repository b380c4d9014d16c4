"""The service's request and response models: they are the OpenAPI documentation as much as the validation.

Every model has a docstring and every field a ``description``, so ``/openapi.json`` explains each property to
whoever writes a client against it (tests/test_service_openapi.py keeps it that way). The request models refuse
unknown keys and text a store cannot hold; the response models describe what the routers send (the hot routes
write their JSON directly, in exactly these shapes).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from optout_registry.record import MAX_INT

MAX_RECORD = MAX_INT
"""Record numbers inside a complaint: the complaint is hashed as RFC 8785 JSON, which holds integers up to 2**53-1
only (the registry's own records obey the same bound), so a larger number cannot be stored and is refused."""
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""What a challenge id looks like (URL-safe base64); the verify secret follows the same alphabet, up to 128."""

Access = Literal["anonymous", "holder", "admin"]
Method = Literal["http", "dns"]

_ACCESS = "who the bearer token says the caller is: anonymous (no token), holder (of one domain) or admin"
_SITE = "the registrable domain in IDNA A-label form (the site key records are filed under)"
_SIZE = "size of the latest signed checkpoint: everything served is proved against it"
_UPTO = "how far the service's index reaches; records past it are not listed yet"
_ISO = "UTC time, RFC 3339 (YYYY-MM-DDTHH:MM:SSZ)"


class Error(BaseModel):
    """Every refusal: one line saying what was wrong (the HTTP status says which kind)."""

    detail: str = Field(description="what was wrong, in one line")


class Discovery(BaseModel):
    """``/.well-known/optout-registry``: where this registry's key, checkpoint, API and ownership proofs live."""

    origin: str = Field(description="the log's origin line, as in every checkpoint it signs")
    vkey: str | None = Field(description="the C2SP verifier key checkpoints are signed with (null until one is)")
    checkpoint_url: str = Field(description="path of the latest signed checkpoint (text)")
    vkey_url: str = Field(description="path of the verifier key (text)")
    api: str = Field(description="path prefix of the JSON API")
    openapi: str = Field(description="path of this OpenAPI document")
    ownership: dict[str, str] = Field(
        description="how to publish an ownership token, by method: the HTTP path or the DNS TXT record"
    )
    operator: str | None = Field(description="who runs this registry, as the operator set it")
    contact: str | None = Field(description="how to reach the operator, as the operator set it")
    protocols: list[str] = Field(description="the protocol ids records are shown by (the crawler's check contract)")
    mechanisms: dict[str, list[str]] = Field(
        description="[protocol id, where] for each mechanism name records are written with (records keep their "
        "mechanism as logged; people read the protocol id)"
    )


class CheckpointOut(BaseModel):
    """A signed checkpoint of the log: its size and root, and the signed note that commits to them."""

    origin: str = Field(description="the log's origin line")
    size: int = Field(description="number of records the checkpoint covers")
    root: str = Field(description="standard base64 of the RFC 6962 root")
    note: str = Field(description="the C2SP signed note, verbatim")
    vkey: str | None = Field(description="the verifier key to check the note with")


class ConsistencyOut(BaseModel):
    """Proof that the log at ``second`` records extends the log at ``first`` without rewriting it."""

    first: int = Field(description="the older tree size")
    second: int = Field(description="the newer tree size (the latest checkpoint unless asked otherwise)")
    proof: list[str] = Field(description="RFC 6962 consistency proof, base64 hashes")
    second_checkpoint: str | None = Field(description="the signed checkpoint at `second`, when one was signed")


class SiteSummary(BaseModel):
    """How many records a site has: public, so anyone can see whether a crawler logged anything about it."""

    site: str = Field(description=_SITE)
    records: int = Field(description="records filed under the site, up to `indexed_upto`")
    checkpoint_size: int = Field(description=_SIZE)
    indexed_upto: int = Field(description=_UPTO)
    access: Access = Field(description=_ACCESS)


class DayCount(BaseModel):
    """One day of a site's records, for the charts."""

    date: str = Field(description="the UTC day, YYYY-MM-DD")
    count: int = Field(description="records observed that day")
    by_mechanism: dict[str, int] = Field(description="by the records' own mechanism names")
    by_protocol: dict[str, int] = Field(description="by protocol id, the names the crawler's report and CLI use")


class SiteStats(BaseModel):
    """A holder's overview of their site's records: totals, first and last, and counts by kind and by day."""

    site: str = Field(description=_SITE)
    checkpoint_size: int = Field(description=_SIZE)
    records: int = Field(description="records filed under the site")
    first_observed: str | None = Field(description=f"observed_at of the earliest record: {_ISO} (null if none)")
    last_observed: str | None = Field(description=f"observed_at of the latest record: {_ISO} (null if none)")
    by_mechanism: dict[str, int] = Field(description="by the records' own mechanism names")
    by_protocol: dict[str, int] = Field(description="by protocol id, most records first")
    by_decision: dict[str, int] = Field(description="by what the crawler did (not_fetched, fetched_not_stored, ...)")
    by_day: list[DayCount] = Field(description="one entry per day with records, oldest first")


class RecordItem(BaseModel):
    """One record of a page, with its place in the log."""

    index: int = Field(description="the record's index in the log")
    record: dict[str, Any] = Field(description="the record as logged (REGISTRY.md record schema)")


class RecordsPage(BaseModel):
    """One page of a site's records, in log order (keyset paging on the index)."""

    site: str = Field(description=_SITE)
    checkpoint_size: int = Field(description=_SIZE)
    indexed_upto: int = Field(description=_UPTO)
    next_cursor: int | None = Field(description="pass as `cursor` for the next page; null on the last page")
    records: list[RecordItem] = Field(description="the page's records")


class RecordProof(BaseModel):
    """One record with everything needed to check offline that the log holds it: leaf, proof and checkpoint."""

    site: str = Field(description=_SITE)
    index: int = Field(description="the record's index in the log")
    leaf: str = Field(description="the exact leaf bytes (RFC 8785 JSON, UTF-8) that were hashed into the log")
    leaf_hash: str = Field(description="hex SHA-256(0x00 || leaf)")
    record: dict[str, Any] = Field(description="the leaf, parsed")
    checkpoint: CheckpointOut = Field(description="the signed checkpoint the proof is made against")
    inclusion_proof: list[str] = Field(description="RFC 6962 inclusion proof of the leaf, base64 hashes")
    tlog_proof: str = Field(description="C2SP tlog-proof v1 file for this record")
    evidence_url: str | None = Field(description="where the evidence body is served, when the operator kept one")


class ChallengeIn(BaseModel):
    """Ask to prove control of a domain: by a file on its web site (http) or a DNS TXT record (dns)."""

    model_config = ConfigDict(extra="forbid")
    domain: str = Field(min_length=1, max_length=253, description="the domain to prove control of")
    method: Method = Field(default="http", description="where the token will be published: http (a file) or dns (TXT)")


class ChallengeOut(BaseModel):
    """A new ownership challenge: publish ``token`` where it says, then verify with ``secret``."""

    challenge_id: str = Field(description="the challenge, to verify it")
    secret: str = Field(description="keep private; present it to verify. Never publish it.")
    token: str = Field(description="publish this (it is public by design)")
    domain: str = Field(description=_SITE)
    method: Method = Field(description="the method asked for")
    expires_at: str = Field(description=f"when the challenge can no longer be verified: {_ISO}")
    http_url: str = Field(description="for http: the URL that must answer with `http_body`")
    http_body: str = Field(description="for http: the body to serve there (the token)")
    dns_name: str = Field(description="for dns: the name of the TXT record")
    dns_value: str = Field(description="for dns: the TXT record's value (the token)")


class VerifyIn(BaseModel):
    """Claim a challenge once the token is published: the secret shows the claimant is who asked for it."""

    model_config = ConfigDict(extra="forbid")
    secret: str = Field(
        min_length=1,
        max_length=128,
        pattern=ID_PATTERN.replace("64", "128"),
        description="the challenge's secret, as ChallengeOut gave it",
    )


class GrantOut(BaseModel):
    """A bearer token for one domain, issued once its control was proven."""

    access_token: str = Field(description="send as `Authorization: Bearer <token>`")
    token_type: Literal["bearer"] = Field(default="bearer", description="always bearer")
    domain: str = Field(description="the only domain the token is for")
    expires_at: str = Field(description=f"when the token stops working: {_ISO}")
    proven_at: str = Field(description="where the token was found (the URL or the DNS name)")


class SessionOut(BaseModel):
    """Who the service takes the caller to be, from the bearer token sent."""

    access: Access = Field(description=_ACCESS)
    domain: str | None = Field(description="the domain a holder's token is for (null otherwise)")
    expires_at: str | None = Field(description=f"when a holder's token expires: {_ISO} (null otherwise)")


def plain_text(value: str, *, multiline: bool = False) -> str:
    """Refuse text a store cannot hold or a reader could be fooled by: lone surrogates, NUL and control chars."""
    for ch in value:
        o = ord(ch)
        if 0xD800 <= o <= 0xDFFF or o == 0 or (o < 32 and not (multiline and ch in "\n\r\t")) or o == 0x7F:
            raise ValueError("contains a control character or an unpaired surrogate")
    return value


class ComplaintIn(BaseModel):
    """A complaint about a domain's records, from anyone; marked as the holder's when sent with their token."""

    model_config = ConfigDict(extra="forbid")
    domain: str = Field(min_length=1, max_length=253, description="the domain the complaint is about")
    contact: str = Field(min_length=3, max_length=320, description="e-mail address or URL to answer to")
    name: str | None = Field(default=None, max_length=200, description="who is complaining (optional)")
    kind: Literal["objection", "question", "correction", "removal", "other"] = Field(
        default="objection", description="what the complaint asks for"
    )
    message: str = Field(min_length=1, max_length=10_000, description="the complaint, in the sender's words")
    records: list[Annotated[int, Field(ge=0, le=MAX_RECORD)]] = Field(
        default_factory=list, max_length=200, description="log indices of the records it is about (optional)"
    )

    @field_validator("contact", "name")
    @classmethod
    def _one_line(cls, v: str | None) -> str | None:
        return None if v is None else plain_text(v)

    @field_validator("message")
    @classmethod
    def _text(cls, v: str) -> str:
        return plain_text(v, multiline=True)


class ComplaintReceipt(BaseModel):
    """What the sender of a complaint keeps: its place in the complaints hash chain."""

    id: str = Field(description="the complaint's id")
    seq: int = Field(description="its number in the complaints log")
    received_at: str = Field(description="when the service received it (UTC, microseconds)")
    domain: str = Field(description=_SITE)
    verified_holder: bool = Field(description="sent with a token for this domain")
    hash: str = Field(description="link of the complaints hash chain: keep it as your receipt")
    prev_hash: str = Field(description="the previous link of the chain")


class ComplaintOut(BaseModel):
    """A complaint as logged, with its links in the hash chain."""

    seq: int = Field(description="its number in the complaints log")
    id: str = Field(description="the complaint's id")
    received_at: str = Field(description="when the service received it (UTC, microseconds)")
    domain: str = Field(description=_SITE)
    verified_holder: bool = Field(description="sent with a token for this domain")
    submission: dict[str, Any] = Field(description="what was sent (ComplaintIn, the domain as its site key)")
    prev_hash: str = Field(description="the previous link of the chain")
    hash: str = Field(description="SHA-256 over the previous link and the complaint's canonical (RFC 8785) bytes")


class ComplaintList(BaseModel):
    """A page of complaints, oldest first."""

    complaints: list[ComplaintOut] = Field(description="the complaints, by seq")
    chain_intact: bool | None = Field(
        default=None, description="operators only: whether the whole hash chain re-computes (null for a holder)"
    )


# FastAPI's own models of a 422 answer carry no descriptions; the OpenAPI document gets these (app.py).
VALIDATION_DESCRIPTIONS: dict[str, tuple[str, dict[str, str]]] = {
    "HTTPValidationError": (
        "A request the API could not read: one entry per problem found.",
        {"detail": "what was wrong, one entry per parameter or body field"},
    ),
    "ValidationError": (
        "One problem with a request's parameters or body.",
        {
            "loc": "where: path, query or body, then the name or position",
            "msg": "what was wrong, in words",
            "type": "a stable code for the kind of problem",
            "input": "the value that was refused (null for a body that was not JSON)",
            "ctx": "the bound that was crossed, when there is one",
        },
    ),
}

ERROR_DOCS = {
    400: "bad domain name or parameter",
    401: "missing, invalid or expired bearer token",
    403: "the token is not for this domain",
    404: "not found (or not this domain's)",
    409: "already used",
    410: "expired",
    413: "request body too large",
    414: "request target too long",
    429: "rate limit exceeded (see Retry-After)",
    503: "nothing signed yet",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: its own error statuses plus those any request can get, all as ``Error``."""
    # 400 (malformed request), 413/414 (size limits) and 429 (rate limit) can answer any request.
    return {c: {"model": Error, "description": ERROR_DOCS[c]} for c in sorted({*codes, 400, 413, 414, 429})}
