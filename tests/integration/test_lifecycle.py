"""A study's life on the real control plane: fan-out, results, retries, completion, failure."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.operator_process import OperatorProcess
from bentham.api.status import Checkpoint
from bentham.core.checkpoint import read_records
from tests.support import GOOD_RESULT, Cluster, Studies, eventually, failing_pod_template, kwok_stage, study

REPO = Path(__file__).resolve().parents[2]


def attempts_by_cell(studies: Studies, name: str) -> dict[int, tuple[str, int]]:
    """The checkpoint, decoded: cell index → (state, attempts)."""
    records = read_records(Checkpoint.model_validate(studies.status(name)["checkpoint"]))
    assert records is not None
    return {index: (record.state.name.lower(), record.attempts) for index, record in enumerate(records)}


def test_tiny_study_completes_with_exact_progress(cluster: Cluster, operator: OperatorProcess, namespace: str) -> None:
    studies = Studies(cluster, namespace)
    cluster.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "tiny-study.yaml"))

    cluster.kubectl("wait", "-n", namespace, "--for=condition=Complete", "study/tiny-study", "--timeout=120s")

    status = studies.status("tiny-study")
    assert status["state"] == "complete"
    progress = status["progress"]
    assert (progress["totalCells"], progress["completedCells"], progress["failedCells"]) == (8, 8, 0)
    assert (progress["executingCells"], progress["pendingCells"], progress["summary"]) == (0, 0, "8/8")
    for surface in ("openai-api", "perplexity-api"):
        assert progress["bySurface"][surface] == {
            "total": 4,
            "completed": 4,
            "failed": 0,
            "blocked": 0,
            "executing": 0,
            "pending": 0,
            "skipped": 0,
            "required": True,
        }
    for location in ("us-nyc", "uk-lon"):
        assert progress["byLocation"][location] == {
            "total": 4,
            "completed": 4,
            "failed": 0,
            "blocked": 0,
            "executing": 0,
            "pending": 0,
            "skipped": 0,
        }
    # Each Job goes once its outcome is in the status, which is written first.
    eventually(lambda: not studies.jobs("tiny-study"), what="the finished Jobs to be deleted")


def test_new_study_moves_through_validation_to_executing_and_posts_events(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    studies.create(study("events", queries=1, locations=("us-nyc",)))
    studies.wait_for_state("events", "complete")

    events = json.loads(
        cluster.kubectl(
            "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=events", "-o", "json"
        ).stdout
    )["items"]
    reasons = {event["reason"] for event in events}
    for expected in ("ManifestReceived", "Validating", "Queued", "Started", "Completed"):
        assert expected in reasons, reasons


def test_optional_surface_whose_every_pod_fails_does_not_stop_completion(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    with kwok_stage(cluster, namespace, {"bentham.io/surface": "grok"}, failing_pod_template()):
        studies.create(study("optional-fails", required=("openai-api",), optional=("grok",), max_retries=1))
        status = studies.wait_for_state("optional-fails", "complete", "failed")

    assert status["state"] == "complete", status.get("message")
    assert status["progress"]["bySurface"]["openai-api"]["completed"] == 4


def test_required_surface_whose_pods_fail_fails_the_study_before_all_cells_ran(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    with kwok_stage(cluster, namespace, {"bentham.io/surface": "grok"}, failing_pod_template()):
        studies.create(
            study(
                "required-fails",
                required=("openai-api", "grok"),
                queries=10,
                locations=("us-nyc", "uk-lon"),
                parallelism=2,
                max_retries=1,
                threshold=0.9,
            )
        )
        status = studies.wait_for_state("required-fails", "failed", "complete")

    assert status["state"] == "failed"
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "RequiredSurfaceUnreachable"
    assert "grok" in failed["message"]
    cells = attempts_by_cell(studies, "required-fails")
    never_started = [index for index, (_, attempts) in cells.items() if attempts == 0]
    assert never_started, "the study should stop before every cell has run"
    assert status["progress"]["totalCells"] == 40


def test_failing_attempt_is_retried_and_its_attempts_recorded(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    retryable = {
        "success": False,
        "responseLength": 0,
        "isActualContent": False,
        "responseTimeMs": 10,
        "error": {"code": "TIMEOUT", "message": "took too long", "retryable": True},
    }
    first_attempts = {"bentham.io/attempt": "1", "bentham.io/location": "us-nyc"}
    with kwok_stage(cluster, namespace, first_attempts, failing_pod_template(retryable)):
        studies.create(study("retries", queries=1, locations=("us-nyc", "uk-lon"), max_retries=3))
        status = studies.wait_for_state("retries", "complete", "failed", timeout_s=180)

    assert status["state"] == "complete", status.get("message")
    cells = attempts_by_cell(studies, "retries")
    # Cell 0 is us-nyc (failed once, then passed); cell 1 is uk-lon (passed at once).
    assert cells == {0: ("completed", 2), 1: ("completed", 1)}


def test_non_retryable_error_is_not_retried(cluster: Cluster, operator: OperatorProcess, namespace: str) -> None:
    studies = Studies(cluster, namespace)
    auth_failed = {
        "success": False,
        "responseLength": 0,
        "isActualContent": False,
        "responseTimeMs": 10,
        "error": {"code": "AUTH_FAILED", "message": "bad key", "retryable": True},
    }
    with kwok_stage(cluster, namespace, {"bentham.io/surface": "grok"}, failing_pod_template(auth_failed)):
        studies.create(
            study("auth", queries=1, locations=("us-nyc",), required=("openai-api",), optional=("grok",), max_retries=3)
        )
        status = studies.wait_for_state("auth", "complete", "failed")

    assert status["state"] == "complete"
    cells = attempts_by_cell(studies, "auth")
    assert cells[1] == ("failed", 1), cells  # grok: one attempt, never retried


def test_too_short_response_fails_its_attempt_through_the_quality_gate(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    studies = Studies(cluster, namespace)
    short = {**GOOD_RESULT, "responseLength": 12}
    studies.create(
        study(
            "short",
            queries=1,
            locations=("us-nyc",),
            max_retries=2,
            result=short,
            qualityGates={"minResponseLength": 100},
        )
    )

    status = studies.wait_for_state("short", "failed", "complete")

    assert status["state"] == "failed"
    assert attempts_by_cell(studies, "short") == {0: ("failed", 2)}
    assert status["progress"]["failedCells"] == 1
    assert status["progress"]["completedCells"] == 0


def test_jobs_in_flight_never_exceed_parallelism(cluster: Cluster, operator: OperatorProcess, namespace: str) -> None:
    # In flight: not finished. A finished Job may outlive its slot until the status recording its
    # outcome is written (core.pacing); it runs nothing meanwhile.
    studies = Studies(cluster, namespace)
    samples: list[int] = []
    done = threading.Event()

    def in_flight(job: Any) -> bool:
        finished = any(c.type in ("Complete", "Failed") and c.status == "True" for c in job.status.conditions or [])
        return not job.metadata.deletion_timestamp and not finished

    def sample() -> None:
        while not done.is_set():
            samples.append(sum(in_flight(j) for j in studies.jobs("bounded")))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        studies.create(
            study(
                "bounded",
                queries=6,
                locations=("us-nyc", "uk-lon"),
                parallelism=3,
                pod_annotations={"sim.bentham.io/duration": "1s"},
            )
        )
        studies.wait_for_state("bounded", "complete", timeout_s=180)
    finally:
        done.set()
        sampler.join()

    assert max(samples) <= 3, max(samples)
    assert max(samples) == 3, "the study should have used its parallelism"


def test_deleting_a_study_removes_its_jobs(cluster: Cluster, operator: OperatorProcess, namespace: str) -> None:
    studies = Studies(cluster, namespace)
    studies.create(study("doomed", queries=4, parallelism=4, pod_annotations={"sim.bentham.io/duration": "120s"}))
    eventually(lambda: len(studies.jobs("doomed")) == 4, what="the study's Jobs")
    studies.delete("doomed")

    eventually(lambda: not studies.jobs("doomed"), what="the garbage collector to delete the Jobs")


def test_demo_command_runs_the_tiny_study_to_completion(cluster: Cluster) -> None:
    namespace = f"demo-{uuid.uuid4().hex[:6]}"
    try:
        result = subprocess.run(
            ["bash", str(REPO / "hack" / "demo.sh")],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "DEMO_NAMESPACE": namespace},
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "tiny-study" in result.stdout and "complete" in result.stdout
        assert "8/8" in result.stdout
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
