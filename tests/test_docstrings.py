"""Every public class and function users reach has a docstring (issue 19).

The docstring says why the thing exists: its role, its contract, what it guarantees or refuses. Public means a name
not starting with ``_``, at the top of a module or in a public class; ``from_crawler``/``from_settings`` are left
out (Scrapy's constructors, the same everywhere). Read from the source with ``ast``: no import side effects.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = (
    "optout_registry/registry.py",
    "optout_registry/export.py",
    "optout_registry/verify.py",
    "crawler/cli.py",
    "optout_registry/service/models.py",
)
CONSTRUCTORS = ("from_crawler", "from_settings")
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _paths() -> list[Path]:
    found = sorted((ROOT / "middlewares").glob("*.py")) + sorted((ROOT / "middlewares" / "protocols").glob("*.py"))
    return found + [ROOT / name for name in FILES]


def _missing(path: Path) -> list[str]:
    where = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    missing = []
    for node in tree.body:
        if not isinstance(node, DEFINITIONS) or node.name.startswith("_"):
            continue
        if not ast.get_docstring(node):
            missing.append(f"{where}:{node.lineno} {node.name}")
        if isinstance(node, ast.ClassDef):
            for member in node.body:
                if (
                    isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and not member.name.startswith("_")
                    and member.name not in CONSTRUCTORS
                    and not ast.get_docstring(member)
                ):
                    missing.append(f"{where}:{member.lineno} {node.name}.{member.name}")
    return missing


def test_checked_files_exist() -> None:
    absent = [p.relative_to(ROOT).as_posix() for p in _paths() if not p.is_file()]
    assert not absent, f"files the docstring check expects are gone (update FILES): {absent}"


def test_public_api_has_docstrings() -> None:
    missing = [entry for path in _paths() if path.is_file() for entry in _missing(path)]
    assert not missing, "public classes and functions without a docstring (say why they exist):\n" + "\n".join(missing)
