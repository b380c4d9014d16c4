"""The structure of the Commission's Template for the Public Summary of Training Content (AI Act Art. 53(1)(d)).

Only the template's shape lives here (section numbers, headings, the field labels ``optout summary`` answers) and the
rule for how many domain names the list in section 2.3 must hold, so the renderers (crawler/summary_render.py) and
the facts (crawler/summary.py) agree on one wording. The wording follows the template annexed to the Explanatory
Notice of 24 July 2025; docs/summary.md says which parts were checked against which copy of the text.
"""

from __future__ import annotations

import math

TEMPLATE = {
    "title": "Public Summary of Training Content for general-purpose AI models",
    "document": "Explanatory Notice and Template for the Public Summary of Training Content for general-purpose AI "
    "models required by Article 53(1)(d) of Regulation (EU) 2024/1689 (AI Act)",
    "published": "2025-07-24",
    "copy_consulted": "https://project-babel.com/documents/eu_training_content_public_summary_template_2025",
}

# (number, heading); the order is the template's.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("1", "General information"),
    ("1.1", "Provider identification"),
    ("1.2", "Model identification"),
    ("1.3", "Modalities, overall training data size and other characteristics"),
    ("2", "List of data sources"),
    ("2.1", "Publicly available datasets"),
    ("2.2", "Private non-publicly available datasets obtained from third parties"),
    ("2.3", "Data crawled and scraped from online sources"),
    ("2.4", "User data"),
    ("2.5", "Synthetic data"),
    ("2.6", "Other sources of data"),
    ("3", "Data processing aspects"),
    ("3.1", "Respect of reservation of rights from text and data mining exception or limitation"),
    ("3.2", "Removal of illegal content"),
    ("3.3", "Other information (optional)"),
)
HEADINGS = dict(SECTIONS)

# The fields of 2.3, in the template's order: (key in summary.json, label).
CRAWL_FIELDS: tuple[tuple[str, str], ...] = (
    ("crawlers_used", "Were crawlers used by the provider or on its behalf?"),
    ("crawler_names", "Crawler name(s)/identifier(s)"),
    ("purposes", "Purposes of the crawler(s)"),
    ("behaviour", "General description of crawler behaviour"),
    ("period", "Period of data collection"),
    ("content", "Comprehensive description of the type of content and online sources crawled"),
    ("domains", "Summary of the most relevant domain names crawled"),
)

# What the provider alone can write: (section, what is asked). Left as marked blanks, never guessed.
BLANK = "[to be completed by the provider]"
PROVIDER_FIELDS: dict[str, tuple[str, ...]] = {
    "1.1": ("Provider name and contact details", "Authorised representative name and contact details"),
    "1.2": (
        "Versioned model name(s)",
        "Model dependencies (if the model is a modification or fine-tuning of another model)",
        "Date of placement of the model on the Union market",
    ),
    "1.3": (
        "Modalities and training data size per modality (ranges)",
        "Types of content per modality",
        "Latest date of data acquisition/collection for model training",
        "Linguistic characteristics and other relevant characteristics of the overall training data",
    ),
    "2.1": ("Publicly available datasets used, with the most relevant listed",),
    "2.2": ("Datasets commercially licensed or otherwise obtained from third parties",),
    "2.4": ("Data from user interactions with the provider's services or products",),
    "2.5": ("Synthetic data generated for training, and the models that generated it",),
    "2.6": ("Other sources of data",),
    "3.2": ("Measures taken to avoid or remove illegal content from the training data",),
    "3.3": ("Other information (optional)",),
}
PROVIDER_31 = (
    "Whether the provider is a signatory to the General-Purpose AI Code of Practice (copyright chapter), and the "
    "measures taken for content not collected by the crawls summarised here (licensed, public and other datasets)"
)

# Section 2.3: the list covers the top share of all domain names by size of content scraped; SMEs list a smaller
# share, capped at a number of names. See docs/summary.md for the wording consulted and the rounding.
SHARE = 0.10
SME_SHARE = 0.05
SME_CAP = 1000


def listed_count(domains: int, sme: bool) -> int:
    """How many domain names the 2.3 list holds for ``domains`` domains in all: the top 10 % (an SME: the top 5 %
    or 1,000 names, whichever is lower), rounded up so that a crawl of fewer than ten domains still names its
    largest one."""
    if domains <= 0:
        return 0
    if sme:
        return min(math.ceil(domains * SME_SHARE), SME_CAP)
    return math.ceil(domains * SHARE)


def rule_text(sme: bool) -> str:
    if sme:
        return (
            f"top {SME_SHARE:.0%} of all domain names by size of content, or {SME_CAP:,} names if fewer "
            "(rule for SMEs), rounded up"
        )
    return f"top {SHARE:.0%} of all domain names by size of content, rounded up"
