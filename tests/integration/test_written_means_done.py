"""Studies mean what the tenant wrote (issue 14), on the real control plane.

Every cell runs, optional ones too; a surface in neither completion list never fails a study;
the cell matrix is fixed once a Study exists while every other field may change; and a failure
a person can fix asks for that person instead of failing the study.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from bench.operator_process import OperatorProcess
from bentham.api.status import Checkpoint
from bentham.core.checkpoint import read_records
from tests.support import Cluster, Studies, eventually, failing_pod_template, kwok_stage, study

RETRYABLE = {
    "success": False,
    "responseLength": 0,
    "isActualContent": False,
    "responseTimeMs": 10,
    "error": {"code": "TIMEOUT", "message": "took too long", "retryable": True},
}
AUTH_FAILED = {
    "success": False,
    "responseLength": 0,
    "isActualContent": False,
    "responseTimeMs": 10,
    "error": {"code": "AUTH_FAILED", "message": "the API key was revoked", "retryable": False},
}


def cells_of(studies: Studies, name: str) -> dict[int, tuple[str, int]]:
    """The checkpoint, decoded: cell index → (state, attempts)."""
    records = read_records(Checkpoint.model_validate(studies.status(name)["checkpoint"]))
    assert records is not None
    return {index: (record.state.name.lower(), record.attempts) for index, record in enumerate(records)}


def three_surfaces(name: str, **kwargs: Any) -> dict[str, Any]:
    """2 queries x 3 surfaces (grok optional) x 2 locations = 12 cells, parallelism 4."""
    return study(
        name,
        required=("openai-api", "anthropic-api"),
        optional=("grok",),
        queries=2,
        locations=("us-nyc", "uk-lon"),
        parallelism=4,
        **kwargs,
    )


def test_every_cell_of_a_study_with_an_optional_surface_runs_and_completes(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    studies.create(three_surfaces("all-cells"))
    status = studies.wait_for_state("all-cells", "complete", "failed", timeout_s=120)

    assert status["state"] == "complete", status.get("message")
    progress = status["progress"]
    assert (progress["totalCells"], progress["completedCells"], progress["failedCells"]) == (12, 12, 0)
    assert progress["bySurface"]["grok"]["completed"] == 4 and progress["bySurface"]["grok"]["required"] is False
    assert set(cells_of(studies, "all-cells").values()) == {("completed", 1)}


def test_an_optional_surface_whose_pods_fail_gets_every_attempt_and_the_study_completes(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    with kwok_stage(cluster, namespace, {"bentham.io/surface": "grok"}, failing_pod_template(RETRYABLE)):
        studies.create(three_surfaces("optional-fails", max_retries=2))
        status = studies.wait_for_state("optional-fails", "complete", "failed", timeout_s=180)

    assert status["state"] == "complete", status.get("message")
    progress = status["progress"]
    assert (progress["completedCells"], progress["failedCells"], progress["pendingCells"]) == (8, 4, 0)
    assert progress["bySurface"]["grok"]["failed"] == 4
    cells = cells_of(studies, "optional-fails")
    # Cell index = query * 6 + surface * 2 + location: grok is surface 2.
    grok = {index: cells[index] for index in (4, 5, 10, 11)}
    assert grok == dict.fromkeys((4, 5, 10, 11), ("failed", 2))


def test_a_surface_in_neither_list_never_fails_a_seed_style_study(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    body = study("seed-style", required=("openai-api",), queries=2, locations=("us-nyc",))
    # As the original's manifests do: a surface flagged required but listed in neither list.
    body["spec"]["manifest"]["surfaces"].append({"id": "grok", "required": True})
    with kwok_stage(cluster, namespace, {"bentham.io/surface": "grok"}, failing_pod_template(AUTH_FAILED)):
        studies.create(body)
        status = studies.wait_for_state("seed-style", "complete", "failed", "human_intervention_required")

    assert status["state"] == "complete", status.get("message")
    assert status["progress"]["bySurface"]["grok"] == {
        "total": 2, "completed": 0, "failed": 2, "blocked": 0, "executing": 0, "pending": 0, "skipped": 0,
        "required": False,
    }  # fmt: skip
    assert any("grok" in warning and "required" in warning for warning in status["warnings"]), status["warnings"]


def refusal(studies: Studies, name: str, spec: dict[str, Any]) -> str:
    """The API server's message refusing the patch."""
    with pytest.raises(ApiException) as refused:
        studies.patch_spec(name, spec)
    assert refused.value.status == 422, refused.value.body
    return str(refused.value.body)


