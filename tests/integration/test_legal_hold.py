"""Legal hold, enforced by the API server's own admission (a ValidatingAdmissionPolicy), with no operator running.

The policy is installed as `make run` installs it (`make install-api`, manifests/legal-hold.yaml),
or as the chart ships it. People are played with kubectl impersonation (`--as`, `--as-group`),
which the admin certificate may use; each is given the same RBAC on Studies, so that only their
groups differ and every refusal below is the policy's, not RBAC's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from bench.operator_process import start_operator
from tests.shipping import REPO, chart_release, serviceaccount_kubeconfig, stop_operator_after_cleanup
from tests.support import Cluster, Studies, eventually, namespace_for_test, study

POLICY_FILE = REPO / "manifests" / "legal-hold.yaml"
PLAIN_POLICY = "bentham-operator-legal-hold"
LEGAL_GROUP = "bentham:legal"

TENANT = ("--as=tenant-ann", "--as-group=acme-tenants")
COUNSEL = ("--as=counsel-lee", f"--as-group={LEGAL_GROUP}")
LIFT = json.dumps({"spec": {"manifest": {"legalHold": False}}})


def policy_exists(cluster: Cluster, name: str) -> bool:
    found = cluster.kubectl("get", "validatingadmissionpolicy", name, "--ignore-not-found", "-o", "name")
    return bool(found.stdout.strip())


@pytest.fixture(scope="module")
def make_run_policy(study_crd: Cluster) -> Iterator[Cluster]:
    """The cluster with the policy installed by `make install-api`, the target `make run` runs first.

    Removed afterwards, unless it was there before (someone ran `make run` on this cluster).
    """
    was_there = policy_exists(study_crd, PLAIN_POLICY)
    installed = subprocess.run(
        ["make", "--no-print-directory", "install-api"],
        cwd=REPO,
        env={**os.environ, "KUBECONFIG": str(study_crd.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "manifests/legal-hold.yaml" in installed.stdout, "make install-api applies the policy"
    assert policy_exists(study_crd, PLAIN_POLICY)
    try:
        yield study_crd
    finally:
        if not was_there:
            study_crd.kubectl("delete", "-f", str(POLICY_FILE), "--ignore-not-found")


def grant_studies(cluster: Cluster, namespace: str, *users: str) -> None:
    """What a tenant's people usually have on Studies in their namespace: everything."""
    verbs = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "study-editor", "namespace": namespace},
        "rules": [{"apiGroups": ["bentham.io"], "resources": ["studies"], "verbs": verbs}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "study-editors", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "study-editor"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user} for user in users],
    }
    cluster.kubectl(
        "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": [role, binding]})
    )


@pytest.fixture
def tenant_namespace(make_run_policy: Cluster, unwatched_namespace: str) -> str:
    """A namespace no operator serves, where the tenant and counsel may do anything to Studies."""
    grant_studies(make_run_policy, unwatched_namespace, "tenant-ann", "counsel-lee")
    return unwatched_namespace


def held(name: str, **manifest: Any) -> dict[str, Any]:
    return study(name, queries=1, locations=("us-nyc",), legalHold=True, retentionDays=2555, **manifest)


def legal_hold_of(cluster: Cluster, namespace: str, name: str) -> Any:
    return Studies(cluster, namespace).get(name)["spec"]["manifest"]["legalHold"]


def exists(cluster: Cluster, namespace: str, name: str) -> bool:
    found = cluster.kubectl("get", "study", name, "-n", namespace, "--ignore-not-found", "-o", "name")
    return bool(found.stdout.strip())


def refusal(cluster: Cluster, *args: str) -> str | None:
    """The API server's refusal of a kubectl command, tried as a server-side dry run; None if it would be allowed.

    A dry run passes through admission like the real request, and changes nothing: a policy just
    installed acts within a moment, and this is how the tests wait for it.
    """
    tried = cluster.kubectl(*args, "--dry-run=server", check=False)
    return tried.stderr if tried.returncode != 0 else None


def delete_refused(cluster: Cluster, namespace: str, name: str) -> str | None:
    """The refusal of a delete of the study (dry run), or None if the API server would allow it."""
    return refusal(cluster, "delete", "study", name, "-n", namespace)


