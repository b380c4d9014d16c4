"""Web Bot Auth end to end on loopback (issue 20): the real Scrapy engine with the add-on signs every request, and
servers that verify each incoming request against the key directory ``optout disclose`` published, with an
independent verifier (tests/support/signing.py: the ``http-message-signatures`` library), see only valid signatures:
policy files, redirect hops, retries, a Crawl-delay queue, three fleet workers. Then ``optout verify-request``
(the helper for site owners) on captured requests: valid, tampered, expired; and key rotation."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crawler import keydir
from middlewares import httpsig
from tests.support.run import ROOT, run_cli
from tests.support.signing import Answer, VerifyingWeb

TEXT = "text/plain"
POLICY_FILES = ("/robots.txt", "/.well-known/tdmrep.json", "/ai.txt")


@pytest.fixture
def vweb() -> Iterator[VerifyingWeb]:
    web = VerifyingWeb()
    yield web
    web.close()


def new_key(path: Path) -> Path:
    path.write_bytes(httpsig.private_pem(Ed25519PrivateKey.generate()))
    return path


def disclose(folder: Path, agent: str, *keys: Path) -> subprocess.CompletedProcess[str]:
    registry = f"sqlite:///{folder.parent / 'none.db'}"
    args = ["disclose", "--out", str(folder), "--signature-agent", agent, "--registry", registry]
    for key in keys:
        args += ["--signing-key", str(key)]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    return proc


def published(vweb: VerifyingWeb, tmp: Path, *keys: Path) -> str:
    folder = tmp / "disclosure"
    agent = vweb.publish(folder)
    disclose(folder, agent, *keys)
    return agent


def scrapy_crawl(tmp: Path, start: list[str], settings: dict) -> dict:
    config = {
        "start_urls": start,
        "follow": True,
        "settings": {"OPTOUT_REGISTRY_URL": f"sqlite:///{tmp / 'registry.db'}", **settings},
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tests.scrapyrun.run", json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_request_is_signed_policy_files_redirects_and_retries(vweb: VerifyingWeb, tmp_path: Path) -> None:
    key = new_key(tmp_path / "key.pem")
    agent = published(vweb, tmp_path, key)
    b = vweb.site("b", {"/robots.txt": Answer(body="User-agent: *\nAllow: /\n", content_type=TEXT)})
    vweb.site("b", {"/landing": "<p>landed</p>"})
    a = vweb.site(
        "a",
        {
            "/robots.txt": Answer(body="User-agent: *\nAllow: /\n", content_type=TEXT),
            "/.well-known/tdmrep.json": Answer(body="[]", content_type="application/json"),
            "/ai.txt": Answer(body="User-Agent: *\nAllow: /\n", content_type=TEXT),
            "/": "<a href='/p1'>1</a> <a href='/old'>old</a> <a href='/cross'>cross</a> <a href='/flaky'>flaky</a>",
            "/p1": "<p>one</p>",
            "/old": Answer(301, headers=[("Location", "/p2")]),
            "/p2": "<p>two</p>",
            "/cross": Answer(302, headers=[("Location", f"{b}/landing")]),
            "/flaky": Answer(body="<p>flaky</p>", fail_first=1),
        },
    )
    result = scrapy_crawl(
        tmp_path,
        [a + "/"],
        {
            "OPTOUT_SIGNING_KEY": str(key),
            "OPTOUT_SIGNATURE_AGENT": agent,
            "RETRY_ENABLED": True,
            "RETRY_TIMES": 2,
            "RETRY_HTTP_CODES": [503],
        },
    )
    seen = vweb.seen
    bad = [(s.site, s.path, s.why) for s in seen if not s.ok]
    assert not bad, bad
    paths = {(s.site, s.path) for s in seen}
    for path in (*POLICY_FILES, "/", "/p1", "/old", "/p2", "/cross", "/flaky"):
        assert ("a", path) in paths, path
    assert ("b", "/robots.txt") in paths and ("b", "/landing") in paths  # the cross-site hop, and its robots.txt
    flaky = [s for s in seen if s.path == "/flaky"]
    assert len(flaky) == 2  # a 503, then the retry: each its own signature
    assert flaky[0].headers["Signature"] != flaky[1].headers["Signature"]
    old, p2 = next(s for s in seen if s.path == "/old"), next(s for s in seen if s.path == "/p2")
    assert old.headers["Signature"] != p2.headers["Signature"]  # the redirect hop was signed anew, for its path
    assert {s.keyid for s in seen} == {httpsig.jwk_thumbprint(httpsig.public_jwk(httpsig.load_private_key(key)))}
    assert sorted(u.rsplit("/", 1)[1] for u in result["reached"]) == sorted(["", "p1", "p2", "landing", "flaky"])
    assert result["stats"]["optout/signing/signed"] == len(seen)
    assert "optout/signing/refused" not in result["stats"]


def test_signatures_are_made_when_sent_not_when_queued(vweb: VerifyingWeb, tmp_path: Path) -> None:
    """A Crawl-delay queues requests in their download slot; a signature made before the wait (a downloader
    middleware) would be seconds old when sent. With 2-second signatures and six requests a second apart, each
    must still be valid when it arrives (the verifier allows no clock skew)."""
    key = new_key(tmp_path / "key.pem")
    agent = published(vweb, tmp_path, key)
    links = "".join(f"<a href='/p{i}'>{i}</a>" for i in range(6))
    routes: dict[str, Answer | str] = {
        "/robots.txt": Answer(body="User-agent: *\nCrawl-delay: 1\nAllow: /\n", content_type=TEXT),
        "/": links,
    }
    routes.update({f"/p{i}": f"<p>{i}</p>" for i in range(6)})
    a = vweb.site("a", routes)
    scrapy_crawl(
        tmp_path,
        [a + "/"],
        {"OPTOUT_SIGNING_KEY": str(key), "OPTOUT_SIGNATURE_AGENT": agent, "OPTOUT_SIGNING_EXPIRES": 2},
    )
    pages = [s for s in vweb.seen if s.path.startswith("/p")]
    assert len(pages) == 6
    assert pages[-1].time - pages[0].time >= 4.5  # they did wait in the queue
    bad = [(s.path, s.why) for s in vweb.seen if not s.ok]
    assert not bad, bad


def test_unsigned_requests_are_rejected_by_the_verifying_server(vweb: VerifyingWeb, tmp_path: Path) -> None:
    """The fixture's verifier can fail: without OPTOUT_SIGNING_KEY every request is reported unsigned."""
    key = new_key(tmp_path / "key.pem")
    published(vweb, tmp_path, key)
    a = vweb.site("a", {"/robots.txt": Answer(body="User-agent: *\nAllow: /\n", content_type=TEXT), "/": "hi"})
    scrapy_crawl(tmp_path, [a + "/"], {})
    assert vweb.seen and not any(s.ok for s in vweb.seen)


