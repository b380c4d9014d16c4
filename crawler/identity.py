"""Who the crawler says it is: the project's address and the User-Agent built from the robots.txt token.

One home for them because the CLI, the crawl settings, the disclosure page and the datatrove step all state the
same identity, and a site can only match our requests to our published page if every one of them says the same.
"""

from __future__ import annotations

PROJECT_URL = "https://github.com/optout-toolkit/optout"
VERSION = "0.1"


def user_agent_for(agent: str, info_url: str = PROJECT_URL, purpose: str | None = None) -> str:
    """RFC 9309 §2.2.1: the product token is part of the User-Agent, which also says where to learn more (for a
    crawl, the operator's public page about the crawler, see ``optout disclose``). A crawl also states its purpose in
    the comment, so that a site can apply its Content-Usage / Content-Signal preferences to us knowingly: no published
    specification defines a request header for that (the webbotauth registry draft puts it in the Signature Agent
    Card, which ``optout disclose`` writes)."""
    said = f"; purpose={purpose}" if purpose else ""
    return f"Mozilla/5.0 (compatible; {agent}/{VERSION}{said}; +{info_url})"
