"""The core stays pure: it imports only an allow-list of standard-library modules and attrs."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "src" / "stoker_core"

ALLOWED = {
    "__future__",
    "attrs",
    "cattrs",
    "collections",
    "dataclasses",
    "decimal",
    "difflib",
    "enum",
    "functools",
    "hashlib",
    "itertools",
    "json",
    "posixpath",
    "re",
    "types",
    "typing",
    "bisect",
    "string",
    "textwrap",
    "operator",
    "math",
    "abc",
    "base64",
    "hmac",
    "ipaddress",
    "stoker_core",
}


def imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_only_the_allow_list(module: Path) -> None:
    assert imported_roots(module.read_text()) <= ALLOWED


def test_allow_list_contains_no_io_module() -> None:
    io_modules = {"os", "pathlib", "subprocess", "socket", "time", "random", "io", "shutil"}
    assert not (ALLOWED & io_modules)
    assert all(
        m in sys.stdlib_module_names or m in {"attrs", "cattrs", "stoker_core"} for m in ALLOWED
    )
