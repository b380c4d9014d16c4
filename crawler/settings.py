"""Scrapy settings of the standalone compliant crawler (``scrapy crawl compliant``; ``optout crawl`` starts from
these too and overrides what its options say).

The add-on does the enforcement; everything here is what a polite, identifiable crawler needs besides. Set the
``OPTOUT_CONTACT``/``OPTOUT_COMPLAINTS``/``OPTOUT_INFO_URL`` lines before crawling for real: ``optout disclose``
publishes them, and the User-Agent points at the page it writes (RFC 9309 §2.2.1: the product token is part of the
User-Agent; the Code of Practice asks operators to say publicly what their crawler does, Measure 1.3).
"""

# Modules, not their names: every upper-case name here is a Scrapy setting. The OPTOUT_* values come from the one
# table of defaults (middlewares/defaults.py); tests/test_defaults.py checks that they agree.
from crawler import identity
from middlewares import defaults

BOT_NAME = "optout"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

# The fleet add-on does nothing unless OPTOUT_FLEET_REDIS is set (distributed crawls, docs/distributed.md).
ADDONS = {"middlewares.OptOutAddon": 0, "crawler.fleet.FleetAddon": 10}
# Writes items.jsonl, decisions.jsonl, summary.json and report.html into OPTOUT_OUT_DIR when it is set
# (``scrapy crawl compliant -s OPTOUT_OUT_DIR=out``); does nothing otherwise.
EXTENSIONS = {"crawler.runfiles.RunFiles": 500}

OPTOUT_AGENT: str = defaults.project_value("OPTOUT_AGENT")  # named, rather than read from the User-Agent below
OPTOUT_PURPOSE: str = defaults.project_value("OPTOUT_PURPOSE")
OPTOUT_MODE: str = defaults.project_value("OPTOUT_MODE")
# The public page about this crawler (written by ``optout disclose``); the User-Agent links to it.
OPTOUT_INFO_URL = identity.PROJECT_URL
OPTOUT_OPERATOR: str = defaults.project_value("OPTOUT_OPERATOR")
OPTOUT_CONTACT: str = defaults.project_value("OPTOUT_CONTACT")  # the point of contact (Code of Practice Measure 1.5)
OPTOUT_COMPLAINTS: str = defaults.project_value("OPTOUT_COMPLAINTS")  # where complaints go (Measure 1.5)
# CIDR ranges the crawler connects from, published by ``optout disclose``.
OPTOUT_IP_RANGES: list[str] = list(defaults.project_value("OPTOUT_IP_RANGES"))
# The comment states the purpose (no request header for it is specified anywhere; see optout disclose).
USER_AGENT = identity.user_agent_for(OPTOUT_AGENT, OPTOUT_INFO_URL, OPTOUT_PURPOSE)
# Web Bot Auth (middlewares/signing.py): sign every request with this Ed25519 key, naming the https origin that serves
# the key directory ``optout disclose`` writes; each signature is valid for OPTOUT_SIGNING_EXPIRES seconds.
OPTOUT_SIGNING_KEY: str | None = defaults.project_value("OPTOUT_SIGNING_KEY")
OPTOUT_SIGNATURE_AGENT: str | None = defaults.project_value("OPTOUT_SIGNATURE_AGENT")
OPTOUT_SIGNING_EXPIRES: int = defaults.project_value("OPTOUT_SIGNING_EXPIRES")

# Polite defaults: a few connections per site at most, no retries that hammer a failing server.
CONCURRENT_REQUESTS = 32
CONCURRENT_REQUESTS_PER_DOMAIN = 4
DOWNLOAD_TIMEOUT = 30  # seconds for the whole download (Scrapy cancels it then, however slowly bytes arrive)
# Bytes of a page after decoding: Scrapy stops a download (or its gzip expansion) beyond this. Its own default, 1 GiB,
# lets one gzip-bombed page cost a gigabyte of memory; a text crawl needs far less. Policy files have their own
# limits (500 KiB robots.txt, 1 MiB others), applied after decoding too.
DOWNLOAD_MAXSIZE = 32 * 1024 * 1024
DOWNLOAD_WARNSIZE = 8 * 1024 * 1024
RETRY_TIMES = 1
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
FEED_EXPORT_ENCODING = "utf-8"

# With JOBDIR (``optout crawl`` sets it): Scrapy's disk queue, same files and order, cheaper per request.
SCHEDULER_DISK_QUEUE = "crawler.diskqueue.RequestDiskQueue"
