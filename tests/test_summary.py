"""``optout summary`` (issue 21) end to end: real crawls (Scrapy against the loopback fixture web, as ``optout demo``
and ``optout crawl`` run them) and a real ``optout filter`` run, summarised by the real CLI in a subprocess. Every
expected figure is computed here from the run's own files (items.jsonl, the WARC written, the registry), never
copied from the summary."""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from crawler.fixtureweb import FixtureWeb, Route
from crawler.summary_template import listed_count
from middlewares.policy import MANDATORY_PROTOCOLS
from tests.support.run import run_cli
from tests.support.summary import demo_crawl, summarise

OUTPUTS = ("summary.md", "summary.html", "summary.json", "domains.csv")


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def by_domain(*folders: Path) -> dict[str, list[int]]:
    """Host -> [bytes, pages] of the stored items, straight from items.jsonl (the fixture's .test hosts are their
    own registrable domains)."""
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for folder in folders:
        for item in lines(folder / "items.jsonl"):
            host = urlsplit(item["url"]).hostname
            tally[host][0] += item["evidence"]["response"]["length"]
            tally[host][1] += 1
    return dict(tally)


def top_share(tally: dict[str, list[int]], share: float) -> list[str]:
    ranked = sorted(tally, key=lambda d: (-tally[d][0], d))
    return ranked[: math.ceil(len(ranked) * share)]


