"""RFC 9309 robots.txt: parse once, decide many times, and say exactly which line decided.

Why a parser of our own rather than Protego or ``urllib.robotparser``: the toolkit must (a) match product tokens as
whole tokens (Protego applies a ``User-agent: Claude`` group to ``ClaudeBot``), (b) keep the non-standard lines that
carry AI preferences (``Content-Usage``, ``Content-Signal``, ``License``) together with the group they belong to,
(c) report the group, line, directive and pattern behind every decision so the registry can record it, and (d) stay
linear-time on hostile patterns. Path patterns and percent-encoding live in :mod:`pathmatch`, shared with every
other robots-style protocol.

Where each part lives (this module re-exports the public names, which is where callers import them from):
:mod:`robots_parse` reads the bytes into groups and rules; :mod:`robots_match` holds the data model, group
selection and longest-match decisions; :mod:`robots_signals` turns decisions into policy signals (access and
cross-token training reservations).

Reading rules (PROTOCOLS.md §1; behaviours beyond RFC 9309 follow Google's open-source parser, whose test-suite is
ported in ``tests/test_robots_google.py``):

* Lines end at CR, LF or CRLF; ``#`` starts a comment; keys are case-insensitive; a UTF-8 BOM (even a partial one)
  at the very start is skipped; invalid UTF-8 never raises (undecodable bytes in patterns become ``%XX``).
* Only the first ``limit`` bytes (default 512 000, RFC 9309 §2.5 asks for at least 500 KiB) are read; a line cut by
  the limit is dropped rather than read as a shorter, broader rule, and :attr:`RobotsTxt.truncated` is set.
* A line longer than 16 663 bytes is cut there (Google's limit); the rest of the line is ignored.
* Google leniencies: a missing colon (``disallow /``) when the line is exactly two words; the common misspellings
  ``useragent``, ``user agent``, ``dissallow``, ``dissalow``, ``disalow``, ``diasllow``, ``disallaw``, ``site-map``.
  Misspellings are only accepted in the restrictive direction (nothing is read as ``Allow`` that was not spelled so).
* A group is one or more ``User-agent`` lines followed by its members; it ends at the next ``User-agent`` line
  that follows a *rule*. Rules are ``Allow``/``Disallow`` (RFC 9309) and ``Content-Usage`` (which
  draft-ietf-aipref-attach adds to the ``rule`` production) and ``Content-Signal`` (its Cloudflare twin). Blank
  lines, ``Sitemap``, ``License``, ``Crawl-delay``, ``Request-rate`` and unknown lines never end a group
  (RFC 9309 §2.2.4: other records must not interfere with the defined ones).
* Records before the first ``User-agent`` line are ignored (RFC 9309 §2.2.2) and reported in ``warnings``.
* Agent matching is a case-insensitive whole-token comparison, never prefix or substring. *Lenient* (default,
  conservative mode): each comma-separated item of a ``User-agent`` value is cut at the first ``/`` or whitespace
  and trailing ``*`` are dropped, so ``ExampleBot/1.0``, ``ExampleBot 2.0`` and ``GPTBot*`` name ExampleBot /
  GPTBot. *Strict*: the value must be exactly a token (letters, digits, ``-``, ``_``) or ``*``.
* All groups naming the token are merged; a named group replaces the ``*`` groups entirely; no group → no rules.
* Longest pattern wins, ``Allow`` on a tie; ``*`` and a final ``$`` are special; ``/robots.txt`` is always allowed;
  an empty ``Disallow:`` blocks nothing. Google's "``…/index.html`` allowed ⇒ ``…/`` allowed" is kept.
"""

from __future__ import annotations

from middlewares.protocols.robots_match import (
    ALLOW_ALL,
    DISALLOW_ALL,
    NOT_TEXT,
    Extension,
    Group,
    RobotsMatch,
    RobotsTxt,
    Rule,
    SelectedGroup,
    decision_path,
    is_valid_token,
    request_path,
)
from middlewares.protocols.robots_parse import MAX_LINE_BYTES, PARSE_LIMIT, looks_binary, parse_robots
from middlewares.protocols.robots_signals import (
    TRAINING_TOKENS,
    access_signal,
    cross_token_signals,
    names_training_tokens,
)

__all__ = [
    "ALLOW_ALL",
    "DISALLOW_ALL",
    "MAX_LINE_BYTES",
    "NOT_TEXT",
    "PARSE_LIMIT",
    "TRAINING_TOKENS",
    "Extension",
    "Group",
    "RobotsMatch",
    "RobotsTxt",
    "Rule",
    "SelectedGroup",
    "access_signal",
    "cross_token_signals",
    "decision_path",
    "is_valid_token",
    "looks_binary",
    "names_training_tokens",
    "parse_robots",
    "request_path",
]
