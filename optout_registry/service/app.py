"""The rights-holder query service: HTTP API and web page over one registry (SQLite or PostgreSQL).

Who may see what (enforced by dependencies.require and re-checked on every record served):

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

Where things live: models.py (request and response models, the OpenAPI documentation), state.py (settings and
the shared state), dependencies.py (the caller and the access checks), params.py (parameters and formats),
routers/ (the routes, by audience), guard.py (size and rate limits, security headers). This module wires them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.requests import Request

from optout_registry.errors import RegistryError
from optout_registry.service.guard import Guard, RateLimiter
from optout_registry.service.models import VALIDATION_DESCRIPTIONS
from optout_registry.service.ownership import CHALLENGE_PATH, DNS_LABEL
from optout_registry.service.routers import admin, holder, ownership, public, wellknown
from optout_registry.service.state import ServiceConfig, ServiceState

__all__ = ["ServiceConfig", "create_app"]  # ServiceConfig is imported from here by users and tests

NOT_JSON = "the body must be a JSON object, UTF-8 encoded, sent with Content-Type: application/json"
DESCRIPTION = (
    "Rights-holder query service of an opt-out registry (REGISTRY.md §6).\n\n"
    "Public: `GET /.well-known/optout-registry` (discovery JSON), `/.well-known/optout-registry/checkpoint` "
    "(latest C2SP signed checkpoint, text), `/.well-known/optout-registry/vkey` (verifier key, text).\n\n"
    "Domain holders prove control with `POST /api/v1/ownership/challenges`, publish the token at "
    f"`https://<domain>{CHALLENGE_PATH}<token>` (or TXT `{DNS_LABEL}.<domain>`), then "
    "`POST /api/v1/ownership/challenges/{id}/verify` for a bearer token valid for that domain only."
)


def create_app(cfg: ServiceConfig) -> FastAPI:
    """Build the ASGI application (wrapped in the guard). Opens the registry now, so errors surface at start-up."""
    state = ServiceState(cfg)

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
        description=DESCRIPTION,
        docs_url=None,  # Swagger UI would load scripts from a CDN; the spec is at /openapi.json
        redoc_url=None,
    )
    app.state.service = state
    # The holder's routes first: no two routers share a path, so the order decides only how many routes a request
    # is matched against before its own, and the records page is the busiest route by far.
    for router in (holder.router, wellknown.router, public.router, ownership.router, admin.router, wellknown.page):
        app.include_router(router)
    app.exception_handler(RegistryError)(registry_error)
    app.exception_handler(RequestValidationError)(invalid_request)
    wellknown.mount_static(app)
    app.add_middleware(Guard, limiter=RateLimiter(cfg.limits))
    _describe_validation_models(app)
    return app


async def registry_error(request: Request, exc: RegistryError) -> JSONResponse:
    """The registry cannot answer (nothing signed, a store error): 503 with its one-line reason."""
    return JSONResponse({"detail": str(exc)}, status_code=503)


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


def _describe_validation_models(app: FastAPI) -> None:
    """Give FastAPI's own 422 models descriptions in the OpenAPI document, as the service's models have."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()
            schemas = spec.get("components", {}).get("schemas", {})
            for name, (text, fields) in VALIDATION_DESCRIPTIONS.items():
                model = schemas.get(name)
                if model is None:
                    continue
                model.setdefault("description", text)
                for prop, about in model.get("properties", {}).items():
                    if prop in fields:
                        about.setdefault("description", fields[prop])
        assert app.openapi_schema is not None  # build() caches it
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the schema
