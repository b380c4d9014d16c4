"""``optout disclose``: the public page an operator publishes about its crawler, as HTML and JSON.

The GPAI Code of Practice (copyright chapter) asks for this: Measure 1.3 (make public information about the
crawlers used, their robots.txt features and how reservations are identified and complied with, with a way to be
notified of updates, e.g. a feed), Measure 1.5 (an electronic point of contact and a complaint mechanism), and
Measure 1.2 (no circumvention of paywalls, exclusion of listed infringing sites). The page says all of that from the
crawler's own settings, so it describes what the crawler actually does, not what someone wrote once:

* the robots.txt product token(s) and the exact User-Agent string (which links back to this page),
* the purposes, the mode, and per protocol whether it is honoured and how,
* the IP ranges the crawler connects from (a placeholder until the operator sets them),
* contact and complaint addresses,
* the registry's public verifier key and latest signed checkpoint, so a rights holder can pin the key before
  asking for an export of what was honoured on their site,
* with request signing on (``OPTOUT_SIGNING_KEY`` / ``--signing-key``), the Web Bot Auth keys the requests are
  signed with, and the key directory itself (crawler/keydir.py), so a site can tell our requests from an impostor's
  that uses the same User-Agent.

Files: ``index.html`` (the page), ``crawler.json`` (the same facts, machine-readable), ``feed.atom`` (one entry per
change, for automatic notification) and ``history.json`` (what the feed is built from); with signing,
``.well-known/http-message-signatures-directory`` and the header fields to serve it with, ``keys.json`` (when each
key was listed and retired) and ``signature-agent-card.json``.

This module gathers the facts and writes the files; crawler/disclosepage.py renders the page and the feed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scrapy.settings import Settings

from crawler import keydir
from crawler.disclosepage import PLACEHOLDER_IP, content_hash, render_feed, render_html
from crawler.exitcodes import EXIT_OK
from crawler.identity import PROJECT_URL, user_agent_for
from crawler.keydir import DIRECTORY_FILE, HEADERS_FILE
from crawler.outfiles import utc, write_atomic
from middlewares import httpsig
from middlewares.config import ConfigError, policy_from_settings
from middlewares.defaults import default, project_value
from middlewares.engine import origin_of
from middlewares.policy import Policy, PolicyError, parse_agent, parse_mode, parse_purpose
from optout_registry import cliargs
from optout_registry.errors import RegistryError
from optout_registry.registry import Registry

FORMAT = "optout-crawler-disclosure/v1"
DEFAULT_SETTINGS = "crawler.settings"
DEFAULT_CRAWL_REGISTRY = "optout-crawl/registry.db"

PURPOSES = {
    "train-ai": "training AI models (text and data mining for training)",
    "ai-input": "using content as input to AI systems (retrieval, grounding, answers)",
    "search": "search indexing",
}
MODES = {
    "conservative": "the reading an EU training crawler should use: where a rule is ambiguous or a policy file "
    "cannot be fetched, the answer is no",
    "strict": "the literal reading of each specification",
}
# id -> (what is read, how the crawler acts on it)
PROTOCOLS = {
    "robots": (
        "robots.txt (RFC 9309) for our token(s): groups, longest match, wildcards, status codes",
        "a disallowed URL is never fetched; 5xx, 429 or an unreachable robots.txt means nothing is fetched from that "
        "site until it answers; the Crawl-delay is observed. For AI training, a Disallow aimed at well-known AI "
        "training crawlers (GPTBot, CCBot, …) is honoured as a reservation too",
    ),
    "tdmrep": (
        "W3C TDMRep: /.well-known/tdmrep.json, tdm-reservation/tdm-policy headers, HTML meta, EPUB and PDF metadata",
        "a reservation keeps the content out of AI training and AI input",
    ),
    "content-usage": (
        "IETF AI preferences: Content-Usage in HTTP headers and robots.txt",
        "a 'n' for the purpose keeps the content out",
    ),
    "content-signal": ("Cloudflare Content-Signal in robots.txt and headers", "ai-train=no / ai-input=no is honoured"),
    "robots-tag": (
        "X-Robots-Tag headers and robots meta tags: noai, noimageai, noindex, token-scoped forms",
        "the page (or image) is not used for the purposes the directive names",
    ),
    "ai-txt": ("Spawning ai.txt", "matching paths are not used for AI training"),
    "rsl": (
        "RSL licences named in robots.txt, Link headers and HTML links",
        "a licence that prohibits the purpose keeps the content out",
    ),
    "iptc": ("IPTC plus:DataMining in XMP metadata of images and documents", "a prohibition keeps the file out"),
    "c2pa": ("C2PA / CAWG training-mining assertions embedded in media", "a restriction keeps the file out"),
    "access": (
        "401, 402, 403 and 451 answers, login walls and paywalls",
        "never circumvented: no retries with other credentials, user agents or tricks",
    ),
    "blocklist": (
        "the operator's list of domains never to crawl (e.g. sites recognised as persistently infringing)",
        "a listed domain and its subdomains are never fetched",
    ),
    "fetch": (
        "policy files and resources that could not be fetched",
        "when a reservation cannot be ruled out, the answer is no",
    ),
}
MANDATORY = ("robots", "access", "blocklist", "fetch")


class DisclosureError(Exception):
    """Something the user must fix (unknown settings module, unreadable registry)."""


@dataclass
class Disclosure:
    """The facts the page states, taken from the crawler's settings: the policy part (token, purpose, mode,
    protocols, cross-token reading) through the add-on's own reading of them (middlewares/config.py
    ``policy_from_settings``), so the page states what the crawl enforces; defaults from middlewares/defaults.py."""

    operator: str = default("OPTOUT_OPERATOR")
    agents: list[str] = field(default_factory=lambda: [project_value("OPTOUT_AGENT")])
    user_agent: str = ""
    info_url: str = default("OPTOUT_INFO_URL")
    purposes: list[str] = field(default_factory=lambda: [default("OPTOUT_PURPOSE")])
    mode: str = default("OPTOUT_MODE")
    disabled: list[str] = field(default_factory=list)
    cross_token: bool = default("OPTOUT_CROSS_TOKEN")
    contact: str = default("OPTOUT_CONTACT")
    complaints: str = default("OPTOUT_COMPLAINTS")
    ip_ranges: list[str] = field(default_factory=list)
    registry_url: str | None = None
    blocklist: str = ""
    signing_keys: list[str] = field(default_factory=list)  # private key files; their public keys are published
    signature_agent: str = ""
    signing_expires: int = default("OPTOUT_SIGNING_EXPIRES")
    user_agents: list[str] = field(default_factory=list)  # a crawl's User-Agent per purpose (it states the purpose)

    @classmethod
    def from_settings(cls, module: str = DEFAULT_SETTINGS, overrides: dict[str, Any] | None = None) -> Disclosure:
        """The settings module's facts with the command line's ``overrides`` on top (None and empty values are
        not overrides); DisclosureError for a module that does not load or a value the crawl would refuse."""
        settings = Settings()
        try:
            settings.setmodule(module, priority="project")
        except (ImportError, ValueError, TypeError) as exc:  # '' and '.x' are ValueError and TypeError
            raise DisclosureError(f"cannot load settings module {module!r}: {exc}") from None
        given = {k: v for k, v in (overrides or {}).items() if v not in (None, [], "")}
        policy = _policy(settings, given)
        agents = [str(a) for a in given.get("agents") or [policy.agent]]
        info_url = _checked(str(given.get("info_url") or settings.get("OPTOUT_INFO_URL") or ""), "info_url")
        purposes = [str(p) for p in given.get("purposes") or [policy.purpose.value]]
        user_agents = [settings.get("USER_AGENT") or ""]
        if "agents" in given or "info_url" in given or "purposes" in given or not user_agents[0]:
            user_agents = [user_agent_for(agents[0], info_url or PROJECT_URL, p) for p in purposes]
        keys = given.get("signing_keys") or (
            [settings.get("OPTOUT_SIGNING_KEY")] if settings.get("OPTOUT_SIGNING_KEY") else []
        )
        signature_agent = str(given.get("signature_agent") or settings.get("OPTOUT_SIGNATURE_AGENT") or "")
        if keys and not signature_agent and info_url:
            signature_agent = origin_of(info_url)
        try:
            expires = settings.getint("OPTOUT_SIGNING_EXPIRES", default("OPTOUT_SIGNING_EXPIRES"))
        except ValueError:
            raise DisclosureError("OPTOUT_SIGNING_EXPIRES must be a whole number of seconds") from None
        blocklist = settings.get("OPTOUT_BLOCKLIST") or ""
        if isinstance(blocklist, (list, tuple, set)):
            blocklist = f"{len(blocklist)} domain(s) listed in the settings"
        return cls(
            operator=str(given.get("operator") or settings.get("OPTOUT_OPERATOR") or default("OPTOUT_OPERATOR")),
            agents=agents,
            user_agent=user_agents[0],
            user_agents=user_agents,
            info_url=info_url,
            purposes=purposes,
            mode=policy.mode.value,
            disabled=sorted(policy.disabled),
            cross_token=policy.cross_token,
            contact=_checked(str(given.get("contact") or settings.get("OPTOUT_CONTACT") or ""), "contact"),
            complaints=_checked(str(given.get("complaints") or settings.get("OPTOUT_COMPLAINTS") or ""), "complaints"),
            ip_ranges=[
                _checked(str(r), "ip_ranges") for r in given.get("ip_ranges") or settings.getlist("OPTOUT_IP_RANGES")
            ],
            registry_url=given.get("registry_url") or settings.get("OPTOUT_REGISTRY_URL") or None,
            blocklist=str(given.get("blocklist") or blocklist),
            signing_keys=[str(k) for k in keys],
            signature_agent=signature_agent,
            signing_expires=expires,
        )

    def warnings(self) -> list[str]:
        """What an operator must fill in before publishing."""
        out = []
        if self.operator in ("", "localhost"):
            out.append(
                f"the page says 'Operated by {self.operator or '?'}': set OPTOUT_OPERATOR (or --operator) "
                "to your organisation's domain"
            )
        if not self.info_url or self.info_url.rstrip("/") == PROJECT_URL:
            out.append(
                f"the info URL is this project's placeholder ({PROJECT_URL}), not a page of yours: set "
                "OPTOUT_INFO_URL (or --info-url) to where you publish this page"
            )
        if not self.contact:
            out.append("no point of contact: set OPTOUT_CONTACT (or --contact)")
        if not self.complaints:
            out.append("no complaint address: set OPTOUT_COMPLAINTS (or --complaints)")
        if not self.ip_ranges:
            out.append("no IP ranges: set OPTOUT_IP_RANGES (or --ip-range)")
        if self.info_url and self.info_url not in self.user_agent:
            out.append(f"the User-Agent does not link to {self.info_url}")
        return out


# The same checks as the command line's, for values that come from a settings module instead: what is published
# must not depend on where it was configured.
_CHECKS: dict[str, tuple[str, Callable[[str], str]]] = {
    "info_url": ("OPTOUT_INFO_URL / --info-url", cliargs.http_url),
    "contact": ("OPTOUT_CONTACT / --contact", cliargs.contact),
    "complaints": ("OPTOUT_COMPLAINTS / --complaints", cliargs.contact),
    "ip_ranges": ("OPTOUT_IP_RANGES / --ip-range", cliargs.cidr),
}


def _policy(settings: Settings, given: dict[str, Any]) -> Policy:
    """The policy a crawl with these settings and the command line's first token, purpose and mode would
    enforce, read the way the add-on reads it (the other tokens and purposes are checked by run_disclose)."""
    for key, name in (("agents", "OPTOUT_AGENT"), ("purposes", "OPTOUT_PURPOSE"), ("mode", "OPTOUT_MODE")):
        if key in given:
            value = given[key]
            settings.set(name, value[0] if isinstance(value, list) else value, priority="cmdline")
    try:
        return policy_from_settings(settings)
    except (PolicyError, ConfigError) as exc:
        raise DisclosureError(str(exc)) from None


def _checked(value: str, name: str) -> str:
    if not value:
        return value
    where, check = _CHECKS[name]
    try:
        return check(value)
    except argparse.ArgumentTypeError as exc:
        raise DisclosureError(f"{where}: {exc}") from None


def registry_public(url: str | None) -> dict[str, Any] | None:
    """The registry's public key and latest signed checkpoint (None when there is no registry yet)."""
    if not url:
        return None
    try:
        with Registry.open(url, create=False) as reg:
            latest = reg.latest()
            return {
                "origin": reg.origin,
                "vkey": reg.vkey,
                "tree_size": latest[0] if latest else 0,
                "checkpoint": latest[2] if latest else None,
            }
    except RegistryError as exc:
        if str(exc).startswith("no registry at"):
            return None
        raise DisclosureError(f"cannot read the registry {url}: {exc}") from None


