"""Lawful-access signals: HTTP status codes that deny access, login walls and paywalls (PROTOCOLS.md §10.1,
GPAI Code of Practice Measure 1.2: do not circumvent access restrictions, paywalls or subscription models).

These are not rights reservations but evidence that the content is not lawfully open to us, so every purpose is
denied and nothing is retried with tricks. Detection must stay conservative in both directions: a real wall must
be caught, but an ordinary article with a "log in" box in its header must not be blocked. Hence the HTML test
requires a password form *and* a page that is mostly that form (little visible text), and the redirect test
requires the request to have been sent somewhere that is a login / subscription endpoint.
"""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .signals import ALL_PURPOSES, Signal, Verdict, verdicts

if TYPE_CHECKING:
    from .html import HtmlHead

PROTOCOL = "access"

DENYING_STATUSES: dict[int, str] = {
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    451: "Unavailable For Legal Reasons",
}

# Path segments (lower-case, file extension removed) of login / registration / subscription endpoints.
LOGIN_SEGMENTS = frozenset(
    {
        "login",
        "log-in",
        "log_in",
        "logon",
        "signin",
        "sign-in",
        "sign_in",
        "servicelogin",
        "wp-login",
        "auth",
        "authenticate",
        "authorize",
        "oauth",
        "oauth2",
        "sso",
        "cas",
        "signup",
        "sign-up",
        "sign_up",
        "register",
        "subscribe",
        "subscription",
        "subscriptions",
        "paywall",
        "checkout",
    }
)
# First host labels of identity providers (accounts.example.com, login.example.com).
LOGIN_HOST_LABELS = frozenset({"login", "signin", "auth", "accounts", "account", "sso", "idp", "subscribe"})
# Query parameters that carry the page to return to after logging in.
RETURN_PARAMS = frozenset(
    {
        "next",
        "return_to",
        "returnto",
        "return",
        "returnurl",
        "return_url",
        "redirect",
        "redirect_to",
        "redirect_uri",
        "redirecturl",
        "continue",
        "dest",
        "destination",
        "goto",
        "service",
        "backurl",
        "came_from",
    }
)
LOGIN_TITLE_WORDS = ("log in", "login", "log on", "sign in", "signin", "sign-in", "anmelden", "connexion", "subscribe")
# A login page is mostly its form; a real article is long. Between the two limits only a login-like title counts.
SHORT_PAGE_CHARS = 1000
LOGIN_TITLED_PAGE_CHARS = 5000
MAX_JSON_LD_CHARS = 1_000_000
_FALSE_VALUES = frozenset({"false", "no", "0", "http://schema.org/false", "https://schema.org/false"})


def _deny(where: str, value: str, rule: str, source: str, note: str = "") -> Signal:
    return Signal(
        protocol=PROTOCOL,
        where=where,
        value=value[:300],
        rule=rule,
        verdicts=verdicts(Verdict.DISALLOW, *ALL_PURPOSES),
        source=source,
        note=note,
    )


def status_signal(status: int, url: str) -> Signal | None:
    """401, 402, 403 and 451 deny access; the content is not lawfully accessible to the crawler."""
    try:
        code = int(status)
    except (TypeError, ValueError):
        return None
    reason = DENYING_STATUSES.get(code)
    if reason is None:
        return None
    return _deny("status", str(code), f"HTTP {code} {reason}", url)


def _segments(path: str) -> list[str]:
    out = []
    for seg in unquote(path).lower().split("/"):
        seg = seg.strip()
        if not seg:
            continue
        out.append(seg.rsplit(".", 1)[0] if "." in seg else seg)
    return out


def _is_login_path(path: str) -> str | None:
    segs = _segments(path)
    for seg in segs:
        if seg in LOGIN_SEGMENTS:
            return seg
    for a, b in itertools.pairwise(segs):
        if a in ("session", "sessions", "users", "user", "account", "accounts") and b in ("new", "login"):
            return f"{a}/{b}"
    return None


def _same_page(candidate: str, requested: str) -> bool:
    """Does a return-to parameter point back at the requested page (full URL or path)?"""
    try:
        c, r = urlsplit(candidate.strip()), urlsplit(requested)
    except ValueError:
        return False
    if c.netloc and (c.hostname or "").lower() != (r.hostname or "").lower():
        return False
    c_path, r_path = (c.path or "/").rstrip("/"), (r.path or "/").rstrip("/")
    return bool(c.path or c.netloc) and c_path == r_path


