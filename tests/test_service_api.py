"""Rights-holder query service over HTTP: a real uvicorn server on 127.0.0.1, real requests (httpx), a loopback
fixture site standing in for the holder's domain. Public endpoints, the ownership flow, the holder's view
(paging, dates, proofs, evidence, export), complaints, rate limits, and the PostgreSQL backend."""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the [service] extra is not installed")
import httpx

from crawler.fixtureweb import FixtureWeb, Route
from optout_registry.merkle import leaf_hash, verify_consistency, verify_inclusion
from optout_registry.note import Verifier, open_checkpoint
from optout_registry.proof import parse_proof
from optout_registry.record import canonical
from optout_registry.registry import Registry
from optout_registry.service.app import ServiceConfig
from optout_registry.service.guard import RateLimits
from optout_registry.service.ownership import CHALLENGE_PATH, static_resolver
from optout_registry.service.testing import LiveServer
from optout_registry.verify import verify_export
from tests.support.registry import ROBOTS, make_record, make_records, pg_schema_url

ADMIN = "admin-token-for-tests-0123456789"
OPEN = RateLimits(read_per_s=0, write_per_min=0, export_per_min=0)


class Clock:
    """A wall clock the test moves forward (challenge and token expiry)."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def build_registry(url: str, key: Path) -> None:
    with Registry.open(url, key=key, batch_size=25) as reg:
        reg.append(make_records(60) + make_records(8, 60, site="other.org"), evidence=[ROBOTS])
        reg.checkpoint()


@pytest.fixture(scope="module")
def web() -> Iterator[FixtureWeb]:
    with FixtureWeb() as fixture:
        fixture.site("holder")
        fixture.site("other")
        yield fixture


def make_cfg(url: str, key: Path, web: FixtureWeb, **kw: Any) -> ServiceConfig:
    resolver = static_resolver({"example.net": web.origin("holder"), "other.org": web.origin("other")})
    base: dict[str, Any] = {
        "registry_url": url,
        "key": str(key),
        "admin_token": ADMIN,
        "resolver": resolver,
        "limits": OPEN,
        "checkpoint_poll": 0,
        "fetch_timeout": 2.0,
    }
    base.update(kw)
    return ServiceConfig(**base)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, web: FixtureWeb) -> Iterator[LiveServer]:
    d = tmp_path_factory.mktemp("svc")
    url = f"sqlite:///{d / 'reg.db'}"
    build_registry(url, d / "reg.key")
    with LiveServer(make_cfg(url, d / "reg.key", web)) as srv:
        yield srv


@pytest.fixture
def client(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=20) as c:
        yield c


def prove(c: httpx.Client, web: FixtureWeb, domain: str, site: str = "holder") -> dict[str, str]:
    """Run the ownership challenge with the token published on the fixture site; return auth headers."""
    ch = c.post("/api/v1/ownership/challenges", json={"domain": domain})
    assert ch.status_code == 201, ch.text
    body = ch.json()
    web.site(site, {CHALLENGE_PATH + body["token"]: Route(body=body["token"] + "\n", content_type="text/plain")})
    r = c.post(f"/api/v1/ownership/challenges/{body['challenge_id']}/verify", json={"secret": body["secret"]})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def holder(client: httpx.Client, web: FixtureWeb) -> dict[str, str]:
    return prove(client, web, "example.net")


def all_records(c: httpx.Client, domain: str, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    out, cursor = [], None
    for _ in range(100):
        q = {**params, **({"cursor": cursor} if cursor is not None else {})}
        r = c.get(f"/api/v1/sites/{domain}/records", params=q, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        out += page["records"]
        cursor = page["next_cursor"]
        if cursor is None:
            return out
    raise AssertionError("paging did not end")


# -- public ------------------------------------------------------------------------------------------------------


def test_public_checkpoint_key_and_consistency(client: httpx.Client, live: LiveServer) -> None:
    disc = client.get("/.well-known/optout-registry").json()
    vkey = client.get("/.well-known/optout-registry/vkey").text.strip()
    assert disc["vkey"] == vkey and disc["checkpoint_url"] == "/.well-known/optout-registry/checkpoint"
    assert disc["mechanisms"]["x-robots-tag"] == ["robots-tag", "header"]  # how the page names old records
    assert "robots-tag" in disc["protocols"] and "x-robots-tag" not in disc["protocols"]
    note = client.get("/.well-known/optout-registry/checkpoint").text
    cp = open_checkpoint(note, Verifier.from_vkey(vkey), origin=disc["origin"])
    assert cp.size == 68
    assert client.get("/api/v1/checkpoint").json()["note"] == note
    old = client.get("/api/v1/checkpoints/25").json()  # batch_size 25: checkpoints at 25, 50, 68
    old_cp = open_checkpoint(old["note"], Verifier.from_vkey(vkey))
    proof = client.get("/api/v1/proofs/consistency", params={"first": 25}).json()
    assert proof["second"] == 68 and proof["second_checkpoint"] == note
    import base64

    verify_consistency(25, 68, old_cp.root, cp.root, [base64.b64decode(h) for h in proof["proof"]])
    assert client.get("/api/v1/checkpoints/26").status_code == 404
    assert client.get("/api/v1/checkpoints/9999").status_code == 404
    assert client.get("/api/v1/proofs/consistency", params={"first": 69}).status_code == 400
    spec = client.get("/openapi.json").json()
    assert "/api/v1/sites/{domain}/records" in spec["paths"] and "/.well-known/optout-registry" in spec["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "verify.js" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"


def test_anonymous_sees_counts_only(client: httpx.Client) -> None:
    s = client.get("/api/v1/sites/example.net").json()
    assert s == {"site": "example.net", "records": 60, "checkpoint_size": 68, "indexed_upto": 68, "access": "anonymous"}
    assert client.get("/api/v1/sites/news.other.org").json()["records"] == 8  # any host reduces to its site
    for path in ("records", "records/3", "records/3/evidence", "stats", "export.zip", "complaints"):
        r = client.get(f"/api/v1/sites/example.net/{path}")
        assert r.status_code == 401, path
        assert "news.example.net" not in r.text
    assert client.get("/api/v1/session").json() == {"access": "anonymous", "domain": None, "expires_at": None}


# -- the holder ----------------------------------------------------------------------------------------------------


def test_holder_browses_pages_dates_proofs_evidence_and_export(
    client: httpx.Client, holder: dict[str, str], live: LiveServer
) -> None:
    assert client.get("/api/v1/session", headers=holder).json()["domain"] == "example.net"
    records = all_records(client, "example.net", holder, limit=7)
    assert [r["index"] for r in records] == list(range(60))
    assert all(r["record"] == make_record(r["index"]) for r in records)
    desc = all_records(client, "example.net", holder, limit=50, order="desc")
    assert [r["index"] for r in desc] == list(range(59, -1, -1))
    # dates: the same records the registry itself selects (bare `until` date = the whole day)
    with Registry.open(live.state.reg.location, create=False) as reg:
        want = [e.index for e in reg.records(site="example.net", since="2026-11-02", until="2026-11-03")]
    got = all_records(client, "example.net", holder, since="2026-11-02", until="2026-11-03")
    assert [r["index"] for r in got] == want and len(want) == 4
    assert client.get("/api/v1/sites/example.net/records?since=yesterday", headers=holder).status_code == 400

    vkey = client.get("/.well-known/optout-registry/vkey").text.strip()
    p = client.get("/api/v1/sites/example.net/records/17", headers=holder).json()
    leaf = p["leaf"].encode("utf-8")
    assert leaf == canonical(make_record(17)) and p["leaf_hash"] == leaf_hash(leaf).hex()
    index, proof, note = parse_proof(p["tlog_proof"])
    cp = open_checkpoint(note, Verifier.from_vkey(vkey))
    verify_inclusion(index, cp.size, leaf_hash(leaf), proof, cp.root)
    assert note == p["checkpoint"]["note"] and index == 17

    ev = client.get(p["evidence_url"], headers=holder)
    assert ev.content == ROBOTS and ev.headers["content-type"] == "application/octet-stream"
    assert "attachment" in ev.headers["content-disposition"]

    stats = client.get("/api/v1/sites/example.net/stats", headers=holder).json()
    assert stats["records"] == 60 and sum(d["count"] for d in stats["by_day"]) == 60
    assert stats["by_mechanism"] == {"robots.txt": 60} and stats["by_decision"] == {"not_fetched": 60}
    assert stats["by_protocol"] == {"robots": 60}
    assert sum(d["by_protocol"]["robots"] for d in stats["by_day"]) == 60

    z = client.get("/api/v1/sites/example.net/export.zip", params={"until": "2026-11-10"}, headers=holder)
    assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
    out = Path(live.state.reg.location).parent / "unzipped"
    zipfile.ZipFile(io.BytesIO(z.content)).extractall(out)
    (bundle,) = list(out.iterdir())
    report = verify_export(bundle, vkey)
    assert report.ok, report.problems
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["query"] == {"site": "example.net", "until": "2026-11-10"}
    assert len(manifest["records"]) == 20  # days 0..9 of the 30-day cycle, two of each


def test_new_records_show_up_after_the_next_checkpoint(tmp_path: Path, web: FixtureWeb) -> None:
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    build_registry(url, tmp_path / "reg.key")
    with LiveServer(make_cfg(url, tmp_path / "reg.key", web)) as srv, httpx.Client(base_url=srv.url) as c:
        assert c.get("/api/v1/sites/example.net").json()["records"] == 60
        with Registry.open(url, key=tmp_path / "reg.key") as reg:
            reg.append(make_records(5, 100))
        s = c.get("/api/v1/sites/example.net").json()
        assert s["records"] == 65 and s["checkpoint_size"] == 73


# -- ownership -----------------------------------------------------------------------------------------------------


def _challenge(c: httpx.Client, domain: str = "example.net", method: str = "http") -> dict[str, Any]:
    r = c.post("/api/v1/ownership/challenges", json={"domain": domain, "method": method})
    assert r.status_code == 201, r.text
    return r.json()


def _verify(c: httpx.Client, ch: dict[str, Any], secret: str | None = None) -> httpx.Response:
    return c.post(f"/api/v1/ownership/challenges/{ch['challenge_id']}/verify", json={"secret": secret or ch["secret"]})


def test_challenge_must_really_be_published(client: httpx.Client, web: FixtureWeb) -> None:
    ch = _challenge(client, "news.example.net")
    assert ch["domain"] == "example.net" and ch["http_url"].endswith(CHALLENGE_PATH + ch["token"])
    r = _verify(client, ch)
    assert r.status_code == 403 and "HTTP 404" in r.json()["detail"]  # nothing published yet
    path = CHALLENGE_PATH + ch["token"]
    for route, why in [
        (Route(body="wrong"), "does not contain"),
        (Route(status=302, headers=[("Location", "/elsewhere")]), "HTTP 302"),  # redirects are not followed
        (Route(body=ch["token"] * 200), "more than 4096 bytes"),  # size cap
        (Route(status=500, body=ch["token"]), "HTTP 500"),
    ]:
        web.site("holder", {path: route})
        r = _verify(client, ch)
        assert r.status_code == 403 and why in r.json()["detail"], r.text
    # the token on the *other* domain's site proves nothing about example.net
    web.site("holder", {path: Route(body="")})
    web.site("other", {path: Route(body=ch["token"])})
    assert _verify(client, ch).status_code == 403
    assert _verify(client, ch, secret="x" * 43).status_code == 404  # the public token alone cannot redeem it
    web.site("holder", {path: Route(body=ch["token"])})
    assert _verify(client, ch).status_code == 200
    assert _verify(client, ch).status_code == 409  # single use


def test_challenges_and_tokens_expire(tmp_path: Path, web: FixtureWeb) -> None:
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    build_registry(url, tmp_path / "reg.key")
    clock = Clock()
    cfg = make_cfg(url, tmp_path / "reg.key", web, clock=clock, challenge_ttl=60, token_ttl=3600, max_attempts=3)
    with LiveServer(cfg) as srv, httpx.Client(base_url=srv.url) as c:
        ch = _challenge(c)
        web.site("holder", {CHALLENGE_PATH + ch["token"]: Route(body=ch["token"])})
        clock.now += 61
        r = _verify(c, ch)
        assert r.status_code == 410 and "expired" in r.json()["detail"]
        ch = _challenge(c)
        for _ in range(3):
            assert _verify(c, ch).status_code == 403  # not published under this token
        web.site("holder", {CHALLENGE_PATH + ch["token"]: Route(body=ch["token"])})
        assert _verify(c, ch).status_code == 409  # attempts exhausted, even now that it is right
        ch = _challenge(c)
        web.site("holder", {CHALLENGE_PATH + ch["token"]: Route(body=ch["token"])})
        token = _verify(c, ch).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        assert c.get("/api/v1/sites/example.net/records", headers=auth).status_code == 200
        clock.now += 3601
        r = c.get("/api/v1/sites/example.net/records", headers=auth)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_dns_challenge_through_an_injected_lookup(tmp_path: Path, web: FixtureWeb) -> None:
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    build_registry(url, tmp_path / "reg.key")
    txt: dict[str, list[str]] = {}
    cfg = make_cfg(url, tmp_path / "reg.key", web, txt_lookup=lambda name: txt.get(name, []))
    with LiveServer(cfg) as srv, httpx.Client(base_url=srv.url) as c:
        ch = _challenge(c, "other.org", method="dns")
        assert ch["dns_name"] == "_optout-challenge.other.org"
        assert _verify(c, ch).status_code == 403
        txt["_optout-challenge.other.org"] = ["unrelated", f'"{ch["token"]}"']
        r = _verify(c, ch)
        assert r.status_code == 200 and r.json()["domain"] == "other.org"
        assert r.json()["proven_at"] == "dns:_optout-challenge.other.org"
    cfg = make_cfg(url, tmp_path / "reg.key", web)  # no DNS backend configured
    with LiveServer(cfg) as srv, httpx.Client(base_url=srv.url) as c:
        r = _verify(c, _challenge(c, method="dns"))
        assert r.status_code == 403 and "not configured" in r.json()["detail"]


# -- complaints ----------------------------------------------------------------------------------------------------


def test_complaints_are_append_only(client: httpx.Client, holder: dict[str, str], live: LiveServer) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    before = client.get("/api/v1/admin/complaints", headers=admin, params={"limit": 500}).json()["complaints"]
    a = client.post(
        "/api/v1/complaints",
        json={"domain": "example.net", "contact": "legal@example.net", "message": "Why #3?", "records": [3]},
        headers=holder,
    )
    b = client.post("/api/v1/complaints", json={"domain": "other.org", "contact": "x@y.z", "message": "hello"})
    assert a.status_code == b.status_code == 201
    ra, rb = a.json(), b.json()
    assert ra["verified_holder"] is True and rb["verified_holder"] is False
    assert rb["seq"] == ra["seq"] + 1 and rb["prev_hash"] == ra["hash"]
    # a request cannot choose or overwrite a row: extra fields are refused, other methods do not exist
    r = client.post(
        "/api/v1/complaints", json={"domain": "example.net", "contact": "a@b.c", "message": "m", "seq": ra["seq"]}
    )
    assert r.status_code == 422
    for method in ("PUT", "PATCH", "DELETE"):
        assert client.request(method, "/api/v1/complaints").status_code == 405
        assert client.request(method, f"/api/v1/admin/complaints?after={ra['seq']}", headers=admin).status_code == 405
    assert (
        client.post("/api/v1/complaints", json={"domain": "*.org", "contact": "a@b.c", "message": "m"}).status_code
        == 400
    )
    bad = {"domain": "example.net", "contact": "a@b.c", "message": "nul \x00 byte"}
    assert client.post("/api/v1/complaints", json=bad).status_code == 422
    # the holder sees complaints about their domain only; the operator sees all, and the chain checks out
    mine = client.get("/api/v1/sites/example.net/complaints", headers=holder).json()["complaints"]
    assert {c["domain"] for c in mine} == {"example.net"} and mine[-1]["submission"]["records"] == [3]
    log = client.get("/api/v1/admin/complaints", headers=admin, params={"limit": 500}).json()
    assert log["chain_intact"] is True and len(log["complaints"]) == len(before) + 2
    assert client.get("/api/v1/admin/complaints", headers=holder).status_code == 403
    # the database refuses rewrites, and a rewrite behind the triggers' back breaks the chain
    db = sqlite3.connect(live.state.store.location)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE svc_complaint SET body = '{}' WHERE seq = ?", (ra["seq"],))
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM svc_complaint")
    db.execute("DROP TRIGGER svc_complaint_no_update")
    db.execute("UPDATE svc_complaint SET body = replace(body, 'Why #3?', 'Never mind') WHERE seq = ?", (ra["seq"],))
    db.commit()
    assert client.get("/api/v1/admin/complaints", headers=admin).json()["chain_intact"] is False
    db.execute("UPDATE svc_complaint SET body = replace(body, 'Never mind', 'Why #3?') WHERE seq = ?", (ra["seq"],))
    db.executescript(
        "CREATE TRIGGER svc_complaint_no_update BEFORE UPDATE ON svc_complaint "
        "BEGIN SELECT RAISE(ABORT, 'complaints are append-only'); END;"
    )
    db.close()
    assert client.get("/api/v1/admin/complaints", headers=admin).json()["chain_intact"] is True


# -- limits --------------------------------------------------------------------------------------------------------


def test_rate_limits_apply_per_client_and_cannot_be_dodged(tmp_path: Path, web: FixtureWeb) -> None:
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    build_registry(url, tmp_path / "reg.key")
    limits = RateLimits(read_per_s=0.5, read_burst=3, write_per_min=1, write_burst=2, export_per_min=1, export_burst=1)
    with (
        LiveServer(make_cfg(url, tmp_path / "reg.key", web, limits=limits)) as srv,
        httpx.Client(base_url=srv.url) as c,
    ):
        codes = [c.get("/api/v1/sites/example.net").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = c.get("/.well-known/optout-registry", headers={"X-Forwarded-For": "203.0.113.9"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert c.get("/openapi.json").status_code == 429  # every endpoint, the spec and page included
        codes = [
            c.post("/api/v1/complaints", json={"domain": "a.org", "contact": "a@b.c", "message": "m"}).status_code
            for _ in range(3)
        ]
        assert codes == [201, 201, 429]
        assert c.get("/api/v1/sites/example.net/export.zip").status_code == 401  # the export class has its own
        assert c.get("/api/v1/sites/example.net/export.zip").status_code == 429


def test_oversized_requests(client: httpx.Client, holder: dict[str, str]) -> None:
    assert client.get("/api/v1/sites/example.net/records", params={"since": "x" * 5000}).status_code == 414
    big = {"domain": "example.net", "contact": "a@b.c", "message": "m" * 70_000}
    assert client.post("/api/v1/complaints", json=big).status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 8192

    r = client.post("/api/v1/complaints", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413  # chunked, no Content-Length: still capped
    assert client.get("/api/v1/sites/example.net/records?limit=100000", headers=holder).status_code == 422
    assert client.get("/api/v1/sites/" + "a" * 300 + ".com", headers=holder).status_code in (400, 404, 422)
    assert client.get("/api/v1/sites/example.net/records/99999999999999999999", headers=holder).status_code == 422


# -- PostgreSQL ----------------------------------------------------------------------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from pg_schema_url()


def test_postgresql_registry(pg_url: str, tmp_path: Path, web: FixtureWeb) -> None:
    key = tmp_path / "pg.key"
    build_registry(pg_url, key)
    with LiveServer(make_cfg(pg_url, key, web)) as srv, httpx.Client(base_url=srv.url, timeout=20) as c:
        assert c.get("/api/v1/sites/other.org").json()["records"] == 8
        auth = prove(c, web, "other.org", site="other")
        recs = all_records(c, "other.org", auth, limit=3)
        assert [r["index"] for r in recs] == list(range(60, 68))
        vkey = c.get("/.well-known/optout-registry/vkey").text.strip()
        p = c.get("/api/v1/sites/other.org/records/63", headers=auth).json()
        index, proof, note = parse_proof(p["tlog_proof"])
        cp = open_checkpoint(note, Verifier.from_vkey(vkey))
        verify_inclusion(index, cp.size, leaf_hash(p["leaf"].encode()), proof, cp.root)
        assert c.get("/api/v1/sites/other.org/records/3", headers=auth).status_code == 404
        assert c.get("/api/v1/sites/example.net/records", headers=auth).status_code == 403
        z = c.get("/api/v1/sites/other.org/export.zip", headers=auth)
        zipfile.ZipFile(io.BytesIO(z.content)).extractall(tmp_path / "x")
        (bundle,) = list((tmp_path / "x").iterdir())
        assert verify_export(bundle, vkey).ok
        r = c.post("/api/v1/complaints", json={"domain": "other.org", "contact": "a@b.c", "message": "m"}, headers=auth)
        assert r.status_code == 201 and r.json()["verified_holder"] is True
        import psycopg

        with psycopg.connect(pg_url, autocommit=True) as conn, pytest.raises(psycopg.Error, match="append-only"):
            conn.execute("DELETE FROM svc_complaint")


def test_optout_serve_command(tmp_path: Path) -> None:
    """The real `optout serve` process: starts on the given port, serves the page and the checkpoint, and refuses
    a missing registry with exit status 2."""
    import socket
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parent.parent
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    build_registry(url, tmp_path / "reg.db.key")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "crawler.cli", "serve", "--registry", url, "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/.well-known/optout-registry/checkpoint", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.1)
        assert r.status_code == 200 and r.text.split("\n")[1] == "68"
        assert "verify.js" in httpx.get(f"http://127.0.0.1:{port}/").text
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    bad = subprocess.run(
        [sys.executable, "-m", "crawler.cli", "serve", "--registry", str(tmp_path / "none.db")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "optout serve: error: no registry" in bad.stderr