REQUEST_HEADER_NOTE = (
    "No published specification defines a request header for a crawler's purpose (IETF AI preferences' "
    "Content-Usage and Cloudflare's Content-Signal are the site's preferences, sent by the site), so none is sent. "
    "The purpose is stated in the User-Agent comment, on this page and in the Signature Agent Card of "
    "draft-meunier-webbotauth-registry (its purpose member)."
)


def write_signing(d: Disclosure, folder: Path) -> dict[str, Any] | None:
    """Write the key directory, its header fields, keys.json and the Signature Agent Card; the facts about signing
    for the page (None when the crawler does not sign and never did)."""
    if not d.signing_keys and not (folder / keydir.STATE_FILE).exists():
        return None
    try:
        keys = [httpsig.load_private_key(path) for path in d.signing_keys]
        agent = httpsig.check_agent_url(d.signature_agent) if d.signature_agent else ""
    except httpsig.SignatureError as exc:
        raise DisclosureError(f"signing: {exc}") from None
    if not agent:
        raise DisclosureError(
            "signing: no Signature-Agent: set OPTOUT_SIGNATURE_AGENT (or --signature-agent, or --info-url) to the "
            "https origin that will serve the key directory"
        )
    if not 1 <= d.signing_expires <= httpsig.MAX_LIFETIME:
        raise DisclosureError(f"OPTOUT_SIGNING_EXPIRES must be 1 to {httpsig.MAX_LIFETIME} seconds")
    listed = keydir.write_directory(folder, agent, keys, d.signing_expires)
    card = keydir.signature_agent_card(agent, d.agents, d.user_agent, d.purposes)
    write_atomic(folder / keydir.CARD_FILE, json.dumps(card, indent=1) + "\n")
    return {
        "signature_agent": agent,
        "signature_agent_header": f'{httpsig.LABEL}="{agent}"',
        "directory": agent + httpsig.WELL_KNOWN,
        "media_type": httpsig.DIRECTORY_MEDIA_TYPE,
        "algorithm": httpsig.ALG,
        "tag": httpsig.TAG,
        "covered_components": ["@method", "@authority", "@path", f'"signature-agent";key="{httpsig.LABEL}"'],
        "signature_lifetime": d.signing_expires,
        "keys": [
            {
                "kid": e["jwk"]["kid"],
                "status": "retired" if e.get("retired") else "current",
                "listed_since": e["listed"],
                "listed_until": e.get("exp"),
            }
            for e in listed
        ],
        "verify": f"optout verify-request REQUEST.txt --directory {agent + httpsig.WELL_KNOWN} --at TIME",
    }


