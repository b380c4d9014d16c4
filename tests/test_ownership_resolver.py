"""The service's default resolver (optout_registry/service/ownership.py: public_resolver) against the machine's real
resolver: a claimed domain that resolves to a loopback, private, link-local, shared or unspecified address is
refused before anything is fetched from it (the service must not be a way to probe the operator's own network).
Only /etc/hosts names and numeric literals are used: nothing is looked up on the network."""

from __future__ import annotations

import pytest

from optout_registry.service.ownership import ChallengeFailed, public_resolver


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
