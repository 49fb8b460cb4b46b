"""End to end: the chart installs the operator's own image, which runs studies of real executor pods.

Everything here is real: the images are built from the Dockerfiles (hack/images.py) and loaded into
the real node's containerd (hack/realnode.py); Helm installs the chart with them (its Deployment,
ServiceAccount and RBAC; nothing runs from the checkout); the operator's pod and every executor pod
run on the real node, and results reach the operator as real termination messages.

`make e2e` runs this file; it needs root and the Debian packages `.ci/run` installs.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.shipping import CHART, REPO, helm
from tests.support import Cluster, eventually

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

RELEASE_NAMESPACE = "bentham-e2e"
OPERATOR_IMAGE = "localhost/bentham/operator"
EXECUTOR_IMAGE = "localhost/bentham/stand-in-executor:dev"
REFERENCE_EXECUTOR_IMAGE = "localhost/bentham/executor"
ON_THE_REAL_NODE: dict[str, Any] = {
    "nodeSelector": {"bentham.io/node": "real"},
    "tolerations": [{"key": "bentham.io/node", "operator": "Equal", "value": "real", "effect": "NoSchedule"}],
}

EXECUTOR_POLICY = {"default": {"tolerations": ON_THE_REAL_NODE["tolerations"], "nodeSelectorKeys": ["bentham.io/node"]}}


def chart_values(tag: str) -> list[str]:
    return [
        "--set", f"image.repository={OPERATOR_IMAGE}", "--set", f"image.tag={tag}", "--set", "image.pullPolicy=Never",
        "--set-json", f"nodeSelector={json.dumps(ON_THE_REAL_NODE['nodeSelector'])}",
        "--set-json", f"tolerations={json.dumps(ON_THE_REAL_NODE['tolerations'])}",
        "--set-json", 'watchNamespaces=["e2e-*"]', "--set", "rbac.clusterWide=true", "--set", "legalHold.enabled=false",
        # The executor policy lets studies ask for the real node, as an admin would allow a node pool.
        "--set-json", f"executorPolicy={json.dumps(EXECUTOR_POLICY)}",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def release(cluster: Cluster, real_node: str) -> Iterator[Cluster]:
    """Both images built and loaded (tags dev and dev-2), and the chart installed with `dev`."""
    built = subprocess.run(
        [sys.executable, str(REPO / "hack" / "images.py"), "build", "dev"], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr[-3000:]
    tagged = subprocess.run(
        [sys.executable, str(REPO / "hack" / "images.py"), "load", "dev", "dev-2"], capture_output=True, text=True
    )
    assert tagged.returncode == 0, tagged.stderr[-3000:]
    helm(
        "upgrade", "--install", "bentham-operator", str(CHART), "--namespace", RELEASE_NAMESPACE, "--create-namespace",
        *chart_values("dev"), "--wait", "--timeout=3m", kubeconfig=cluster.kubeconfig,
    )  # fmt: skip
    try:
        yield cluster
    finally:
        helm(
            "uninstall",
            "bentham-operator",
            "--namespace",
            RELEASE_NAMESPACE,
            kubeconfig=cluster.kubeconfig,
            check=False,
        )
        cluster.kubectl("delete", "namespace", RELEASE_NAMESPACE, "--wait=false", check=False)


@pytest.fixture
def e2e_namespace(release: Cluster) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    release.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        release.kubectl("delete", "namespace", name, "--wait=false", check=False)


def study(name: str, queries: int = 2, env: dict[str, str] | None = None, timeout_s: int = 60) -> dict[str, Any]:
    return {
        "apiVersion": "bentham.io/v1alpha1",
        "kind": "Study",
        "metadata": {"name": name},
        "spec": {
            "tenantId": "acme",
            "executor": {
                "image": EXECUTOR_IMAGE,
                "imagePullPolicy": "Never",
                "parallelism": 4,
                "attemptTimeoutSeconds": timeout_s,
                "env": [{"name": key, "value": value} for key, value in (env or {}).items()],
                **ON_THE_REAL_NODE,
            },
            "manifest": {
                "name": name,
                "queries": [{"text": f"Which running shoes are best for runner {i}?"} for i in range(queries)],
                "surfaces": [{"id": "openai-api"}, {"id": "perplexity-api"}],
                "locations": [{"id": "us-nyc"}, {"id": "uk-lon"}],
                "completionCriteria": {
                    "requiredSurfaces": {"surfaceIds": ["openai-api", "perplexity-api"]},
                    "maxRetriesPerCell": 3,
                },
            },
        },
    }


def status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return dict(
        json.loads(cluster.kubectl("get", "study", name, "-n", namespace, "-o", "json").stdout).get("status", {})
    )


def wait_complete(cluster: Cluster, namespace: str, name: str, timeout_s: int = 240) -> dict[str, Any]:
    def complete() -> dict[str, Any] | None:
        current = status(cluster, namespace, name)
        conditions = {c["type"]: c["status"] for c in current.get("conditions", [])}
        assert conditions.get("Failed") != "True", current.get("message")
        return current if conditions.get("Complete") == "True" else None

    return eventually(complete, timeout_s=timeout_s, what=f"study {name} to complete")


def job_creates(cluster: Cluster, namespace: str) -> Counter[str]:
    """Every Job created in `namespace`, by name, from the API server's audit log."""
    audit = cluster.kubeconfig.parent / "logs" / "audit.log"
    created: Counter[str] = Counter()
    for line in audit.read_text().splitlines():
        event = json.loads(line)
        target = event.get("objectRef", {})
        if (event["verb"], target.get("resource"), target.get("namespace")) == ("create", "jobs", namespace) and (
            event.get("responseStatus", {}).get("code") == 201
        ):
            created[target.get("name", "")] += 1
    return created


