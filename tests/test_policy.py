"""The policy combiner: most restrictive wins, per purpose, with the operator's settings checked up front."""

from __future__ import annotations

import pytest

from middlewares.policy import MANDATORY_PROTOCOLS, Policy, PolicyError, resolve_tdmrep, signal_json, with_source
from middlewares.protocols.signals import ALL_PURPOSES, Mode, Purpose, Signal, Verdict, verdicts

TRAIN, INPUT, SEARCH = Purpose.TRAIN_AI, Purpose.AI_INPUT, Purpose.SEARCH
DENY, ALLOW = Verdict.DISALLOW, Verdict.ALLOW


def sig(protocol: str, *denied: Purpose, allowed: tuple[Purpose, ...] = (), source: str = "", note: str = "") -> Signal:
    return Signal(protocol, "w", "v", "r", {**verdicts(ALLOW, *allowed), **verdicts(DENY, *denied)}, source, note)


def test_defaults() -> None:
    p = Policy.build()
    assert (p.purpose, p.agent, p.mode, p.disabled, p.cross_token) == (
        TRAIN,
        "OptOutBot",
        Mode.CONSERVATIVE,
        set(),
        True,
    )
    assert p.lenient and p.conservative
    strict = Policy.build(mode=" Strict ")
    assert strict.mode is Mode.STRICT and not strict.lenient and not strict.conservative


def test_a_deny_for_the_purpose_wins_over_any_allow() -> None:
    d = Policy.build().decide(
        "u", [sig("robots", allowed=(TRAIN,)), sig("tdmrep", TRAIN), sig("rsl", allowed=ALL_PURPOSES)]
    )
    assert not d.allowed
    assert [s.protocol for s in d.reservations] == ["tdmrep"]
    assert [s.protocol for s in d.signals] == ["robots", "tdmrep", "rsl"]


def test_a_deny_for_another_purpose_does_not_block() -> None:
    d = Policy.build(purpose="search").decide("u", [sig("tdmrep", TRAIN, INPUT)], errors=["e"])
    assert d.allowed and d.reservations == [] and d.errors == ["e"]
    assert Policy.build(purpose="ai-input").decide("u", [sig("tdmrep", TRAIN, INPUT)]).allowed is False


def test_disabled_protocols_are_not_observed() -> None:
    d = Policy.build(disabled=[" TDMRep ", ""]).decide("u", [sig("tdmrep", TRAIN), sig("iptc", SEARCH)])
    assert d.allowed and [s.protocol for s in d.signals] == ["iptc"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"purpose": "crawl"},
        {"mode": "lenient"},
        {"agent": ""},
        {"agent": "Bot/1.0"},
        {"agent": "Bötli"},
        {"disabled": ["nosuch"]},
        *({"disabled": [p]} for p in sorted(MANDATORY_PROTOCOLS)),
    ],
)
def test_unusable_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(PolicyError):
        Policy.build(**kwargs)  # type: ignore[arg-type]


def test_agent_token_accepts_letters_digits_dash_underscore() -> None:
    assert Policy.build(agent=" My_Bot-2 ").agent == "My_Bot-2"


def test_tdmrep_is_resolved_only_when_it_speaks_twice() -> None:
    one = [sig("robots", TRAIN), sig("tdmrep", TRAIN)]
    assert resolve_tdmrep(one, Mode.STRICT) is one


def test_to_json_contract() -> None:
    d = Policy.build(agent="ExampleBot").decide("https://h/x", [sig("tdmrep", TRAIN, INPUT, source="s", note="n")])
    assert d.to_json() == {
        "url": "https://h/x",
        "purpose": "train-ai",
        "agent": "ExampleBot",
        "mode": "conservative",
        "allowed": False,
        "reservations": [
            {
                "protocol": "tdmrep",
                "source": "s",
                "where": "w",
                "value": "v",
                "rule": "r",
                "purposes": ["train-ai", "ai-input"],
                "note": "n",
            }
        ],
        "errors": [],
    }
    assert "note" not in signal_json(sig("robots", TRAIN))


def test_with_source_fills_only_missing_sources() -> None:
    out = with_source([sig("robots", TRAIN), sig("rsl", TRAIN, source="https://h/license.xml")], "https://h/x")
    assert [s.source for s in out] == ["https://h/x", "https://h/license.xml"]
