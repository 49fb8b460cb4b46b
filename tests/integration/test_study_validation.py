"""The Study API as the real API server serves it: schema, CEL rules, defaults, columns, explain.

Every file in tests/invalid breaks one rule and says, in its header, what the API server must
answer (`# expect:`) and which field it must name (`# field:`). The same file must be `Invalid`
for the operator's own validation too, so the two layers never disagree on a rule.
"""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes import client
from pydantic import BaseModel, ValidationError

from bentham.api.manifest import (
    CheckpointSettings,
    CompletionCriteria,
    Execution,
    RequiredSurfaces,
    Retry,
    RetryConditions,
    Timeouts,
)
from bentham.api.spec import StudySpec
from bentham.api.validation import Invalid, Valid, validate_spec
from tests.support import paths

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
INVALID = REPO / "tests" / "invalid"
INVALID_FILES = sorted(INVALID.glob("*.yaml"))

pytestmark = pytest.mark.cluster


def header(path: Path, key: str) -> str:
    """The value of a `# key: value` line at the top of a file."""
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        name, _, value = line.removeprefix("#").strip().partition(":")
        if name == key:
            return value.strip()
    raise AssertionError(f"{path.name} has no '# {key}:' header")


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def minimal_study(name: str, tenant: str = "acme") -> dict[str, Any]:
    """A study with only the fields that have no default."""
    return {
        "apiVersion": "bentham.io/v1alpha1",
        "kind": "Study",
        "metadata": {"name": name},
        "spec": {
            "tenantId": tenant,
            "executor": {"image": "ghcr.io/bentham-io/executor:0.1.0"},
            "manifest": {
                "name": "Minimal study",
                "queries": [{"text": "What is the capital of Australia?"}],
                "surfaces": [{"id": "openai-api"}],
                "locations": [{"id": "au-syd"}],
                "completionCriteria": {"requiredSurfaces": {"surfaceIds": ["openai-api"]}},
            },
        },
    }


def test_there_are_enough_invalid_studies_each_with_its_expectation() -> None:
    assert len(INVALID_FILES) >= 15
    for path in INVALID_FILES:
        assert header(path, "expect") and header(path, "field").startswith("spec."), path.name


@pytest.mark.parametrize("path", INVALID_FILES, ids=[p.stem for p in INVALID_FILES])
def test_api_server_rejects_invalid_study_naming_the_field(
    study_crd: Any,
    namespace: str,
    path: Path,
) -> None:
    expected, field = header(path, "expect"), header(path, "field")

    applied = study_crd.kubectl("apply", "-n", namespace, "-f", str(path), check=False)

    assert applied.returncode != 0, f"{path.name} was accepted:\n{applied.stdout}"
    assert expected in applied.stderr
    assert field in applied.stderr
    listed = study_crd.kubectl("get", "studies", "-n", namespace, "-o", "name")
    assert listed.stdout.strip() == ""


@pytest.mark.parametrize("path", INVALID_FILES, ids=[p.stem for p in INVALID_FILES])
def test_operator_validation_rejects_the_same_invalid_study_at_the_same_field(path: Path) -> None:
    now = datetime.now(UTC)
    field = header(path, "field").removeprefix("spec.")

    verdict = validate_spec(load(path)["spec"], created_at=now, now=now)

    assert isinstance(verdict, Invalid)
    assert verdict.reason == "InvalidSpec"
    # One broken rule each: anything more means the file tests two things at once.
    assert len(verdict.errors) == 1, verdict.errors
    assert verdict.errors[0].startswith(field), verdict.errors


def test_examples_apply_and_list_with_the_printer_columns(study_crd: Any, namespace: str) -> None:
    study_crd.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES))
    try:
        _examples_list_with_the_printer_columns(study_crd, namespace)
    finally:
        # Where a legal-hold policy is installed (make run), a held study keeps its namespace from going.
        lift = '{"spec":{"manifest":{"legalHold":false}}}'
        study_crd.kubectl(
            "patch", "study", "legal-hold-study", "-n", namespace, "--type", "merge", "-p", lift,
            "--as=examples-cleanup", "--as-group=system:masters", "--as-group=bentham:legal",
        )  # fmt: skip


