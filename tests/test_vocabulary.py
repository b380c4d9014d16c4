"""One vocabulary: the protocol ids of the `check` contract, and the mapping of the registry's mechanism names to
them (optout_registry/vocabulary.py), for records of this version and of earlier ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from middlewares.protocols.signals import PROTOCOLS, Signal
from middlewares.recording import mechanism
from optout_registry.vocabulary import (
    MECHANISMS,
    PROTOCOL_IDS,
    describe,
    from_mechanism,
    label,
    mechanism_of,
    rule_text,
)


def test_protocol_ids_are_the_check_contract() -> None:
    assert set(PROTOCOL_IDS) == set(PROTOCOLS)


@pytest.mark.parametrize(("pair", "written"), sorted(MECHANISMS.items()))
def test_every_mechanism_maps_back(pair: tuple[str, str], written: str) -> None:
    protocol, where = pair
    assert mechanism(Signal(protocol, where, "v", "r")) == written == mechanism_of(protocol, where)
    assert from_mechanism(written) == pair


@pytest.mark.parametrize(
    ("protocol", "where"),
    [
        ("content-signal", "robots.txt"),
        ("ai-txt", "ai.txt"),
        ("rsl", "rsl"),
        ("c2pa", "jumbf"),
        ("access", "status"),
        ("blocklist", "blocklist"),
        ("fetch", "url"),
        ("fetch", "well-known"),
        ("fetch", "ai.txt"),
    ],
)
def test_mechanisms_outside_the_table_map_back_to_their_protocol(protocol: str, where: str) -> None:
    assert from_mechanism(mechanism_of(protocol, where))[0] == protocol


@pytest.mark.parametrize(
    ("mechanism_name", "expected"),
    [  # REGISTRY.md §6.2's names, and names only older or other writers used
        ("robots.txt", ("robots", "robots.txt")),
        ("aipref.header", ("content-usage", "header")),
        ("aipref.robots", ("content-usage", "robots.txt")),
        ("x-robots-tag", ("robots-tag", "header")),
        ("meta-robots", ("robots-tag", "html-meta")),
        ("iptc.xmp", ("iptc", "xmp")),
        ("tdmrep.wellknown", ("tdmrep", "well-known")),
        ("tdmrep.pdf", ("tdmrep", "pdf")),
        ("content-signal", ("content-signal", "")),
        ("robots.txt.unreachable", ("fetch", "robots.txt")),
        ("fetch.failed", ("fetch", "url")),
        ("something-new", ("something-new", "")),
    ],
)
def test_old_and_spec_mechanisms_are_shown_as_protocol_ids(mechanism_name: str, expected: tuple[str, str]) -> None:
    assert describe({"mechanism": mechanism_name, "rule": {"pattern": "/x"}}) == expected


def test_a_record_is_described_by_its_rule_first() -> None:
    record = {"mechanism": "x-robots-tag", "rule": {"protocol": "robots-tag", "where": "header", "rule": "noai"}}
    assert describe(record) == ("robots-tag", "header") and label(record) == "robots-tag (header)"
    assert rule_text(record) == "noai"
    assert rule_text({"rule": {"pattern": "/p/", "line": 3}}) == "pattern: /p/; line: 3"
    assert label({"mechanism": "c2pa", "rule": {}}) == "c2pa"


# Mechanism names records are logged with: none of them may be what a person reads as the protocol.
FINER = {m for m in MECHANISMS.values() if m not in PROTOCOL_IDS} | {"fetch.failed"}


def test_every_protocol_id_a_user_sees_is_from_one_vocabulary(tmp_path: Path) -> None:
    """The demo's crawl, then every place a person reads a protocol: the report, `optout check`, `registry
    records`, an export's summary.txt, the verifier's report and the service. One vocabulary throughout."""
    import json
    import re

    from crawler.demo import HOSTS
    from crawler.fixtureweb import FixtureWeb, Route, page
    from tests.support.run import run_cli

    out = tmp_path / "demo"
    assert run_cli("demo", "--out", str(out), timeout=120).returncode == 0
    seen: dict[str, set[str]] = {}

    report = (out / "report.html").read_text()
    seen["report"] = set(re.findall(r'<span class="chip"[^>]*>([a-z][a-z.-]*)', report))
    seen["report chart"] = set(re.findall(r'data-protocol="([^"]+)"', report))
    seen["summary.json"] = set(json.loads((out / "summary.json").read_text())["honoured"]["by_protocol"])
    seen["decisions.jsonl"] = {
        r["protocol"]
        for line in (out / "decisions.jsonl").read_text().splitlines()
        for r in json.loads(line).get("reservations", [])
    }

    registry = f"sqlite:///{(out / 'registry.db').resolve()}"
    listed = set()
    for site in HOSTS.values():
        proc = run_cli("registry", "records", "--registry", registry, "--site", site)
        listed |= {line.split("  ")[2].split(" ")[0] for line in proc.stdout.splitlines()}
        jsonl = run_cli("registry", "records", "--registry", registry, "--site", site, "--json")
        for line in jsonl.stdout.splitlines():
            assert json.loads(line)["protocol"] in PROTOCOL_IDS
    seen["registry records"] = listed

    bundle = out / "bundle-photo-gallery.test"
    summary_txt = (bundle / "summary.txt").read_text().split("Records\n-------\n", 1)[1].split("\n\n")[0]
    seen["export summary.txt"] = {line.split("  ")[2].split(" ")[0] for line in summary_txt.splitlines()[1:]}
    vkey = run_cli("registry", "key", "--registry", registry).stdout.strip()
    verified = run_cli("registry", "verify", str(bundle), "--vkey", vkey).stdout
    seen["registry verify"] = set(re.findall(r"\(claimed\) ([a-z-]+) ", verified))

    with FixtureWeb() as web:
        base = web.site(
            "s",
            {
                "/a": Route(body=page("a"), headers=[("X-Robots-Tag", "noai")]),
                "/b": page("b", head='<meta name="robots" content="noai">'),
                "/c": Route(body=page("c"), headers=[("Content-Usage", "train-ai=n"), ("tdm-reservation", "1")]),
                "/gone": Route(404, "missing"),
            },
        )
        urls = [base + p for p in ("/a", "/b", "/c", "/gone")]
        checked = run_cli("check", "--json", *urls)
        human = run_cli("check", *urls)
    seen["optout check --json"] = {
        r["protocol"] for line in checked.stdout.splitlines() for r in json.loads(line)["reservations"]
    }
    seen["optout check"] = set(re.findall(r"[(;] ([a-z-]+): ", human.stdout))

    try:
        from optout_registry.service.app import ServiceConfig
        from optout_registry.service.testing import LiveServer
    except ImportError:  # the [service] extra
        pass
    else:
        import httpx

        token = "vocabulary-test-admin-token"
        cfg = ServiceConfig(registry_url=registry, admin_token=token, checkpoint_poll=0)
        with LiveServer(cfg) as srv, httpx.Client(base_url=srv.url) as client:
            auth = {"Authorization": f"Bearer {token}"}
            table = client.get("/.well-known/optout-registry").json()["mechanisms"]
            shown = set()
            for site in HOSTS.values():
                stats = client.get(f"/api/v1/sites/{site}/stats", headers=auth).json()
                shown |= set(stats["by_protocol"])
                records = client.get(f"/api/v1/sites/{site}/records", headers=auth).json()["records"]
                for item in records:  # what the page shows (app.js describe): the rule's protocol, else the table's
                    rec = item["record"]
                    shown.add(rec["rule"].get("protocol") or table.get(rec["mechanism"], [rec["mechanism"]])[0])
            seen["service"] = shown

    for where, protocols in seen.items():
        assert protocols, where
        assert protocols <= set(PROTOCOL_IDS), (where, protocols - set(PROTOCOL_IDS))
        assert not protocols & FINER, (where, protocols & FINER)
    everywhere = seen["decisions.jsonl"]
    for where in ("report", "report chart", "summary.json", "registry records", "service"):
        if where in seen:
            assert seen[where] == everywhere, (where, seen[where] ^ everywhere)
