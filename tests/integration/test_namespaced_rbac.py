"""The chart's namespaced RBAC (watchNamespaces) on the local control plane: no cluster-wide grant on
Studies, Jobs, pods, Events or Secrets, and an operator under it that serves its namespaces only.

kubectl impersonates the chart's ServiceAccount (`--as`, with the groups its token carries); the
operator itself runs with a token of that ServiceAccount (tests/shipping.py says why not `as:`).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kubernetes import client

from bench.operator_process import free_port, start_operator
from tests.shipping import chart_operator_identity, chart_release, stop_operator_after_cleanup
from tests.support import Cluster, Studies, eventually, namespace_for_test, study

# What a tenant's namespace holds that the operator must reach only where it is told to.
TENANT_RESOURCES = {
    "jobs.batch",
    "pods",
    "events",
    "events.events.k8s.io",
    "secrets",
    "studies.bentham.io",
    "studies.bentham.io/status",
    "studies.bentham.io/finalizers",
    "*.*",
    "*",
}
ROW = re.compile(r"^(\S+)\s+\[[^]]*\]\s+\[[^]]*\]\s+\[([^]]*)\]$")


def can_i_list(cluster: Cluster, namespace: str, *identity: str) -> dict[str, set[str]]:
    """`kubectl auth can-i --list -n namespace` as `identity` (kubectl flags): the verbs on each resource.

    In a namespace that holds no Role of the identity, everything listed is granted cluster-wide.
    """
    listed = cluster.kubectl("auth", "can-i", "--list", "-n", namespace, *identity).stdout
    grants: dict[str, set[str]] = {}
    for line in listed.splitlines()[1:]:
        row = ROW.match(line.strip())
        if row:  # a resource's row; non-resource URLs start with their (empty) resource column
            grants.setdefault(row[1], set()).update(row[2].split())
    return grants


def impersonating(release_namespace: str) -> tuple[str, ...]:
    """kubectl's flags to act as the chart's ServiceAccount, groups included, as its token would."""
    return (
        f"--as=system:serviceaccount:{release_namespace}:bentham-operator",
        "--as-group=system:serviceaccounts",
        f"--as-group=system:serviceaccounts:{release_namespace}",
        "--as-group=system:authenticated",
    )


def on_tenants(grants: dict[str, set[str]]) -> dict[str, set[str]]:
    return {resource: verbs for resource, verbs in grants.items() if resource in TENANT_RESOURCES}


def test_namespaced_chart_grants_no_cluster_wide_job_pod_event_or_secret_permission(
    study_crd: Cluster, tmp_path: Path
) -> None:
    with (
        namespace_for_test(study_crd, "u-rbac") as release,
        namespace_for_test(study_crd, "u-rbac-a") as tenant_a,
        namespace_for_test(study_crd, "u-rbac-b") as tenant_b,
        namespace_for_test(study_crd, "u-rbac-elsewhere") as elsewhere,
        chart_operator_identity(
            study_crd,
            release,
            [tenant_a, tenant_b],
            tmp_path / "kubeconfig",
            rbac={"secretAccess": {"namespaces": [tenant_a]}},
        ) as token,
    ):
        as_chart = impersonating(release)
        with_token = (f"--kubeconfig={token}",)
        for identity in (as_chart, with_token):
            assert on_tenants(can_i_list(study_crd, elsewhere, *identity)) == {}
            assert on_tenants(can_i_list(study_crd, release, *identity)) == {}
        for verb, resource in (("create", "jobs"), ("list", "pods"), ("create", "events"), ("get", "secrets")):
            everywhere = study_crd.kubectl("auth", "can-i", verb, resource, "--all-namespaces", *as_chart, check=False)
            assert everywhere.stdout.strip() == "no", (verb, resource)

        served = can_i_list(study_crd, tenant_a, *as_chart)
        assert on_tenants(served) == {
            "studies.bentham.io": {"list", "watch"},
            "studies.bentham.io/status": {"patch"},
            "studies.bentham.io/finalizers": {"update"},
            "jobs.batch": {"list", "watch", "create", "deletecollection"},
            "pods": {"list"},
            "events": {"create"},
            "secrets": {"get"},
        }
        assert on_tenants(can_i_list(study_crd, tenant_b, *as_chart)) == {
            resource: verbs for resource, verbs in on_tenants(served).items() if resource != "secrets"
        }
        # Cluster-wide, only what kopf must see to follow the Study CRD and the watched namespaces.
        assert can_i_list(study_crd, elsewhere, *as_chart)["customresourcedefinitions.apiextensions.k8s.io"] == {
            "list",
            "watch",
        }
        assert can_i_list(study_crd, elsewhere, *as_chart)["namespaces"] == {"list", "watch"}


def test_chart_watching_every_namespace_grants_jobs_pods_and_events_cluster_wide(study_crd: Cluster) -> None:
    """The other mode, and proof that the listing above would show a cluster-wide grant."""
    with (
        namespace_for_test(study_crd, "u-rbac-all") as release,
        namespace_for_test(study_crd, "u-rbac-elsewhere") as elsewhere,
        chart_release(study_crd, release, {"replicas": 0, "legalHold": {"enabled": False}}),
    ):
        grants = on_tenants(can_i_list(study_crd, elsewhere, *impersonating(release)))

    assert grants["jobs.batch"] == {"list", "watch", "create", "deletecollection"}
    assert grants["pods"] == {"list"} and grants["events"] == {"create"}
    assert "secrets" not in grants


def test_operator_under_namespaced_rbac_serves_its_namespace_and_no_other_and_survives_a_forbidden_one(
    study_crd: Cluster, tmp_path: Path
) -> None:
    """Told to watch a namespace without its Role, the operator leaves that one out instead of failing them all.

    (kopf would retry the refused watch for about a minute, serving no study anywhere, then exit.)
    """
    with (
        namespace_for_test(study_crd, "u-rbac") as release,
        namespace_for_test(study_crd, "u-rbac-served") as served,
        namespace_for_test(study_crd, "u-rbac-norole") as forbidden,
        namespace_for_test(study_crd, "u-rbac-unwatched") as unwatched,
        chart_operator_identity(study_crd, release, [served], tmp_path / "kubeconfig") as token,
    ):
        tenants = {namespace: Studies(study_crd, namespace) for namespace in (served, forbidden, unwatched)}
        for studies in tenants.values():
            studies.create(study("tenant-study", queries=2))
        operator = start_operator(
            study_crd.kubeconfig,
            tmp_path / "operator.log",
            "--namespace",
            served,
            "--namespace",
            forbidden,
            env={"KUBECONFIG": str(token)},
        )
        try:
            status = tenants[served].wait_for_state("tenant-study", "complete", "failed", timeout_s=90)
            eventually(lambda: not tenants[served].jobs("tenant-study"), what="the finished Jobs to be deleted")
            alive = operator.process.poll() is None
        finally:
            stop_operator_after_cleanup(operator)

        assert status["state"] == "complete", status.get("message")
        assert alive, operator.log_tail()
        events = client.CoreV1Api(study_crd.api)
        for namespace in (forbidden, unwatched):
            studies = tenants[namespace]
            assert studies.status("tenant-study") == {}, namespace
            assert studies.batch.list_namespaced_job(namespace).items == [], namespace
            assert events.list_namespaced_event(namespace).items == [], namespace

    log = operator.log.read_text()
    assert f"not serving namespace {forbidden}: this identity may not list studies.bentham.io" in log
    assert unwatched not in log
    for refusal in ("forbidden", "not enough permissions"):  # an API call refused: an ApiException, kopf's warnings
        assert refusal not in log.lower(), operator.log_tail()


@contextmanager
def apiserver_enforcing_owner_references(cluster: Cluster, workdir: Path) -> Iterator[int]:
    """A second API server of the local control plane (its flags, its etcd) with OwnerReferencesPermissionEnforcement,
    the admission plugin OpenShift turns on; yields its port. Everything else (kwok, the Job controller) goes on
    through the first."""
    run_dir = cluster.kubeconfig.parent / "run"
    if not run_dir.is_dir():
        pytest.skip("the cluster was given by --kubeconfig; its API server's flags are not ours to copy")
    pid = int((run_dir / "kube-apiserver.pid").read_text())
    flags = [arg.decode() for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if arg]
    port = free_port()
    argv = [flag for flag in flags if not flag.startswith(("--secure-port=", "--cert-dir=", "--audit-"))]
    argv += [
        f"--secure-port={port}",
        f"--cert-dir={workdir}",
        "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
    ]
    with open(workdir / "kube-apiserver.log", "wb") as log:
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        admin = through(cluster.kubeconfig, port, workdir / "admin.kubeconfig")
        eventually(
            lambda: Cluster(admin, cluster.api).kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
            timeout_s=60,
            what="the second API server to be ready",
        )
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def through(kubeconfig: Path, port: int, path: Path) -> Path:
    """A copy of a (JSON) kubeconfig whose cluster is reached on `port` of 127.0.0.1 instead."""
    config = json.loads(kubeconfig.read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path.write_text(json.dumps(config))
    return path


def test_charts_rbac_creates_jobs_where_owner_references_permission_enforcement_is_on(
    study_crd: Cluster, tmp_path: Path
) -> None:
    """Each Job's ownerReference blocks its Study's deletion, which that plugin allows only to who may update
    studies/finalizers: without that rule every Job create would be refused."""
    with (
        namespace_for_test(study_crd, "u-rbac") as release,
        namespace_for_test(study_crd, "u-rbac-owners") as served,
        chart_operator_identity(study_crd, release, [served], tmp_path / "kubeconfig") as token,
        apiserver_enforcing_owner_references(study_crd, tmp_path) as port,
    ):
        studies = Studies(study_crd, served)
        owner = studies.create(study("owned", queries=2))
        # The plugin is on: an identity that may create Jobs but not update studies/finalizers is refused.
        study_crd.kubectl("create", "role", "jobs-only", "-n", served, "--verb=create", "--resource=jobs.batch")
        study_crd.kubectl("create", "rolebinding", "jobs-only", "-n", served, "--role=jobs-only", "--user=jobs-only")
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "blocks-its-owner",
                "ownerReferences": [
                    {
                        "apiVersion": owner["apiVersion"],
                        "kind": "Study",
                        "name": "owned",
                        "uid": owner["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}},
        }
        enforcing = Cluster(tmp_path / "admin.kubeconfig", study_crd.api)
        refused = enforcing.kubectl(
            "create", "-n", served, "--as=jobs-only", "-f", "-", stdin=json.dumps(job), check=False
        )
        assert "cannot set blockOwnerDeletion" in refused.stderr, refused.stderr

        operator = start_operator(
            study_crd.kubeconfig,
            tmp_path / "operator.log",
            "--namespace",
            served,
            env={"KUBECONFIG": str(through(token, port, tmp_path / "operator.kubeconfig"))},
        )
        try:
            status = studies.wait_for_state("owned", "complete", "failed", timeout_s=90)
        finally:
            stop_operator_after_cleanup(operator)

    assert status["state"] == "complete", status.get("message")
    assert "forbidden" not in operator.log.read_text().lower(), operator.log_tail()
