"""Requests a client can get wrong must be answered with a 4xx and a JSON error, never a 500 (issue 13, part 6): record
numbers in a complaint beyond what its RFC 8785 hash can hold, and bodies that are not UTF-8 JSON, on every endpoint
that takes a body. After each one, the service still answers a good request (nothing was left half-done)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the [service] extra is not installed")
import httpx

from optout_registry.registry import Registry
from optout_registry.service.app import ServiceConfig
from optout_registry.service.guard import RateLimits
from optout_registry.service.ownership import static_resolver
from optout_registry.service.testing import LiveServer
from tests.support.registry import ROBOTS, make_records

COMPLAINT = {"domain": "example.net", "contact": "legal@example.net", "message": "Why these records?"}
NOT_UTF8 = b'{"domain": "example.net\xff\xfe", "contact": "legal@example.net", "message": "caf\xe9"}'
BODY_ENDPOINTS = ["/api/v1/complaints", "/api/v1/ownership/challenges", "/api/v1/ownership/challenges/abc/verify"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    d: Path = tmp_path_factory.mktemp("badreq")
    url = f"sqlite:///{d / 'reg.db'}"
    with Registry.open(url, key=d / "reg.key") as reg:
        reg.append(make_records(5), evidence=[ROBOTS])
    cfg = ServiceConfig(
        registry_url=url,
        key=str(d / "reg.key"),
        resolver=static_resolver({}),
        limits=RateLimits(read_per_s=0, write_per_min=0, export_per_min=0),
        checkpoint_poll=0,
    )
    with LiveServer(cfg) as srv:
        yield srv


def assert_json_client_error(r: httpx.Response) -> list[dict[str, object]] | str:
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    detail = r.json()["detail"]
    assert detail, r.text
    return detail


def assert_still_serving(c: httpx.Client) -> None:
    r = c.post("/api/v1/complaints", json={**COMPLAINT, "records": [1]})
    assert r.status_code == 201, r.text
    assert c.get("/api/v1/admin/complaints").status_code == 401  # the app, not an error page, answered


@pytest.mark.parametrize("number", [2**53, 2**53 + 1, 2**63 - 1])
def test_record_numbers_a_complaint_cannot_hold_are_refused(live: LiveServer, number: int) -> None:
    with httpx.Client(base_url=live.url) as c:
        r = c.post("/api/v1/complaints", json={**COMPLAINT, "records": [0, number]})
        detail = assert_json_client_error(r)
        assert r.status_code == 422
        assert isinstance(detail, list) and detail[0]["loc"] == ["body", "records", 1], detail
        assert_still_serving(c)


def test_the_largest_record_number_a_complaint_holds_is_accepted(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url) as c:
        r = c.post("/api/v1/complaints", json={**COMPLAINT, "records": [2**53 - 1]})
        assert r.status_code == 201, r.text
        assert r.json()["hash"] and r.json()["seq"] >= 1


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
@pytest.mark.parametrize("content_type", [None, "text/plain; charset=latin-1", "application/octet-stream"])
def test_a_body_without_json_content_type_gets_a_clear_4xx(
    live: LiveServer, path: str, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    with httpx.Client(base_url=live.url) as c:
        for body in (NOT_UTF8, b"\xff\xfe\x00\x00", b'{"domain": "example.net"}'):
            r = c.post(path, content=body, headers=headers)
            detail = assert_json_client_error(r)
            assert "application/json" in str(detail), detail  # says what the API expects
        assert_still_serving(c)


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
def test_a_json_body_that_is_not_utf8_gets_a_4xx(live: LiveServer, path: str) -> None:
    with httpx.Client(base_url=live.url) as c:
        for body in (NOT_UTF8, b"\xff", b'"\xc3"'):
            r = c.post(path, content=body, headers={"Content-Type": "application/json"})
            assert_json_client_error(r)
        assert_still_serving(c)
