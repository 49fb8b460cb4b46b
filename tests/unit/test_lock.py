"""The lock files: what the operator's image (requirements.lock), the reference executor's image
(requirements-executor.lock) and .venv/CI (requirements-dev.lock) install.

`make lock` regenerates them with pip-compile from pyproject.toml; these tests fail when a
dependency was added or changed in pyproject.toml without it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from tests.shipping import locked_versions

REPO = Path(__file__).resolve().parents[2]


def declared(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    listed = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(line) for line in listed]


def test_every_dependency_is_pinned_in_the_lock_files_within_its_declared_range() -> None:
    for lock, requirements in (
        ("requirements.lock", declared()),
        ("requirements-executor.lock", declared() + declared("executor")),
        ("requirements-dev.lock", declared() + declared("executor") + declared("dev")),
    ):
        pinned = locked_versions(lock)
        for requirement in requirements:
            name = requirement.name.lower().replace("_", "-")
            assert name in pinned, f"{name} is not in {lock}: run `make lock`"
            assert requirement.specifier.contains(pinned[name]), f"{lock} pins {name}=={pinned[name]}: `make lock`"


def test_the_images_and_the_tests_install_the_same_version_of_every_runtime_package() -> None:
    development = locked_versions("requirements-dev.lock")
    for image_lock in ("requirements.lock", "requirements-executor.lock"):
        runtime = locked_versions(image_lock)
        assert runtime, image_lock
        assert {name: development.get(name) for name in runtime} == runtime, image_lock


def test_the_executor_image_holds_the_operators_versions() -> None:
    """It imports the operator's result model and pricing table: the same pydantic, the same code."""
    operator, executor = locked_versions("requirements.lock"), locked_versions("requirements-executor.lock")
    assert {name: executor.get(name) for name in operator} == operator


def test_every_pin_carries_its_hashes() -> None:
    for lock in ("requirements.lock", "requirements-executor.lock", "requirements-dev.lock"):
        text = (REPO / lock).read_text()
        assert len(re.findall(r"--hash=sha256:[0-9a-f]{64}", text)) >= len(locked_versions(lock)), lock
