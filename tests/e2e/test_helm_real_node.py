"""End to end: the chart installs the operator's own image, which runs studies of real executor pods.

Everything here is real: the images are built from the Dockerfiles (hack/images.py) and loaded into
the real node's containerd (hack/realnode.py); Helm installs the chart with them (its Deployment,
ServiceAccount and RBAC; nothing runs from the checkout); the operator's pod and every executor pod
run on the real node, and results reach the operator as real termination messages.

`make e2e` runs this file; it needs root and the Debian packages `.ci/run` installs.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, watch

from tests.executor.dialects import ANTHROPIC, OPENAI
from tests.executor.servers import RecordingProxy, WireService
from tests.shipping import CHART, REPO, helm, locked_versions
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

EXECUTOR_POLICY = {
    "default": {
        "tolerations": ON_THE_REAL_NODE["tolerations"],
        "nodeSelectorKeys": ["bentham.io/node"],
        "volumeClaims": ["evidence"],
    }
}


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
    installed = {name: version for name, version in reported["dists"].items() if name != "bentham-study-operator"}
    assert installed == locked_versions(lock)
    # The tests' Python is the image's: Debian bookworm's 3.11.
    assert reported["python"].rsplit(".", 1)[0] == ".".join(map(str, sys.version_info[:2]))


def test_a_2x2x2_study_completes_from_real_termination_messages(release: Cluster, e2e_namespace: str) -> None:
    release.kubectl("apply", "-n", e2e_namespace, "-f", "-", stdin=json.dumps(study("two-by-two")))
    final = wait_complete(release, e2e_namespace, "two-by-two")
    assert final["progress"]["summary"] == "8/8"
    # Each attempt's costUsd exists only in the stand-in's termination message: eight were read.
    assert final["cost"]["attempts"] == 8
    assert final["cost"]["totalMicroUsd"] == 8 * 1_000 and final["cost"]["totalUsd"] == 0.008
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


# The real node's bridge address (hack/realnode.py NODE_IP): its pods reach the host there.
NODE_BRIDGE_ADDRESS = "10.234.0.1"


def evidence_volume(cluster: Cluster, namespace: str, folder: Path) -> None:
    """A static PersistentVolume on `folder` of this machine (the real node) and the claim `evidence` bound to it.

    There is no storage provisioner here; the pod mounts only the claim, so `restricted` holds.
    """
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)  # the executor runs as 65532; a hostPath gets no fsGroup
    volume = f"evidence-{namespace}"
    objects = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": str(folder), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": "evidence"},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "evidence", "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": volume,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    ]
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))
    cluster.kubectl("wait", "-n", namespace, "--for=jsonpath={.status.phase}=Bound", "pvc/evidence", "--timeout=60s")


def watch_results(cluster: Cluster, namespace: str, results: dict[str, dict[str, Any]], stop: threading.Event) -> None:
    """Every executor pod's termination message, by pod, as the kubelet reports it (before the operator deletes it)."""
    core = client.CoreV1Api(cluster.api)
    while not stop.is_set():
        for event in watch.Watch().stream(core.list_namespaced_pod, namespace, timeout_seconds=5):
            pod = event["object"]
            for container in pod.status.container_statuses or []:
                ended = container.state.terminated if container.state else None
                if ended is not None and ended.message:
                    results[pod.metadata.name] = json.loads(ended.message)


def test_an_api_study_of_the_reference_executor_runs_on_the_real_node_with_its_evidence_on_a_volume(
    release: Cluster, e2e_namespace: str, tmp_path: Path
) -> None:
    namespace, evidence = e2e_namespace, tmp_path / "evidence"
    evidence_volume(release, namespace, evidence)
    keys = {OPENAI.surface: "sk-openai-e2e", ANTHROPIC.surface: "sk-ant-e2e"}
    secret = {"metadata": {"name": "answer-engine-keys"}, "stringData": keys, "type": "Opaque"}
    client.CoreV1Api(release.api).create_namespaced_secret(namespace, secret)
    through: list[tuple[str, str, str]] = []
    results: dict[str, dict[str, Any]] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=watch_results, args=(release, namespace, results, stop), daemon=True)
    watcher.start()
    with ExitStack() as stack:
        services = {
            d.surface: stack.enter_context(WireService(NODE_BRIDGE_ADDRESS).running()) for d in (OPENAI, ANTHROPIC)
        }
        services[OPENAI.surface].script(OPENAI.good("Try Brooks."))
        services[ANTHROPIC.surface].script(ANTHROPIC.good("Hoka and ASICS make good ones."))
        proxies = {
            location: stack.enter_context(RecordingProxy(location, through, NODE_BRIDGE_ADDRESS).running()).url
            for location in ("us-nyc", "uk-lon")
        }
        body = study("answers")
        body["spec"]["manifest"]["surfaces"] = [{"id": OPENAI.surface}, {"id": ANTHROPIC.surface}]
        body["spec"]["manifest"]["completionCriteria"]["requiredSurfaces"]["surfaceIds"] = list(keys)
        body["spec"]["manifest"]["evidenceLevel"] = "full"
        executor = body["spec"]["executor"]
        executor["image"] = f"{REFERENCE_EXECUTOR_IMAGE}:dev"
        executor["volumes"] = [
            {"name": "evidence", "mountPath": "/evidence", "persistentVolumeClaim": {"claimName": "evidence"}}
        ]
        executor["env"] = [
            *(
                {
                    "name": d.key_variable,
                    "valueFrom": {"secretKeyRef": {"name": "answer-engine-keys", "key": d.surface}},
                }
                for d in (OPENAI, ANTHROPIC)
            ),
            *({"name": d.base_url_variable, "value": d.base_url(services[d.surface].url)} for d in (OPENAI, ANTHROPIC)),
            {"name": "BENTHAM_PROXY_MAP", "value": json.dumps(proxies)},
        ]
        release.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(body))
        try:
            final = wait_complete(release, namespace, "answers")
            eventually(lambda: len(results) >= 8 or None, timeout_s=30, what="every attempt's termination message")
        finally:
            stop.set()

    passed = [message for message in results.values() if message["success"]]
    assert len(passed) == 8, results
    uid = json.loads(release.kubectl("get", "study", "answers", "-n", namespace, "-o", "json").stdout)["metadata"][
        "uid"
    ]
    for message in passed:
        # Each document is on the volume under the study's uid, and its digest is the stored bytes'.
        [reference] = message["evidence"]
        relative = reference["url"].removeprefix("file:///evidence/")
        stored = (evidence / relative).read_bytes()
        assert relative.startswith(f"answers/{uid}/")
        assert hashlib.sha256(stored).hexdigest() == reference["sha256"]
        assert json.loads(stored)["response"], "evidence level full keeps the whole response"
    # status.cost is exactly the sum of what the attempts reported, carried in whole micro-dollars.
    reported = sum((Decimal(repr(message["costUsd"])).scaleb(6) for message in passed), Decimal(0))
    assert final["cost"]["totalMicroUsd"] == reported == int(reported) and final["cost"]["attempts"] == 8
    assert Decimal(repr(final["cost"]["totalUsd"])).scaleb(6) == reported
    # Each call left its pod through its location's proxy, and the keys came from the Secret.
    assert sorted(location for location, _, _ in through) == sorted(["us-nyc", "uk-lon"] * 4)
    for dialect in (OPENAI, ANTHROPIC):
        sent = [" ".join(request.headers.values()) for request in services[dialect.surface].received]
        assert len(sent) == 4 and all(keys[dialect.surface] in headers for headers in sent)
