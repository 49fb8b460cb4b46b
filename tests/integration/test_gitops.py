"""A Study under GitOps: Argo CD's server-side apply owns the spec, the operator only its status,
and the Argo CD health check reads real Study objects as they move through their life."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.operator_process import OperatorProcess
from tests.argocd_health import HEALTH_LUA, study_health
from tests.shipping import touch_namespace
from tests.support import Cluster, Studies, study

REPO = Path(__file__).resolve().parents[2]
ARGOCD = "argocd"


def apply_as_argocd(cluster: Cluster, namespace: str, body: dict[str, Any]) -> None:
    """What Argo CD does with ServerSideApply=true (without --force-conflicts: a conflict fails the test)."""
    cluster.kubectl(
        "apply", "--server-side", f"--field-manager={ARGOCD}", "-n", namespace, "-f", "-", stdin=json.dumps(body)
    )


def owned_top_level_fields(entry: dict[str, Any]) -> set[str]:
    return set((entry.get("fieldsV1") or {}).keys())


def test_argocd_applies_spec_changes_to_a_running_study_and_the_operator_owns_only_status(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    touch_namespace(cluster, namespace)  # in case the session's operator started just now
    studies = Studies(cluster, namespace)
    body = study(
        "gitops",
        queries=2,
        locations=("us-nyc", "uk-lon"),
        parallelism=1,
        pod_annotations={"sim.bentham.io/duration": "1s"},
        description="First description",
    )

    apply_as_argocd(cluster, namespace, body)
    studies.wait_for_state("gitops", "executing")
    assert study_health(studies.get("gitops")).status == "Progressing"

    body["spec"]["paused"] = True
    body["spec"]["manifest"]["description"] = "Paused from Git"
    apply_as_argocd(cluster, namespace, body)
    studies.wait_for_state("gitops", "paused")
    paused = study_health(studies.get("gitops"))
    assert paused.status == "Suspended", paused

    body["spec"]["paused"] = False
    body["spec"]["manifest"]["description"] = "Resumed from Git"
    apply_as_argocd(cluster, namespace, body)
    studies.wait_for_state("gitops", "complete")
    finished = studies.get("gitops")

    health = study_health(finished)
    assert health.status == "Healthy", health
    assert "4/4 cells" in health.message
    assert finished["spec"]["manifest"]["description"] == "Resumed from Git"
    managers = finished["metadata"]["managedFields"]
    argocd = [entry for entry in managers if entry["manager"] == ARGOCD]
    assert [entry["operation"] for entry in argocd] == ["Apply"]
    assert "f:paused" in argocd[0]["fieldsV1"]["f:spec"]
    status_writers = [entry for entry in managers if entry.get("subresource") == "status"]
    assert status_writers, "the operator writes the status subresource"
    for entry in status_writers:
        assert owned_top_level_fields(entry) == {"f:status"}, entry
    for entry in managers:
        if entry["manager"] != ARGOCD:
            assert "f:spec" not in owned_top_level_fields(entry), f"{entry['manager']} owns spec fields: {entry}"


def test_argocd_cm_patch_adds_the_health_check_beside_existing_settings(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "configmap", "argocd-cm", "-n", namespace, "--from-literal=url=https://argocd.example")

    cluster.kubectl(
        "patch",
        "configmap",
        "argocd-cm",
        "-n",
        namespace,
        "--type=strategic",
        "--patch-file",
        str(REPO / "gitops" / "argocd" / "argocd-cm-patch.yaml"),
    )

    data = json.loads(cluster.kubectl("get", "configmap", "argocd-cm", "-n", namespace, "-o", "json").stdout)["data"]
    assert data == {
        "url": "https://argocd.example",
        "resource.customizations.health.bentham.io_Study": HEALTH_LUA.read_text(),
    }
