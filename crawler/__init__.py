"""The standalone compliant crawler and the ``optout`` command line."""
