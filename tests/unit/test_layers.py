"""The architecture's rules (docs/architecture.md): the core does no I/O, the shell judges nothing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bentham.core

PACKAGE = Path(bentham.core.__file__).parent.parent
SHELL_ONLY = ("kopf", "kubernetes", "urllib", "asyncio", "socket", "http", "time", "bentham.controller", "bentham.cli")


def imported_modules(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import in the file."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.append((node.module, [alias.name for alias in node.names]))
    return found


@pytest.mark.parametrize("path", sorted((PACKAGE / "core").glob("*.py")), ids=lambda p: p.name)
def test_the_core_imports_nothing_that_does_io(path: Path) -> None:
    for module, _ in imported_modules(path):
        assert not any(module == banned or module.startswith(banned + ".") for banned in SHELL_ONLY), (
            f"{path.name} imports {module}"
        )


def test_the_worker_takes_from_the_core_only_its_entry_points() -> None:
    for module, names in imported_modules(PACKAGE / "controller" / "workers.py"):
        if module.startswith("bentham.core"):
            assert module == "bentham.core", f"workers.py reaches into {module}"
            assert set(names) <= set(bentham.core.__all__), (
                f"not an entry point: {set(names) - set(bentham.core.__all__)}"
            )