def _redirect_wall(requested_url: str, final_url: str) -> tuple[str, str] | None:
    """(value, rule) when the request ended on a login / subscription endpoint it did not ask for."""
    if requested_url == final_url:
        return None  # not redirected
    try:
        req, fin = urlsplit(requested_url), urlsplit(final_url)
    except ValueError:
        return None
    if (req.hostname or "", req.path.rstrip("/"), req.query) == (fin.hostname or "", fin.path.rstrip("/"), fin.query):
        return None  # same page (a scheme or trailing-slash redirect)
    if _is_login_path(req.path):
        return None  # we asked for the login page itself
    segment = _is_login_path(fin.path)
    if segment:
        return final_url, f"redirected to a login/subscription page ({segment})"
    req_host, fin_host = (req.hostname or "").lower(), (fin.hostname or "").lower()
    if fin_host and fin_host != req_host and fin_host.split(".", 1)[0] in LOGIN_HOST_LABELS:
        return final_url, f"redirected to the sign-in host {fin_host}"
    for key, value in parse_qsl(fin.query, keep_blank_values=False)[:64]:
        if key.lower() in RETURN_PARAMS and _same_page(value, requested_url):
            return final_url, f"redirected away with ?{key}= pointing back to the requested page"
    return None


def _false(value: Any) -> bool:
    if value is False:
        return True
    return isinstance(value, str) and value.strip().lower() in _FALSE_VALUES


def _item_url(item: dict[str, Any]) -> str:
    for key in ("url", "@id", "mainEntityOfPage"):
        value = item.get(key)
        if isinstance(value, dict):
            value = value.get("@id") or value.get("url")
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return value
    return ""


def _paywalled_items(text: str, page_urls: tuple[str, ...]) -> str | None:
    """The @type of a JSON-LD item about this page that says ``isAccessibleForFree: false``, or None. Items that
    name a different page (a list of teasers on a home page) are ignored."""
    if "isaccessibleforfree" not in text.lower():
        return None
    try:
        data = json.loads(text[:MAX_JSON_LD_CHARS])
    except (ValueError, RecursionError):
        return None
    items: list[Any] = data if isinstance(data, list) else [data]
    queue: list[Any] = []
    for item in items[:200]:
        if isinstance(item, dict):
            queue.append(item)
            graph = item.get("@graph")
            if isinstance(graph, list):
                queue.extend(g for g in graph[:200] if isinstance(g, dict))
            main = item.get("mainEntity")
            if isinstance(main, dict):
                queue.append(main)
    for item in queue:
        if not _false(item.get("isAccessibleForFree")):
            continue
        url = _item_url(item)
        if url and not any(_same_page(url, page) for page in page_urls if page):
            continue
        kind = item.get("@type")
        return str(kind[0] if isinstance(kind, list) and kind else kind or "item")[:80]
    return None


def login_wall_signal(requested_url: str, final_url: str, head: HtmlHead | None) -> Signal | None:
    """An ``access`` signal when the response is a login wall or a paywall, else None:

    * the request was redirected to a login / sign-in / subscription endpoint (path such as ``/login``,
      ``/account/login``, ``/auth/…``, a sign-in host, or a ``?next=`` / ``?return_to=`` pointing back);
    * schema.org paywall markup: JSON-LD ``isAccessibleForFree: false`` on this page;
    * a password form on a page with little text (under 1000 visible characters, or under 5000 when the title
      says "log in" / "sign in"). A long article with a header login box is not a wall."""
    requested_url = requested_url if isinstance(requested_url, str) else ""
    final_url = final_url if isinstance(final_url, str) else ""
    if final_url and requested_url:
        found = _redirect_wall(requested_url, final_url)
        if found:
            return _deny("url", found[0], found[1], requested_url)
    if head is None:
        return None
    page = final_url or requested_url
    try:
        blocks = tuple(head.json_ld) if head.mentions_paywall_key else ()
    except Exception:  # pragma: no cover - defensive against a broken scanner
        blocks = ()
    for block in blocks[:32]:
        if not isinstance(block, str):
            continue
        kind = _paywalled_items(block, (page, requested_url))
        if kind:
            return _deny(
                "html-meta",
                "isAccessibleForFree: false",
                f"JSON-LD {kind} isAccessibleForFree=false (paywalled content)",
                page,
            )
    try:
        has_password = bool(getattr(head, "has_password_form", False))
    except Exception:  # pragma: no cover
        has_password = False
    if not has_password:
        return None
    try:
        length = int(getattr(head, "text_length", 0) or 0)
    except Exception:  # pragma: no cover
        length = 0
    title = str(getattr(head, "title", "") or "")
    login_title = any(word in title.lower() for word in LOGIN_TITLE_WORDS)
    if length < SHORT_PAGE_CHARS or (login_title and length < LOGIN_TITLED_PAGE_CHARS):
        why = f'title "{title[:80]}"' if login_title else f"only {length} characters of text"
        return _deny("html-meta", "password form", f"login wall: password form, {why}", page)
    return None
