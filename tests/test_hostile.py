"""Hostile sites, on loopback: gzip bombs, servers that trickle their answer a byte at a time, robots.txt files that
are not text. The crawler and `optout check` must stay bounded in memory and in time, and answer no where they
cannot tell (issue 13)."""

from __future__ import annotations

import json
import socketserver
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.fixtureweb import FixtureWeb, Route, page
from middlewares.decoding import DecodingError, codings, decode
from tests.support.run import ROOT, check, protocols

TEXT = "text/plain"
BOMB_SIZE = 256 * 1024 * 1024  # decoded; about 0.5 MB on the wire


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """256 MiB of robots.txt-looking lines, gzipped."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"Disallow: /x\n" * 80_000
    parts = [packer.compress(chunk) for _ in range(BOMB_SIZE // len(chunk))]
    return b"".join([*parts, packer.flush()])


def gz(body: bytes, content_type: str = TEXT) -> Route:
    return Route(body=body, headers=[("Content-Encoding", "gzip")], content_type=content_type)


# -- decoding, the shared bound ------------------------------------------------------------------------------------


def test_decode_stops_one_byte_past_the_limit(bomb: bytes) -> None:
    out = decode(bomb, ["gzip"], 512_001)
    assert len(out) == 512_001 and out.startswith(b"Disallow: /x\n")
    cut = decode(bomb[: len(bomb) // 100], ["gzip"], 10_000_000)  # a body cut short decodes as far as it goes
    assert 0 < len(cut) <= 10_000_000 and cut.startswith(b"Disallow")


def test_decode_deflate_wrapped_or_raw_and_refuses_what_we_did_not_ask_for() -> None:
    text = b"User-agent: *\nDisallow: /\n"
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    assert decode(raw.compress(text) + raw.flush(), ["deflate"], 100) == text
    assert decode(zlib.compress(text), ["deflate"], 100) == text
    assert decode(text, ["identity"], 100) == text
    assert codings(["gzip, identity", "x-gzip"]) == ["gzip", "identity", "x-gzip"]
    with pytest.raises(DecodingError, match="unsupported Content-Encoding 'br'"):
        decode(text, ["br"], 100)
    with pytest.raises(DecodingError, match="corrupt"):
        decode(b"not gzip at all", ["gzip"], 100)


@given(st.binary(max_size=2000), st.lists(st.sampled_from(["gzip", "deflate", "identity"]), max_size=3),
       st.integers(1, 5000))  # fmt: skip
@settings(max_examples=300, deadline=None)
def test_decode_is_bounded_and_fails_only_with_its_own_error(body: bytes, applied: list[str], limit: int) -> None:
    try:
        out = decode(body, applied, limit)
    except DecodingError:
        return
    assert len(out) <= limit


# -- gzip bombs ------------------------------------------------------------------------------------------------


def bombed_web(web: FixtureWeb, bomb: bytes) -> dict[str, str]:
    """Four origins, each with one bomb: robots.txt, tdmrep.json, ai.txt, and a page."""
    robots = "User-agent: *\nAllow: /\n"
    sites = {
        "robots": {"/robots.txt": gz(bomb), "/p": page("p")},
        "tdmrep": {"/robots.txt": robots, "/.well-known/tdmrep.json": gz(bomb, "application/json"), "/p": page("p")},
        "aitxt": {"/robots.txt": robots, "/ai.txt": gz(bomb), "/p": page("p")},
        "page": {"/robots.txt": robots, "/p": gz(bomb, "text/html")},
    }
    return {name: web.site(name, routes) + "/p" for name, routes in sites.items()}


def run_measured(*args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the CLI in a child process; returns it and the child's peak RSS in MB. The peak is the kernel's VmHWM of
    the child's own image: ``ru_maxrss`` would include the RSS of the pytest worker it was forked from (Linux keeps
    the larger of the two across exec), which says nothing about the crawl."""
    code = (
        "import resource, sys\n"
        "from crawler.cli import main\n"
        "def peak_kb():\n"
        "    try:\n"
        "        with open('/proc/self/status') as f:\n"
        "            return next(int(l.split()[1]) for l in f if l.startswith('VmHWM:'))\n"
        "    except (OSError, StopIteration):\n"
        "        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    status = main(sys.argv[1:])\n"
        "finally:\n    print('MAXRSS', peak_kb(), file=sys.stderr)\n"
        "sys.exit(status)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )
    rss = [line for line in proc.stderr.splitlines() if line.startswith("MAXRSS ")]
    assert rss, proc.stderr[-3000:]
    return proc, int(rss[-1].split()[1]) / 1024


def test_gzip_bombs_do_not_blow_up_the_crawler(web: FixtureWeb, tmp_path: Path, bomb: bytes) -> None:
    seeds = bombed_web(web, bomb)
    proc, rss = run_measured("crawl", *seeds.values(), "--out", str(tmp_path / "out"), "--depth", "1")
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert rss < 300, f"peak RSS {rss:.0f} MB"
    decisions = {d["url"]: d for d in map(json.loads, (tmp_path / "out" / "decisions.jsonl").read_text().splitlines())}
    # robots.txt: its first 500 KiB are rules like any other (here: everything under /x disallowed), not a failure
    assert decisions[seeds["robots"]]["outcome"] == "stored"
    # a bombed page is not stored; the policy files cut at their limit are read as far as they go
    assert decisions[seeds["page"]]["outcome"] != "stored"
    assert {decisions[seeds[n]]["outcome"] for n in ("tdmrep", "aitxt")} <= {"stored", "fetched_not_stored"}


def test_gzip_bombs_do_not_blow_up_check(web: FixtureWeb, bomb: bytes) -> None:
    seeds = bombed_web(web, bomb)
    proc, rss = run_measured("check", "--json", *seeds.values())
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert rss < 300, f"peak RSS {rss:.0f} MB"
    answers = {a["url"]: a for a in map(json.loads, proc.stdout.splitlines())}
    assert answers[seeds["robots"]]["allowed"]  # /p is not under /x
    assert any("larger than" in e for e in answers[seeds["robots"]]["errors"])


# -- trickling servers --------------------------------------------------------------------------------------------


class Trickle(socketserver.ThreadingTCPServer):
    """Answers every request one byte every 0.2 s: its headers (``headers=True``) or, after quick headers, its
    body. A server like this defeats per-read socket timeouts forever."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, headers: bool) -> None:
        self.slow_headers = headers
        self.stop = threading.Event()
        super().__init__(("127.0.0.1", 0), TrickleHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.stop.set()
        self.shutdown()
        self.server_close()


class TrickleHandler(socketserver.BaseRequestHandler):
    server: Trickle

    def handle(self) -> None:
        self.request.recv(65536)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
        body = b"User-agent: *\nAllow: /\n" * 5000
        slow = head + body if self.server.slow_headers else body
        if not self.server.slow_headers:
            self.request.sendall(head)
        try:
            for byte in slow:
                if self.server.stop.wait(0.2):
                    return
                self.request.sendall(bytes([byte]))
        except OSError:
            return


@pytest.fixture(params=[True, False], ids=["headers", "body"])
def trickle(request: pytest.FixtureRequest) -> Iterator[Trickle]:
    server = Trickle(headers=request.param)
    yield server
    server.close()


def test_check_gives_up_on_a_trickle_within_its_timeout(trickle: Trickle) -> None:
    started = time.monotonic()
    [decision] = check(trickle.origin + "/page", timeout=2.0)
    assert time.monotonic() - started < 2.0 + 2.0
    assert not decision.allowed and protocols(decision) >= {"fetch"}
    assert any("timed out after 2s" in e for e in decision.errors)


def test_crawl_gives_up_on_a_trickle_within_its_timeout(trickle: Trickle, tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "crawler.cli", "crawl", trickle.origin + "/page", "--out", str(tmp_path / "out"),
         "--timeout", "2"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert time.monotonic() - started < 30  # start-up, one robots.txt timeout, the report
    [decision] = map(json.loads, (tmp_path / "out" / "decisions.jsonl").read_text().splitlines())
    assert decision["outcome"] == "not_fetched"
    assert {r["protocol"] for r in decision["reservations"]} >= {"fetch"}


# -- robots.txt that is not text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), b"User-agent: *\x00\nDisallow: /\n"]
)
def test_a_robots_txt_that_is_not_text(web: FixtureWeb, body: bytes) -> None:
    base = web.site("s", {"/robots.txt": Route(body=body, content_type="application/octet-stream"), "/p": page("p")})
    [conservative] = check(base + "/p")
    assert not conservative.allowed
    assert any(r.protocol == "fetch" and r.value == "not text" for r in conservative.reservations)
    assert [h.path for h in web.hits("s")] == ["/robots.txt"]  # nothing else requested, as for an unreachable one
    [strict] = check(base + "/p", mode="strict")
    assert any("not text" in e and "read literally" in e for e in strict.errors)


def test_the_services_ownership_check_gives_up_on_a_trickle(trickle: Trickle) -> None:
    """The rights-holder service fetches a challenge token from the site being claimed: a site that trickles must
    not hold a service worker for longer than the timeout."""
    from optout_registry.service.ownership import ChallengeFailed, fetch_http_token

    started = time.monotonic()
    with pytest.raises(ChallengeFailed, match="too slow"):
        fetch_http_token(trickle.origin, "token", timeout=2.0)
    assert time.monotonic() - started < 2.0 + 2.0
