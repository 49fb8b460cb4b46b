"""`make test` runs every test folder: pyproject.toml's testpaths, and tests/e2e beside them (hack/test.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_folder_holding_tests_is_run_by_make_test() -> None:
    testpaths = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["testpaths"]
    run = {*testpaths, "tests/e2e"}
    holding = {str(path.parent.relative_to(REPO)) for path in (REPO / "tests").glob("*/**/test_*.py")}
    tops = {"/".join(folder.split("/")[:2]) for folder in holding}
    assert tops <= run, f"test folders nothing runs: {sorted(tops - run)}"
    assert "tests/e2e" in (REPO / "hack" / "test.py").read_text()
