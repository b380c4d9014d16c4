"""Property-based API testing with schemathesis against the published /openapi.json of a live server: generated
valid and invalid requests for every operation, as each of the three callers the service knows (app.py): nobody
in particular, a rights holder who proved control of example.net through the real ownership flow, and the
operator with the admin token. No request may end in a server error, and every answer must match the spec
(status code, content type, body schema).

The server itself counts what reached it (an ASGI wrapper around the app), so the run is shown to have sent
requests for every operation as every role, and the access rule is checked on every answer: a holder-only page
(``/api/v1/sites/<domain>/…``) is served (2xx) only to the operator or to the holder of that very domain, the
complaints log only to the operator."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the [service] extra is not installed")
pytest.importorskip("schemathesis", reason="schemathesis is not installed (test extra)")
import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from crawler.fixtureweb import FixtureWeb, Route
from optout_registry.registry import Registry
from optout_registry.service.app import ServiceConfig
from optout_registry.service.guard import RateLimits
from optout_registry.service.ownership import CHALLENGE_PATH, DomainError, site_key, static_resolver
from optout_registry.service.testing import LiveServer
from tests.support.registry import ROBOTS, make_records

ADMIN = "admin-token-for-schemathesis-0123"
HOLDER_DOMAIN = "example.net"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
HOLDER_ONLY = re.compile(r"/api/v1/sites/([^/]+)/.+")
MAX_EXAMPLES = 10


@dataclass(frozen=True)
class Seen:
    """One request as the server saw it."""

    auth: str | None
    method: str
    path: str
    status: int


class CountingApp:
    """ASGI wrapper that logs every HTTP request the server answered, with its Authorization header."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[Seen] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        auth = dict(scope["headers"]).get(b"authorization")

        async def send_and_log(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                path = scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0] or scope["path"]
                text = auth.decode("latin-1") if auth is not None else None
                self.seen.append(Seen(text, scope["method"], path, message["status"]))
            await send(message)

        await self.app(scope, receive, send_and_log)


@pytest.fixture(scope="module")
def web() -> Iterator[FixtureWeb]:
    with FixtureWeb() as fixture:
        fixture.site("holder")
        yield fixture


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, web: FixtureWeb) -> Iterator[LiveServer]:
    d: Path = tmp_path_factory.mktemp("schemathesis")
    url = f"sqlite:///{d / 'reg.db'}"
    with Registry.open(url, key=d / "reg.key", batch_size=20) as reg:
        reg.append(make_records(40) + make_records(5, 40, site="other.org"), evidence=[ROBOTS])
    cfg = ServiceConfig(
        registry_url=url,
        key=str(d / "reg.key"),
        admin_token=ADMIN,
        # only the holder's domain is reachable (a loopback fixture site): every other challenge fails cleanly,
        # nothing is ever fetched from outside
        resolver=static_resolver({HOLDER_DOMAIN: web.origin("holder")}),
        limits=RateLimits(read_per_s=0, write_per_min=0, export_per_min=0),
        fetch_timeout=1.0,
    )
    srv = LiveServer(cfg)
    counting = CountingApp(srv.server.config.app)
    srv.server.config.app = counting  # uvicorn loads (and wraps) config.app only when the server starts
    with srv:
        srv.counting = counting  # type: ignore[attr-defined]
        yield srv


@pytest.fixture(scope="module")
def holder_token(live: LiveServer, web: FixtureWeb) -> str:
    """A rights holder's bearer token, earned the real way: challenge, publish on the site, verify."""
    with httpx.Client(base_url=live.url, timeout=30) as c:
        r = c.post("/api/v1/ownership/challenges", json={"domain": HOLDER_DOMAIN, "method": "http"})
        assert r.status_code == 201, r.text
        ch = r.json()
        web.site("holder", {CHALLENGE_PATH + ch["token"]: Route(body=ch["token"], content_type="text/plain")})
        r = c.post(f"/api/v1/ownership/challenges/{ch['challenge_id']}/verify", json={"secret": ch["secret"]})
        assert r.status_code == 200, r.text
        token = r.json()["access_token"]
        session = c.get("/api/v1/session", headers={"Authorization": f"Bearer {token}"}).json()
        assert session["access"] == "holder" and session["domain"] == HOLDER_DOMAIN
        return token


def operations(live: LiveServer) -> list[Any]:
    api = schemathesis.openapi.from_url(live.url + "/openapi.json")
    return [result.ok() for result in api.get_all_operations()]


