"""Rights-holder query service: ``optout serve --registry URL`` (HTTP API + web page; FastAPI on uvicorn).

Needs the ``[service]`` extra (fastapi, uvicorn). Nothing here is imported by the crawler or the registry core;
``optout --help`` imports only :mod:`optout_registry.service.cli`, which loads the web stack when a command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optout_registry.service.app import ServiceConfig, create_app

__all__ = ["ServiceConfig", "create_app"]


def __getattr__(name: str) -> Any:
    # Lazy on purpose: importing this package (as `optout --help` does, through service.cli) must not load the
    # web stack of the [service] extra; `from optout_registry.service import create_app` loads it on first use.
    if name in __all__:
        from optout_registry.service import app

        return getattr(app, name)
    raise AttributeError(f"module 'optout_registry.service' has no attribute {name!r}")