def registry_protocols(db: Path) -> Counter[str]:
    """Records per protocol, read from the registry with its own API (rule.protocol of each record)."""
    from optout_registry.registry import Registry

    with Registry.open(f"sqlite:///{db}", create=False) as reg:
        return Counter(e.record["rule"]["protocol"] for e in reg.records())


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two demo crawls: the same twelve sites (same host names, other ports), each with its own registry."""
    folders = []
    for name in ("a", "b"):
        folders.append(demo_crawl(tmp_path_factory.mktemp("demo") / name))
    return folders[0], folders[1]


def test_a_demo_crawl_summarised(demos: tuple[Path, Path], tmp_path: Path) -> None:
    demo = demos[0]
    out = tmp_path / "summary"
    data = summarise(str(demo), "--out", str(out), "--provider", "Example AI")
    s23, s31 = data["sections"]["2.3"], data["sections"]["3.1"]

    # the domain list: exactly the top 10 % (rounded up) by bytes of kept content, from items.jsonl
    tally = by_domain(demo)
    domains = s23["domains"]["value"]
    assert [r["domain"] for r in domains["listed"]] == top_share(tally, 0.10)
    assert domains["total_domains"] == len(tally)
    assert domains["total_bytes"] == sum(b for b, _ in tally.values())
    for row in domains["listed"]:
        assert [row["bytes"], row["pages"]] == tally[row["domain"]]
    csv_rows = (out / "domains.csv").read_text().splitlines()
    assert csv_rows[0] == "domain,bytes,pages,share"
    assert [r.split(",")[0] for r in csv_rows[1:]] == sorted(tally, key=lambda d: (-tally[d][0], d))

    # the period: the first and last fetch of the content kept
    fetched = [i["fetched_at"] for i in lines(demo / "items.jsonl")]
    assert s23["period"]["value"] == {"first_fetch": min(fetched), "last_fetch": max(fetched)}
    assert s23["period"]["sources"] == [f"{demo}/items.jsonl"]

    # the opt-outs per protocol: the registry's records, and the crawl's own count of them
    expected = registry_protocols(demo / "registry.db")
    rows = {r["protocol"]: r for r in s31["optouts"]["value"]["by_protocol"]}
    assert {p: r["records"] for p, r in rows.items()} == dict(expected)
    crawl_summary = json.loads((demo / "summary.json").read_text())
    assert {p: r["decisions"] for p, r in rows.items()} == crawl_summary["honoured"]["by_protocol"]
    [registry] = data["inputs"]["registries"]
    assert registry["records"] == sum(expected.values()) == registry["tree_size"]
    assert registry["checkpoint"] == crawl_summary["registry"]["checkpoint"]
    assert registry["root_sha256"] == crawl_summary["registry"]["root"]
    assert any(registry["root_sha256"] in c for c in s31["optouts"]["checkpoints"])

    # the crawler's identity and purpose: what the disclosure page publishes
    disclosure = json.loads((demo / "disclosure" / "crawler.json").read_text())
    [crawler] = s23["crawler_names"]["value"]["crawlers"]
    assert [crawler["token"]] == disclosure["crawler"]["tokens"]
    assert crawler["user_agent"] == disclosure["crawler"]["user_agent"]
    assert [p["id"] for p in s23["purposes"]["value"]] == [p["id"] for p in disclosure["purposes"]]
    assert [m["id"] for m in s23["behaviour"]["value"]["modes"]] == [disclosure["mode"]["id"]]
    statuses = {p["id"]: p["status"] for p in s23["behaviour"]["value"]["protocols"]}
    assert statuses["robots"].startswith("honoured (mandatory")
    # run.json records what the crawl enforced (nothing switched off here): every protocol is reported honoured
    run_meta = json.loads((demo / "run.json").read_text())
    assert run_meta["disabled"] == [] and run_meta["cross_token"] is True
    assert statuses["c2pa"] == "honoured" and data["sections"]["2.3"]["behaviour"]["value"]["unrecorded"] == []
    assert statuses["tdmrep"] == f"honoured ({expected['tdmrep']} opt-outs in the registry)"
    assert statuses["rsl"] == "honoured (1 opt-out in the registry)" and expected["rsl"] == 1

    # the documents: the template's headings, the provider's name, marked blanks, the sources with their hashes
    md = (out / "summary.md").read_text()
    for heading in (
        "## 1. General information", "### 2.3. Data crawled and scraped from online sources",
        "### 3.1. Respect of reservation of rights from text and data mining exception or limitation",
        "### 3.2. Removal of illegal content", "Summary of the most relevant domain names crawled",
    ):  # fmt: skip
        assert heading in md, heading
    assert "Example AI" in md and "[to be completed by the provider]" in md
    for f in data["inputs"]["files"]:
        assert f["sha256"] in md
    html = (out / "summary.html").read_text()
    assert '<h3 id="s2.3">2.3. Data crawled and scraped from online sources</h3>' in html
    assert html.count('class="blank"') >= 10


def test_the_sme_rule_lists_fewer_domains() -> None:
    assert [listed_count(n, False) for n in (0, 1, 9, 10, 11, 100, 25_000)] == [0, 1, 1, 1, 2, 10, 2500]
    assert [listed_count(n, True) for n in (0, 1, 20, 21, 100, 20_000, 25_000)] == [0, 1, 1, 2, 5, 1000, 1000]


def test_two_runs_merge(demos: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = demos
    data = summarise(str(a), str(b), "--out", str(tmp_path / "merged"))
    tally = by_domain(a, b)
    one = by_domain(a)
    assert set(tally) == set(one)  # the same sites: each domain counts once, its bytes and pages summed
    rows = {r.split(",")[0]: r.split(",") for r in (tmp_path / "merged" / "domains.csv").read_text().splitlines()[1:]}
    assert {d: [int(r[1]), int(r[2])] for d, r in rows.items()} == tally
    assert all(tally[d][0] == one[d][0] + by_domain(b)[d][0] for d in tally)
    domains = data["sections"]["2.3"]["domains"]["value"]
    assert domains["total_domains"] == len(one) and domains["items"] == sum(p for _, p in tally.values())
    fetched = [i["fetched_at"] for f in (a, b) for i in lines(f / "items.jsonl")]
    assert data["sections"]["2.3"]["period"]["value"] == {"first_fetch": min(fetched), "last_fetch": max(fetched)}
    expected = registry_protocols(a / "registry.db") + registry_protocols(b / "registry.db")
    rows31 = data["sections"]["3.1"]["optouts"]["value"]["by_protocol"]
    assert {r["protocol"]: r["records"] for r in rows31} == dict(expected)
    assert len(data["inputs"]["registries"]) == 2


def test_rerun_is_byte_identical(demos: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = demos
    summarise(str(a), str(b), "--out", str(tmp_path / "one"), "--sme")
    summarise(str(a), str(b), "--out", str(tmp_path / "two"), "--sme")
    for name in OUTPUTS:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    # and an input that changes changes the output: a copy of a with one item less
    c = tmp_path / "c"
    shutil.copytree(a, c)
    items = (c / "items.jsonl").read_text().splitlines(keepends=True)
    (c / "items.jsonl").write_text("".join(items[:-1]))
    summarise(str(c), str(b), "--out", str(tmp_path / "three"), "--sme")
    assert (tmp_path / "three" / "summary.json").read_bytes() != (tmp_path / "one" / "summary.json").read_bytes()


def test_recorded_settings_decide_the_protocol_table(demos: tuple[Path, Path], tmp_path: Path) -> None:
    """A run that recorded its switched-off protocols is described by them, not by the defaults."""
    c = tmp_path / "c"
    shutil.copytree(demos[0], c)
    run = json.loads((c / "run.json").read_text())
    run.update(disabled=["c2pa"], cross_token=False)
    (c / "run.json").write_text(json.dumps(run))
    data = summarise(str(c), "--out", str(tmp_path / "s"))
    behaviour = data["sections"]["2.3"]["behaviour"]["value"]
    statuses = {p["id"]: p["status"] for p in behaviour["protocols"]}
    assert statuses["c2pa"] == f"switched off in {c}"
    assert statuses["tdmrep"].startswith("honoured (")  # the demo's registry holds TDMRep opt-outs
    for row in behaviour["protocols"]:  # recorded as on: honoured, with the registry's count where it has one
        if row["id"] not in MANDATORY_PROTOCOLS | {"c2pa"}:
            n = row["records"]
            assert row["status"] == (
                f"honoured ({n} opt-out{'s' if n > 1 else ''} in the registry)" if n else "honoured"
            )
    assert behaviour["cross_token"] == "False"


MANY = 23  # sites: the top 10 % is 3 of them, an SME's top 5 % is 2


def test_a_crawl_of_many_domains_lists_the_top_share(tmp_path: Path) -> None:
    """A real ``optout crawl`` of 23 sites with pages of different sizes (one reserved page each, by TDMRep):
    the list is the top 3 by bytes (2 with --sme), as computed from items.jsonl."""
    text = "text/plain"
    with FixtureWeb() as web:
        for i in range(MANY):
            body = "<html><body>" + "x" * (97 * ((i * 7) % MANY) + 50) + "</body></html>"
            web.site(
                f"s{i}",
                {
                    "/robots.txt": Route(body="User-agent: *\nAllow: /\n", content_type=text),
                    "/": Route(body=body, content_type="text/html"),
                    "/reserved": Route(body="<p>no</p>", content_type="text/html", headers=[("tdm-reservation", "1")]),
                },
                host=f"site{i:02d}.test",
            )
        seeds = [f"{web.origin(f's{i}')}{path}" for i in range(MANY) for path in ("/", "/reserved")]
        named = [arg for k, v in web.crawl_settings().items() for arg in ("-s", f"{k}={json.dumps(v)}")]
        out = tmp_path / "crawl"
        proc = run_cli("crawl", *seeds, "--out", str(out), "--depth", "1", "--no-sitemaps", *named, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    tally = by_domain(out)
    assert len(tally) == MANY
    data = summarise(str(out), "--out", str(tmp_path / "s"))
    listed = data["sections"]["2.3"]["domains"]["value"]["listed"]
    assert [r["domain"] for r in listed] == top_share(tally, 0.10) and len(listed) == 3
    total = sum(b for b, _ in tally.values())
    assert [r["share"] for r in listed] == [round(tally[r["domain"]][0] / total, 6) for r in listed]
    sme = summarise(str(out), "--out", str(tmp_path / "sme"), "--sme")
    assert [r["domain"] for r in sme["sections"]["2.3"]["domains"]["value"]["listed"]] == top_share(tally, 0.05)
    rows = data["sections"]["3.1"]["optouts"]["value"]["by_protocol"]
    assert rows == [{"protocol": "tdmrep", "decisions": MANY, "records": MANY}]
    assert registry_protocols(out / "registry.db") == Counter({"tdmrep": MANY})


warcio = pytest.importorskip("warcio")


def test_a_filter_run_contributes_what_it_kept(tmp_path: Path) -> None:
    """``optout filter`` over a WARC (live robots.txt and tdmrep.json from the fixture web), then its folder and its
    registry summarised: the kept bytes are the bodies the fixture allows, the opt-outs the registry's records."""
    from tests.support.warc import AGENT, TEXT, pages, write_warc

    with FixtureWeb() as web:
        web.site("open", {"/robots.txt": Route(body="User-agent: *\nAllow: /\n", content_type=TEXT)})
        web.site(
            "tdm",
            {
                "/robots.txt": Route(body="User-agent: *\nAllow: /\n", content_type=TEXT),
                "/.well-known/tdmrep.json": Route(
                    body='[{"location": "/reserved/*", "tdm-reservation": 1}]', content_type="application/json"
                ),
            },
        )
        web.site("deny", {"/robots.txt": Route(body=f"User-agent: {AGENT}\nDisallow: /private\n", content_type=TEXT)})
        entries = pages(web)
        warc = tmp_path / "in.warc.gz"
        write_warc(warc, entries, gz=True)
        db = tmp_path / "filter.db"
        proc = run_cli(
            "filter", str(warc), "--out", str(tmp_path / "filtered"), "--registry", f"sqlite:///{db}", timeout=120
        )
        assert proc.returncode == 0, proc.stderr
    kept = [body for body, _, allowed in entries.values() if allowed]
    decisions = lines(tmp_path / "filtered" / "decisions.jsonl")
    assert sum(d["allowed"] for d in decisions) == len(kept)  # the filter agrees with the fixture

    data = summarise(str(tmp_path / "filtered"), f"sqlite:///{db}", "--out", str(tmp_path / "s"))
    s23 = data["sections"]["2.3"]
    domains = s23["domains"]["value"]
    assert domains["items"] == len(kept) and domains["total_bytes"] == sum(len(b) for b in kept)
    assert [r["domain"] for r in domains["listed"]] == ["127.0.0.1"]
    assert s23["period"]["value"] == {"first_fetch": "2025-03-01T10:00:00Z", "last_fetch": "2025-03-01T10:00:00Z"}
    assert s23["crawlers_used"]["value"] == "No" and s23["crawler_names"]["value"]["archives"][0]["warcs"] == [
        str(warc)
    ]
    rows = data["sections"]["3.1"]["optouts"]["value"]["by_protocol"]
    assert {r["protocol"]: r["records"] for r in rows} == dict(registry_protocols(db))
    assert sum(r["records"] for r in rows) == len(entries) - len(kept)

    # with a crawl: the filter adds only what it kept
    demo = demo_crawl(tmp_path / "demo")
    both = summarise(str(demo), str(tmp_path / "filtered"), "--out", str(tmp_path / "both"))
    assert both["sections"]["2.3"]["domains"]["value"]["total_bytes"] == sum(
        b for b, _ in by_domain(demo).values()
    ) + sum(len(b) for b in kept)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/run"], "not a folder of optout crawl or optout filter"),
        (["{tmp}"], "neither an optout crawl folder"),
        (["{demo}", "{demo}"], "is given twice"),
        (["sqlite:///{tmp}/none.db"], "cannot read the registry"),
        (["{demo}", "--out", "{demo}"], "holds a crawl or filter run (run.json)"),
    ],
)
def test_bad_runs_are_one_line_errors(demos: tuple[Path, Path], tmp_path: Path, args: list[str], message: str) -> None:
    runs = [a.format(tmp=tmp_path, demo=demos[0]) for a in args]
    before = (demos[0] / "summary.json").read_bytes()
    proc = run_cli("summary", *runs, *([] if "--out" in runs else ["--out", str(tmp_path / "s")]))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "s").exists() and (demos[0] / "summary.json").read_bytes() == before


