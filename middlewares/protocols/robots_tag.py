"""Page- and file-level robots directives: the ``X-Robots-Tag`` header and robots ``<meta>`` tags
(PROTOCOLS.md §6.1–6.3, §10.3).

Directives read: ``noai`` (DeviantArt: no AI training and no AI input), ``noimageai`` (the same, for images),
``noindex`` / ``none`` (no search index), Bing's ``noarchive`` / ``nocache`` (Microsoft reads them as "do not train
our generative models") and the rarer ``noml``. Directives are case-insensitive (``NoAI`` counts; datadiligence
misses it).

Scoping to a user agent (§6.2): a ``bot-name:`` prefix applies to the *following* comma-separated rules until the
next prefix (Google / MDN reading); datadiligence scopes only the one element carrying the prefix. Bot names are
compared case-insensitively with our product token, as whole tokens. Rule names that themselves contain a colon
(``unavailable_after``, ``max-snippet`` ...) are recognised first so they are never taken for bot names. Strict
mode uses the Google reading; conservative mode applies a restrictive directive if it is global or scoped to us
under *either* reading, so ``otherbot: noindex, noai`` reserves AI use for everyone in conservative mode.

Strictly literal readings that conservative mode widens: ``noarchive`` / ``nocache`` / ``noml`` (training
reservation only in conservative mode), directives separated by spaces instead of commas, and a ``*:`` prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .signals import AI_PURPOSES, Mode, Purpose, Signal, Verdict, verdicts

if TYPE_CHECKING:
    from .html import HtmlHead

PROTOCOL = "robots-tag"
MAX_VALUE_CHARS = 16 * 1024
MAX_ELEMENTS = 512
MAX_LINES = 256

# Robots rules whose syntax is `name: value`; the name is not a user agent (§6.2 edge case).
COLON_RULES = frozenset(
    {
        "unavailable_after",
        "unavailable-after",
        "max-snippet",
        "max-image-preview",
        "max-video-preview",
    }
)
# Directives we know; `noai: true`-style elements are read as the directive, never as a bot called "noai".
KNOWN_DIRECTIVES = frozenset(
    {
        "all",
        "index",
        "follow",
        "noindex",
        "nofollow",
        "none",
        "noarchive",
        "nocache",
        "nosnippet",
        "notranslate",
        "noimageindex",
        "indexifembedded",
        "noai",
        "noimageai",
        "noml",
    }
)
_BOT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.*/")
# Every directive :func:`_effect` gives a meaning contains one of these (lower-case). Most values (`index,
# follow`, `max-snippet: 50`) contain none, and then nothing needs parsing.
_EFFECT_WORDS = re.compile("no(?:ai|imageai|index|ne|archive|cache|ml)")


@dataclass(frozen=True)
class Directive:
    """One directive element after scoping: ``google_scope`` is the bot the Google/MDN reading assigns (None =
    all crawlers), ``element_scope`` the bot under datadiligence's one-element reading."""

    name: str  # lower-case directive, e.g. "noai"
    text: str  # the element as written (for rule text)
    google_scope: str | None
    element_scope: str | None


def _is_bot_name(name: str) -> bool:
    return bool(name) and len(name) <= 200 and all(c in _BOT_CHARS for c in name)


def parse_directives(value: str, *, split_spaces: bool = False) -> list[Directive]:
    """Split one X-Robots-Tag field line (or a robots meta ``content``) into scoped directives."""
    value = value[:MAX_VALUE_CHARS]
    out: list[Directive] = []
    google_scope: str | None = None
    for element in value.split(",")[:MAX_ELEMENTS]:
        element = element.strip(" \t\r\n")
        if not element:
            continue
        element_scope: str | None = None
        head, sep, rest = element.partition(":")
        name = head.strip(" \t")
        if sep and name.lower() not in COLON_RULES and name.lower() not in KNOWN_DIRECTIVES and _is_bot_name(name):
            google_scope = element_scope = name
            element = rest.strip(" \t")
            if not element:
                continue
        elif sep and name.lower() in KNOWN_DIRECTIVES:
            element = name
        words = element.split() if split_spaces else [element]
        for word in words:
            out.append(Directive(word.strip(" \t").lower(), word.strip(" \t"), google_scope, element_scope))
    return out


def _matches_us(bot: str | None, token: str, mode: Mode) -> tuple[bool, str]:
    if bot is None:
        return True, ""
    if bot.lower() == token.lower():
        return True, ""
    if bot == "*" and mode is Mode.CONSERVATIVE:
        return True, "'*:' prefix read as all crawlers"
    return False, ""


