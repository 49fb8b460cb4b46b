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


def test_no_two_test_modules_share_a_name() -> None:
    # The test folders are not packages: pytest imports each module by its name alone, and a
    # second module of the same name stops the whole run at collection.
    names: dict[str, list[str]] = {}
    for path in (REPO / "tests").glob("**/test_*.py"):
        names.setdefault(path.name, []).append(str(path.relative_to(REPO)))
    assert not {name: paths for name, paths in names.items() if len(paths) > 1}
