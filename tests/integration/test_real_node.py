"""The real node (hack/realnode.py): a kubelet of the control plane's release on containerd and runc.

Everything else in the suite runs pods on kwok, which only pretends; here a container really runs,
its exit code and termination message come from runc and containerd, and its logs from the kubelet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import Cluster, eventually

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
BUSYBOX = "localhost/bentham/busybox:1"
ON_THE_REAL_NODE = {
    "nodeSelector": {"bentham.io/node": "real"},
    "tolerations": [{"key": "bentham.io/node", "operator": "Equal", "value": "real", "effect": "NoSchedule"}],
}


def job(name: str, script: str, **pod_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": BUSYBOX, "command": ["/bin/sh", "-c", script]}],
                    **pod_spec,
                }
            },
        },
    }


def the_pod(cluster: Cluster, namespace: str, job_name: str) -> dict[str, Any] | None:
    """The Job's one pod, or None while the Job controller has not made it yet (backoffLimit 0: never two)."""
    pods = json.loads(
        cluster.kubectl("get", "pods", "-n", namespace, "-l", f"job-name={job_name}", "-o", "json").stdout
    )["items"]
    assert len(pods) <= 1
    return dict(pods[0]) if pods else None


def test_the_real_node_is_ready_with_containerd_beside_the_kwok_nodes(cluster: Cluster, real_node: str) -> None:
    nodes = {
        n["metadata"]["name"]: n for n in json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    }
    assert {"kwok-node-0", "kwok-node-1", real_node} <= nodes.keys()
    node = nodes[real_node]
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://1.")
    server = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
    assert node["status"]["nodeInfo"]["kubeletVersion"] == server
    assert {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"] == "True"
    assert node["metadata"]["labels"]["bentham.io/node"] == "real"
    assert {"key": "bentham.io/node", "value": "real", "effect": "NoSchedule"} in node["spec"]["taints"]


def test_a_job_on_the_real_node_runs_a_real_process(cluster: Cluster, real_node: str, unwatched_namespace: str) -> None:
    """Its exit code, termination message and logs are the process's own, read by the kubelet from containerd."""
    script = 'echo "uid $(id -u) pid $$$$"; echo "{\\"success\\": false}" > /dev/termination-log; exit 3'
    cluster.kubectl(
        "apply", "-n", unwatched_namespace, "-f", "-", stdin=json.dumps(job("real", script, **ON_THE_REAL_NODE))
    )

    def terminated() -> dict[str, Any] | None:
        pod = the_pod(cluster, unwatched_namespace, "real")
        statuses = pod["status"].get("containerStatuses", []) if pod else []
        return statuses[0]["state"].get("terminated") if statuses else None

    state = eventually(terminated, timeout_s=90, what="the container to terminate")
    pod = the_pod(cluster, unwatched_namespace, "real")
    assert pod is not None
    assert pod["spec"]["nodeName"] == real_node
    assert state["exitCode"] == 3
    assert json.loads(state["message"]) == {"success": False}
    assert state["containerID"].startswith("containerd://")
    # The pod's own pid namespace ($$$$ is $$ once Kubernetes expands it): the shell is process 1 there;
    # `kubectl logs` reaches the kubelet.
    logs = cluster.kubectl("logs", "-n", unwatched_namespace, "job/real").stdout
    assert logs.split() == ["uid", "0", "pid", "1"]


def test_a_pod_that_does_not_ask_for_the_real_node_never_lands_there(
    cluster: Cluster, real_node: str, unwatched_namespace: str
) -> None:
    """The taint keeps the rest of the suite's pods on kwok: only a pod that tolerates it may run for real."""
    for index in range(4):
        cluster.kubectl("apply", "-n", unwatched_namespace, "-f", "-", stdin=json.dumps(job(f"plain-{index}", "true")))

    def node_of(job_name: str) -> str | None:
        pod = the_pod(cluster, unwatched_namespace, job_name)
        return pod["spec"].get("nodeName") if pod else None

    for index in range(4):
        node = eventually(lambda i=index: node_of(f"plain-{i}"), what="the pod to be scheduled")  # type: ignore[misc]
        assert node != real_node


def test_a_pod_reaches_the_api_server_by_the_kubernetes_service(
    cluster: Cluster, real_node: str, unwatched_namespace: str
) -> None:
    """KUBERNETES_SERVICE_HOST (the Service's ClusterIP) leads to the API server on 127.0.0.1. Plain
    HTTP to its TLS port gets Go's own answer (busybox's TLS cannot finish Go's handshake)."""
    script = r"printf 'GET /version HTTP/1.0\r\n\r\n' | nc -w 5 $KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT"
    cluster.kubectl(
        "apply", "-n", unwatched_namespace, "-f", "-", stdin=json.dumps(job("reach", script, **ON_THE_REAL_NODE))
    )
    cluster.kubectl("wait", "-n", unwatched_namespace, "--for=condition=Complete", "job/reach", "--timeout=90s")
    answer = cluster.kubectl("logs", "-n", unwatched_namespace, "job/reach").stdout
    assert "Client sent an HTTP request to an HTTPS server" in answer


def test_a_second_cluster_may_not_start_a_real_node_while_this_one_runs(real_node: str, tmp_path: Path) -> None:
    """One real node per machine: another cluster's `up --node real` refuses, naming the owner, and starts nothing."""
    other = tmp_path / "other-cluster"
    result = subprocess.run(
        [sys.executable, str(REPO / "hack" / "cluster.py"), "up", "--node", "real"],
        env={**os.environ, "BENTHAM_CLUSTER_DIR": str(other)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "a real node already runs on this machine" in result.stderr
    assert not (other / "run").exists()