def _examples_list_with_the_printer_columns(study_crd: Any, namespace: str) -> None:
    table = study_crd.kubectl("get", "studies", "-n", namespace).stdout.splitlines()
    wide = study_crd.kubectl("get", "studies", "-n", namespace, "-o", "wide").stdout.splitlines()

    assert table[0].split() == ["NAME", "STATE", "PROGRESS", "PERCENT", "SKIPPED", "AT-RISK", "DEADLINE", "AGE"]
    assert wide[0].split() == [
        "NAME",
        "STATE",
        "PROGRESS",
        "PERCENT",
        "SKIPPED",
        "AT-RISK",
        "DEADLINE",
        "AGE",
        "TENANT",
        "MESSAGE",
    ]
    names = {path.stem for path in EXAMPLES.glob("*.yaml")}
    assert {line.split()[0] for line in table[1:]} == names
    typical = next(line for line in table[1:] if line.startswith("typical-study "))
    assert "2030-01-01T00:00:00Z" in typical.split()
    start, end = wide[0].index("TENANT"), wide[0].index("MESSAGE")  # kubectl aligns columns
    tenants = {line.split()[0]: line[start:end].strip() for line in wide[1:]}
    assert tenants == {name: load(EXAMPLES / f"{name}.yaml")["spec"]["tenantId"] for name in names}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_example_is_valid_without_warnings_and_has_no_namespace(path: Path) -> None:
    document = load(path)
    now = datetime.now(UTC)

    verdict = validate_spec(document["spec"], created_at=now, now=now)

    assert "namespace" not in document["metadata"]
    assert isinstance(verdict, Valid), verdict
    assert verdict.warnings == []


def test_examples_have_the_promised_shapes() -> None:
    now = datetime.now(UTC)
    studies = {}
    for name in ("tiny-study", "typical-study", "legal-hold-study"):
        verdict = validate_spec(load(EXAMPLES / f"{name}.yaml")["spec"], created_at=now, now=now)
        assert isinstance(verdict, Valid), verdict
        studies[name] = verdict.spec.manifest

    assert studies["tiny-study"].cell_count == 2 * 2 * 2
    typical = studies["typical-study"]
    assert (len(typical.queries), len(typical.surfaces), len(typical.locations)) == (50, 6, 10)
    assert typical.required_surface_ids and typical.optional_surface_ids
    assert typical.deadline is not None and typical.deadline.year >= 2030
    legal = studies["legal-hold-study"]
    assert legal.legalHold and legal.retentionDays is not None and legal.retentionDays >= 365


def test_tiny_example_pods_succeed_with_a_passing_result() -> None:
    annotations = load(EXAMPLES / "tiny-study.yaml")["spec"]["executor"]["podAnnotations"]

    result = json.loads(annotations["sim.bentham.io/termination-message"])

    assert annotations.get("sim.bentham.io/result", "succeed") == "succeed"
    assert result["success"] is True and result["isActualContent"] is True and result["responseLength"] > 0
    assert all(re.fullmatch(r"[0-9a-f]{64}", evidence["sha256"]) for evidence in result["evidence"])
    assert len(json.dumps(result)) < 4096  # Kubernetes keeps at most 4 KiB of a termination message


def test_tenant_studies_are_listed_with_one_field_selector(study_crd: Any, namespace: str) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    for name, owner in (("ours-1", tenant), ("ours-2", tenant), ("theirs", "someone-else")):
        study_crd.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(minimal_study(name, owner)))

    listed = study_crd.kubectl(
        "get",
        "studies",
        "-A",
        "--field-selector",
        f"spec.tenantId={tenant}",
        "-o",
        "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{'\\n'}{end}",
    )

    assert sorted(listed.stdout.split()) == [f"{namespace}/ours-1", f"{namespace}/ours-2"]


