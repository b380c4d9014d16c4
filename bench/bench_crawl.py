"""Benchmark: a whole Scrapy crawl with our full stack against Scrapy's own robots.txt handling.

A local web of many origins (``http://site00000.test/`` …) is served on loopback by an asyncio HTTP server that
acts as an HTTP proxy: a tiny downloader middleware sets ``request.meta["proxy"]``, Scrapy sends absolute-URI
requests, and the server answers by host name. Nothing resolves or leaves the machine; 10,000 origins cost 16 ports.

Every origin has a robots.txt (two dozen rules, ``Disallow: /private/`` and ``/search``) and a tree of HTML pages
(~3.6 KB, a realistic head with JSON-LD, links to five child pages, a private page, search and home). The same
link-following spider, with the same settings, crawls it in a fresh subprocess per crawl, as

  (a) ``scrapy``: ``ROBOTSTXT_OBEY = True``, no add-on (Scrapy's RobotsTxtMiddleware with Protego);
  (b) ``optout``: ``ADDONS = {"middlewares.OptOutAddon": 0}`` with the registry on (SQLite, fresh per crawl):
      robots.txt, then tdmrep.json and ai.txt per origin, usage checks on every response, items stamped and
      checked, every refused URL recorded with its evidence (``--norec``: registry off instead).

Like with like: the add-on brings an extension that calls ``gc.freeze()`` once the spider is open, which any Scrapy
project could use; both sides get it (``--gc freeze``, the default) or neither does (``--gc default``).

Throughput is pages delivered to the spider per second of crawl (``item_scraped_count`` over
``elapsed_time_seconds``, start-up and shutdown included), and beside it the rate between the 10 % and 90 % marks of the
pages, once every origin's policy is loaded (no start-up, no tail), which tells a per-page cost from a per-origin one,
and the seconds the garbage collector took; CPU is the crawler process's user+system time per page;
peak memory is its ``ru_maxrss``. By default the crawls run one at a time, alternating (a, b, b, a, a, b, …) so
that a drift of the machine's speed hits both alike, and the medians of ``--repeat`` rounds (at least 5) are
compared, with every run printed. ``--paired`` runs (a) and (b) at the same time instead, each against its own
server (on 2 cores the slower side finishes alone and the ratio is pulled towards 1: kept for comparison only).
A second table crawls the same 10,000 pages spread over 100 and over 10,000 origins, one at a time, to show how
memory and speed behave as the number of origins grows.

With ``--against CHECKOUT`` the baseline is the add-on of another checkout instead of Scrapy: a before/after of a
change (``git worktree add ../before <commit>`` makes one). The crawl child also takes ``optout~usage``,
``optout~pipeline`` and ``optout~items`` (the add-on without that component), which bench_instructions.py uses to
price each component.

Run: python bench/bench_crawl.py [--quick] [--repeat 5] [--origins 20] [--paired] [--gc freeze|default] [--norec]
     [--no-scaling] [--profile] [--against CHECKOUT]   (the default run takes about 8 minutes on 2 vCPUs)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from scrapy.utils.httpobj import urlparse_cached

ROOT = Path(__file__).resolve().parent.parent

# -- the web --------------------------------------------------------------------------------------------------

ROBOTS = (
    "# robots.txt for a news site\nUser-agent: *\nDisallow: /private/\nDisallow: /search\nDisallow: /account/\n"
    + "".join(f"Disallow: /tag/{i}/*?sort=\n" for i in range(20))
    + "Allow: /\n\n"
    + "".join(f"User-agent: {bot}\nDisallow: /\n\n" for bot in ("AhrefsBot", "SemrushBot", "MJ12bot", "DotBot"))
    + "Sitemap: http://{host}/sitemap.xml\n"
)
FANOUT = 5
PROXY_PORTS = 16


def page_html(host: str, n: int, pages: int) -> bytes:
    children = "".join(
        f'<li><a href="/p/{c}">Story {c}: a headline long enough to be realistic</a></li>'
        for c in range(FANOUT * n + 1, min(FANOUT * n + FANOUT, pages - 1) + 1)
    )
    head = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{host} page {n}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="description" content="Budget talks resume as ministers meet to agree on next year\'s plans.">'
        f'<link rel="canonical" href="http://{host}/p/{n}"><link rel="stylesheet" href="/static/site.css">'
        '<meta property="og:type" content="article"><meta property="og:title" content="Budget talks">'
        '<script type="application/ld+json">{"@context":"https://schema.org","@type":"NewsArticle",'
        '"headline":"Budget talks resume","datePublished":"2026-11-14"}</script>'
        "<style>body{font-family:sans-serif;max-width:40em;margin:auto}nav a{margin-right:1em}</style></head>"
    )
    text = (
        "<p>Ministers met again on Tuesday to resume talks on the budget, after a week in which the negotiations "
        "had stalled over the size of the contribution from member states and the timetable for repayment. "
        "Officials said a compromise was within reach but that several details remained open.</p>"
    ) * 8
    body = (
        f'<body><nav><a href="/">Home</a><a href="/private/{n % 10}">Members</a><a href="/search">Search</a></nav>'
        f"<main><h1>Page {n} of {host}</h1>{text}<ul>{children}</ul></main><footer>© 2026</footer></body></html>"
    )
    return (head + body).encode()


def _answer(status: str, body: bytes, ctype: str) -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n".encode("latin-1") + body


def respond(host: str, path: str, pages: int) -> bytes:
    if path == "/robots.txt":
        return _answer("200 OK", ROBOTS.replace("{host}", host).encode(), "text/plain")
    if path == "/":
        return _answer("200 OK", page_html(host, 0, pages), "text/html; charset=utf-8")
    if path.startswith("/p/"):
        try:
            n = int(path[3:])
        except ValueError:
            n = -1
        if 0 < n < pages:
            return _answer("200 OK", page_html(host, n, pages), "text/html; charset=utf-8")
    if path.startswith("/private/"):
        return _answer("200 OK", b"<!doctype html><title>members</title>", "text/html")
    return _answer("404 Not Found", b"not found", "text/plain")


class _Proxy(asyncio.Protocol):
    pages = 100

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = self.buf[:end], self.buf[end + 4 :]
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            try:
                _method, target, _version = line.split(" ", 2)
            except ValueError:
                self.transport.write(_answer("400 Bad Request", b"", "text/plain"))
                self.transport.close()
                return
            if target.startswith("http://"):
                host, _, path = target[7:].partition("/")
                path = "/" + path
            else:  # origin-form: take the Host header
                host, path = "", target
                for h in head.split(b"\r\n")[1:]:
                    if h[:5].lower() == b"host:":
                        host = h[5:].strip().decode("latin-1")
            self.transport.write(respond(host.split(":")[0], path.split("?", 1)[0], self.pages))


def serve(port_out: Any, pages: int) -> None:
    _Proxy.pages = pages

    async def main() -> None:
        loop = asyncio.get_running_loop()
        servers = [await loop.create_server(_Proxy, "127.0.0.1", 0, backlog=1024) for _ in range(PROXY_PORTS)]
        port_out.put([server.sockets[0].getsockname()[1] for server in servers])
        await asyncio.gather(*(server.serve_forever() for server in servers))

    asyncio.run(main())


# -- one crawl, in its own process -----------------------------------------------------------------------------


class ProxyMiddleware:
    """Sends every request through the loopback proxy. Setting ``meta["proxy"]`` here, rather than exporting
    ``http_proxy``, spares Scrapy's HttpProxyMiddleware a ``proxy_bypass()`` environment scan per request, which
    would add the same cost to both variants and so hide part of ours.

    Each origin is sent to one of several proxy ports: Scrapy keeps CONCURRENT_REQUESTS_PER_DOMAIN idle
    connections per proxy, so a single proxy port would make whichever variant has more requests in flight open
    new TCP connections all the time, where on the real web each origin has its own connection pool."""

    proxies = os.environ.get("BENCH_PROXY", "").split(",")

    def process_request(self, request: Any, spider: Any = None) -> None:
        if "proxy" not in request.meta:
            host = (urlparse_cached(request).hostname or "").encode()
            request.meta["proxy"] = self.proxies[zlib.crc32(host) % len(self.proxies)]


def plain_spider(origins: int, marks: dict[int, float] | None = None) -> Any:
    """The spider every crawl benchmark runs as its baseline: a plain Scrapy spider that knows nothing of this
    project (title and links, follows every link). Built inside the child process, after its settings. ``marks``:
    page counts at which to note the time (``time.perf_counter``), at the cost of a counter a page, on both sides."""
    import scrapy

    noted = marks if marks is not None else {}
    parsed = [0]

    class PlainSpider(scrapy.Spider):
        name = "plain"

        async def start(self):  # type: ignore[override]
            for i in range(origins):
                yield scrapy.Request(f"http://site{i:05d}.test/")

        def parse(self, response: Any) -> Any:
            parsed[0] += 1
            if parsed[0] in noted:
                noted[parsed[0]] = time.perf_counter()
            yield {"url": response.url, "title": response.css("title::text").get()}
            for href in response.css("a::attr(href)").getall():
                yield response.follow(href)

    return PlainSpider


LEAVE_OUT = {
    "usage": (("DOWNLOADER_MIDDLEWARES", "middlewares.downloader.OptOutUsageMiddleware"),),
    "pipeline": (("ITEM_PIPELINES", "middlewares.items.OptOutItemPipeline"),),
    # the stamping spider middleware only with the pipeline: alone, the pipeline would count every unstamped item
    "items": (
        ("SPIDER_MIDDLEWARES", "middlewares.items.OptOutSpiderMiddleware"),
        ("ITEM_PIPELINES", "middlewares.items.OptOutItemPipeline"),
    ),
}
"""``optout~NAME``: the add-on without one of its per-page components, so that what that component costs is the
difference (bench_instructions.py prints it). Not a configuration anyone should run."""


def run_crawl(variant: str, origins: int, pages: int, workdir: str, profile: bool) -> None:
    sys.path.insert(0, str(ROOT))
    from scrapy.crawler import CrawlerProcess

    variant, _, left_out = variant.partition("~")
    if left_out:
        import middlewares.addon

        for setting, component in LEAVE_OUT[left_out]:
            del getattr(middlewares.addon, setting)[component]

    settings: dict[str, Any] = {
        "LOG_LEVEL": "WARNING",
        "TELNETCONSOLE_ENABLED": False,
        "USER_AGENT": "Mozilla/5.0 (compatible; BenchBot/1.0; +http://bench.test/bot)",
        "CONCURRENT_REQUESTS": 32,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
        # Scrapy 2.13+ starts CONCURRENT_ITEMS asyncio tasks for every response's output; the default (100) makes
        # the baseline ~25% slower on this spider (six outputs per page), which would hide our cost in its own.
        "CONCURRENT_ITEMS": 8,
        "DOWNLOAD_DELAY": 0,
        "RETRY_ENABLED": False,
        "DOWNLOAD_TIMEOUT": 30,
        "DOWNLOADER_MIDDLEWARES": {ProxyMiddleware: 700},  # before HttpProxyMiddleware (750)
        **json.loads(os.environ.get("BENCH_SETTINGS", "{}")),
    }
    gc_freeze = os.environ.get("BENCH_GC", "freeze") == "freeze"
    if variant == "scrapy":
        settings["ROBOTSTXT_OBEY"] = True
        if gc_freeze:  # what the add-on brings, given to the baseline too: like with like
            settings["EXTENSIONS"] = {"middlewares.gcfreeze.GcFreeze": 0}
    else:
        settings["OPTOUT_GC_FREEZE"] = gc_freeze
        settings["ADDONS"] = {"middlewares.OptOutAddon": 0}
        registry = f"sqlite:///{workdir}/registry.db" if variant == "optout" else ""
        settings["OPTOUT_REGISTRY_URL"] = registry
        settings["OPTOUT_CACHE_URL"] = f"sqlite:///{workdir}/cache.db"
    gc_time = [0.0, 0.0, 0, 0]  # total seconds, start of the current collection, collections, full collections

    def gc_timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_time[1] = time.perf_counter()
        else:
            gc_time[0] += time.perf_counter() - gc_time[1]
            gc_time[2] += 1
            gc_time[3] += info["generation"] == 2

    gc.callbacks.append(gc_timer)
    process = CrawlerProcess(settings)
    # When the 10 % and 90 % marks of the pages were parsed: the rate between them is the crawl's once every origin
    # has its policy (no start-up, no tail), which tells a per-page cost from a per-origin one.
    marks = {max(1, origins * pages // 10): 0.0, max(1, origins * pages * 9 // 10): 0.0}
    crawler = process.create_crawler(plain_spider(origins, marks))
    process.crawl(crawler)
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        process.start()
        prof.disable()
        prof.dump_stats(f"{workdir}/profile.out")
        pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(35)
        pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative").print_stats("middlewares", 40)
    else:
        process.start()
    stats = crawler.stats.get_stats()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    first, last = min(marks), max(marks)  # one mark in a crawl of a page or a few
    out = {
        "items": stats.get("item_scraped_count", 0),
        "responses": stats.get("response_received_count", 0),
        "elapsed": stats.get("elapsed_time_seconds", 0.0),
        "maxrss_mb": usage.ru_maxrss / 1024,
        "cpu": usage.ru_utime + usage.ru_stime,
        "steady_pps": (last - first) / (marks[last] - marks[first])
        if last > first and marks[last] > marks[first]
        else 0.0,
        "gc_seconds": gc_time[0],
        "gc_full": gc_time[3],
        "gc_objects": len(gc.get_objects()),
        "ignored": stats.get("downloader/exception_type_count/scrapy.exceptions.IgnoreRequest", 0),
        "records": stats.get("optout/registry/written", 0),
        "errors": stats.get("log_count/ERROR", 0),
    }
    print(json.dumps(out))


def proxy_env(ports: list[int]) -> dict[str, str]:
    """The environment of a crawl process: ProxyMiddleware's ports, no proxy variables or Scrapy project."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "no_proxy")}
    env["BENCH_PROXY"] = ",".join(f"http://127.0.0.1:{port}" for port in ports)
    env.pop("SCRAPY_SETTINGS_MODULE", None)
    return env


