"""docs/install.md's "Install with Helm on the local control plane", run word for word on the real node.

The section's ```sh blocks run in order in one shell, from the repository's root, as a reader
would: `make node`, `make image`, `helm install` with examples/local/values.yaml, the identity
checks, a study of real executor pods, and the clean-up. The section names its own namespaces
(bentham-system, demo), so this test clears them first and after.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.shipping import REPO, helm
from tests.support import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

INSTALL_DOC = REPO / "docs" / "install.md"
SECTION = "## Install with Helm on the local control plane"
LOCAL_KUBECONFIG = REPO / ".cluster" / "kubeconfig"


def section_blocks(markdown: str, heading: str) -> list[str]:
    """The ```sh blocks of one `## ` section, in order."""
    section = markdown.split(heading + "\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```sh\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)


def remove_what_the_section_installs(cluster: Cluster) -> None:
    helm(
        "uninstall", "bentham-operator", "--namespace", "bentham-system", "--wait",
        kubeconfig=cluster.kubeconfig, check=False,
    )  # fmt: skip
    cluster.kubectl(
        "delete", "namespace", "demo", "bentham-system", "--ignore-not-found", "--wait=true", "--timeout=120s"
    )


def run(script: str, timeout_s: int) -> subprocess.CompletedProcess[str]:
    # A reader's own terminal: no KUBECONFIG until the section exports it, and no make of ours around it.
    environment = {
        key: value for key, value in os.environ.items() if key not in {"KUBECONFIG", "MAKEFLAGS", "MAKELEVEL", "MFLAGS"}
    }
    return subprocess.run(
        ["bash", "-c", script], cwd=REPO, env=environment, capture_output=True, text=True, timeout=timeout_s
    )


def test_install_with_helm_section_runs_word_for_word(cluster: Cluster, real_node: str) -> None:
    if cluster.kubeconfig.resolve() != LOCAL_KUBECONFIG.resolve():
        pytest.skip("the section is about this checkout's local control plane (.cluster/kubeconfig)")
    setup, identity, apply_study, clean_up = section_blocks(INSTALL_DOC.read_text(), SECTION)
    remove_what_the_section_installs(cluster)
    try:
        ran = run("\n".join(["set -euo pipefail", setup, identity, apply_study]), timeout_s=900)
        assert ran.returncode == 0, f"{ran.stdout[-3000:]}\n{ran.stderr[-5000:]}"
        operator_log = cluster.kubectl(
            "logs", "-n", "bentham-system", "deployment/bentham-operator", "--tail=-1", check=False
        ).stdout
        # The same terminal: the setup's exports (KUBECONFIG, helm on PATH) still hold.
        exports = [line for line in setup.splitlines() if line.startswith("export ")]
        cleaned = run("\n".join(["set -euo pipefail", *exports, clean_up]), timeout_s=180)
        assert cleaned.returncode == 0, cleaned.stderr
    finally:
        remove_what_the_section_installs(cluster)

    pod_line = re.search(r"^bentham-operator-\S+\s+(\S+)\s+(\S+)$", ran.stdout, re.MULTILINE)
    assert pod_line, ran.stdout
    assert pod_line.groups() == ("bentham-operator", real_node), "the chart's pod, its ServiceAccount, the real node"
    assert re.search(r"^yes\nno$", ran.stdout, re.MULTILINE), "may create Jobs in demo and not in default"
    assert re.search(r"^stand-in-study\s+complete\s+8/8\s+100%", ran.stdout, re.MULTILINE), ran.stdout
    assert "forbidden" not in operator_log.lower(), operator_log[-3000:]
