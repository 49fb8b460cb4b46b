"""The Argo CD health check of a Study (gitops/argocd/health.lua), run by a real Lua 5.1 as Argo CD runs it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from bentham.api.status import StudyState
from tests.argocd_health import HEALTH_LUA, study_health

REPO = Path(__file__).resolve().parents[2]
PATCH = REPO / "gitops" / "argocd" / "argocd-cm-patch.yaml"


def study_object(state: str | None, *, generation: int = 1, observed: int | None = 1, **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "bentham.io/v1alpha1",
        "kind": "Study",
        "metadata": {"name": "s", "namespace": "n", "generation": generation},
        "spec": {"tenantId": "acme"},
    }
    if state is not None:
        body["status"] = {
            "state": state,
            "observedGeneration": observed,
            "progress": {"summary": "3/8"},
            "message": "A message",
            **status,
        }
    return body


@pytest.mark.parametrize(
    ("state", "health"),
    [
        ("manifest_received", "Progressing"),
        ("validating", "Progressing"),
        ("queued", "Progressing"),
        ("executing", "Progressing"),
        ("validating_results", "Progressing"),
        ("paused", "Suspended"),
        ("complete", "Healthy"),
        ("cancelled", "Healthy"),
        ("failed", "Degraded"),
        ("human_intervention_required", "Degraded"),
    ],
)
def test_each_state_maps_to_its_argocd_health(state: str, health: str) -> None:
    result = study_health(study_object(state))

    assert result.status == health
    assert "3/8 cells" in result.message and "A message" in result.message


def test_every_state_of_the_api_has_a_known_health() -> None:
    for state in StudyState:
        assert study_health(study_object(state.value)).status != "Unknown", state


def test_study_without_status_is_progressing() -> None:
    result = study_health(study_object(None))

    assert result.status == "Progressing"
    assert "operator" in result.message


def test_status_with_nulls_and_no_progress_still_has_a_health() -> None:
    body = study_object("executing")
    body["status"] = {"state": "executing", "observedGeneration": 1, "progress": None, "message": None}

    result = study_health(body)

    assert (result.status, result.message) == ("Progressing", "executing")


def test_live_study_whose_spec_change_is_not_yet_observed_is_progressing() -> None:
    # spec.paused was just set back to false: the status still says paused, from generation 1.
    result = study_health(study_object("paused", generation=2, observed=1))

    assert result.status == "Progressing"
    assert "generation 2" in result.message


def test_terminal_study_keeps_its_health_after_a_later_spec_change() -> None:
    # A finished study's status is final; an edit in Git (a new description) must not make it Progressing.
    assert study_health(study_object("complete", generation=3, observed=1)).status == "Healthy"
    assert study_health(study_object("failed", generation=3, observed=1)).status == "Degraded"


def test_cancelled_study_says_it_was_cancelled_and_why() -> None:
    body = study_object("cancelled")
    body["spec"]["cancel"] = {"reason": "budget cut"}

    result = study_health(body)

    assert result.status == "Healthy"
    assert result.message.startswith("Cancelled as requested (budget cut)")


def test_study_at_risk_is_still_progressing_and_says_so() -> None:
    result = study_health(study_object("executing", deadline={"atRisk": True}))

    assert result.status == "Progressing"
    assert "at risk" in result.message


def test_unknown_state_is_unknown() -> None:
    assert study_health(study_object("levitating")).status == "Unknown"


def test_argocd_cm_patch_embeds_exactly_the_health_check() -> None:
    # After editing health.lua, run `make argocd-cm-patch`.
    patch = yaml.safe_load(PATCH.read_text())

    assert (patch["apiVersion"], patch["kind"], patch["metadata"]["name"]) == ("v1", "ConfigMap", "argocd-cm")
    assert patch["data"] == {"resource.customizations.health.bentham.io_Study": HEALTH_LUA.read_text()}
    spec = importlib.util.spec_from_file_location("argocd_cm_patch", REPO / "hack" / "argocd_cm_patch.py")
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert PATCH.read_text() == generator.render(HEALTH_LUA.read_text())
