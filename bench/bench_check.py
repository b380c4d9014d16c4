"""Benchmark: ``optout check --urls`` (issue 16) side by side with what a user would otherwise run.

A loopback web of ORIGINS origins (one port each on 127.0.0.1, one asyncio server process) where every tenth origin
says something different: robots.txt disallowing a path, disallowing our token, Content-Usage and Content-Signal
lines, a GPTBot group (the cross-token reading), a tdmrep.json reserving everything, an ai.txt, a soft-404 policy
file; the rest allow. Pages are small HTML (~1 KB). Nothing leaves the machine.

(a) site level: URLS URLs over ORIGINS origins, ``optout check --urls FILE --site-level`` as a user runs it (a fresh
    process, start-up and the policy files of every origin included), against today's one-at-a-time path
    (``crawler.check.Checker``, one URL after the other as ``optout check URL…`` does, every page requested) timed on
    a sample of the same list and compared as URLs per second;
(b) fetched: FETCHED URLs (every page requested) by ``optout check --urls FILE`` against a plain Scrapy spider that
    fetches the same list with ``ROBOTSTXT_OBEY = True``, the same concurrency (64) and one request per origin at a
    time (each origin its own download slot, robots.txt included, as separate host names would be on the web: on
    loopback they differ only by port);
(c) memory: the peak RSS (VmHWM) of ``optout check --urls big.parquet --site-level`` over a Parquet file of ROWS
    rows (a url column and a 200-byte text column), output to /dev/null.

Rounds alternate (bench/peers.py); figures are medians with their spread.

Run: python bench/bench_check.py [--origins 1000] [--urls 100000] [--fetched 20000] [--rows 10000000]
     [--repeat 3] [--skip a,b,c]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peers import command_line, ratio, spread  # noqa: E402

AGENT = "OptOutBot"
PAGE = (
    b"<!doctype html><html><head><meta charset='utf-8'><title>page</title>"
    b"<meta name='description' content='a page of the benchmark web'></head><body><h1>page</h1>"
    + b"<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>" * 12
    + b"</body></html>"
)


def robots_for(kind: int) -> bytes:
    base = "User-agent: *\nDisallow: /private/\nDisallow: /search\n"
    text = {
        0: base,
        1: base + "Content-Usage: train-ai=n\n",
        2: base + "Content-Signal: ai-train=no, search=yes\n",
        3: f"User-agent: {AGENT}\nDisallow: /\n\n" + base,
        4: "User-agent: GPTBot\nDisallow: /\n\n" + base,
        5: base,  # tdmrep.json reserves everything
        6: base,  # ai.txt disallows
        7: base + "Disallow: /p/1\n",
        8: base,  # soft 404: policy files answered with the home page
        9: base + "Allow: /\n",
    }[kind]
    return text.encode()


def _answer(status: str, body: bytes, ctype: str) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode("latin-1") + body


def respond(kind: int, path: str) -> bytes:
    if path == "/robots.txt":
        return _answer("200 OK", robots_for(kind), "text/plain")
    if path == "/.well-known/tdmrep.json":
        if kind == 5:
            return _answer("200 OK", b'[{"location": "/", "tdm-reservation": 1}]', "application/json")
        if kind == 8:
            return _answer("200 OK", PAGE, "text/html")
    if path == "/ai.txt":
        if kind == 6:
            return _answer("200 OK", b"User-Agent: *\nDisallow: /\n", "text/plain")
        if kind == 8:
            return _answer("200 OK", PAGE, "text/html")
    if path.startswith(("/p/", "/private/")):
        return _answer("200 OK", PAGE, "text/html; charset=utf-8")
    return _answer("404 Not Found", b"not found", "text/plain")


class _Site(asyncio.Protocol):
    def __init__(self, kind: int) -> None:
        self.kind = kind
        self.buf = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = self.buf[:end], self.buf[end + 4 :]
            parts = head.split(b"\r\n", 1)[0].split(b" ")
            path = parts[1].decode("latin-1") if len(parts) > 1 else "/"
            self.transport.write(respond(self.kind, path.split("?", 1)[0]))


def serve(port_out: Any, origins: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers = [
            await loop.create_server(lambda k=i % 10: _Site(k), "127.0.0.1", 0, backlog=256) for i in range(origins)
        ]
        port_out.put([s.sockets[0].getsockname()[1] for s in servers])
        await asyncio.gather(*(s.serve_forever() for s in servers))

    asyncio.run(main())


def start_web(origins: int) -> tuple[multiprocessing.Process, list[int]]:
    queue: Any = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(queue, origins), daemon=True)
    server.start()
    return server, queue.get(timeout=60)


def url_list(ports: list[int], total: int) -> list[str]:
    """``total`` URLs spread evenly over the origins, interleaved (a real list is not sorted by site)."""
    urls = []
    per = max(1, total // len(ports))
    for n in range(per):
        for port in ports:
            path = f"/private/{n}" if n % 10 == 9 else f"/p/{n}"
            urls.append(f"http://127.0.0.1:{port}{path}")
    return urls[:total]


# -- the sides --------------------------------------------------------------------------------------------------


def run_optout(list_path: str, *extra: str) -> dict[str, Any]:
    """``optout check --urls`` in a fresh process; wall time from start to exit, peak RSS from /proc."""
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        summary = Path(tmp) / "summary.json"
        cmd = [sys.executable, "-m", "crawler.cli", "check", "--urls", list_path, "--summary", str(summary), *extra]
        started = time.monotonic()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with open(os.devnull, "w") as devnull:
            proc = subprocess.Popen(cmd, stdout=devnull, stderr=subprocess.PIPE, text=True, cwd=ROOT)
            peak = 0
            while proc.poll() is None:
                peak = max(peak, _hwm(proc.pid))
                time.sleep(0.05)
            stderr = proc.stderr.read() if proc.stderr else ""
        seconds = time.monotonic() - started
        cpu = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - _cpu(before)
        if proc.returncode not in (0, 1):
            sys.exit(f"optout check failed ({proc.returncode}):\n{stderr[-3000:]}")
        data = json.loads(summary.read_text())
    data["wall"] = seconds
    data["rate"] = data["rows"] / seconds
    data["run_rate"] = data["rows"] / data["seconds"]  # the run itself, without Python's start-up and exit
    data["cpu"] = cpu
    data["cpu_rate"] = data["rows"] / cpu
    data["peak_mb"] = peak / 1024
    return data


def _cpu(usage: Any) -> float:
    return usage.ru_utime + usage.ru_stime


def _hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_one_at_a_time(urls: list[str]) -> dict[str, Any]:
    """Today's path: one Checker, one URL after the other (what ``optout check URL…`` does), in this process."""
    from crawler.check import Checker
    from crawler.cli import user_agent_for
    from crawler.fetcher import RequestsFetcher
    from middlewares.policy import Policy

    policy = Policy.build(agent=AGENT)
    fetcher = RequestsFetcher(user_agent_for(AGENT), timeout=10)
    checker = Checker(policy, fetcher)
    started, before = time.monotonic(), _cpu(resource.getrusage(resource.RUSAGE_SELF))
    for url in urls:
        checker.check(url)
    seconds = time.monotonic() - started
    cpu = _cpu(resource.getrusage(resource.RUSAGE_SELF)) - before
    fetcher.close()
    return {"rows": len(urls), "wall": seconds, "rate": len(urls) / seconds, "cpu": cpu, "cpu_rate": len(urls) / cpu}