def test_three_fleet_workers_sign_with_the_fleet_key(vweb: VerifyingWeb, tmp_path: Path, redis_prefix: str) -> None:
    from tests.support.fleet import REDIS_URL
    from tests.support.registry import pg_schema_url

    key = new_key(tmp_path / "fleet.pem")
    agent = published(vweb, tmp_path, key)
    seeds = []
    for s in range(6):
        name = f"s{s}"
        links = "".join(f"<a href='/p{i}'>{i}</a>" for i in range(8))
        routes: dict[str, Answer | str] = {
            "/robots.txt": Answer(body="User-agent: *\nAllow: /\n", content_type=TEXT),
            "/": links,
        }
        # slow pages, two requests in flight per worker: some 12 s of work for one worker, so all three join in
        routes.update({f"/p{i}": Answer(body=f"<p>{i}</p>", delay=0.5) for i in range(8)})
        seeds.append(vweb.site(name, routes) + "/")
    (tmp_path / "seeds.txt").write_text("\n".join(seeds) + "\n")
    gen = pg_schema_url()
    registry = next(gen)
    workers: list[subprocess.Popen[str]] = []
    env = {**os.environ, "OPTOUT_REGISTRY_KEY": str(tmp_path / "registry.key")}
    try:
        # the log's key and origin exist before any worker appends (docs/distributed.md)
        proc = run_cli("registry", "key", "--registry", registry, "--key", str(tmp_path / "registry.key"))
        assert proc.returncode == 0, proc.stderr
        for i in range(3):
            cmd = [
                sys.executable, "-m", "crawler.cli", "crawl", "--distributed", "--redis", REDIS_URL,
                "--registry", registry, "--crawl-id", f"{redis_prefix}crawl",
                "--seeds-file", str(tmp_path / "seeds.txt"),
                "--out", str(tmp_path / f"w{i}"), "--depth", "0", "--timeout", "5",
                "--signing-key", str(key), "--signature-agent", agent,
                "-s", f"OPTOUT_CACHE_PREFIX={redis_prefix}", "-s", "OPTOUT_FLEET_GRACE=1",
                "-s", "CONCURRENT_REQUESTS=2",
            ]  # fmt: skip
            workers.append(
                subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            )
        for proc in workers:
            _, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err[-3000:]
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
        next(gen, None)
    bad = [(s.site, s.path, s.why) for s in vweb.seen if not s.ok]
    assert not bad, bad
    assert {(f"s{s}", f"/p{i}") for s in range(6) for i in range(8)} <= {(s.site, s.path) for s in vweb.seen}
    signed = []
    for i in range(3):
        log = (tmp_path / f"w{i}" / "crawl.log").read_text()
        found = re.findall(r"'optout/signing/signed': (\d+)", log)
        signed.append(int(found[-1]) if found else 0)
    assert sum(signed) == len(vweb.seen), signed
    assert sum(1 for n in signed if n) >= 2, signed  # the work was shared, and each worker signed its share


