"""The network between the operator and the API server stops for a minute: the operator says so, and recovers alone.

The operator talks to the real API server through `tests.tcp_proxy.BlockableProxy`; kwok and the
test talk to it directly, so cells go on ending while the operator is cut off. Blocking the
proxy leaves every connection the operator had open half-open for good, as a partition does:
only its timeouts get it going again.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from kubernetes import client

from bench.operator_process import OperatorProcess, start_operator
from bentham.core.checkpoint import CellState
from tests.integration.test_recovery import LOGS
from tests.support import Cluster, JobCreations, Studies, eventually, recorded_attempts, report, study
from tests.tcp_proxy import BlockableProxy

BLOCK_S = 60


@pytest.fixture
def proxy(cluster: Cluster) -> Iterator[BlockableProxy]:
    server = urlparse(json.loads(cluster.kubeconfig.read_text())["clusters"][0]["cluster"]["server"])
    proxied = BlockableProxy((server.hostname or "127.0.0.1", server.port or 443))
    try:
        yield proxied
    finally:
        proxied.close()


def through(cluster: Cluster, proxy: BlockableProxy, namespace: str) -> Path:
    """A kubeconfig like the cluster's whose server is the proxy (the API server's certificate names 127.0.0.1)."""
    kubeconfig = json.loads(cluster.kubeconfig.read_text())
    kubeconfig["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    path = cluster.kubeconfig.parent / f"kubeconfig-proxied-{namespace}"
    path.write_text(json.dumps(kubeconfig))
    return path


def healthy(operator: OperatorProcess) -> bool:
    try:
        with urllib.request.urlopen(operator.liveness_url, timeout=5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, TimeoutError):
        return False


def holder_of(leases: client.CoordinationV1Api, namespace: str) -> str | None:
    """Who holds the operator's Lease; None while nobody has created it yet."""
    try:
        return str(leases.read_namespaced_lease("bentham-operator", namespace).spec.holder_identity or "") or None
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def completed(studies: Studies, name: str) -> int:
    return int((studies.status(name).get("progress") or {}).get("completedCells", 0))


def test_an_operator_cut_off_from_the_api_server_turns_unhealthy_and_recovers_alone_without_duplicating_a_job(
    cluster: Cluster, unwatched_namespace: str, proxy: BlockableProxy
) -> None:
    namespace = unwatched_namespace
    studies = Studies(cluster, namespace)
    creations = JobCreations(cluster, namespace)
    kubeconfig = through(cluster, proxy, namespace)
    operator = start_operator(kubeconfig, LOGS / f"operator-{namespace}.log", "--namespace", namespace)
    try:
        studies.create(
            study("cutoff", queries=20, locations=("us-nyc", "uk-lon"), parallelism=4,
                  pod_annotations={"sim.bentham.io/duration": "3s"})
        )  # fmt: skip
        eventually(lambda: completed(studies, "cutoff") >= 4, timeout_s=90, what="some progress before the cut")
        assert healthy(operator)

        proxy.block()
        blocked_at = time.monotonic()
        unhealthy_after = None
        while time.monotonic() - blocked_at < BLOCK_S:
            if unhealthy_after is None and not healthy(operator):
                unhealthy_after = time.monotonic() - blocked_at
            time.sleep(1)
        before = completed(studies, "cutoff")
        proxy.resume()
        resumed_at = time.monotonic()
        eventually(lambda: completed(studies, "cutoff") > before, timeout_s=60, what="progress after the cut")
        recovered_after = time.monotonic() - resumed_at
        report(
            f"outage: /healthz unhealthy {unhealthy_after}s into a {BLOCK_S}s cut; "
            f"progress again {recovered_after:.1f}s after it ended"
        )

        status = studies.wait_for_state("cutoff", "complete", "failed", timeout_s=180)
        eventually(lambda: healthy(operator), timeout_s=30, what="/healthz healthy again")
    finally:
        operator.stop()
        creations.stop()

    assert unhealthy_after is not None and unhealthy_after <= 60, "/healthz stayed healthy while cut off"
    assert recovered_after <= 30
    assert status["state"] == "complete", status.get("message")
    assert set(recorded_attempts(studies, "cutoff")) == {(CellState.COMPLETED, 1)}
    assert creations.duplicates == 0, {name: uids for name, uids in creations.uids.items() if len(uids) > 1}
    assert len(creations.uids) == 40  # each cell's one attempt, created once


def test_a_leader_that_cannot_renew_exits_and_a_restarted_replica_takes_over(
    cluster: Cluster, unwatched_namespace: str, proxy: BlockableProxy
) -> None:
    namespace = unwatched_namespace
    studies = Studies(cluster, namespace)
    leases = client.CoordinationV1Api(cluster.api)
    creations = JobCreations(cluster, namespace)
    kubeconfig = through(cluster, proxy, namespace)
    args = ("--namespace", namespace, "--leader-elect", "--lease-namespace", namespace)
    log = LOGS / f"operator-{namespace}.log"
    leader = start_operator(kubeconfig, log, *args)
    restarted = None
    try:
        eventually(lambda: holder_of(leases, namespace), what="a leader")
        studies.create(
            study("handover", queries=15, locations=("us-nyc", "uk-lon"), parallelism=4,
                  pod_annotations={"sim.bentham.io/duration": "2s"})
        )  # fmt: skip
        eventually(lambda: completed(studies, "handover") >= 4, timeout_s=90, what="some progress under the leader")

        proxy.block()
        blocked_at = time.monotonic()
        eventually(lambda: leader.process.poll() is not None, timeout_s=BLOCK_S, what="the cut-off leader to exit")
        exited_after = time.monotonic() - blocked_at
        proxy.resume()
        restarted = start_operator(kubeconfig, log, *args)  # as its Deployment would restart it
        holder = eventually(
            lambda: (
                (h := leases.read_namespaced_lease("bentham-operator", namespace).spec.holder_identity)
                and h.endswith(f"-{restarted.pid}")
                and h
            ),
            timeout_s=45,
            what="the restarted replica to take the lease",
        )
        report(f"outage: the cut-off leader exited {exited_after:.1f}s into the cut; {holder} took over")
        status = studies.wait_for_state("handover", "complete", "failed", timeout_s=180)
    finally:
        for replica in (leader, restarted):
            if replica is not None:
                replica.stop()
        creations.stop()

    assert leader.process.returncode == 1
    assert status["state"] == "complete", status.get("message")
    assert set(recorded_attempts(studies, "handover")) == {(CellState.COMPLETED, 1)}
    assert creations.duplicates == 0, {name: uids for name, uids in creations.uids.items() if len(uids) > 1}