def events(cluster: Cluster, namespace: str) -> str:
    return cluster.kubectl("get", "events", "-n", namespace, "-o", "custom-columns=R:.reason,M:.message").stdout


def operator_pod(cluster: Cluster) -> dict[str, Any]:
    pods = json.loads(
        cluster.kubectl(
            "get", "pods", "-n", RELEASE_NAMESPACE, "-l", "app.kubernetes.io/name=bentham-operator", "-o", "json"
        ).stdout
    )["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]
    assert len(running) == 1, [p["metadata"]["name"] for p in pods]
    return dict(running[0])


def test_the_operator_runs_as_the_charts_deployment_on_the_real_node(release: Cluster, real_node: str) -> None:
    pod = operator_pod(release)
    assert pod["spec"]["nodeName"] == real_node
    assert pod["spec"]["serviceAccountName"] == "bentham-operator"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == f"{OPERATOR_IMAGE}:dev"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    (state,) = pod["status"]["containerStatuses"]
    assert state["ready"] and state["containerID"].startswith("containerd://")
    # The process itself: uid 65532, as the kubelet's `kubectl logs` shows kopf's start line.
    logs = release.kubectl("logs", "-n", RELEASE_NAMESPACE, pod["metadata"]["name"]).stdout
    assert "bentham operator started" in logs


@pytest.mark.parametrize(
    ("image", "lock"),
    [(OPERATOR_IMAGE, "requirements.lock"), (REFERENCE_EXECUTOR_IMAGE, "requirements-executor.lock")],
    ids=["operator", "reference-executor"],
)
def test_the_images_installed_versions_are_the_lock_files(
    release: Cluster, e2e_namespace: str, image: str, lock: str
) -> None:
    script = (
        "import importlib.metadata as m, json, platform\n"
        "print(json.dumps({'python': platform.python_version(),"
        " 'dists': {d.metadata['Name'].lower().replace('_', '-'): d.version for d in m.distributions()}}))"
    )
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "versions"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "v",
                            "image": f"{image}:dev",
                            "imagePullPolicy": "Never",
                            "command": ["python3", "-c", script],
                        }
                    ],
                    **ON_THE_REAL_NODE,
                }
            },
        },
    }
    release.kubectl("apply", "-n", e2e_namespace, "-f", "-", stdin=json.dumps(job))
    release.kubectl("wait", "-n", e2e_namespace, "--for=condition=Complete", "job/versions", "--timeout=90s")
    reported = json.loads(release.kubectl("logs", "-n", e2e_namespace, "job/versions").stdout)
    locked = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", (REPO / lock).read_text(), re.MULTILINE))
    installed = {name: version for name, version in reported["dists"].items() if name != "bentham-study-operator"}
    assert installed == {name.lower().replace("_", "-"): version for name, version in locked.items()}
    # The tests' Python is the image's: Debian bookworm's 3.11.
    assert reported["python"].rsplit(".", 1)[0] == ".".join(map(str, sys.version_info[:2]))


