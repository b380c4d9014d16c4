"""The service's default resolver (optout_registry/service/ownership.py: public_resolver) and its DNS challenge,
first against the machine's own resolver (/etc/hosts names and numeric literals only), then against a real,
authoritative DNS server on 127.0.0.1 (tests/support/dns.py) whose A, AAAA and TXT answers travel as DNS packets:
a claimed domain that resolves to a loopback, private, link-local, shared, documentation or unspecified address
— even once, among public ones — is refused before anything is fetched from it (the service must not be a way to
probe the operator's own network); public addresses are tried over https then http; the TXT challenge passes only
on a record at ``_optout-challenge.<domain>`` holding exactly the token. Nothing is looked up on the internet and
no public address is ever contacted."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from optout_registry.service.ownership import ChallengeFailed, check_dns, public_resolver
from tests.support.dns import DnsClient, DnsServer, dns_server

# -- the host's own resolver ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "domain",
    [
        "localhost",  # through /etc/hosts
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.10",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared address space: not private, not global either
        "0.0.0.0",
        "::1",
        "fd00::1",
    ],
)
def test_non_public_addresses_are_refused(domain: str) -> None:
    with pytest.raises(ChallengeFailed, match="non-public address"):
        public_resolver(domain)


def test_a_public_address_is_tried_over_https_then_http() -> None:
    assert public_resolver("93.184.215.14") == ["https://93.184.215.14", "http://93.184.215.14"]


def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(ChallengeFailed, match="does not resolve"):
        public_resolver("bad..name")  # an empty label: refused by the IDNA codec before any lookup


# -- a real DNS server on loopback ---------------------------------------------------------------------------------

PUBLIC4, PUBLIC6 = "8.8.8.8", "2001:4860:4860::8888"  # global addresses: returned as URLs, never contacted
ZONE: dict[str, list[tuple[str, str | tuple[str, ...]]]] = {
    "ten.example": [("A", "10.0.0.1")],
    "oneninetwo.example": [("A", "192.168.7.20")],
    "seventeen.example": [("A", "172.16.0.9")],
    "loop.example": [("A", "127.0.0.1")],
    "metadata.example": [("A", "169.254.169.254")],
    "shared.example": [("A", "100.64.0.1")],  # not is_private, not is_global: only the right test catches it
    "docs.example": [("A", "192.0.2.7")],  # TEST-NET-1
    "zero.example": [("A", "0.0.0.0")],
    "loop6.example": [("AAAA", "::1")],
    "ula6.example": [("AAAA", "fd12:3456::1")],
    "linklocal6.example": [("AAAA", "fe80::1")],
    "mapped6.example": [("AAAA", "::ffff:10.0.0.1")],  # IPv4-mapped private address
    "public4.example": [("A", PUBLIC4)],
    "public6.example": [("AAAA", PUBLIC6)],
    "public46.example": [("A", PUBLIC4), ("AAAA", PUBLIC6)],
    "mixed4.example": [("A", PUBLIC4), ("A", "10.0.0.1")],  # a private address after a public one
    "mixed46.example": [("A", PUBLIC4), ("AAAA", "::1")],
    "textonly.example": [("TXT", "v=spf1 -all")],  # exists, but has no address
    "_optout-challenge.holder.example": [("TXT", "unrelated"), ("TXT", "tok-abc123")],
    "_optout-challenge.split.example": [("TXT", ("tok-", "abc123"))],  # one record, two character-strings
    "_optout-challenge.near.example": [("TXT", "tok-abc1234"), ("TXT", "xtok-abc123"), ("TXT", "tok-abc12")],
    "_optout-challenge.spaced.example": [("TXT", "  tok-abc123 ")],
    "_optout-challenge.notxt.example": [("A", PUBLIC4)],
    "wrongplace.example": [("TXT", "tok-abc123")],  # the token at the domain itself, not the challenge label
    "_optout-challenge.other.example": [("TXT", "tok-abc123")],  # published for somebody else's domain
}
TOKEN = "tok-abc123"


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with dns_server(ZONE) as server:
        yield server


@pytest.fixture
def client(dns: DnsServer) -> DnsClient:
    return DnsClient(dns.address)


@pytest.mark.parametrize(
    "domain",
    [
        "ten.example",
        "oneninetwo.example",
        "seventeen.example",
        "loop.example",
        "metadata.example",
        "shared.example",
        "docs.example",
        "zero.example",
        "loop6.example",
        "ula6.example",
        "linklocal6.example",
        "mapped6.example",
        "mixed4.example",
        "mixed46.example",
    ],
)
def test_names_resolving_to_non_public_addresses_over_dns_are_refused(
    dns: DnsServer, client: DnsClient, domain: str
) -> None:
    with pytest.raises(ChallengeFailed, match="non-public address"):
        public_resolver(domain, addresses=client.addresses)
    assert (domain, "A") in dns.asked  # the answer came from the server, as packets


@pytest.mark.parametrize(
    ("domain", "addresses"),
    [("public4.example", [PUBLIC4]), ("public6.example", [PUBLIC6]), ("public46.example", [PUBLIC4, PUBLIC6])],
)
def test_names_resolving_to_public_addresses_over_dns_are_tried(
    dns: DnsServer, client: DnsClient, domain: str, addresses: list[str]
) -> None:
    assert client.addresses(domain) == addresses
    assert public_resolver(domain, addresses=client.addresses) == [f"https://{domain}", f"http://{domain}"]
    assert {(domain, "A"), (domain, "AAAA")} <= set(dns.asked)


@pytest.mark.parametrize("domain", ["absent.example", "textonly.example"])
def test_names_without_an_address_over_dns_are_refused(client: DnsClient, domain: str) -> None:
    with pytest.raises(ChallengeFailed, match="does not resolve"):
        public_resolver(domain, addresses=client.addresses)


def test_a_lookup_that_returns_nothing_or_garbage_is_refused() -> None:
    with pytest.raises(ChallengeFailed, match="does not resolve"):
        public_resolver("x.example", addresses=lambda _name: [])
    with pytest.raises(ChallengeFailed, match="not an address"):
        public_resolver("x.example", addresses=lambda _name: [PUBLIC4, "not-an-ip"])


@pytest.mark.parametrize("domain", ["holder.example", "split.example", "spaced.example"])
def test_the_dns_challenge_passes_on_a_txt_record_holding_the_token(
    dns: DnsServer, client: DnsClient, domain: str
) -> None:
    assert check_dns(domain, TOKEN, client.txt) == f"dns:_optout-challenge.{domain}"
    assert (f"_optout-challenge.{domain}", "TXT") in dns.asked


@pytest.mark.parametrize(
    ("domain", "reason"),
    [
        ("near.example", "no TXT record"),  # longer, prefixed and truncated tokens are not the token
        ("notxt.example", "no TXT record"),  # the name exists, without TXT records
        ("wrongplace.example", r"TXT lookup .* failed: NameNotFound"),  # only the challenge label counts
        ("absent.example", r"TXT lookup .* failed: NameNotFound"),
    ],
)
def test_the_dns_challenge_fails_without_the_exact_token_at_the_challenge_name(
    client: DnsClient, domain: str, reason: str
) -> None:
    with pytest.raises(ChallengeFailed, match=reason):
        check_dns(domain, TOKEN, client.txt)


def test_the_dns_challenge_fails_when_the_server_does_not_answer() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # bound, never answers
        silent.bind(("127.0.0.1", 0))
        lookup = DnsClient(silent.getsockname(), timeout=0.3).txt
        with pytest.raises(ChallengeFailed, match=r"TXT lookup .* failed: TimeoutError"):
            check_dns("holder.example", TOKEN, lookup)


# -- the service, with the guard and the DNS challenge on the loopback server ---------------------------------------


def test_the_service_refuses_private_addresses_and_accepts_a_dns_proof(tmp_path: Path) -> None:
    pytest.importorskip("fastapi", reason="the [service] extra is not installed")
    import httpx

    from optout_registry.registry import Registry
    from optout_registry.service.app import ServiceConfig
    from optout_registry.service.guard import RateLimits
    from optout_registry.service.testing import LiveServer
    from tests.support.registry import ROBOTS, make_records

    url = f"sqlite:///{tmp_path / 'reg.db'}"
    with Registry.open(url, key=tmp_path / "reg.key", batch_size=10) as reg:
        reg.append(make_records(4, site="svc.example"), evidence=[ROBOTS])
        reg.checkpoint()
    zone: dict[str, list[tuple[str, str | tuple[str, ...]]]] = {"svc.example": [("A", "10.20.30.40")]}
    with dns_server(zone) as server:
        client = DnsClient(server.address)
        cfg = ServiceConfig(
            registry_url=url,
            key=str(tmp_path / "reg.key"),
            resolver=functools.partial(public_resolver, addresses=client.addresses),
            txt_lookup=client.txt,
            limits=RateLimits(read_per_s=0, write_per_min=0, export_per_min=0),
            checkpoint_poll=0,
            fetch_timeout=1.0,
        )
        with LiveServer(cfg) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:

            def challenge(method: str) -> dict[str, str]:
                r = c.post("/api/v1/ownership/challenges", json={"domain": "SVC.example.", "method": method})
                assert r.status_code == 201, r.text
                return r.json()

            def verify(ch: dict[str, str]) -> httpx.Response:
                path = f"/api/v1/ownership/challenges/{ch['challenge_id']}/verify"
                return c.post(path, json={"secret": ch["secret"]})

            ch = challenge("http")
            r = verify(ch)
            assert r.status_code == 403 and "non-public address" in r.json()["detail"], r.text
            assert ("svc.example", "A") in server.asked

            ch = challenge("dns")
            assert ch["dns_name"] == "_optout-challenge.svc.example"
            r = verify(ch)
            assert r.status_code == 403 and "NameNotFound" in r.json()["detail"], r.text
            zone["_optout-challenge.svc.example"] = [("TXT", "someone else's"), ("TXT", ch["token"] + "x")]
            assert verify(ch).status_code == 403
            zone["_optout-challenge.svc.example"].append(("TXT", ch["token"]))
            r = verify(ch)
            assert r.status_code == 200, r.text
            assert r.json()["domain"] == "svc.example"
            assert r.json()["proven_at"] == "dns:_optout-challenge.svc.example"
            holder = {"Authorization": f"Bearer {r.json()['access_token']}"}
            assert c.get("/api/v1/sites/svc.example/records", headers=holder).status_code == 200
            assert server.asked.count(("_optout-challenge.svc.example", "TXT")) == 3