def test_api_server_applies_the_models_defaults(study_crd: Any, namespace: str) -> None:
    study = minimal_study("defaults")
    study_crd.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(study))

    stored = json.loads(study_crd.kubectl("get", "study", "defaults", "-n", namespace, "-o", "json").stdout)
    spec = stored["spec"]

    assert spec["manifest"]["completionCriteria"]["requiredSurfaces"]["coverageThreshold"] == 0.95
    assert spec["manifest"]["completionCriteria"]["maxRetriesPerCell"] == 3
    assert spec["manifest"]["evidenceLevel"] == "metadata"
    assert spec["executor"]["parallelism"] == 10
    assert spec["manifest"]["qualityGates"] == {"minResponseLength": 0, "requireActualContent": True}
    # Everything the server fills in, the models fill in the same way (and nothing else).
    assert spec == StudySpec.model_validate(study["spec"]).model_dump(mode="json", exclude_none=True)


def test_api_server_defaults_an_empty_optional_surfaces_list(study_crd: Any, namespace: str) -> None:
    study = minimal_study("empty-optional")
    study["spec"]["manifest"]["completionCriteria"]["optionalSurfaces"] = {}

    study_crd.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(study))

    got = study_crd.kubectl("get", "study", "empty-optional", "-n", namespace, "-o", "json")
    stored = json.loads(got.stdout)
    assert stored["spec"]["manifest"]["completionCriteria"]["optionalSurfaces"] == {"surfaceIds": []}


