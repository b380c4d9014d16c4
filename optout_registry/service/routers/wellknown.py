"""What a verifier or a browser fetches first: discovery JSON, the signed checkpoint and key (text), and the page.

The checkpoint and key are served as plain text so that ``curl`` and the C2SP tools read them as they are; the
page (static/) checks proofs in the browser against the same key.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import FileResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from optout_registry.service.dependencies import Service, snapshot
from optout_registry.service.models import Discovery, error_responses
from optout_registry.service.ownership import CHALLENGE_PATH, DNS_LABEL
from optout_registry.service.params import API
from optout_registry.vocabulary import MECHANISMS, PROTOCOL_IDS

STATIC = Path(__file__).resolve().parent.parent / "static"
TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "text"}

router = APIRouter(tags=["public"])
page = APIRouter(include_in_schema=False)


@router.get("/.well-known/optout-registry", response_model=Discovery, responses=error_responses())
def discovery(state: Service) -> Discovery:
    """Where this registry's key, checkpoint, API and ownership proofs live."""
    state.latest()
    cfg = state.cfg
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


@router.get(
    "/.well-known/optout-registry/checkpoint",
    response_class=PlainTextResponse,
    responses={200: TEXT, **error_responses(503)},
)
def well_known_checkpoint(state: Service) -> PlainTextResponse:
    """The latest signed checkpoint, as a C2SP signed note."""
    return PlainTextResponse(snapshot(state)[2], headers={"Cache-Control": "no-cache"})


@router.get(
    "/.well-known/optout-registry/vkey",
    response_class=PlainTextResponse,
    responses={200: TEXT, **error_responses(503)},
)
def well_known_vkey(state: Service) -> PlainTextResponse:
    """The verifier key checkpoints are signed with."""
    state.latest()
    if state.vkey is None:
        raise HTTPException(503, "this registry has no key yet")
    return PlainTextResponse(state.vkey + "\n")


@page.get("/")
def index() -> FileResponse:
    """The rights holders' page."""
    return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")


def mount_static(app: FastAPI) -> None:
    """Serve the page's scripts and styles under /static (a mount, which routers cannot carry)."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