def launch(variant: str, origins: int, pages: int, ports: list[int], profile: bool = False) -> Any:
    """Start one crawl. ``optout@CHECKOUT`` runs the add-on of another checkout (its own copy of this script)."""
    env = proxy_env(ports)
    workdir = tempfile.TemporaryDirectory(prefix="bench-crawl-")
    child, _, checkout = variant.partition("@")
    script = str(Path(checkout) / "bench" / "bench_crawl.py") if checkout else __file__
    cmd = [sys.executable, script, "--child", child, str(origins), str(pages), workdir.name]
    proc = subprocess.Popen(
        [*cmd, "--profile"] if profile else cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=workdir.name,
    )
    return variant, proc, workdir, profile


def finish(launched: Any) -> dict[str, Any]:
    variant, proc, workdir, profile = launched
    stdout, stderr = proc.communicate()
    workdir.cleanup()
    if proc.returncode != 0:
        sys.exit(f"{variant} crawl failed:\n{stderr[-3000:]}")
    if profile:
        print(stderr[-12000:])
    result = json.loads(stdout.strip().splitlines()[-1])
    result["pps"] = result["items"] / result["elapsed"] if result["elapsed"] else 0.0
    result["cpu_ms"] = 1000 * result["cpu"] / max(result["items"], 1)
    return result