def captured(seen, scheme: str = "http") -> str:  # type: ignore[no-untyped-def]
    return f"{seen.method} {seen.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in seen.headers.items())


def test_verify_request_helper_valid_tampered_expired(vweb: VerifyingWeb, tmp_path: Path) -> None:
    key = new_key(tmp_path / "key.pem")
    agent = published(vweb, tmp_path, key)
    a = vweb.site("a", {"/robots.txt": Answer(body="User-agent: *\nAllow: /\n", content_type=TEXT), "/": "hi"})
    scrapy_crawl(tmp_path, [a + "/"], {"OPTOUT_SIGNING_KEY": str(key), "OPTOUT_SIGNATURE_AGENT": agent})
    page = next(s for s in vweb.seen if s.path == "/")
    directory = agent + httpsig.WELL_KNOWN
    request = tmp_path / "request.txt"
    request.write_text(captured(page))
    at = str(int(page.time))
    proc = run_cli("verify-request", str(request), "--directory", directory, "--scheme", "http", "--at", at)
    assert proc.returncode == 0 and proc.stdout.startswith("VERIFIED GET http://127.0.0.1:"), proc.stdout + proc.stderr
    # the directory as a file works the same
    file_dir = str(tmp_path / "disclosure" / keydir.DIRECTORY_FILE)
    assert (
        run_cli("verify-request", str(request), "--directory", file_dir, "--scheme", "http", "--at", at).returncode == 0
    )

    def rejected(text: str, *extra: str) -> str:
        request.write_text(text)
        proc = run_cli("verify-request", str(request), "--directory", directory, "--scheme", "http", *extra)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert proc.stdout.startswith("NOT VERIFIED"), proc.stdout
        return proc.stdout

    good = captured(page)
    assert "does not match" in rejected(good.replace("GET / ", "GET /other "), "--at", at)  # another path
    sa = page.headers["Signature-Agent"]
    tampered = good.replace(sa, sa.replace("127.0.0.1", "127.0.0.2"))
    assert "does not match" in rejected(tampered, "--at", at)  # another Signature-Agent
    assert "expired" in rejected(good, "--at", str(int(page.time) + 400))  # 300-second signatures
    # usage errors are one line, exit 2
    proc = run_cli("verify-request", str(tmp_path / "missing.txt"), "--directory", directory)
    assert proc.returncode == 2 and "cannot read" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("verify-request", str(request), "--directory", directory, "--at", "yesterday")
    assert proc.returncode == 2 and "--at" in proc.stderr


def test_rotation_keeps_old_signatures_verifiable_until_they_expire(vweb: VerifyingWeb, tmp_path: Path) -> None:
    folder = tmp_path / "disclosure"
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    agent = "https://crawler.example"
    t0 = 1_800_000_000
    keydir.write_directory(folder, agent, [old], lifetime=300, now=t0)
    signed_old = httpsig.Signer(old, agent, lifetime=300).sign("GET", "https://site.example/a", now=t0 + 100)
    # rotate at t0 + 120: the old key's last signature (made just before) expires at t0 + 420
    listed = keydir.write_directory(folder, agent, [new], lifetime=300, now=t0 + 120)
    status = {e["jwk"]["kid"]: (e["retired"], e["exp"]) for e in listed}
    old_kid = httpsig.public_jwk(old)["kid"]
    assert status[old_kid] == (t0 + 120, t0 + 420) and status[httpsig.public_jwk(new)["kid"]] == (None, None)
    body = (folder / keydir.DIRECTORY_FILE).read_bytes()
    keys = httpsig.directory_keys(body)
    assert httpsig.verify_request("GET", "https://site.example/a", signed_old, keys, at=t0 + 200).keyid == old_kid
    signed_new = httpsig.Signer(new, agent, lifetime=300).sign("GET", "https://site.example/b", now=t0 + 130)
    assert httpsig.verify_request("GET", "https://site.example/b", signed_new, keys, at=t0 + 140)
    # the old key cannot sign anything new that verifies: created after it was retired
    late = httpsig.Signer(old, agent, lifetime=300).sign("GET", "https://site.example/c", now=t0 + 1000)
    with pytest.raises(httpsig.SignatureError, match="had expired"):
        httpsig.verify_request("GET", "https://site.example/c", late, keys, at=t0 + 1001)
    # the directory, re-signed with the key we hold, verifies (our helper; the library checks it in the e2e tests)
    headers = dict(line.split(": ", 1) for line in (folder / keydir.HEADERS_FILE).read_text().splitlines())
    assert keydir.verify_directory(body, headers, "crawler.example", at=t0 + 121) == [httpsig.public_jwk(new)["kid"]]
    # once its signatures have expired, the old key is dropped
    keydir.write_directory(folder, agent, [new], lifetime=300, now=t0 + 421)
    keys = httpsig.directory_keys((folder / keydir.DIRECTORY_FILE).read_bytes())
    assert list(keys) == [httpsig.public_jwk(new)["kid"]]
    with pytest.raises(httpsig.SignatureError, match="not in the key directory"):
        httpsig.verify_request("GET", "https://site.example/a", signed_old, keys, at=t0 + 200)


