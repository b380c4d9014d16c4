"""What anyone may ask: checkpoints, consistency proofs, how many records a site has, who they are, a complaint.

Nothing here reveals a record: a site's count is public so that anyone can see whether a crawler logged
something about it, and a complaint is accepted from anyone (marked as the holder's when sent with their token).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse

from optout_registry.service.dependencies import Caller, Service, checkpoint_out, inline, snapshot
from optout_registry.service.models import (
    CheckpointOut,
    ComplaintIn,
    ComplaintReceipt,
    ConsistencyOut,
    SessionOut,
    SiteSummary,
    error_responses,
)
from optout_registry.service.params import API, MAX_INDEX, Domain, Size, b64, iso, key_of

router = APIRouter(prefix=API)


@router.get("/checkpoint", response_model=CheckpointOut, tags=["public"], responses=error_responses(503))
def latest_checkpoint(state: Service) -> CheckpointOut:
    """The latest signed checkpoint, with its root and key."""
    return checkpoint_out(state, *snapshot(state))


@router.get("/checkpoints/{size}", response_model=CheckpointOut, tags=["public"], responses=error_responses(404))
def checkpoint_at(state: Service, size: Size) -> CheckpointOut:
    """The checkpoint signed at exactly ``size`` records (not every size has one)."""
    row = state.reg.signed_at(size) if size <= state.size() else None
    if row is None:
        raise HTTPException(404, f"no checkpoint was signed at size {size}")
    return checkpoint_out(state, *row)


@router.get("/proofs/consistency", response_model=ConsistencyOut, tags=["public"], responses=error_responses(400, 503))
def consistency(
    state: Service,
    first: Annotated[int, Query(ge=1, le=MAX_INDEX, description="the older tree size")] = 1,
    second: Annotated[
        int | None, Query(ge=1, le=MAX_INDEX, description="the newer tree size (default: the latest checkpoint)")
    ] = None,
) -> ConsistencyOut:
    """Proof that the log at ``second`` (default: the latest checkpoint) extends the log at ``first``."""
    size = snapshot(state)[0]
    second = size if second is None else second
    if not 0 < first <= second <= size:
        raise HTTPException(400, f"need 0 < first <= second <= {size} (the latest checkpoint)")
    proof = state.reg.consistency_proof(first, second)
    row = state.reg.signed_at(second)
    return ConsistencyOut(
        first=first, second=second, proof=[b64(h) for h in proof], second_checkpoint=row[2] if row else None
    )


@router.get("/session", response_model=SessionOut, tags=["ownership"], responses=error_responses(401))
def session(caller: Caller) -> SessionOut:
    """Who the bearer token says the caller is."""
    return SessionOut(
        access=caller.access,
        domain=caller.domain,
        expires_at=iso(caller.expires) if caller.expires else None,
    )


@router.get("/sites/{domain}", response_model=SiteSummary, tags=["sites"], responses=error_responses(400, 401))
async def site_summary(domain: Domain, caller: Caller, state: Service) -> SiteSummary:
    """How many records a site has (public)."""
    key = key_of(domain)

    def work() -> SiteSummary:
        size = state.size()
        upto = state.indexed(size)
        return SiteSummary(
            site=key,
            records=state.store.count(key, upto),
            checkpoint_size=size,
            indexed_upto=upto,
            access=caller.access,
        )

    return await inline(state, work)


@router.post(
    "/complaints",
    status_code=201,
    response_model=ComplaintReceipt,
    tags=["complaints"],
    responses=error_responses(400, 401),
)
def complain(body: ComplaintIn, caller: Caller, state: Service) -> JSONResponse:
    """File a complaint about a domain's records; the receipt is its link in the complaints hash chain."""
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
