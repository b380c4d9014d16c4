"""The operator's view (admin token): every complaint, and whether the complaints hash chain is intact."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from optout_registry.service.dependencies import Caller, Service, require_admin
from optout_registry.service.models import ComplaintList, error_responses
from optout_registry.service.params import API, PRIVATE, After, Limit

router = APIRouter(prefix=f"{API}/admin", tags=["admin"])


@router.get("/complaints", response_model=ComplaintList, responses=error_responses(401, 403))
def all_complaints(
    caller: Caller,
    state: Service,
    after: After = 0,
    limit: Limit = 100,
) -> JSONResponse:
    """Every complaint after ``after`` (by seq), with a re-check of the whole hash chain."""
    require_admin(caller)
    intact, _ = state.store.verify_complaints_chain()
    rows = state.store.complaints(None, limit=limit, after=after)
    return JSONResponse({"complaints": [c.public() for c in rows], "chain_intact": intact}, headers=PRIVATE)
