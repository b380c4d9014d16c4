"""Every ``OPTOUT_*`` setting in one table: its default and what it means.

The add-on's configuration (middlewares/config.py), the standalone crawler's settings module (crawler/settings.py),
``optout crawl``'s options (crawler/crawl.py ``CrawlOptions``) and the disclosure page (crawler/disclose.py) take
their defaults from here, and the README's settings table is generated from the rows marked ``readme``
(tests/test_defaults.py fails when they drift apart, or when a module reads an ``OPTOUT_*`` name this table lacks).
A default written twice is a default that one day says two things: the disclosure page would then describe a crawl
other than the one that runs.

``default`` is what the code assumes when the setting is absent. ``project`` is set where the standalone crawler's
settings module deliberately sets something else (its named token, its info page), and ``shown`` is how the README
states a default that is worked out rather than fixed (``from USER_AGENT``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from middlewares.policy import DEFAULT_AGENT

DAY = 24 * 3600.0
UNSET: Any = object()  # ``project`` of a setting the settings module leaves at its default


@dataclass(frozen=True)
class Setting:
    """One ``OPTOUT_*`` setting: the default the code assumes, and its meaning in one line."""

    default: Any
    meaning: str
    shown: str | None = None  # the README's words for a default that is worked out at start-up
    readme: bool = False  # a row of the README's settings table
    project: Any = UNSET  # what crawler/settings.py sets instead, when it differs on purpose


SETTINGS: MappingProxyType[str, Setting] = MappingProxyType(
    {
        "OPTOUT_ENABLED": Setting(True, "False switches the add-on off (it then enforces and records nothing)"),
        "OPTOUT_PURPOSE": Setting("train-ai", "`train-ai`, `ai-input` or `search`", readme=True),
        "OPTOUT_AGENT": Setting(
            None,
            "the robots.txt product token",
            shown="from `USER_AGENT`",
            readme=True,
            project=DEFAULT_AGENT,
        ),
        "OPTOUT_MODE": Setting("conservative", "or `strict` (literal spec reading)", readme=True),
        "OPTOUT_PROTOCOLS": Setting(
            MappingProxyType({}),
            'e.g. `{"ai-txt": False}`; robots, access, fetch and blocklist cannot be switched off',
            shown="all on",
            readme=True,
        ),
        "OPTOUT_CROSS_TOKEN": Setting(
            True,
            "disallows aimed at well-known AI training crawlers count as a training reservation",
            readme=True,
        ),
        "OPTOUT_ON_RESERVED": Setting("drop", "or `annotate`", readme=True),
        "OPTOUT_REGISTRY_URL": Setting(
            None,
            "or `postgresql://…`; empty string turns recording off",
            shown="`sqlite:///.scrapy/optout-registry.db`",
            readme=True,
        ),
        "OPTOUT_CACHE_URL": Setting(
            None,
            "persistent policy cache (`sqlite:///path`, or `redis://…` shared by a fleet)",
            shown="next to the registry",
            readme=True,
        ),
        "OPTOUT_BLOCKLIST": Setting(None, "file, URL or list of domains never to fetch", shown="none", readme=True),
        "OPTOUT_ROBOTS_TTL": Setting(
            DAY, "seconds a policy is cached (at most 24 h, RFC 9309 §2.4)", shown="86400", readme=True
        ),
        "OPTOUT_RECHECK_UNREACHABLE": Setting(
            300.0, "seconds before an unreachable robots.txt is tried again", shown="300", readme=True
        ),
        "OPTOUT_POLICY_TIMEOUT": Setting(20.0, "download timeout for policy files", shown="20", readme=True),
        "OPTOUT_OPERATOR": Setting("localhost", "who is crawling, written into each record", readme=True),
        "OPTOUT_NODE": Setting(
            "", "which machine of the operator's is crawling, written into each record", readme=True
        ),
        "OPTOUT_CACHE_MAX_ORIGINS": Setting(
            5000, "origins kept in memory (the rest reload from the persistent cache)", readme=True
        ),
        "OPTOUT_CACHE_PREFIX": Setting("optout:", "prefix of the policy cache's keys in Redis"),
        "OPTOUT_CACHE_OUTAGE": Setting(60.0, "seconds a Redis outage is waited out before policies count as unknown"),
        "OPTOUT_REGISTRY_INTEGRATE": Setting(
            True, "this process signs the registry's checkpoints (False on fleet workers)"
        ),
        "OPTOUT_REGISTRY_FLUSH": Setting(0.5, "seconds between writes of queued registry records"),
        "OPTOUT_LAZY_START": Setting(
            True,
            "hold the spider's start requests, after the first `OPTOUT_LAZY_START_AFTER`, back while the downloader "
            "is full (many seeds otherwise all land in Scrapy's scheduler, whose per-slot queue slows down with every "
            "pending origin)",
            readme=True,
        ),
        "OPTOUT_LAZY_START_AFTER": Setting(
            256,
            "start requests passed straight to Scrapy's scheduler, as Scrapy itself would, before the lazy start "
            "holds the others back (a few hundred pending origins cost its queue little; holding back every seed "
            "cost a 100-origin crawl 5 % of its throughput)",
            readme=True,
        ),
        "OPTOUT_PREFETCH": Setting(
            None,
            "start requests, beyond the one waiting, whose origin's policy is loaded ahead (by the same rules), so a "
            "new origin's robots.txt and policy files do not hold a downloader place for two round trips before its "
            "first page; `0` turns it off",
            shown="`CONCURRENT_REQUESTS`",
            readme=True,
        ),
        "OPTOUT_GC_FREEZE": Setting(
            True,
            "`gc.freeze()` once the spider is open, so full garbage collections skip the start-up objects",
            readme=True,
        ),
        "OPTOUT_SIGNING_KEY": Setting(None, "Ed25519 key file every request is signed with (Web Bot Auth)"),
        "OPTOUT_SIGNATURE_AGENT": Setting(None, "https origin serving the key directory `optout disclose` writes"),
        "OPTOUT_SIGNING_EXPIRES": Setting(300, "seconds a request signature stays valid"),
        "OPTOUT_SIGNING_HANDLERS": Setting(
            None, "internal: the download handlers the signing handlers wrap (set by the add-on)"
        ),
        # The standalone crawler's settings module sets it to crawler.identity.PROJECT_URL (the middlewares do not
        # import the crawler), which `optout disclose` warns about until the operator sets a page of their own.
        "OPTOUT_INFO_URL": Setting("", "the public page about the crawler; the User-Agent links to it"),
        "OPTOUT_CONTACT": Setting("", "e-mail or URL of the operator's point of contact, published"),
        "OPTOUT_COMPLAINTS": Setting("", "where rights holders send complaints, published"),
        "OPTOUT_IP_RANGES": Setting((), "CIDR ranges the crawler connects from, published"),
        "OPTOUT_OUT_DIR": Setting(None, "folder the standalone crawler writes its items, decisions and report into"),
        "OPTOUT_REPORT_LABELS": Setting(MappingProxyType({}), "site -> label shown in the crawl's report"),
        "OPTOUT_JOURNAL_INTERVAL": Setting(0.5, "seconds between commits of the request journal"),
        "OPTOUT_FLEET_REDIS": Setting(None, "Redis URL that makes this worker one of a distributed crawl"),
        "OPTOUT_CRAWL_ID": Setting(None, "name of the distributed crawl (its Redis keys)", shown="`optout-crawl`"),
        "OPTOUT_FLEET_GRACE": Setting(3.0, "seconds a fleet worker stays idle before it may close"),
        "OPTOUT_LOOPBACK_HOSTS": Setting(
            MappingProxyType({}), "tests and the demo: host names resolved to loopback ports"
        ),
    }
)

# Environment variables the command line reads (not Scrapy settings).
ENVIRONMENT: MappingProxyType[str, str] = MappingProxyType(
    {
        "OPTOUT_REGISTRY_URL": "the registry `optout` commands use when --registry is not given",
        "OPTOUT_REDIS_URL": "the Redis of `optout crawl --distributed` when --redis is not given",
    }
)

DEFAULT_CRAWL_ID = "optout-crawl"  # OPTOUT_CRAWL_ID of a fleet started without one


def default(name: str) -> Any:
    """The default of setting ``name`` (KeyError for a name the table does not have: add it there)."""
    return SETTINGS[name].default


def project_value(name: str) -> Any:
    """What the standalone crawler's settings module sets ``name`` to."""
    setting = SETTINGS[name]
    return setting.default if setting.project is UNSET else setting.project


def readme_rows() -> list[str]:
    """The README's settings table, generated from this one."""
    rows = ["| setting | default | meaning |", "|---|---|---|"]
    for name, setting in SETTINGS.items():
        if setting.readme:
            rows.append(f"| `{name}` | {setting.shown or _shown(setting.default)} | {setting.meaning} |")
    return rows


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return f"`{value}`"
    if isinstance(value, str):
        return f"`{value}`" if value else "empty"
    return f"{value:g}" if isinstance(value, float) else str(value)
