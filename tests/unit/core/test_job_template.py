from __future__ import annotations

import json
import re
from typing import Any

import pytest
from core_builders import UID, make_spec
from pydantic import ValidationError

from bentham.api.spec import StudySpec
from bentham.core.cells import cell_at, cell_key
from bentham.core.jobs import build_job


def env_of(job: dict[str, Any]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def job_for(raw: dict[str, Any], *, index: int = 3, attempt: int = 2, name: str = "mystudy") -> dict[str, Any]:
    spec = StudySpec.model_validate(raw)
    return build_job(
        study_name=name,
        namespace="tenant-acme",
        study_uid=UID,
        spec=spec,
        cell=cell_at(spec.manifest, index),
        attempt=attempt,
    )


def test_job_is_owned_by_the_study_and_never_retried_by_kubernetes() -> None:
    job = job_for(make_spec())
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"]["namespace"] == "tenant-acme"
    assert re.fullmatch(r"mystudy-[0-9a-f]{5}-c3-a2", job["metadata"]["name"])
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "bentham.io/v1alpha1",
            "kind": "Study",
            "name": "mystudy",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 900
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_job_and_pod_carry_the_cell_labels() -> None:
    raw = make_spec()
    raw["executor"]["podLabels"] = {"team": "research", "bentham.io/cell": "spoofed"}
    job = job_for(raw)
    cell = cell_at(StudySpec.model_validate(raw).manifest, 3)
    expected = {
        "app.kubernetes.io/managed-by": "bentham-operator",
        "bentham.io/study": "mystudy",
        "bentham.io/study-uid": UID,
        "bentham.io/cell": cell_key(cell),
        "bentham.io/cell-index": "3",
        "bentham.io/surface": "anthropic-api",
        "bentham.io/location": "uk-lon",
        "bentham.io/query-index": "0",
        "bentham.io/attempt": "2",
    }
    assert job["metadata"]["labels"] == expected
    assert job["spec"]["template"]["metadata"]["labels"] == {**expected, "team": "research"}


def test_job_is_built_from_the_executor_template() -> None:
    raw = make_spec()
    raw["executor"].update(
        {
            "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/executor"],
            "args": ["--fast"],
            "env": [
                {"name": "LOG_LEVEL", "value": "debug"},
                {"name": "BENTHAM_SURFACE", "value": "spoofed"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            ],
            "resources": {"limits": {"memory": "256Mi"}},
            "serviceAccountName": "executor",
            "nodeSelector": {"pool": "egress"},
            "tolerations": [{"key": "egress", "operator": "Exists"}],
            "podAnnotations": {"a": "b"},
            "attemptTimeoutSeconds": 120,
        }
    )
    job = job_for(raw)
    pod = job["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["name"] == "executor" and container["image"] == "registry.example/executor:1"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert (container["imagePullPolicy"], container["command"], container["args"]) == (
        "IfNotPresent",
        ["/bin/executor"],
        ["--fast"],
    )
    assert container["resources"] == {"limits": {"memory": "256Mi"}}
    assert pod["spec"]["serviceAccountName"] == "executor"
    assert pod["spec"]["nodeSelector"] == {"pool": "egress"}
    assert pod["spec"]["tolerations"] == [{"key": "egress", "operator": "Exists"}]
    assert pod["metadata"]["annotations"] == {"a": "b"}
    assert job["spec"]["activeDeadlineSeconds"] == 120
    names = [e["name"] for e in container["env"]]
    assert names.count("BENTHAM_SURFACE") == 1 and env_of(job)["BENTHAM_SURFACE"] == "anthropic-api"
    assert {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}} in container["env"]
    assert env_of(job)["LOG_LEVEL"] == "debug"


