"""Benchmark: ``optout filter`` (issue 17) against raw iteration of the same WARC file with the same library.

A Common-Crawl-shaped WARC of RECORDS captures (request, response, metadata; gzip member per record; HTML pages of
5-50 KB; a few pages in a hundred carrying X-Robots-Tag or a tdm-reservation meta) over ORIGINS loopback origins,
each serving robots.txt (a few disallow a path). The site policies are cached first (one ``optout filter --cache``
run that fetches them), so the timed runs ask nothing of the network:

(a) throughput: ``optout filter WARC --cache …`` in-process, responses per second of wall-clock and of CPU time
    (one core: the filter is one thread), against FastWARC's ArchiveIterator reading every response's decoded
    body from the same file, the library ``optout filter`` reads with, in alternating rounds (bench/peers.py); the
    ratio is the filter's cost over raw iteration. warcio's raw iteration runs in the same rounds, to show why
    FastWARC: it parses the same file four to five times slower, more than the filter's own work;
(b) memory: the peak RSS of ``optout filter`` in a fresh process on the file and on a file twice its size: it
    should stay flat (one record at a time).

The file is written by warcio; the writer does not matter to the filter, which copies kept records byte for byte
(only kept.warc.gz's warcinfo record is written, by warcio).

Run: python bench/bench_filter.py [--records 20000] [--origins 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from warcio.archiveiterator import ArchiveIterator  # noqa: E402
from warcio.statusandheaders import StatusAndHeaders  # noqa: E402
from warcio.warcwriter import WARCWriter  # noqa: E402

from bench.peers import alternate, command_line, ratio, spread  # noqa: E402
from crawler.fixtureweb import FixtureWeb, Route, page  # noqa: E402

WORDS = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
]


def build_warc(path: Path, origins: list[str], records: int, seed: int = 1) -> None:
    rnd = random.Random(seed)
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        for i in range(records):
            url = f"{origins[i % len(origins)]}/p/{i}"
            size = rnd.randint(5_000, 50_000)
            text = " ".join(rnd.choice(WORDS) for _ in range(size // 6))[:size]
            head = "<meta name='tdm-reservation' content='1'>" if i % 50 == 7 else ""
            headers = [("Content-Type", "text/html; charset=utf-8")]
            if i % 50 == 3:
                headers.append(("X-Robots-Tag", "noai"))
            http = StatusAndHeaders("200 OK", headers, "HTTP/1.1")
            body = page(f"page {i}", f"<p>{text}</p>", head).encode()
            response = writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http)
            rid = response.rec_headers.get_header("WARC-Record-ID")
            request = writer.create_warc_record(
                url,
                "request",
                payload=io.BytesIO(b""),
                http_headers=StatusAndHeaders(f"GET /p/{i} HTTP/1.1", [("Host", "x")], is_http_request=True),
                warc_headers_dict={"WARC-Concurrent-To": rid},
            )
            metadata = writer.create_warc_record(
                url,
                "metadata",
                payload=io.BytesIO(b"fetchTimeMs: 12\r\n"),
                warc_content_type="application/warc-fields",
                warc_headers_dict={"WARC-Concurrent-To": rid},
            )
            for record in (request, response, metadata):
                writer.write_record(record)


def raw_warcio(path: Path) -> int:
    n = 0
    with path.open("rb") as f:
        for record in ArchiveIterator(f):
            if record.rec_type == "response":
                record.content_stream().read()
                n += 1
    return n


def raw_fastwarc(path: Path) -> int:
    from fastwarc.warc import ArchiveIterator as FastIterator
    from fastwarc.warc import WarcRecordType

    n = 0
    with path.open("rb") as f:
        for record in FastIterator(f, parse_http=True, auto_decode="all"):
            if record.record_type == WarcRecordType.response:
                record.reader.read()
                n += 1
    return n


def filter_run(path: Path, out: Path, cache: str) -> int:
    from crawler.cli import main

    status = main(["filter", str(path), "--out", str(out), "--cache", cache])
    summary = json.loads((out / "summary.json").read_text())
    assert status == 0 and summary["policy_requests"] == 0, (status, summary["policy_requests"])
    return summary["responses"]


def peak_rss(path: Path, out: Path, cache: str) -> int:
    """Peak RSS (KB) of ``optout filter`` in a fresh process."""
    code = (
        "import resource, sys; from crawler.cli import main; "
        f"main(['filter', {str(path)!r}, '--out', {str(out)!r}, '--cache', {cache!r}]); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=3600
    )
    return int(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--origins", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(command_line())
    with FixtureWeb() as web, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        origins = []
        for i in range(args.origins):
            robots = "User-agent: *\nDisallow: /p/1\n" if i % 25 == 0 else "User-agent: *\nAllow: /\n"
            origins.append(web.site(f"o{i}", {"/robots.txt": Route(body=robots, content_type="text/plain")}))
        warc, double = work / "cc.warc.gz", work / "cc2.warc.gz"
        build_warc(warc, origins, args.records)
        build_warc(double, origins, 2 * args.records, seed=2)
        cache = f"sqlite:///{work / 'cache.db'}"
        from crawler.cli import main as cli

        cli(["filter", str(double), "--out", str(work / "warm"), "--cache", cache])  # policies fetched and cached
        runs = {
            "optout filter": lambda: filter_run(warc, work / "out", cache),
            "FastWARC raw": lambda: raw_fastwarc(warc),
            "warcio raw": lambda: raw_warcio(warc),
        }

        def timed(side: str) -> tuple[float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            count = runs[side]()
            assert count == args.records, (side, count)
            return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)

        rates = alternate(args.rounds, list(runs), timed)
        size = warc.stat().st_size / 1e6
        print(f"{args.records:,} responses over {args.origins} origins ({size:.0f} MB gzipped), policies cached")
        for side, found in rates.items():
            wall = [w for w, _ in found]
            cpu = [c for _, c in found]
            print(f"{side:14} {spread(wall)} responses/s wall-clock, {spread(cpu)} per CPU-second")
        filt = [w for w, _ in rates["optout filter"]]
        for peer in ("FastWARC raw", "warcio raw"):
            raw = [w for w, _ in rates[peer]]
            print(f"optout filter's time over {peer}'s: {ratio(raw, filt)}")
        small = peak_rss(warc, work / "rss1", cache)
        large = peak_rss(double, work / "rss2", cache)
        print(f"peak RSS: {small / 1024:.0f} MB on {args.records:,} records, {large / 1024:.0f} MB on twice as many")


if __name__ == "__main__":
    main()