def facts(d: Disclosure, registry: dict[str, Any] | None, signing: dict[str, Any] | None = None) -> dict[str, Any]:
    """The machine-readable disclosure (crawler.json)."""
    protocols = []
    for pid, (reads, acts) in PROTOCOLS.items():
        honoured = pid not in d.disabled
        if pid == "robots" and not d.cross_token:
            acts = acts.split(". For AI training")[0]
        protocols.append({"id": pid, "honoured": honoured, "reads": reads, "acts": acts, "mandatory": pid in MANDATORY})
    return {
        "format": FORMAT,
        "operator": d.operator,
        "crawler": {
            "tokens": d.agents,
            "user_agent": d.user_agent,
            "user_agents": d.user_agents or [d.user_agent],
            "info_url": d.info_url,
        },
        "purpose_request_header": REQUEST_HEADER_NOTE,
        "signing": signing,
        "purposes": [{"id": p, "description": PURPOSES.get(p, p)} for p in d.purposes],
        "mode": {"id": d.mode, "description": MODES.get(d.mode, d.mode)},
        "protocols": protocols,
        "reserved_content": (
            "A URL that may not be fetched is never requested. Content that may not be used for the purpose is "
            "dropped before it is stored. Every honoured opt-out is logged, with the evidence it rested on (the "
            "robots.txt body, the response headers, the policy file), in an append-only Merkle-tree registry with "
            "signed checkpoints."
        ),
        "blocklist": {"used": bool(d.blocklist), "source": d.blocklist or None},
        "ip_ranges": d.ip_ranges,
        "ip_ranges_note": None if d.ip_ranges else PLACEHOLDER_IP,
        "contact": d.contact or None,
        "complaints": d.complaints or None,
        "rights_holders": (
            "Ask the contact for an export of every opt-out honoured on your site. It comes as a bundle with inclusion "
            "proofs against a signed checkpoint; verify it offline with the verifier key below: "
            "optout registry verify BUNDLE --vkey KEY."
        ),
        "registry": registry,
        "code_of_practice": {
            "1.2": "no circumvention of paywalls and access controls; listed infringing domains are never crawled",
            "1.3": "robots.txt per RFC 9309 and the other machine-readable protocols listed here are honoured; this "
            "page and its feed are the public information about the crawler",
            "1.5": "point of contact and complaints: see contact and complaints",
        },
    }


