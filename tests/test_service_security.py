"""No endpoint reveals another domain's records: the holder of example.net attacks other.org's records through
guessed indices (IDOR), path traversal, wildcards, Unicode/IDNA look-alikes, forged tokens and a corrupted index.
Every answer is checked for other.org's content, not just for its status code."""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the [service] extra is not installed")
import httpx

from crawler.fixtureweb import FixtureWeb, Route
from optout_registry.registry import Registry
from optout_registry.service.app import ServiceConfig
from optout_registry.service.guard import RateLimits
from optout_registry.service.ownership import CHALLENGE_PATH, DomainError, TokenSigner, site_key, static_resolver
from optout_registry.service.testing import LiveServer
from tests.support.registry import ROBOTS, make_records

SECRET_MARK = "news.other.org"  # appears in every other.org record, and nowhere in example.net's
OTHER = range(60, 68)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    d = tmp_path_factory.mktemp("sec")
    url = f"sqlite:///{d / 'reg.db'}"
    with Registry.open(url, key=d / "reg.key") as reg:
        reg.append(make_records(60) + make_records(8, 60, site="other.org"), evidence=[ROBOTS])
    with FixtureWeb() as web:
        web.site("holder")
        cfg = ServiceConfig(
            registry_url=url,
            key=str(d / "reg.key"),
            admin_token="admin-token-for-tests-0123456789",
            resolver=static_resolver({"example.net": web.origin("holder")}),
            limits=RateLimits(read_per_s=0, write_per_min=0, export_per_min=0),
            checkpoint_poll=0,
        )
        with LiveServer(cfg) as srv, httpx.Client(base_url=srv.url) as c:
            ch = c.post("/api/v1/ownership/challenges", json={"domain": "example.net"}).json()
            web.site("holder", {CHALLENGE_PATH + ch["token"]: Route(body=ch["token"])})
            grant = c.post(f"/api/v1/ownership/challenges/{ch['challenge_id']}/verify", json={"secret": ch["secret"]})
            yield srv, {"Authorization": f"Bearer {grant.json()['access_token']}"}