@contextmanager
def lifted_afterwards(
    cluster: Cluster, namespace: str, *names: str, counsel: tuple[str, ...] = COUNSEL
) -> Iterator[None]:
    """Lifts the holds of these studies when the block ends however it ends: a held study would keep
    its namespace Terminating for as long as a legal-hold policy is installed."""
    try:
        yield
    finally:
        for name in names:
            if exists(cluster, namespace, name):
                cluster.kubectl(*counsel, "patch", "study", name, "-n", namespace, "--type=merge", "-p", LIFT)


def lift_command(refusal: str) -> list[str]:
    """The `kubectl patch ...` that a delete's refusal tells the legal group to run, as arguments after `kubectl`."""
    found = re.search(r"must first lift the hold: (kubectl .*)$", refusal.strip())
    assert found, refusal
    command = shlex.split(found.group(1))
    assert command[0] == "kubectl"
    return command[1:]


def test_deleting_a_held_study_is_refused_naming_the_hold_and_how_to_lift_it(
    make_run_policy: Cluster, tenant_namespace: str
) -> None:
    cluster, namespace = make_run_policy, tenant_namespace
    Studies(cluster, namespace).create(held("evidence"))
    with lifted_afterwards(cluster, namespace, "evidence"):
        eventually(lambda: delete_refused(cluster, namespace, "evidence"), timeout_s=30, what="the policy to act")

        for who in ((), TENANT, COUNSEL):  # the admin, the tenant, even the legal group: lift first
            refused = cluster.kubectl(*who, "delete", "study", "evidence", "-n", namespace, check=False)
            assert refused.returncode != 0
            assert f"ValidatingAdmissionPolicy '{PLAIN_POLICY}'" in refused.stderr, refused.stderr
            assert f"Study evidence in namespace {namespace} is under legal hold" in refused.stderr
            assert "(spec.manifest.legalHold: true) and cannot be deleted" in refused.stderr
            assert f"a member of group {LEGAL_GROUP} must first lift the hold" in refused.stderr
        # A delete of every study in the namespace (deletecollection) is refused item by item.
        everything = cluster.kubectl(*TENANT, "delete", "studies", "--all", "-n", namespace, check=False)
        assert everything.returncode != 0
        assert "is under legal hold" in everything.stderr

        assert exists(cluster, namespace, "evidence")
        assert legal_hold_of(cluster, namespace, "evidence") is True


def test_only_the_legal_group_lifts_a_hold_and_then_the_study_deletes(
    make_run_policy: Cluster, tenant_namespace: str
) -> None:
    cluster, namespace = make_run_policy, tenant_namespace
    Studies(cluster, namespace).create(held("evidence"))
    with lifted_afterwards(cluster, namespace, "evidence"):
        first_refusal = eventually(
            lambda: delete_refused(cluster, namespace, "evidence"), timeout_s=30, what="the policy"
        )

        # The tenant may not lift it, by any kind of patch; the admin, outside the group, neither.
        removal = json.dumps([{"op": "remove", "path": "/spec/manifest/legalHold"}])
        for who, patch_type, patch in (
            (TENANT, "merge", LIFT),
            (TENANT, "json", removal),
            ((), "merge", LIFT),
        ):
            tried = cluster.kubectl(
                *who, "patch", "study", "evidence", "-n", namespace, f"--type={patch_type}", "-p", patch, check=False
            )
            assert tried.returncode != 0, f"{who} {patch}: {tried.stdout}"
            assert f"Study evidence in namespace {namespace} is under legal hold" in tried.stderr, tried.stderr
            assert f"only a member of group {LEGAL_GROUP} may lift it" in tried.stderr
            user = who[0].removeprefix("--as=") if who else "bentham-admin"
            assert f"and {user} is not one" in tried.stderr
        assert legal_hold_of(cluster, namespace, "evidence") is True

        # Every other update of a held study goes through: the tenant pauses it and edits it.
        edit = json.dumps({"spec": {"paused": True, "manifest": {"description": "still held"}}})
        cluster.kubectl(*TENANT, "patch", "study", "evidence", "-n", namespace, "--type=merge", "-p", edit)
        assert Studies(cluster, namespace).get("evidence")["spec"]["paused"] is True

        # Counsel runs the command the delete's refusal gave, and the study is deletable.
        cluster.kubectl(*COUNSEL, *lift_command(first_refusal))
        assert legal_hold_of(cluster, namespace, "evidence") is False
        cluster.kubectl(*TENANT, "delete", "study", "evidence", "-n", namespace, "--wait=true", "--timeout=30s")
        assert not exists(cluster, namespace, "evidence")


