"""One vocabulary: the protocol ids of the `check` contract, and the mapping of the registry's mechanism names to
them (optout_registry/vocabulary.py), for records of this version and of earlier ones."""

from __future__ import annotations

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
