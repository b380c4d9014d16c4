"""The published API documents itself: every model in /openapi.json and every property of it has a description.

Clients are written against the OpenAPI document, so a model or field added without a description would leave
its readers guessing; this fails as soon as one is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")

from optout_registry.registry import Registry
from optout_registry.service.app import ServiceConfig, create_app
from tests.support.registry import ROBOTS, make_records


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    d: Path = tmp_path_factory.mktemp("openapi")
    url = f"sqlite:///{d / 'reg.db'}"
    with Registry.open(url, key=d / "reg.key") as reg:
        reg.append(make_records(3), evidence=[ROBOTS])
        reg.checkpoint()
    app = create_app(ServiceConfig(registry_url=url, key=str(d / "reg.key"), background_indexer=False))
    try:
        yield app.openapi()
    finally:
        app.state.service.close()


def test_every_model_and_property_has_a_description(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert "RecordProof" in schemas and "HTTPValidationError" in schemas  # the service's models and FastAPI's
    missing = [name for name, model in schemas.items() if not model.get("description", "").strip()]
    missing += [
        f"{name}.{prop}"
        for name, model in schemas.items()
        for prop, about in model.get("properties", {}).items()
        if not about.get("description", "").strip()
    ]
    assert not missing, f"no description in the OpenAPI document for: {', '.join(missing)}"


def test_every_parameter_has_a_description(spec: dict[str, Any]) -> None:
    missing = [
        f"{method.upper()} {path} {param['name']}"
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        for param in op.get("parameters", [])
        if not param.get("description", "").strip()
    ]
    assert not missing, f"no description in the OpenAPI document for: {', '.join(missing)}"
