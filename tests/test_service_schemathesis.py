"""Property-based API testing with schemathesis against the published /openapi.json of a live server: generated
valid and invalid requests for every operation, anonymous and with the operator's token. No request may end in a
server error, and every answer must match the spec (status code, content type, body schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the [service] extra is not installed")
pytest.importorskip("schemathesis", reason="schemathesis is not installed (test extra)")
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from optout_registry.registry import Registry
from optout_registry.service.app import ServiceConfig
from optout_registry.service.guard import RateLimits
from optout_registry.service.ownership import static_resolver
from optout_registry.service.testing import LiveServer
from tests.registry_helpers import ROBOTS, make_records

ADMIN = "admin-token-for-schemathesis-0123"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    d: Path = tmp_path_factory.mktemp("schemathesis")
    url = f"sqlite:///{d / 'reg.db'}"
    with Registry.open(url, key=d / "reg.key", batch_size=20) as reg:
        reg.append(make_records(40) + make_records(5, 40, site="other.org"), evidence=[ROBOTS])
    cfg = ServiceConfig(
        registry_url=url,
        key=str(d / "reg.key"),
        admin_token=ADMIN,
        resolver=static_resolver({}),  # no domain is reachable: challenges fail cleanly, never fetch outside
        limits=RateLimits(read_per_s=0, write_per_min=0, export_per_min=0),
        fetch_timeout=1.0,
    )
    with LiveServer(cfg) as srv:
        yield srv


def operations(live: LiveServer) -> list[Any]:
    api = schemathesis.openapi.from_url(live.url + "/openapi.json")
    return [result.ok() for result in api.get_all_operations()]


def fuzz(live: LiveServer, mode: Any, headers: dict[str, str] | None) -> int:
    """Run every operation's generated cases; return how many requests were made (the first failure raises)."""
    sent = 0
    ops = operations(live)
    assert len(ops) >= 15, [op.label for op in ops]
    for op in ops:

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            nonlocal sent
            sent += 1
            case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)

        try:
            run()
        except Unsatisfiable:  # negative mode: an operation without inputs has nothing to make invalid
            assert mode == schemathesis.GenerationMode.NEGATIVE, op.label
    return sent


@pytest.mark.parametrize("who", ["anonymous", "operator"])
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_every_operation_conforms_and_never_fails(live: LiveServer, who: str, mode: str) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}"} if who == "operator" else None
    sent = fuzz(live, schemathesis.GenerationMode(mode), headers)
    print(f"schemathesis {who}/{mode}: {sent} requests, no server error, all conformant")
