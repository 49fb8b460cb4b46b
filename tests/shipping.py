"""Helpers for the tests of what we ship: Helm (built by hack/helm.py), strict schema validation,
and running as the chart's ServiceAccount."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from kubernetes import client, config

from bench.operator_process import OperatorProcess
from tests.support import Cluster

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "bentham-operator"
# The local control plane's release; kubernetes-validate has strict schemas up to it.
KUBERNETES_VERSION = "1.37"


def locked_versions(lock: str) -> dict[str, str]:
    """The versions a lock file pins, by normalised name, from its lines `name==version \\`
    (`name==version ; sys_platform != "win32" \\` when the requirement has an environment marker)."""
    text = (REPO / lock).read_text()
    return {
        name.lower().replace("_", "-"): version
        for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)(?: ;[^\\\n]*)? \\$", text, re.MULTILINE)
    }


@functools.cache
def helm_binary() -> Path:
    """Helm at the version pinned in hack/helm/go.mod, built once and cached like the control plane."""
    built = subprocess.run([sys.executable, str(REPO / "hack" / "helm.py"), "build"], capture_output=True, text=True)
    if built.returncode != 0:
        raise AssertionError(f"hack/helm.py build failed:\n{built.stderr[-3000:]}")
    return Path(built.stdout.strip().splitlines()[-1])


def helm(
    *args: str, kubeconfig: Path | None = None, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    command = [str(helm_binary()), *args]
    if kubeconfig is not None:
        command.append(f"--kubeconfig={kubeconfig}")
    result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=180)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def render_chart(values: Mapping[str, Any], namespace: str = "bentham-system", *extra: str) -> list[dict[str, Any]]:
    """`helm template` of the chart with these values: every object, CRD included."""
    rendered = helm(
        "template",
        "bentham-operator",
        str(CHART),
        "--namespace",
        namespace,
        "--include-crds",
        "--values",
        "-",
        *extra,
        stdin=json.dumps(dict(values)),
    )
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def kustomize(directory: Path) -> list[dict[str, Any]]:
    built = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True)
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


def strict_schema_errors(documents: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every document checked against Kubernetes' own schema, strictly (unknown fields are errors)."""
    errors = []
    for document in documents:
        try:
            kubernetes_validate.validate(dict(document), KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            name = f"{document.get('kind')}/{(document.get('metadata') or {}).get('name')}"
            errors.append(f"{name}: {error.message} at {'/'.join(map(str, error.path))}")
    return errors


def only(documents: Iterable[Mapping[str, Any]], kind: str) -> list[Mapping[str, Any]]:
    return [document for document in documents if document.get("kind") == kind]


def rule_set(rules: Iterable[Mapping[str, Any]]) -> set[tuple[str, str, str, str]]:
    """RBAC rules as (apiGroup, resource, resourceName, verb) grants, to compare regardless of layout."""
    return {
        (group, resource, name, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for name in rule.get("resourceNames") or ["*"]
        for verb in rule.get("verbs", [])
    }


@contextmanager
def chart_release(cluster: Cluster, namespace: str, values: Mapping[str, Any], *extra: str) -> Iterator[str]:
    """The chart installed in `namespace` (the CRD is already installed: --skip-crds); uninstalled afterwards."""
    release = "bentham-operator"
    helm(
        "install",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--skip-crds",
        "--values",
        "-",
        *extra,
        kubeconfig=cluster.kubeconfig,
        stdin=json.dumps(dict(values)),
    )
    try:
        yield release
    finally:
        helm("uninstall", release, "--namespace", namespace, "--wait", kubeconfig=cluster.kubeconfig, check=False)


def serviceaccount_kubeconfig(cluster: Cluster, namespace: str, service_account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount with a short-lived token (TokenRequest).

    Not kubeconfig impersonation (`users[].user.as`): kubectl honours it, but the Python client
    (and so kopf, which takes its credentials from it) ignores it and would run as the admin.
    """
    token = cluster.kubectl("create", "token", service_account, "-n", namespace, "--duration=1h").stdout.strip()
    admin = json.loads(cluster.kubeconfig.read_text())
    cluster_entry = admin["clusters"][0]
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster_entry],
                "users": [{"name": service_account, "user": {"token": token}}],
                "contexts": [
                    {"name": service_account, "context": {"cluster": cluster_entry["name"], "user": service_account}}
                ],
                "current-context": service_account,
            }
        )
    )
    return path


@contextmanager
def chart_operator_identity(
    cluster: Cluster, release_namespace: str, watched: Sequence[str], path: Path, **values: Any
) -> Iterator[Path]:
    """The chart in `release_namespace`, watching `watched` (namespaced RBAC: a Role in each), and a
    kubeconfig at `path` that authenticates as its ServiceAccount, to run the operator with exactly
    the chart's permissions.

    Zero replicas (the operator runs as a local process) and no legal-hold policy (cluster-wide,
    and beside the point); `values` add to these.
    """
    chart_values = {"replicas": 0, "legalHold": {"enabled": False}, "watchNamespaces": list(watched), **values}
    with chart_release(cluster, release_namespace, chart_values):
        yield serviceaccount_kubeconfig(cluster, release_namespace, "bentham-operator", path)


def username(kubeconfig: Path) -> str:
    """Who the Python client is, as the API server sees it (a SelfSubjectReview)."""
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        review = client.AuthenticationV1Api(api).create_self_subject_review(client.V1SelfSubjectReview())
        return str(review.status.user_info.username)
    finally:
        api.close()


def stop_operator_after_cleanup(operator: OperatorProcess, timeout_s: float = 15) -> None:
    """SIGTERM, then SIGKILL once kopf's cleanup has run, if the process has not exited by then.

    The operator finishes its cleanup at once but may not exit for minutes: kopf waits for its
    stop flag (a threading.Event) in an executor thread that nothing releases on a signal, and
    asyncio waits for that thread at exit. Killing it after the cleanup changes nothing it would do.
    """
    operator.process.terminate()
    deadline = time.monotonic() + timeout_s
    while operator.process.poll() is None and time.monotonic() < deadline:
        if "Activity 'stop' succeeded" in operator.log.read_text(errors="replace"):
            time.sleep(0.5)  # a moment to flush its last lines
            break
        time.sleep(0.1)
    if operator.process.poll() is None:
        operator.process.kill()
    operator.process.wait()


def touch_namespace(cluster: Cluster, namespace: str) -> None:
    """Makes a running operator notice a namespace created while it was starting.

    kopf lists namespaces, then starts a watch that lists them again and ignores that second
    listing; a namespace created between the two is not served until it changes. A label is a change.
    """
    patch = {"metadata": {"labels": {"bentham.io/touched": "true"}}}
    client.CoreV1Api(cluster.api).patch_namespace(namespace, patch)