def crawl(variant: str, origins: int, pages: int, ports: list[int], profile: bool = False) -> dict[str, Any]:
    return finish(launch(variant, origins, pages, ports, profile=profile))


def compile_project(*checkouts: Path) -> None:
    """Bytecode for the project's modules before any crawl, as pip writes it for an installed wheel and as Scrapy's
    own modules have it: where ``PYTHONDONTWRITEBYTECODE`` is set (as on this project's CI machines), every crawl
    process would otherwise compile some 16,000 lines of our source again at start-up, which the baseline never
    pays (0.1-0.3 s a crawl here)."""
    import compileall

    for checkout in (ROOT, *checkouts):
        for package in ("middlewares", "optout_registry", "crawler"):
            if (checkout / package).is_dir():
                compileall.compile_dir(checkout / package, quiet=1)


def start_server(pages: int) -> tuple[multiprocessing.Process, list[int]]:
    queue: Any = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(queue, pages), daemon=True)
    server.start()
    return server, queue.get(timeout=10)


def label(variant: str) -> str:
    """``optout@/path/to/checkout`` as ``optout@checkout``, to fit the tables."""
    child, _, checkout = variant.partition("@")
    return f"{child}@{Path(checkout).name}" if checkout else variant


def table(runs: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    width = 1 + max(len(rs) for rs in runs.values()) * 6  # every round's figure, however many rounds
    head = f"{'variant':<14}{'pages':>7}{'pages/s median':>16}{'runs':>{width}}{'CPU ms/page':>13}{'peak RSS MB':>13}"
    print(head + f"{'records':>9}{'10-90% p/s':>12}{'GC s':>7}")
    med = {}
    for v, rs in runs.items():
        med[v] = statistics.median(r["pps"] for r in rs)
        cpu = statistics.median(r["cpu_ms"] for r in rs)
        all_runs = " ".join(f"{r['pps']:5.0f}" for r in rs)
        rss = max(r["maxrss_mb"] for r in rs)
        print(
            f"{label(v):<14}{rs[0]['items']:>7}{med[v]:>16.0f}{all_runs:>{width}}{cpu:>13.2f}{rss:>13.0f}"
            f"{rs[0]['records']:>9}{statistics.median(r['steady_pps'] for r in rs):>12.0f}"
            f"{statistics.median(r['gc_seconds'] for r in rs):>7.2f}"
        )
    if len({r["items"] for rs in runs.values() for r in rs}) != 1:
        print("WARNING: the variants did not deliver the same pages")
    return med


def paired(variants: list[str], origins: int, pages: int, repeat: int) -> None:
    """Baseline and full stack crawl at the same time, each against its own server, launched in alternating order:
    both see the same machine at the same moment, so the slow drifts of a shared VM (often +-10% between runs
    minutes apart) cancel out. Pinning each to a CPU was tried and is worse: the two vCPUs are not equally fast."""
    servers = [start_server(pages) for _ in variants]
    try:
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        ratios = []
        for r in range(repeat):
            order = [0, 1] if r % 2 == 0 else [1, 0]
            launched = {i: launch(variants[i], origins, pages, servers[i][1]) for i in order}
            a, b = finish(launched[0]), finish(launched[1])
            runs[variants[0]].append(a)
            runs[variants[1]].append(b)
            ratios.append(b["pps"] / a["pps"])
        table(runs)
        ratio = statistics.geometric_mean(ratios)
        print(
            f"per-round {label(variants[1])} / {label(variants[0])} throughput: " + " ".join(f"{x:.3f}" for x in ratios)
        )
        if "@" in variants[0]:
            print(f"geometric mean {ratio:.3f}: {(ratio - 1) * 100:+.1f}% throughput against {label(variants[0])}")
        else:
            print(
                f"geometric mean {ratio:.3f}: the full stack costs {(1 - ratio) * 100:+.1f}% throughput (target <= 5%)"
            )
    finally:
        for server, _ in servers:
            server.terminate()


def sequential(variants: list[str], origins: int, pages: int, repeat: int) -> None:
    """One crawl at a time, alternating which side goes first (a b, b a, a b, …); medians and spread."""
    server, ports = start_server(pages)
    try:
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        for r in range(repeat):
            for v in variants if r % 2 == 0 else variants[::-1]:
                runs[v].append(crawl(v, origins, pages, ports))
    finally:
        server.terminate()
    med = table(runs)
    base, ours = variants
    ratio = med[ours] / med[base]
    spread = [o["pps"] / b["pps"] for b, o in zip(runs[base], runs[ours], strict=True)]
    cpu = {v: statistics.median(r["cpu_ms"] for r in rs) for v, rs in runs.items()}
    cpu_cost = cpu[ours] / cpu[base] - 1
    steady = {v: statistics.median(r["steady_pps"] for r in rs) for v, rs in runs.items()}
    print(
        f"between the 10 % and 90 % marks (every origin's policy loaded): {steady[ours] / steady[base]:.3f} of "
        f"{label(base)}'s rate; garbage collection {statistics.median(r['gc_seconds'] for r in runs[base]):.2f} -> "
        f"{statistics.median(r['gc_seconds'] for r in runs[ours]):.2f} s a crawl"
    )
    print(
        f"per-round {label(ours)} / {label(base)} throughput: "
        + " ".join(f"{x:.3f}" for x in spread)
        + f" (median round {statistics.median(spread):.3f}; the verdict below is on the ratio of the medians)"
    )
    if "@" in base:
        print(f"median {ratio:.3f} of {label(base)}'s throughput; CPU per page {cpu_cost * 100:+.1f}%")
        return
    print(
        f"median throughput {ratio:.3f} of plain Scrapy: {(1 - ratio) * 100:+.1f}% cost (target <= 5%: "
        f"{'met' if 1 - ratio <= 0.05 else 'NOT met'}); CPU per page {cpu[base]:.2f} -> {cpu[ours]:.2f} ms, "
        f"{cpu_cost * 100:+.1f}% (target <= 8%: {'met' if cpu_cost <= 0.08 else 'NOT met'})"
    )


def scaling(total: int, variants: list[str]) -> None:
    print(f"\nmemory vs number of origins ({total} pages in total, one run each, unpinned)")
    print(f"{'variant':<14}{'origins':>8}{'pages':>8}{'pages/s':>10}{'CPU ms/page':>13}{'peak RSS MB':>13}")
    for v in variants:
        for n in (100, 10_000):
            server, ports = start_server(max(1, total // n))
            try:
                r = crawl(v, n, max(1, total // n), ports)
            finally:
                server.terminate()
            print(f"{label(v):<14}{n:>8}{r['items']:>8}{r['pps']:>10.0f}{r['cpu_ms']:>13.2f}{r['maxrss_mb']:>13.0f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="2,000 pages, one round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--origins", type=int, default=20)
    parser.add_argument("--paired", action="store_true", help="both sides at once (not like with like on 2 cores)")
    parser.add_argument("--gc", choices=("freeze", "default"), default="freeze", help="GC settings of both sides")
    parser.add_argument("--norec", action="store_true", help="compare against the add-on with recording off")
    parser.add_argument("--profile", action="store_true", help="one cProfile'd run of the full stack")
    parser.add_argument("--no-scaling", action="store_true", help="skip the 100 vs 10,000 origins table")
    parser.add_argument(
        "--against",
        metavar="CHECKOUT",
        help="compare with the add-on of another checkout (e.g. a git worktree of an earlier commit), not with Scrapy",
    )
    args = parser.parse_args()
    os.environ["BENCH_GC"] = args.gc  # read by every crawl process, both sides alike
    total = 2_000 if args.quick else 10_000
    repeat = 1 if args.quick else args.repeat
    origins = args.origins
    pages = total // origins
    variants = ["scrapy", "optout-norec" if args.norec else "optout"]
    if args.against:
        variants[0] = "optout@" + str(Path(args.against).resolve())
    compile_project(*([Path(args.against).resolve()] if args.against else []))
    if args.profile:
        server, ports = start_server(pages)
        try:
            crawl("optout", origins, pages, ports, profile=True)
        finally:
            server.terminate()
        return
    mode = "paired" if args.paired else "sequential, alternating"
    print(
        f"{origins} origins x {pages} pages = {origins * pages} pages per crawl; {repeat} rounds, {mode}; "
        f"gc.freeze: {'both sides' if args.gc == 'freeze' else 'neither side'}"
    )
    if args.paired:
        paired(variants, origins, pages, repeat)
    else:
        sequential(variants, origins, pages, repeat)
    if not args.no_scaling:
        scaling(total, variants)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        run_crawl(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], "--profile" in sys.argv)
    else:
        main()