def test_env_gives_the_cell_coordinates_and_options() -> None:
    raw = make_spec(evidence="full")
    raw["manifest"]["queries"][0]["context"] = "For a small cafe"
    raw["manifest"]["surfaces"][1]["options"] = {"model": "claude-x", "captureHtml": True, "temperature": 0.2}
    raw["manifest"]["locations"][1].update(
        {"proxyType": "mobile", "country": "GB", "city": "London", "name": "London", "proxyProvider": "oxylabs"}
    )
    env = env_of(job_for(raw))
    assert env["BENTHAM_STUDY"] == "mystudy"
    assert env["BENTHAM_CELL"] == "q0-anthropic-api-uk-lon" and env["BENTHAM_CELL_INDEX"] == "3"
    assert env["BENTHAM_QUERY_INDEX"] == "0" and env["BENTHAM_QUERY_CONTEXT"] == "For a small cafe"
    assert env["BENTHAM_SURFACE"] == "anthropic-api" and env["BENTHAM_LOCATION"] == "uk-lon"
    assert json.loads(env["BENTHAM_SURFACE_OPTIONS"]) == {
        "model": "claude-x",
        "captureHtml": True,
        "captureImages": False,
        "captureScreenshots": False,
        "temperature": 0.2,  # an option the operator does not know reaches the executor as written
    }
    assert json.loads(env["BENTHAM_LOCATION_OPTIONS"]) == {
        "name": "London",
        "proxyType": "mobile",
        "proxyProvider": "oxylabs",
        "requireSticky": False,
        "country": "GB",
        "city": "London",
    }
    assert env["BENTHAM_ATTEMPT"] == "2" and env["BENTHAM_EVIDENCE_LEVEL"] == "full"


def test_query_context_is_absent_when_the_query_has_none() -> None:
    assert "BENTHAM_QUERY_CONTEXT" not in env_of(job_for(make_spec()))


def test_a_10000_char_query_arrives_intact_in_the_env() -> None:
    text = "".join(chr(0x41 + i % 26) if i % 97 else '\n"é€' for i in range(10_000))[:10_000]
    env = env_of(job_for(make_spec(query_text=lambda q: text), index=0))
    assert env["BENTHAM_QUERY_TEXT"] == text and len(env["BENTHAM_QUERY_TEXT"]) == 10_000


def test_names_and_labels_fit_for_a_253_char_study_name() -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    job = job_for(make_spec(), name=name)
    assert len(job["metadata"]["name"]) <= 63
    assert all(len(v) <= 63 for v in job["metadata"]["labels"].values())
    assert job["metadata"]["ownerReferences"][0]["name"] == name
    assert env_of(job)["BENTHAM_STUDY"] == name


def test_an_execution_block_reaches_the_executor_and_the_jobs_deadline() -> None:
    raw = make_spec()
    raw["manifest"]["queries"][0].update({"category": "machines", "tags": ["coffee", ""]})
    raw["manifest"]["execution"] = {
        "timeouts": {"queryTimeoutMs": 300_000, "connectionTimeoutMs": 60_000, "surfaceTimeoutMs": 600_000},
        "queryDelayMs": [500, 2_000],
    }
    raw["executor"]["attemptTimeoutSeconds"] = 60
    job = job_for(raw)
    env = env_of(job)
    assert env["BENTHAM_QUERY_TIMEOUT_MS"] == "300000" and env["BENTHAM_CONNECTION_TIMEOUT_MS"] == "60000"
    assert env["BENTHAM_SURFACE_TIMEOUT_MS"] == "600000" and env["BENTHAM_QUERY_DELAY_MS"] == "500,2000"
    assert env["BENTHAM_QUERY_CATEGORY"] == "machines" and json.loads(env["BENTHAM_QUERY_TAGS"]) == ["coffee", ""]
    # 60 s would stop an attempt before one query may end: 60 + 2 + 300 s.
    assert job["spec"]["activeDeadlineSeconds"] == 362


def test_a_manifest_without_an_execution_block_gets_no_execution_env() -> None:
    job = job_for(make_spec())
    assert not any(name.startswith(("BENTHAM_QUERY_TIMEOUT", "BENTHAM_QUERY_DELAY")) for name in env_of(job))
    assert job["spec"]["activeDeadlineSeconds"] == 900


