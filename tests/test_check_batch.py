"""``optout check --urls`` end to end on loopback servers: the same answers as the one-URL path, politeness read off
the servers' own logs, failing closed per origin, inputs and outputs."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.batch import checked, fast_origin
from crawler.check import UsageError, validate_url
from crawler.fixtureweb import FixtureWeb, Route, page
from middlewares.engine import origin_of
from tests.support import politeweb
from tests.support.batch import AGENT, KINDS, batch, build_web, cli, contract, fast_web, one_url


def expected(kind: str, url: str) -> set[str]:
    path = urlsplit(url).path
    return {
        "path": {"robots"} if path.startswith("/private/") else set(),
        "token": {"robots"},
        "cross": {"robots"},
        "usage": {"content-usage"},
        "signal": {"content-signal"},
        "tdm": {"tdmrep"} if path.startswith("/a/") else set(),
        "aitxt": {"ai-txt"} if ".jpg" in path else set(),
        "rsl": {"rsl"},
        "r500": {"fetch", "robots"},
    }.get(kind, set())


web = pytest.fixture(fast_web, name="web")


def write(tmp_path: Path, urls: list[str], name: str = "urls.txt") -> str:
    path = tmp_path / name
    path.write_text("\n".join(urls) + "\n")
    return str(path)


def test_10000_urls_over_200_origins_site_level_same_answers_as_one_url_path(web: FixtureWeb, tmp_path: Path) -> None:
    urls, kind_of = build_web(web, 200, 50)
    assert len(urls) == 10_000 and len(set(kind_of.values())) == len(KINDS)
    started = time.monotonic()
    answers, summary = batch(write(tmp_path, urls), site_level=True)
    took = time.monotonic() - started
    assert [a["url"] for a in answers] == urls and [a["row"] for a in answers] == list(range(len(urls)))
    assert summary.rows == 10_000 and len(summary.origins) == 200 and summary.errors == 0
    # one set of policy requests per origin, no page
    pages = [h for h in web.log if h.path not in ("/robots.txt", "/.well-known/tdmrep.json", "/ai.txt", "/license.xml")]
    assert not pages
    for name in web.servers:
        assert len(web.hits(name, "/robots.txt")) == 1
    for answer in answers:
        kind = kind_of[origin_of(answer["url"])]
        assert {r["protocol"] for r in answer["reservations"]} == expected(kind, answer["url"]), answer
        assert answer["allowed"] is not bool(expected(kind, answer["url"]))
        refused_by_robots = any(
            r["protocol"] == "robots" and r["where"] == "robots.txt" for r in answer["reservations"]
        )
        # nothing is left out when robots.txt refuses the URL: the one-URL path would not request it either
        assert (answer["not_evaluated"] == []) is (refused_by_robots and kind in ("path", "token", "r500"))
    # The one-URL path on a sample of every kind and path (it requests every page, one after the other): the same
    # answer line, apart from what it adds (the pages say nothing more here).
    sample = urls[::7][:600]
    for mine, theirs in zip(answers[::7][:600], one_url(sample), strict=True):
        assert contract(mine) == theirs
    assert took < 30, took


def test_fetched_mode_same_answers_as_one_url_path(web: FixtureWeb, tmp_path: Path) -> None:
    urls, _ = build_web(web, 24, 10)
    base = web.site("page", {})
    web.site(
        "page",
        {
            "/noai": Route(body=page("p"), headers=[("X-Robots-Tag", "noai")]),
            "/meta": page("p", head='<meta name="tdm-reservation" content="1">'),
            "/usage": Route(body=page("p"), headers=[("Content-Usage", "train-ai=n")]),
            "/403": Route(403, "no"),
            "/gone": Route(404, "missing"),
            "/wall": Route(302, "", headers=[("Location", "/login?next=/wall")]),
            "/login": page("Sign in", "<form><input type=password name=p></form>"),
            "/ok": page("fine"),
        },
    )
    urls += [base + p for p in ("/noai", "/meta", "/usage", "/403", "/gone", "/wall", "/ok")]
    answers, _ = batch(write(tmp_path, urls), concurrency=16)
    assert [contract(a) for a in answers] == one_url(urls)
    assert all("not_evaluated" not in a for a in answers)


def test_robots_first_per_origin_concurrency_and_crawl_delay(web: FixtureWeb, tmp_path: Path) -> None:
    seeds = politeweb.build(web, AGENT)
    busy = web.site("busy", {f"/b{i}": Route(body=page("b"), delay=0.15) for i in range(6)})
    seeds += [f"{busy}/b{i}" for i in range(6)]
    answers, _ = batch(write(tmp_path, seeds), timeout=politeweb.TIMEOUT)
    assert len(answers) == len(seeds)
    politeweb.assert_robots_first(web)  # robots.txt first, nothing before its answer, Crawl-delay on the server clock
    pages = sorted((h for h in web.hits("busy") if h.path.startswith("/b")), key=lambda h: h.time)
    assert len(pages) == 6
    # one request in flight at a time: each starts after the one before was answered (0.15 s later)
    assert min(b.time - a.time for a, b in itertools.pairwise(pages)) >= 0.15 - 0.01
    for name in politeweb.CLOSED:
        for a in answers:
            if a["url"].startswith(web.origin(name)):
                assert not a["allowed"]


def test_per_origin_two_allows_two_in_flight_never_three(web: FixtureWeb, tmp_path: Path) -> None:
    busy = web.site("busy", {f"/b{i}": Route(body=page("b"), delay=0.2) for i in range(8)})
    batch(write(tmp_path, [f"{busy}/b{i}" for i in range(8)]), per_origin=2)
    starts = sorted(h.time for h in web.hits("busy") if h.path.startswith("/b"))
    assert len(starts) == 8
    # never three within one answer's time, but two at once did happen
    assert all(c - a >= 0.2 - 0.01 for a, _, c in zip(starts, starts[1:], starts[2:], strict=False))
    assert any(b - a < 0.1 for a, b in itertools.pairwise(starts))


def test_hanging_origin_and_5xx_robots_fail_closed_for_their_urls_only(web: FixtureWeb, tmp_path: Path) -> None:
    hang = web.site("hang", {"/robots.txt": Route(body="User-agent: *\nAllow: /\n", delay=3.0), "/p": page("p")})
    r503 = web.site("r503", {"/robots.txt": Route(503, "busy"), "/p": page("p")})
    fine = [web.site(f"fine{i}", {f"/p{n}": page("p") for n in range(20)}) for i in range(8)]
    urls = [hang + "/p", r503 + "/p"] + [f"{b}/p{n}" for n in range(20) for b in fine]
    answers, _ = batch(write(tmp_path, urls), timeout=1.0)
    by_url = {a["url"]: a for a in answers}
    for bad in (hang, r503):
        answer = by_url[bad + "/p"]
        assert not answer["allowed"] and {r["protocol"] for r in answer["reservations"]} == {"fetch", "robots"}
        assert [h.path for h in web.hits(bad[-5:] if False else ("hang" if bad == hang else "r503"))] == ["/robots.txt"]
    assert all(by_url[u]["allowed"] for u in urls[2:])
    # nobody waited for the hanging origin: every other origin was done before its robots.txt timed out
    hang_start = web.hits("hang")[0].time
    last_fine = max(h.time for h in web.log if h.site.startswith("fine"))
    assert last_fine < hang_start + 1.0, last_fine - hang_start


EDGE_URLS = [
    "http://Example.COM:8080/a?b#c",
    "HTTPS://x.test",
    "http://x.test:65535/",
    "http://x.test:65536/",
    "http://x.test:0/",
    "http://x.test:/p",
    "http://:80/p",
    "http://",
    "http:///p",
    "http://-/p",
    "http://x.test/p q",
    "  http://x.test/p  ",
    "http://x.test/ü",
    "http://x\t.test/p",
    "http://[::1]:8080/p",
    "http://[::1/p",
    "http://user@x.test/p",
    "ftp://x.test/p",
    "x.test/p",
    "http://x.test?#",
]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(EDGE_URLS) | st.from_regex(r"[hH][tT][tT][pP][sS]?://[a-z0-9.:@\[\]\-]{0,12}[/?#]?[ -~\t]{0,8}"))
def test_checked_is_validate_url(raw: str) -> None:
    try:
        expected = validate_url(raw)
    except UsageError as exc:
        with pytest.raises(UsageError) as caught:
            checked(raw)
        assert str(caught.value) == str(exc)
        return
    assert checked(raw) == (expected, origin_of(expected))
    assert fast_origin(expected) == origin_of(expected)


def test_fast_origin_is_origin_of() -> None:
    for url in (
        "http://Example.COM:8080/a?b#c",
        "https://x.test",
        "http://x.test?q",
        "http://x.test#f",
        "HTTP://[::1]:80/p",
        "http://user:pw@x.test/p",
        "http://x.test\\y/z",
        "http://x\t.test/p",
    ):
        assert fast_origin(url) == origin_of(url), url


# -- inputs and outputs ---------------------------------------------------------------------------------------------


def test_bad_rows_get_answer_lines_and_one_line_errors(web: FixtureWeb, tmp_path: Path) -> None:
    base = web.site("s", {"/p": page("p")})
    rows = [
        json.dumps({"url": base + "/p", "id": 1}),
        "{not json",
        json.dumps({"url": "ftp://x/y", "id": 3}),
        json.dumps({"id": 4}),
        json.dumps({"url": 5, "id": 5}),
        json.dumps({"url": "", "id": 6}),
        json.dumps([1, 2]),
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(rows) + "\n")
    proc = cli("check", "--urls", str(path), "--site-level", "--agent", AGENT)
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["row"] for line in lines] == list(range(7))
    assert lines[0]["allowed"] is True and lines[0]["errors"] == []
    for line in lines[1:]:
        assert line["allowed"] is False and line["reservations"] == [] and len(line["errors"]) == 1
    errors = [e for e in proc.stderr.splitlines() if e.startswith("optout check: row")]
    assert len(errors) == 6 and "Traceback" not in proc.stderr
    assert "not JSON" in errors[0] and "invalid URL" in errors[1] and "no 'url' field" in errors[2]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing.txt", "no such file"),
        ("dir", "is a directory"),
        ("nocol.csv", "has no column 'url'"),
        ("bad.parquet", "cannot read"),
        ("nocol.parquet", "has no column 'url'"),
    ],
)
def test_usage_errors_are_one_line_exit_2(tmp_path: Path, setup: str, message: str) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")

    path = tmp_path / setup
    if setup == "dir":
        path.mkdir()
    elif setup == "nocol.csv":
        path.write_text("link,id\nhttp://127.0.0.1:9/,1\n")
    elif setup == "bad.parquet":
        path.write_text("not parquet at all")
    elif setup == "nocol.parquet":
        pq.write_table(pa.table({"link": ["http://127.0.0.1:9/"]}), path)
    proc = cli("check", "--urls", str(path))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr.lower(), proc.stderr
    assert "internal error" not in proc.stderr


def test_urls_and_file_together_is_a_usage_error() -> None:
    proc = cli("check", "http://127.0.0.1:9/", "--urls", "-")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "internal error" not in proc.stderr


def _dataset_rows(base: str) -> list[dict[str, object]]:
    return [
        {"id": 1, "url": base + "/ok", "caption": "a cat", "score": 0.5, "tags": ["x", "y"], "extra": None},
        {"id": 2, "url": base + "/private/no", "caption": "é ünïcode", "score": 1.25, "tags": [], "extra": "e"},
        {"id": 3, "url": base + "/ok2", "caption": "", "score": -3.0, "tags": ["z"], "extra": None},
    ]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_dataset_round_trip_annotate_and_keep_allowed(web: FixtureWeb, tmp_path: Path, fmt: str) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")

    base = web.site("s", {"/robots.txt": Route(body="User-agent: *\nDisallow: /private/\n", content_type="text/plain")})
    rows = _dataset_rows(base)
    src = tmp_path / f"in.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), src)
    elif fmt == "jsonl":
        src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    else:
        src.write_text(
            "id,url,caption,score\n" + "".join(f'{r["id"]},{r["url"]},"{r["caption"]}",{r["score"]}\n' for r in rows)
        )
    annotated, kept = tmp_path / f"a.{fmt}", tmp_path / f"k.{fmt}"
    for flag, out in (("--annotate", annotated), ("--keep-allowed", kept)):
        proc = cli("check", "--urls", str(src), "--site-level", flag, str(out), "--agent", AGENT)
        assert proc.returncode == 1, proc.stderr
        assert proc.stdout == ""  # the dataset is the output
        assert not out.with_name(out.name + ".part").exists()

    def read(path: Path) -> list[dict[str, object]]:
        if fmt == "parquet":
            return pq.read_table(path).to_pylist()
        if fmt == "jsonl":
            return [json.loads(line) for line in path.read_text().splitlines()]
        import csv

        return list(csv.DictReader(path.open(newline="")))

    original = read(src)
    got = read(annotated)
    assert [{k: v for k, v in r.items() if not k.startswith("optout_")} for r in got] == original
    assert [r["optout_allowed"] for r in got] == ([True, False, True] if fmt != "csv" else ["true", "false", "true"])
    protocols = [r["optout_protocols"] for r in got]
    assert protocols == ([[], ["robots"], []] if fmt != "csv" else ["", "robots", ""])
    assert "Disallow: /private/" in str(got[1]["optout_reason"])
    assert "site level" in str(got[0]["optout_reason"])
    assert read(kept) == [original[0], original[2]]
    if fmt == "parquet":
        schema = pq.read_schema(annotated)
        assert schema.field("tags").type == pa.list_(pa.string()) and schema.field("id").type == pa.int64()
        assert pq.read_schema(kept) == pq.read_schema(src)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_late_field_in_json_lines_stops_rather_than_drops(tmp_path: Path, fmt: str) -> None:
    """CSV and Parquet columns are fixed by the rows written first: a JSON Lines field that appears only in a later
    chunk cannot be added, and is never silently dropped (or misaligned): a one-line InputError, no output file.
    Chunks are written as they are read, as a long input is (2,048 rows a chunk there, 4 here)."""
    pytest.importorskip("pyarrow")
    from crawler.batchio import InputError, Note, Reader, Writer

    rows: list[dict[str, object]] = [{"url": f"http://h.test/p{i}", "id": i} for i in range(10)]
    rows[7]["late"] = "kept?"
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / f"out.{fmt}"
    reader = Reader(str(src), chunk_rows=4)
    writer = Writer(str(out), reader, annotate=True)
    written = 0
    with pytest.raises(InputError) as raised:
        for chunk in reader.chunks():
            writer.write(chunk, [Note(True, [], "site level")] * len(chunk))
            written += len(chunk)
    assert written == 4  # the first chunk went out; the one holding row 7 stopped the run
    message = str(raised.value)
    assert "\n" not in message and "'late'" in message and "JSON Lines" in message
    # CSV names the row; Parquet, which converts a chunk at once, names where the chunk starts
    assert ("row 7 " if fmt == "csv" else "row 4 on ") in message, message
    writer.abort()
    assert not out.exists()
    # A field that the first row lacks but a later row of the same chunk has is kept (pyarrow's from_pylist alone
    # would take the first row's fields only).
    del rows[7]["late"]
    rows[2]["early"] = "e"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reader = Reader(str(src), chunk_rows=4)
    writer = Writer(str(out), reader, annotate=False)
    for chunk in reader.chunks():
        writer.write(chunk, [Note(True, [], "site level")] * len(chunk))
    writer.close(complete=True)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        got = pq.read_table(out).to_pylist()
    else:
        import csv

        got = list(csv.DictReader(out.open(newline="")))
    assert len(got) == 10 and got[2]["early"] == "e" and got[3]["early"] in (None, "")


def test_text_stdin_unordered_and_summary(web: FixtureWeb, tmp_path: Path) -> None:
    base = web.site("s", {"/robots.txt": Route(body="User-agent: *\nDisallow: /x\n", content_type="text/plain")})
    urls = [f"{base}/p{i}" for i in range(30)] + [f"{base}/x{i}" for i in range(10)]
    summary = tmp_path / "summary.json"
    proc = cli(
        "check", "--urls", "-", "--site-level", "--unordered", "--summary", str(summary), input="\n".join(urls) + "\n"
    )
    assert proc.returncode == 1
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert sorted(line["row"] for line in lines) == list(range(40))
    assert {line["url"] for line in lines} == set(urls)
    data = json.loads(summary.read_text())
    assert data["rows"] == 40 and data["allowed"] == 30 and data["reserved"] == 10 and data["origins"] == 1
    assert data["reserved_by_protocol"] == {"robots": 10}
    assert "40 rows" in proc.stderr and "rows/s" in proc.stderr


def test_memory_bounded_rows_held_between_reading_and_writing(web: FixtureWeb, tmp_path: Path) -> None:
    """Answers are written out as reading goes on (site-level rows are answered by the reading thread itself): at
    no point are more than the window (plus a chunk) of rows held."""
    import io

    from crawler.batchrun import BatchOptions, BatchRun
    from crawler.identity import user_agent_for
    from middlewares.policy import Policy

    bases = [web.site(f"s{i}", {}) for i in range(4)]
    urls = [f"{b}/p{n}" for n in range(5000) for b in bases]
    out = io.StringIO()
    policy = Policy.build(agent=AGENT)
    run = BatchRun(
        BatchOptions(path=write(tmp_path, urls), site_level=True, window=3000),
        policy,
        user_agent=user_agent_for(AGENT),
        out=out,
        err=io.StringIO(),
    )
    held: list[int] = []
    submit = run._submit

    def watched(chunk):  # type: ignore[no-untyped-def]
        submit(chunk)
        held.append(run._held())
        run._drain(block=False)
        held.append(run._held())

    run._submit = watched  # type: ignore[method-assign]
    summary = run.run()
    assert summary.rows == 20_000 and len(out.getvalue().splitlines()) == 20_000
    assert max(held) <= 3000 + 2048, max(held)


def test_csv_with_a_byte_order_mark_and_gzip_text(web: FixtureWeb, tmp_path: Path) -> None:
    import gzip

    base = web.site("s", {"/robots.txt": Route(body="User-agent: *\nDisallow: /x\n", content_type="text/plain")})
    src = tmp_path / "excel.csv"
    src.write_bytes("\ufeffurl,n\n".encode() + f"{base}/a,1\n{base}/x,2\n".encode())
    answers, _ = batch(str(src), site_level=True)
    assert [a["allowed"] for a in answers] == [True, False]
    gz = tmp_path / "list.txt.gz"
    gz.write_bytes(gzip.compress(f"# a comment\n\n{base}/a\n{base}/x\n".encode()))
    answers, _ = batch(str(gz), site_level=True)
    assert [a["url"] for a in answers] == [f"{base}/a", f"{base}/x"]
