"""The registry side of ``optout summary``: the opt-outs honoured per protocol, counted from the signed log itself,
with the checkpoint that covers them (what a rights holder verifies an export against).

Runs that share a registry (a fleet, or crawls resumed into one registry) are counted once per record: each
registry is read once, and a record counts if any run's selector (from index, by agent) takes it. Only records
under the latest signed checkpoint count, so every number here is provable with that checkpoint.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from crawler.summary_inputs import Selector, SummaryError


def registry_facts(selectors: list[Selector]) -> list[dict[str, Any]]:
    """One entry per registry: its origin, checkpoint (size, root, signed note), verifier key, and the records the
    runs account for, per protocol and per kind of record."""
    from optout_registry.messages import first_line, redact_url
    from optout_registry.registry import Registry
    from optout_registry.vocabulary import describe

    by_url: dict[str, list[Selector]] = {}
    for sel in selectors:
        by_url.setdefault(sel.url, []).append(sel)
    out = []
    for url, sels in sorted(by_url.items()):
        where = redact_url(url)
        try:
            with Registry.open(url, create=False) as reg:
                latest = reg.latest()
                protocols: Counter[str] = Counter()
                kinds: Counter[str] = Counter()
                for entry in reg.records(start=min(s.start for s in sels)):
                    record = entry.record
                    agent = (record.get("crawler") or {}).get("agent_token")
                    if not any(entry.index >= s.start and s.agent in (None, agent) for s in sels):
                        continue
                    protocols[describe(record)[0]] += 1
                    kinds[str(record.get("type", ""))] += 1
                out.append(
                    {
                        "registry": where,
                        "runs": sorted({s.run for s in sels}),
                        "origin": reg.origin,
                        "vkey": reg.recorded_vkey(),
                        "tree_size": latest[0] if latest else 0,
                        "root_sha256": latest[1].hex() if latest else None,
                        "checkpoint": latest[2] if latest else None,
                        "records": sum(protocols.values()),
                        "by_protocol": dict(sorted(protocols.items(), key=lambda kv: (-kv[1], kv[0]))),
                        "by_type": dict(sorted(kinds.items())),
                    }
                )
        except SummaryError:
            raise
        except Exception as exc:  # RegistryError, a driver's error, a damaged file: no proof, no summary
            raise SummaryError(f"cannot read the registry {where}: {first_line(exc)}") from None
    return out
