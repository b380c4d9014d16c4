"""What a robots.txt decision says to the policy: the access-stage signal and the cross-token training reservations.

Kept apart from the matcher because it is the one place that turns robots.txt answers into
:class:`~middlewares.protocols.signals.Signal` values (PROTOCOLS.md §8.2): a denied fetch denies every purpose,
and a well-known AI training token's own group disallowing a URL reserves training (conservative mode).
"""

from __future__ import annotations

from middlewares.protocols.pathmatch import PrefixMemo
from middlewares.protocols.robots_match import (
    NOT_TEXT,
    CrossTokenMemo,
    RobotsMatch,
    RobotsTxt,
    always_allowed,
    decision_path,
    lenient_keys,
)
from middlewares.protocols.signals import Purpose, Signal, Verdict

# Well-known AI *training* product tokens (PROTOCOLS.md §8.1 table, §8.2 item 4): a site that disallows one of
# them has expressed a wish against AI training, even if it never heard of our own token. Search-only and
# user-triggered fetchers (OAI-SearchBot, ChatGPT-User, PerplexityBot, Amazonbot for Alexa answers, ...) are
# deliberately absent: blocking them says nothing about training. ``__usage_ai-training`` is the per-purpose policy
# token of draft-kelley-aipref-training-preference-signal (name UNCONFIRMED, §3.3).
TRAINING_TOKENS: tuple[str, ...] = (
    "GPTBot",
    "ClaudeBot",
    "anthropic-ai",
    "CCBot",
    "Google-Extended",
    "Applebot-Extended",
    "meta-externalagent",
    "FacebookBot",
    "Bytespider",
    "cohere-training-data-crawler",
    "AI2Bot",
    "Ai2Bot-Dolma",
    "DeepSeekBot",
    "YandexAdditional",
    "omgili",
    "Diffbot",
    "img2dataset",
    "LAIONDownloader",
    "__usage_ai-training",
)


def _rule_value(m: RobotsMatch) -> str:
    if m.rule is None:
        return ("not text" if m.reason == NOT_TEXT.fixed_reason else "unreachable") if m.reason else ""
    return f"{m.rule.directive}: {m.rule.via or m.rule.pattern}"


def access_signal(robots: RobotsTxt, token: str, url: str, *, lenient: bool = True) -> Signal | None:
    """The access-stage signal: when ``token`` may not fetch ``url``, a robots signal denying every purpose
    (a page that may not be fetched can be used for nothing). ``None`` when fetching is allowed."""
    m = robots.match(token, url, lenient=lenient)
    if m.allowed:
        return None
    return Signal(
        protocol="robots",
        where="robots.txt",
        value=_rule_value(m),
        rule=m.describe(),
        verdicts={
            Purpose.TRAIN_AI: Verdict.DISALLOW,
            Purpose.AI_INPUT: Verdict.DISALLOW,
            Purpose.SEARCH: Verdict.DISALLOW,
        },
    )


def cross_token_signals(
    robots: RobotsTxt,
    url: str,
    own_token: str,
    *,
    tokens: tuple[str, ...] | list[str] = TRAINING_TOKENS,
    lenient: bool = True,
    source: str = "",
) -> list[Signal]:
    """Conservative-mode cross-token training reservations (PROTOCOLS.md §8.2 item 4): for every well-known
    training token that has its *own* group (``*`` does not count) disallowing ``url``, a signal that AI training
    is reserved. It never affects fetching or search. Tokens sharing one rule produce one signal naming them all.
    ``source`` (the robots.txt URL) is set on the signals, which are then shared by every URL they apply to."""
    cross = _cross_memo(robots, own_token, tokens, lenient, source)
    if not cross.named:
        return []
    decided = decision_path(url)

    def answer() -> tuple[Signal, ...]:
        return _cross_token_answer(robots, cross.named, url, lenient, source)

    return list(answer() if always_allowed(decided) else cross.answers.get(decided, answer))


def names_training_tokens(
    robots: RobotsTxt,
    own_token: str,
    *,
    tokens: tuple[str, ...] | list[str] = TRAINING_TOKENS,
    lenient: bool = True,
    source: str = "",
) -> bool:
    """Whether :func:`cross_token_signals` can find anything in this file for any URL: some training token other
    than ours has a group of its own."""
    return bool(_cross_memo(robots, own_token, tokens, lenient, source).named)


def _cross_memo(
    robots: RobotsTxt, own_token: str, tokens: tuple[str, ...] | list[str], lenient: bool, source: str
) -> CrossTokenMemo:
    # Which training tokens have a group of their own depends only on the file: work it out once per file, since
    # this runs for every URL and most files name none of them. Their groups are mostly `Disallow: /`, so the
    # answer is remembered per deciding path prefix (see PrefixMemo) rather than worked out for every URL.
    own = own_token.strip().lower()
    key = (tuple(tokens), own, lenient, source)
    cross = robots._explicit.get(key)
    if cross is None:
        named = [t for t in tokens if t.strip().lower() != own and robots.has_explicit_group(t, lenient=lenient)]
        literals = (entry[0] for t in named for entry in robots.select(t, lenient=lenient)._entries)
        cross = robots._explicit[key] = CrossTokenMemo(named, PrefixMemo(literals))
    return cross


def _cross_token_answer(
    robots: RobotsTxt, named: list[str], url: str, lenient: bool, source: str
) -> tuple[Signal, ...]:
    found: dict[tuple[int, bool], tuple[RobotsMatch, list[str]]] = {}
    for token in named:
        m = robots.match(token, url, lenient=lenient)
        if m.allowed or m.rule is None:
            continue
        key = (m.rule.line, m.rule.allow)
        if key in found:
            found[key][1].append(token)
        else:
            found[key] = (m, [token])
    signals = []
    for m, names in found.values():
        assert m.rule is not None
        signals.append(
            Signal(
                protocol="robots",
                where="robots.txt",
                value=_rule_value(m),
                rule=f"{m.rule.describe()} (User-agent: {', '.join(_dedupe_labels(m, names))})",
                verdicts={Purpose.TRAIN_AI: Verdict.DISALLOW},
                source=source,
            )
        )
    return tuple(signals)


def _dedupe_labels(m: RobotsMatch, names: list[str]) -> list[str]:
    label = m.group.label_for(m.rule) if m.rule is not None else ""
    out = [label] if label else []
    for n in names:
        if n.lower() not in {o.lower() for o in out} and n.lower() not in lenient_keys(label):
            out.append(n)
    return out