RESTRICTED_CONTAINER = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def test_pods_meet_the_restricted_pod_security_level_by_default() -> None:
    pod = job_for(make_spec())["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,  # a number, so an image without a USER still passes the kubelet's non-root check
        "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["containers"][0]["securityContext"] == RESTRICTED_CONTAINER
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod


def test_a_named_service_account_keeps_its_own_token_setting() -> None:
    raw = make_spec()
    raw["executor"]["serviceAccountName"] = "bentham-executor"
    pod = job_for(raw)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "bentham-executor"
    assert "automountServiceAccountToken" not in pod


def test_a_study_may_tighten_its_pods_security_but_never_loosen_it() -> None:
    raw = make_spec()
    raw["executor"]["securityContext"] = {
        "runAsUser": 1000,
        "runAsGroup": 2000,
        "fsGroup": 3000,
        "readOnlyRootFilesystem": True,
    }
    pod = job_for(raw)["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 2000,
        "fsGroup": 3000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["containers"][0]["securityContext"] == {**RESTRICTED_CONTAINER, "readOnlyRootFilesystem": True}


@pytest.mark.parametrize(
    "loosening",
    [
        {"runAsUser": 0},
        {"runAsGroup": 0},
        {"runAsNonRoot": False},
        {"privileged": True},
        {"allowPrivilegeEscalation": True},
        {"capabilities": {"add": ["NET_ADMIN"]}},
        {"seccompProfile": {"type": "Unconfined"}},
    ],
)
def test_the_spec_has_no_way_to_loosen_the_pods_security(loosening: dict[str, Any]) -> None:
    raw = make_spec()
    raw["executor"]["securityContext"] = loosening
    with pytest.raises(ValidationError, match=r"executor\.securityContext"):
        StudySpec.model_validate(raw)


def test_a_claim_and_a_scratch_folder_are_mounted_into_the_executor() -> None:
    raw = make_spec()
    raw["executor"]["volumes"] = [
        {"name": "evidence", "mountPath": "/evidence", "persistentVolumeClaim": {"claimName": "evidence-acme"}},
        {"name": "prompts", "mountPath": "/prompts", "readOnly": True, "persistentVolumeClaim": {"claimName": "p"}},
        {"name": "scratch", "mountPath": "/tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    pod = job_for(raw)["spec"]["template"]["spec"]
    assert pod["volumes"] == [
        {"name": "evidence", "persistentVolumeClaim": {"claimName": "evidence-acme", "readOnly": False}},
        {"name": "prompts", "persistentVolumeClaim": {"claimName": "p", "readOnly": True}},
        {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "evidence", "mountPath": "/evidence", "readOnly": False},
        {"name": "prompts", "mountPath": "/prompts", "readOnly": True},
        {"name": "scratch", "mountPath": "/tmp", "readOnly": False},
    ]


def test_without_volumes_the_pod_has_none() -> None:
    pod = job_for(make_spec())["spec"]["template"]["spec"]
    assert "volumes" not in pod and "volumeMounts" not in pod["containers"][0]


@pytest.mark.parametrize(
    ("volumes", "message"),
    [
        ([{"name": "v", "mountPath": "/data"}], "exactly one of persistentVolumeClaim or emptyDir"),
        (
            [{"name": "v", "mountPath": "/data", "emptyDir": {}, "persistentVolumeClaim": {"claimName": "c"}}],
            "exactly one of persistentVolumeClaim or emptyDir",
        ),
        ([{"name": "v", "mountPath": "/data/../etc", "emptyDir": {}}], "must not contain a '..' segment"),
        ([{"name": "v", "mountPath": "/dev/shm", "emptyDir": {}}], "must not be /dev, /proc or /sys"),
        ([{"name": "v", "mountPath": "/sys", "emptyDir": {}}], "must not be /dev, /proc or /sys"),
        ([{"name": "v", "mountPath": "data", "emptyDir": {}}], "String should match pattern"),
        ([{"name": "V_1", "mountPath": "/data", "emptyDir": {}}], "String should match pattern"),
        (
            [{"name": "v", "mountPath": "/a", "emptyDir": {}}, {"name": "v", "mountPath": "/b", "emptyDir": {}}],
            "each name must be unique",
        ),
        (
            [{"name": "a", "mountPath": "/a", "emptyDir": {}}, {"name": "b", "mountPath": "/a", "emptyDir": {}}],
            "each mountPath must be unique",
        ),
    ],
)
def test_a_volume_that_is_not_one_source_at_a_clean_path_is_refused(volumes: list[Any], message: str) -> None:
    raw = make_spec()
    raw["executor"]["volumes"] = volumes
    with pytest.raises(ValidationError, match=re.escape(message)):
        StudySpec.model_validate(raw)
