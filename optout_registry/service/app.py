"""The rights-holder query service: HTTP API and web page over one registry (SQLite or PostgreSQL).

Who may see what (enforced in ``_require`` and re-checked on every record served):

* **anyone**: the signed checkpoint and verifier key (``/.well-known/optout-registry*``), consistency proofs
  between tree sizes, how many records a site has, and the complaint form;
* **the holder of a domain** — after proving control of it (ownership.py) — that domain's records with their
  rules and evidence, inclusion proofs, charts, the verifiable export bundle, and complaints about it;
* **the operator**, with the admin token: every domain, and the complaints log.

A request names a domain in its path and is served only if the bearer token is for that exact site key (the
registrable domain in IDNA A-label form, ownership.site_key). Records are looked up through a derived index and
every leaf is re-parsed before it is served: a record whose own ``target.site`` is not the requested domain is
never returned, whatever the index says, so a wrong or tampered index row, a guessed index, or an index that
belongs to another domain all end in the same 404.

The service never signs anything: it serves the latest checkpoint the registry's integrator signed, and every
proof is made against exactly that checkpoint, so what it hands out verifies offline with the pinned key alone.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import io
import json
import secrets
import tempfile
import threading
import time
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from datetime import time as dtime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from optout_registry.record import MAX_INT
from optout_registry.registry import Registry, RegistryError
from optout_registry.service.guard import Guard, RateLimiter, RateLimits
from optout_registry.service.ownership import (
    CHALLENGE_PATH,
    DNS_LABEL,
    ChallengeFailed,
    DomainError,
    Resolver,
    TokenSigner,
    TxtLookup,
    check_dns,
    check_http,
    new_secret,
    public_resolver,
    secret_matches,
    site_key,
)
from optout_registry.service.store import Challenge, ServiceStore, micros
from optout_registry.vocabulary import MECHANISMS, PROTOCOL_IDS

STATIC = Path(__file__).with_name("static")
API = "/api/v1"
MAX_INDEX = 2**63 - 1
MAX_RECORD = MAX_INT
"""Record numbers inside a complaint: the complaint is hashed as RFC 8785 JSON, which holds integers up to 2**53-1
only (the registry's own records obey the same bound), so a larger number cannot be stored and is refused."""
NOT_JSON = "the body must be a JSON object, UTF-8 encoded, sent with Content-Type: application/json"
_ID = r"^[A-Za-z0-9_-]{1,64}$"


class ReadOnlyRegistry(Registry):
    """The registry as the service sees it: it reads and proves, it never integrates or signs.

    (``export_bundle`` integrates first when it can sign; a query service must not become the log's integrator
    by accident, so here the latest checkpoint the real integrator signed is what everything is proved against.)
    """

    def can_sign(self) -> bool:
        return False

    def checkpoint(self) -> str:
        latest = self.latest()
        if latest is None:
            raise RegistryError("nothing has been signed in this registry yet")
        return latest[2]


@dataclass
class ServiceConfig:
    """Everything ``create_app`` needs; tests inject the resolver, DNS lookup, clock and limits."""

    registry_url: str
    service_db: str | None = None
    key: str | None = None
    admin_token: str | None = None
    resolver: Resolver | None = None
    txt_lookup: TxtLookup | None = None
    limits: RateLimits = field(default_factory=RateLimits)
    challenge_ttl: int = 900
    token_ttl: int = 86_400
    max_attempts: int = 10
    fetch_timeout: float = 5.0
    checkpoint_poll: float = 1.0
    sync_index_budget: int = 5_000
    max_export_records: int = 50_000
    operator: str | None = None
    contact: str | None = None
    background_indexer: bool = True
    clock: Callable[[], float] = time.time


@dataclass(frozen=True)
class Who:
    """The caller: a verified holder of ``domain``, the operator (``admin``), or nobody in particular."""

    domain: str | None = None
    admin: bool = False
    expires: int | None = None

    @property
    def access(self) -> str:
        return "admin" if self.admin else "holder" if self.domain else "anonymous"


class ServiceState:
    """Registry, service store and token signer, plus a short-lived cache of the latest checkpoint."""

    def __init__(self, cfg: ServiceConfig) -> None:
        self.cfg = cfg
        self.reg = ReadOnlyRegistry.open(cfg.registry_url, key=cfg.key, create=False)
        try:
            self.store = ServiceStore(cfg.registry_url, cfg.service_db)
            self.store.bind(self.reg.origin)
            secret = self.store.meta_default("token_secret", secrets.token_hex(32))
            self.signer = TokenSigner(bytes.fromhex(secret), clock=cfg.clock)
        except BaseException:
            self.reg.close()
            raise
        self.vkey = self.reg.vkey if self.reg.latest() is not None else self.reg._store.get_meta("vkey")
        self._latest: tuple[int, bytes, str] | None = None
        self._latest_at = -1e9
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._thread: threading.Thread | None = None

    def latest(self) -> tuple[int, bytes, str] | None:
        now = time.monotonic()
        if now - self._latest_at >= self.cfg.checkpoint_poll:
            self._latest = self.reg.latest()
            self._latest_at = now
            if self.vkey is None and self._latest is not None:
                self.vkey = self.reg._store.get_meta("vkey")
        return self._latest

    def size(self) -> int:
        latest = self.latest()
        return 0 if latest is None else latest[0]

    def indexed(self, size: int) -> int:
        """How far the index reaches (never past ``size``); small lags are closed in-line, big ones in background."""
        done = self.store.indexed_upto()
        if done >= size:
            return size
        if size - done <= self.cfg.sync_index_budget or not self.cfg.background_indexer:
            return min(size, self.store.catch_up(size))
        self._kick.set()
        return done

    def start(self) -> None:
        if self.cfg.background_indexer and self._thread is None:
            self._thread = threading.Thread(target=self._index_loop, name="optout-service-indexer", daemon=True)
            self._thread.start()

    def _index_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.store.catch_up(self.size())
            except Exception:  # the index is derived data: log-and-retry beats taking the service down
                import logging

                logging.getLogger(__name__).exception("indexing failed; retrying")
            self._kick.wait(2.0)
            self._kick.clear()

    def close(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.store.close()
        self.reg.close()


# -- models (they are the OpenAPI documentation as much as validation) -----------------------------------------


class Error(BaseModel):
    detail: str


class Discovery(BaseModel):
    origin: str
    vkey: str | None
    checkpoint_url: str
    vkey_url: str
    api: str
    openapi: str
    ownership: dict[str, str]
    operator: str | None
    contact: str | None
    protocols: list[str] = Field(description="the protocol ids records are shown by (the crawler's check contract)")
    mechanisms: dict[str, list[str]] = Field(
        description="[protocol id, where] for each mechanism name records are written with (records keep their "
        "mechanism as logged; people read the protocol id)"
    )


class CheckpointOut(BaseModel):
    origin: str
    size: int
    root: str = Field(description="standard base64 of the RFC 6962 root")
    note: str = Field(description="the C2SP signed note, verbatim")
    vkey: str | None


class ConsistencyOut(BaseModel):
    first: int
    second: int
    proof: list[str] = Field(description="RFC 6962 consistency proof, base64 hashes")
    second_checkpoint: str | None = Field(description="the signed checkpoint at `second`, when one was signed")


class SiteSummary(BaseModel):
    site: str
    records: int
    checkpoint_size: int
    indexed_upto: int
    access: Literal["anonymous", "holder", "admin"]


class DayCount(BaseModel):
    date: str
    count: int
    by_mechanism: dict[str, int] = Field(description="by the records' own mechanism names")
    by_protocol: dict[str, int] = Field(description="by protocol id, the names the crawler's report and CLI use")


class SiteStats(BaseModel):
    site: str
    checkpoint_size: int
    records: int
    first_observed: str | None
    last_observed: str | None
    by_mechanism: dict[str, int]
    by_protocol: dict[str, int] = Field(description="by protocol id, most records first")
    by_decision: dict[str, int]
    by_day: list[DayCount]


class RecordItem(BaseModel):
    index: int
    record: dict[str, Any]


class RecordsPage(BaseModel):
    site: str
    checkpoint_size: int
    indexed_upto: int
    next_cursor: int | None = Field(description="pass as `cursor` for the next page; null on the last page")
    records: list[RecordItem]


class RecordProof(BaseModel):
    site: str
    index: int
    leaf: str = Field(description="the exact leaf bytes (RFC 8785 JSON, UTF-8) that were hashed into the log")
    leaf_hash: str = Field(description="hex SHA-256(0x00 || leaf)")
    record: dict[str, Any]
    checkpoint: CheckpointOut
    inclusion_proof: list[str]
    tlog_proof: str = Field(description="C2SP tlog-proof v1 file for this record")
    evidence_url: str | None


class ChallengeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    domain: str = Field(min_length=1, max_length=253)
    method: Literal["http", "dns"] = "http"


class ChallengeOut(BaseModel):
    challenge_id: str
    secret: str = Field(description="keep private; present it to verify. Never publish it.")
    token: str = Field(description="publish this (it is public by design)")
    domain: str
    method: Literal["http", "dns"]
    expires_at: str
    http_url: str
    http_body: str
    dns_name: str
    dns_value: str


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secret: str = Field(min_length=1, max_length=128, pattern=_ID.replace("64", "128"))


class GrantOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    domain: str
    expires_at: str
    proven_at: str


class SessionOut(BaseModel):
    access: Literal["anonymous", "holder", "admin"]
    domain: str | None
    expires_at: str | None


def _plain_text(value: str, *, multiline: bool = False) -> str:
    """Refuse text a store cannot hold or a reader could be fooled by: lone surrogates, NUL and control chars."""
    for ch in value:
        o = ord(ch)
        if 0xD800 <= o <= 0xDFFF or o == 0 or (o < 32 and not (multiline and ch in "\n\r\t")) or o == 0x7F:
            raise ValueError("contains a control character or an unpaired surrogate")
    return value


class ComplaintIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    domain: str = Field(min_length=1, max_length=253)
    contact: str = Field(min_length=3, max_length=320, description="e-mail address or URL to answer to")
    name: str | None = Field(default=None, max_length=200)
    kind: Literal["objection", "question", "correction", "removal", "other"] = "objection"
    message: str = Field(min_length=1, max_length=10_000)
    records: list[Annotated[int, Field(ge=0, le=MAX_RECORD)]] = Field(default_factory=list, max_length=200)

    @field_validator("contact", "name")
    @classmethod
    def _one_line(cls, v: str | None) -> str | None:
        return None if v is None else _plain_text(v)

    @field_validator("message")
    @classmethod
    def _text(cls, v: str) -> str:
        return _plain_text(v, multiline=True)


class ComplaintReceipt(BaseModel):
    id: str
    seq: int
    received_at: str
    domain: str
    verified_holder: bool
    hash: str = Field(description="link of the complaints hash chain: keep it as your receipt")
    prev_hash: str


class ComplaintOut(BaseModel):
    seq: int
    id: str
    received_at: str
    domain: str
    verified_holder: bool
    submission: dict[str, Any]
    prev_hash: str
    hash: str


class ComplaintList(BaseModel):
    complaints: list[ComplaintOut]
    chain_intact: bool | None = None


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    docs = {
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
    # 400 (malformed request), 413/414 (size limits) and 429 (rate limit) can answer any request.
    return {c: {"model": Error, "description": docs[c]} for c in sorted({*codes, 400, 413, 414, 429})}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bound(value: str | None, *, end: bool, name: str) -> int | None:
    """A date or RFC 3339 time as epoch microseconds (a bare ``until`` date is inclusive), as the registry reads it."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d")
            dt = datetime.combine(day.date(), dtime.max if end else dtime.min)
        else:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        dt = dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
        return micros(dt)
    except (ValueError, OverflowError):
        raise HTTPException(400, f"{name}: not a date (YYYY-MM-DD) or RFC 3339 time") from None


def _leaf_site_parsed(leaf: bytes) -> str | None:
    try:
        site = json.loads(leaf)["target"]["site"]
        return site.lower() if isinstance(site, str) else None
    except (ValueError, KeyError, TypeError):
        return None


_TARGET = b'"target":{'
_SITE = b'"site":"'


def _leaf_site(leaf: bytes) -> str | None:
    """``target.site`` of a leaf, read without parsing all of it (the records page does this 50 times).

    Sound because leaves are canonical RFC 8785 JSON of the record schema: keys are sorted, so the top-level
    ``target`` object is the last one in the leaf (only ``type`` and ``v``, plain scalars, follow it), it holds
    only host/site/url strings, and a ``"`` inside any string is escaped — so the byte patterns below cannot be
    forged from inside a URL or rule. Anything unexpected falls back to a full parse.
    """
    t = leaf.rfind(_TARGET)
    if t < 0:
        return _leaf_site_parsed(leaf)
    s = leaf.find(_SITE, t)
    if s < 0:
        return _leaf_site_parsed(leaf)
    s += len(_SITE)
    e = leaf.find(b'"', s)
    close = leaf.find(b"}", t)
    if e < 0 or close < e or b"\\" in leaf[s:e]:
        return _leaf_site_parsed(leaf)
    try:
        return leaf[s:e].decode("ascii").lower()
    except UnicodeDecodeError:
        return _leaf_site_parsed(leaf)


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


RECORDS_QUERY = [
    _q("since", {"type": "string", "maxLength": 40}, "observed at or after: YYYY-MM-DD or RFC 3339"),
    _q("until", {"type": "string", "maxLength": 40}, "observed at or before (a bare date: the whole day)"),
    _q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "records per page"),
    _q("cursor", {"type": "integer", "minimum": 0, "maximum": MAX_INDEX}, "next_cursor of the previous page"),
    _q("order", {"type": "string", "enum": ["asc", "desc"], "default": "asc"}, "by log index"),
]
VALIDATION_422 = {
    "description": "Validation Error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
}


def _invalid(name: str, value: Any, msg: str, kind: str) -> dict[str, Any]:
    return {"type": kind, "loc": ["query", name], "msg": msg, "input": value}


def _query_text(q: Any, name: str) -> str | None:
    values = q.getlist(name)
    if not values:
        return None
    value = values[-1]
    if len(value) > 40:
        raise RequestValidationError(
            [_invalid(name, value, "String should have at most 40 characters", "string_too_long")]
        )
    return value


def _query_int(q: Any, name: str, default: int | None, lo: int, hi: int) -> int | None:
    values = q.getlist(name)
    if not values:
        return default
    text = values[-1].strip()
    if not text.lstrip("+-").isdigit() or len(text) > 20 or not text.isascii():
        raise RequestValidationError([_invalid(name, text, "Input should be a valid integer", "int_parsing")])
    value = int(text)
    if not lo <= value <= hi:
        raise RequestValidationError([_invalid(name, value, f"Input should be between {lo} and {hi}", "range")])
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


_bearer = HTTPBearer(auto_error=False, description="holder token from ownership verification, or the admin token")


async def _who(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Who:
    """Resolve the bearer token: admin, a holder's grant, or anonymous. A bad token is an error, not anonymous."""
    if creds is None:
        return Who()
    state: ServiceState = request.app.state.service
    token = creds.credentials
    admin = state.cfg.admin_token
    if admin and hmac.compare_digest(token.encode("utf-8", "replace"), admin.encode("utf-8")):
        return Who(admin=True)
    grant = state.signer.check(token)
    if grant is None:
        raise HTTPException(401, "invalid or expired token", headers={"WWW-Authenticate": "Bearer"})
    return Who(domain=grant.domain, expires=grant.expires)


Caller = Annotated[Who, Depends(_who)]
Domain = Annotated[str, PathParam(min_length=1, max_length=253, description="registrable domain, e.g. example.com")]
Index = Annotated[int, PathParam(ge=0, le=MAX_INDEX, description="the record's index in the log")]


def create_app(cfg: ServiceConfig) -> FastAPI:
    """Build the ASGI application (wrapped in the guard). Opens the registry now, so errors surface at start-up."""
    state = ServiceState(cfg)
    resolver = cfg.resolver or public_resolver
    private = {"Cache-Control": "private, no-store"}

    description = (
        "Rights-holder query service of an opt-out registry (REGISTRY.md §6).\n\n"
        "Public: `GET /.well-known/optout-registry` (discovery JSON), `/.well-known/optout-registry/checkpoint` "
        "(latest C2SP signed checkpoint, text), `/.well-known/optout-registry/vkey` (verifier key, text).\n\n"
        "Domain holders prove control with `POST /api/v1/ownership/challenges`, publish the token at "
        f"`https://<domain>{CHALLENGE_PATH}<token>` (or TXT `{DNS_LABEL}.<domain>`), then "
        "`POST /api/v1/ownership/challenges/{id}/verify` for a bearer token valid for that domain only."
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.start()
        try:
            yield
        finally:
            state.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Opt-out registry: rights-holder query service",
        version="1.0.0",
        description=description,
        docs_url=None,  # Swagger UI would load scripts from a CDN; the spec is at /openapi.json
        redoc_url=None,
    )
    app.state.service = state

    async def inline(fn: Callable[[], Any]) -> Any:
        """Run a short database read. SQLite: right here on the event loop — a page costs well under a
        millisecond, and handing it to the thread pool instead costs more than the query (GIL hand-offs between
        the loop and worker threads dominated the profile). PostgreSQL: in the thread pool, since a network
        round trip must not stall the loop."""
        if state.store.kind == "sqlite":
            return fn()
        return await run_in_threadpool(fn)

    def key_of(domain: str) -> str:
        try:
            return site_key(domain)
        except DomainError as exc:
            raise HTTPException(400, str(exc)) from None

    def require(caller: Who, key: str) -> None:
        if caller.admin or caller.domain == key:
            return
        if caller.domain is None:
            raise HTTPException(401, "prove control of this domain first", headers={"WWW-Authenticate": "Bearer"})
        raise HTTPException(403, "your token is for another domain")

    def snapshot() -> tuple[int, bytes, str]:
        latest = state.latest()
        if latest is None:
            raise HTTPException(503, "nothing has been signed in this registry yet")
        return latest

    def checkpoint_out(size: int, root: bytes, note: str) -> CheckpointOut:
        return CheckpointOut(origin=state.reg.origin, size=size, root=_b64(root), note=note, vkey=state.vkey)

    def owned_leaf(key: str, index: int, size: int) -> bytes:
        leaf = state.store.leaves([index]).get(index) if index < size else None
        if leaf is None or _leaf_site(leaf) != key:
            raise HTTPException(404, "no such record for this domain")
        return leaf

    # -- public ---------------------------------------------------------------------------------------------

    @app.get("/.well-known/optout-registry", response_model=Discovery, tags=["public"], responses=_errors())
    def discovery() -> Discovery:
        state.latest()
        return Discovery(
            origin=state.reg.origin,
            vkey=state.vkey,
            checkpoint_url="/.well-known/optout-registry/checkpoint",
            vkey_url="/.well-known/optout-registry/vkey",
            api=API,
            openapi="/openapi.json",
            ownership={"http": f"{CHALLENGE_PATH}{{token}}", "dns": f"{DNS_LABEL}.{{domain}} TXT {{token}}"},
            operator=cfg.operator,
            contact=cfg.contact,
            protocols=list(PROTOCOL_IDS),
            mechanisms={m: list(pair) for pair, m in MECHANISMS.items()},
        )

    text_doc = {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "text"}

    @app.get(
        "/.well-known/optout-registry/checkpoint",
        response_class=PlainTextResponse,
        tags=["public"],
        responses={200: text_doc, **_errors(503)},
    )
    def well_known_checkpoint() -> PlainTextResponse:
        return PlainTextResponse(snapshot()[2], headers={"Cache-Control": "no-cache"})

    @app.get(
        "/.well-known/optout-registry/vkey",
        response_class=PlainTextResponse,
        tags=["public"],
        responses={200: text_doc, **_errors(503)},
    )
    def well_known_vkey() -> PlainTextResponse:
        state.latest()
        if state.vkey is None:
            raise HTTPException(503, "this registry has no key yet")
        return PlainTextResponse(state.vkey + "\n")

    @app.get(f"{API}/checkpoint", response_model=CheckpointOut, tags=["public"], responses=_errors(503))
    def latest_checkpoint() -> CheckpointOut:
        return checkpoint_out(*snapshot())

    @app.get(f"{API}/checkpoints/{{size}}", response_model=CheckpointOut, tags=["public"], responses=_errors(404))
    def checkpoint_at(size: Annotated[int, PathParam(ge=0, le=MAX_INDEX)]) -> CheckpointOut:
        row = state.reg._store.checkpoint_at(size) if size <= state.size() else None
        if row is None:
            raise HTTPException(404, f"no checkpoint was signed at size {size}")
        return checkpoint_out(*row)

    @app.get(f"{API}/proofs/consistency", response_model=ConsistencyOut, tags=["public"], responses=_errors(400, 503))
    def consistency(
        first: Annotated[int, Query(ge=1, le=MAX_INDEX)] = 1,
        second: Annotated[int | None, Query(ge=1, le=MAX_INDEX)] = None,
    ) -> ConsistencyOut:
        size = snapshot()[0]
        second = size if second is None else second
        if not 0 < first <= second <= size:
            raise HTTPException(400, f"need 0 < first <= second <= {size} (the latest checkpoint)")
        proof = state.reg.consistency_proof(first, second)
        row = state.reg._store.checkpoint_at(second)
        return ConsistencyOut(
            first=first, second=second, proof=[_b64(h) for h in proof], second_checkpoint=row[2] if row else None
        )

    @app.get(f"{API}/session", response_model=SessionOut, tags=["ownership"], responses=_errors(401))
    def session(caller: Caller) -> SessionOut:
        return SessionOut(
            access=caller.access,  # type: ignore[arg-type]
            domain=caller.domain,
            expires_at=_iso(caller.expires) if caller.expires else None,
        )

    @app.get(f"{API}/sites/{{domain}}", response_model=SiteSummary, tags=["sites"], responses=_errors(400, 401))
    async def site_summary(domain: Domain, caller: Caller) -> SiteSummary:
        key = key_of(domain)

        def work() -> SiteSummary:
            size = state.size()
            upto = state.indexed(size)
            return SiteSummary(
                site=key,
                records=state.store.count(key, upto),
                checkpoint_size=size,
                indexed_upto=upto,
                access=caller.access,  # type: ignore[arg-type]
            )

        return await inline(work)

    # -- the holder's view ------------------------------------------------------------------------------------

    @app.get(
        f"{API}/sites/{{domain}}/stats", response_model=SiteStats, tags=["sites"], responses=_errors(400, 401, 403)
    )
    def site_stats(domain: Domain, caller: Caller) -> JSONResponse:
        key = key_of(domain)
        require(caller, key)
        size = state.size()
        stats = state.store.stats(key, state.indexed(size))
        return JSONResponse({"site": key, "checkpoint_size": size, **stats}, headers=private)

    @app.get(
        f"{API}/sites/{{domain}}/records",
        response_model=RecordsPage,
        tags=["sites"],
        responses={**_errors(400, 401, 403), 422: VALIDATION_422},
        openapi_extra={"parameters": RECORDS_QUERY},
    )
    async def site_records(domain: Domain, caller: Caller, request: Request) -> Response:
        # The query parameters are read here rather than declared in the signature (they are documented through
        # openapi_extra, the same constraints): FastAPI's per-parameter machinery was almost half of the cost of
        # this, the busiest endpoint. Invalid values get FastAPI's own 422 shape.
        q = request.query_params
        since, until = _query_text(q, "since"), _query_text(q, "until")
        limit = _query_int(q, "limit", 50, 1, 500)
        cursor = _query_int(q, "cursor", None, 0, MAX_INDEX)
        order = q.get("order", "asc")
        if order not in ("asc", "desc"):
            raise RequestValidationError([_invalid("order", order, "Input should be 'asc' or 'desc'", "enum")])
        key = key_of(domain)
        require(caller, key)
        lo, hi = _bound(since, end=False, name="since"), _bound(until, end=True, name="until")
        return await inline(lambda: records_page(key, lo, hi, limit, cursor, order == "desc"))

    def records_page(key: str, lo: int | None, hi: int | None, limit: int, cursor: int | None, desc: bool) -> Response:
        """One page, O(limit): keyset scan of the index, one batched leaf read, every leaf re-checked."""
        size = state.size()
        upto = state.indexed(size)
        idxs = state.store.page(key, upto, after=cursor, limit=limit + 1, since=lo, until=hi, descending=desc)
        more = len(idxs) > limit
        idxs = idxs[:limit]
        leaves = state.store.leaves(idxs)
        items = []
        for i in idxs:
            leaf = leaves.get(i)
            if leaf is not None and _leaf_site(leaf) == key:  # the index is derived data: re-check every row
                items.append(b'{"index":%d,"record":%s}' % (i, leaf))
        nxt = str(idxs[-1]).encode() if more and idxs else b"null"
        body = b'{"site":%s,"checkpoint_size":%d,"indexed_upto":%d,"next_cursor":%s,"records":[%s]}' % (
            json.dumps(key).encode(),
            size,
            upto,
            nxt,
            b",".join(items),
        )
        return Response(body, media_type="application/json", headers=private)

    @app.get(
        f"{API}/sites/{{domain}}/records/{{index}}",
        response_model=RecordProof,
        tags=["sites"],
        responses=_errors(400, 401, 403, 404, 503),
    )
    def site_record(domain: Domain, index: Index, caller: Caller) -> JSONResponse:
        from optout_registry.merkle import leaf_hash
        from optout_registry.proof import format_proof

        key = key_of(domain)
        require(caller, key)
        size, root, note = snapshot()
        leaf = owned_leaf(key, index, size)
        record = json.loads(leaf)
        proof = state.reg.inclusion_proof(index, size)
        has_evidence = isinstance(record.get("evidence"), dict) and "sha256" in record["evidence"]
        out = RecordProof(
            site=key,
            index=index,
            leaf=leaf.decode("utf-8"),
            leaf_hash=leaf_hash(leaf).hex(),
            record=record,
            checkpoint=checkpoint_out(size, root, note),
            inclusion_proof=[_b64(h) for h in proof],
            tlog_proof=format_proof(index, proof, note),
            evidence_url=f"{API}/sites/{key}/records/{index}/evidence" if has_evidence else None,
        )
        return JSONResponse(out.model_dump(), headers=private)

    @app.get(
        f"{API}/sites/{{domain}}/records/{{index}}/evidence",
        tags=["sites"],
        response_class=Response,
        responses={
            200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            **_errors(400, 401, 403, 404),
        },
    )
    def site_evidence(domain: Domain, index: Index, caller: Caller) -> Response:
        key = key_of(domain)
        require(caller, key)
        leaf = owned_leaf(key, index, state.size())
        ev = json.loads(leaf).get("evidence")
        sha = ev.get("sha256") if isinstance(ev, dict) else None
        body = state.reg.evidence(sha) if isinstance(sha, str) else None
        if body is None:
            raise HTTPException(404, "the operator kept no evidence body for this record")
        headers = {**private, "Content-Disposition": f'attachment; filename="{sha}"', "X-Evidence-SHA256": sha}
        return Response(body, media_type="application/octet-stream", headers=headers)

    @app.get(
        f"{API}/sites/{{domain}}/export.zip",
        tags=["sites"],
        response_class=Response,
        responses={
            200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
            **_errors(400, 401, 403, 413, 503),
        },
    )
    def site_export(
        domain: Domain,
        caller: Caller,
        since: Annotated[str | None, Query(max_length=40)] = None,
        until: Annotated[str | None, Query(max_length=40)] = None,
    ) -> Response:
        from optout_registry.export import export_bundle

        key = key_of(domain)
        require(caller, key)
        lo, hi = _bound(since, end=False, name="since"), _bound(until, end=True, name="until")
        size = snapshot()[0]
        n = state.store.count(key, state.indexed(size), lo, hi)
        if n > cfg.max_export_records:
            raise HTTPException(413, f"{n} records; narrow the date range (at most {cfg.max_export_records})")
        with tempfile.TemporaryDirectory(prefix="optout-export-") as tmp:
            result = export_bundle(state.reg, key, Path(tmp) / "bundle", since=since or None, until=until or None)
            name = f"export-{key}-{result.size}"
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
                for path in sorted(result.out.rglob("*")):
                    if path.is_file():
                        zf.write(path, f"{name}/{path.relative_to(result.out).as_posix()}")
        headers = {**private, "Content-Disposition": f'attachment; filename="{name}.zip"'}
        return Response(buf.getvalue(), media_type="application/zip", headers=headers)

    @app.get(
        f"{API}/sites/{{domain}}/complaints",
        response_model=ComplaintList,
        tags=["complaints"],
        responses=_errors(400, 401, 403),
    )
    def site_complaints(
        domain: Domain,
        caller: Caller,
        after: Annotated[int, Query(ge=0, le=MAX_INDEX)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> JSONResponse:
        key = key_of(domain)
        require(caller, key)
        rows = state.store.complaints(key, limit=limit, after=after)
        return JSONResponse({"complaints": [c.public() for c in rows]}, headers=private)

    # -- ownership --------------------------------------------------------------------------------------------

    @app.post(
        f"{API}/ownership/challenges",
        status_code=201,
        response_model=ChallengeOut,
        tags=["ownership"],
        responses=_errors(400),
    )
    def new_challenge(body: ChallengeIn) -> JSONResponse:
        key = key_of(body.domain)
        now = int(cfg.clock())
        secret, digest = new_secret()
        ch = Challenge(
            id=secrets.token_urlsafe(18),
            domain=key,
            method=body.method,
            token=secrets.token_urlsafe(32),
            secret_sha256=digest,
            created=now,
            expires=now + cfg.challenge_ttl,
            used=False,
            attempts=0,
        )
        state.store.add_challenge(ch)
        if secrets.randbelow(50) == 0:
            state.store.purge_challenges(now)
        out = ChallengeOut(
            challenge_id=ch.id,
            secret=secret,
            token=ch.token,
            domain=key,
            method=body.method,
            expires_at=_iso(ch.expires),
            http_url=f"https://{key}{CHALLENGE_PATH}{ch.token}",
            http_body=ch.token,
            dns_name=f"{DNS_LABEL}.{key}",
            dns_value=ch.token,
        )
        return JSONResponse(out.model_dump(), status_code=201, headers=private)

    @app.post(
        f"{API}/ownership/challenges/{{challenge_id}}/verify",
        response_model=GrantOut,
        tags=["ownership"],
        responses=_errors(403, 404, 409, 410),
    )
    def verify_challenge(
        challenge_id: Annotated[str, PathParam(pattern=_ID)],
        body: VerifyIn,
    ) -> JSONResponse:
        ch = state.store.challenge(challenge_id)
        if ch is None or not secret_matches(body.secret, ch.secret_sha256):
            raise HTTPException(404, "no such challenge")
        if ch.used:
            raise HTTPException(409, "this challenge was already used; request a new one")
        if ch.expires <= cfg.clock():
            raise HTTPException(410, "this challenge has expired; request a new one")
        if not state.store.note_attempt(ch.id, cfg.max_attempts):
            raise HTTPException(409, "too many attempts for this challenge; request a new one")
        try:
            if ch.method == "dns":
                where = check_dns(ch.domain, ch.token, cfg.txt_lookup)
            else:
                where = check_http(ch.domain, ch.token, resolver, timeout=cfg.fetch_timeout)
        except ChallengeFailed as exc:
            raise HTTPException(403, f"control of {ch.domain} not proven: {exc}") from None
        if not state.store.use_challenge(ch.id):
            raise HTTPException(409, "this challenge was already used; request a new one")
        token, expires = state.signer.issue(ch.domain, cfg.token_ttl)
        out = GrantOut(access_token=token, domain=ch.domain, expires_at=_iso(expires), proven_at=where)
        return JSONResponse(out.model_dump(), headers=private)

    # -- complaints -------------------------------------------------------------------------------------------

    @app.post(
        f"{API}/complaints",
        status_code=201,
        response_model=ComplaintReceipt,
        tags=["complaints"],
        responses=_errors(400, 401),
    )
    def complain(body: ComplaintIn, caller: Caller) -> JSONResponse:
        key = key_of(body.domain)
        submission = body.model_dump()
        submission["domain"] = key
        received = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        c = state.store.add_complaint(key, caller.domain == key, submission, received)
        receipt = ComplaintReceipt(
            id=c.id,
            seq=c.seq,
            received_at=c.received_at,
            domain=c.domain,
            verified_holder=c.verified,
            hash=c.hash,
            prev_hash=c.prev_hash,
        )
        return JSONResponse(receipt.model_dump(), status_code=201)

    @app.get(f"{API}/admin/complaints", response_model=ComplaintList, tags=["admin"], responses=_errors(401, 403))
    def all_complaints(
        caller: Caller,
        after: Annotated[int, Query(ge=0, le=MAX_INDEX)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> JSONResponse:
        if not caller.admin:
            raise HTTPException(401 if caller.domain is None else 403, "operators only")
        intact, _ = state.store.verify_complaints_chain()
        rows = state.store.complaints(None, limit=limit, after=after)
        return JSONResponse({"complaints": [c.public() for c in rows], "chain_intact": intact}, headers=private)

    # -- errors and the page ----------------------------------------------------------------------------------

    @app.exception_handler(RegistryError)
    async def registry_error(request: Request, exc: RegistryError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's own handler echoes every error's input. A body sent without a JSON Content-Type is not parsed,
        so its input is the raw bytes, and bytes that are not UTF-8 made that echo itself fail with a 500. Such a
        body gets one error saying what the API expects instead (same 422 shape as every validation error)."""
        errors = [
            {"type": "body_not_json", "loc": ["body"], "msg": NOT_JSON, "input": None}
            if isinstance(err.get("input"), (bytes, bytearray))
            else err
            for err in exc.errors()
        ]
        unique = [e for i, e in enumerate(errors) if e not in errors[:i]]
        return JSONResponse({"detail": jsonable_encoder(unique)}, status_code=422)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    app.add_middleware(Guard, limiter=RateLimiter(cfg.limits))  # type: ignore[arg-type]
    return app