def _effect(name: str, *, is_image: bool, mode: Mode) -> tuple[dict[Purpose, Verdict], str] | None:
    """Per-purpose meaning of a directive, or None when it says nothing about our purposes."""
    if name == "noai":
        return verdicts(Verdict.DISALLOW, *AI_PURPOSES), ""
    if name == "noimageai":
        if is_image:
            return verdicts(Verdict.DISALLOW, *AI_PURPOSES), ""
        return {}, "noimageai applies to the page's images, not to its text"
    if name in ("noindex", "none"):
        return {Purpose.SEARCH: Verdict.DISALLOW}, ""
    if name in ("noarchive", "nocache"):
        if mode is Mode.CONSERVATIVE:
            return {Purpose.TRAIN_AI: Verdict.DISALLOW}, f"{name}: Bing reads it as no generative-AI training"
        return {}, f"{name}: a training reservation only under Bing's reading (conservative mode)"
    if name == "noml":
        if mode is Mode.CONSERVATIVE:
            return {Purpose.TRAIN_AI: Verdict.DISALLOW}, "noml (non-standard) read as no machine-learning training"
        return {}, "noml is not a defined directive (conservative mode reads it as no training)"
    return None


def _signals(
    value: str,
    token: str,
    *,
    is_image: bool,
    mode: Mode,
    where: str,
    rule_prefix: str,
    line_note: str = "",
) -> list[Signal]:
    out: list[Signal] = []
    seen: set[tuple[str, str | None]] = set()
    for d in parse_directives(value, split_spaces=mode is Mode.CONSERVATIVE):
        effect = _effect(d.name, is_image=is_image, mode=mode)
        if effect is None:
            continue
        ours_google, why_g = _matches_us(d.google_scope, token, mode)
        ours_element, why_e = _matches_us(d.element_scope, token, mode)
        notes: list[str] = []
        if ours_google:
            scope = d.google_scope
            if why_g:
                notes.append(why_g)
        elif mode is Mode.CONSERVATIVE and ours_element:
            scope = d.element_scope
            if why_e:
                notes.append(why_e)
            notes.append(
                f"scoped to {d.google_scope} under the Google/MDN reading, but applies to all crawlers under the "
                "one-element reading (datadiligence); the restrictive reading is kept"
            )
        else:
            continue
        key = (d.name, scope)
        if key in seen:
            continue
        seen.add(key)
        verdict_map, effect_note = effect
        if effect_note:
            notes.insert(0, effect_note)
        if line_note:
            notes.append(line_note)
        rule = f"{rule_prefix}{scope}: {d.name}" if scope else f"{rule_prefix}{d.name}"
        out.append(
            Signal(
                protocol=PROTOCOL,
                where=where,
                value=_clip(value),
                rule=rule,
                verdicts=verdict_map,
                note="; ".join(notes),
            )
        )
    return out


def _clip(text: str, limit: int = 300) -> str:
    text = "".join(c if c.isprintable() else "\ufffd" for c in text[: limit + 1])
    return text if len(text) <= limit else text[:limit] + "…"


def header_signals(values: list[str], token: str, *, is_image: bool, mode: Mode) -> list[Signal]:
    """Signals of the ``X-Robots-Tag`` field lines that apply to ``token``. Each line starts unscoped; several
    lines combine (every applicable directive yields its own signal, duplicates removed)."""
    out: list[Signal] = []
    seen: set[tuple[str, frozenset[tuple[Purpose, Verdict]]]] = set()
    for value in values[:MAX_LINES]:
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("latin-1")
        if not isinstance(value, str) or not _EFFECT_WORDS.search(value.lower()):
            continue
        for sig in _signals(value, token, is_image=is_image, mode=mode, where="header", rule_prefix="X-Robots-Tag: "):
            key = (sig.rule, frozenset(sig.verdicts.items()))
            if key not in seen:
                seen.add(key)
                out.append(sig)
    return out


def meta_words(token: str) -> tuple[str, ...]:
    """The meta names :func:`meta_signals` reads for ``token``: a head mentioning neither holds none of its tags."""
    return ("robots", token.strip().lower())


def meta_signals(head: HtmlHead, token: str, *, mode: Mode) -> list[Signal]:
    """Signals of ``<meta name="robots">`` (all crawlers) and ``<meta name="<token>">`` (only us, vector 69); name
    and content are case-insensitive. The page is HTML, so ``noimageai`` is reported for its images only."""
    out: list[Signal] = []
    wanted = set(meta_words(token))
    # Cheap pre-filter: most meta tags (Open Graph, viewport) name neither; skip parsing their attributes.
    for tag in head.metas_mentioning(*wanted):
        if not tag.may_match(_EFFECT_WORDS):
            continue
        attrs = getattr(tag, "attrs", None) or {}
        name = str(attrs.get("name", "")).strip()
        if name.lower() not in wanted:
            continue
        content = str(attrs.get("content", ""))
        line = getattr(tag, "line", 0)
        prefix = f'line {line}: <meta name="{_clip(name, 60)}" content="{_clip(content, 120)}"> → '
        out.extend(_signals(content, token, is_image=False, mode=mode, where="html-meta", rule_prefix=prefix))
        if len(out) > MAX_ELEMENTS:
            break
    return out
