"""The local control plane is a real one: Jobs, kwok's fake kubelet, GC, CRDs with CEL, kubectl."""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.support import Cluster, eventually


def job(
    name: str,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    owner: client.V1OwnerReference | None = None,
) -> client.V1Job:
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name, owner_references=[owner] if owner else None),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(annotations=annotations, labels=labels),
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    containers=[client.V1Container(name="executor", image="example.invalid/executor:1")],
                ),
            ),
        ),
    )


def job_condition(batch: client.BatchV1Api, namespace: str, name: str) -> str | None:
    """`Complete` or `Failed` once the Job controller has decided, else None."""
    status = batch.read_namespaced_job_status(name, namespace).status
    for condition in status.conditions or []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return str(condition.type)
    return None


def only_pod(core: client.CoreV1Api, namespace: str, job_name: str) -> client.V1Pod:
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job_name}").items
    assert len(pods) == 1, f"expected one pod for {job_name}, found {len(pods)}"
    return pods[0]


@pytest.fixture
def batch(cluster: Cluster) -> client.BatchV1Api:
    return client.BatchV1Api(cluster.api)


@pytest.fixture
def core(cluster: Cluster) -> client.CoreV1Api:
    return client.CoreV1Api(cluster.api)


def test_job_whose_pod_succeeds_becomes_complete(batch: client.BatchV1Api, namespace: str) -> None:
    batch.create_namespaced_job(namespace, job("succeeds"))

    assert eventually(lambda: job_condition(batch, namespace, "succeeds"), what="the Job to finish") == "Complete"


def test_pod_that_asks_to_fail_makes_its_job_failed(
    batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job("fails", annotations={"sim.bentham.io/result": "fail"}))

    assert eventually(lambda: job_condition(batch, namespace, "fails"), what="the Job to finish") == "Failed"
    terminated = only_pod(core, namespace, "fails").status.container_statuses[0].state.terminated
    assert terminated.exit_code == 1


def test_termination_message_is_readable_on_the_container_status(
    batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    message = json.dumps({"success": True, "responseLength": 1234, "note": 'quotes " and\nnewlines'})
    batch.create_namespaced_job(namespace, job("reports", annotations={"sim.bentham.io/termination-message": message}))

    eventually(lambda: job_condition(batch, namespace, "reports"), what="the Job to finish")
    terminated = only_pod(core, namespace, "reports").status.container_statuses[0].state.terminated
    assert terminated.message == message
    assert terminated.exit_code == 0


def test_failing_pod_carries_its_exit_code_and_message(
    batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    annotations = {
        "sim.bentham.io/result": "fail",
        "sim.bentham.io/exit-code": "3",
        "sim.bentham.io/termination-message": '{"success": false}',
    }
    batch.create_namespaced_job(namespace, job("exit3", annotations=annotations))

    eventually(lambda: job_condition(batch, namespace, "exit3"), what="the Job to finish")
    terminated = only_pod(core, namespace, "exit3").status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.message) == (3, '{"success": false}')


def test_pod_runs_for_the_duration_it_asks_for(
    batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job("slow", annotations={"sim.bentham.io/duration": "4s"}))

    def running() -> bool:
        pods = core.list_namespaced_pod(namespace, label_selector="job-name=slow").items
        return bool(pods) and pods[0].status.phase == "Running"

    eventually(running, what="the pod to run")
    started = time.monotonic()
    assert job_condition(batch, namespace, "slow") is None
    eventually(lambda: job_condition(batch, namespace, "slow"), what="the Job to finish")
    assert time.monotonic() - started >= 2.5


def test_stage_added_at_runtime_fails_every_pod_it_selects(
    cluster: Cluster, batch: client.BatchV1Api, namespace: str
) -> None:
    stage_name = f"test-fail-{uuid.uuid4().hex[:8]}"
    stage = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": stage_name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {
                "matchLabels": {"bentham.io/surface": "grok"},
                "matchExpressions": [{"key": ".status.phase", "operator": "In", "values": ["Running"]}],
            },
            "weight": 1,
            "next": {"statusTemplate": "phase: Failed\n"},
        },
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(stage))
    try:
        time.sleep(1)  # kwok picks Stages up through a watch
        batch.create_namespaced_job(namespace, job("grok", labels={"bentham.io/surface": "grok"}))
        batch.create_namespaced_job(namespace, job("openai", labels={"bentham.io/surface": "openai-api"}))

        assert eventually(lambda: job_condition(batch, namespace, "grok"), what="the grok Job") == "Failed"
        assert eventually(lambda: job_condition(batch, namespace, "openai"), what="the openai Job") == "Complete"
    finally:
        cluster.kubectl("delete", "stage", stage_name, "--wait=false")


