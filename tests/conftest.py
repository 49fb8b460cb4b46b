"""Fixtures shared by every test: the local control plane and a namespace per test.

The control plane is real (see hack/cluster.py). A test run starts it when it is not already
up and stops it afterwards; set BENTHAM_KUBECONFIG (or pass --kubeconfig) to run against a
cluster you already have instead, which the run then leaves as it found it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import config

from bench.operator_process import OperatorProcess, start_operator
from tests.support import LOOPBACK_WEBHOOKS, REPORT, Cluster, namespace_for_test

REPO = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPT = REPO / "hack" / "cluster.py"
CRDS = REPO / "crds"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kubeconfig",
        default=os.environ.get("BENTHAM_KUBECONFIG"),
        help="Use the cluster of this kubeconfig instead of starting the local control plane.",
    )


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The control plane for this test run."""
    given = request.config.getoption("--kubeconfig")
    started_here = False
    if given:
        kubeconfig = Path(given)
    else:
        status = subprocess.run([sys.executable, str(CLUSTER_SCRIPT), "status"], capture_output=True)
        already_up = status.returncode == 0
        up = subprocess.run([sys.executable, str(CLUSTER_SCRIPT), "up"], capture_output=True, text=True)
        if up.returncode != 0:
            pytest.fail(f"the local control plane did not start:\n{up.stderr}", pytrace=False)
        kubeconfig = Path(up.stdout.strip().splitlines()[-1])
        started_here = not already_up
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield Cluster(kubeconfig=kubeconfig, api=api)
    finally:
        api.close()
        if started_here:
            subprocess.run([sys.executable, str(CLUSTER_SCRIPT), "down"], capture_output=True)


@pytest.fixture(scope="session")
def real_node(cluster: Cluster) -> Iterator[str]:
    """The real node (hack/realnode.py: kubelet, containerd, runc) beside the kwok nodes; its name.

    Started when not running (root and Debian's containerd, runc, containernetworking-plugins,
    iptables and busybox-static are needed: `.ci/run` installs them), and then stopped again.
    """
    ready = '{.status.conditions[?(@.type=="Ready")].status}'
    running = cluster.kubectl("get", "node", "real-node", "-o", f"jsonpath={ready}", check=False).stdout == "True"
    up = subprocess.run([sys.executable, str(CLUSTER_SCRIPT), "up", "--node", "real"], capture_output=True, text=True)
    if up.returncode != 0:
        pytest.fail(f"the real node did not start:\n{up.stderr}", pytrace=False)
    try:
        yield "real-node"
    finally:
        if not running:
            subprocess.run([sys.executable, str(CLUSTER_SCRIPT), "stop-node"], capture_output=True)


@pytest.fixture(scope="session")
def study_crd(cluster: Cluster) -> Cluster:
    """The cluster with the Study CRD installed and established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    cluster.kubectl("wait", "--for=condition=Established", "crd/studies.bentham.io", "--timeout=60s")
    return cluster


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of this test's own, watched by the session's operator (`t-*`)."""
    with namespace_for_test(cluster, "t", request.node.name) as name:
        yield name


@pytest.fixture
def unwatched_namespace(study_crd: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of this test's own that the session's operator ignores: for tests that run their own.

    Such tests create Studies, so the CRD comes with it: on a fresh cluster they may run first.
    """
    with namespace_for_test(study_crd, "u", request.node.name) as name:
        yield name


@pytest.fixture(scope="session")
def operator(study_crd: Cluster) -> Iterator[OperatorProcess]:
    """The operator, watching every test namespace (`t-*`) for the whole run."""
    log = REPO / ".cluster" / "logs" / "operator-tests.log"
    # The tests' webhooks listen on 127.0.0.1, which the operator refuses unless its admin allows it.
    running = start_operator(study_crd.kubeconfig, log, "--namespace", "t-*", env=LOOPBACK_WEBHOOKS)
    time.sleep(2)  # kopf may miss a namespace created while its namespace watch is still starting
    try:
        yield running
    finally:
        running.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Numbers that tests report for people (chaos kills, duplicates) shown at the end of the run."""
    if REPORT:
        terminalreporter.section("reported by tests")
        for line in REPORT:
            terminalreporter.write_line(line)
