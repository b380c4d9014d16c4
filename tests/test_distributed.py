"""Distributed crawls end to end: four `optout crawl --distributed` worker processes on this machine's real Redis
(scrapy-redis queue and dupefilter, the shared policy cache) and PostgreSQL (one registry), crawling a loopback
web of 22 origins. The fixture servers log every request with its time, which is what the assertions rest on:
each robots.txt fetched once for the whole fleet, Crawl-delay held between requests of different workers, no
URL fetched twice, nothing reserved fetched; then one log, integrated by one integrator, that verifies.

Faults: a worker killed with SIGKILL mid-crawl, and a (private) Redis restarted mid-crawl, empty.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crawler.fixtureweb import FixtureWeb, Route, page
from tests.support import politeweb
from tests.support.fleet import REDIS_URL, PrivateRedis
from tests.support.registry import pg_schema_url
from tests.support.run import ROOT, run_cli

POLICY_FILES = {"/robots.txt", "/.well-known/tdmrep.json", "/ai.txt"}
TEXT = "text/plain"
DELAY = 1.0
SLOW_ANSWER = 0.3


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from pg_schema_url()


def build_fleet_web(
    web: FixtureWeb, origins: int = 22, pages: int = 4, slow: float = 0.0, gate: threading.Event | None = None
) -> dict[str, Any]:
    """``origins`` sites: s00 disallows /private/ for our token, s01..s03 ask for a Crawl-delay, s04 reserves
    /premium/ in tdmrep.json, s05 answers robots.txt with 503, s06 sends X-Robots-Tag noai on one page; the rest
    are open. Every index links to its own pages and to the next site's index. With ``gate``, pages (not policy
    files) are answered once it is set."""
    names = [f"s{i:02d}" for i in range(origins)]
    for name in names:
        web.site(name)
    expect: dict[str, Any] = {"reserved": set(), "never": set(), "delayed": set(), "names": names, "pages": set()}
    # s01's pages answer slowly: the fleet's Crawl-delay counts from the end of each answer, so its next request
    # comes a delay after that, not a delay after the slow one was sent
    expect["answer"] = {name: max(slow, SLOW_ANSWER) if name == "s01" else slow for name in names}
    expect["closed"] = {"s05"}  # robots.txt unreachable: nothing else is requested there
    for i, name in enumerate(names):
        base = web.origin(name)
        nxt = web.origin(names[(i + 1) % len(names)])
        links = [f"/p{j}.html" for j in range(pages)]
        robots = "User-agent: *\nAllow: /\n"
        routes: dict[str, Route | str] = {}
        if name == "s00":
            robots = "User-agent: OptOutBot\nDisallow: /private/\n"
            links += ["/private/a.html", "/private/b.html"]
            for p in ("/private/a.html", "/private/b.html"):
                expect["reserved"].add(base + p)
                expect["never"].add((name, p))
        if name in ("s01", "s02", "s03"):
            robots = f"User-agent: *\nCrawl-delay: {DELAY:g}\nAllow: /\n"
            expect["delayed"].add(name)
        if name == "s04":
            routes["/.well-known/tdmrep.json"] = Route(
                body=json.dumps([{"location": "/premium/*", "tdm-reservation": 1}]), content_type="application/json"
            )
            links.append("/premium/x.html")
            expect["reserved"].add(base + "/premium/x.html")
        if name == "s05":
            routes["/robots.txt"] = Route(503, "busy", content_type=TEXT)
            expect["never"] |= {(name, p) for p in ["/", *links]}
            expect["reserved"].add(base + "/")
        if name == "s06":
            routes["/p0.html"] = Route(body=page("noai"), headers=[("X-Robots-Tag", "noai")], delay=slow, gate=gate)
            expect["reserved"].add(base + "/p0.html")
        routes.setdefault("/robots.txt", Route(body=robots, content_type=TEXT))
        body = "".join(f"<a href='{base}{p}'>{p}</a> " for p in links) + f"<a href='{nxt}/'>next</a>"
        answer = expect["answer"][name]
        routes["/"] = Route(body=page(f"{name} home", body), delay=answer, gate=gate)
        for p in links:
            routes.setdefault(p, Route(body=page(f"{name} {p}", "<p>text</p>"), delay=answer, gate=gate))
        web.site(name, routes)
        expect["pages"] |= {(name, p) for p in ["/", *links]} - expect["never"]
    expect["seeds"] = [web.origin(n) + "/" for n in names if n != "s05"]
    # s05's index is reached only by link from s04: never fetched, refused for its unreachable robots.txt
    return expect


class Fleet:
    """Worker processes of one distributed crawl, an integrator, and their outputs."""

    def __init__(self, tmp: Path, redis_url: str, registry: str, prefix: str, seeds: list[str]) -> None:
        self.tmp = tmp
        self.redis_url = redis_url
        self.registry = registry
        self.prefix = prefix
        self.key = tmp / "registry.key"
        self.seeds = tmp / "seeds.txt"
        self.seeds.write_text("\n".join(seeds) + "\n")
        self.workers: list[subprocess.Popen[str]] = []
        self.env = {**os.environ, "OPTOUT_REGISTRY_KEY": str(self.key), "PYTHONUNBUFFERED": "1"}
        # the integrator's key and the log's origin exist before any worker appends (docs/distributed.md)
        proc = run_cli("registry", "key", "--registry", registry, "--key", str(self.key))
        assert proc.returncode == 0, proc.stderr

    def out(self, i: int) -> Path:
        return self.tmp / f"w{i}"

    def start(self, n: int, *extra: str) -> None:
        for i in range(len(self.workers), len(self.workers) + n):
            cmd = [
                sys.executable, "-m", "crawler.cli", "crawl", "--distributed",
                "--redis", self.redis_url, "--registry", self.registry, "--crawl-id", f"{self.prefix}crawl",
                "--seeds-file", str(self.seeds), "--out", str(self.out(i)), "--agent", "OptOutBot",
                "--depth", "0", "--timeout", "5",
                "-s", f"OPTOUT_CACHE_PREFIX={self.prefix}", "-s", "OPTOUT_FLEET_GRACE=1",
                "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2", *extra,
            ]  # fmt: skip
            self.workers.append(
                subprocess.Popen(
                    cmd,
                    cwd=ROOT,
                    env=self.env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )

    def wait(self, timeout: float = 240, skip: int | None = None) -> list[tuple[int | None, str]]:
        deadline = time.time() + timeout
        results = []
        for i, proc in enumerate(self.workers):
            if i == skip:
                proc.communicate()
                continue
            try:
                _, err = proc.communicate(timeout=max(1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
                pytest.fail(f"a worker did not finish in {timeout} s: {err[-2000:]}")
            results.append((proc.returncode, err))
        return results

    def kill_all(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    def items(self) -> dict[int, list[dict[str, Any]]]:
        found = {}
        for i in range(len(self.workers)):
            path = self.out(i) / "items.jsonl"
            found[i] = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
        return found

    def registry_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("registry", *args, "--registry", self.registry, "--key", str(self.key), timeout=120)

    def records(self) -> list[dict[str, Any]]:
        proc = self.registry_cli("records", "--json")
        assert proc.returncode == 0, proc.stderr
        return [json.loads(line)["record"] for line in proc.stdout.splitlines()]


def page_hits(web: FixtureWeb) -> list[tuple[str, str]]:
    return [(h.site, h.path) for h in web.log if h.path not in POLICY_FILES]


def assert_crawl_delay_held(web: FixtureWeb, expect: dict[str, Any], *, fetched: bool = True) -> None:
    for name in sorted(expect["delayed"]):
        times = sorted(h.time for h in web.log if h.site == name and h.path not in POLICY_FILES)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # the server's own clock: every request to the origin at least Crawl-delay after the answer to the one
        # before, whichever worker sent it (10 ms for the two clocks' resolution and scheduling of the log line)
        least = DELAY + expect["answer"][name] - 0.01
        assert (gaps or not fetched) and min(gaps, default=least) >= least, (name, gaps)


def test_four_workers_crawl_one_web_compliantly(web: FixtureWeb, tmp_path: Path, redis_prefix: str, pg_url: str):
    # Pages wait until two workers hold requests, each worker taking at most 4 at a time: on a loaded machine the
    # first worker up could otherwise crawl this small web alone before the others have imported Scrapy.
    gate = threading.Event()
    expect = build_fleet_web(web, gate=gate)
    fleet = Fleet(tmp_path, REDIS_URL, pg_url, redis_prefix, expect["seeds"])
    integrator = subprocess.Popen(
        [sys.executable, "-m", "crawler.cli", "registry", "checkpoint", "--every", "1",
         "--registry", pg_url, "--key", str(fleet.key)],
        cwd=ROOT, env=fleet.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        fleet.start(4, "-s", "CONCURRENT_REQUESTS=4")
        busy_workers(f"{redis_prefix}crawl", fleet.workers, 2)
        gate.set()
        results = fleet.wait()
    finally:
        gate.set()
        fleet.kill_all()
        integrator.send_signal(signal.SIGTERM)
        note, integrator_err = integrator.communicate(timeout=60)
    for code, err in results:
        assert code == 0, err[-3000:]
        assert "Traceback" not in err
    assert integrator.returncode == 0, integrator_err

    # one fetch of each policy file per origin for the whole fleet, robots.txt alone where it is unreachable
    for name in expect["names"]:
        for path in POLICY_FILES:
            wanted = 1 if name not in expect["closed"] or path == "/robots.txt" else 0
            assert len(web.hits(name, path)) == wanted, (name, path, len(web.hits(name, path)))
    # no URL fetched twice, nothing reserved fetched
    counts = Counter(page_hits(web))
    assert counts and max(counts.values()) == 1, [k for k, v in counts.items() if v > 1]
    assert set(counts) == expect["pages"]
    assert_crawl_delay_held(web, expect)

    # the work was shared, and the workers' items together are exactly the allowed pages, once each
    items = fleet.items()
    assert sum(1 for found in items.values() if found) >= 2
    urls = [i["url"] for found in items.values() for i in found]
    assert len(urls) == len(set(urls))
    assert not set(urls) & expect["reserved"]
    for name in ("s01", "s02", "s07", "s21"):
        assert web.origin(name) + "/p3.html" in urls

    # one log: every honoured opt-out, from whichever worker, integrated by the integrator, verifying
    records = fleet.records()
    assert {r["target"]["url"] for r in records} == expect["reserved"]
    assert_signed_checkpoint(note, fleet)
    check = fleet.registry_cli("check", "--full")
    assert check.returncode == 0, check.stdout + check.stderr
    stats = json.loads(fleet.registry_cli("stats", "--json").stdout)
    assert stats["tree_size"] == stats["entries"] == len(records) and stats["pending"] == 0, stats


def assert_signed_checkpoint(note: str, fleet: Fleet) -> None:
    """The integrator's last output is a C2SP signed checkpoint (REGISTRY.md §2.3) of the whole log: it verifies
    with the key pinned from the key file, names the log's origin, and its size and root are those of a tree
    recomputed here from the records themselves (RFC 6962 over their canonical bytes), not read from the store."""
    from optout_registry.merkle import leaf_hash
    from optout_registry.merkle import root as merkle_root
    from optout_registry.note import NoteError, open_checkpoint
    from optout_registry.record import canonical
    from optout_registry.registry import read_private_key

    signer = read_private_key(fleet.key)
    verifier = signer.verifier()
    vkey = fleet.registry_cli("key")
    assert vkey.returncode == 0 and vkey.stdout.strip() == signer.vkey(), vkey.stdout + vkey.stderr
    stats = json.loads(fleet.registry_cli("stats", "--json").stdout)
    cp = open_checkpoint(note, verifier, origin=stats["origin"])  # strict parse + Ed25519 signature
    # exactly the note the log's key makes of that checkpoint: text, blank line, one signature line, nothing else
    assert note == signer.sign(cp) and cp.extensions == ()
    assert note.split("\n")[:3] == [stats["origin"], str(cp.size), base64.b64encode(cp.root).decode()]
    listed = fleet.registry_cli("records", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [e["index"] for e in entries] == list(range(cp.size)) and cp.size > 0
    assert cp.root == merkle_root([leaf_hash(canonical(e["record"])) for e in entries])
    assert (stats["tree_size"], stats["root"]) == (cp.size, cp.root.hex())
    # and the check has teeth: a changed size, root or origin no longer verifies
    body = cp.body()
    for forged in (
        body.replace(f"\n{cp.size}\n", f"\n{cp.size - 1}\n"),
        body.replace(base64.b64encode(cp.root).decode(), base64.b64encode(bytes(32)).decode()),
        "x" + body,
    ):
        with pytest.raises(NoteError):
            open_checkpoint(forged + note[len(body) :], verifier, origin=stats["origin"])


def wait_for_pages(web: FixtureWeb, n: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while len(page_hits(web)) < n:
        if time.time() > deadline:
            pytest.fail(f"the crawl did not reach {n} pages in {timeout} s (got {len(page_hits(web))})")
        time.sleep(0.05)


def wait_for_logs(fleet: Fleet, n: int, line: str, timeout: float = 60) -> None:
    """Until the crawl.log of each of the first ``n`` workers has ``line``."""
    deadline = time.time() + timeout
    for i in range(n):
        log = fleet.out(i) / "crawl.log"
        while not (log.exists() and line in log.read_text(errors="replace")):
            if time.time() > deadline:
                pytest.fail(f"worker {i} did not log {line!r} in {timeout} s")
            time.sleep(0.05)


def busy_workers(crawl_id: str, workers: list[subprocess.Popen[str]], n: int = 1, timeout: float = 90) -> list[int]:
    """The indices of ``n`` or more workers that have requests in flight (in-flight hashes in Redis not empty)."""
    import redis

    from crawler.fleet import worker_name

    host = worker_name().rsplit(":", 1)[0]
    client = redis.Redis.from_url(REDIS_URL)
    deadline = time.time() + timeout
    while time.time() < deadline:
        busy = [i for i, proc in enumerate(workers) if client.hlen(f"{crawl_id}:inflight:{host}:{proc.pid}")]
        if len(busy) >= n:
            return busy
        time.sleep(0.01)
    pytest.fail(f"fewer than {n} workers had a request in flight: {list(client.scan_iter(crawl_id + ':*'))}")


def assert_fleet_outcome(web: FixtureWeb, fleet: Fleet, expect: dict[str, Any], results: list[Any]) -> None:
    """What must hold after a fault: the surviving workers finished cleanly, nothing reserved was fetched,
    Crawl-delay held, and the one log (integrated now) verifies and holds only honoured opt-outs."""
    for code, err in results:
        assert code == 0, err[-3000:]
        assert "Traceback" not in err
    assert not expect["never"] & set(page_hits(web))
    # (a killed worker may have taken an origin's pages from the queue with it: see docs/distributed.md)
    assert_crawl_delay_held(web, expect, fetched=False)
    proc = fleet.registry_cli("checkpoint")
    assert proc.returncode == 0, proc.stderr
    assert_signed_checkpoint(proc.stdout, fleet)
    check = fleet.registry_cli("check", "--full")
    assert check.returncode == 0, check.stdout + check.stderr
    records = fleet.records()
    assert records and {r["target"]["url"] for r in records} <= expect["reserved"]


def test_a_worker_killed_mid_crawl(web: FixtureWeb, tmp_path: Path, redis_prefix: str, pg_url: str) -> None:
    expect = build_fleet_web(web, pages=8, slow=0.1)
    fleet = Fleet(tmp_path, REDIS_URL, pg_url, redis_prefix, expect["seeds"])
    try:
        fleet.start(4)
        wait_for_pages(web, 30)
        dead = busy_workers(f"{redis_prefix}crawl", fleet.workers)[0]
        victim = fleet.workers[dead]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        results = fleet.wait(skip=dead)
    finally:
        fleet.kill_all()
    assert_fleet_outcome(web, fleet, expect, results)
    # the crawl finished: every page was fetched, those the victim had taken included (put back in the queue
    # once it stopped beating; a page it had fetched but not finished may be fetched twice: at least once)
    assert set(page_hits(web)) == expect["pages"]
    logs = "".join((fleet.out(i) / "crawl.log").read_text() for i in range(4) if i != dead)
    assert "stopped beating" in logs
    # policy files: shared answers, fetched once; a second fetch only where the victim died holding the claim
    # (fetching, or before it stored the answer), and only once that claim expired (--timeout 5 + 10 s)
    for name in expect["names"]:
        for path in POLICY_FILES:
            times = [h.time for h in web.hits(name, path)]
            if name in expect["closed"] and path != "/robots.txt":
                assert times == [], (name, path, times)
                continue
            assert len(times) == 1 or (len(times) == 2 and times[1] - times[0] > 14), (name, path, times)


def test_three_workers_read_robots_first(web: FixtureWeb, tmp_path: Path, redis_prefix: str, pg_url: str) -> None:
    """Issue 12 for a fleet: robots.txt before anything else of an origin, policy files under its rules, and the
    Crawl-delay between every two requests after it, whichever worker sends them (the Redis gate)."""
    seeds = politeweb.build(web, "OptOutBot")
    fleet = Fleet(tmp_path, REDIS_URL, pg_url, redis_prefix, seeds)
    try:
        fleet.start(3, "--timeout", str(politeweb.TIMEOUT))
        results = fleet.wait()
    finally:
        fleet.kill_all()
    for code, err in results:
        assert code in (0, 1), err[-3000:]
        assert "Traceback" not in err
    politeweb.assert_robots_first(web)


def test_redis_restarted_mid_crawl(web: FixtureWeb, tmp_path: Path, pg_url: str) -> None:
    server = PrivateRedis(tmp_path)
    server.start()
    expect = build_fleet_web(web, pages=8, slow=0.1)
    fleet = Fleet(tmp_path, server.url, pg_url, "fleet:", expect["seeds"])
    try:
        fleet.start(3)
        wait_for_pages(web, 30)
        # Every worker in the crawl first: one still starting when Redis goes cannot open its scheduler (a loaded
        # machine let two workers reach 30 pages before the third had). LogStats's first line comes from the
        # spider_opened signal, which Scrapy sends once the scheduler is open.
        wait_for_logs(fleet, 3, "Crawled 0 pages")
        server.stop()  # everything in it is gone: queue, dupefilter, policy cache, Crawl-delay clock
        time.sleep(1.5)
        server.start()
        results = fleet.wait()
    finally:
        fleet.kill_all()
        server.stop()
    assert_fleet_outcome(web, fleet, expect, results)
    logs = "".join((fleet.out(i) / "crawl.log").read_text() for i in range(3))
    assert "Redis scheduler unreachable" in logs and "reachable again" in logs  # the outage was lived through


def test_a_worker_started_during_a_redis_outage_waits_for_it(web: FixtureWeb, tmp_path: Path, pg_url: str) -> None:
    """Redis down when a worker starts (`scrapy crawl` has no up-front check; `optout crawl` can lose Redis right
    after its check): the worker waits, as a running worker does, and crawls once Redis is up. It used to exit 1
    with Scrapy's "Engine slot not assigned", which hid the Redis error."""
    server = PrivateRedis(tmp_path)  # not started yet
    expect = build_fleet_web(web, origins=8)
    fleet = Fleet(tmp_path, server.url, pg_url, "late:", expect["seeds"])
    env = {k: v for k, v in fleet.env.items() if k != "SCRAPY_SETTINGS_MODULE"}
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "scrapy", "crawl", "compliant", "-a", f"seeds_file={fleet.seeds}",
                "-s", f"OPTOUT_FLEET_REDIS={server.url}", "-s", "OPTOUT_CRAWL_ID=late:crawl",
                "-s", f"OPTOUT_REGISTRY_URL={pg_url}", "-s", f"OPTOUT_OUT_DIR={fleet.out(0)}",
                "-s", "OPTOUT_FLEET_GRACE=1", "-s", "LOG_LEVEL=INFO",
            ],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True,
        )  # fmt: skip
    try:
        deadline = time.time() + 60
        while "Redis scheduler unreachable" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        time.sleep(1)  # a while without Redis: still waiting, nothing requested
        assert proc.poll() is None and not web.log
        server.start()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
    text = log.read_text()
    assert proc.returncode == 0 and "Traceback" not in text, text[-3000:]
    assert "Redis scheduler reachable again" in text
    for name in expect["names"]:
        assert len(web.hits(name, "/robots.txt")) == 1
    counts = Counter(page_hits(web))
    assert max(counts.values()) == 1 and set(counts) == expect["pages"]
    assert_crawl_delay_held(web, expect)
    assert fleet.registry_cli("checkpoint").returncode == 0  # the integrator's turn: the records enter the log
    assert {r["target"]["url"] for r in fleet.records()} == expect["reserved"]