def test_a_cancelled_study_cannot_be_uncancelled(study_crd: Any, namespace: str) -> None:
    study_crd.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(minimal_study("cancel-me")))
    study_crd.kubectl(
        "patch",
        "study",
        "cancel-me",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"cancel": {"reason": "budget cut"}}}),
    )

    removed = study_crd.kubectl(
        "patch",
        "study",
        "cancel-me",
        "-n",
        namespace,
        "--type=json",
        "-p",
        json.dumps([{"op": "remove", "path": "/spec/cancel"}]),
        check=False,
    )

    assert removed.returncode != 0
    assert "spec.cancel" in removed.stderr
    assert "a cancelled study cannot be un-cancelled" in removed.stderr
    stored = json.loads(study_crd.kubectl("get", "study", "cancel-me", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"]["cancel"] == {"reason": "budget cut"}


def test_explain_prints_the_models_descriptions(study_crd: Any) -> None:
    wanted = [
        CompletionCriteria.model_fields["maxRetriesPerCell"].description,
        CompletionCriteria.model_fields["requiredSurfaces"].description,
        CompletionCriteria.model_fields["optionalSurfaces"].description,
        RequiredSurfaces.model_fields["coverageThreshold"].description,
    ]
    flat = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the OpenAPI of a new CRD publishes a few seconds late
        explained = "".join(
            study_crd.kubectl("explain", f"study.spec.manifest.completionCriteria{field}", check=False).stdout
            for field in ("", ".requiredSurfaces")
        )
        flat = " ".join(explained.split())  # explain wraps long lines
        if all(text and " ".join(text.split()) in flat for text in wanted):
            return
        time.sleep(1)
    raise AssertionError(f"kubectl explain never showed the descriptions {wanted}:\n{flat}")


def test_explain_documents_every_field_of_the_execution_block(study_crd: Any) -> None:
    """`kubectl explain study.spec.manifest.execution` and its parts: every field, with the model's words."""
    parts: dict[str, type[BaseModel]] = {
        "": Execution,
        ".retry": Retry,
        ".retry.retryConditions": RetryConditions,
        ".checkpoint": CheckpointSettings,
        ".timeouts": Timeouts,
    }
    missing: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the OpenAPI of a new CRD publishes a few seconds late
        missing = []
        for path, model in parts.items():
            shown = study_crd.kubectl("explain", f"study.spec.manifest.execution{path}", check=False).stdout
            flat = " ".join(shown.split())  # explain wraps long lines
            for name, field in model.model_fields.items():
                assert field.description, f"execution{path}.{name} has no description in the model"
                named = re.search(rf"^\s*{name}\s", shown, re.MULTILINE) is not None
                if not named or " ".join(field.description.split()) not in flat:
                    missing.append(f"execution{path}.{name}")
        if not missing:
            return
        time.sleep(1)
    raise AssertionError(f"kubectl explain does not document {missing}")


# --- The API server and the models reach the same verdict on the same spec -------------------

BOUNDARY_INTS = [-1, 0, 1, 2, 9, 10, 11, 119, 120, 121, 364, 365, 999, 1000, 1001, 2555, 2556, 86400, 86401]
BOUNDARY_LENGTHS = [0, 1, 2, 3, 49, 50, 51, 63, 64, 100, 101, 200, 201]


@st.composite
def same_type_mutations(draw: st.DrawFn, spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` with one value changed to another of the same JSON type, often at a limit.

    Values of another type are left out on purpose: pydantic's lax mode turns "3" into 3, which
    the API server rejects; that is the API server's job, and not what this test compares.
    """
    mutated = copy.deepcopy(spec)
    # The deadline is parsed leniently by pydantic (a number as a Unix time): not compared here.
    where = draw(st.sampled_from([p for p in paths(mutated) if p and "deadline" not in p]))
    parent = mutated
    for step in where[:-1]:
        parent = parent[step]
    key, old = where[-1], parent[where[-1]]
    if isinstance(old, bool):
        parent[key] = not old
    elif isinstance(old, int):
        parent[key] = draw(st.sampled_from(BOUNDARY_INTS))
    elif isinstance(old, float):
        parent[key] = draw(st.sampled_from([-0.01, 0.0, 0.5, 1.0, 1.01]))
    elif isinstance(old, str):
        length = draw(st.sampled_from(BOUNDARY_LENGTHS))
        parent[key] = draw(
            st.one_of(
                st.text(st.characters(codec="utf-8"), min_size=length, max_size=length),
                st.sampled_from(
                    [
                        "openai-api",
                        "grok",
                        "us-nyc",
                        "de-ber",
                        "mobile",
                        "full",
                        "US",
                        "us",
                        "acme",
                        "https://hooks.example/x",
                        "Always",
                    ]
                ),
            )
        )
    elif isinstance(old, list):
        operation = draw(st.sampled_from(["empty", "repeat", "drop"]))
        if operation == "empty":
            parent[key] = []
        elif old and operation == "repeat":
            old.append(copy.deepcopy(draw(st.sampled_from(old))))
        elif old:
            old.pop(draw(st.integers(0, len(old) - 1)))
    elif isinstance(old, dict) and old:
        old.pop(draw(st.sampled_from(sorted(old))))
    return mutated


def server_verdict(api: client.ApiClient, namespace: str, spec: dict[str, Any]) -> str | None:
    """None when the API server would store the study (a dry run), else its message."""
    body = {"apiVersion": "bentham.io/v1alpha1", "kind": "Study", "metadata": {"name": "probe"}, "spec": spec}
    try:
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "bentham.io",
            "v1alpha1",
            namespace,
            "studies",
            body,
            dry_run="All",
            field_validation="Strict",
        )
    except client.ApiException as error:
        if error.status not in (400, 422):
            raise
        return str(json.loads(error.body or "{}").get("message", error.body))
    return None


def model_verdict(spec: dict[str, Any]) -> str | None:
    try:
        StudySpec.model_validate(spec)
    except ValidationError as error:
        return str(error)
    return None


BASES = [load(path)["spec"] for path in sorted(EXAMPLES.glob("*.yaml"))] + [
    {
        **minimal_study("x")["spec"],
        "notifications": {"secretRef": {"name": "hook"}},
        "cancel": {"reason": "r"},
    },
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_api_server_and_models_agree_on_mutated_specs(
    study_crd: Any,
    namespace: str,
    data: st.DataObject,
) -> None:
    spec = data.draw(st.sampled_from(BASES).flatmap(same_type_mutations))

    server, model = server_verdict(study_crd.api, namespace, spec), model_verdict(spec)

    assert (server is None) == (model is None), (
        f"API server: {server or 'accepted'}\nmodels: {model or 'accepted'}\nspec: {json.dumps(spec)[:3000]}"
    )