def write_disclosure(d: Disclosure, folder: Path) -> dict[str, Any]:
    """Write index.html, crawler.json, feed.atom and history.json; returns the JSON facts."""
    folder.mkdir(parents=True, exist_ok=True)
    data = facts(d, registry_public(d.registry_url), write_signing(d, folder))
    history_path = folder / "history.json"
    try:
        history = json.loads(history_path.read_text(encoding="utf-8"))
        if not isinstance(history, list):
            history = []
    except (OSError, ValueError):
        history = []
    digest = content_hash(data)
    if not history or history[-1].get("sha256") != digest:
        what = f"tokens {', '.join(d.agents)}; purposes {', '.join(d.purposes)}; mode {d.mode}"
        if d.disabled:
            what += f"; switched off: {', '.join(d.disabled)}"
        if data["signing"]:
            what += "; signing keys " + ", ".join(f"{k['kid']} ({k['status']})" for k in data["signing"]["keys"])
        history.append({"updated": utc(), "sha256": digest, "summary": what})
    data["updated"] = history[-1]["updated"]
    write_atomic(folder / "crawler.json", json.dumps(data, indent=1, sort_keys=True) + "\n")
    write_atomic(folder / "index.html", render_html(data, d.warnings()))
    write_atomic(history_path, json.dumps(history, indent=1) + "\n")
    write_atomic(folder / "feed.atom", render_feed(history, d.info_url, f"{', '.join(d.agents)} crawler information"))
    return data


