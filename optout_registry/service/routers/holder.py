"""A domain's own view, for its verified holder (or the operator): records, proofs, evidence, export, complaints.

Every route checks the caller against the site key first (dependencies.require), and every leaf it serves is
re-read for its own ``target.site`` (dependencies.owned_leaf, store_common.leaf_site): the index only says where to
look. Answers carry ``Cache-Control: private, no-store``.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.requests import Request

from optout_registry.export import export_bundle
from optout_registry.merkle import leaf_hash
from optout_registry.proof import format_proof
from optout_registry.service.dependencies import (
    Caller,
    Service,
    checkpoint_out,
    inline,
    owned_leaf,
    require,
    service_of,
    snapshot,
)
from optout_registry.service.models import ComplaintList, RecordProof, RecordsPage, SiteStats, error_responses
from optout_registry.service.params import (
    API,
    MAX_INDEX,
    PRIVATE,
    RECORDS_QUERY,
    VALIDATION_422,
    After,
    Domain,
    Index,
    Limit,
    Since,
    Until,
    b64,
    bound,
    invalid,
    key_of,
    query_int,
    query_text,
)
from optout_registry.service.state import ServiceState
from optout_registry.store_common import leaf_site

router = APIRouter(prefix=f"{API}/sites/{{domain}}")


@router.get("/stats", response_model=SiteStats, tags=["sites"], responses=error_responses(400, 401, 403))
def site_stats(domain: Domain, caller: Caller, state: Service) -> JSONResponse:
    """The site's records counted by mechanism, protocol, decision and day, for the charts."""
    key = key_of(domain)
    require(caller, key)
    size = state.size()
    stats = state.store.stats(key, state.indexed(size))
    return JSONResponse({"site": key, "checkpoint_size": size, **stats}, headers=PRIVATE)


@router.get(
    "/records",
    response_model=RecordsPage,
    tags=["sites"],
    responses={**error_responses(400, 401, 403), 422: VALIDATION_422},
    openapi_extra={"parameters": RECORDS_QUERY},
)
async def site_records(domain: Domain, caller: Caller, request: Request) -> Response:
    """One page of the site's records, in log order, optionally between two dates."""
    # The query parameters are read here rather than declared in the signature (they are documented through
    # openapi_extra, the same constraints): FastAPI's per-parameter machinery was almost half of the cost of
    # this, the busiest endpoint. Invalid values get FastAPI's own 422 shape. The state is read from the
    # request it already has, for the same reason, rather than through one more dependency.
    q = request.query_params
    since, until = query_text(q, "since"), query_text(q, "until")
    limit = query_int(q, "limit", 50, 1, 500)
    cursor = query_int(q, "cursor", None, 0, MAX_INDEX)
    order = q.get("order", "asc")
    if order not in ("asc", "desc"):
        raise RequestValidationError([invalid("order", order, "Input should be 'asc' or 'desc'", "enum")])
    key = key_of(domain)
    require(caller, key)
    lo, hi = bound(since, end=False, name="since"), bound(until, end=True, name="until")
    state = service_of(request)
    return await inline(state, lambda: records_page(state, key, lo, hi, limit, cursor, order == "desc"))


def records_page(
    state: ServiceState, key: str, lo: int | None, hi: int | None, limit: int, cursor: int | None, desc: bool
) -> Response:
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
        if leaf is not None and leaf_site(leaf) == key:  # the index is derived data: re-check every row
            items.append(b'{"index":%d,"record":%s}' % (i, leaf))
    nxt = str(idxs[-1]).encode() if more and idxs else b"null"
    body = b'{"site":%s,"checkpoint_size":%d,"indexed_upto":%d,"next_cursor":%s,"records":[%s]}' % (
        json.dumps(key).encode(),
        size,
        upto,
        nxt,
        b",".join(items),
    )
    return Response(body, media_type="application/json", headers=PRIVATE)