def test_a_2x2x2_study_completes_from_real_termination_messages(release: Cluster, e2e_namespace: str) -> None:
    release.kubectl("apply", "-n", e2e_namespace, "-f", "-", stdin=json.dumps(study("two-by-two")))
    final = wait_complete(release, e2e_namespace, "two-by-two")
    assert final["progress"]["summary"] == "8/8"
    # Each attempt's costUsd exists only in the stand-in's termination message: eight were read.
    assert final["cost"]["attempts"] == 8
    assert final["cost"]["totalUsd"] == pytest.approx(0.008)
    assert sorted(job_creates(release, e2e_namespace).values()) == [1] * 8


@pytest.mark.parametrize(
    ("behaviour", "reason", "timeout_s"),
    [("fail", "ExecutorError", 60), ("nothing", "MissingResult", 60), ("sleep", "ExecutorFailed", 10)],
)
def test_a_misbehaving_executor_is_judged_and_retried(
    release: Cluster, e2e_namespace: str, behaviour: str, reason: str, timeout_s: int
) -> None:
    """Its first attempt misbehaves for real (exit 1 with a result, no result, or killed by the Job's
    activeDeadlineSeconds); the operator judges it as docs/executor.md says and the retry passes."""
    env = {"STAND_IN_BEHAVIOUR": behaviour, "STAND_IN_MISBEHAVE_ATTEMPTS": "1"}
    release.kubectl("apply", "-n", e2e_namespace, "-f", "-", stdin=json.dumps(study("odd", 1, env, timeout_s)))
    final = wait_complete(release, e2e_namespace, "odd")
    assert final["progress"]["summary"] == "4/4"
    created = job_creates(release, e2e_namespace)
    assert len(created) == 8 and set(created.values()) == {1}, created  # four cells, two attempts each
    # The operator posts its events after the status write that completed the study.
    eventually(lambda: reason in events(release, e2e_namespace), what=f"an event naming {reason}")
    if behaviour == "sleep":
        failed = release.kubectl("get", "events", "-n", e2e_namespace, "--field-selector", "reason=DeadlineExceeded")
        assert "DeadlineExceeded" in failed.stdout


def test_deleting_an_executor_pod_and_the_operator_pod_mid_study_creates_no_job_twice(
    release: Cluster, e2e_namespace: str
) -> None:
    env = {"STAND_IN_DELAY_SECONDS": "4"}
    release.kubectl("apply", "-n", e2e_namespace, "-f", "-", stdin=json.dumps(study("chaos", 2, env)))
    pod = eventually(
        lambda: release.kubectl(
            "get", "pods", "-n", e2e_namespace, "--field-selector=status.phase=Running", "-o", "name"
        ).stdout.split(),
        what="an executor pod running",
    )[0]
    release.kubectl("delete", "-n", e2e_namespace, pod, "--wait=false")
    release.kubectl("delete", "pod", "-n", RELEASE_NAMESPACE, operator_pod(release)["metadata"]["name"], "--wait=false")
    final = wait_complete(release, e2e_namespace, "chaos")
    assert final["progress"]["summary"] == "8/8"
    created = job_creates(release, e2e_namespace)
    assert created and set(created.values()) == {1}, created
    assert len(created) >= 9  # the deleted pod's attempt failed and was retried under a new attempt's name


def test_helm_upgrade_to_a_new_image_tag_mid_study_loses_nothing(release: Cluster, e2e_namespace: str) -> None:
    env = {"STAND_IN_DELAY_SECONDS": "3"}
    release.kubectl("apply", "-n", e2e_namespace, "-f", "-", stdin=json.dumps(study("upgrade", 2, env)))
    eventually(lambda: status(release, e2e_namespace, "upgrade").get("state") == "executing", what="executing")
    helm(
        "upgrade", "bentham-operator", str(CHART), "--namespace", RELEASE_NAMESPACE, *chart_values("dev-2"),
        "--wait", "--timeout=3m", kubeconfig=release.kubeconfig,
    )  # fmt: skip
    try:
        assert operator_pod(release)["spec"]["containers"][0]["image"] == f"{OPERATOR_IMAGE}:dev-2"
        final = wait_complete(release, e2e_namespace, "upgrade")
        assert final["progress"]["summary"] == "8/8"
        assert final["cost"]["attempts"] == 8
        assert set(job_creates(release, e2e_namespace).values()) == {1}
    finally:
        helm("upgrade", "bentham-operator", str(CHART), "--namespace", RELEASE_NAMESPACE, *chart_values("dev"),
             "--wait", "--timeout=3m", kubeconfig=release.kubeconfig)  # fmt: skip