def test_scrapy_crawl_compliant_workers_join_with_two_settings(
    web: FixtureWeb, tmp_path: Path, redis_prefix: str, pg_url: str
) -> None:
    """The same fleet through plain `scrapy crawl compliant`: OPTOUT_FLEET_REDIS (and a crawl id) is all it
    takes, the FleetAddon in the project's settings does the rest."""
    expect = build_fleet_web(web, origins=8)
    fleet = Fleet(tmp_path, REDIS_URL, pg_url, redis_prefix, expect["seeds"])
    env = {k: v for k, v in fleet.env.items() if k != "SCRAPY_SETTINGS_MODULE"}

    def worker(i: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                sys.executable, "-m", "scrapy", "crawl", "compliant", "-a", f"seeds_file={fleet.seeds}",
                "-s", f"OPTOUT_FLEET_REDIS={REDIS_URL}", "-s", f"OPTOUT_CRAWL_ID={redis_prefix}crawl",
                "-s", f"OPTOUT_CACHE_PREFIX={redis_prefix}", "-s", f"OPTOUT_REGISTRY_URL={pg_url}",
                "-s", f"OPTOUT_OUT_DIR={fleet.out(i)}", "-s", "OPTOUT_FLEET_GRACE=1", "-s", "LOG_LEVEL=INFO",
            ],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    procs = [worker(i) for i in range(2)]
    errors = [p.communicate(timeout=180)[1] for p in procs]
    for proc, err in zip(procs, errors, strict=True):
        assert proc.returncode == 0, err[-3000:]
    assert all("FleetScheduler" in err for err in errors)  # scrapy-redis scheduled, through the add-on
    for name in expect["names"]:
        assert len(web.hits(name, "/robots.txt")) == 1
    counts = Counter(page_hits(web))
    assert max(counts.values()) == 1 and set(counts) == expect["pages"]
    assert_crawl_delay_held(web, expect)
    proc = fleet.registry_cli("checkpoint")
    assert proc.returncode == 0, proc.stderr
    assert_signed_checkpoint(proc.stdout, fleet)
    assert {r["target"]["url"] for r in fleet.records()} == expect["reserved"]


def test_a_worker_that_cannot_reach_redis_or_the_registry_says_so(tmp_path: Path, pg_url: str) -> None:
    from tests.support.fleet import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    args = ["http://127.0.0.1:9/", "--out", str(tmp_path / "w"), "--distributed"]
    proc = run_cli("crawl", *args, "--redis", dead, "--registry", pg_url)
    assert proc.returncode == 2 and f"cannot reach Redis at {dead}" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli(
        "crawl", *args, "--redis", REDIS_URL, "--registry", f"postgresql://postgres@127.0.0.1:{free_port()}/x"
    )
    assert proc.returncode == 2 and "registry: cannot connect" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("crawl", *args, "--redis", REDIS_URL, "--registry", "sqlite:///x.db")
    assert proc.returncode == 2 and "one registry for all workers" in proc.stderr