@router.get(
    "/records/{index}", response_model=RecordProof, tags=["sites"], responses=error_responses(400, 401, 403, 404, 503)
)
def site_record(domain: Domain, index: Index, caller: Caller, state: Service) -> JSONResponse:
    """One record with its leaf, inclusion proof and checkpoint: everything to verify it offline."""
    key = key_of(domain)
    require(caller, key)
    size, root, note = snapshot(state)
    leaf = owned_leaf(state, key, index, size)
    record = json.loads(leaf)
    proof = state.reg.inclusion_proof(index, size)
    has_evidence = isinstance(record.get("evidence"), dict) and "sha256" in record["evidence"]
    out = RecordProof(
        site=key,
        index=index,
        leaf=leaf.decode("utf-8"),
        leaf_hash=leaf_hash(leaf).hex(),
        record=record,
        checkpoint=checkpoint_out(state, size, root, note),
        inclusion_proof=[b64(h) for h in proof],
        tlog_proof=format_proof(index, proof, note),
        evidence_url=f"{API}/sites/{key}/records/{index}/evidence" if has_evidence else None,
    )
    return JSONResponse(out.model_dump(), headers=PRIVATE)


@router.get(
    "/records/{index}/evidence",
    response_class=Response,
    tags=["sites"],
    responses={
        200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        **error_responses(400, 401, 403, 404),
    },
)
def site_evidence(domain: Domain, index: Index, caller: Caller, state: Service) -> Response:
    """The evidence body a record names by its SHA-256 (the bytes the crawler saw), if the operator kept it."""
    key = key_of(domain)
    require(caller, key)
    leaf = owned_leaf(state, key, index, state.size())
    ev = json.loads(leaf).get("evidence")
    sha = ev.get("sha256") if isinstance(ev, dict) else None
    body = state.reg.evidence(sha) if isinstance(sha, str) else None
    if body is None:
        raise HTTPException(404, "the operator kept no evidence body for this record")
    headers = {**PRIVATE, "Content-Disposition": f'attachment; filename="{sha}"', "X-Evidence-SHA256": str(sha)}
    return Response(body, media_type="application/octet-stream", headers=headers)


@router.get(
    "/export.zip",
    response_class=Response,
    tags=["sites"],
    responses={
        200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
        **error_responses(400, 401, 403, 413, 503),
    },
)
def site_export(
    domain: Domain,
    caller: Caller,
    state: Service,
    since: Since = None,
    until: Until = None,
) -> Response:
    """The site's records as a verifiable export bundle (zip), optionally between two dates."""
    key = key_of(domain)
    require(caller, key)
    lo, hi = bound(since, end=False, name="since"), bound(until, end=True, name="until")
    size = snapshot(state)[0]
    n = state.store.count(key, state.indexed(size), lo, hi)
    most = state.cfg.max_export_records
    if n > most:
        raise HTTPException(413, f"{n} records; narrow the date range (at most {most})")
    with tempfile.TemporaryDirectory(prefix="optout-export-") as tmp:
        result = export_bundle(state.reg, key, Path(tmp) / "bundle", since=since or None, until=until or None)
        name = f"export-{key}-{result.size}"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(result.out.rglob("*")):
                if path.is_file():
                    zf.write(path, f"{name}/{path.relative_to(result.out).as_posix()}")
    headers = {**PRIVATE, "Content-Disposition": f'attachment; filename="{name}.zip"'}
    return Response(buf.getvalue(), media_type="application/zip", headers=headers)


@router.get("/complaints", response_model=ComplaintList, tags=["complaints"], responses=error_responses(400, 401, 403))
def site_complaints(
    domain: Domain,
    caller: Caller,
    state: Service,
    after: After = 0,
    limit: Limit = 100,
) -> JSONResponse:
    """The complaints about the site, oldest first."""
    key = key_of(domain)
    require(caller, key)
    rows = state.store.complaints(key, limit=limit, after=after)
    return JSONResponse({"complaints": [c.public() for c in rows]}, headers=PRIVATE)
