"""The cost estimate and the reported cost on the real control plane (docs/cost.md)."""

from __future__ import annotations

from typing import Any

from kubernetes import client, watch

from bench.operator_process import OperatorProcess
from tests.support import (
    GOOD_RESULT,
    GROUP,
    PLURAL,
    VERSION,
    Cluster,
    Studies,
    failing_pod_template,
    kwok_stage,
    study,
)

# 2 queries x (openai-api, grok) x (us-nyc, uk-lon): 4 cells a surface, 8 in all, nothing to adjust.
#   openai-api gpt-4o-mini: 50/1000 x 0.00015 + 450/1000 x 0.0006 = 0.0002775; x4 = 0.00111 -> 0.00
#   grok, not in the built-in table: 0.01; x4 = 0.04; x0.8 = 0.032 -> 0.03; x1.3 = 0.052 -> 0.05
#   base 0.00111 + 0.04 = 0.04111 -> 0.04; x0.8 = 0.032 -> 0.03; x1.3 = 0.052 -> 0.05
ESTIMATE: dict[str, Any] = {
    "cells": 8,
    "minUsd": 0.03,
    "maxUsd": 0.05,
    "multiplier": 1.0,
    "bySurface": {
        "openai-api": {
            "model": "gpt-4o-mini",
            "listed": True,
            "perRequestUsd": 0.0002775,
            "cells": 4,
            "minUsd": 0.0,
            "maxUsd": 0.0,
        },
        "grok": {"listed": False, "perRequestUsd": 0.01, "cells": 4, "minUsd": 0.03, "maxUsd": 0.05},
    },
}


def first_status_written(cluster: Cluster, namespace: str, created: dict[str, Any]) -> dict[str, Any]:
    """The first status the operator wrote to the study: the first change after its creation that has one."""
    stream = watch.Watch()
    name = created["metadata"]["name"]
    try:
        for event in stream.stream(
            client.CustomObjectsApi(cluster.api).list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            field_selector=f"metadata.name={name}",
            resource_version=created["metadata"]["resourceVersion"],  # every write after the create, in order
            timeout_seconds=60,
        ):
            status = event["object"].get("status")
            if status:
                return dict(status)
    finally:
        stream.stop()
    raise AssertionError(f"the operator wrote no status to {name} within 60 s")


def test_the_first_status_written_carries_the_estimate(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)

    created = studies.create(study("estimated", required=("openai-api",), optional=("grok",)))
    first = first_status_written(cluster, namespace, created)

    assert first["estimate"] == ESTIMATE
    assert "cost" not in first
    final = studies.wait_for_state("estimated", "complete", "failed")
    assert final["estimate"] == ESTIMATE, "written once, then carried"
    assert "cost" not in final, "GOOD_RESULT reports no costUsd"


def test_reported_costs_of_passed_and_failed_attempts_sum_into_the_status(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    grok_fails = {"success": False, "error": {"code": "TIMEOUT", "message": "too slow"}, "costUsd": 0.1}

    with kwok_stage(cluster, namespace, {"bentham.io/surface": "grok"}, failing_pod_template(grok_fails)):
        studies.create(
            study(
                "costly",
                required=("openai-api",),
                optional=("grok",),
                max_retries=2,
                result=GOOD_RESULT | {"costUsd": 0.25},
            )
        )
        status = studies.wait_for_state("costly", "complete", "failed", timeout_s=180)

    assert status["state"] == "complete", status.get("message")
    # openai-api: 4 cells pass at the first attempt, 4 x 0.25 = 1.00; grok: 4 cells fail both attempts,
    # 8 x 0.1 = 0.80; 12 attempts, each counted once however often the operator saw its Job.
    assert status["progress"]["bySurface"]["grok"]["failed"] == 4
    assert status["cost"] == {"totalUsd": 1.8, "bySurface": {"openai-api": 1.0, "grok": 0.8}, "attempts": 12}
