"""Pure protocol parsers: bytes and headers in, typed :class:`~middlewares.protocols.signals.Signal` out."""
