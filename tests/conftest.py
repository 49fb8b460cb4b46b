"""Fixtures shared by every test: the local control plane and a namespace per test.

The control plane is real (see hack/cluster.py). A test run starts it when it is not already
up and stops it afterwards; set BENTHAM_KUBECONFIG (or pass --kubeconfig) to run against a
cluster you already have instead, which the run then leaves as it found it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.support import REPORT, Cluster

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


@contextmanager
def scratch_namespace(cluster: Cluster, prefix: str, test_name: str) -> Iterator[str]:
    """A namespace named after the test, deleted afterwards (without waiting for it to go)."""
    slug = "".join(c if c.isalnum() else "-" for c in test_name.lower())[:40].strip("-")
    name = f"{prefix}-{slug}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(cluster.api)
    metadata = client.V1ObjectMeta(name=name, labels={"bentham.io/test": "true"})
    core.create_namespace(client.V1Namespace(metadata=metadata))
    wait_for_default_service_account(core, name)
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of this test's own, watched by the session's operator (`t-*`)."""
    with scratch_namespace(cluster, "t", request.node.name) as name:
        yield name


@pytest.fixture
def unwatched_namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of this test's own that the session's operator ignores: for tests that run their own."""
    with scratch_namespace(cluster, "u", request.node.name) as name:
        yield name


@dataclass(frozen=True)
class OperatorProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, characters: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-characters:]


def start_operator(cluster: Cluster, log: Path, *args: str, env: dict[str, str] | None = None) -> OperatorProcess:
    """Runs the operator as a real process, as `make run` would, and waits until it is live."""
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), **(env or {})}
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bentham", "--liveness", f"http://127.0.0.1:{port}/healthz", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    started = OperatorProcess(process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the operator exited with {process.returncode}:\n{started.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return started
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"the operator did not become live in 60s:\n{started.log_tail()}")


def stop_operator(operator: OperatorProcess) -> None:
    operator.process.terminate()
    try:
        operator.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        operator.process.kill()
        operator.process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def operator(study_crd: Cluster) -> Iterator[OperatorProcess]:
    """The operator, watching every test namespace (`t-*`) for the whole run."""
    running = start_operator(study_crd, REPO / ".cluster" / "logs" / "operator-tests.log", "--namespace", "t-*")
    time.sleep(2)  # kopf may miss a namespace created while its namespace watch is still starting
    try:
        yield running
    finally:
        stop_operator(running)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Numbers that tests report for people (chaos kills, duplicates) shown at the end of the run."""
    if REPORT:
        terminalreporter.section("reported by tests")
        for line in REPORT:
            terminalreporter.write_line(line)