def test_disclose_rotation_on_the_command_line(tmp_path: Path) -> None:
    folder = tmp_path / "site"
    k1, k2 = new_key(tmp_path / "k1.pem"), new_key(tmp_path / "k2.pem")
    kid1 = httpsig.public_jwk(httpsig.load_private_key(k1))["kid"]
    kid2 = httpsig.public_jwk(httpsig.load_private_key(k2))["kid"]
    args = ("--info-url", "https://crawler.example/bot", "--purpose", "ai-input")
    assert run_cli("disclose", "--out", str(folder), "--signing-key", str(k1), *args).returncode == 0
    proc = run_cli("disclose", "--out", str(folder), "--signing-key", str(k2), *args)
    assert proc.returncode == 0, proc.stderr
    assert "https://crawler.example/.well-known/http-message-signatures-directory" in proc.stdout
    data = json.loads((folder / "crawler.json").read_text())
    signing = data["signing"]
    assert signing["signature_agent"] == "https://crawler.example"  # the info URL's origin
    assert {k["kid"]: k["status"] for k in signing["keys"]} == {kid1: "retired", kid2: "current"}
    retired = next(k for k in signing["keys"] if k["kid"] == kid1)
    assert retired["listed_until"] - time.time() <= 300 + 5
    page = (folder / "index.html").read_text()
    for text in (
        kid1,
        kid2,
        "retired",
        "Signature-Agent: sig1=&quot;https://crawler.example&quot;",
        "purpose=ai-input",
    ):
        assert text in page, text
    assert "purpose=ai-input" in data["crawler"]["user_agent"]
    assert "No published specification defines a request header" in data["purpose_request_header"]
    card = json.loads((folder / keydir.CARD_FILE).read_text())
    assert card["web_bot_auth"]["purpose"] == "ai-input" and card["jwks_uri"].endswith(httpsig.WELL_KNOWN)
    directory = json.loads((folder / keydir.DIRECTORY_FILE).read_bytes())
    assert {k["kid"] for k in directory["keys"]} == {kid1, kid2}
    feed = (folder / "feed.atom").read_text()
    assert feed.count("<entry>") == 2 and "retired" in feed


def test_bad_signing_settings_are_one_line_errors(tmp_path: Path) -> None:
    seed = "http://127.0.0.1:9/"
    out = str(tmp_path / "out")
    proc = run_cli("crawl", seed, "--out", out, "--signing-key", str(tmp_path / "none.pem"), "--signature-agent",
                   "https://crawler.example")  # fmt: skip
    assert proc.returncode == 2 and "OPTOUT_SIGNING_KEY: cannot read" in proc.stderr, proc.stderr
    key = new_key(tmp_path / "k.pem")
    proc = run_cli("crawl", seed, "--out", out, "--signing-key", str(key), "--signature-agent", "http://example.com")
    assert proc.returncode == 2 and "https://" in proc.stderr, proc.stderr
    proc = run_cli("crawl", seed, "--out", out, "--signing-key", str(key))
    assert proc.returncode == 2 and "OPTOUT_SIGNATURE_AGENT" in proc.stderr, proc.stderr
    proc = run_cli("crawl", seed, "--out", out, "--signature-agent", "https://crawler.example")
    assert proc.returncode == 2 and "--signing-key" in proc.stderr, proc.stderr
    (tmp_path / "rsa.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    proc = run_cli("disclose", "--out", out, "--signing-key", str(tmp_path / "rsa.pem"), "--signature-agent",
                   "https://crawler.example")  # fmt: skip
    assert proc.returncode == 2 and "signing:" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    for line in proc.stderr.strip().splitlines():
        assert line.startswith("optout disclose: error:")
