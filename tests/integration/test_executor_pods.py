"""Executor pods on the real control plane: admitted under `restricted`, fenced by the executor policy, never forged.

The API server enforces Pod Security admission on a namespace labelled for it; kwok plays the
pods on fake nodes once they are admitted and scheduled.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from bench.operator_process import OperatorProcess, start_operator
from tests.support import GOOD_RESULT, Cluster, Studies, eventually, study

LOGS = Path(__file__).resolve().parents[2] / ".cluster" / "logs"
NOT_ALLOWED = "ExecutorNotAllowed"
FAILED_RESULT = {"success": False, "error": {"code": "TIMEOUT", "message": "the surface did not answer"}}

pytestmark = pytest.mark.cluster


def failed_condition(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status.get("conditions") or [] if c["type"] == "Failed")


def with_executor(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body["spec"]["executor"].update(fields)
    return body


def test_a_study_runs_to_complete_in_a_namespace_enforcing_the_restricted_level(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    plain_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "no-security-context"},
        "spec": {"containers": [{"name": "executor", "image": "example.invalid/executor:1"}]},
    }
    with pytest.raises(ApiException) as refused:  # the level is enforced: what the pods used to be is refused
        client.CoreV1Api(cluster.api).create_namespaced_pod(namespace, plain_pod)
    assert refused.value.status == 403
    assert 'violates PodSecurity "restricted' in json.loads(refused.value.body)["message"]
    studies = Studies(cluster, namespace)

    studies.create(study("restricted", queries=2))

    status = studies.wait_for_state("restricted", "complete", "failed", timeout_s=120)
    assert status["state"] == "complete", status.get("message")
    assert status["progress"]["completedCells"] == 4


def test_a_study_naming_what_the_default_policy_does_not_allow_fails_naming_the_field_and_the_rule(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    asks: dict[str, tuple[dict[str, Any], str]] = {
        "named-account": ({"serviceAccountName": "default"}, "executor.serviceAccountName: ServiceAccount 'default'"),
        "any-taint": ({"tolerations": [{"operator": "Exists"}]}, "executor.tolerations[0]: toleration <any key>"),
        "pinned": ({"nodeSelector": {"kubernetes.io/hostname": "n1"}}, "executor.nodeSelector: key 'kubernetes.io/"),
    }
    for name, (executor, _) in asks.items():
        studies.create(with_executor(study(name), **executor))

    for name, (_, field) in asks.items():
        status = studies.wait_for_state(name, "failed", "executing", "complete", timeout_s=60)
        assert status["state"] == "failed", name
        condition = failed_condition(status)
        assert condition["reason"] == NOT_ALLOWED
        assert field in condition["message"]
        assert f"is not allowed for namespace {namespace} by the operator's executor policy" in condition["message"]
        assert studies.jobs(name) == []


def test_the_executor_policy_caps_a_namespace_and_lets_its_service_account_through(
    cluster: Cluster, unwatched_namespace: str, tmp_path: Path
) -> None:
    namespace = unwatched_namespace
    policy = tmp_path / "executor-policy.yaml"
    policy.write_text(
        json.dumps(
            {
                "namespaces": {
                    namespace: {
                        "serviceAccounts": ["bentham-executor"],
                        "maxParallelism": 3,
                        "maxResources": {"limits": {"memory": "1Gi"}},
                    }
                }
            }
        )
    )
    client.CoreV1Api(cluster.api).create_namespaced_service_account(
        namespace, {"metadata": {"name": "bentham-executor"}}
    )
    studies = Studies(cluster, namespace)
    bounded = {"limits": {"memory": "512Mi"}}
    running = operator_with_policy(cluster, namespace, policy)
    try:
        studies.create(with_executor(study("too-parallel", parallelism=4), resources=bounded))
        studies.create(with_executor(study("too-big", parallelism=2), resources={"limits": {"memory": "2Gi"}}))
        slow = {"sim.bentham.io/duration": "2s"}
        allowed = study("allowed", parallelism=3, queries=2, pod_annotations=slow)
        studies.create(with_executor(allowed, resources=bounded, serviceAccountName="bentham-executor"))

        for name, message in (
            ("too-parallel", "executor.parallelism: 4 is more than 3, the cap set for namespace"),
            ("too-big", "executor.resources.limits.memory: 2Gi is more than 1Gi, the cap set for namespace"),
        ):
            status = studies.wait_for_state(name, "failed", "executing", "complete", timeout_s=60)
            assert status["state"] == "failed", name
            assert failed_condition(status)["reason"] == NOT_ALLOWED and message in failed_condition(status)["message"]

        [job, *_] = eventually(lambda: studies.jobs("allowed"), 60, "the allowed study's first Jobs")
        pod = job.spec.template.spec
        assert pod.service_account_name == "bentham-executor" and pod.automount_service_account_token is None

        # Above the cap while it runs: held, as any spec that stops reading, until it is back within it.
        studies.patch_spec("allowed", {"executor": {"parallelism": 5}})
        held = eventually(lambda: spec_valid(studies.status("allowed"), "False"), 60, "the study to be held")
        assert held["reason"] == NOT_ALLOWED and "executor.parallelism: 5 is more than 3" in held["message"]
        studies.patch_spec("allowed", {"executor": {"parallelism": 3}})
        status = studies.wait_for_state("allowed", "complete", "failed", timeout_s=120)
    finally:
        running.stop()
    assert status["state"] == "complete", status.get("message")
    assert status["progress"]["completedCells"] == 4


def operator_with_policy(cluster: Cluster, namespace: str, policy: Path) -> OperatorProcess:
    return start_operator(
        cluster.kubeconfig,
        LOGS / f"operator-{namespace}.log",
        "--namespace",
        namespace,
        env={"BENTHAM_EXECUTOR_POLICY_FILE": str(policy)},
    )


def pod_succeeded(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    return bool(core.read_namespaced_pod(name, namespace).status.phase == "Succeeded")


def spec_valid(status: dict[str, Any], value: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == "SpecValid" and c["status"] == value), None)


def test_a_pod_with_our_labels_that_the_job_does_not_own_does_not_change_a_cells_result(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    core = client.CoreV1Api(cluster.api)
    failing = {
        "sim.bentham.io/result": "fail",
        "sim.bentham.io/duration": "4s",
        "sim.bentham.io/termination-message": json.dumps(FAILED_RESULT),
    }
    studies.create(study("forged", queries=1, max_retries=1, pod_annotations=failing))
    jobs = eventually(lambda: both if len(both := studies.jobs("forged")) == 2 else None, 60, "both cells' Jobs")

    for job in jobs:  # while the real pods run: a pod that says the cell succeeded, ended at once
        labels = {
            key: value
            for key, value in job.spec.template.metadata.labels.items()
            if key not in ("controller-uid", "batch.kubernetes.io/controller-uid")  # else the Job would adopt it
        }
        name = f"{job.metadata.name}-zzzzz"  # listed after the real pod
        core.create_namespaced_pod(
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "labels": labels,
                    "annotations": {"sim.bentham.io/termination-message": json.dumps(GOOD_RESULT)},
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "executor", "image": "example.invalid/forger:1"}],
                },
            },
        )
        eventually(partial(pod_succeeded, core, namespace, name), 30, "the forged pod to end")

    status = studies.wait_for_state("forged", "complete", "failed", timeout_s=120)
    assert status["state"] == "failed", status.get("message")
    assert (status["progress"]["completedCells"], status["progress"]["failedCells"]) == (0, 2)
