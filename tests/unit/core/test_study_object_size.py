"""A whole Study object stays small at any scale: under 1 MiB at 100,000 cells, 100 KiB at 10,000.

The status is built by `decide()` itself, driven through a few waves of mixed outcomes, so the
checkpoint holds every kind of cell record the operator writes.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from bentham.core.reconcile import ObservedJob, decide

SURFACES = [
    "openai-api",
    "anthropic-api",
    "google-ai-api",
    "perplexity-api",
    "chatgpt-web",
    "gemini-web",
    "perplexity-web",
    "claude-web",
    "meta-ai",
    "grok",
]
LOCATIONS = ["us-national", "us-nyc", "us-la", "us-chi", "uk-lon", "de-ber", "fr-par", "jp-tok", "au-syd", "ca-tor"]
GOOD = json.dumps({"success": True, "responseLength": 900, "isActualContent": True, "responseTimeMs": 800})
RETRYABLE = json.dumps({"success": False, "error": {"code": "TIMEOUT", "message": "slow", "retryable": True}})


def study_spec(queries: int) -> dict[str, Any]:
    return {
        "tenantId": "acme",
        "executor": {"image": "ghcr.io/bentham-io/executor:0.1.0", "parallelism": 1_000},
        "manifest": {
            "name": f"{queries * len(SURFACES) * len(LOCATIONS)} cells",
            "queries": [
                {"text": f"Which running shoe brand is most trusted for marathon number {i}?", "category": "running"}
                for i in range(queries)
            ],
            "surfaces": [{"id": s} for s in SURFACES],
            "locations": [{"id": loc} for loc in LOCATIONS],
            "completionCriteria": {
                "requiredSurfaces": {"surfaceIds": SURFACES[:6], "coverageThreshold": 0.5},
                "optionalSurfaces": {"surfaceIds": SURFACES[6:]},
            },
        },
    }


def study_object_after_mixed_waves(queries: int, waves: int) -> dict[str, Any]:
    """The Study as stored, after `waves` rounds in which in-flight attempts end at random."""
    rng = random.Random(7)
    spec = study_spec(queries)
    created = datetime(2026, 11, 25, 12, tzinfo=UTC)
    status: dict[str, Any] | None = None
    live: list[ObservedJob] = []
    for wave in range(waves):
        now = created + timedelta(seconds=10 * wave)
        decision = decide(
            name="big",
            namespace="tenant-acme",
            uid="5f1c2d7e-1111-4222-8333-944455556666",
            generation=1,
            created_at=created,
            spec=spec,
            status=status,
            jobs=live,
            now=now,
        )
        status = decision.status.as_stored()  # as the API server stores it
        running = [
            ObservedJob(
                name=j.name,
                cell_index=j.cell.index,
                attempt=j.attempt,
                phase="running",
                termination_message=None,
                failure_reason=None,
                finished_at=None,
            )
            for j in decision.create
        ]
        live = [j for j in live if j.name not in set(decision.delete)] + running
        # Most attempts in flight end now, passing or failing; a few keep running.
        ended = now + timedelta(seconds=5)
        live = [
            job
            if rng.random() < 0.1 or job.phase != "running"
            else ObservedJob(
                name=job.name,
                cell_index=job.cell_index,
                attempt=job.attempt,
                phase="succeeded" if rng.random() < 0.8 else "failed",
                termination_message=GOOD if rng.random() < 0.8 else RETRYABLE,
                failure_reason=None,
                finished_at=ended,
            )
            for job in live
        ]
    assert status is not None
    return {
        "apiVersion": "bentham.io/v1alpha1",
        "kind": "Study",
        "metadata": {
            "name": "big",
            "namespace": "tenant-acme",
            "uid": "5f1c2d7e-1111-4222-8333-944455556666",
            "generation": 1,
            "creationTimestamp": created.isoformat(),
        },
        "spec": spec,
        "status": status,
    }


def serialized_size(obj: dict[str, Any]) -> int:
    return len(json.dumps(obj, separators=(",", ":")).encode())


def test_study_object_of_100k_cells_is_under_one_mib() -> None:
    study = study_object_after_mixed_waves(queries=1_000, waves=4)

    assert study["status"]["progress"]["totalCells"] == 100_000
    assert study["status"]["progress"]["completedCells"] > 0
    assert serialized_size(study) < 1024 * 1024


def test_study_object_of_10k_cells_is_under_100_kib() -> None:
    study = study_object_after_mixed_waves(queries=100, waves=4)

    assert study["status"]["progress"]["totalCells"] == 10_000
    assert study["status"]["progress"]["completedCells"] > 0
    assert serialized_size(study) < 100 * 1024
