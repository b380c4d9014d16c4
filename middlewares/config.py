"""Reading the ``OPTOUT_*`` settings once, with safe defaults: enabling the add-on with nothing else configured
gives conservative train-ai enforcement and a local SQLite registry (DESIGN.md "Settings naming").

A bad value stops the crawl at start-up with one line naming the setting: a compliance layer that silently falls
back to something else on a typo would be worse than none.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from scrapy.exceptions import NotConfigured
from scrapy.utils.project import data_path

from middlewares.defaults import DAY, default
from middlewares.policy import DEFAULT_AGENT, Policy, PolicyError
from middlewares.protocols.blocklist import Blocklist

if TYPE_CHECKING:
    from middlewares.httpsig import Signer

logger = logging.getLogger(__name__)

ON_RESERVED = ("drop", "annotate")

_PRODUCT = re.compile(r"([A-Za-z][A-Za-z0-9_-]*)/")
_LEADING = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)(?:[\s;(]|$)")
_GENERIC = {"mozilla", "applewebkit", "chrome", "safari", "gecko", "firefox", "version", "khtml", "edg"}


class ConfigError(ValueError):
    """An ``OPTOUT_*`` setting that cannot be used; the message names it."""


def agent_from_user_agent(user_agent: str) -> str:
    """The robots.txt product token inside a User-Agent string (RFC 9309 §2.2.1: it SHOULD be a substring):
    ``Mozilla/5.0 (compatible; ExampleBot/0.1; +https://…)`` gives ``ExampleBot``, Scrapy's default gives
    ``Scrapy``. Browser boilerplate tokens are skipped. A User-Agent without a version, like the one
    ``scrapy startproject`` suggests (``plainbot (+http://www.yourdomain.com)``), gives its leading word."""
    for token in _PRODUCT.findall(user_agent or ""):
        if token.lower() not in _GENERIC:
            return str(token)
    leading = _LEADING.match(user_agent or "")
    if leading and leading.group(1).lower() not in _GENERIC:
        return leading.group(1)
    return DEFAULT_AGENT


@dataclass(frozen=True)
class OptOutConfig:
    """What the add-on enforces, read once from the settings; the disclosure page states the same policy
    (crawler/disclose.py reads it through ``policy_from_settings``). Defaults: middlewares/defaults.py."""

    policy: Policy
    on_reserved: str = default("OPTOUT_ON_RESERVED")
    registry_url: str | None = None
    cache_url: str | None = None
    blocklist: Blocklist | None = None
    robots_ttl: float = default("OPTOUT_ROBOTS_TTL")
    recheck_unreachable: float = default("OPTOUT_RECHECK_UNREACHABLE")
    policy_timeout: float = default("OPTOUT_POLICY_TIMEOUT")
    operator: str = default("OPTOUT_OPERATOR")
    node: str = default("OPTOUT_NODE")
    max_origins: int = default("OPTOUT_CACHE_MAX_ORIGINS")
    cache_prefix: str = default("OPTOUT_CACHE_PREFIX")
    cache_outage: float = default("OPTOUT_CACHE_OUTAGE")
    integrate: bool = default("OPTOUT_REGISTRY_INTEGRATE")
    registry_flush: float = default("OPTOUT_REGISTRY_FLUSH")
    prefetch: int = 16  # start requests whose origin's policy is loaded ahead (default: CONCURRENT_REQUESTS)
    lazy_start_after: int = default("OPTOUT_LAZY_START_AFTER")
    signer: Signer | None = field(default=None, compare=False)  # set when OPTOUT_SIGNING_KEY is

    @classmethod
    def from_settings(cls, settings: Any) -> OptOutConfig:
        """Every ``OPTOUT_*`` setting the add-on reads; ConfigError naming the first that cannot be used."""
        try:
            policy = policy_from_settings(settings)
        except PolicyError as exc:
            raise ConfigError(f"OPTOUT settings: {exc}") from None
        on_reserved = str(_get(settings, "OPTOUT_ON_RESERVED")).lower()
        if on_reserved not in ON_RESERVED:
            raise ConfigError(f"OPTOUT_ON_RESERVED must be 'drop' or 'annotate', not {on_reserved!r}")
        registry_url = settings.get("OPTOUT_REGISTRY_URL")
        if registry_url is None:
            registry_url = default_registry_url()
        cache_url = settings.get("OPTOUT_CACHE_URL")
        if cache_url is None and registry_url:
            cache_url = default_cache_url(registry_url)
        return cls(
            policy=policy,
            on_reserved=on_reserved,
            registry_url=registry_url or None,
            cache_url=cache_url or None,
            blocklist=load_blocklist(settings.get("OPTOUT_BLOCKLIST")),
            robots_ttl=_positive(settings, "OPTOUT_ROBOTS_TTL", maximum=DAY),
            recheck_unreachable=_positive(settings, "OPTOUT_RECHECK_UNREACHABLE"),
            policy_timeout=_positive(settings, "OPTOUT_POLICY_TIMEOUT"),
            operator=str(_get(settings, "OPTOUT_OPERATOR")),
            node=str(_get(settings, "OPTOUT_NODE")),
            max_origins=max(1, settings.getint("OPTOUT_CACHE_MAX_ORIGINS", default("OPTOUT_CACHE_MAX_ORIGINS"))),
            cache_prefix=str(_get(settings, "OPTOUT_CACHE_PREFIX")),
            cache_outage=_positive(settings, "OPTOUT_CACHE_OUTAGE"),
            integrate=settings.getbool("OPTOUT_REGISTRY_INTEGRATE", default("OPTOUT_REGISTRY_INTEGRATE")),
            registry_flush=_positive(settings, "OPTOUT_REGISTRY_FLUSH"),
            prefetch=_count(settings, "OPTOUT_PREFETCH", settings.getint("CONCURRENT_REQUESTS", 16)),
            lazy_start_after=_count(settings, "OPTOUT_LAZY_START_AFTER", default("OPTOUT_LAZY_START_AFTER")),
            signer=signer_from_settings(settings),
        )


def policy_from_settings(settings: Any) -> Policy:
    """The policy the settings declare (purpose, token, mode, protocols switched off, cross-token reading);
    PolicyError for one that cannot be used. The add-on enforces this and ``optout disclose`` publishes it: one
    reading, so the page cannot state a policy the crawl does not apply."""
    agent = settings.get("OPTOUT_AGENT") or settings.get("ROBOTSTXT_USER_AGENT")
    if not agent:
        agent = agent_from_user_agent(settings.get("USER_AGENT") or "")
    protocols = settings.get("OPTOUT_PROTOCOLS") or default("OPTOUT_PROTOCOLS")
    if not isinstance(protocols, Mapping):
        raise ConfigError("OPTOUT_PROTOCOLS must be a dict like {'ai-txt': False}")
    return Policy.build(
        purpose=_get(settings, "OPTOUT_PURPOSE"),
        agent=str(agent),
        mode=_get(settings, "OPTOUT_MODE"),
        disabled=[name for name, on in protocols.items() if not on],
        cross_token=settings.getbool("OPTOUT_CROSS_TOKEN", default("OPTOUT_CROSS_TOKEN")),
    )


def _get(settings: Any, name: str) -> Any:
    """The setting, or its default when it is unset or empty."""
    return settings.get(name) or default(name)


def _count(settings: Any, name: str, fallback: int) -> int:
    if settings.get(name) is None:
        return fallback
    try:
        value: int = settings.getint(name)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative")
    return value


def _positive(settings: Any, name: str, maximum: float | None = None) -> float:
    try:
        value: float = settings.getfloat(name, default(name))
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive")
    # RFC 9309 §2.4: a cached robots.txt SHOULD NOT be used for more than 24 hours.
    return min(value, maximum) if maximum else value


def default_registry_url() -> str:
    """A SQLite registry in the Scrapy project's data folder (``.scrapy/``), or the working directory when that
    folder cannot be made (a read-only project, a settings module that does not import)."""
    try:
        # Not data_path(..., createdir=True): that would create the database path itself as a directory.
        path = Path(data_path("optout-registry.db"))
        path.parent.mkdir(parents=True, exist_ok=True)
    except (OSError, ImportError, NotConfigured) as exc:
        logger.info("optout: no Scrapy data folder for the registry (%s); using the working directory", exc)
        path = Path("optout-registry.db")
    return f"sqlite:///{path.resolve()}"


def default_cache_url(registry_url: str) -> str | None:
    """The persistent policy cache lives next to a SQLite registry; with PostgreSQL, in the data folder."""
    if registry_url.startswith("sqlite:///"):
        path = Path(registry_url[len("sqlite:///") :])
        return f"sqlite:///{path.with_name(path.stem + '-cache.db')}"
    return None


def load_blocklist(value: Any) -> Blocklist | None:
    """``OPTOUT_BLOCKLIST``: a file path, an http(s) URL, or a list of domains."""
    if not value:
        return None
    if isinstance(value, (list, tuple, set, frozenset)):
        return Blocklist.parse("\n".join(str(v) for v in value), source="OPTOUT_BLOCKLIST")
    text = str(value)
    if text.startswith(("http://", "https://")):
        try:
            resp = requests.get(text, timeout=20)
            resp.raise_for_status()
        except requests.RequestException as exc:
            raise ConfigError(f"OPTOUT_BLOCKLIST: cannot fetch {text}: {exc}") from None
        return Blocklist.parse(resp.text, source=text)
    try:
        return Blocklist.parse(Path(text).read_text(encoding="utf-8", errors="replace"), source=text)
    except OSError as exc:
        raise ConfigError(f"OPTOUT_BLOCKLIST: cannot read {text}: {exc.strerror or exc}") from None


SIGNING_EXPIRES: int = default("OPTOUT_SIGNING_EXPIRES")  # seconds a request signature stays valid


def signer_from_settings(settings: Any) -> Signer | None:
    """Web Bot Auth (middlewares/signing.py): the signer the settings ask for, None when ``OPTOUT_SIGNING_KEY`` is
    unset; ConfigError naming the setting otherwise. Read with the rest of the configuration, so that a bad key stops
    the crawl at start-up like any other bad setting."""
    path = settings.get("OPTOUT_SIGNING_KEY")
    if not path:
        return None
    # Imported here: a crawl that does not sign does not load the signing and structured-field modules.
    from middlewares.httpsig import MAX_LIFETIME, SignatureError, Signer, load_private_key

    agent = settings.get("OPTOUT_SIGNATURE_AGENT")
    if not agent:
        raise ConfigError(
            "OPTOUT_SIGNING_KEY is set but OPTOUT_SIGNATURE_AGENT is not: set it to the https origin that serves "
            "/.well-known/http-message-signatures-directory (optout disclose writes that file)"
        )
    try:
        expires = settings.getint("OPTOUT_SIGNING_EXPIRES", default("OPTOUT_SIGNING_EXPIRES"))
    except ValueError:
        raise ConfigError("OPTOUT_SIGNING_EXPIRES must be a whole number of seconds") from None
    if not 1 <= expires <= MAX_LIFETIME:
        raise ConfigError(f"OPTOUT_SIGNING_EXPIRES must be 1 to {MAX_LIFETIME} seconds, not {expires}")
    try:
        key = load_private_key(str(path))
    except SignatureError as exc:
        raise ConfigError(f"OPTOUT_SIGNING_KEY: {exc}") from None
    try:
        return Signer(key, str(agent), lifetime=expires)
    except SignatureError as exc:
        raise ConfigError(f"OPTOUT_SIGNATURE_AGENT: {exc}") from None
