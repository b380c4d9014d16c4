"""Running ``optout summary`` and ``optout demo`` from the summary tests (the CLI, in a subprocess)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.run import run_cli


def summarise(*args: str) -> dict[str, Any]:
    out = Path(args[args.index("--out") + 1])
    proc = run_cli("summary", *args, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads((out / "summary.json").read_text())


def demo_crawl(out: Path) -> Path:
    """``optout demo``: its crawl must answer every fixture URL as expected. Its later steps (bundle export and
    verification, the disclosure page) are not what a summary reads, and are tested in tests/test_crawl_demo.py."""
    proc = run_cli("demo", "--out", str(out), timeout=120)
    assert "UNEXPECTED" not in proc.stdout and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    for name in ("run.json", "items.jsonl", "decisions.jsonl", "registry.db", "summary.json"):
        assert (out / name).exists(), proc.stdout + proc.stderr
    return out
