"""The cost estimate and the reported cost on the real control plane (docs/cost.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client, watch

from bench.operator_process import OperatorProcess, start_operator
from bentham.api.status import Checkpoint
from bentham.core.checkpoint import read_records
from tests.support import (
    GOOD_RESULT,
    GROUP,
    PLURAL,
    VERSION,
    Cluster,
    Studies,
    failing_pod_template,
    kill_repeatedly,
    kwok_stage,
    report,
    study,
)

LOGS = Path(__file__).resolve().parents[2] / ".cluster" / "logs"

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
    assert status["cost"] == {
        "totalMicroUsd": 1_800_000,
        "bySurfaceMicroUsd": {"openai-api": 1_000_000, "grok": 800_000},
        "totalUsd": 1.8,
        "bySurface": {"openai-api": 1.0, "grok": 0.8},
        "attempts": 12,
    }


def test_each_attempts_cost_counts_once_across_repeated_kill_9_of_the_operator(
    cluster: Cluster, unwatched_namespace: str
) -> None:
    namespace = unwatched_namespace
    studies = Studies(cluster, namespace)
    log = LOGS / f"operator-{namespace}.log"
    first_attempt_in_london = {"bentham.io/attempt": "1", "bentham.io/location": "uk-lon"}
    slow_proxy = {"success": False, "error": {"code": "TIMEOUT", "message": "slow proxy"}, "costUsd": 0.5}
    operator = start_operator(cluster.kubeconfig, log, "--namespace", namespace)
    try:
        with kwok_stage(cluster, namespace, first_attempt_in_london, failing_pod_template(slow_proxy)):
            studies.create(
                study(
                    "chaos-cost",
                    required=("openai-api", "anthropic-api"),
                    queries=16,
                    parallelism=12,
                    result=GOOD_RESULT | {"costUsd": 0.125},
                    pod_annotations={"sim.bentham.io/duration": "1500ms"},
                )
            )
            operator, kills = kill_repeatedly(
                operator,
                lambda: start_operator(cluster.kubeconfig, log, "--namespace", namespace),
                done=lambda: studies.status("chaos-cost").get("state") in ("complete", "failed"),
                most=6,
                seed=20261204,
                pause=(0.5, 2.5),
            )
            status = studies.wait_for_state("chaos-cost", "complete", "failed", timeout_s=300)
    finally:
        operator.stop()

    report(f"cost: operator killed with SIGKILL {kills} times; reported cost {status.get('cost')}")
    assert kills >= 3, f"the study ended after only {kills} kills; make it longer"
    assert status["state"] == "complete", status.get("message")
    records = read_records(Checkpoint.model_validate(status["checkpoint"]))
    assert records is not None
    # 16 queries x 2 surfaces x 2 locations = 64 cells; the 32 in London failed their first attempt
    # (0.5 each) and passed the second; every passing attempt cost 0.125: 32 x 0.5 + 64 x 0.125 = 24.0
    # over 96 attempts, 12.0 per surface, whichever passes recorded them and however often they ran.
    assert [record.attempts for record in records] == [1, 2] * 32
    assert status["cost"] == {
        "totalMicroUsd": 24_000_000,
        "bySurfaceMicroUsd": {"openai-api": 12_000_000, "anthropic-api": 12_000_000},
        "totalUsd": 24.0,
        "bySurface": {"openai-api": 12.0, "anthropic-api": 12.0},
        "attempts": 96,
    }
