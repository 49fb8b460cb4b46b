"""The original's manifests apply here unchanged (issue 15): valid ones are accepted, invalid ones refused.

tests/original/ holds manifests written from the original's field table (docs/manifest.md): each
is placed verbatim under `spec.manifest`, keys that begin with `_` removed first (they are
comments; `_field` names the field an invalid one breaks).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bentham.api.validation import Invalid, Valid, validate_spec
from tests.support import Cluster

ORIGINAL = Path(__file__).resolve().parents[1] / "original"
VALID = sorted((ORIGINAL / "valid").glob("*.json"))
INVALID = sorted((ORIGINAL / "invalid").glob("*.json"))


def without_comments(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_comments(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [without_comments(v) for v in value]
    return value


def as_study(path: Path) -> dict[str, Any]:
    name = path.stem
    return {
        "apiVersion": "bentham.io/v1alpha1",
        "kind": "Study",
        "metadata": {"name": f"original-{name}"},
        "spec": {
            "tenantId": "acme",
            "executor": {"image": "example.invalid/executor:1"},
            "manifest": without_comments(json.loads(path.read_text())),
        },
    }


def dry_run(cluster: Cluster, namespace: str, study: dict[str, Any]) -> Any:
    return cluster.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=json.dumps(study), check=False
    )


def test_there_are_valid_and_invalid_originals() -> None:
    assert len(VALID) >= 4 and len(INVALID) >= 20


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_a_valid_original_manifest_is_valid_here(path: Path) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert isinstance(validate_spec(as_study(path)["spec"], created_at=now, now=now), Valid)


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_an_invalid_original_manifest_is_invalid_here_naming_its_field(path: Path) -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    field = json.loads(path.read_text())["_field"]
    verdict = validate_spec(as_study(path)["spec"], created_at=now, now=now)
    assert isinstance(verdict, Invalid)
    assert any(error.startswith(field) for error in verdict.errors), verdict.errors


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_the_api_server_accepts_a_valid_original_manifest_verbatim(
    study_crd: Cluster, namespace: str, path: Path
) -> None:
    applied = dry_run(study_crd, namespace, as_study(path))
    assert applied.returncode == 0, applied.stderr


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_the_api_server_refuses_an_invalid_original_manifest_naming_its_field(
    study_crd: Cluster, namespace: str, path: Path
) -> None:
    field = "spec." + json.loads(path.read_text())["_field"]
    applied = dry_run(study_crd, namespace, as_study(path))
    assert applied.returncode != 0, f"{path.name} was accepted"
    assert field in applied.stderr, applied.stderr


def test_options_keep_keys_the_operator_does_not_know(study_crd: Cluster, namespace: str) -> None:
    study = as_study(ORIGINAL / "valid" / "full.json")
    study_crd.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(study))
    stored = json.loads(study_crd.kubectl("get", "study", "original-full", "-n", namespace, "-o", "json").stdout)
    options = stored["spec"]["manifest"]["surfaces"][1]["options"]
    assert options["viewport"] == {"width": 1280, "height": 800} and options["captureImages"] is True
    assert stored["spec"]["manifest"]["version"] == "1.0.0"
    assert stored["spec"]["manifest"]["execution"]["queryDelayMs"] == [500, 2000]
