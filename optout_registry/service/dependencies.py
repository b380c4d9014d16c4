"""Who is asking and what they may see: the FastAPI dependencies and checks every route is written with.

* :data:`Service` — the application's :class:`~optout_registry.service.state.ServiceState`;
* :data:`Caller` — the bearer token resolved to a :class:`Who` (admin, a domain's holder, or anonymous); a token
  that is sent but bad is a 401, never anonymous;
* :func:`require` — the caller may see this domain (the holder of exactly that site key, or the operator);
* :func:`owned_leaf` — a leaf is served only if its own ``target.site`` is the domain asked for, whatever the
  derived index says, so a wrong or tampered index row, a guessed index or another domain's index all end in the
  same 404;
* :func:`snapshot` — the checkpoint everything in one answer is proved against (503 before the first).

Rate limits are not here: the guard (guard.py) applies them as ASGI middleware, before routing, so that they
also cover unknown paths, the OpenAPI document and the page, and answer over-long targets and bodies first.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal, TypeVar

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from optout_registry.service.models import CheckpointOut
from optout_registry.service.params import b64
from optout_registry.service.state import ServiceState
from optout_registry.store_common import leaf_site

T = TypeVar("T")
AUTHENTICATE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Who:
    """The caller: a verified holder of ``domain``, the operator (``admin``), or nobody in particular."""

    domain: str | None = None
    admin: bool = False
    expires: int | None = None

    @property
    def access(self) -> Literal["anonymous", "holder", "admin"]:
        """The caller's kind, as SessionOut and SiteSummary name it."""
        return "admin" if self.admin else "holder" if self.domain else "anonymous"


def service_of(request: Request) -> ServiceState:
    """The state ``create_app`` stored on the application."""
    state: ServiceState = request.app.state.service
    return state


async def _service(request: Request) -> ServiceState:
    # async so that FastAPI calls it on the event loop instead of handing it to the thread pool
    return service_of(request)


Service = Annotated[ServiceState, Depends(_service)]

_bearer = HTTPBearer(auto_error=False, description="holder token from ownership verification, or the admin token")


async def who(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Who:
    """Resolve the bearer token: admin, a holder's grant, or anonymous. A bad token is an error, not anonymous."""
    if creds is None:
        return Who()
    state = service_of(request)
    token = creds.credentials
    admin = state.cfg.admin_token
    if admin and hmac.compare_digest(token.encode("utf-8", "replace"), admin.encode("utf-8")):
        return Who(admin=True)
    grant = state.signer.check(token)
    if grant is None:
        raise HTTPException(401, "invalid or expired token", headers=AUTHENTICATE)
    return Who(domain=grant.domain, expires=grant.expires)


Caller = Annotated[Who, Depends(who)]


def require(caller: Who, key: str) -> None:
    """Let only the holder of site key ``key`` or the operator through: 401 without a token, 403 with another's."""
    if caller.admin or caller.domain == key:
        return
    if caller.domain is None:
        raise HTTPException(401, "prove control of this domain first", headers=AUTHENTICATE)
    raise HTTPException(403, "your token is for another domain")


def require_admin(caller: Who) -> None:
    """Let only the operator through: 401 without a holder's token, 403 with one."""
    if not caller.admin:
        raise HTTPException(401 if caller.domain is None else 403, "operators only")


def snapshot(state: ServiceState) -> tuple[int, bytes, str]:
    """The latest signed checkpoint as (size, root, note): every proof in one answer is made against it."""
    latest = state.latest()
    if latest is None:
        raise HTTPException(503, "nothing has been signed in this registry yet")
    return latest


def checkpoint_out(state: ServiceState, size: int, root: bytes, note: str) -> CheckpointOut:
    """A signed checkpoint as the API shows it, with the key to check it."""
    return CheckpointOut(origin=state.reg.origin, size=size, root=b64(root), note=note, vkey=state.vkey)


def owned_leaf(state: ServiceState, key: str, index: int, size: int) -> bytes:
    """Leaf ``index`` if it is below ``size`` and its own ``target.site`` is ``key``; 404 otherwise."""
    leaf = state.store.leaves([index]).get(index) if index < size else None
    if leaf is None or leaf_site(leaf) != key:
        raise HTTPException(404, "no such record for this domain")
    return leaf


async def inline(state: ServiceState, fn: Callable[[], T]) -> T:
    """Run a short database read. SQLite: right here on the event loop — a page costs well under a millisecond,
    and handing it to the thread pool instead costs more than the query (GIL hand-offs between the loop and worker
    threads dominated the profile). PostgreSQL: in the thread pool, since a network round trip must not stall the
    loop."""
    if state.store.kind == "sqlite":
        return fn()
    return await run_in_threadpool(fn)
