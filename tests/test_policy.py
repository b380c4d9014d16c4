"""The policy combiner: most restrictive wins, per purpose, with the operator's settings checked up front."""

from __future__ import annotations

import dataclasses
import re

import pytest

from middlewares.policy import MANDATORY_PROTOCOLS, Policy, PolicyError, resolve_tdmrep, signal_json, with_source
from middlewares.protocols import tdmrep
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
    assert d.allowed and d.reservations == () and d.errors == ("e",)
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


@pytest.mark.parametrize(("mode", "allowed"), [(Mode.STRICT, True), (Mode.CONSERVATIVE, False)])
def test_tdmrep_later_source_supersedes_in_strict_mode_only(mode: Mode, allowed: bool) -> None:
    """TDMRep's own priority order: a later `0` lifts an earlier `1` in strict mode; conservative keeps it."""
    reserve, lift = (tdmrep.header_signal([v], [], mode=mode) for v in ("1", "0"))
    assert reserve is not None and lift is not None
    other = sig("iptc", SEARCH)
    d = Policy.build(mode=mode).decide("u", [reserve, other, lift])
    assert d.allowed is allowed
    assert d.signals[0] == other and [s.protocol for s in d.signals[1:]] == ["tdmrep"]
    assert [s.value for s in d.signals[1:]] == (["0"] if allowed else ["1"])


def test_cross_token_setting_is_kept() -> None:
    assert Policy.build(cross_token=False).cross_token is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"purpose": "crawl"}, "choose one of: train-ai, ai-input, search"),
        ({"mode": "x"}, "choose conservative or strict"),
        ({"agent": "a b"}, "letters, digits, '-' and '_' only"),
        ({"disabled": ["b", "a"]}, "unknown protocol(s) a, b (known: robots, tdmrep,"),
        ({"disabled": ["robots", "access"]}, "protocol(s) access, robots cannot be switched off"),
    ],
)
def test_refusals_say_what_to_use_instead(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=re.escape(message)):
        Policy.build(**kwargs)  # type: ignore[arg-type]


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
    unsourced = sig("robots", TRAIN, allowed=(SEARCH,), note="n")
    out = with_source([unsourced, sig("rsl", TRAIN, source="https://h/license.xml")], "https://h/x")
    assert out[0] == dataclasses.replace(unsourced, source="https://h/x")  # everything else kept
    assert [s.source for s in out] == ["https://h/x", "https://h/license.xml"]


def test_a_purpose_a_signal_does_not_speak_to_is_unknown() -> None:
    s = sig("tdmrep", TRAIN, allowed=(INPUT,))
    assert (s.verdict(TRAIN), s.verdict(INPUT), s.verdict(SEARCH)) == (DENY, ALLOW, Verdict.UNKNOWN)