def test_a_shared_postgresql_registry_as_a_run(demos: tuple[Path, Path], tmp_path: Path) -> None:
    """A fleet's shared registry given as a RUN: all its records count (here, a copy of demo b's records in a
    PostgreSQL registry), beside demo a's own; the URL's password never reaches the outputs."""
    from optout_registry.registry import Registry
    from tests.support.registry import pg_schema_url

    a, b = demos
    with contextlib.contextmanager(pg_schema_url)() as url:
        with Registry.open(f"sqlite:///{b / 'registry.db'}", create=False) as source:
            records = [e.record for e in source.records()]
        with Registry.open(url) as shared:
            shared.append(records)
            shared.checkpoint()
        secret = url.replace("postgresql://postgres@", "postgresql://postgres:s3cret@")
        assert secret != url
        data = summarise(str(a), secret, "--out", str(tmp_path / "s"))
    rows = data["sections"]["3.1"]["optouts"]["value"]["by_protocol"]
    expected = registry_protocols(a / "registry.db") + Counter(r["rule"]["protocol"] for r in records)
    assert {r["protocol"]: r["records"] for r in rows} == dict(expected)
    shared_facts = next(r for r in data["inputs"]["registries"] if r["registry"].startswith("postgresql://"))
    assert shared_facts["records"] == len(records) == shared_facts["tree_size"]
    for name in OUTPUTS:
        text = (tmp_path / "s" / name).read_text()
        assert "s3cret" not in text, name
    assert "postgres:***@" in (tmp_path / "s" / "summary.md").read_text()