def test_deleting_an_owner_deletes_the_job_it_owns(
    batch: client.BatchV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    owner = core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner")))
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid, block_owner_deletion=True
    )
    long_running = {"sim.bentham.io/duration": "60s"}
    batch.create_namespaced_job(namespace, job("owned", annotations=long_running, owner=reference))

    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    def job_gone() -> bool:
        return not batch.list_namespaced_job(namespace, field_selector="metadata.name=owned").items

    assert eventually(job_gone, what="the garbage collector to delete the Job")


WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.controlplane.test.bentham.io"},
    "spec": {
        "group": "controlplane.test.bentham.io",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
                                "x-kubernetes-validations": [
                                    {"rule": "self.min <= self.max", "message": "min must not exceed max"}
                                ],
                            },
                            "status": {"type": "object", "properties": {"seen": {"type": "integer"}}},
                        },
                    }
                },
            }
        ],
    },
}


def widget(name: str, low: int, high: int) -> dict[str, Any]:
    return {
        "apiVersion": "controlplane.test.bentham.io/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"min": low, "max": high},
    }


def test_crd_with_a_cel_rule_rejects_a_bad_object_and_keeps_status_apart(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(WIDGET_CRD))
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{WIDGET_CRD['metadata']['name']}", "--timeout=60s")
    custom = client.CustomObjectsApi(cluster.api)
    group, version, plural = "controlplane.test.bentham.io", "v1", "widgets"

    rejected = cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(widget("bad", 5, 1)), check=False)
    assert rejected.returncode != 0
    assert "min must not exceed max" in rejected.stderr

    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(widget("good", 1, 5)))
    custom.patch_namespaced_custom_object_status(group, version, namespace, plural, "good", {"status": {"seen": 7}})
    # A write to the main resource cannot change status: that is what the subresource is for.
    custom.patch_namespaced_custom_object(group, version, namespace, plural, "good", {"status": {"seen": 99}})
    stored = custom.get_namespaced_custom_object(group, version, namespace, plural, "good")
    assert stored["status"] == {"seen": 7}
    assert stored["spec"] == {"min": 1, "max": 5}


def test_kubectl_on_path_works_with_the_written_kubeconfig(cluster: Cluster) -> None:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]

    ready = {
        node["metadata"]["name"]
        for node in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
    }
    assert {"kwok-node-0", "kwok-node-1"} <= ready
    server = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert server["gitVersion"].startswith("v1.37.")


def listening_addresses(pid: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp* writes them) of every socket `pid` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                addresses.add(local.rsplit(":", 1)[0])
    return addresses


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 and ::1 in /proc's byte order
REAL_NODE_BRIDGE = {"0100EA0A"}  # 10.234.0.1, the real node's own bridge (hack/realnode.py), in the same order


def test_every_component_listens_on_loopback_only(cluster: Cluster) -> None:
    run_dir = cluster.kubeconfig.parent / "run"
    if not run_dir.is_dir():
        pytest.skip("the cluster was given by --kubeconfig; its processes are not ours to inspect")
    pids = {f.stem: int(f.read_text()) for f in run_dir.glob("*.pid")}
    real_node = {"containerd", "kubelet"} & set(pids)  # when `up --node real` started it
    assert set(pids) - real_node == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

    listening = {part: listening_addresses(pid) for part, pid in pids.items()}

    assert listening["kube-apiserver"], "the API server should listen somewhere"
    # The real node's kubelet serves the API server (logs, exec) on its bridge's address, nowhere else.
    allowed = {part: LOOPBACK | (REAL_NODE_BRIDGE if part in real_node else set()) for part in pids}
    assert all(listening[part] <= allowed[part] for part in pids), listening
