"""One table of defaults (middlewares/defaults.py): every ``OPTOUT_*`` name the toolkit reads is in it, and the
add-on's configuration, the standalone crawler's settings module, ``optout crawl``'s options, the disclosure page
and the README's settings table all state the same defaults."""

from __future__ import annotations

import dataclasses
import re
import sys
import types
from pathlib import Path

import pytest
from scrapy.settings import Settings

from crawler import settings as project_settings
from crawler.cli import build_parser
from crawler.crawl import CrawlOptions
from crawler.disclose import Disclosure, DisclosureError
from crawler.identity import PROJECT_URL
from middlewares.config import SIGNING_EXPIRES, OptOutConfig, policy_from_settings
from middlewares.defaults import DEFAULT_CRAWL_ID, ENVIRONMENT, SETTINGS, default, project_value, readme_rows

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(ROOT / "middlewares").rglob("*.py"), *(ROOT / "crawler").rglob("*.py")])
NAME = re.compile(r"\bOPTOUT_[A-Z][A-Z0-9_]*[A-Z0-9]\b")
# settings.getbool("OPTOUT_X", True): a default written beside the read instead of taken from the table.
LITERAL_DEFAULT = re.compile(r"""\.get(?:bool|int|float|list|dict)?\(\s*["'](OPTOUT_\w+)["']\s*,(?!\s*default\()""")


def test_every_optout_name_read_is_in_the_table() -> None:
    missing = {
        f"{name} ({path.relative_to(ROOT)})"
        for path in SOURCES
        for name in NAME.findall(path.read_text(encoding="utf-8"))
        if name not in SETTINGS and name not in ENVIRONMENT
    }
    assert not missing, f"add these to middlewares/defaults.py: {sorted(missing)}"


def test_no_default_is_written_beside_a_read() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {m.group(1)}"
        for path in SOURCES
        if path.name != "defaults.py"
        for m in LITERAL_DEFAULT.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not found, f"take these defaults from middlewares/defaults.py: {found}"


def test_config_defaults_are_the_table() -> None:
    config = OptOutConfig.from_settings(Settings({"OPTOUT_REGISTRY_URL": ""}))
    fields = {
        "on_reserved": "OPTOUT_ON_RESERVED",
        "robots_ttl": "OPTOUT_ROBOTS_TTL",
        "recheck_unreachable": "OPTOUT_RECHECK_UNREACHABLE",
        "policy_timeout": "OPTOUT_POLICY_TIMEOUT",
        "operator": "OPTOUT_OPERATOR",
        "node": "OPTOUT_NODE",
        "max_origins": "OPTOUT_CACHE_MAX_ORIGINS",
        "cache_prefix": "OPTOUT_CACHE_PREFIX",
        "cache_outage": "OPTOUT_CACHE_OUTAGE",
        "integrate": "OPTOUT_REGISTRY_INTEGRATE",
        "registry_flush": "OPTOUT_REGISTRY_FLUSH",
    }
    declared = {f.name: f.default for f in dataclasses.fields(OptOutConfig)}
    for field, name in fields.items():
        assert getattr(config, field) == default(name), field
        assert declared[field] == default(name), field
    policy = config.policy
    assert (policy.purpose.value, policy.mode.value) == (default("OPTOUT_PURPOSE"), default("OPTOUT_MODE"))
    assert policy.cross_token is default("OPTOUT_CROSS_TOKEN")
    assert policy.disabled == frozenset(default("OPTOUT_PROTOCOLS"))
    assert config.blocklist is None and default("OPTOUT_BLOCKLIST") is None
    assert config.signer is None and default("OPTOUT_SIGNING_KEY") is None
    assert default("OPTOUT_SIGNING_EXPIRES") == SIGNING_EXPIRES


def test_settings_module_is_the_table() -> None:
    names = [name for name in vars(project_settings) if name.startswith("OPTOUT_")]
    assert names
    for name in names:
        wanted = PROJECT_URL if name == "OPTOUT_INFO_URL" else project_value(name)
        value = getattr(project_settings, name)
        assert (list(value) if isinstance(value, list) else value) == (
            list(wanted) if isinstance(wanted, tuple) else wanted
        ), name


def test_crawl_options_are_the_table() -> None:
    opts = CrawlOptions(seeds=[], out=Path("out"))
    assert opts.purpose == project_value("OPTOUT_PURPOSE") == project_settings.OPTOUT_PURPOSE
    assert opts.agent == project_value("OPTOUT_AGENT") == project_settings.OPTOUT_AGENT
    assert opts.mode == project_value("OPTOUT_MODE") == project_settings.OPTOUT_MODE
    assert opts.cross_token is project_value("OPTOUT_CROSS_TOKEN")
    assert opts.crawl_id == DEFAULT_CRAWL_ID


def test_command_line_defaults_are_the_table() -> None:
    for command in (["check", "http://a.test/"], ["crawl", "http://a.test/"]):
        args = build_parser().parse_args(command)
        assert (args.purpose, args.mode, args.agent) == (
            default("OPTOUT_PURPOSE"),
            default("OPTOUT_MODE"),
            project_value("OPTOUT_AGENT"),
        )
        assert args.no_cross_token is not default("OPTOUT_CROSS_TOKEN")


def test_disclosure_states_the_policy_the_crawl_enforces() -> None:
    blank = Disclosure()
    assert (blank.operator, blank.mode, blank.cross_token, blank.signing_expires) == (
        default("OPTOUT_OPERATOR"),
        default("OPTOUT_MODE"),
        default("OPTOUT_CROSS_TOKEN"),
        default("OPTOUT_SIGNING_EXPIRES"),
    )
    assert blank.purposes == [default("OPTOUT_PURPOSE")] and blank.agents == [project_value("OPTOUT_AGENT")]
    settings = Settings()
    settings.setmodule(project_settings, priority="project")
    enforced = policy_from_settings(settings)
    page = Disclosure.from_settings()
    assert page.agents == [enforced.agent]
    assert page.purposes == [enforced.purpose.value]
    assert page.mode == enforced.mode.value
    assert page.disabled == sorted(enforced.disabled)
    assert page.cross_token is enforced.cross_token


def test_readme_settings_table_is_generated_from_the_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "\n".join(readme_rows()) in readme


def test_disclosure_refuses_a_policy_the_crawl_would_refuse(monkeypatch: pytest.MonkeyPatch) -> None:
    """The page is read through the add-on's own reading: what the crawl would stop on, the page does not publish,
    and what the crawl would enforce (normalised names, the token from ROBOTSTXT_USER_AGENT) is what it states."""
    module = types.ModuleType("cfg19_disclosure_settings")
    module.OPTOUT_PROTOCOLS = {"robots": False}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with pytest.raises(DisclosureError, match="cannot be switched off"):
        Disclosure.from_settings(module.__name__)
    module.OPTOUT_PROTOCOLS = {"AI-TXT": False}  # type: ignore[attr-defined]
    module.OPTOUT_MODE = "Strict"  # type: ignore[attr-defined]
    module.ROBOTSTXT_USER_AGENT = "ExampleBot"  # type: ignore[attr-defined]
    page = Disclosure.from_settings(module.__name__)
    settings = Settings({"OPTOUT_REGISTRY_URL": ""})
    settings.setmodule(module, priority="project")
    enforced = OptOutConfig.from_settings(settings).policy
    assert (page.disabled, page.mode, page.agents) == (["ai-txt"], "strict", ["ExampleBot"])
    assert (sorted(enforced.disabled), enforced.mode.value, enforced.agent) == (
        page.disabled,
        page.mode,
        page.agents[0],
    )
