"""Site blocklist: domains the operator must not crawl, e.g. sites recognised in the EU as persistently
infringing copyright on a commercial scale (GPAI Code of Practice Measure 1.2(b); PROTOCOLS.md §9.1, vector 89).

The list format is deliberately forgiving, because such lists are assembled from many sources: one entry per
line; ``#`` starts a comment; blank lines are ignored; an entry may be a bare host, ``*.host`` or ``.host``, a URL
(its host is used), ``host:port``, or a hosts-file line (``0.0.0.0 host``). Hosts are IDNA-normalised
(``bücher.example`` = ``xn--bcher-kva.example``) and lower-cased.

Matching a URL's host against the list:

* the exact host, or any parent domain of it that is listed (``cdn.pirate.example`` is covered by
  ``pirate.example``) — but the walk stops at the registrable domain, so a listed public suffix (``com``,
  ``co.uk``, ``github.io``) only ever matches itself, never every site under it;
* an entry ``www.X`` where ``X`` is a registrable domain also covers ``X`` and its subdomains (the listed *site*
  is ``X``; lists often copy the address-bar host).

Registrable domains come from tldextract's bundled public suffix list (private suffixes included, so one
``user.github.io`` entry does not cover all of GitHub Pages); it never fetches anything.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

from optout_registry.suffixes import extractor

from .signals import ALL_PURPOSES, Signal, Verdict, verdicts

PROTOCOL = "blocklist"
MAX_ENTRIES = 1_000_000
MAX_HOST_CHARS = 253
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")


@lru_cache(maxsize=65536)
def listed_site(host: str) -> str:
    """The site a blocklist covers a normalised host under: its eTLD+1, or "" for IPs, bare suffixes and single
    labels, which only ever match an exact entry. Not :func:`optout_registry.record.registrable_domain`, which
    keeps such hosts as their own site and refuses what has no host."""
    if not host or _is_ip(host):
        return ""
    try:
        result = extractor()(host)
    except Exception:  # tldextract on odd input: treat as unknown rather than fail a crawl
        return ""
    if not result.domain or not result.suffix:
        return ""
    return f"{result.domain}.{result.suffix}"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def normalise_host(text: str) -> str:
    """Lower-case ASCII (IDNA) form of a host name or of the host of a URL; "" when there is none."""
    if not isinstance(text, str):
        return ""
    text = text.strip()
    if not text:
        return ""
    if "/" in text or "@" in text or text.count(":") == 1:
        candidate = text if "://" in text else "//" + text.lstrip("/")
        try:
            parts = urlsplit(candidate)
            host = parts.hostname or ""
        except ValueError:
            return ""
    else:
        host = text
    host = host.strip().strip("[]").rstrip(".").lower()
    if not host or len(host) > 1024:
        return ""
    if _is_ip(host):
        return host
    if not host.isascii():
        host = _idna(host)
        if not host:
            return ""
    host = host.lower()
    if len(host) > MAX_HOST_CHARS or not _HOST_CHARS.issuperset(host) or ".." in host:
        return ""
    return host


def _idna(host: str) -> str:
    """IDNA 2008 / UTS 46 (what browsers and registries use) via the ``idna`` package when present, else
    Python's IDNA 2003 codec, else per-label Punycode. Entries and URLs go through the same function, so they
    always compare in the same form."""
    try:
        import idna

        return idna.encode(host, uts46=True, transitional=False).decode("ascii")
    except ImportError:  # pragma: no cover - idna ships with requests
        pass
    except (UnicodeError, ValueError, idna.IDNAError):
        pass
    try:
        return host.encode("idna").decode("ascii")
    except (UnicodeError, ValueError):
        pass
    try:
        return ".".join(
            label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii") for label in host.split(".")
        )
    except (UnicodeError, ValueError):
        return ""


@dataclass
class Blocklist:
    """A set of listed hosts. Build with :meth:`parse`; query with :meth:`match` or :meth:`signal`."""

    entries: set[str] = field(default_factory=set)
    # registrable domain -> the `www.` entry that covers it (see module docstring)
    www_sites: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    source: str = ""

    @classmethod
    def parse(cls, text: str, *, source: str = "") -> Blocklist:
        """Parse a list; never raises. Unusable lines are skipped (counted in ``notes``)."""
        if isinstance(text, bytes | bytearray):
            text = bytes(text).decode("utf-8", "replace")
        if not isinstance(text, str):
            return cls(source=source)
        out = cls(source=source)
        skipped = 0
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip().lstrip("\ufeff")
            if not line:
                continue
            words = line.split()
            word = words[0]
            if len(words) > 1:
                if not _is_ip(word):  # prose, not an entry
                    skipped += 1
                    continue
                word = words[1]  # hosts-file format: "0.0.0.0 pirate.example"
            word = word.strip(",;\"'")
            if word.startswith("*."):
                word = word[2:]
            word = word.lstrip(".")
            host = normalise_host(word)
            if not host:
                skipped += 1
                continue
            out.entries.add(host)
            if host.startswith("www."):
                site = listed_site(host)
                if site and host == "www." + site:
                    out.www_sites.setdefault(site, host)
            if len(out.entries) >= MAX_ENTRIES:
                out.notes.append(f"list truncated at {MAX_ENTRIES} entries")
                break
        if skipped:
            out.notes.append(f"{skipped} unusable line(s) skipped")
        return out

    def __len__(self) -> int:
        return len(self.entries)

    def match(self, url_or_host: str) -> str | None:
        """The listed entry that covers ``url_or_host`` (a URL or a bare host), or None."""
        host = normalise_host(url_or_host)
        if not host or not self.entries:
            return None
        if host in self.entries:
            return host
        if _is_ip(host):
            return None
        site = listed_site(host)
        labels = host.split(".")
        # Parents of the host, longest first, down to (and including) the registrable domain.
        for i in range(1, len(labels)):
            parent = ".".join(labels[i:])
            if site and len(parent) < len(site):
                break
            if not site and i > 0 and "." not in parent:
                break  # no known suffix: never climb to a bare top-level label
            if parent in self.entries:
                return parent
        if site and site in self.www_sites:
            return self.www_sites[site]
        return None

    def signal(self, url: str) -> Signal | None:
        """A ``blocklist`` signal denying every purpose when ``url`` is on the list."""
        entry = self.match(url)
        if entry is None:
            return None
        return Signal(
            protocol=PROTOCOL,
            where="blocklist",
            value=entry,
            rule=f"listed: {entry}",
            verdicts=verdicts(Verdict.DISALLOW, *ALL_PURPOSES),
            source=self.source,
        )
