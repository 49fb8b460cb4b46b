"""Chaos on the real control plane: nothing lost, nothing done twice, whatever dies mid-study.

Each test runs its own operator(s) in a namespace the session's operator ignores, and counts
Job creations from a watch started before the study: a Job name seen with two UIDs is an attempt
created twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from bench.operator_process import start_operator
from bentham.core.checkpoint import CellState
from tests.shipping import chart_operator_identity, username
from tests.support import (
    Cluster,
    JobCreations,
    Studies,
    assert_each_attempt_created_once,
    chaos_study,
    eventually,
    first_attempts_in_london_fail,
    kill_hard,
    kill_repeatedly,
    namespace_for_test,
    recorded_attempts,
    report,
    study,
)

REPO = Path(__file__).resolve().parents[2]
LOGS = REPO / ".cluster" / "logs"


@pytest.fixture
def as_the_chart(study_crd: Cluster, unwatched_namespace: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment that runs an operator as the chart's ServiceAccount, under the chart's RBAC
    in namespaced mode (a Role in `unwatched_namespace` only), with a token, never the admin's kubeconfig."""
    with (
        namespace_for_test(study_crd, "u-release") as release_namespace,
        chart_operator_identity(study_crd, release_namespace, [unwatched_namespace], tmp_path / "kubeconfig") as path,
    ):
        assert username(path) == f"system:serviceaccount:{release_namespace}:bentham-operator"
        yield {"KUBECONFIG": str(path)}


def test_study_survives_repeated_kill_9_of_the_operator_without_duplicating_any_attempt(
    cluster: Cluster, unwatched_namespace: str, as_the_chart: dict[str, str]
) -> None:
    namespace = unwatched_namespace
    studies = Studies(cluster, namespace)
    creations = JobCreations(cluster, namespace)
    log = LOGS / f"operator-{namespace}.log"
    operator = start_operator(cluster.kubeconfig, log, "--namespace", namespace, env=as_the_chart)
    try:
        with first_attempts_in_london_fail(cluster, namespace):
            studies.create(chaos_study("chaos"))
            operator, kills = kill_repeatedly(
                operator,
                lambda: start_operator(cluster.kubeconfig, log, "--namespace", namespace, env=as_the_chart),
                done=lambda: studies.status("chaos").get("state") in ("complete", "failed"),
                most=12,
                seed=20261125,
                pause=(0.3, 2.5),
            )
            status = studies.wait_for_state("chaos", "complete", "failed", timeout_s=300)
    finally:
        operator.stop()
        creations.stop()

    report(
        f"chaos: operator (as the chart's ServiceAccount) killed with SIGKILL {kills} times; "
        f"duplicate Job creations: {creations.duplicates}"
    )
    assert kills >= 10, f"the study ended after only {kills} kills; make it longer"
    assert "forbidden" not in log.read_text().lower(), "the chart's RBAC refused the operator something"
    assert_each_attempt_created_once(studies, "chaos", status, creations)


def test_study_completes_across_a_restart_of_the_api_server_and_etcd(
    cluster: Cluster, unwatched_namespace: str
) -> None:
    run_dir = cluster.kubeconfig.parent / "run"
    if not run_dir.is_dir():
        pytest.skip("the cluster was given by --kubeconfig; its API server is not ours to restart")
    namespace = unwatched_namespace
    studies = Studies(cluster, namespace)
    creations = JobCreations(cluster, namespace)
    operator = start_operator(cluster.kubeconfig, LOGS / f"operator-{namespace}.log", "--namespace", namespace)
    try:
        studies.create(
            study(
                "outage",
                required=("openai-api", "grok"),
                queries=30,
                parallelism=10,
                pod_annotations={"sim.bentham.io/duration": "1s"},
            )
        )
        eventually(
            lambda: (studies.status("outage").get("progress") or {}).get("completedCells", 0) >= 10,
            what="some progress before the outage",
        )
        pids = [int((run_dir / f"{part}.pid").read_text()) for part in ("kube-apiserver", "etcd")]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)  # a crash: the API server's graceful stop waits on the etcd it lost
        eventually(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), what="both to exit")
        subprocess.run(
            [sys.executable, str(REPO / "hack" / "cluster.py"), "up"],
            check=True,
            capture_output=True,
            env={**os.environ, "BENTHAM_CLUSTER_DIR": str(run_dir.parent)},
        )
        report("chaos: restarted kube-apiserver and etcd mid-study")

        status = studies.wait_for_state("outage", "complete", "failed", timeout_s=240)
    finally:
        operator.stop()
        creations.stop()
    report(f"chaos: API server and etcd restarted; duplicate Job creations: {creations.duplicates}")
    assert creations.duplicates == 0, creations.created_twice()
    assert status["state"] == "complete", status.get("message")
    assert status["progress"]["completedCells"] == 120
    assert recorded_attempts(studies, "outage") == [(CellState.COMPLETED, 1)] * 120, (
        "every cell passed at its first attempt"
    )
    assert len(creations.uids) == 120, "each attempt's Job created once, none missing"


def test_standby_replica_takes_over_within_30s_when_the_leader_dies(cluster: Cluster, unwatched_namespace: str) -> None:
    namespace = unwatched_namespace
    studies = Studies(cluster, namespace)
    leases = client.CoordinationV1Api(cluster.api)
    args = ("--namespace", namespace, "--leader-elect", "--lease-namespace", namespace)
    replicas = [start_operator(cluster.kubeconfig, LOGS / f"operator-{namespace}-{i}.log", *args) for i in range(2)]
    try:
        holder = eventually(
            lambda: leases.read_namespaced_lease("bentham-operator", namespace).spec.holder_identity, what="a leader"
        )
        leader = next(r for r in replicas if holder.endswith(f"-{r.process.pid}"))
        standby = next(r for r in replicas if r is not leader)
        studies.create(study("failover", queries=20, parallelism=6, pod_annotations={"sim.bentham.io/duration": "1s"}))
        eventually(
            lambda: (studies.status("failover").get("progress") or {}).get("completedCells", 0) >= 6,
            what="some progress under the first leader",
        )

        kill_hard(leader)
        killed_at = time.monotonic()
        new_holder = eventually(
            lambda: (
                (h := leases.read_namespaced_lease("bentham-operator", namespace).spec.holder_identity) != holder and h
            ),
            timeout_s=45,
            what="the standby to take the lease",
        )
        takeover_s = time.monotonic() - killed_at
        report(f"chaos: killed the leader; the standby took over in {takeover_s:.1f}s")

        status = studies.wait_for_state("failover", "complete", "failed", timeout_s=180)
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                replica.stop()
    assert new_holder.endswith(f"-{standby.process.pid}")
    assert takeover_s <= 30
    assert status["state"] == "complete", status.get("message")
    assert status["progress"]["completedCells"] == 40