def raw_get(srv: LiveServer, target: str, headers: dict[str, str]) -> tuple[int, str]:
    """Send the request-target byte for byte (clients normalise dot segments and escapes; attackers do not)."""
    lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{srv.port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode("utf-8", "replace")


def assert_nothing_of_other(status: int, body: str) -> None:
    assert status != 200 or SECRET_MARK not in body, body[:300]
    assert SECRET_MARK not in body and "other.org/2026" not in body, body[:300]


def test_other_domains_endpoints_are_closed(env: tuple[LiveServer, dict[str, str]]) -> None:
    srv, auth = env
    with httpx.Client(base_url=srv.url) as c:
        for path in ("records", "records/61", "records/61/evidence", "stats", "export.zip", "complaints"):
            r = c.get(f"/api/v1/sites/other.org/{path}", headers=auth)
            assert r.status_code == 403, (path, r.status_code)
            assert_nothing_of_other(r.status_code, r.text)


def test_idor_on_record_indices(env: tuple[LiveServer, dict[str, str]]) -> None:
    srv, auth = env
    with httpx.Client(base_url=srv.url) as c:
        for i in [*OTHER, 68, 10**6, 2**63 - 1]:
            for suffix in ("", "/evidence"):
                r = c.get(f"/api/v1/sites/example.net/records/{i}{suffix}", headers=auth)
                assert r.status_code == 404, (i, suffix, r.status_code)
                assert_nothing_of_other(r.status_code, r.text)
        for bad in ("-1", "61.0", "0x3d", "61%20", "1e2", str(2**63)):
            r = c.get(f"/api/v1/sites/example.net/records/{bad}", headers=auth)
            assert r.status_code in (404, 422), bad
            assert_nothing_of_other(r.status_code, r.text)
        # paging and cursors only ever walk example.net's own rows
        for cursor in (59, 60, 61, 67):
            for order in ("asc", "desc"):
                r = c.get(
                    "/api/v1/sites/example.net/records",
                    params={"cursor": cursor, "order": order, "limit": 500},
                    headers=auth,
                )
                assert r.status_code == 200
                assert all(item["index"] < 60 for item in r.json()["records"])
                assert_nothing_of_other(200, r.text)


@pytest.mark.parametrize(
    "target",
    [
        "/api/v1/sites/example.net/../other.org/records",
        "/api/v1/sites/example.net/%2e%2e/other.org/records",
        "/api/v1/sites/example.net%2F..%2Fother.org/records",
        "/api/v1/sites/..%2Fother.org/records",
        "/api/v1/sites/example.net%2Fother.org/records",
        "/api/v1/sites/example.net/records/..%2F..%2Fother.org%2Frecords%2F61",
        "/api/v1/sites/example.net/records/61/..",
        "/api/v1/sites/%00other.org/records",
        "/api/v1/sites/other.org%00.example.net/records",
        "/api/v1/sites/example.net%0aother.org/records",
        "/api/v1/sites/example.net/records?site=other.org",
        "/api/v1/sites/example.net/records?domain=other.org&domain=example.net",
        "//api/v1/sites/other.org/records",
        "/api/v1/sites/example.net/export.zip/../../other.org/export.zip",
        "/static/../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/app.py",
    ],
)
def test_path_traversal_and_smuggled_parameters(env: tuple[LiveServer, dict[str, str]], target: str) -> None:
    srv, auth = env
    status, body = raw_get(srv, target, auth)
    assert_nothing_of_other(status, body)
    assert "root:x:" not in body and "def create_app" not in body
    if status == 200:  # only example.net's own data may come back
        assert "example.net" in body


@pytest.mark.parametrize(
    "domain",
    [
        "*",
        "*.org",
        "%2A.org",
        "other.*",
        "example.net,other.org",
        "example.net other.org",
        "other.org;example.net",
        "[other.org]",
        "user@other.org",
        "http:%2F%2Fother.org",
        "..",
        ".",
        "-other.org",
    ],
)
def test_wildcards_and_lists_are_not_domains(env: tuple[LiveServer, dict[str, str]], domain: str) -> None:
    srv, auth = env
    for path in ("", "/records", "/export.zip"):
        status, body = raw_get(srv, f"/api/v1/sites/{domain.replace(' ', '%20')}{path}", auth)
        assert status in (400, 403, 404, 422), (domain, path, status)
        assert_nothing_of_other(status, body)


@pytest.mark.parametrize(
    ("domain", "same_as_holder"),
    [
        ("EXAMPLE.NET", True),
        ("example.net.", True),
        ("news.example.net", True),
        ("ｅｘａｍｐｌｅ．ｎｅｔ", True),  # fullwidth: IDNA maps it to example.net itself
        ("exаmple.net", False),  # Cyrillic а: a different (look-alike) domain
        ("xn--exmple-4nf.net", False),  # the same look-alike as an A-label
        ("example.net.other.org", False),
        ("other.org", False),
        ("OTHER.ORG.", False),
        ("news.other.org", False),
        ("other.org:443", False),
        ("еxample.net", False),  # Cyrillic е
        ("example.n\u0435t", False),
    ],
)
def test_unicode_and_idna_spellings_map_to_one_key(
    env: tuple[LiveServer, dict[str, str]], domain: str, same_as_holder: bool
) -> None:
    srv, auth = env
    with httpx.Client(base_url=srv.url) as c:
        r = c.get(f"/api/v1/sites/{domain}/records", headers=auth)
        if same_as_holder:
            assert r.status_code == 200 and r.json()["site"] == "example.net"
            assert len(r.json()["records"]) == 50
        else:
            assert r.status_code in (400, 403), (domain, r.status_code)
        assert_nothing_of_other(r.status_code, r.text)


def test_site_key_normalisation() -> None:
    assert site_key("ＥＸＡＭＰＬＥ.net") == "example.net"
    assert site_key("bücher.example.de") == "example.de"
    assert site_key("bücher.de") == "xn--bcher-kva.de"
    assert site_key("user.github.io") == "user.github.io"  # private suffixes count, as in the registry
    for bad in ("", " ", "*.a.org", "a/b", "a..b", "x" * 254, "a b.org", "-a.org", "a.org\x00", "xn--zz.org" * 40):
        with pytest.raises(DomainError):
            site_key(bad)


def test_forged_or_foreign_tokens_are_refused(env: tuple[LiveServer, dict[str, str]]) -> None:
    srv, auth = env
    token = auth["Authorization"].split()[1]
    prefix, payload, mac = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    body["d"] = "other.org"
    forged_payload = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    other_secret = TokenSigner(b"k" * 32).issue("other.org", 3600)[0]
    with httpx.Client(base_url=srv.url) as c:
        for bad in (
            f"{prefix}.{forged_payload}.{mac}",
            other_secret,
            token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
            "oh1..",
            "oh1.e30." + mac,
            "x" * 2000,
            "admin-token-for-tests-0123456789x",
        ):
            for domain in ("other.org", "example.net"):
                r = c.get(f"/api/v1/sites/{domain}/records", headers={"Authorization": f"Bearer {bad}"})
                assert r.status_code == 401, (bad[:40], domain)
                assert_nothing_of_other(r.status_code, r.text)


def test_a_corrupted_index_still_leaks_nothing(env: tuple[LiveServer, dict[str, str]]) -> None:
    """Whoever can write the derived index (a bug, a bad restore, an attacker) points example.net at other.org's
    entries: the records are re-checked against their own leaves and never served."""
    srv, auth = env
    db = sqlite3.connect(srv.state.store.location)
    db.executemany(
        "INSERT OR REPLACE INTO svc_index(site, idx, ts, mechanism, decision) VALUES ('example.net', ?, 0, 'x', 'y')",
        [(i,) for i in OTHER],
    )
    db.commit()
    try:
        with httpx.Client(base_url=srv.url) as c:
            r = c.get("/api/v1/sites/example.net/records", params={"cursor": 55, "limit": 500}, headers=auth)
            assert r.status_code == 200 and [x["index"] for x in r.json()["records"]] == [56, 57, 58, 59]
            assert_nothing_of_other(200, r.text)
            for i in OTHER:
                for suffix in ("", "/evidence"):
                    r = c.get(f"/api/v1/sites/example.net/records/{i}{suffix}", headers=auth)
                    assert r.status_code == 404
            z = c.get("/api/v1/sites/example.net/export.zip", headers=auth)
            assert z.status_code == 200
            import io
            import zipfile

            names = zipfile.ZipFile(io.BytesIO(z.content)).namelist()
            assert not any(f"records/{i}.json" in n for n in names for i in OTHER)
    finally:
        db.execute("DELETE FROM svc_index WHERE site = 'example.net' AND idx >= 60")
        db.commit()
        db.close()


def test_admin_sees_any_domain_and_holders_do_not_see_the_log(env: tuple[LiveServer, dict[str, str]]) -> None:
    srv, auth = env
    admin = {"Authorization": "Bearer admin-token-for-tests-0123456789"}
    with httpx.Client(base_url=srv.url) as c:
        r = c.get("/api/v1/sites/other.org/records", headers=admin)
        assert r.status_code == 200 and [x["index"] for x in r.json()["records"]] == list(OTHER)
        assert c.get("/api/v1/admin/complaints", headers=auth).status_code == 403
        assert c.get("/api/v1/admin/complaints").status_code == 401


def test_service_files_are_not_served(env: tuple[LiveServer, dict[str, str]], tmp_path: Path) -> None:
    srv, _ = env
    for target in ("/static/", "/static/../app.py", "/static/index.html/..", "/reg.db", "/.well-known/../reg.db"):
        status, body = raw_get(srv, target, {})
        assert "SQLite format" not in body and "import " not in body, target
        assert status in (200, 404, 400, 405, 307), (target, status)


def test_fast_site_reader_cannot_be_fooled_by_record_content() -> None:
    """The records page reads target.site without building the whole record (store_common.leaf_site, the reader
    the integrator and the auditor use too); rules and URLs that spell out another site's target object must not
    change what it reads (and it must agree with a real parse)."""
    from datetime import datetime, timezone

    from optout_registry.record import canonical, new_record
    from optout_registry.store_common import leaf_site as _leaf_site

    tricks = [
        {"target": {"site": "other.org"}},
        {"pattern": '"target":{"host":"x","site":"other.org","url":"u"}'},
        {"z": {"target": {"host": "a", "site": "other.org", "url": "https://other.org/"}}},
        {"pattern": '\\"site\\":\\"other.org\\"}'},
    ]
    urls = [
        "https://news.example.net/a",
        'https://news.example.net/"target":{"site":"other.org"}',
        "https://news.example.net/}",
    ]
    for rule in tricks:
        for url in urls:
            rec = new_record(
                url=url,
                mechanism="robots.txt",
                purposes=["train-ai"],
                rule=rule,
                decision="not_fetched",
                agent_token="B",
                operator="o.example",
                observed_at=datetime(2026, 11, 1, tzinfo=timezone.utc),
            )
            leaf = canonical(rec)
            assert _leaf_site(leaf) == json.loads(leaf)["target"]["site"] == "example.net", (rule, url)