SCRAPY_CHILD = """
import json, sys, time
import scrapy
from scrapy.crawler import CrawlerProcess
from urllib.parse import urlsplit

urls = open(sys.argv[1]).read().split()

# Each origin its own download slot, robots.txt requests included, as its own host name would give it on the web
# (on loopback the origins differ only by port, and Scrapy keys slots by host name).
class OriginSlots:
    def process_request(self, request, spider=None):
        request.meta.setdefault("download_slot", urlsplit(request.url).netloc)

class ListSpider(scrapy.Spider):
    name = "list"
    async def start(self):
        for url in urls:
            yield scrapy.Request(url, dont_filter=True)
    def parse(self, response):
        yield {"url": response.url, "status": response.status}

settings = {
    "ROBOTSTXT_OBEY": True,
    "USER_AGENT": "Mozilla/5.0 (compatible; OptOutBot/0.1)",
    "CONCURRENT_REQUESTS": 64,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 1,
    "DOWNLOAD_DELAY": 0,
    "RETRY_ENABLED": False,
    "LOG_LEVEL": "WARNING",
    "TELNETCONSOLE_ENABLED": False,
    "DOWNLOADER_MIDDLEWARES": {OriginSlots: 50},
}
process = CrawlerProcess(settings)
crawler = process.create_crawler(ListSpider)
process.crawl(crawler)
process.start()
stats = crawler.stats.get_stats()
print(json.dumps({"items": stats.get("item_scraped_count", 0),
                  "forbidden": stats.get("robotstxt/forbidden", 0),
                  "elapsed": stats.get("elapsed_time_seconds", 0.0),
                  "responses": stats.get("response_received_count", 0)}))
"""


