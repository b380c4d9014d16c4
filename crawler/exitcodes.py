"""The ``optout`` command line's exit statuses, one set for every subcommand (the registry's own commands keep
theirs in optout_registry/cli.py). A module of their own so that the subcommands' handlers (disclose.py, crawl's
status in cli.py) return the same names without importing the command line that imports them."""

EXIT_OK = 0  # done; for check, every URL may be used
EXIT_RESERVED = 1  # check and verify-request: a URL is reserved, a request not verified
EXIT_PROBLEMS = 1  # crawl: done, with problems reported (nothing written was lost)
EXIT_USAGE = 2  # the command could not run: a bad option, an unreadable file, an internal error
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, the shell's convention)