def fuzz(live: LiveServer, mode: Any, headers: dict[str, str] | None, own: str | None) -> dict[str, int]:
    """Run every operation's generated cases; return how many requests each operation was sent (the first failure
    raises). With ``own``, about half the cases that name a domain in their path name that one instead, so a
    holder's fuzzing reaches its own pages and not only other domains' refusals."""
    sent: Counter[str] = Counter()
    ops = operations(live)
    assert len(ops) >= 15, [op.label for op in ops]
    for op in ops:
        sent[op.label] = 0

        # Health checks: only too_slow is suppressed. Hypothesis times the *generation* of the first examples;
        # here that runs on 2 cores shared with the live server's threads and the other xdist worker, so its
        # timing measures the machine's load, not the API or the strategies. (No other check fires: the run
        # passes without them, and data_too_large / filter_too_much would point at real strategy problems.)
        @given(case=op.as_strategy(generation_mode=mode), mine=st.booleans())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
        def run(case: Any, mine: bool) -> None:
            if own and mine and isinstance(case.path_parameters, dict) and "domain" in case.path_parameters:
                case.path_parameters["domain"] = own
            sent[case.operation.label] += 1
            case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

        try:
            run()
        except Unsatisfiable:  # negative mode: an operation without inputs has nothing to make invalid
            assert mode == schemathesis.GenerationMode.NEGATIVE, op.label
    return dict(sent)


def served_to(seen: Seen, role: str) -> None:
    """The access rule, on one answer the server gave: holder-only pages and the complaints log are served only
    to whom app.py says."""
    if not 200 <= seen.status < 300:
        return
    if seen.path.startswith("/api/v1/admin/"):
        assert role == "operator", seen
    m = HOLDER_ONLY.fullmatch(seen.path)
    if m:
        assert role != "anonymous", seen
        if role == "holder":
            from urllib.parse import unquote

            try:
                key = site_key(unquote(m.group(1)))
            except DomainError:
                key = None
            assert key == HOLDER_DOMAIN, seen


@pytest.mark.parametrize("who", ["anonymous", "holder", "operator"])
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_every_operation_conforms_and_never_fails(live: LiveServer, holder_token: str, who: str, mode: str) -> None:
    token = {"anonymous": None, "holder": holder_token, "operator": ADMIN}[who]
    headers = {"Authorization": f"Bearer {token}"} if token else None
    counting: CountingApp = live.counting  # type: ignore[attr-defined]
    before = len(counting.seen)
    sent = fuzz(live, schemathesis.GenerationMode(mode), headers, HOLDER_DOMAIN if who == "holder" else None)
    seen = [s for s in counting.seen[before:] if s.path != "/openapi.json"]  # the spec schemathesis loaded
    total = sum(sent.values())
    print(f"schemathesis {who}/{mode}: {total} requests, per operation {sent}")

    # every generated case reached the server, with this role's credentials (tests of one module run in one
    # xdist worker, one at a time: nothing else talks to this server meanwhile)
    assert len(seen) == total, (len(seen), total)
    mine = f"Bearer {token}" if token else None
    carried = sum(s.auth == mine for s in seen)
    print(f"schemathesis {who}/{mode}: {carried} of them with this role's credentials")
    if token is None:  # schemathesis tries made-up bearer tokens too: none can be a valid one
        assert not {s.auth for s in seen} & {f"Bearer {ADMIN}", f"Bearer {holder_token}"}
    elif mode == "positive":
        assert carried == total
    else:  # negative mode also drops the Authorization header in some cases (missing credentials)
        assert carried >= total // 2, carried
    # every operation was exercised: with valid inputs always; with invalid ones where it has inputs to break
    untouched = sorted(label for label, n in sent.items() if n == 0)
    if mode == "positive":
        assert not untouched, untouched
        assert min(sent.values()) >= 2, sent
    else:
        assert len(untouched) <= 6, untouched  # the few operations without any parameter or body
        assert total >= 10 * MAX_EXAMPLES // 2, sent
    roles = {f"Bearer {ADMIN}": "operator", f"Bearer {holder_token}": "holder"}
    for s in seen:  # judged by the credentials each request really carried (any other token is refused: 401)
        served_to(s, roles.get(s.auth or "", "anonymous"))
    ok = [s for s in seen if 200 <= s.status < 300 and HOLDER_ONLY.fullmatch(s.path) and s.auth == mine]
    if mode == "positive" and who in ("holder", "operator"):
        # the role's own pages were actually served, not only refused
        assert ok, Counter((s.path.split("/")[-1], s.status) for s in seen)
    if who == "anonymous":
        assert not ok