def run_scrapy(list_path: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-check-scrapy-") as tmp:
        script = Path(tmp) / "spider.py"
        script.write_text(SCRAPY_CHILD)
        env = {k: v for k, v in os.environ.items() if k != "SCRAPY_SETTINGS_MODULE"}
        started, before = time.monotonic(), _cpu(resource.getrusage(resource.RUSAGE_CHILDREN))
        proc = subprocess.run(
            [sys.executable, str(script), list_path], capture_output=True, text=True, cwd=tmp, env=env
        )
        seconds = time.monotonic() - started
        cpu = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - before
    if proc.returncode != 0:
        sys.exit(f"scrapy failed:\n{proc.stderr[-3000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = data["items"] + data["forbidden"]
    return {
        **data,
        "rows": rows,
        "wall": seconds,
        "rate": rows / seconds,
        "run_rate": rows / data["elapsed"],
        "cpu": cpu,
        "cpu_rate": rows / cpu,
    }


def write_parquet(path: str, ports: list[int], rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("url", pa.string()), ("text", pa.string())])
    text = "x" * 200
    with pq.ParquetWriter(path, schema) as writer:
        step = 100_000
        for start in range(0, rows, step):
            n = min(step, rows - start)
            urls = [f"http://127.0.0.1:{ports[i % len(ports)]}/p/{i // len(ports)}" for i in range(start, start + n)]
            writer.write_table(pa.table({"url": urls, "text": [text] * n}, schema=schema))


# -- the figures ----------------------------------------------------------------------------------------------------


def rounds(repeat: int, sides: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    names = list(sides)
    out: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(repeat):
        for name in names if r % 2 == 0 else list(reversed(names)):
            result = sides[name]()
            out[name].append(result)
            print(
                f"  round {r + 1} {name}: {result['rows']:,} rows in {result['wall']:.2f} s = {result['rate']:,.0f}/s"
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--origins", type=int, default=1000)
    parser.add_argument("--urls", type=int, default=100_000, help="(a) site-level list size")
    parser.add_argument("--sample", type=int, default=2000, help="(a) one-at-a-time sample size")
    parser.add_argument("--fetched", type=int, default=20_000, help="(b) fetched list size")
    parser.add_argument("--rows", type=int, default=10_000_000, help="(c) Parquet rows")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: a, b, c")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    print(command_line())
    server, ports = start_web(args.origins)
    print(f"loopback web: {len(ports):,} origins on 127.0.0.1 (one asyncio server process), 2 cores shared")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
            if "a" not in skip:
                part_a(tmp, ports, args)
            if "b" not in skip:
                part_b(tmp, ports, args)
            if "c" not in skip:
                part_c(tmp, ports, args)
    finally:
        server.terminate()


def part_a(tmp: str, ports: list[int], args: argparse.Namespace) -> None:
    urls = url_list(ports, args.urls)
    path = f"{tmp}/site-level.txt"
    Path(path).write_text("\n".join(urls) + "\n")
    # the sample: the first URLs of the first 20 origins, as in the list (a fresh origin costs the same in both)
    picked = set(ports[:20])
    sample = [u for u in urls if int(u.split(":")[2].split("/")[0]) in picked][: args.sample]
    print(f"\n(a) site level: {len(urls):,} URLs over {len(ports):,} origins")
    runs = rounds(
        args.repeat,
        {
            "optout check --urls --site-level": lambda: run_optout(path, "--site-level"),
            "one at a time (Checker.check)": lambda: run_one_at_a_time(sample),
        },
    )
    ours = [r["rate"] for r in runs["optout check --urls --site-level"]]
    peer = [r["rate"] for r in runs["one at a time (Checker.check)"]]
    last = runs["optout check --urls --site-level"][-1]
    ours_cpu = [r["cpu_rate"] for r in runs["optout check --urls --site-level"]]
    peer_cpu = [r["cpu_rate"] for r in runs["one at a time (Checker.check)"]]
    print(f"  optout check --urls --site-level: {spread(ours)} URLs/s (target >= 5,000); {spread(ours_cpu)} per CPU s")
    print(f"  one at a time (today's path, {len(sample):,}-URL sample): {spread(peer)} URLs/s;", end=" ")
    print(f"{spread(peer_cpu)} per CPU s")
    print(f"  ratio: {ratio(ours, peer)}; per CPU second {ratio(ours_cpu, peer_cpu)}")
    print(f"  requests: {last['requests']:,} for {last['origins']:,} origins; peak RSS {last['peak_mb']:.0f} MB")


def part_b(tmp: str, ports: list[int], args: argparse.Namespace) -> None:
    urls = url_list(ports, args.fetched)
    path = f"{tmp}/fetched.txt"
    Path(path).write_text("\n".join(urls) + "\n")
    print(
        f"\n(b) fetched: {len(urls):,} URLs over {min(len(ports), len(urls)):,} origins, every allowed page requested"
    )
    runs = rounds(
        args.repeat,
        {"optout check --urls": lambda: run_optout(path), "scrapy ROBOTSTXT_OBEY": lambda: run_scrapy(path)},
    )
    ours = [r["rate"] for r in runs["optout check --urls"]]
    peer = [r["rate"] for r in runs["scrapy ROBOTSTXT_OBEY"]]
    ours_cpu = [r["cpu_rate"] for r in runs["optout check --urls"]]
    peer_cpu = [r["cpu_rate"] for r in runs["scrapy ROBOTSTXT_OBEY"]]
    ours_run = [r["run_rate"] for r in runs["optout check --urls"]]
    peer_run = [r["run_rate"] for r in runs["scrapy ROBOTSTXT_OBEY"]]
    print(f"  optout check --urls: {spread(ours)} URLs answered/s, process start to exit;", end=" ")
    print(f"{spread(ours_run)} during the run; {spread(ours_cpu)} per CPU s")
    print(f"  plain Scrapy spider, ROBOTSTXT_OBEY: {spread(peer)} URLs/s (fetched or refused);", end=" ")
    print(f"{spread(peer_run)} during the crawl (elapsed_time_seconds); {spread(peer_cpu)} per CPU s")
    print(f"  ratio (target >= 1.0): process {ratio(ours, peer)}; run {ratio(ours_run, peer_run)};", end=" ")
    print(f"per CPU second {ratio(ours_cpu, peer_cpu)}")


def part_c(tmp: str, ports: list[int], args: argparse.Namespace) -> None:
    path = f"{tmp}/big.parquet"
    started = time.monotonic()
    write_parquet(path, ports, args.rows)
    size = os.path.getsize(path) / 2**20
    print(f"\n(c) memory: {args.rows:,}-row Parquet ({size:,.0f} MB, written in {time.monotonic() - started:.0f} s)")
    result = run_optout(path, "--site-level")
    print(
        f"  optout check --urls big.parquet --site-level: peak RSS {result['peak_mb']:,.0f} MB (target < 1024), "
        f"{result['rows']:,} rows in {result['wall']:,.0f} s = {result['rate']:,.0f}/s"
    )


if __name__ == "__main__":
    main()
