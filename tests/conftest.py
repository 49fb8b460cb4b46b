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
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.support import Cluster

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
        already_up = subprocess.run([sys.executable, str(CLUSTER_SCRIPT), "status"], capture_output=True).returncode == 0
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
def study_crd(cluster: Cluster) -> Cluster:
    """The cluster with the Study CRD installed and established."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    cluster.kubectl("wait", "--for=condition=Established", "crd/studies.bentham.io", "--timeout=60s")
    return cluster


def wait_for_default_service_account(core: client.CoreV1Api, namespace: str, timeout_s: float = 30) -> None:
    """Pods are refused until the namespace's default ServiceAccount exists; wait for it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            core.read_namespaced_service_account("default", namespace)
            return
        except client.ApiException as error:
            if error.status != 404:
                raise
        time.sleep(0.1)
    raise AssertionError(f"namespace {namespace} got no default ServiceAccount in {timeout_s}s")


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of this test's own, deleted afterwards (without waiting for it to go)."""
    slug = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(cluster.api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={"bentham.io/test": "true"})))
    wait_for_default_service_account(core, name)
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")
