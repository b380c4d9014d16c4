"""A plain Scrapy project with the add-on, run for real in a child process (tests/scrapyrun/run.py): what a team
that adds one line to its settings gets. Used by the end-to-end, fault and robots-first tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.run import ROOT


def crawl(start_urls: list[str], tmp_path: Path, timeout: float = 90, **options: Any) -> dict[str, Any]:
    settings = {"OPTOUT_REGISTRY_URL": f"sqlite:///{tmp_path / 'registry.db'}", **options.pop("settings", {})}
    config = {"start_urls": start_urls, "settings": settings, **options}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.scrapyrun.run", json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def registry_records(tmp_path: Path) -> list[dict[str, Any]]:
    from optout_registry import Registry

    with Registry.open(f"sqlite:///{tmp_path / 'registry.db'}") as reg:
        return [entry.record for entry in reg.records()]