def run_disclose(args: Any) -> int:
    registry = args.registry or os.environ.get("OPTOUT_REGISTRY_URL")
    if not registry and Path(DEFAULT_CRAWL_REGISTRY).exists():
        registry = f"sqlite:///{Path(DEFAULT_CRAWL_REGISTRY).resolve()}"  # where `optout crawl` logs by default
    d = Disclosure.from_settings(
        getattr(args, "settings", None) or DEFAULT_SETTINGS,
        overrides={
            "agents": args.agent,
            "purposes": args.purpose,
            "mode": args.mode,
            "registry_url": registry,
            "info_url": args.info_url,
            "contact": args.contact,
            "complaints": args.complaints,
            "operator": args.operator,
            "ip_ranges": args.ip_range,
            "signing_keys": getattr(args, "signing_key", None),
            "signature_agent": getattr(args, "signature_agent", None),
        },
    )
    try:
        for agent in d.agents:
            parse_agent(agent)
        for purpose in d.purposes:
            parse_purpose(purpose)
        parse_mode(d.mode)
    except PolicyError as exc:
        raise DisclosureError(str(exc)) from None
    folder = Path(args.out)
    try:
        data = write_disclosure(d, folder)
    except OSError as exc:
        raise DisclosureError(f"cannot write {folder}: {exc.strerror or exc}") from None
    print(f"wrote {folder / 'index.html'}, {folder / 'crawler.json'} and {folder / 'feed.atom'}")
    print(f"publish them at {d.info_url or '(set OPTOUT_INFO_URL)'}; the User-Agent is: {d.user_agent}")
    if data["signing"]:
        print(
            f"publish {folder / DIRECTORY_FILE} at {data['signing']['directory']} with the header fields in "
            f"{folder / HEADERS_FILE} (they sign it; run optout disclose again within a week to renew them)"
        )
    if data["registry"] is None:
        print(
            "optout disclose: warning: no registry found"
            + (f" at {d.registry_url}" if d.registry_url else " (give --registry URL)")
            + ": the page has no verifier key yet",
            file=sys.stderr,
        )
    for warning in d.warnings():
        print(f"optout disclose: warning: {warning}", file=sys.stderr)
    return EXIT_OK