def test_a_study_without_a_hold_deletes_and_anyone_may_put_a_hold_on(
    make_run_policy: Cluster, tenant_namespace: str
) -> None:
    cluster, namespace = make_run_policy, tenant_namespace
    studies = Studies(cluster, namespace)
    studies.create(study("plain", queries=1, locations=("us-nyc",)))
    studies.create(study("held-later", queries=1, locations=("us-nyc",), retentionDays=2555))
    with lifted_afterwards(cluster, namespace, "held-later"):
        hold = json.dumps({"spec": {"manifest": {"legalHold": True}}})
        cluster.kubectl(*TENANT, "patch", "study", "held-later", "-n", namespace, "--type=merge", "-p", hold)
        eventually(lambda: delete_refused(cluster, namespace, "held-later"), timeout_s=30, what="the policy to act")

        cluster.kubectl(*TENANT, "delete", "study", "plain", "-n", namespace, "--wait=true", "--timeout=30s")
        assert not exists(cluster, namespace, "plain")
        assert exists(cluster, namespace, "held-later")


def test_the_chart_ships_the_policy_with_its_group_and_the_operator_writes_a_held_studys_status(
    study_crd: Cluster, tmp_path: Path
) -> None:
    """The chart's own policy, with another group, and the operator run as the chart's ServiceAccount.

    Another group, so that a refusal naming it can only be the chart's policy, whatever else is installed.
    """
    counsel_group = "acme:counsel"
    both = ("--as=counsel-lee", f"--as-group={LEGAL_GROUP}", f"--as-group={counsel_group}")
    with (
        namespace_for_test(study_crd, "u-hold-chart") as release_namespace,
        namespace_for_test(study_crd, "u-hold-studies") as namespace,
    ):
        values = {"replicas": 0, "watchNamespaces": [namespace], "legalHold": {"group": counsel_group}}
        grant_studies(study_crd, namespace, "counsel-lee")
        with chart_release(study_crd, release_namespace, values):
            policy = f"{release_namespace}.bentham-operator-legal-hold"
            assert policy_exists(study_crd, policy)
            studies = Studies(study_crd, namespace)
            studies.create(held("evidence"))
            with lifted_afterwards(study_crd, namespace, "evidence", counsel=both):
                # Counsel of the default group only is not the legal group here. (Wait for the
                # chart's policy: another one, from make install-api, may be acting already.)
                lift = ("patch", "study", "evidence", "-n", namespace, "--type=merge", "-p", LIFT)
                eventually(
                    lambda: counsel_group in (refusal(study_crd, *COUNSEL, *lift) or ""),
                    timeout_s=30,
                    what="the chart's policy to act",
                )
                refused = study_crd.kubectl(*COUNSEL, *lift, check=False)
                assert refused.returncode != 0
                assert f"ValidatingAdmissionPolicy '{policy}'" in refused.stderr, refused.stderr
                assert f"only a member of group {counsel_group} may lift it" in refused.stderr

                # The operator, as the chart's ServiceAccount, runs the held study to the end: its
                # status writes (the status subresource) never meet the policy.
                identity = serviceaccount_kubeconfig(study_crd, release_namespace, "bentham-operator", tmp_path / "kc")
                operator = start_operator(
                    study_crd.kubeconfig,
                    tmp_path / "operator.log",
                    "--namespace",
                    namespace,
                    env={"KUBECONFIG": str(identity)},
                )
                core = client.CoreV1Api(study_crd.api)

                def event_reasons() -> set[str]:
                    selector = "involvedObject.name=evidence"
                    return {
                        event.reason for event in core.list_namespaced_event(namespace, field_selector=selector).items
                    }

                try:
                    status = studies.wait_for_state("evidence", "complete", "failed", timeout_s=90)
                    # The status is written first, then the Events are posted.
                    eventually(lambda: {"Started", "Completed"} <= event_reasons(), timeout_s=30, what="the Events")
                finally:
                    stop_operator_after_cleanup(operator)
                assert status["state"] == "complete", status.get("message")
                log = operator.log.read_text()
                for word in ("forbidden", "not enough permissions", "validatingadmissionpolicy"):
                    assert word not in log.lower(), operator.log_tail()
                assert legal_hold_of(study_crd, namespace, "evidence") is True

                # A member of both groups satisfies the chart's policy and any other installed.
                study_crd.kubectl(*both, *lift)
                study_crd.kubectl("delete", "study", "evidence", "-n", namespace, "--wait=true", "--timeout=30s")
                assert not exists(study_crd, namespace, "evidence")
