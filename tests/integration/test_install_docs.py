"""docs/install.md's "Install with Helm on the local control plane", run word for word.

The section's ```sh blocks run in order in one shell, from the repository's root, as a reader
would; the operator's block runs in the background, as in the reader's second terminal. The
section names its own namespaces (bentham-system, demo), so this test clears them first.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.shipping import REPO, helm
from tests.support import Cluster

INSTALL_DOC = REPO / "docs" / "install.md"
SECTION = "## Install with Helm on the local control plane"
LOCAL_KUBECONFIG = REPO / ".cluster" / "kubeconfig"


def section_blocks(markdown: str, heading: str) -> list[str]:
    """The ```sh blocks of one `## ` section, in order."""
    section = markdown.split(heading + "\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```sh\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)


def remove_what_the_section_installs(cluster: Cluster) -> None:
    helm(
        "uninstall",
        "bentham-operator",
        "--namespace",
        "bentham-system",
        "--wait",
        kubeconfig=cluster.kubeconfig,
        check=False,
    )
    cluster.kubectl(
        "delete", "namespace", "demo", "bentham-system", "--ignore-not-found", "--wait=true", "--timeout=90s"
    )
    (REPO / ".cluster" / "operator.kubeconfig").unlink(missing_ok=True)


def test_install_with_helm_section_runs_word_for_word(study_crd: Cluster, tmp_path: Path) -> None:
    if study_crd.kubeconfig.resolve() != LOCAL_KUBECONFIG.resolve():
        pytest.skip("the section is about this checkout's local control plane (.cluster/kubeconfig)")
    setup, identity, run_operator, apply_study, clean_up = section_blocks(INSTALL_DOC.read_text(), SECTION)
    assert "\n" not in run_operator.strip(), "the operator's block is one command, run in the background"
    operator_log = tmp_path / "operator.log"
    script = "\n".join(
        [
            "set -euo pipefail",
            setup,
            identity,
            f"{run_operator.strip()} > {operator_log} 2>&1 &",
            "operator=$!",
            # The reader stops the operator with Ctrl-C; kill it outright once the study is done.
            "trap 'kill -KILL $operator 2>/dev/null || true' EXIT",
            apply_study,
        ]
    )
    environment = {key: value for key, value in os.environ.items() if key != "KUBECONFIG"}
    remove_what_the_section_installs(study_crd)
    try:
        ran = subprocess.run(
            ["bash", "-c", script], cwd=REPO, env=environment, capture_output=True, text=True, timeout=240
        )
        assert ran.returncode == 0, f"{ran.stdout}\n{ran.stderr}\noperator:\n{operator_log.read_text()[-3000:]}"
        # The same terminal: the setup's exports (KUBECONFIG, helm on PATH) still hold.
        exports = [line for line in setup.splitlines() if line.startswith("export ")]
        cleaned = subprocess.run(
            ["bash", "-c", "\n".join(["set -euo pipefail", *exports, clean_up])],
            cwd=REPO,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert cleaned.returncode == 0, cleaned.stderr
    finally:
        remove_what_the_section_installs(study_crd)

    assert "system:serviceaccount:bentham-system:bentham-operator" in ran.stdout, "auth whoami shows the operator"
    assert re.search(r"^tiny-study\s+complete\s+8/8\s+100%", ran.stdout, re.MULTILINE), ran.stdout
    assert "forbidden" not in operator_log.read_text().lower(), operator_log.read_text()[-3000:]