def test_the_cell_matrix_is_fixed_but_a_later_deadline_is_taken_and_clears_at_risk(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    body = study(
        "fixed",
        required=("openai-api",),
        optional=("grok",),
        pod_annotations={"sim.bentham.io/duration": "600s"},
        deadline=soon,
    )
    studies.create(body)
    eventually(
        lambda: studies.status("fixed").get("deadline", {}).get("atRisk"),
        timeout_s=60,
        what="a study without progress 5 minutes before its deadline to be at risk",
    )
    manifest = studies.get("fixed")["spec"]["manifest"]
    checkpoint = studies.status("fixed")["checkpoint"]

    surfaces = [{"id": "openai-api"}, {"id": "bing-copilot"}]
    criteria = {**manifest["completionCriteria"], "optionalSurfaces": {"surfaceIds": ["bing-copilot"]}}
    message = refusal(studies, "fixed", {"manifest": {"surfaces": surfaces, "completionCriteria": criteria}})
    assert "manifest.surfaces: the cell matrix is fixed once the Study exists" in message
    assert "create a new Study" in message
    locations = [{"id": "us-nyc"}, {"id": "de-ber"}]
    assert "manifest.locations: the cell matrix is fixed" in refusal(
        studies, "fixed", {"manifest": {"locations": locations}}
    )
    queries = [{"text": "A different question?"}, *manifest["queries"][1:]]
    assert "manifest.queries: the cell matrix is fixed" in refusal(studies, "fixed", {"manifest": {"queries": queries}})
    assert studies.get("fixed")["spec"]["manifest"] == manifest
    assert studies.status("fixed")["checkpoint"]["cells"] == checkpoint["cells"]  # nothing recorded

    later = (datetime.now(UTC) + timedelta(days=2)).isoformat().replace("+00:00", "Z")
    studies.patch_spec("fixed", {"manifest": {"deadline": later}})

    def cleared() -> dict[str, Any] | None:
        status = studies.status("fixed")
        return status if status.get("deadline", {}).get("atRisk") is False else None

    status = eventually(cleared, timeout_s=60, what="a later deadline to clear AtRisk")
    at_risk = next(c for c in status["conditions"] if c["type"] == "AtRisk")
    assert at_risk["status"] == "False" and status["state"] == "executing"
    studies.patch_spec("fixed", {"cancel": {"reason": "test over"}})


def test_a_revoked_key_on_a_required_surface_asks_for_a_person_who_fixes_it_and_the_study_completes(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    body = study("revoked", required=("openai-api",), queries=10, locations=("us-nyc",), threshold=0.95, parallelism=2)
    with kwok_stage(cluster, namespace, {"bentham.io/surface": "openai-api"}, failing_pod_template(AUTH_FAILED)):
        studies.create(body)
        waiting = studies.wait_for_state("revoked", "human_intervention_required", "failed", "complete")
        assert waiting["state"] == "human_intervention_required", waiting.get("message")
        assert waiting["intervention"]["blockedSurfaces"] == ["openai-api"]
        assert "AUTH_FAILED" in waiting["message"] and "interventionAck" in waiting["message"]
        # The cells in flight finish; nothing new starts on the blocked surface.
        eventually(
            lambda: studies.status("revoked")["progress"]["executingCells"] == 0 or None,
            what="the attempts in flight to be recorded",
        )
    blocked = studies.status("revoked")["progress"]["bySurface"]["openai-api"]["blocked"]
    assert 1 <= blocked <= 2

    # The key is rotated (the pods succeed again) and a person acknowledges.
    studies.patch_spec("revoked", {"interventionAck": "rotated the openai key"})
    status = studies.wait_for_state("revoked", "complete", "failed", timeout_s=120)
    assert status["state"] == "complete", status.get("message")
    assert status["progress"]["completedCells"] == 10 and status["progress"]["failedCells"] == 0
    reopened = [attempts for _, attempts in cells_of(studies, "revoked").values() if attempts == 2]
    assert len(reopened) == blocked  # each blocked cell ran again, as attempt 2
