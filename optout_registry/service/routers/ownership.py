"""Proving control of a domain: a challenge whose token the claimant publishes, then a bearer token for it.

The claimant keeps the challenge's secret (only its hash is stored) and publishes the token on the domain's web
site or in DNS; verifying fetches it from there (ownership.py: public addresses only, bounded in size and time).
A challenge is used once, expires, and allows a bounded number of attempts.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse

from optout_registry.service.dependencies import Service
from optout_registry.service.models import ChallengeIn, ChallengeOut, GrantOut, VerifyIn, error_responses
from optout_registry.service.ownership import (
    CHALLENGE_PATH,
    DNS_LABEL,
    ChallengeFailed,
    check_dns,
    check_http,
    new_secret,
    public_resolver,
    secret_matches,
)
from optout_registry.service.params import API, PRIVATE, ChallengeId, iso, key_of
from optout_registry.service.store import Challenge

router = APIRouter(prefix=f"{API}/ownership", tags=["ownership"])


@router.post("/challenges", status_code=201, response_model=ChallengeOut, responses=error_responses(400))
def new_challenge(body: ChallengeIn, state: Service) -> JSONResponse:
    """Start proving control of a domain: where to publish which token, and the secret to claim it with."""
    cfg = state.cfg
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
        expires_at=iso(ch.expires),
        http_url=f"https://{key}{CHALLENGE_PATH}{ch.token}",
        http_body=ch.token,
        dns_name=f"{DNS_LABEL}.{key}",
        dns_value=ch.token,
    )
    return JSONResponse(out.model_dump(), status_code=201, headers=PRIVATE)


@router.post(
    "/challenges/{challenge_id}/verify",
    response_model=GrantOut,
    responses=error_responses(403, 404, 409, 410),
)
def verify_challenge(
    challenge_id: ChallengeId,
    body: VerifyIn,
    state: Service,
) -> JSONResponse:
    """Check that the token is published, and grant a bearer token for that domain only."""
    cfg = state.cfg
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
            where = check_http(ch.domain, ch.token, cfg.resolver or public_resolver, timeout=cfg.fetch_timeout)
    except ChallengeFailed as exc:
        raise HTTPException(403, f"control of {ch.domain} not proven: {exc}") from None
    if not state.store.use_challenge(ch.id):
        raise HTTPException(409, "this challenge was already used; request a new one")
    token, expires = state.signer.issue(ch.domain, cfg.token_ttl)
    out = GrantOut(access_token=token, domain=ch.domain, expires_at=iso(expires), proven_at=where)
    return JSONResponse(out.model_dump(), headers=PRIVATE)
